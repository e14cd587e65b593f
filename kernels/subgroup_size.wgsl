// Writes the subgroup size a compute dispatch gets (GpuContext.subgroup_size): kernels whose
// workgroup is exactly one subgroup (attention_subgroup.wgsl, on CPU drivers) size themselves by it.

@group(0) @binding(0) var<storage, read_write> size: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) subgroup_size: u32) {
    if (lid == 0u) { size[0] = subgroup_size; }
}
