// The decode QKV projection of CPU Vulkan drivers with its epilogue: matvec_broadcast.wgsl's row
// sums of the fused [q; k; v] matrix (the attention norm fused in by `//!include input`), then the
// rotary embedding of q and k and the KV-cache write, as rope_kv_write.wgsl does them for models
// with adjacent RoPE pairs (NEOX = false), no QKV bias and no q/k norm — one dispatch a layer fewer
// (lavapipe: ~45 µs each, of a ~31 ms SmolLM2 step). A lane owns ROWS_PER_THREAD consecutive rows,
// so both rows of each pair (2i, 2i + 1) of a head, and rotates them in registers:
//     (a, b) -> (a c - b s, a s + b c),  (c, s) = rope[position, i]   for pair i < rope_dim / 2
// q rows go to q_out, k rows to k_cache[position], v rows to v_cache[position].
//
// Bindings: 0 weight_codes, 1 weight_scales, 2 x (as matvec_broadcast.wgsl), 3 q_out
//           f32[n_head head_dim], 4 params (rows = (n_head + 2 n_kv_head) head_dim), 5.. the
//           prologue's (5, 6), 7 k_cache [max_context, n_kv_head, head_dim] in kv_cache.wgsl's format, 8 v_cache,
//           9 rope f32[max_context, rope_dim / 2, 2] (rope_kv_write.wgsl's table), 10 rope_params,
//           11 step (position).
// Requires head_dim a multiple of ROWS_PER_THREAD (a lane's rows in one head) and rope_dim even.
// Tested by tests/test_kernels_matmul.py against numpy float64.

//!include group32
//!include kv_cache_pairs

struct Params { rows: u32, cols: u32, row_offset: u32, out_rows: u32 }
struct RopeParams { n_head: u32, n_kv_head: u32, head_dim: u32, rope_dim: u32, eps: f32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> weight_codes: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> weight_scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> q_out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(7) var<storage, read_write> k_cache: array<u32>;  // kv_cache_pairs.wgsl's format
@group(0) @binding(8) var<storage, read_write> v_cache: array<u32>;
@group(0) @binding(9) var<storage, read> rope: array<f32>;
@group(0) @binding(10) var<uniform> rope_params: RopeParams;
@group(0) @binding(11) var<uniform> step: Step;

const WORKGROUP: u32 = 16u;
const THREADS_PER_ROW: u32 = 1u;
override FOUR_LANE_LOADS: bool = false;
override ROWS_PER_THREAD: u32 = 4u;  // 2, 4 or 8

//!include input
//!include reduce
//!include broadcast_rows

@compute @workgroup_size(WORKGROUP)
fn main(inv: Invocation, @builtin(subgroup_invocation_id) lane: u32) {
    prepare_input(inv);
    let first_row = ((inv.workgroup.y * inv.workgroups.x + inv.workgroup.x) * WORKGROUP + inv.index) * ROWS_PER_THREAD;
    let sums = broadcast_row_sums(first_row, lane, inv.subgroup_size);
    if (first_row >= params.rows) { return; }

    let head_dim = rope_params.head_dim;
    let q_width = rope_params.n_head * head_dim;
    let kv_width = rope_params.n_kv_head * head_dim;
    let position = step.position;
    let is_v = first_row >= q_width + kv_width;
    let section = select(select(0u, q_width, first_row >= q_width), q_width + kv_width, is_v);
    let rope_pairs = rope_params.rope_dim / 2u;
    for (var r = 0u; r < ROWS_PER_THREAD; r += 2u) {
        let row = first_row + r;
        var a = row_sum(sums, r);
        var b = row_sum(sums, r + 1u);
        let j = (row - section) % head_dim;  // even: the pair (j, j + 1) of its head
        if (!is_v && j < rope_params.rope_dim) {
            let cs = 2u * (position * rope_pairs + j / 2u);
            let c = rope[cs];
            let s = rope[cs + 1u];
            let rotated_a = a * c - b * s;
            b = a * s + b * c;
            a = rotated_a;
        }
        let at = row - section;
        if (section == 0u) {
            q_out[at] = a;
            q_out[at + 1u] = b;
        } else if (is_v) {
            store_v2(position * kv_width + at, a, b);
        } else {
            store_k2(position * kv_width + at, a, b);
        }
    }
}
