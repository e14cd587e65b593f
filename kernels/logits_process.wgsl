// scores[i] = mask_i ? penalised(logits[i] + bias[i]) : MASKED, where
//   penalised(s) = rp(s) - frequency_penalty * counts[i] - presence_penalty * (counts[i] > 0),
//   rp(s)        = (s > 0 ? s / repetition_penalty : s * repetition_penalty)  if prompt_seen[i] != 0 or counts[i] > 0,
//                = s                                                             otherwise,
// in that order: logit bias (OpenAI), repetition penalty (CTRL / Hugging Face, over the prompt and the
// tokens generated so far), frequency and presence penalties (OpenAI, over the generated tokens only),
// then the grammar mask. The raw logits are left untouched (logprobs are reported from them).
//
// A masked token gets MASKED = -3.0e38, a finite stand-in for -infinity: WGSL lets implementations
// assume floats are finite (fast-math backends may fold comparisons against infinity away), so no
// infinity is ever written. kernels/sample.wgsl treats any score <= MASKED as masked and never draws
// such a token unless every token is masked (then it returns the lowest index, token 0).
//
// Bindings: 0 logits f32[vocab], 1 bias f32[vocab], 2 counts u32[vocab] (tokens generated so far in
//           this request), 3 prompt_seen u32[vocab] (nonzero: in the prompt), 4 mask u32[ceil(vocab/32)]
//           (bit i % 32 of word i / 32 set: token i allowed), 5 scores f32[vocab], 6 params
//           (SamplingParams, the layout of notebook_llm/engine/sampler.py, shared by the sampling kernels).
// Mapping: dispatch (ceil(vocab / 256), 1, 1); one thread per token.
// Tested by tests/test_sampler.py (scores against a numpy float64 reference of the same formula).

//!include sampling_params

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> counts: array<u32>;
@group(0) @binding(3) var<storage, read> prompt_seen: array<u32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;
@group(0) @binding(6) var<uniform> params: SamplingParams;

const WORKGROUP: u32 = 256u;
const MASKED: f32 = -3.0e38;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.vocab) { return; }
    if (((mask[i / 32u] >> (i % 32u)) & 1u) == 0u) {
        scores[i] = MASKED;
        return;
    }
    let count = counts[i];
    var s = logits[i] + bias[i];
    if (prompt_seen[i] != 0u || count > 0u) {
        let rp = params.repetition_penalty;
        s = select(s * rp, s / rp, s > 0.0);
    }
    s -= params.frequency_penalty * f32(count) + params.presence_penalty * select(0.0, 1.0, count > 0u);
    scores[i] = s;
}
