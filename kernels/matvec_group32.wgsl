// y[r] = sum_k W[r, k] * in[k] (or y[r] += ... when ACCUMULATE) for 4-bit layouts with one
// (scale, min) per group of 32 columns (q4g32, q4g32f): matvec.wgsl's job and bindings, built for
// bandwidth on large matrices. A thread takes a whole group per step: its 32 codes in one 16-byte
// load (weight_codes is bound as vec4<u32>, so cols must be a multiple of 32), and the group's
// input once for all its rows. The group's scale and min factor out of the sum:
//     sum_k (s q_k + m) in_k = s * sum_k q_k in_k + m * sum_k in_k,
// one multiply-add per weight, the input's sum shared by every row (llama.cpp sums the same way).
//
// Bindings: 0 weight_codes vec4<u32>[rows * cols / 32], 1 weight_scales u32[] (`//!include
//           group32` reads a group's pair), 2 x vec4<f32>[...], 3 y f32[row_offset + rows],
//           4 params, 5.. the input prologue's (`//!include input`, see matvec.wgsl).
// Mapping: as matvec.wgsl, with 32-column groups for 8-column blocks: a workgroup of 256 threads
// is WORKGROUP / THREADS_PER_ROW groups of lanes, each computing ROWS_PER_THREAD consecutive rows.
// Tested by tests/test_kernels_matmul.py against numpy float64.

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const WORKGROUP: u32 = 256u;
override ACCUMULATE: bool = false;
override THREADS_PER_ROW: u32 = 64u;
override ROWS_PER_THREAD: u32 = 1u;  // 1, 2 or 4

//!include group32
//!include input

var<workgroup> partial: array<f32, 1024>;  // WORKGROUP * the largest ROWS_PER_THREAD

// The input over one group of 32 columns, as 8 vec4 (no array: see the accumulators below).
struct Group { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32>, e: vec4<f32>, f: vec4<f32>, g: vec4<f32>, h: vec4<f32>, sum: f32 }

fn load_group(group: u32) -> Group {
    let v = group * 8u;
    var grp = Group(input4(v), input4(v + 1u), input4(v + 2u), input4(v + 3u),
                   input4(v + 4u), input4(v + 5u), input4(v + 6u), input4(v + 7u), 0.0);
    grp.sum = dot(((grp.a + grp.b) + (grp.c + grp.d)) + ((grp.e + grp.f) + (grp.g + grp.h)), vec4<f32>(1.0));
    return grp;
}

fn low4(word: u32) -> vec4<f32> { return vec4<f32>(vec4<u32>(word, word >> 4u, word >> 8u, word >> 12u) & vec4<u32>(15u)); }
fn high4(word: u32) -> vec4<f32> { return vec4<f32>(vec4<u32>(word >> 16u, word >> 20u, word >> 24u, word >> 28u) & vec4<u32>(15u)); }

// Row `row`'s weights of group `group` times the group's input.
fn group_dot(row: u32, group: u32, grp: Group) -> f32 {
    let codes = weight_codes[row * (params.cols / 32u) + group];
    let q_in = dot(low4(codes.x), grp.a) + dot(high4(codes.x), grp.b) + dot(low4(codes.y), grp.c) + dot(high4(codes.y), grp.d)
             + dot(low4(codes.z), grp.e) + dot(high4(codes.z), grp.f) + dot(low4(codes.w), grp.g) + dot(high4(codes.w), grp.h);
    let scale_min = group_scale_min(row, group, params.cols);
    return scale_min.x * q_in + scale_min.y * grp.sum;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    prepare_input(lid);  // before any branch: prologues may reduce over the workgroup

    let lane_groups = WORKGROUP / THREADS_PER_ROW;
    let first_row = ((wg.y * nwg.x + wg.x) * lane_groups + lid / THREADS_PER_ROW) * ROWS_PER_THREAD;
    let lane = lid % THREADS_PER_ROW;
    // One accumulator per row (an indexed array would spill to slow per-thread memory); the
    // branches on override constants vanish when the pipeline is made.
    var sum0 = 0.0;
    var sum1 = 0.0;
    var sum2 = 0.0;
    var sum3 = 0.0;
    if (first_row < params.rows) {
        let last_row = params.rows - 1u;  // rows past the end re-read it; their sums are never written
        let row1 = min(first_row + 1u, last_row);
        let row2 = min(first_row + 2u, last_row);
        let row3 = min(first_row + 3u, last_row);
        for (var group = lane; group < params.cols / 32u; group += THREADS_PER_ROW) {
            let grp = load_group(group);
            sum0 += group_dot(first_row, group, grp);
            if (ROWS_PER_THREAD > 1u) { sum1 += group_dot(row1, group, grp); }
            if (ROWS_PER_THREAD > 2u) {
                sum2 += group_dot(row2, group, grp);
                sum3 += group_dot(row3, group, grp);
            }
        }
    }
    partial[lid] = sum0;
    if (ROWS_PER_THREAD > 1u) { partial[WORKGROUP + lid] = sum1; }
    if (ROWS_PER_THREAD > 2u) {
        partial[2u * WORKGROUP + lid] = sum2;
        partial[3u * WORKGROUP + lid] = sum3;
    }
    workgroupBarrier();
    for (var stride = THREADS_PER_ROW / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            for (var r = 0u; r < ROWS_PER_THREAD; r++) {
                partial[r * WORKGROUP + lid] += partial[r * WORKGROUP + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        for (var r = 0u; r < ROWS_PER_THREAD; r++) {
            let row = first_row + r;
            if (row < params.rows) {
                let out = params.row_offset + row;
                let value = partial[r * WORKGROUP + lid];
                if (ACCUMULATE) { y[out] += value; } else { y[out] = value; }
            }
        }
    }
}
