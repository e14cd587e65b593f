// The dot product of a 32-column group of 4-bit codes (four u32 words, eight nibbles each, column
// 8j + n in nibble n of word j) with the group's inputs (columns32.wgsl).

fn low_nibbles(w: u32) -> vec4<f32> { return vec4<f32>(vec4<u32>(w, w >> 4u, w >> 8u, w >> 12u) & vec4<u32>(15u)); }
fn high_nibbles(w: u32) -> vec4<f32> { return vec4<f32>(vec4<u32>(w >> 16u, w >> 20u, w >> 24u, w >> 28u) & vec4<u32>(15u)); }

fn nibbles_dot(codes: vec4<u32>, c: Columns32) -> f32 {
    return ((dot(low_nibbles(codes.x), c.v0) + dot(high_nibbles(codes.x), c.v1))
          + (dot(low_nibbles(codes.y), c.v2) + dot(high_nibbles(codes.y), c.v3)))
         + ((dot(low_nibbles(codes.z), c.v4) + dot(high_nibbles(codes.z), c.v5))
          + (dot(low_nibbles(codes.w), c.v6) + dot(high_nibbles(codes.w), c.v7)));
}

// The group's weights scale q + minimum, dequantized.
fn nibbles_weights(codes: vec4<u32>, scale: f32, minimum: f32) -> Columns32 {
    var w: Columns32;
    w.v0 = low_nibbles(codes.x) * scale + minimum;
    w.v1 = high_nibbles(codes.x) * scale + minimum;
    w.v2 = low_nibbles(codes.y) * scale + minimum;
    w.v3 = high_nibbles(codes.y) * scale + minimum;
    w.v4 = low_nibbles(codes.z) * scale + minimum;
    w.v5 = high_nibbles(codes.z) * scale + minimum;
    w.v6 = low_nibbles(codes.w) * scale + minimum;
    w.v7 = high_nibbles(codes.w) * scale + minimum;
    return w;
}
