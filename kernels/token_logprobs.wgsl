// logprob_i = (logits[i] - m) - log(sum_j exp(logits[j] - m)),   m = max_j logits[j]   (log-softmax),
// for the sampled token tokens[0] and for the top_logprobs (N <= 20) tokens of highest logit, in
// descending order (ties: lower id first).
//
// These are the model's own log-probabilities, from the RAW logits: temperature, penalties, logit bias,
// top-k/top-p/min-p and the grammar mask do not change them (OpenAI reports logprobs the same way).
//
// Writes into the result record (notebook_llm/engine/sampler.py): result[1] = bits of the sampled
// token's logprob, result[2] = n = min(N, vocab), result[3] = 0, result[4 + r] = id of the r-th best
// token, result[24 + r] = bits of its logprob, r < n. result[0] (the token) is sample.wgsl's.
//
// Bindings: 0 logits f32[vocab], 1 tokens u32[>= 1] (tokens[0] is the sampled token), 2 result u32[44],
//           3 params (SamplingParams: vocab and top_logprobs are read).
// Mapping: dispatch (1, 1, 1); 256 threads each scan a strided slice of the vocabulary once, keeping
// the slice's maximum and its own sorted top-N list (insertion, in private memory); a workgroup argmax
// gives the maximum, a workgroup sum the normaliser, then N rounds of a workgroup argmax over the
// threads' list heads merge the lists (the winning thread advances its head).
// Tested by tests/test_sampler.py (against numpy float64 log_softmax, order included).

//!include sampling_params
//!include workgroup_argmax

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read_write> result: array<u32>;
@group(0) @binding(3) var<uniform> params: SamplingParams;

const WORKGROUP: u32 = 256u;
const GROUPS: u32 = 16u;  // the sum: 16 threads add 16 partials each, then every thread adds the 16
const MAX_TOP: u32 = 20u;
const TOP_IDS: u32 = 4u;        // result words [4, 24)
const TOP_LOGPROBS: u32 = 24u;  // result words [24, 44)

var<workgroup> partial_sum: array<f32, WORKGROUP>;
var<workgroup> group_sum: array<f32, GROUPS>;

fn workgroup_sum(lid: u32, mine: f32) -> f32 {
    partial_sum[lid] = mine;
    workgroupBarrier();
    if (lid < GROUPS) {
        var sum = 0.0;
        for (var j = 0u; j < WORKGROUP / GROUPS; j++) { sum += partial_sum[lid * (WORKGROUP / GROUPS) + j]; }
        group_sum[lid] = sum;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var j = 0u; j < GROUPS; j++) { total += group_sum[j]; }
    return total;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(local_invocation_index) lid: u32) {
    let vocab = params.vocab;
    let n = min(params.top_logprobs, MAX_TOP);

    // This thread's slice: its maximum and its top-n, best first (indices rise along the scan, so an
    // equal value never displaces an earlier one: ties keep the lower id first).
    var top_values: array<f32, MAX_TOP>;
    var top_indices: array<u32, MAX_TOP>;
    var length = 0u;
    var slice_max = Candidate(0.0, NONE);
    for (var i = lid; i < vocab; i += WORKGROUP) {
        let v = logits[i];
        if (better(v, i, slice_max)) { slice_max = Candidate(v, i); }
        if (n == 0u) { continue; }
        if (length == n && !better(v, i, Candidate(top_values[n - 1u], top_indices[n - 1u]))) { continue; }
        var j = length;
        if (length < n) { length += 1u; } else { j = n - 1u; }
        while (j > 0u && better(v, i, Candidate(top_values[j - 1u], top_indices[j - 1u]))) {
            top_values[j] = top_values[j - 1u];
            top_indices[j] = top_indices[j - 1u];
            j -= 1u;
        }
        top_values[j] = v;
        top_indices[j] = i;
    }

    let max_logit = workgroup_argmax(lid, slice_max).value;
    var sum = 0.0;
    for (var i = lid; i < vocab; i += WORKGROUP) { sum += exp(logits[i] - max_logit); }
    let log_normaliser = log(workgroup_sum(lid, sum));

    let count = min(n, vocab);
    if (lid == 0u) {
        let token = tokens[0];
        result[1] = bitcast<u32>((logits[token] - max_logit) - log_normaliser);
        result[2] = count;
        result[3] = 0u;
    }
    var head = 0u;
    for (var r = 0u; r < count; r++) {
        var offer = Candidate(0.0, NONE);
        if (head < length) { offer = Candidate(top_values[head], top_indices[head]); }
        let winner = workgroup_argmax(lid, offer);
        if (head < length && top_indices[head] == winner.index) { head += 1u; }
        if (lid == 0u) {
            result[TOP_IDS + r] = winner.index;
            result[TOP_LOGPROBS + r] = bitcast<u32>((winner.value - max_logit) - log_normaliser);
        }
    }
}
