// Layout f16 (weights_f16.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl:
// `weight_codes` as vec4<u32>, eight halves per element. `weight_scales` is bound but unused.

//!include columns32

fn halves_dot(w: vec4<u32>, a: vec4<f32>, b: vec4<f32>) -> f32 {
    return dot(vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)), a)
         + dot(vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)), b);
}

fn group_dot(row: u32, g: u32, cols: u32, c: Columns32) -> f32 {
    _ = weight_scales[0]; // keeps the binding in the auto layout, so every layout binds alike
    let i = row * (cols / 8u) + 4u * g;
    return (halves_dot(weight_codes[i], c.v0, c.v1) + halves_dot(weight_codes[i + 1u], c.v2, c.v3))
         + (halves_dot(weight_codes[i + 2u], c.v4, c.v5) + halves_dot(weight_codes[i + 3u], c.v6, c.v7));
}
