// Group scales of layout q4g32 (weights_q4g32.wgsl) for kernels that read whole 32-column groups:
// one (f16 scale, f16 min) pair per group. The entry kernel declares `weight_scales` (array<u32>).

fn group_scale_min(row: u32, group: u32, groups_per_row: u32) -> vec2<f32> {
    return unpack2x16float(weight_scales[row * groups_per_row + group]);
}
