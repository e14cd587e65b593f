"""The GGUF decoder architectures the graph in notebook_llm/models/llama.py runs, and how to read them.

Owns: reading `{arch}.*` metadata into an `ArchitectureConfig`, and knowing which tensors of a
file hold one layer's QKV projection (and bias), its gate·up projection, the per-head Q/K norms
and the RoPE frequency factors, named as llama.cpp's converter writes them (the `gguf` package's
TENSOR_NAMES and Keys). It hands out `PackedWeight`s and float32 arrays; it knows nothing of wgpu.

All five are RMSNorm decoders with grouped-query attention and a gated MLP:

| arch    | RoPE pairs           | what else differs                                               |
|---------|----------------------|-----------------------------------------------------------------|
| `llama` | adjacent (2i, 2i+1)  | Llama 3.x: `rope_freqs.weight` divides each frequency; Mistral: |
|         |                      | a sliding window (metadata or ChatOptions.sliding_window_size)  |
| `qwen2` | halves (i, i + d/2)  | q, k, v biases (`attn_{q,k,v}.bias`)                            |
| `qwen3` | halves               | RMSNorm per head on q and k before RoPE; head_dim = key_length  |
| `phi3`  | halves               | `attn_qkv` and `ffn_up` (= [gate; up]) stored fused; LongRoPE   |
|         |                      | factor tensors and an attention factor                          |
| `gemma3`| halves               | embeddings × sqrt(dim); GELU(tanh)-gated MLP; per-head q/k norm;|
|         |                      | post-attention and post-FFN norms added to the residual         |
|         |                      | ("sandwich"); 5 of every 6 layers local (sliding window, RoPE   |
|         |                      | base 10000), the 6th global (rope.freq_base, no window); query  |
|         |                      | scale 1/sqrt(query_pre_attn_scalar); tied embeddings            |

The pair order follows the files, not the papers: llama.cpp's converter permutes llama's q/k rows
so that adjacent elements pair up ("normal" rope), and leaves the other three in the Hugging Face
half-split order ("neox" rope). Features are read from the tensors present (a llama file with q/k/v
biases gets them too), so the table's last column is what the converters write, not a rule.

Gemma 3 as llama.cpp runs it (its GGUF holds no key for most of these): Gemma's RMSNorm multiplies
by (1 + w), and the converter stores 1 + w, so the norm weights are used as they are. Layer i is
local when i % 6 < 5 (llama.cpp's `set_swa_pattern(6)`; a `sliding_window_pattern` key, when a file
has one, overrides it), only if the file has attention.sliding_window. Local layers rotate with
base 10000 (`rope.freq_base_swa` if present) and are not "linear"-scaled (4B-27B scale the
global layers' positions by 1/8). The query scale is 1/sqrt(key_length), except for the
62-layer 27B model, whose query_pre_attn_scalar is dim / n_head. Gemma 3 has no logit
soft-capping; a file that asks for it (Gemma 2) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, MODEL_TENSOR, TENSOR_NAMES, Keys

from ..errors import ModelFormatError
from .repack import PackedWeight, stack_rows

# Architecture name → whether its RoPE pairs are halves ("neox") rather than adjacent elements.
ROPE_NEOX = {
    MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA]: False,  # Llama 2/3.x, Mistral, SmolLM2, ...
    MODEL_ARCH_NAMES[MODEL_ARCH.QWEN2]: True,  # Qwen 2 / 2.5
    MODEL_ARCH_NAMES[MODEL_ARCH.QWEN3]: True,
    MODEL_ARCH_NAMES[MODEL_ARCH.PHI3]: True,  # Phi-3 / 3.5 (and Phi-4-mini)
    MODEL_ARCH_NAMES[MODEL_ARCH.GEMMA3]: True,  # Gemma 3 (text)
}
GEMMA3 = MODEL_ARCH_NAMES[MODEL_ARCH.GEMMA3]
GEMMA3_LOCAL_PATTERN = 6  # layer i is local when i % 6 < 5 (llama.cpp's rule for gemma3)
GEMMA3_LOCAL_ROPE_BASE = 10000.0
GEMMA3_27B_LAYERS = 62
SUPPORTED_ARCHITECTURES = tuple(ROPE_NEOX)
_MISSING = object()


class ModelFile(Protocol):
    """What this module reads from a file (a `GGUFModelFile`)."""

    path: Any

    def metadata(self, key: str, default: Any = None) -> Any: ...
    def has_tensor(self, name: str) -> bool: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def packed(self, name: str) -> PackedWeight: ...
    def vector(self, name: str) -> np.ndarray: ...


def tensor_name(kind: MODEL_TENSOR, layer: int | None = None, suffix: str = "weight") -> str:
    """llama.cpp's name of a tensor, e.g. (ATTN_Q, 3, "bias") → 'blk.3.attn_q.bias'."""
    return f"{TENSOR_NAMES[kind].format(bid=layer)}.{suffix}"


@dataclass(frozen=True)
class ArchitectureConfig:
    """Shapes and constants of a model, read from `{arch}.*` and `tokenizer.ggml.*` keys and the tensor list."""

    architecture: str
    name: str
    n_layer: int
    dim: int  # embedding_length
    ffn_dim: int  # feed_forward_length
    n_head: int
    n_kv_head: int
    head_dim: int  # dim / n_head unless {arch}.attention.key_length says otherwise (Qwen 3)
    rope_dim: int  # leading dims of each head that RoPE rotates
    rope_freq_base: float
    rms_eps: float
    context_length: int
    vocab_size: int
    tied_embeddings: bool  # no output.weight: the LM head reuses token_embd.weight
    bos_token_id: int | None
    eos_token_id: int | None
    eot_token_id: int | None = None
    eom_token_id: int | None = None
    rope_neox: bool = False  # RoPE pairs (i, i + rope_dim/2) instead of (2i, 2i+1)
    rope_attn_factor: float = 1.0  # cos and sin are multiplied by it (Phi-3 LongRoPE)
    # "linear" RoPE scaling: positions divided by it; in Gemma 3 only in its global layers, as
    # llama.cpp and transformers do (the local layers' RoPE is unscaled).
    rope_linear_factor: float = 1.0
    rope_original_context_length: int | None = None  # LongRoPE: the short factors cover this much
    sliding_window: int = 0  # a query sees itself and the sliding_window - 1 keys before it; 0 = all
    qkv_bias: bool = False  # attn_{q,k,v}.bias (Qwen 2)
    qk_norm: bool = False  # attn_{q,k}_norm.weight: RMSNorm of each q and k head (Qwen 3, Gemma 3)
    # Which layers a sliding window applies to (the file's or ChatOptions'); () = every layer (Mistral).
    sliding_window_layers: tuple[bool, ...] = ()
    rope_freq_base_local: float | None = None  # RoPE base of the sliding-window layers (Gemma 3)
    embedding_scale: float = 1.0  # token embeddings are multiplied by it (Gemma: sqrt(dim))
    ffn_activation: str = "silu"  # gate activation: "silu" (SwiGLU) or "gelu_tanh" (Gemma's GeGLU)
    post_norms: bool = False  # post_attention_norm / post_ffw_norm on each block's output (Gemma)
    attention_scale: float | None = None  # q·k multiplier; None = 1/sqrt(head_dim)

    @property
    def q_dim(self) -> int:
        return self.n_head * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_head * self.head_dim

    @property
    def qkv_dim(self) -> int:
        return self.q_dim + 2 * self.kv_dim

    @property
    def query_scale(self) -> float:
        return self.attention_scale if self.attention_scale is not None else 1.0 / float(np.sqrt(self.head_dim))

    def is_local_layer(self, layer: int) -> bool:
        """Whether a sliding window (when one is set) and the local RoPE base apply to `layer`."""
        return not self.sliding_window_layers or self.sliding_window_layers[layer]


def read_config(f: ModelFile) -> ArchitectureConfig:
    """The file's `ArchitectureConfig`; ModelFormatError for an architecture or variant not implemented."""
    file_name = f.path.name
    arch = f.metadata(Keys.General.ARCHITECTURE)
    if arch is None:
        raise ModelFormatError(f"{file_name}: metadata key {Keys.General.ARCHITECTURE!r} is missing")
    if arch not in ROPE_NEOX:
        raise ModelFormatError(
            f"{file_name}: architecture {arch!r} is not supported; supported: {list(SUPPORTED_ARCHITECTURES)}")

    def key(template: str, default: Any = _MISSING) -> Any:
        name = template.format(arch=arch)
        value = f.metadata(name, default)
        if value is _MISSING:
            raise ModelFormatError(f"{file_name}: metadata key {name!r} is missing; a {arch} GGUF must have it")
        return value

    rope_linear_factor = _rope_linear_factor(f, arch, key)
    dim, n_head = int(key(Keys.LLM.EMBEDDING_LENGTH)), int(key(Keys.Attention.HEAD_COUNT))
    head_dim = key(Keys.Attention.KEY_LENGTH, None)
    if head_dim is None:
        if dim % n_head:
            raise ModelFormatError(f"{file_name}: embedding_length {dim} is not a multiple of head_count {n_head}")
        head_dim = dim // n_head
    head_dim = int(head_dim)
    value_length = key(Keys.Attention.VALUE_LENGTH, head_dim)
    if int(value_length) != head_dim:
        raise ModelFormatError(
            f"{file_name}: attention.value_length {value_length} differs from key_length {head_dim}; "
            "only equal key and value head sizes are supported")
    vocab_size = key(Keys.LLM.VOCAB_SIZE, None)
    if vocab_size is None:
        vocab_size = len(key(Keys.Tokenizer.LIST))
    original_context = key(Keys.Rope.SCALING_ORIG_CTX_LEN, None)
    n_layer = int(key(Keys.LLM.BLOCK_COUNT))
    sliding_window = int(key(Keys.Attention.SLIDING_WINDOW, 0) or 0)
    extra = _gemma3_fields(f, key, n_layer, dim, n_head, head_dim, sliding_window) if arch == GEMMA3 else {}
    return ArchitectureConfig(
        architecture=arch,
        name=str(f.metadata(Keys.General.NAME, f.path.stem)),
        n_layer=n_layer,
        dim=dim,
        ffn_dim=int(key(Keys.LLM.FEED_FORWARD_LENGTH)),
        n_head=n_head,
        n_kv_head=int(key(Keys.Attention.HEAD_COUNT_KV, n_head)),
        head_dim=head_dim,
        rope_dim=int(key(Keys.Rope.DIMENSION_COUNT, head_dim)),
        rope_freq_base=float(key(Keys.Rope.FREQ_BASE, 10000.0)),
        rms_eps=float(key(Keys.Attention.LAYERNORM_RMS_EPS)),
        context_length=int(key(Keys.LLM.CONTEXT_LENGTH)),
        vocab_size=int(vocab_size),
        tied_embeddings=not f.has_tensor(tensor_name(MODEL_TENSOR.OUTPUT)),
        bos_token_id=_token_id(f, Keys.Tokenizer.BOS_ID),
        eos_token_id=_token_id(f, Keys.Tokenizer.EOS_ID),
        eot_token_id=_token_id(f, Keys.Tokenizer.EOT_ID),
        eom_token_id=_token_id(f, Keys.Tokenizer.EOM_ID),
        rope_neox=ROPE_NEOX[arch],
        rope_attn_factor=float(key(Keys.Rope.SCALING_ATTN_FACTOR, 1.0)),
        rope_linear_factor=rope_linear_factor,
        rope_original_context_length=None if original_context is None else int(original_context),
        sliding_window=sliding_window,
        qkv_bias=f.has_tensor(tensor_name(MODEL_TENSOR.ATTN_Q, 0, "bias")),
        qk_norm=f.has_tensor(tensor_name(MODEL_TENSOR.ATTN_Q_NORM, 0)),
        **extra,
    )


def _gemma3_fields(f: ModelFile, key, n_layer: int, dim: int, n_head: int, head_dim: int,
                   sliding_window: int) -> dict[str, Any]:
    """The ArchitectureConfig fields in which Gemma 3 differs (see the module docstring)."""
    for softcap in (Keys.LLM.FINAL_LOGIT_SOFTCAPPING, Keys.LLM.ATTN_LOGIT_SOFTCAPPING):
        value = key(softcap, None)
        if value:
            raise ModelFormatError(f"{f.path.name}: {softcap.format(arch=GEMMA3)} = {value}: logit soft-capping "
                                   "(Gemma 2) is not supported; Gemma 3 has none")
    pattern = key(Keys.Attention.SLIDING_WINDOW_PATTERN, GEMMA3_LOCAL_PATTERN)
    if isinstance(pattern, list):  # one flag per layer, as some converters write it
        local = tuple(bool(flag) for flag in pattern)
        if len(local) != n_layer:
            raise ModelFormatError(f"{f.path.name}: sliding_window_pattern has {len(local)} flags for {n_layer} layers")
    else:
        local = tuple(int(pattern) == 0 or i % int(pattern) < int(pattern) - 1 for i in range(n_layer))
    for kind in (MODEL_TENSOR.ATTN_POST_NORM, MODEL_TENSOR.FFN_POST_NORM):
        if not f.has_tensor(tensor_name(kind, 0)):
            raise ModelFormatError(f"{f.path.name}: a gemma3 file must have {tensor_name(kind, 0)!r}")
    query_pre_attn_scalar = dim // n_head if n_layer == GEMMA3_27B_LAYERS else head_dim
    return dict(
        sliding_window_layers=local,
        rope_freq_base_local=float(key(Keys.Rope.FREQ_BASE_SWA, GEMMA3_LOCAL_ROPE_BASE)) if sliding_window else None,
        embedding_scale=float(np.float32(np.sqrt(np.float32(dim)))),  # sqrtf(dim), as llama.cpp scales
        ffn_activation="gelu_tanh",
        post_norms=True,
        attention_scale=1.0 / float(np.sqrt(query_pre_attn_scalar)),
    )


def _token_id(f: ModelFile, key: str) -> int | None:
    value = f.metadata(key)
    return None if value is None else int(value)


def _rope_linear_factor(f: ModelFile, arch: str, key) -> float:
    """The factor of "linear" RoPE scaling (positions divided by it; Gemma 3 4B-27B: 8), else 1.
    The other implemented scalings are carried by factor tensors (Llama 3.x, Phi-3 LongRoPE)."""
    scaling = key(Keys.Rope.SCALING_TYPE, "none")
    factor = float(key(Keys.Rope.SCALING_FACTOR, 1.0) or 1.0)
    if scaling == "linear" and factor > 0:
        return factor
    if scaling not in ("none", "longrope") or factor != 1.0:
        raise ModelFormatError(
            f"{f.path.name}: RoPE scaling {scaling!r} (factor {factor}) is not supported; supported: none, linear, "
            "Llama 3.x frequency factors (rope_freqs.weight), Phi-3 LongRoPE (rope_factors_long/short.weight)")
    return 1.0


# --- one layer's tensors ----------------------------------------------------------------------


def _checked_rows(f: ModelFile, blocks: list[PackedWeight], what: str, rows: int, cols: int) -> list[PackedWeight]:
    shape = (sum(b.rows for b in blocks), blocks[0].cols)
    if shape != (rows, cols):
        raise ModelFormatError(
            f"{f.path.name}: {what} is [{shape[0]} x {shape[1]}]; the config implies [{rows} x {cols}]")
    return blocks


def layer_qkv(f: ModelFile, cfg: ArchitectureConfig, layer: int) -> list[PackedWeight]:
    """[q_dim + 2 kv_dim, dim] as row blocks (one per change of layout, see repack.stack_rows): rows
    of q, then k, then v. Phi-3 stores them fused as attn_qkv in that order (its qkv_proj output
    splits into q, k, v); the others as attn_q, attn_k, attn_v."""
    fused = tensor_name(MODEL_TENSOR.ATTN_QKV, layer)
    if f.has_tensor(fused):
        blocks = [f.packed(fused)]
    else:
        blocks = stack_rows([f.packed(tensor_name(kind, layer))
                             for kind in (MODEL_TENSOR.ATTN_Q, MODEL_TENSOR.ATTN_K, MODEL_TENSOR.ATTN_V)])
    return _checked_rows(f, blocks, f"layer {layer}'s QKV projection", cfg.qkv_dim, cfg.dim)


def layer_qkv_bias(f: ModelFile, cfg: ArchitectureConfig, layer: int) -> np.ndarray | None:
    """[q_dim + 2 kv_dim] float32: attn_q.bias, attn_k.bias, attn_v.bias joined (Qwen 2), or None."""
    if not cfg.qkv_bias:
        return None
    parts = [f.vector(tensor_name(kind, layer, "bias"))
             for kind in (MODEL_TENSOR.ATTN_Q, MODEL_TENSOR.ATTN_K, MODEL_TENSOR.ATTN_V)]
    bias = np.concatenate(parts)
    if bias.size != cfg.qkv_dim:
        raise ModelFormatError(f"{f.path.name}: layer {layer}'s q/k/v biases have {bias.size} values, not {cfg.qkv_dim}")
    return bias


def layer_qk_norms(f: ModelFile, cfg: ArchitectureConfig, layer: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(q_norm, k_norm), each [head_dim] float32, shared by all heads (Qwen 3), or None."""
    if not cfg.qk_norm:
        return None
    norms = (f.vector(tensor_name(MODEL_TENSOR.ATTN_Q_NORM, layer)), f.vector(tensor_name(MODEL_TENSOR.ATTN_K_NORM, layer)))
    if any(n.size != cfg.head_dim for n in norms):
        raise ModelFormatError(f"{f.path.name}: layer {layer}'s q/k norms have {[n.size for n in norms]} values, "
                               f"not head_dim = {cfg.head_dim}")
    return norms


def layer_post_norms(f: ModelFile, cfg: ArchitectureConfig, layer: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(post_attention_norm, post_ffw_norm), each [dim] float32 (Gemma), or None."""
    if not cfg.post_norms:
        return None
    norms = tuple(f.vector(tensor_name(kind, layer)) for kind in (MODEL_TENSOR.ATTN_POST_NORM, MODEL_TENSOR.FFN_POST_NORM))
    if any(n.size != cfg.dim for n in norms):
        raise ModelFormatError(f"{f.path.name}: layer {layer}'s post norms have {[n.size for n in norms]} values, not dim = {cfg.dim}")
    return norms


def layer_gate_up(f: ModelFile, cfg: ArchitectureConfig, layer: int) -> list[PackedWeight]:
    """[2 ffn, dim] as row blocks: the gate rows, then the up rows. Phi-3 has no ffn_gate: its
    ffn_up holds both halves in that order (its MLP splits gate_up_proj's output into gate, up)."""
    up = f.packed(tensor_name(MODEL_TENSOR.FFN_UP, layer))
    gate_name = tensor_name(MODEL_TENSOR.FFN_GATE, layer)
    blocks = stack_rows([f.packed(gate_name), up]) if f.has_tensor(gate_name) else [up]
    return _checked_rows(f, blocks, f"layer {layer}'s gate·up projection", 2 * cfg.ffn_dim, cfg.dim)


def rope_freq_factors(f: ModelFile, cfg: ArchitectureConfig, context_window_size: int) -> np.ndarray | None:
    """Divisors of the RoPE frequencies, [rope_dim / 2] float32, or None (plain RoPE).

    - Llama 3.x: `rope_freqs.weight`, the converter's form of the "llama3" scaling (factor, low and
      high frequency factors, original context): 1 for short wavelengths, `factor` for long ones,
      a smooth blend between.
    - Phi-3 LongRoPE: `rope_factors_long.weight` when the context window exceeds
      rope.scaling.original_context_length, else `rope_factors_short.weight`. This is llama.cpp's
      rule: one choice per load, by the context the model is loaded with, so every key in the
      cache is rotated the same way. (transformers switches per forward call on the current
      sequence length, so its cached keys can mix both rotations.)
    """
    rope_freqs = tensor_name(MODEL_TENSOR.ROPE_FREQS)
    if f.has_tensor(rope_freqs):
        return f.vector(rope_freqs)
    long_name, short_name = tensor_name(MODEL_TENSOR.ROPE_FACTORS_LONG), tensor_name(MODEL_TENSOR.ROPE_FACTORS_SHORT)
    if not (f.has_tensor(long_name) or f.has_tensor(short_name)):
        return None
    original = cfg.rope_original_context_length
    if original is None:
        raise ModelFormatError(
            f"{f.path.name}: LongRoPE factor tensors need {Keys.Rope.SCALING_ORIG_CTX_LEN.format(arch=cfg.architecture)!r}")
    return f.vector(long_name if context_window_size > original else short_name)
