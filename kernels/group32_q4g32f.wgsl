// Layout q4g32f for matvec_group32.wgsl: the (scale, min) pair of a group of 32 columns, stored as
// two float32 words per group (see weights_q4g32f.wgsl and notebook_llm/loader/repack.py).

fn group_scale_min(row: u32, group: u32, cols: u32) -> vec2<f32> {
    let pair = (row * (cols / 32u) + group) * 2u;
    return vec2<f32>(bitcast<f32>(weight_scales[pair]), bitcast<f32>(weight_scales[pair + 1u]));
}
