// The sampling parameters uniform shared by logits_process, sample and token_logprobs; its byte
// layout is built by notebook_llm/engine/sampler.py (params_bytes).

struct SamplingParams {
    vocab: u32,
    top_k: u32,
    top_logprobs: u32,
    _reserved: u32,
    top_p: f32,
    min_p: f32,
    repetition_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
