// Reductions of the matrix-vector kernels, without subgroups: the THREADS_PER_ROW lanes of a row
// (consecutive invocations) add their partial sums through workgroup memory, a tree of
// log2(THREADS_PER_ROW) barrier rounds; `workgroup_total` sums one value over the whole workgroup
// (the rmsnorm input prologue), `workgroup_max` its maximum (split attention). The kernel declares
// WORKGROUP and THREADS_PER_ROW; the functions must be reached by every invocation (they have barriers).

struct Invocation {
    @builtin(local_invocation_index) index: u32,
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
}

var<workgroup> row_partials: array<vec4<f32>, WORKGROUP>;

// The sums over the row's lanes of `partial` (one per row of the thread), complete in the row's lane 0.
fn row_total(partial: vec4<f32>, inv: Invocation) -> vec4<f32> {
    let lane = inv.index % THREADS_PER_ROW;
    row_partials[inv.index] = partial;
    workgroupBarrier();
    for (var stride = THREADS_PER_ROW / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) { row_partials[inv.index] += row_partials[inv.index + stride]; }
        workgroupBarrier();
    }
    return row_partials[inv.index];
}

var<workgroup> workgroup_partials: array<f32, WORKGROUP>;

// The sum of `value` over the workgroup, returned to every invocation.
fn workgroup_total(value: f32, inv: Invocation) -> f32 {
    workgroup_partials[inv.index] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (inv.index < stride) { workgroup_partials[inv.index] += workgroup_partials[inv.index + stride]; }
        workgroupBarrier();
    }
    let total = workgroup_partials[0];
    workgroupBarrier();  // all have read before the array is reused
    return total;
}

// The maximum of `value` over the workgroup, returned to every invocation.
fn workgroup_max(value: f32, inv: Invocation) -> f32 {
    workgroup_partials[inv.index] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (inv.index < stride) { workgroup_partials[inv.index] = max(workgroup_partials[inv.index], workgroup_partials[inv.index + stride]); }
        workgroupBarrier();
    }
    let largest = workgroup_partials[0];
    workgroupBarrier();  // all have read before the array is reused
    return largest;
}
