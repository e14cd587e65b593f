"""Random-weight GGUF files of the llama family (llama incl. Llama 3.x scaling and Mistral's sliding
window, qwen2, qwen3, phi3, gemma3), small enough for a test to write and run in well under a second.

Owns the file layout of the tiny models (tensor names, metadata keys, tokenizer) as llama.cpp's
converter writes them for each architecture: names from the `gguf` package (MODEL_TENSORS of the
architecture, TENSOR_NAMES, the GGUFWriter's key helpers), never typed by hand. Used by the tests
to drive the engine's loader and by tests/llama_numpy.py's checks. Must not import notebook_llm.

The tokenizer mimics SmolLM2's: ids 0..2 are the control tokens <|endoftext|>, <|im_start|>,
<|im_end|>; then the 256 byte-level tokens in GPT-2's byte-to-unicode order; then a few BPE
merges; then unused padding up to `vocab`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import (
    MODEL_ARCH_NAMES,
    MODEL_TENSOR,
    MODEL_TENSORS,
    TENSOR_NAMES,
    GGMLQuantizationType,
    GGUFWriter,
    RopeScalingType,
    TokenType,
)
from gguf.quants import quantize

Q = GGMLQuantizationType

# Matrix roles and the type each is stored in unless the caller says otherwise. Every loader path
# (Q4_0, Q4_1, Q8_0, F16, F32) is hit by the default, for every architecture (phi3's fused attn_qkv
# and ffn_up included); a tied model has no `output`, so give token_embd F32 there.
DEFAULT_TYPES: dict[str, GGMLQuantizationType] = {
    "attn_qkv": Q.Q4_0,
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


# --- K-quants: the gguf package dequantizes them but has no quantizer, so tiny files quantize here ---

K_QUANTS = (Q.Q4_K, Q.Q5_K, Q.Q6_K)
SUPER_BLOCK = 256


def _f16(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16)


def quantize_q4_k(values: np.ndarray, bits: int = 4) -> np.ndarray:
    """[rows, cols] float → Q4_K bytes [rows, cols / 256 * 144]: per 32 weights a 6-bit scale and
    6-bit min under the super-block's f16 d and dmin; w ≈ d·sc·q − dmin·m with q in 0..15.
    A plain round-to-nearest fit (llama.cpp searches for better scales; any valid block will do).
    bits=5: Q5_K bytes [rows, cols / 256 * 176], q in 0..31, its fifth bits in 32 bytes after the scales."""
    rows, cols = values.shape
    top = 2**bits - 1
    x = values.astype(np.float32).reshape(rows, cols // SUPER_BLOCK, 8, 32)
    low = np.minimum(x.min(axis=-1), 0.0)
    scale = (x.max(axis=-1) - low) / top
    minimum = -low
    d = _f16(scale.max(axis=-1, keepdims=True) / 63.0)
    dmin = _f16(minimum.max(axis=-1, keepdims=True) / 63.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.nan_to_num(np.rint(scale / d.astype(np.float32))).clip(0, 63).astype(np.uint8)
        m = np.nan_to_num(np.rint(minimum / dmin.astype(np.float32))).clip(0, 63).astype(np.uint8)
        step = (d.astype(np.float32) * sc)[..., None]
        q = np.nan_to_num(np.rint((x + (dmin.astype(np.float32) * m)[..., None]) / step)).clip(0, top).astype(np.uint8)
    packed = np.empty((rows, cols // SUPER_BLOCK, 12), np.uint8)
    packed[..., 0:4] = (sc[..., 0:4] & 63) | ((sc[..., 4:8] >> 4) << 6)
    packed[..., 4:8] = (m[..., 0:4] & 63) | ((m[..., 4:8] >> 4) << 6)
    packed[..., 8:12] = (sc[..., 4:8] & 0x0F) | ((m[..., 4:8] & 0x0F) << 4)
    fifth_bits = []
    if bits == 5:  # bit s of byte l: the fifth bit of weight l of sub-block s
        fifth = (q >> 4) << np.arange(8, dtype=np.uint8)[:, None]  # [rows, n, 8, 32]
        fifth_bits = [np.bitwise_or.reduce(fifth, axis=-2).astype(np.uint8)]
        q = q & 0x0F
    q = q.reshape(rows, cols // SUPER_BLOCK, 4, 2, 32)  # chunk j of 64: low half, high half
    qs = (q[..., 0, :] | (q[..., 1, :] << 4)).reshape(rows, cols // SUPER_BLOCK, 128)
    blocks = np.concatenate([d.view(np.uint8).reshape(rows, -1, 2), dmin.view(np.uint8).reshape(rows, -1, 2), packed,
                             *fifth_bits, qs], axis=-1)
    return blocks.reshape(rows, -1)


def quantize_q6_k(values: np.ndarray) -> np.ndarray:
    """[rows, cols] float → Q6_K bytes [rows, cols / 256 * 210]: per 16 weights an int8 scale under
    the super-block's f16 d; w ≈ d·scale·(q − 32) with q in 0..63. Round to nearest."""
    rows, cols = values.shape
    x = values.astype(np.float32).reshape(rows, cols // SUPER_BLOCK, 16, 16)
    group_scale = np.abs(x).max(axis=-1) / 31.0
    d = _f16(group_scale.max(axis=-1, keepdims=True) / 127.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.nan_to_num(np.rint(group_scale / d.astype(np.float32))).clip(-128, 127).astype(np.int8)
        step = (d.astype(np.float32) * sc)[..., None]
        q = (np.nan_to_num(np.rint(x / step)).clip(-32, 31) + 32).astype(np.uint8)
    q = q.reshape(rows, cols // SUPER_BLOCK, 2, 4, 32)  # half h, quarter k, l
    low, high = q & 0x0F, q >> 4
    ql = np.concatenate([low[..., 0, :] | (low[..., 2, :] << 4), low[..., 1, :] | (low[..., 3, :] << 4)], axis=-1)
    qh = high[..., 0, :] | (high[..., 1, :] << 2) | (high[..., 2, :] << 4) | (high[..., 3, :] << 6)
    blocks = np.concatenate([ql.reshape(rows, -1, 128), qh.reshape(rows, -1, 64), sc.view(np.uint8),
                             d.view(np.uint8).reshape(rows, -1, 2)], axis=-1)
    return blocks.reshape(rows, -1)


def quantize_any(values: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """The bytes a file stores for `values` in `qtype`: gguf's quantizer, or the K-quant ones above."""
    if qtype == Q.Q4_K:
        return quantize_q4_k(np.atleast_2d(values))
    if qtype == Q.Q5_K:
        return quantize_q4_k(np.atleast_2d(values), bits=5)
    if qtype == Q.Q6_K:
        return quantize_q6_k(np.atleast_2d(values))
    return quantize(values, qtype)


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


ARCHITECTURES = {MODEL_ARCH_NAMES[arch]: arch for arch in MODEL_TENSORS}


def tensor_name(arch: str, kind: MODEL_TENSOR, layer: int | None = None, suffix: str = "weight") -> str:
    """llama.cpp's name of a tensor, refusing kinds the architecture does not have (as its converter does)."""
    if kind not in MODEL_TENSORS[ARCHITECTURES[arch]]:
        raise ValueError(f"{arch} has no {kind.name} tensor")
    return f"{TENSOR_NAMES[kind].format(bid=layer)}.{suffix}"


def tiny_llama_weights(
    seed: int, n_layer: int, dim: int, n_head: int, n_kv_head: int, ffn: int, vocab: int, tied: bool,
    arch: str = "llama", head_dim: int | None = None,
) -> dict[str, np.ndarray]:
    """float32 weights by GGUF tensor name; matrices [rows=out, cols=in].

    Linear layers have std 1/sqrt(fan_in) so activations stay O(1); norms are 1 ± 0.1. The LM head
    is scaled so logits have std ~4: well spread, so top-1/top-2 gaps are rarely tiny.
    Per architecture, as its converter lays the tensors out: qwen2 adds q/k/v biases (std 0.5, large
    enough that dropping them moves the logits a lot); qwen3 and gemma3 add per-head q/k norms
    (1 ± 0.3); gemma3 adds post_attention_norm and post_ffw_norm (1 ± 0.3; stored, as its converter
    stores every Gemma norm, as the 1 + w that Gemma's RMSNorm multiplies by);
    phi3 stores attn_qkv = [q; k; v] and ffn_up = [gate; up], with no attn_q/k/v or ffn_gate.
    """
    rng = np.random.default_rng(seed)
    head_dim = head_dim or dim // n_head
    T = MODEL_TENSOR
    name = lambda kind, layer=None, suffix="weight": tensor_name(arch, kind, layer, suffix)  # noqa: E731

    def linear(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    def norm(n: int, spread: float = 0.1) -> np.ndarray:
        return (1.0 + spread * rng.standard_normal(n)).astype(np.float32)

    # Tied: the embedding is the LM head, so it gets the head's scale (its rows are normed anyway
    # before the first layer reads them).
    embd_std = LOGIT_STD / np.sqrt(dim) if tied else 1.0
    weights = {name(T.TOKEN_EMBD): (rng.standard_normal((vocab, dim)) * embd_std).astype(np.float32)}
    # Draws in the order llama files always had, so a seed gives the same llama file as before.
    for i in range(n_layer):
        weights[name(T.ATTN_NORM, i)] = norm(dim)
        q, k, v = linear(n_head * head_dim, dim), linear(n_kv_head * head_dim, dim), linear(n_kv_head * head_dim, dim)
        if arch == "phi3":
            weights[name(T.ATTN_QKV, i)] = np.concatenate([q, k, v])
        else:
            weights |= {name(T.ATTN_Q, i): q, name(T.ATTN_K, i): k, name(T.ATTN_V, i): v}
        if arch == "qwen2":
            for kind, rows in ((T.ATTN_Q, q.shape[0]), (T.ATTN_K, k.shape[0]), (T.ATTN_V, v.shape[0])):
                weights[name(kind, i, "bias")] = (0.5 * rng.standard_normal(rows)).astype(np.float32)
        if arch in ("qwen3", "gemma3"):
            weights[name(T.ATTN_Q_NORM, i)] = norm(head_dim, spread=0.3)
            weights[name(T.ATTN_K_NORM, i)] = norm(head_dim, spread=0.3)
        weights[name(T.ATTN_OUT, i)] = linear(dim, n_head * head_dim)
        if arch == "gemma3":
            weights[name(T.ATTN_POST_NORM, i)] = norm(dim, spread=0.3)
        weights[name(T.FFN_PRE_NORM if arch == "gemma3" else T.FFN_NORM, i)] = norm(dim)  # both 'ffn_norm'
        gate, up = linear(ffn, dim), linear(ffn, dim)
        if arch == "phi3":
            weights[name(T.FFN_UP, i)] = np.concatenate([gate, up])
        else:
            weights |= {name(T.FFN_GATE, i): gate, name(T.FFN_UP, i): up}
        weights[name(T.FFN_DOWN, i)] = linear(dim, ffn)
        if arch == "gemma3":
            weights[name(T.FFN_POST_NORM, i)] = norm(dim, spread=0.3)
    weights[name(T.OUTPUT_NORM)] = norm(dim)
    if not tied:
        weights[name(T.OUTPUT)] = linear(vocab, dim, scale=LOGIT_STD)
    return weights


# Gemma 3 270M's Q4_K_M file stores its matrices this way (attn_v and ffn_down alternate with Q5_0
# and Q4_K in some layers); a tiny gemma3 gets the same types, so all K-quant loader paths run.
GEMMA3_TYPES: dict[str, GGMLQuantizationType] = {
    "attn_q": Q.Q5_0, "attn_k": Q.Q5_0, "attn_v": Q.Q8_0, "attn_output": Q.Q4_K,
    "ffn_gate": Q.Q5_0, "ffn_up": Q.Q5_0, "ffn_down": Q.Q6_K, "token_embd": Q.Q8_0,
}


def tensor_role(name: str) -> str | None:
    """'blk.3.attn_q.weight' -> 'attn_q'; norms, biases and RoPE factors (always F32) -> None."""
    if not name.endswith(".weight") or name.startswith("rope_"):
        return None
    role = name.removesuffix(".weight").split(".")[-1]
    return None if role.endswith("norm") else role


@dataclass(frozen=True)
class Llama3Rope:
    """Llama 3.1's `rope_scaling` (rope_type "llama3"); small original context so a tiny model
    with rope_dim 16 has frequencies in all three regimes (kept, blended, slowed by `factor`)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context: int = 64


def llama3_rope_freqs(rope_dim: int, base: float, scaling: Llama3Rope) -> np.ndarray:
    """The `rope_freqs.weight` the converter writes for a "llama3" rope_scaling: per frequency the
    divisor of its angle — 1 for wavelengths below original/high, `factor` above original/low,
    and 1 / ((1 - smooth) / factor + smooth) between, smooth = (original/wavelength - low) / (high - low)."""
    factors = []
    for i in range(rope_dim // 2):
        wavelength = 2 * math.pi * base ** (2 * i / rope_dim)
        if wavelength < scaling.original_context / scaling.high_freq_factor:
            factors.append(1.0)
        elif wavelength > scaling.original_context / scaling.low_freq_factor:
            factors.append(scaling.factor)
        else:
            smooth = (scaling.original_context / wavelength - scaling.low_freq_factor) / (
                scaling.high_freq_factor - scaling.low_freq_factor)
            factors.append(1.0 / ((1.0 - smooth) / scaling.factor + smooth))
    return np.array(factors, np.float32)


def longrope_attn_factor(context: int, original_context: int) -> float:
    """Phi-3 LongRoPE's magnitude scaling, as the converter writes rope.scaling.attn_factor."""
    scale = context / original_context
    return math.sqrt(1 + math.log(scale) / math.log(original_context)) if scale > 1.0 else 1.0


def write_tiny_llama(path: str | Path, seed: int, **options) -> Path:
    """A tiny model of the `llama` architecture: `write_tiny_model(path, seed, arch="llama", ...)`."""
    return write_tiny_model(path, seed, arch="llama", **options)


def write_tiny_model(
    path: str | Path,
    seed: int,
    arch: str = "llama",
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
    head_dim: int | None = None,
    rope_dim: int | None = None,
    llama3_rope: Llama3Rope | None = None,
    long_rope_original_context: int | None = None,
    sliding_window: int | None = None,
    rope_linear_factor: float | None = None,
) -> Path:
    """Write a random-weight GGUF of `arch` (llama, qwen2, qwen3, phi3, gemma3) to `path` and return the path.

    types: storage type per matrix role (keys of DEFAULT_TYPES), merged over the defaults.
    Quantized matrices need their column count (dim, or ffn for ffn_down) to be a multiple of the
    type's block size (32 for Q4_0/Q4_1/Q8_0). vocab counts 3 control + 256 byte tokens + merges +
    unused padding, so it is at least 259; the default 288 holds 29 merges.
    tied: no output.weight; the LM head is token_embd.
    head_dim: written as attention.key_length/value_length when given (Qwen 3: not dim / n_head).
    rope_dim: rope.dimension_count (default head_dim; less for partial rotary, as Phi-4-mini).
    llama3_rope: Llama 3.1 frequency scaling, written as the rope_freqs.weight tensor.
    long_rope_original_context: Phi-3 LongRoPE: random rope_factors_long (1..6) and _short (1..1.5)
    tensors, rope.scaling.original_context_length and the attention factor for `context`.
    sliding_window: attention.sliding_window (Mistral-style; a query sees itself and window - 1 before;
    for gemma3 only in its local layers).
    rope_linear_factor: rope.scaling.type "linear" with this factor (Gemma 3 4B-27B: 8).
    gemma3 files default to GEMMA3_TYPES (under `types`): K-quant columns (q_dim for attn_output,
    ffn for ffn_down) must then be multiples of 256.
    """
    if (head_dim is None and dim % n_head) or n_head % n_kv_head:
        raise ValueError(f"need n_head | dim and n_kv_head | n_head, got dim={dim} n_head={n_head} n_kv_head={n_kv_head}")
    unknown = set(types or {}) - set(DEFAULT_TYPES)
    if unknown:
        raise ValueError(f"unknown tensor roles {sorted(unknown)}; allowed: {sorted(DEFAULT_TYPES)}")
    types = {**DEFAULT_TYPES, **(GEMMA3_TYPES if arch == "gemma3" else {}), **(types or {})}
    rope_dim = rope_dim or head_dim or dim // n_head
    path = Path(path)
    rng = np.random.default_rng([seed, 1])  # the RoPE factors; the weights draw from `seed`

    writer = GGUFWriter(path, arch)
    writer.add_name(f"tiny-{arch}-seed{seed}")
    writer.add_block_count(n_layer)
    writer.add_context_length(context)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv_head)
    if head_dim is not None:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(rope_base)
    writer.add_rope_dimension_count(rope_dim)
    writer.add_layer_norm_rms_eps(rms_eps)
    writer.add_vocab_size(vocab)
    writer.add_quantization_version(2)
    if sliding_window is not None:
        writer.add_sliding_window(sliding_window)
    if rope_linear_factor is not None:
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope_linear_factor)

    extra: dict[str, np.ndarray] = {}
    if llama3_rope is not None:
        extra[tensor_name(arch, MODEL_TENSOR.ROPE_FREQS)] = llama3_rope_freqs(rope_dim, rope_base, llama3_rope)
    if long_rope_original_context is not None:
        writer.add_rope_scaling_orig_ctx_len(long_rope_original_context)
        writer.add_rope_scaling_attn_factors(longrope_attn_factor(context, long_rope_original_context))
        extra[tensor_name(arch, MODEL_TENSOR.ROPE_FACTORS_LONG)] = rng.uniform(1.0, 6.0, rope_dim // 2).astype(np.float32)
        extra[tensor_name(arch, MODEL_TENSOR.ROPE_FACTORS_SHORT)] = rng.uniform(1.0, 1.5, rope_dim // 2).astype(np.float32)

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

    weights = tiny_llama_weights(seed, n_layer, dim, n_head, n_kv_head, ffn, vocab, tied, arch=arch, head_dim=head_dim)
    for name, value in (weights | extra).items():
        role = tensor_role(name)
        qtype = Q.F32 if role is None else types[role]
        writer.add_tensor(name, quantize_any(value, qtype), raw_dtype=qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
