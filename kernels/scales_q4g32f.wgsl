// Group scales of layout q4g32f (weights_q4g32f.wgsl) for kernels that read whole 32-column
// groups: a float32 scale and a float32 min per group. The entry kernel declares `weight_scales`.

fn group_scale_min(row: u32, group: u32, groups_per_row: u32) -> vec2<f32> {
    let pair = (row * groups_per_row + group) * 2u;
    return vec2<f32>(bitcast<f32>(weight_scales[pair]), bitcast<f32>(weight_scales[pair + 1u]));
}
