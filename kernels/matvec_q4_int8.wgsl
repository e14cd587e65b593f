// y[r] = sum_k W[r, k] * in[k] for one token, or y[r] += ... when ACCUMULATE, for 4-bit matrices
// (layouts q4g32 and q4g32f) through integer dot products. Unpacking codes into floats costs about
// five instructions a weight, which made matvec.wgsl (and a float variant of this kernel) compute-
// bound on big GPUs; here the workgroup first quantizes its input to int8, one scale per
// 32-column group (in ≈ d · q_in with d = max|in| / 127, as llama.cpp's GPU backends quantize
// activations to q8_1), and then four codes times four inputs and their sum are one dot4I8Packed
// (a dp4a instruction where the GPU has one). Per group and row:
//     in · w = scale · d · (q_w · q_in) + min · sum(in)
// with sum(in) over the unquantized inputs, so the only approximation is q_in's rounding.
//
// A code word holds columns 8j .. 8j+7 as nibbles 0..7; masking it with 0x0F0F0F0F leaves the even
// columns as four bytes and shifting it right by 4 first the odd ones, so the input is staged in
// the same split: `staged_even[g]` word j holds q_in of columns 8j, 8j+2, 8j+4, 8j+6 of group g,
// `staged_odd[g]` word j those of 8j+1 .. 8j+7.
//
// Bindings: 0 weight_codes vec4<u32>[] (one group per element), 1 weight_scales u32[] (layout
//           from `//!include scales`), 2 x vec4<f32>[...], 3 y f32[row_offset + rows], 4 params,
//           5.. the prologue's.
// Mapping: WORKGROUP / THREADS_PER_ROW lane groups of THREADS_PER_ROW lanes; each computes
// ROWS_PER_THREAD consecutive rows, its lanes striding over the groups; lanes meet in
// `//!include reduce`. The input is staged CHUNK_GROUPS groups at a time, invocation i staging groups
// i and i + WORKGROUP of a chunk (the model stages a whole input of up to 512 groups at once: one
// pair of barriers, and the staging arrays no larger than the input).
// Tested by tests/test_kernels_matmul.py against numpy float64 (the quantized algorithm exactly, and
// the unquantized product within the rounding's bound).

//!include scales
//!include int8_group
//!include int8_dot

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
override CHUNK_GROUPS: u32 = 256u;  // at most 2 · WORKGROUP (tests lower it to cross chunks)
// Take the prologue's input unscaled and scale the sums instead (`//!include input_unscaled`;
// rmsnorm: no pass over x and no barrier before staging). Int8 rounding is the same either way.
override DEFER_INPUT_SCALE: bool = true;

//!include input
//!include reduce

var<workgroup> staged_even: array<vec4<u32>, CHUNK_GROUPS>;
var<workgroup> staged_odd: array<vec4<u32>, CHUNK_GROUPS>;
var<workgroup> staged_scale_sum: array<vec2<f32>, CHUNK_GROUPS>;  // (d, sum(in)) of each group

// Quantizes group `group` of the input into slot `g` of the staging arrays.
fn stage_group(group: u32, g: u32) {
    var v: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        if (DEFER_INPUT_SCALE) { v[i] = unscaled_input4(group * 8u + i); } else { v[i] = input4(group * 8u + i); }
    }
    let q = int8_group(v);
    staged_even[g] = q.even;
    staged_odd[g] = q.odd;
    staged_scale_sum[g] = vec2<f32>(q.d, q.sum);
}

fn group_dot(row: u32, group: u32, g: u32, groups: u32) -> f32 {
    let codes = weight_codes[row * groups + group];
    let even = codes & vec4<u32>(0x0F0F0F0Fu);
    let odd = (codes >> vec4<u32>(4u)) & vec4<u32>(0x0F0F0F0Fu);
    let q = dot32_float(even, odd, staged_even[g], staged_odd[g]);
    let scale_min = group_scale_min(row, group, groups);
    let d_sum = staged_scale_sum[g];
    return fma(scale_min.x * d_sum.x, q, scale_min.y * d_sum.y);
}

@compute @workgroup_size(WORKGROUP)
fn main(inv: Invocation) {
    let lid = inv.index;
    if (DEFER_INPUT_SCALE) { prepare_unscaled_input(inv); } else { prepare_input(inv); }

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
        for (var g = lid; g < n; g += WORKGROUP) { stage_group(chunk + g, g); }
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
    var total = row_total(acc, inv);
    // the prologue's deferred scale (the rmsnorm's 1 / rms; 1 for the others); every invocation
    if (DEFER_INPUT_SCALE) { total *= input_scale(inv); }
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
