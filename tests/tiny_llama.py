"""Random-weight llama GGUF files, small enough for a test to write and run in well under a second.

Owns the file layout of the tiny model (tensor names, metadata keys, tokenizer); used by the tests
to drive the engine's loader and by tests/llama_numpy.py's checks. Must not import notebook_llm.

The tokenizer mimics SmolLM2's: ids 0..2 are the control tokens <|endoftext|>, <|im_start|>,
<|im_end|>; then the 256 byte-level tokens in GPT-2's byte-to-unicode order; then a few BPE
merges; then unused padding up to `vocab`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, TokenType
from gguf.quants import quantize

Q = GGMLQuantizationType

# Matrix roles and the type each is stored in unless the caller says otherwise. Every loader path
# (Q4_0, Q4_1, Q8_0, F16, F32) is hit by the default.
DEFAULT_TYPES: dict[str, GGMLQuantizationType] = {
    "attn_q": Q.Q4_0,
    "attn_k": Q.Q4_0,
    "attn_v": Q.Q4_0,
    "attn_output": Q.Q4_1,
    "ffn_gate": Q.Q8_0,
    "ffn_up": Q.Q8_0,
    "ffn_down": Q.F16,
    "token_embd": Q.Q8_0,
    "output": Q.F32,
}

CONTROL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
BOS_ID, EOS_ID = 1, 2  # <|im_start|>, <|im_end|>, as in SmolLM2

# Std of the logits (rms-normed hidden state times the LM head): wide enough that greedy tests
# rarely meet a near-tie between the top two tokens.
LOGIT_STD = 4.0

# Plain ChatML (no default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# BPE merges in rank order, each over tokens that exist by then ('Ġ' is the space byte).
MERGES = (
    ("Ġ", "t"), ("Ġ", "a"), ("i", "n"), ("h", "e"), ("r", "e"), ("o", "n"), ("e", "r"),
    ("Ġt", "he"), ("a", "t"), ("Ġ", "s"), ("Ġ", "o"), ("e", "n"), ("Ġ", "c"), ("e", "s"),
    ("Ġ", "w"), ("n", "d"), ("i", "t"), ("o", "r"), ("i", "s"), ("a", "l"), ("Ġ", "p"),
    ("in", "g"), ("Ġ", "f"), ("Ġ", "b"), ("a", "n"), ("o", "u"), ("Ġa", "nd"), ("Ġ", "m"),
    ("Ġo", "f"), ("Ġ", "h"), ("Ġ", "i"), ("e", "d"), ("Ġ", "Ġ"), ("l", "l"), ("Ġ", "d"),
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68
    bytes (controls, space, a few others) map to U+0100 onwards, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    # Printable bytes first, then the remapped ones: GPT-2's vocabulary order.
    return {b: mapping[b] for b in [*printable, *(b for b in range(256) if b not in printable)]}


def tiny_tokenizer(vocab: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) for a vocabulary of exactly `vocab` entries."""
    n_fixed = len(CONTROL_TOKENS) + 256
    if vocab < n_fixed:
        raise ValueError(f"vocab={vocab} is too small: the byte-level tokenizer needs at least {n_fixed} tokens")
    tokens = [*CONTROL_TOKENS, *bytes_to_unicode().values()]
    types = [TokenType.CONTROL] * len(CONTROL_TOKENS) + [TokenType.NORMAL] * 256
    merges = []
    for left, right in MERGES[: vocab - n_fixed]:
        merges.append(f"{left} {right}")
        tokens.append(left + right)
        types.append(TokenType.NORMAL)
    for n in range(vocab - len(tokens)):
        tokens.append(f"<|unused_{n}|>")
        types.append(TokenType.UNUSED)
    assert len(set(tokens)) == vocab, "duplicate token strings"
    return tokens, [int(t) for t in types], merges


def tiny_llama_weights(
    seed: int, n_layer: int, dim: int, n_head: int, n_kv_head: int, ffn: int, vocab: int, tied: bool
) -> dict[str, np.ndarray]:
    """float32 weights by GGUF tensor name; matrices [rows=out, cols=in].

    Linear layers have std 1/sqrt(fan_in) so activations stay O(1); norms are 1 ± 0.1. The LM head
    is scaled so logits have std ~4: well spread, so top-1/top-2 gaps are rarely tiny.
    """
    rng = np.random.default_rng(seed)
    head_dim = dim // n_head

    def linear(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    # Tied: the embedding is the LM head, so it gets the head's scale (its rows are normed anyway
    # before the first layer reads them).
    embd_std = LOGIT_STD / np.sqrt(dim) if tied else 1.0
    weights = {"token_embd.weight": (rng.standard_normal((vocab, dim)) * embd_std).astype(np.float32)}
    for i in range(n_layer):
        weights |= {
            f"blk.{i}.attn_norm.weight": norm(dim),
            f"blk.{i}.attn_q.weight": linear(n_head * head_dim, dim),
            f"blk.{i}.attn_k.weight": linear(n_kv_head * head_dim, dim),
            f"blk.{i}.attn_v.weight": linear(n_kv_head * head_dim, dim),
            f"blk.{i}.attn_output.weight": linear(dim, n_head * head_dim),
            f"blk.{i}.ffn_norm.weight": norm(dim),
            f"blk.{i}.ffn_gate.weight": linear(ffn, dim),
            f"blk.{i}.ffn_up.weight": linear(ffn, dim),
            f"blk.{i}.ffn_down.weight": linear(dim, ffn),
        }
    weights["output_norm.weight"] = norm(dim)
    if not tied:
        weights["output.weight"] = linear(vocab, dim, scale=LOGIT_STD)
    return weights


def tensor_role(name: str) -> str | None:
    """'blk.3.attn_q.weight' -> 'attn_q'; norms (always F32) -> None."""
    role = name.removesuffix(".weight").split(".")[-1]
    return None if role.endswith("norm") else role


def write_tiny_llama(
    path: str | Path,
    seed: int,
    n_layer: int = 2,
    dim: int = 64,
    n_head: int = 4,
    n_kv_head: int = 2,
    ffn: int = 96,
    vocab: int = 288,
    context: int = 128,
    types: Mapping[str, GGMLQuantizationType] | None = None,
    tied: bool = False,
    rope_base: float = 10000.0,
    rms_eps: float = 1e-5,
) -> Path:
    """Write a random-weight llama GGUF to `path` and return the path.

    types: storage type per matrix role (keys of DEFAULT_TYPES), merged over the defaults.
    Quantized matrices need their column count (dim, or ffn for ffn_down) to be a multiple of the
    type's block size (32 for Q4_0/Q4_1/Q8_0). vocab counts 3 control + 256 byte tokens + merges +
    unused padding, so it is at least 259; the default 288 holds 29 merges.
    tied: no output.weight; the LM head is token_embd.
    """
    if dim % n_head or n_head % n_kv_head:
        raise ValueError(f"need n_head | dim and n_kv_head | n_head, got dim={dim} n_head={n_head} n_kv_head={n_kv_head}")
    unknown = set(types or {}) - set(DEFAULT_TYPES)
    if unknown:
        raise ValueError(f"unknown tensor roles {sorted(unknown)}; allowed: {sorted(DEFAULT_TYPES)}")
    types = {**DEFAULT_TYPES, **(types or {})}
    head_dim = dim // n_head
    path = Path(path)

    writer = GGUFWriter(path, "llama")
    writer.add_name(f"tiny-llama-seed{seed}")
    writer.add_block_count(n_layer)
    writer.add_context_length(context)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv_head)
    writer.add_rope_freq_base(rope_base)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(rms_eps)
    writer.add_vocab_size(vocab)
    writer.add_quantization_version(2)

    tokens, token_types, merges = tiny_tokenizer(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(EOS_ID)
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    for name, value in tiny_llama_weights(seed, n_layer, dim, n_head, n_kv_head, ffn, vocab, tied).items():
        role = tensor_role(name)
        qtype = Q.F32 if role is None else types[role]
        writer.add_tensor(name, quantize(value, qtype), raw_dtype=qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
