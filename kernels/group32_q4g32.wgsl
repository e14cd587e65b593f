// Layout q4g32 for matvec_group32.wgsl: the (scale, min) pair of a group of 32 columns, stored as
// two f16 halves of one u32 per group (see weights_q4g32.wgsl and notebook_llm/loader/repack.py).

fn group_scale_min(row: u32, group: u32, cols: u32) -> vec2<f32> {
    return unpack2x16float(weight_scales[row * (cols / 32u) + group]);
}
