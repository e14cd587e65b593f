// token = argmax_i scores[i]                                   for T = step.temperature == 0 (greedy),
//       = argmax_{i in S} (scores[i] + T * g_i)                for T > 0 (Gumbel-max),
// ties going to the lowest index, where S = {i : scores[i] >= tau, i not masked} is the kept set and
//   tau = max(tau_top_k, tau_min_p, tau_top_p),
//   tau_top_k = the top_k-th largest score                      (top_k > 0; ties at the boundary are kept),
//   tau_min_p = max_score + T * ln(min_p)                       (min_p > 0: p_i >= min_p * p_max for
//                                                                p = softmax(scores / T)),
//   tau_top_p = the largest x with sum_{scores >= x} p >= top_p (top_p < 1: the nucleus, the smallest set
//                                                                of top tokens holding top_p of the mass).
// All three are measured on the full (unmasked) distribution and intersected; note that Hugging Face
// applies top-p to the distribution left after top-k, which can keep fewer tokens.
// g_i = -log(-log(u_i)) is standard Gumbel noise with u_i uniform in (0, 1) from a counter-based hash of
// (step.seed, p, i), p = step.position + step.n_tokens the absolute position of the token being drawn
// (so a draw does not depend on how the prompt was chunked or how much of it came from the KV cache),
// and the token is an exact draw from softmax(scores / T) renormalised
// over S (argmax of scores/T + g equals argmax of scores + T g for T > 0; the latter never overflows for
// tiny T), and the same (seed, position) always gives the same token. Scores must not be NaN.
//
// Masked tokens hold scores <= MASKED (kernels/logits_process.wgsl writes exactly MASKED); they are never
// in S. If every token is masked the greedy argmax is returned (the lowest index, token 0).
//
// The thresholds are found exactly in the order-preserving u32 image of the scores: tau_top_k and
// tau_top_p are the largest key K with count(key >= K) >= top_k or mass(key >= K) >= top_p * total, built
// bit by bit from the top (32 rounds, each a pass over the vocabulary and a workgroup sum). The masses are
// float32 sums, so a nucleus whose boundary lies within ~1e-6 of top_p may keep one token more or less
// than a float64 reference.
//
// Outputs: token_out[0] = token (the `tokens` buffer the next step's embedding reads),
//          counts[token] += 1 (the penalty counts kernels/logits_process.wgsl reads), result[0] = token.
//
// Bindings: 0 scores f32[vocab], 1 token_out u32[>= 1], 2 counts u32[vocab], 3 result u32[44] (the record
//           of notebook_llm/engine/sampler.py; only word 0 is written here), 4 params (SamplingParams:
//           vocab, top_k, top_p, min_p are read), 5 step (position, seed, temperature), 6 partials
//           (sample_partials.wgsl's PARTIALS candidates, dispatched just before on the same scores).
// Mapping: dispatch (1, 1, 1); 256 threads. The argmax and, without filters, the draw are reductions of
// sample_partials.wgsl's candidates (that kernel spreads the passes over the vocabulary across the GPU:
// one workgroup scanning a 128k vocabulary took ~40 µs of an H100 decode step); with filters, the 32-round
// threshold search and the filtered draw scan the vocabulary here (strided slices, reductions in
// workgroup memory: a tree for the argmax, two levels of 16 for the sums; lavapipe, vocab 49152: ~10-15 ms).
// Tested by tests/test_kernels_sample.py (argmax, draws against softmax by chi-square) and
// tests/test_sampler.py (top-k, top-p, min-p and temperature draws by chi-square, kept set exact).

//!include sampling_params
//!include workgroup_argmax
//!include gumbel
struct Step { n_tokens: u32, position: u32, seed: u32, temperature: f32 }

@group(0) @binding(0) var<storage, read> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> token_out: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> result: array<u32>;
@group(0) @binding(4) var<uniform> params: SamplingParams;
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<storage, read> partials: array<vec4<u32>>;

override PARTIALS: u32 = 1u;  // sample_partials.wgsl's candidates

const WORKGROUP: u32 = 256u;
const GROUPS: u32 = 16u;  // workgroup_sum: 16 groups of 16 partials
const GROUP_SIZE: u32 = WORKGROUP / GROUPS;
const MASKED: f32 = -3.0e38;

struct Kept { mass: f32, count: u32 }

var<workgroup> partial_mass: array<f32, WORKGROUP>;
var<workgroup> partial_count: array<u32, WORKGROUP>;
var<workgroup> group_mass: array<f32, GROUPS>;
var<workgroup> group_count: array<u32, GROUPS>;

// Order-preserving map of a float to u32 (a < b  <=>  key(a) < key(b)); -0 is read as +0.
fn order_key(x: f32) -> u32 {
    let bits = bitcast<u32>(select(x, 0.0, x == 0.0));
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

// Sum over the workgroup in two levels of 16 (16 threads add 16 partials each, thread 0 adds the 16),
// broadcast through workgroup memory so every thread holds the same total and takes the same branch
// in the threshold search. (All 256 threads adding the 16 group sums themselves saves a barrier but
// runs 1.5-2x slower on lavapipe.)
fn workgroup_sum(lid: u32, mine: Kept) -> Kept {
    partial_mass[lid] = mine.mass;
    partial_count[lid] = mine.count;
    workgroupBarrier();
    if (lid < GROUPS) {
        var group = Kept(0.0, 0u);
        for (var j = lid * GROUP_SIZE; j < (lid + 1u) * GROUP_SIZE; j++) {
            group.mass += partial_mass[j];
            group.count += partial_count[j];
        }
        group_mass[lid] = group.mass;
        group_count[lid] = group.count;
    }
    workgroupBarrier();
    if (lid == 0u) {
        var total = Kept(0.0, 0u);
        for (var j = 0u; j < GROUPS; j++) {
            total.mass += group_mass[j];
            total.count += group_count[j];
        }
        partial_mass[0] = total.mass;
        partial_count[0] = total.count;
    }
    workgroupBarrier();
    let total = Kept(partial_mass[0], partial_count[0]);
    workgroupBarrier();  // all have read before the partials are reused
    return total;
}

// Count (and, with_mass, the unnormalised probability mass exp((s - max) / T)) of the unmasked
// tokens whose key is >= key.
fn kept_from(lid: u32, key: u32, max_score: f32, inv_temperature: f32, with_mass: bool) -> Kept {
    var mine = Kept(0.0, 0u);
    for (var i = lid; i < params.vocab; i += WORKGROUP) {
        let s = scores[i];
        if (s > MASKED && order_key(s) >= key) {
            mine.count += 1u;
            if (with_mass) { mine.mass += exp((s - max_score) * inv_temperature); }
        }
    }
    return workgroup_sum(lid, mine);
}

// The smallest key kept by top-k and top-p together: the largest K for which either filter still
// keeps every token with key >= K (0 keeps everything).
fn top_k_top_p_key(lid: u32, max_score: f32, inv_temperature: f32) -> u32 {
    let use_top_k = params.top_k > 0u;
    let use_top_p = params.top_p < 1.0;
    var key = 0u;
    if (!use_top_k && !use_top_p) { return key; }
    var target_mass = 0.0;
    if (use_top_p) { target_mass = params.top_p * kept_from(lid, 0u, max_score, inv_temperature, true).mass; }
    for (var bit = 32u; bit > 0u; bit--) {
        let candidate = key | (1u << (bit - 1u));
        let kept = kept_from(lid, candidate, max_score, inv_temperature, use_top_p);
        if ((use_top_k && kept.count >= params.top_k) || (use_top_p && kept.mass >= target_mass)) {
            key = candidate;
        }
    }
    return key;
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(local_invocation_index) lid: u32) {
    let temperature = step.temperature;
    // The argmax and the unfiltered draw come from sample_partials.wgsl's PARTIALS candidates.
    var mine = Candidate(0.0, NONE);
    var mine_drawn = Candidate(0.0, NONE);
    for (var j = lid; j < PARTIALS; j += WORKGROUP) {
        let p = partials[j];
        let greedy = Candidate(bitcast<f32>(p.x), p.y);
        if (greedy.index != NONE && better(greedy.value, greedy.index, mine)) { mine = greedy; }
        let drawn = Candidate(bitcast<f32>(p.z), p.w);
        if (drawn.index != NONE && better(drawn.value, drawn.index, mine_drawn)) { mine_drawn = drawn; }
    }
    let top = workgroup_argmax(lid, mine);
    var token = top.index;

    if (temperature > 0.0) {
        let inv_temperature = 1.0 / temperature;
        var threshold = top_k_top_p_key(lid, top.value, inv_temperature);
        if (params.min_p > 0.0) {
            threshold = max(threshold, order_key(top.value + temperature * log(params.min_p)));
        }
        var drawn = mine_drawn;
        if (threshold > 0u) {  // filtered: the draw over the kept set, all here
            let stream = noise_stream(step.seed, step.position + step.n_tokens);
            drawn = Candidate(0.0, NONE);
            for (var i = lid; i < params.vocab; i += WORKGROUP) {
                let s = scores[i];
                if (s > MASKED && order_key(s) >= threshold) {
                    let value = s + temperature * gumbel(stream, i);
                    if (better(value, i, drawn)) { drawn = Candidate(value, i); }
                }
            }
        }
        let winner = workgroup_argmax(lid, drawn);
        if (winner.index != NONE) { token = winner.index; }  // NONE: every token masked
    }
    if (lid == 0u) {
        token_out[0] = token;
        counts[token] += 1u;
        result[0] = token;
    }
}
