// The passes over the vocabulary that sample.wgsl needs for every draw, spread over the GPU:
// invocation j of PARTIALS scans tokens j, j + PARTIALS, j + 2 PARTIALS, ... (coalesced) and writes
//     partials[j] = (greedy value, its token, drawn value, its token)
// where greedy is the argmax of scores over its tokens (masked ones included, as sample.wgsl's argmax
// counts them) and drawn the argmax of scores + T g over its unmasked tokens at the step's temperature
// T > 0 (sample.wgsl's unfiltered Gumbel-max draw, the noise from `//!include gumbel`), ties going to
// the lowest index; a token of 0xffffffff marks no candidate (no token, or every one masked).
// sample.wgsl reduces the PARTIALS entries.
//
// Bindings: 0 scores f32[vocab], 1 partials vec4<u32>[PARTIALS], 2 params (SamplingParams: vocab),
//           3 step (n_tokens, position, seed, temperature).
// Mapping: dispatch (ceil(PARTIALS / 64), 1, 1).
// Tested by tests/test_kernels_sample.py and tests/test_sampler.py through sample.wgsl.

//!include sampling_params
//!include gumbel

struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<vec4<u32>>;
@group(0) @binding(2) var<uniform> params: SamplingParams;
@group(0) @binding(3) var<uniform> step: Step;

override PARTIALS: u32 = 1u;
const WORKGROUP: u32 = 64u;
const NONE: u32 = 0xffffffffu;
const MASKED: f32 = -3.0e38;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    if (j >= PARTIALS) { return; }
    let temperature = step.temperature;
    let stream = noise_stream(step.seed, step.position + step.n_tokens);
    var greedy_value = 0.0;
    var greedy_token = NONE;
    var drawn_value = 0.0;
    var drawn_token = NONE;
    // Tokens ascend along the scan, so a strictly greater value alone replaces the candidate.
    for (var i = j; i < params.vocab; i += PARTIALS) {
        let s = scores[i];
        if (greedy_token == NONE || s > greedy_value) {
            greedy_value = s;
            greedy_token = i;
        }
        if (temperature > 0.0 && s > MASKED) {
            let value = s + temperature * gumbel(stream, i);
            if (drawn_token == NONE || value > drawn_value) {
                drawn_value = value;
                drawn_token = i;
            }
        }
    }
    partials[j] = vec4<u32>(bitcast<u32>(greedy_value), greedy_token, bitcast<u32>(drawn_value), drawn_token);
}
