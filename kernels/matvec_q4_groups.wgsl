// y[r] = sum_k W[r, k] * in[k] for one token, or y[r] += ... when ACCUMULATE: matvec.wgsl's job
// for large 4-bit matrices (layouts q4g32 and q4g32f), where reading the weights fast is all that
// matters. Each lane takes whole 32-column groups: the group's sixteen bytes of codes in one load
// (matvec.wgsl reads four bytes per load), and since one lane then needs 32 inputs, the input is
// staged in workgroup memory, CHUNK_GROUPS groups at a time, shared by all the workgroup's rows.
// Measured on an H200 (benchmarks/matvec_sweep.py, Llama-3.1-8B's FFN up [28672, 4096]): 106 µs a dispatch
// with matvec.wgsl, 65 µs with this kernel; below ~16k rows matvec.wgsl is as fast or faster.
//
// Per group: in · w = scale · (in · q) + min · sum(in), so codes become floats once (the 2^23
// trick: OR-ing a 4-bit code into the mantissa of 2^23 and subtracting 2^23 is exact and avoids
// the slower integer-to-float conversion) and the sum of the group's inputs is computed once per
// workgroup. `in` comes from the input prologue (`//!include input`, as in matvec.wgsl).
//
// Bindings: 0 weight_codes vec4<u32>[] (one group per element), 1 weight_scales u32[] (layout
//           from `//!include scales`), 2 x vec4<f32>[...], 3 y f32[row_offset + rows], 4 params,
//           5.. the prologue's.
// Mapping: WORKGROUP / THREADS_PER_ROW lane groups of THREADS_PER_ROW lanes; each computes
// ROWS_PER_THREAD consecutive rows, its lanes striding over the groups; lanes meet in
// `//!include reduce`. Staged inputs are rotated by group index so that lanes reading the same
// element of consecutive groups hit different memory banks.
// Tested by tests/test_kernels_matmul.py against numpy float64.

//!include scales

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const WORKGROUP: u32 = 256u;
override ACCUMULATE: bool = false;
override THREADS_PER_ROW: u32 = 16u;
override ROWS_PER_THREAD: u32 = 4u;  // 1, 2 or 4
override CHUNK_GROUPS: u32 = 128u;  // at most MAX_CHUNK_GROUPS (tests lower it to cross chunks)
const MAX_CHUNK_GROUPS: u32 = 128u;  // 16 KB of staged inputs: the model needs 24 KB of workgroup memory

//!include input
//!include reduce

var<workgroup> staged: array<vec4<f32>, 1024>;  // 8 * MAX_CHUNK_GROUPS
var<workgroup> staged_sums: array<f32, MAX_CHUNK_GROUPS>;

// Four 4-bit codes of `word` from bit `shift` on, as floats.
fn codes4(word: u32, shift: u32) -> vec4<f32> {
    let bits = ((vec4<u32>(word) >> vec4<u32>(shift, shift + 4u, shift + 8u, shift + 12u)) & vec4<u32>(15u))
               | vec4<u32>(0x4B000000u);
    return bitcast<vec4<f32>>(bits) - vec4<f32>(8388608.0);
}

// Inputs 4i .. 4i + 3 of the chunk's group g.
fn staged4(g: u32, i: u32) -> vec4<f32> { return staged[g * 8u + ((i + g) & 7u)]; }

fn group_dot(row: u32, group: u32, g: u32, groups: u32) -> f32 {
    let c = weight_codes[row * groups + group];
    let scale_min = group_scale_min(row, group, groups);
    let q_in = dot(codes4(c.x, 0u), staged4(g, 0u)) + dot(codes4(c.x, 16u), staged4(g, 1u))
             + dot(codes4(c.y, 0u), staged4(g, 2u)) + dot(codes4(c.y, 16u), staged4(g, 3u))
             + dot(codes4(c.z, 0u), staged4(g, 4u)) + dot(codes4(c.z, 16u), staged4(g, 5u))
             + dot(codes4(c.w, 0u), staged4(g, 6u)) + dot(codes4(c.w, 16u), staged4(g, 7u));
    return scale_min.x * q_in + scale_min.y * staged_sums[g];
}

@compute @workgroup_size(WORKGROUP)
fn main(inv: Invocation) {
    let lid = inv.index;
    prepare_input(inv);

    let first_row = ((inv.workgroup.y * inv.workgroups.x + inv.workgroup.x) * (WORKGROUP / THREADS_PER_ROW)
                     + lid / THREADS_PER_ROW) * ROWS_PER_THREAD;
    let lane = lid % THREADS_PER_ROW;
    let groups = params.cols / 32u;
    let last_row = params.rows - 1u;  // rows past the end re-read it; their sums are never written
    let row0 = min(first_row, last_row);
    let row1 = min(first_row + 1u, last_row);
    let row2 = min(first_row + 2u, last_row);
    let row3 = min(first_row + 3u, last_row);
    var acc = vec4<f32>(0.0);
    for (var chunk = 0u; chunk < groups; chunk += CHUNK_GROUPS) {
        let n = min(CHUNK_GROUPS, groups - chunk);
        workgroupBarrier();  // the previous chunk's reads are done
        for (var i = lid; i < n * 8u; i += WORKGROUP) {
            let g = i / 8u;
            staged[g * 8u + ((i + g) & 7u)] = input4(chunk * 8u + i);
        }
        workgroupBarrier();
        if (lid < n) {
            var s = vec4<f32>(0.0);
            for (var i = 0u; i < 8u; i++) { s += staged[lid * 8u + i]; }
            staged_sums[lid] = s.x + s.y + s.z + s.w;
        }
        workgroupBarrier();
        for (var g = lane; g < n; g += THREADS_PER_ROW) {
            let group = chunk + g;
            acc.x += group_dot(row0, group, g, groups);
            if (ROWS_PER_THREAD > 1u) { acc.y += group_dot(row1, group, g, groups); }
            if (ROWS_PER_THREAD > 2u) {
                acc.z += group_dot(row2, group, g, groups);
                acc.w += group_dot(row3, group, g, groups);
            }
        }
    }
    let total = row_total(acc, inv);
    if (lane == 0u) {
        for (var r = 0u; r < ROWS_PER_THREAD; r++) {
            let row = first_row + r;
            if (row < params.rows) {
                let out = params.row_offset + row;
                if (ACCUMULATE) { y[out] += total[r]; } else { y[out] = total[r]; }
            }
        }
    }
}
