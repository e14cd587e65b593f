// Row reduction of the matrix-vector kernels with subgroup shuffles (the device has the
// "subgroup" feature): a row's lanes are consecutive invocations, so within a subgroup they are
// consecutive subgroup lanes and an xor-butterfly over the row's lanes sums them without
// workgroup memory. Rows wider than the subgroup (THREADS_PER_ROW > subgroup_size, which varies by
// vendor: 32 on NVIDIA, 32 or 64 on AMD, 8 on lavapipe) finish through one round of workgroup
// memory. Replaces reduce_workgroup.wgsl's log2(THREADS_PER_ROW) barrier rounds: H200, SmolLM2's
// FFN up matrix 5.8 → 4.5 µs a dispatch, Llama-3.1-8B's QKV 14.9 → 13.5 µs (benchmarks/matvec_sweep.py).
// `workgroup_total` sums one value over the workgroup (the rmsnorm input prologue): a subgroupAdd,
// then the subgroups' sums through workgroup memory, one barrier; `workgroup_max` likewise takes
// its maximum (split attention's scores).
// The kernel declares WORKGROUP and THREADS_PER_ROW; every invocation must reach these functions.

struct Invocation {
    @builtin(local_invocation_index) index: u32,
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(subgroup_size) subgroup_size: u32,
}

var<workgroup> row_partials: array<vec4<f32>, WORKGROUP>;

// The sums over the row's lanes of `partial` (one per row of the thread), complete in the row's lane 0.
fn row_total(partial: vec4<f32>, inv: Invocation) -> vec4<f32> {
    let span = min(THREADS_PER_ROW, inv.subgroup_size);
    var total = partial;
    for (var mask = 1u; mask < span; mask *= 2u) { total += subgroupShuffleXor(total, mask); }
    if (span == THREADS_PER_ROW) { return total; }
    row_partials[inv.index] = total;
    workgroupBarrier();
    if (inv.index % THREADS_PER_ROW == 0u) {
        for (var lane = span; lane < THREADS_PER_ROW; lane += span) { total += row_partials[inv.index + lane]; }
    }
    workgroupBarrier();  // all have read before a second call (a loop of them) writes the array again
    return total;
}

var<workgroup> subgroup_sums: array<f32, WORKGROUP>;  // one per subgroup (sums or maxima)

// The sum of `value` over the workgroup, returned to every invocation.
fn workgroup_total(value: f32, inv: Invocation) -> f32 {
    let subgroup_sum = subgroupAdd(value);
    if (inv.index % inv.subgroup_size == 0u) { subgroup_sums[inv.index / inv.subgroup_size] = subgroup_sum; }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < WORKGROUP / inv.subgroup_size; i++) { total += subgroup_sums[i]; }
    workgroupBarrier();  // all have read before the array is reused
    return total;
}

// The maximum of `value` over the workgroup, returned to every invocation.
fn workgroup_max(value: f32, inv: Invocation) -> f32 {
    let subgroup_largest = subgroupMax(value);
    if (inv.index % inv.subgroup_size == 0u) { subgroup_sums[inv.index / inv.subgroup_size] = subgroup_largest; }
    workgroupBarrier();
    var largest = subgroup_sums[0];
    for (var i = 1u; i < WORKGROUP / inv.subgroup_size; i++) { largest = max(largest, subgroup_sums[i]); }
    workgroupBarrier();  // all have read before the array is reused
    return largest;
}
