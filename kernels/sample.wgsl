// token_out[0] = argmax_i (logits[i] + T * g_i)   for T = step.temperature > 0   (Gumbel-max),
//              = argmax_i logits[i]                for T == 0                      (greedy),
// ties going to the lowest index. g_i = -log(-log(u_i)) is standard Gumbel noise with u_i uniform in
// (0, 1) from a counter-based hash of (step.seed, step.position, i), so the token is an exact draw
// from softmax(logits / T) (argmax of logits/T + g equals argmax of logits + T g for T > 0; the
// latter never overflows for tiny T) and the same (seed, position) always gives the same token.
// Logits must not be NaN.
//
// Bindings: 0 logits f32[vocab], 1 token_out u32[1], 2 params, 3 step (position, seed, temperature).
// Mapping: dispatch (1, 1, 1); 256 threads each scan a strided slice of the vocabulary, then a tree
// reduction of (value, index) pairs in workgroup memory.
// Tested by tests/test_kernels_sample.py (argmax against numpy, draws against softmax by chi-square).

struct Params { vocab: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> token_out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<uniform> step: Step;

const WORKGROUP: u32 = 256u;
const NONE: u32 = 0xffffffffu;

var<workgroup> best_values: array<f32, WORKGROUP>;
var<workgroup> best_indices: array<u32, WORKGROUP>;

// PCG output permutation (O'Neill) used as a 32-bit integer hash (Jarzynski & Olano 2020).
fn pcg_hash(x: u32) -> u32 {
    let state = x * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// -log(u) for u = (h + 1/2) / 2^32, keeping its relative precision where it is small (u near 1),
// which is where the Gumbel noise -log(-log u) is large and decides the draw. WGSL's log is only
// accurate to 2^-21 absolute on [0.5, 2], so u >= 1/2 is handled through v = 1 - u, held exactly.
fn standard_exponential(h: u32) -> f32 {
    if (h < 0x80000000u) {
        return -log((f32(h) + 0.5) * 2.3283064e-10);            // u in (0, 1/2]
    }
    let v = (f32(~h) + 0.5) * 2.3283064e-10;                     // v = 1 - u in (0, 1/2)
    if (v < 0.005) {
        return v * (1.0 + v * (0.5 + v * (0.33333334 + v * 0.25)));  // -log(1 - v), error < v^5/5
    }
    return -log(1.0 - v);
}

fn better(value: f32, index: u32, best_value: f32, best_index: u32) -> bool {
    return best_index == NONE || value > best_value || (value == best_value && index < best_index);
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(local_invocation_index) lid: u32) {
    let temperature = step.temperature;
    let stream = pcg_hash(step.seed ^ pcg_hash(step.position));
    var best_value = 0.0;
    var best_index = NONE;
    for (var i = lid; i < params.vocab; i += WORKGROUP) {
        var value = logits[i];
        if (temperature > 0.0) {
            let gumbel = -log(standard_exponential(pcg_hash(stream + pcg_hash(i))));
            value += temperature * gumbel;
        }
        if (better(value, i, best_value, best_index)) {
            best_value = value;
            best_index = i;
        }
    }
    best_values[lid] = best_value;
    best_indices[lid] = best_index;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            let other_value = best_values[lid + stride];
            let other_index = best_indices[lid + stride];
            if (other_index != NONE && better(other_value, other_index, best_values[lid], best_indices[lid])) {
                best_values[lid] = other_value;
                best_indices[lid] = other_index;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) { token_out[0] = best_indices[0]; }
}
