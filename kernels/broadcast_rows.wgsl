// The row sums of matvec_broadcast.wgsl (see there): a lane's ROWS_PER_THREAD consecutive rows
// dotted with the input, the input shared across the subgroup. Shared by matvec_broadcast.wgsl and
// matvec_broadcast_rope.wgsl. The including kernel declares the bindings, Params, the overrides
// ROWS_PER_THREAD and FOUR_LANE_LOADS, and includes `group32` and `input` first.

struct RowSums { low: vec4<f32>, high: vec4<f32> }  // rows first_row + 0..3 and 4..7

// Input columns 32g .. 32g+31 in every lane, and their sum. Subgroups of 8 or more lanes load one
// vec4 a lane (lanes 8.. repeat 0..7); subgroups of 4 (lavapipe on SSE-only CPUs) two.
fn shared_columns(g: u32, lane: u32, subgroup_size: u32) -> Columns32 {
    let wide = subgroup_size >= 8u && !FOUR_LANE_LOADS;
    let a = input4(8u * g + select(lane & 3u, lane & 7u, wide));
    var b = vec4<f32>(0.0);
    if (!wide) { b = input4(8u * g + 4u + (lane & 3u)); }
    var c = columns_from_lanes(a, b, wide);
    c.sum = dot(((c.v0 + c.v1) + (c.v2 + c.v3)) + ((c.v4 + c.v5) + (c.v6 + c.v7)), vec4<f32>(1.0));
    return c;
}

fn broadcast_row_sums(first_row: u32, lane: u32, subgroup_size: u32) -> RowSums {
    // Every lane runs the loop, rows past the end re-reading the last row (their sums are never
    // written): a lane that left it would leave its share of the input unloaded for the others.
    let last_row = params.rows - 1u;
    // Accumulators of rows first_row + 0..3 and 4..7: no array, which a CPU driver may keep in
    // memory; the branches on ROWS_PER_THREAD vanish when the pipeline is made.
    var sum = vec4<f32>(0.0);
    var sum_high = vec4<f32>(0.0);
    for (var g = 0u; g < params.cols / 32u; g++) {
        let c = shared_columns(g, lane, subgroup_size);
        sum.x += group_dot(min(first_row, last_row), g, params.cols, c);
        if (ROWS_PER_THREAD > 1u) { sum.y += group_dot(min(first_row + 1u, last_row), g, params.cols, c); }
        if (ROWS_PER_THREAD > 2u) {
            sum.z += group_dot(min(first_row + 2u, last_row), g, params.cols, c);
            sum.w += group_dot(min(first_row + 3u, last_row), g, params.cols, c);
        }
        if (ROWS_PER_THREAD > 4u) {
            sum_high.x += group_dot(min(first_row + 4u, last_row), g, params.cols, c);
            sum_high.y += group_dot(min(first_row + 5u, last_row), g, params.cols, c);
            sum_high.z += group_dot(min(first_row + 6u, last_row), g, params.cols, c);
            sum_high.w += group_dot(min(first_row + 7u, last_row), g, params.cols, c);
        }
    }
    return RowSums(sum, sum_high);
}

fn row_sum(sums: RowSums, r: u32) -> f32 {
    return select(sums.high[r & 3u], sums.low[r & 3u], r < 4u);
}
