// Layout f16 (weights_f16.wgsl) a 32-column group at a time, for matvec_broadcast.wgsl
// and matmul_broadcast.wgsl:
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

// Row `row`'s weights over group `g` (matmul_broadcast.wgsl: reused for many tokens).
fn group_weights(row: u32, g: u32, cols: u32) -> Columns32 {
    _ = weight_scales[0];
    let i = row * (cols / 8u) + 4u * g;
    let a = weight_codes[i];
    let b = weight_codes[i + 1u];
    let c = weight_codes[i + 2u];
    let d = weight_codes[i + 3u];
    var w: Columns32;
    w.v0 = vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y));
    w.v1 = vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w));
    w.v2 = vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y));
    w.v3 = vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w));
    w.v4 = vec4<f32>(unpack2x16float(c.x), unpack2x16float(c.y));
    w.v5 = vec4<f32>(unpack2x16float(c.z), unpack2x16float(c.w));
    w.v6 = vec4<f32>(unpack2x16float(d.x), unpack2x16float(d.y));
    w.v7 = vec4<f32>(unpack2x16float(d.z), unpack2x16float(d.w));
    return w;
}
