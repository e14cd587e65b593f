// Read bandwidth probe (benchmark only, not an engine kernel): every word of `data` is read once.
//
// Computes: sums[t] = xor of the vec4<u32> words t, t + T, t + 2T, ... of data (T = threads in the
// grid), so the reads cannot be optimised away and each thread writes one word.
// Bindings: 0 data  array<vec4<u32>>  the buffer to read (read-only)
//           1 sums  array<u32>        one word per thread of the grid
// Mapping: a grid-stride loop; adjacent threads read adjacent 16-byte words (coalesced).
// Used by benchmarks/measure.py:memory_bandwidth for the decode roofline.

override WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<storage, read> data: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sums: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let threads = groups.x * WORKGROUP_SIZE;
    let n = arrayLength(&data);
    var acc = vec4<u32>(0u);
    for (var i = id.x; i < n; i += threads) {
        acc ^= data[i];
    }
    sums[id.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
