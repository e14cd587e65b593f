"""A plain numpy float64 forward pass of the llama family: the reference the engine is held to.

Written from each architecture's paper and reference code, not from any of our GPU kernels, so the
tests cannot share a bug with the engine. It owns nothing but a per-file cache of dequantized
weights; it must not import notebook_llm.

- llama: Touvron et al. 2023, "LLaMA", and Meta's reference `model.py`; "linear" RoPE scaling as
  transformers' linear rope type (positions divided by the factor). Llama 3.1+ frequency
  scaling: Meta's `apply_scaling` (llama-models), which the GGUF converter stores as per-frequency
  divisors in `rope_freqs.weight`. Mistral (Jiang et al. 2023): the same graph with sliding-window
  attention, a query attending to itself and the window - 1 positions before it.
- qwen2: transformers' `modeling_qwen2`: biases on the q, k and v projections.
- qwen3: transformers' `modeling_qwen3`: RMSNorm over each q and k head (weights of head_dim) after
  the projection and before RoPE; head_dim need not be dim / n_head.
- phi3: transformers' `modeling_phi3` (Abdin et al. 2024, "Phi-3 technical report"): q, k, v
  in one `qkv_proj`, gate and up in one `gate_up_proj` (split in that order); LongRoPE: per-pair
  frequency divisors (`long_factor` beyond the original context, else `short_factor`) and cos/sin
  multiplied by sqrt(1 + ln(context / original) / ln(original)).
- gemma3: Gemma Team 2025, "Gemma 3 technical report", and transformers' `modeling_gemma3`:
  embeddings multiplied by sqrt(dim); RMSNorm multiplying by (1 + w) — the GGUF converter stores
  1 + w, so the file's norm weights are the multipliers; RMSNorm of each q and k head before RoPE;
  attention scores scaled by query_pre_attn_scalar^-1/2 (head_dim, but dim / n_head for the 27B);
  the attention and FFN outputs each RMS-normed (post_attention_norm, post_feedforward_layernorm)
  before they join the residual; a GELU (tanh approximation) gate; layer i global when
  (i + 1) % 6 == 0 (`sliding_window_pattern`), the others local: a sliding window and RoPE base
  10000 (`rope_local_base_freq`) instead of rope_theta, and no `rope_scaling` (4B-27B: linear
  factor 8 in the global layers only); tied embeddings, no soft-capping.
- qwen2, qwen3, phi3 and gemma3 rotate the halves (x[i], x[i + rope_dim/2]) of each head (transformers'
  `rotate_half`); GGUF llama files rotate adjacent pairs (2i, 2i+1), because llama.cpp's
  converter permutes the q/k rows of llama checkpoints (and only those).

Inference numerics it models, apart from the architecture: keys (after RoPE) and values are
rounded to the KV cache's type before attention reads them (`kv_dtype`: float16 by default, as this
engine and llama.cpp by default store them; float64 to compare with an F32-cache llama.cpp run);
everything else is float64.

Conventions of GGUF files that this relies on (checked in tests/test_references.py):
- A matrix with GGUF shape ne = [cols, rows] dequantizes (`gguf.quants.dequantize`) to a numpy
  array [rows, cols]; a linear layer is `y = x @ W.T`.
- Without output.weight, the LM head is token_embd.weight (tied embeddings).
- Phi-3 LongRoPE picks the long factors when the context the model runs with exceeds the original
  context (llama.cpp's rule, one choice per load); `context_window` says which context that is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import MODEL_TENSOR, TENSOR_NAMES, GGUFReader, Keys
from gguf.quants import dequantize

ARCHITECTURES = ("llama", "qwen2", "qwen3", "phi3", "gemma3")
HALF_SPLIT_ROPE = ("qwen2", "qwen3", "phi3", "gemma3")
# Gemma 3's published config values that its GGUF does not carry.
GEMMA3_SLIDING_WINDOW_PATTERN = 6
GEMMA3_ROPE_LOCAL_BASE = 10000.0
GEMMA3_27B_LAYERS = 62


def name_of(kind: MODEL_TENSOR, layer: int | None = None, suffix: str = "weight") -> str:
    return f"{TENSOR_NAMES[kind].format(bid=layer)}.{suffix}"


@dataclass(frozen=True)
class LlamaHyperparameters:
    n_layer: int
    dim: int
    ffn: int
    n_head: int
    n_kv_head: int
    head_dim: int
    rope_dim: int
    rope_base: float
    rms_eps: float
    vocab: int
    arch: str = "llama"
    context_length: int = 0
    rope_attn_factor: float = 1.0  # LongRoPE: cos and sin are multiplied by it
    rope_original_context: int | None = None  # LongRoPE: beyond this context the long factors apply
    sliding_window: int = 0  # 0 = full causal attention
    rope_linear_factor: float = 1.0  # "linear" RoPE scaling: positions divided by it (Gemma 3: global layers only)
    # Gemma 3 (see the module docstring); the defaults are the other architectures' behaviour.
    sliding_window_pattern: int = 0  # > 0: layer i is global when (i + 1) % pattern == 0; 0: all local
    rope_local_base: float | None = None  # RoPE base of the local layers (None: rope_base)
    query_pre_attn_scalar: float | None = None  # scores scaled by its -1/2 power (None: head_dim)
    embedding_multiplier: float = 1.0
    activation: str = "silu"  # the MLP gate's activation: "silu" or "gelu_tanh"

    @property
    def group(self) -> int:
        """Query heads per kv head: query head h reads kv head h // group."""
        return self.n_head // self.n_kv_head

    @property
    def half_split_rope(self) -> bool:
        return self.arch in HALF_SPLIT_ROPE

    def is_local(self, layer: int) -> bool:
        """Whether the sliding window and the local RoPE base apply to `layer`."""
        return self.sliding_window_pattern == 0 or (layer + 1) % self.sliding_window_pattern != 0


@dataclass(frozen=True)
class LlamaWeights:
    hparams: LlamaHyperparameters
    tensors: dict[str, np.ndarray]  # name -> float64, matrices [rows, cols]

    def layer(self, i: int, name: str, suffix: str = "weight") -> np.ndarray:
        return self.tensors[f"blk.{i}.{name}.{suffix}"]

    def has(self, i: int, name: str, suffix: str = "weight") -> bool:
        return f"blk.{i}.{name}.{suffix}" in self.tensors

    @property
    def lm_head(self) -> np.ndarray:
        """[vocab, dim]: output.weight, or the token embedding when the file ties them."""
        return self.tensors.get("output.weight", self.tensors["token_embd.weight"])


# (resolved path, size, mtime_ns) -> weights. A rewritten file gets a new key.
_WEIGHTS_CACHE: dict[tuple[str, int, int], LlamaWeights] = {}


def _field(reader: GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    if field is None:
        if default is None:
            raise KeyError(f"GGUF metadata {key!r} is missing")
        return default
    return field.contents()


def read_hyperparameters(reader: GGUFReader) -> LlamaHyperparameters:
    arch = _field(reader, Keys.General.ARCHITECTURE)
    if arch not in ARCHITECTURES:
        raise ValueError(f"general.architecture is {arch!r}; this reference runs {ARCHITECTURES}")

    def key(template: str, default=None):
        return _field(reader, template.format(arch=arch), default)

    scaling = key(Keys.Rope.SCALING_TYPE, "none")
    linear_factor = float(key(Keys.Rope.SCALING_FACTOR, 1.0)) if scaling == "linear" else 1.0
    if scaling not in ("none", "longrope", "linear") or (scaling != "linear" and float(key(Keys.Rope.SCALING_FACTOR, 1.0)) != 1.0):
        raise NotImplementedError(f"RoPE scaling {scaling!r} is set; the reference has linear scaling and frequency factors")
    dim = int(key(Keys.LLM.EMBEDDING_LENGTH))
    n_head = int(key(Keys.Attention.HEAD_COUNT))
    head_dim = int(key(Keys.Attention.KEY_LENGTH, dim // n_head))
    token_embd = next(t for t in reader.tensors if t.name == name_of(MODEL_TENSOR.TOKEN_EMBD))
    original = key(Keys.Rope.SCALING_ORIG_CTX_LEN, -1)
    n_layer = int(key(Keys.LLM.BLOCK_COUNT))
    gemma3 = {}
    if arch == "gemma3":
        gemma3 = dict(
            sliding_window_pattern=GEMMA3_SLIDING_WINDOW_PATTERN,
            rope_local_base=GEMMA3_ROPE_LOCAL_BASE,
            query_pre_attn_scalar=dim / n_head if n_layer == GEMMA3_27B_LAYERS else head_dim,
            embedding_multiplier=np.sqrt(dim),
            activation="gelu_tanh",
        )
    return LlamaHyperparameters(
        n_layer=n_layer,
        dim=dim,
        ffn=int(key(Keys.LLM.FEED_FORWARD_LENGTH)),
        n_head=n_head,
        n_kv_head=int(key(Keys.Attention.HEAD_COUNT_KV, n_head)),
        head_dim=head_dim,
        rope_dim=int(key(Keys.Rope.DIMENSION_COUNT, head_dim)),
        rope_base=float(key(Keys.Rope.FREQ_BASE, 10000.0)),
        rms_eps=float(key(Keys.Attention.LAYERNORM_RMS_EPS)),
        vocab=int(token_embd.shape[1]),
        arch=arch,
        context_length=int(key(Keys.LLM.CONTEXT_LENGTH)),
        rope_attn_factor=float(key(Keys.Rope.SCALING_ATTN_FACTOR, 1.0)),
        rope_original_context=None if original == -1 else int(original),
        sliding_window=int(key(Keys.Attention.SLIDING_WINDOW, 0)),
        rope_linear_factor=linear_factor,
        **gemma3,
    )


def dequantize_tensor(tensor) -> np.ndarray:
    """One GGUF tensor as float64, matrices [rows, cols] (GGUF's ne is [cols, rows])."""
    values = dequantize(tensor.data, tensor.tensor_type).astype(np.float64)
    expected = tuple(int(n) for n in reversed(tensor.shape))
    if values.shape != expected:
        raise ValueError(f"{tensor.name}: dequantized to {values.shape}, expected {expected} from ne={tensor.shape}")
    return values


def _cache_key(path: Path) -> tuple[str, int, int]:
    stat = os.stat(path)
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def load_weights(path_or_reader: str | os.PathLike | GGUFReader) -> LlamaWeights:
    """All tensors of a llama GGUF, dequantized to float64; cached per file."""
    if isinstance(path_or_reader, GGUFReader):
        reader = path_or_reader
        path = Path(reader.data.filename)
    else:
        reader = None
        path = Path(path_or_reader)
    key = _cache_key(path)
    if key not in _WEIGHTS_CACHE:
        reader = reader or GGUFReader(path)
        tensors = {t.name: dequantize_tensor(t) for t in reader.tensors}
        _WEIGHTS_CACHE[key] = LlamaWeights(read_hyperparameters(reader), tensors)
    return _WEIGHTS_CACHE[key]


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x²) + eps) · weight, over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def llama3_scaled_inverse_frequencies(
    inv_freq: np.ndarray, factor: float, low_freq_factor: float, high_freq_factor: float, original_context: int
) -> np.ndarray:
    """Meta's `apply_scaling` for Llama 3.1+: wavelengths shorter than original / high_freq_factor
    keep their frequency, longer than original / low_freq_factor are slowed by `factor`, and those
    between blend the two linearly in original / wavelength."""
    wavelen = 2 * np.pi / inv_freq
    smooth = (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    return np.where(wavelen < original_context / high_freq_factor, inv_freq,
                    np.where(wavelen > original_context / low_freq_factor, inv_freq / factor, blended))


def rope_angles(positions: np.ndarray, rope_dim: int, base: float, freq_factors: np.ndarray | None = None) -> np.ndarray:
    """[T, rope_dim/2]: position · base^(-2i/rope_dim), divided by freq_factors[i] when given (GGUF's
    rope_freqs / rope_factors_* tensors hold such divisors)."""
    i = np.arange(rope_dim // 2, dtype=np.float64)
    inv_freq = base ** (-2.0 * i / rope_dim)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors
    return positions.astype(np.float64)[:, None] * inv_freq[None, :]


def rope_adjacent_pairs(
    x: np.ndarray, positions: np.ndarray, rope_dim: int, base: float,
    freq_factors: np.ndarray | None = None, attn_factor: float = 1.0,
) -> np.ndarray:
    """Rotate pairs (x[2i], x[2i+1]) of each head by positions · base^(-2i/rope_dim).

    x: [T, heads, head_dim]; dimensions at or past rope_dim pass through unrotated.
    """
    angle = rope_angles(positions, rope_dim, base, freq_factors)  # [T, rope_dim/2]
    cos = attn_factor * np.cos(angle)[:, None, :]
    sin = attn_factor * np.sin(angle)[:, None, :]
    even = x[..., 0:rope_dim:2]
    odd = x[..., 1:rope_dim:2]
    out = x.copy()
    out[..., 0:rope_dim:2] = even * cos - odd * sin
    out[..., 1:rope_dim:2] = even * sin + odd * cos
    return out


def rope_half_split(
    x: np.ndarray, positions: np.ndarray, rope_dim: int, base: float,
    freq_factors: np.ndarray | None = None, attn_factor: float = 1.0,
) -> np.ndarray:
    """transformers' form: x·cos + rotate_half(x)·sin over the first rope_dim dims of each head,
    with cos/sin of the angles repeated for both halves and rotate_half(x) = [-x2, x1]."""
    angle = rope_angles(positions, rope_dim, base, freq_factors)
    emb = np.concatenate([angle, angle], axis=-1)[:, None, :]  # [T, 1, rope_dim]
    cos, sin = attn_factor * np.cos(emb), attn_factor * np.sin(emb)
    rot, rest = x[..., :rope_dim], x[..., rope_dim:]
    x1, x2 = rot[..., : rope_dim // 2], rot[..., rope_dim // 2 :]
    rotate_half = np.concatenate([-x2, x1], axis=-1)
    return np.concatenate([rot * cos + rotate_half * sin, rest], axis=-1)


def rope_frequency_factors(w: LlamaWeights, context_window: int) -> np.ndarray | None:
    """The file's per-pair frequency divisors: rope_freqs (Llama 3.x), or Phi-3's long / short
    LongRoPE factors by the context the model runs with; None for plain RoPE."""
    t, hp = w.tensors, w.hparams
    if name_of(MODEL_TENSOR.ROPE_FREQS) in t:
        return t[name_of(MODEL_TENSOR.ROPE_FREQS)]
    if name_of(MODEL_TENSOR.ROPE_FACTORS_LONG) in t:
        long = context_window > hp.rope_original_context
        return t[name_of(MODEL_TENSOR.ROPE_FACTORS_LONG if long else MODEL_TENSOR.ROPE_FACTORS_SHORT)]
    return None


KV_CACHE_DTYPE = np.float16  # what keys and values are rounded to before attention reads them (the default)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation (Hendrycks & Gimpel 2016), PyTorch's gelu(approximate="tanh")."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS = {"silu": silu, "gelu_tanh": gelu_tanh}


def qkv_projections(w: LlamaWeights, i: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q [T, n_head, head_dim], k and v [T, n_kv_head, head_dim]: separate projections (plus
    biases where the file has them, as Qwen 2), or Phi-3's fused qkv_proj split as [q; k; v]."""
    hp = w.hparams
    T = h.shape[0]
    q_width, kv_width = hp.n_head * hp.head_dim, hp.n_kv_head * hp.head_dim
    if w.has(i, "attn_qkv"):
        qkv = h @ w.layer(i, "attn_qkv").T
        q, k, v = qkv[:, :q_width], qkv[:, q_width : q_width + kv_width], qkv[:, q_width + kv_width :]
    else:
        q, k, v = (h @ w.layer(i, name).T for name in ("attn_q", "attn_k", "attn_v"))
        if w.has(i, "attn_q", "bias"):
            q, k, v = q + w.layer(i, "attn_q", "bias"), k + w.layer(i, "attn_k", "bias"), v + w.layer(i, "attn_v", "bias")
    return q.reshape(T, hp.n_head, hp.head_dim), k.reshape(T, hp.n_kv_head, hp.head_dim), v.reshape(T, hp.n_kv_head, hp.head_dim)


def attention(
    w: LlamaWeights, i: int, h: np.ndarray, positions: np.ndarray,
    freq_factors: np.ndarray | None = None, sliding_window: int = 0, kv_dtype=KV_CACHE_DTYPE,
) -> np.ndarray:
    """Causal grouped-query self-attention of layer i. h: [T, dim] (already normed) -> [T, dim].
    sliding_window applies to the layer only if it is local (every layer but Gemma 3's global ones)."""
    hp = w.hparams
    T = h.shape[0]
    q, k, v = qkv_projections(w, i, h)
    if w.has(i, "attn_q_norm"):  # Qwen 3, Gemma 3: each head normed over its head_dim values, before RoPE
        q = rms_norm(q, w.layer(i, "attn_q_norm"), hp.rms_eps)
        k = rms_norm(k, w.layer(i, "attn_k_norm"), hp.rms_eps)
    local = hp.is_local(i)
    base = hp.rope_local_base if local and hp.rope_local_base is not None else hp.rope_base
    # Linear scaling (transformers: position_ids / factor); Gemma 3's local rotary embedding has none.
    gemma_local = local and hp.rope_local_base is not None
    positions = positions if gemma_local else positions / hp.rope_linear_factor
    rope = rope_half_split if hp.half_split_rope else rope_adjacent_pairs
    q = rope(q, positions, hp.rope_dim, base, freq_factors, hp.rope_attn_factor)
    k = rope(k, positions, hp.rope_dim, base, freq_factors, hp.rope_attn_factor)
    k, v = (np.asarray(x, kv_dtype).astype(np.float64) for x in (k, v))  # as the KV cache holds them
    # Query head h uses kv head h // group: repeat each kv head `group` times, in order.
    k = np.repeat(k, hp.group, axis=1)
    v = np.repeat(v, hp.group, axis=1)
    scalar = hp.query_pre_attn_scalar or hp.head_dim
    scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(scalar)  # [heads, T, T]
    if not local:
        sliding_window = 0
    query, key = np.arange(T)[:, None], np.arange(T)[None, :]
    hidden = key > query  # the future
    if sliding_window:
        hidden |= query - key >= sliding_window  # Mistral: older than the window
    scores = np.where(hidden[None], -np.inf, scores)
    out = np.einsum("hts,shd->thd", softmax(scores, axis=-1), v).reshape(T, hp.n_head * hp.head_dim)
    return out @ w.layer(i, "attn_output").T


def feed_forward(w: LlamaWeights, i: int, h: np.ndarray) -> np.ndarray:
    """SwiGLU: down(silu(gate(h)) · up(h)), or GeGLU with gelu (Gemma). h: [T, dim] (already normed).
    Phi-3 stores gate and up as one gate_up_proj (GGUF ffn_up with 2·ffn rows) whose output splits
    into gate, then up."""
    if w.has(i, "ffn_gate"):
        gate, up = h @ w.layer(i, "ffn_gate").T, h @ w.layer(i, "ffn_up").T
    else:
        gate, up = np.split(h @ w.layer(i, "ffn_up").T, 2, axis=-1)
    return (ACTIVATIONS[w.hparams.activation](gate) * up) @ w.layer(i, "ffn_down").T


def post_norm(w: LlamaWeights, i: int, name: str, out: np.ndarray) -> np.ndarray:
    """Gemma's norm of a block's output before the residual add; the output itself elsewhere."""
    return rms_norm(out, w.layer(i, name), w.hparams.rms_eps) if w.has(i, name) else out


def numpy_llama_logits(
    path_or_reader: str | os.PathLike | GGUFReader, token_ids,
    context_window: int | None = None, sliding_window: int | None = None, kv_dtype=KV_CACHE_DTYPE,
) -> np.ndarray:
    """Logits [T, vocab] in float64 for token_ids at positions 0..T-1 (no KV cache, no BOS added).
    See `forward` for the options."""
    return forward(load_weights(path_or_reader), token_ids, context_window, sliding_window, kv_dtype)


def forward(w: LlamaWeights, token_ids, context_window: int | None = None, sliding_window: int | None = None,
            kv_dtype=KV_CACHE_DTYPE) -> np.ndarray:
    """The whole model over one sequence: [T] ids -> [T, vocab] logits.

    context_window: the context the model runs with (picks Phi-3's long or short RoPE factors);
    None: the file's context_length. sliding_window: None keeps the file's own; -1 or 0: none.
    kv_dtype: what keys and values are rounded to before attention (np.float64: not rounded).
    """
    hp = w.hparams
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"token_ids must be a non-empty 1-D sequence, got shape {ids.shape}")
    if ids.min() < 0 or ids.max() >= hp.vocab:
        raise ValueError(f"token ids must lie in [0, {hp.vocab}), got {ids.min()}..{ids.max()}")
    freq_factors = rope_frequency_factors(w, context_window or hp.context_length)
    window = hp.sliding_window if sliding_window is None else max(sliding_window, 0)
    positions = np.arange(ids.size)
    x = w.tensors["token_embd.weight"][ids] * hp.embedding_multiplier  # [T, dim]
    for i in range(hp.n_layer):
        h = rms_norm(x, w.layer(i, "attn_norm"), hp.rms_eps)
        x = x + post_norm(w, i, "post_attention_norm", attention(w, i, h, positions, freq_factors, window, kv_dtype))
        h = rms_norm(x, w.layer(i, "ffn_norm"), hp.rms_eps)
        x = x + post_norm(w, i, "post_ffw_norm", feed_forward(w, i, h))
    x = rms_norm(x, w.tensors["output_norm.weight"], hp.rms_eps)
    return x @ w.lm_head.T
