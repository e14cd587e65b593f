// The dot product of 16 int8 codes (four u32 words, column 4j + n in byte n of word j) with 16
// inputs, for the group32_q8* layouts.

fn bytes_dot(codes: vec4<u32>, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>) -> f32 {
    return (dot(vec4<f32>(unpack4xI8(codes.x)), a) + dot(vec4<f32>(unpack4xI8(codes.y)), b))
         + (dot(vec4<f32>(unpack4xI8(codes.z)), c) + dot(vec4<f32>(unpack4xI8(codes.w)), d));
}

// 32 int8 codes (two elements of four words) dequantized: the first 16 scale_a q + minimum, the
// last 16 scale_b q + minimum.
fn bytes_weights(a: vec4<u32>, b: vec4<u32>, scale_a: f32, scale_b: f32, minimum: f32) -> Columns32 {
    var w: Columns32;
    w.v0 = vec4<f32>(unpack4xI8(a.x)) * scale_a + minimum;
    w.v1 = vec4<f32>(unpack4xI8(a.y)) * scale_a + minimum;
    w.v2 = vec4<f32>(unpack4xI8(a.z)) * scale_a + minimum;
    w.v3 = vec4<f32>(unpack4xI8(a.w)) * scale_a + minimum;
    w.v4 = vec4<f32>(unpack4xI8(b.x)) * scale_b + minimum;
    w.v5 = vec4<f32>(unpack4xI8(b.y)) * scale_b + minimum;
    w.v6 = vec4<f32>(unpack4xI8(b.z)) * scale_b + minimum;
    w.v7 = vec4<f32>(unpack4xI8(b.w)) * scale_b + minimum;
    return w;
}
