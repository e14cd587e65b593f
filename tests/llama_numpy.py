"""A plain numpy float64 forward pass of the llama architecture: the reference the engine is held to.

Written from the architecture (Touvron et al. 2023, "LLaMA"; Meta's reference `model.py`) and the
GGUF layout, not from any of our GPU kernels: the tests must not share a bug with the engine.
It owns nothing but a per-file cache of dequantized weights; it must not import notebook_llm.

Conventions of GGUF llama files that this relies on (checked in tests/test_references.py):
- A matrix with GGUF shape ne = [cols, rows] dequantizes (`gguf.quants.dequantize`) to a numpy
  array [rows, cols]; a linear layer is `y = x @ W.T`.
- llama.cpp's converter permutes the rows of attn_q / attn_k so that RoPE rotates ADJACENT pairs
  (2i, 2i+1) of each head ("normal" rope mode), by angle pos * base^(-2i / rope_dim).
- Without output.weight, the LM head is token_embd.weight (tied embeddings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

ARCH = "llama"


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

    @property
    def group(self) -> int:
        """Query heads per kv head: query head h reads kv head h // group."""
        return self.n_head // self.n_kv_head


@dataclass(frozen=True)
class LlamaWeights:
    hparams: LlamaHyperparameters
    tensors: dict[str, np.ndarray]  # name -> float64, matrices [rows, cols]

    def layer(self, i: int, name: str) -> np.ndarray:
        return self.tensors[f"blk.{i}.{name}.weight"]

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
    arch = _field(reader, "general.architecture")
    if arch != ARCH:
        raise ValueError(f"general.architecture is {arch!r}; this reference only runs {ARCH!r}")
    for unsupported in (f"{ARCH}.rope.scaling.type", f"{ARCH}.rope.scaling.factor"):
        if unsupported in reader.fields:
            raise NotImplementedError(f"{unsupported} is set; the reference has no RoPE scaling")
    if any(t.name == "rope_freqs.weight" for t in reader.tensors):
        raise NotImplementedError("rope_freqs.weight is present; the reference has no RoPE frequency factors")
    dim = int(_field(reader, f"{ARCH}.embedding_length"))
    n_head = int(_field(reader, f"{ARCH}.attention.head_count"))
    head_dim = int(_field(reader, f"{ARCH}.attention.key_length", dim // n_head))
    token_embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    return LlamaHyperparameters(
        n_layer=int(_field(reader, f"{ARCH}.block_count")),
        dim=dim,
        ffn=int(_field(reader, f"{ARCH}.feed_forward_length")),
        n_head=n_head,
        n_kv_head=int(_field(reader, f"{ARCH}.attention.head_count_kv", n_head)),
        head_dim=head_dim,
        rope_dim=int(_field(reader, f"{ARCH}.rope.dimension_count", head_dim)),
        rope_base=float(_field(reader, f"{ARCH}.rope.freq_base", 10000.0)),
        rms_eps=float(_field(reader, f"{ARCH}.attention.layer_norm_rms_epsilon")),
        vocab=int(token_embd.shape[1]),
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


def rope_adjacent_pairs(x: np.ndarray, positions: np.ndarray, rope_dim: int, base: float) -> np.ndarray:
    """Rotate pairs (x[2i], x[2i+1]) of each head by positions · base^(-2i/rope_dim).

    x: [T, heads, head_dim]; dimensions at or past rope_dim pass through unrotated.
    """
    i = np.arange(rope_dim // 2, dtype=np.float64)
    inv_freq = base ** (-2.0 * i / rope_dim)  # [rope_dim/2]
    angle = positions.astype(np.float64)[:, None] * inv_freq[None, :]  # [T, rope_dim/2]
    cos = np.cos(angle)[:, None, :]
    sin = np.sin(angle)[:, None, :]
    even = x[..., 0:rope_dim:2]
    odd = x[..., 1:rope_dim:2]
    out = x.copy()
    out[..., 0:rope_dim:2] = even * cos - odd * sin
    out[..., 1:rope_dim:2] = even * sin + odd * cos
    return out


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def attention(w: LlamaWeights, i: int, h: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Causal grouped-query self-attention of layer i. h: [T, dim] (already normed) -> [T, dim]."""
    hp = w.hparams
    T = h.shape[0]
    q = (h @ w.layer(i, "attn_q").T).reshape(T, hp.n_head, hp.head_dim)
    k = (h @ w.layer(i, "attn_k").T).reshape(T, hp.n_kv_head, hp.head_dim)
    v = (h @ w.layer(i, "attn_v").T).reshape(T, hp.n_kv_head, hp.head_dim)
    q = rope_adjacent_pairs(q, positions, hp.rope_dim, hp.rope_base)
    k = rope_adjacent_pairs(k, positions, hp.rope_dim, hp.rope_base)
    # Query head h uses kv head h // group: repeat each kv head `group` times, in order.
    k = np.repeat(k, hp.group, axis=1)
    v = np.repeat(v, hp.group, axis=1)
    scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(hp.head_dim)  # [heads, T, T]
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # key s > query t
    scores = np.where(future[None], -np.inf, scores)
    out = np.einsum("hts,shd->thd", softmax(scores, axis=-1), v).reshape(T, hp.n_head * hp.head_dim)
    return out @ w.layer(i, "attn_output").T


def feed_forward(w: LlamaWeights, i: int, h: np.ndarray) -> np.ndarray:
    """SwiGLU: down(silu(gate(h)) · up(h)). h: [T, dim] (already normed)."""
    gate = h @ w.layer(i, "ffn_gate").T
    up = h @ w.layer(i, "ffn_up").T
    return (silu(gate) * up) @ w.layer(i, "ffn_down").T


def numpy_llama_logits(path_or_reader: str | os.PathLike | GGUFReader, token_ids) -> np.ndarray:
    """Logits [T, vocab] in float64 for token_ids at positions 0..T-1 (no KV cache, no BOS added)."""
    return forward(load_weights(path_or_reader), token_ids)


def forward(w: LlamaWeights, token_ids) -> np.ndarray:
    """The whole model over one sequence: [T] ids -> [T, vocab] logits."""
    hp = w.hparams
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"token_ids must be a non-empty 1-D sequence, got shape {ids.shape}")
    if ids.min() < 0 or ids.max() >= hp.vocab:
        raise ValueError(f"token ids must lie in [0, {hp.vocab}), got {ids.min()}..{ids.max()}")
    positions = np.arange(ids.size)
    x = w.tensors["token_embd.weight"][ids]  # [T, dim]
    for i in range(hp.n_layer):
        x = x + attention(w, i, rms_norm(x, w.layer(i, "attn_norm"), hp.rms_eps), positions)
        x = x + feed_forward(w, i, rms_norm(x, w.layer(i, "ffn_norm"), hp.rms_eps))
    x = rms_norm(x, w.tensors["output_norm.weight"], hp.rms_eps)
    return x @ w.lm_head.T
