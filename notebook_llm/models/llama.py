"""The llama-family graph: weights on the GPU and the dispatch lists of one step.

Runs every architecture of notebook_llm/loader/architectures.py (llama incl. Llama 3.x and
Mistral, qwen2, qwen3, phi3, gemma3): they differ only in the QKV epilogue (bias, per-head norm,
RoPE pair order — override constants of kernels/rope_kv_write.wgsl), in the RoPE table (frequency
and attention factors, models/rope.py; Gemma 3's local layers have their own base), in the
attention's sliding window and query scale (per layer for Gemma 3), in how the file stores the
fused matrices (the loader's business), and for Gemma 3 in three more switches: the embedding
scale (embed.wgsl SCALE), the GELU gate (gelu_mul.wgsl instead of silu_mul.wgsl), and the
post-attention / post-FFN norms (the block's projection goes to `block_out`, and an rmsnorm with
ACCUMULATE adds its normed value to the residual).

Owns: uploading a GGUF model's weights in the GPU layouts, the activation and KV-cache
buffers, and two recorded graphs — decode (one token, matrix-vector kernels) and prefill
(a chunk of tokens, matrix-matrix kernels), each ending with the logits of the chunk's last
token; sampling is appended by the engine. Everything here is built once at load; a step
only writes the 16-byte `Step` uniform and replays a dispatch list. Sampling, stopping and
the generation loop live in `notebook_llm/engine/`; nothing here knows about chat messages.

Activations are float32 row-major [n_tokens, features]; the KV cache is half precision (or float32)
[context, n_kv_head, head_dim] per layer (kernels/kv_cache.wgsl), as llama.cpp keeps it. A matrix larger than one storage binding (Gemma 3's
262k-row embedding in int8 codes is 168 MB; lavapipe binds 128 MiB) is uploaded as row blocks,
each bound by its own dispatch (kernels take the block's row offset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import wgpu

from ..errors import ModelFormatError
from ..gpu.compute import Dispatch, GpuContext
from ..loader import architectures as arch
from ..loader.architectures import ArchitectureConfig
from ..loader.gguf_file import GGUFModelFile
from ..loader.repack import PackedWeight, split_rows
from ..registry import KV_CACHE_DEFAULT_DTYPE, KV_CACHE_DTYPES
from .rope import rope_table

MAX_WORKGROUPS = 65535
MATMUL_TILE_ROWS = 64  # kernels/matmul.wgsl: one workgroup computes 64 rows × 16·TOKENS_PER_THREAD tokens
# Models narrower than this take 32-token matmul tiles: 64-token tiles of their small matrices
# leave a large GPU mostly idle (H200, prefill: SmolLM2-135M shape, dim 576, 7k tok/s with 64, 27k
# with 32; Qwen2.5-0.5B shape, dim 896, 14.5k with 64, 6.4k with 32).
MATMUL_WIDE_TILES_MIN_DIM = 768
MATVEC_WORKGROUP = 256  # kernels/matvec.wgsl: rows per workgroup × threads per row
MAX_HEAD_DIM = 256  # kernels/attention.wgsl and rope_kv_write.wgsl hold one head in workgroup memory
ATTENTION_CHUNK = 256  # decode: keys per workgroup of kernels/attention_split.wgsl
# attention_split.wgsl: vec4 columns of a key a lane scores, which sets the lanes a key (8 at head_dim
# 128). Session 10, not yet timed on a GPU (benchmarks/device_one_call.sh A/Bs 64: one lane a key).
SPLIT_ATTENTION_LANE_COLUMNS = 4
TILED_ATTENTION_ROWS = 16  # kernels/attention_tiled.wgsl: (query, head) rows a workgroup
TILED_ATTENTION_MAX_HEAD_DIM = 128
TILED_ATTENTION_SMALL_HEAD_KEYS = 32  # keys a tile where head_dim <= 64 (16 or 32; 16 beyond 64)
TILED_ATTENTION_WORKGROUP_BYTES = 30_208  # its q, key and value tiles, scores and weights (WebGPU default: 16 KiB)
ELEMENTWISE_WORKGROUP = 256  # kernels/silu_mul.wgsl, gelu_mul.wgsl
# The FFN middle: its own kernel in prefill, the down projection's input prologue in decode
# (kernels/input_silu_mul.wgsl, input_gelu_mul.wgsl).
FFN_KERNELS = {"silu": "silu_mul", "gelu_tanh": "gelu_mul"}
# Workgroups a decode matvec should keep before its threads take several rows each (which reads
# the input once for all of them): enough to fill a large GPU; a CPU driver runs a few at a time.
MATVEC_MIN_WORKGROUPS_GPU = 512
MATVEC_MIN_WORKGROUPS_CPU = 8
# Decode matrices of 4-bit layouts with at least this many weights take kernels/matvec_q4_int8.wgsl
# on GPUs: the input rounded to int8 per 32 columns (as llama.cpp's CUDA backend does), four weights
# a dp4a. The float kernels spend ~5 instructions unpacking each weight and were compute-bound
# (a load-only variant ran 1.65x faster). H100, 200-dispatch passes, best configuration of each:
# Llama-3.1-8B shape FFN up [28672, 4096] 42.9 → 36.2 µs, down [4096, 14336] 32.9 → 25.8, QKV
# [6144, 4096] 13.4 → 11.9, Llama-3.2-1B down [2048, 8192] 18.4 → 12.0; at 6M weights and below
# (SmolLM2, 1B's QKV) matvec.wgsl is as fast or faster alone. Prefill takes the same matrices through
# kernels/matmul_q4_int8.wgsl, 2-2.5x the float matmul (H100, 512 tokens: B's FFN gate/up 1381 -> 541 µs,
# down 841 -> 370, QKV 272 -> 147). Same-machine A/B at 4M against 8M (B's QKV 6.3M and output
# 4.2M, D's FFN down 4.4M then int8 too): B prefill 11.7-13.1k -> 14.7-15.9k tok/s, decode 803-847
# -> 851-889; D decode within noise (benchmarks/results/2026-12-07-nvidia-h100-int8-threshold-ab.txt).
# SmolLM2's matrices (at most 1.8M) stay float, where 8-bit inputs move its logprobs most.
INT8_MATVEC_MIN_WEIGHTS = 4 * 2**20
INT8_MATVEC_LAYOUTS = ("q4g32", "q4g32f")
INT8_MATVEC_ROWS_PER_THREAD = 4
# Its workgroups stage the whole input at once up to this many 32-column groups (two a thread; the
# 8B shape's FFN down, 448 groups, took two rounds of staging and barriers at 256). Session 10,
# not yet timed on a GPU.
INT8_MATVEC_MAX_CHUNK_GROUPS = 512
# matvec_q4_int8.wgsl scales its sums by the rmsnorm prologue's 1 / rms instead of its input
# (DEFER_INPUT_SCALE): no pass over the input and no workgroup barrier before the weights are
# read. Not yet timed on a GPU (benchmarks/device_ab.sh int8 A/Bs it).
INT8_MATVEC_DEFER_INPUT_SCALE = True
# Each workgroup quantizes the whole input, so tall matrices take fewer lanes a row (more rows a
# workgroup) down to about this many workgroups: 8 lanes for [28672, 4096] (224 workgroups) beat
# 32 (896) by 10%; 16 for [16384, 2048].
INT8_MATVEC_TARGET_WORKGROUPS = 192
# Prefill of 4-bit matrices on GPUs: kernels/quantize_int8.wgsl rounds the chunk's input to int8
# per 32 columns once, then kernels/matmul_q4_int8.wgsl multiplies four weights by four inputs a
# dp4a, as llama.cpp's CUDA backend (MMQ) rounds prefill activations to 8 bits: matmul.wgsl was
# compute-bound in float FMAs and weight unpacking. Its tile by matrix shape (_int8_matmul_tile;
# benchmarks/matmul_sweep.py, H100, 512 tokens): 32 lanes a row and 8 tokens a lane (128 rows x 64
# tokens, 256 invocations) for tall matrices; matrices of fewer rows take 16 lanes a row (64 rows x
# 64 tokens, 128 invocations: twice the workgroups, so a few thousand rows still spread evenly over
# a big GPU: B's QKV 149 -> 116 us, output 92 -> 89); matrices wider than tall (long sums: FFN
# down) 32 lanes and 4 tokens a lane (128 rows x 32 tokens, twice the warps: B's down 520 -> 390
# us, against 427 with 16 lanes; the sweep's own figures for 32 x 8 disagree with the model's
# profile, see benchmarks/results/2026-12-07-nvidia-h100-s9-B-ab.txt).
INT8_MATMUL_NARROW_BELOW_ROWS = 8192
INT8_MATMUL_WIDE_TOKENS_PER_THREAD = 4
# Groups of 32 columns matmul_q4_int8.wgsl stages between one pair of barriers (1, 2 or 4).
# Not yet timed on a GPU (benchmarks/device_ab.sh prefill A/Bs it).
INT8_MATMUL_STAGE_GROUPS = 1
INT8_QUANTIZE_WORKGROUP = 64  # kernels/quantize_int8.wgsl: groups of 32 columns a workgroup
# Prefill's norm before an int8 matmul and its SwiGLU middle before an int8 down projection write the
# matmul's int8 input themselves (kernels/rmsnorm_int8.wgsl; quantize_int8.wgsl with SILU_MUL_INPUT): three dispatches a
# layer fewer and no float copy of those inputs (H100, session 9's B chunk: the 48 quantize_int8
# dispatches they replace took ~0.46 ms of 23.4, silu_mul 0.39). Not yet timed on a GPU.
INT8_PREFILL_FUSED_QUANTIZE = True
# The FFN middle is recomputed by every lane of matvec.wgsl that reads the input: one activation per
# weight read. That is free next to the dispatch it saves on small models and a measured loss on
# big ones (Llama-3.1-8B shape on an H200: +1.3 ms a step), so only matrices up to this many
# weights take it fused there; matvec_q4_int8.wgsl computes it once per input and workgroup
# (~128 workgroups), so its down projections always take it fused.
FUSED_FFN_MAX_WEIGHTS = 8 * 2**20
# Likewise the merge of split attention's chunks (kernels/input_attention_combine.wgsl) is redone
# by every workgroup of the output projection, reading all chunk partials each time. Same-machine
# A/B on an H100 (run.py, 64-token prompt, decode tok/s, three rounds each): SmolLM2's [576, 576]
# gains with it at depth 0 (median 732 vs 593) and ties at 1024 (623 vs 625); Qwen2.5-0.5B's
# [896, 896] loses at depth 1024 (424-515 vs 569-613); Llama-3.2-1B's [2048, 2048] loses at 1024
# too (608-611 vs 610-750). So only output projections up to this many weights take it.
# FUSED_COMBINE_INT8 would fuse it into output projections that decode through matvec_q4_int8.wgsl
# (which stages its input once per workgroup, not once per lane): H100, same call, decode tok/s
# at depth 0 / 1024: B 1,075 / 1,014 without, 1,063 / 962 with; C (8B) 317 / 295 without, 312 / 283
# with (two calls). So off.
FUSED_COMBINE_MAX_WEIGHTS = 2**19
FUSED_COMBINE_INT8 = False
# CPU drivers (lavapipe) with subgroups take kernels/matvec_broadcast.wgsl for decode: a lane a row,
# the input shared through subgroup broadcasts, 16 lanes a workgroup, 4 rows a lane. lavapipe on 2
# cores, SmolLM2's [3072, 576] FFN up: 1315 µs with matvec.wgsl as the model ran it (4 lanes a
# row, 1 row a lane), 657 with its best configuration, 316 with this (benchmarks/matvec_sweep.py).
# 8 rows a lane (the input loaded once for more rows) where that still leaves 16+ workgroups: [3072,
# 576] 270 -> 254 µs, the [49152, 576] Q8_0 LM head -7%; smaller matrices lose cores with it.
BROADCAST_MATVEC_WORKGROUP = 16
BROADCAST_MATVEC_TALL_ROWS = 2048
# Prefill on the same drivers: kernels/matmul_broadcast.wgsl, 64 rows × 16 tokens a workgroup, each
# weight dequantized once per 16 tokens. lavapipe, 2 cores, [3072, 576] × 128 tokens: 127 ms with
# matmul.wgsl, 15.2 with 8 tokens a workgroup, 13.4 with 16.
MATMUL_BROADCAST_TOKENS = 16
CPU_ROW_WORKGROUP = 16
# The CPU decode graph's QKV projection rotates q and k and writes the KV cache itself
# (kernels/matvec_broadcast_rope.wgsl) where RoPE pairs are adjacent and there is no QKV bias or q/k
# norm: lavapipe, SmolLM2, the 30 rope_kv_write dispatches cost ~1.4-1.6 ms of a ~31 ms step.


@dataclass(frozen=True)
class MatrixBlock:
    """Rows row_offset .. row_offset + rows of a matrix in one layout, in buffers of one storage binding each."""

    layout: str
    row_offset: int
    rows: int
    codes: wgpu.GPUBuffer
    scales: wgpu.GPUBuffer


@dataclass(frozen=True)
class GpuMatrix:
    """A packed weight matrix uploaded to the GPU: one block, or several when it exceeds a binding
    or when its parts differ in layout (a fused QKV of Q4_K q, k and Q6_K v)."""

    rows: int
    cols: int
    blocks: tuple[MatrixBlock, ...]

    @property
    def nbytes(self) -> int:
        return sum(b.codes.size + b.scales.size for b in self.blocks)


def _step_bytes(n_tokens: int, position: int, seed: int = 0, temperature: float = 0.0) -> bytes:
    words = np.array([n_tokens, position, seed & 0xFFFFFFFF, 0], np.uint32)
    words[3] = np.float32(temperature).view(np.uint32)
    return words.tobytes()


def split_attention_lanes(head_dim: int) -> dict[str, int]:
    """attention_split.wgsl's score layout: THREADS_PER_ROW lanes a key (a power of two), each
    summing COLS_PER_LANE of the head's vec4 columns, about SPLIT_ATTENTION_LANE_COLUMNS."""
    columns = head_dim // 4
    lanes = 1
    while lanes * 2 * SPLIT_ATTENTION_LANE_COLUMNS <= columns and lanes < 64:
        lanes *= 2
    return {"THREADS_PER_ROW": lanes, "COLS_PER_LANE": -(-columns // lanes)}


def tiled_attention_keys(head_dim: int) -> int:
    """attention_tiled.wgsl's keys a tile: 32 where their rows fit its 32 KiB of tiles, else 16."""
    return TILED_ATTENTION_SMALL_HEAD_KEYS if head_dim <= 64 else 16


def _int8_matmul_tile(rows: int, cols: int) -> tuple[int, int]:
    """matmul_q4_int8.wgsl's (ROW_LANES, TOKENS_PER_THREAD) for a [rows, cols] matrix."""
    if cols > rows:
        return 32, INT8_MATMUL_WIDE_TOKENS_PER_THREAD
    return (16, 8) if rows < INT8_MATMUL_NARROW_BELOW_ROWS else (32, 8)


def _matvec_workgroups(rows: int, rows_per_workgroup: int) -> tuple[int, int, int]:
    groups = -(-rows // rows_per_workgroup)
    return (min(groups, MAX_WORKGROUPS), -(-groups // MAX_WORKGROUPS), 1)


def _broadcast_matvec_rows_per_thread(rows: int) -> int:
    return 8 if rows >= BROADCAST_MATVEC_TALL_ROWS else 4


def _int8_matvec_threads_per_row(rows: int) -> int:
    """The fewest lanes a row (8, 16, 32) that still give INT8_MATVEC_TARGET_WORKGROUPS workgroups."""
    return next((t for t in (8, 16) if rows // (MATVEC_WORKGROUP // t * INT8_MATVEC_ROWS_PER_THREAD)
                 >= INT8_MATVEC_TARGET_WORKGROUPS), 32)


class LlamaModel:
    """A llama-family model resident on the GPU, with its decode and prefill graphs.

    sliding_window_size: None keeps the file's own window ({arch}.attention.sliding_window, none
    if absent); -1 turns it off; n >= 1 lets each query see itself and the n - 1 keys before it
    (the KV cache stays context_window_size long; older rows are just not read). It applies to the
    layers the architecture makes local (Gemma 3: five of six), else to every layer.
    max_binding_bytes: the largest buffer one binding may hold (default: the device's
    max-storage-buffer-binding-size); larger matrices are uploaded as row blocks. Tests lower it.
    fused_decode: the decode graph for GPUs — norms and the FFN middle fused into the matvecs,
    attention split over key chunks (fewer, wider dispatches), large 4-bit matrices through
    kernels/matvec_q4_int8.wgsl (see int8_matvec) — or, False, one kernel per op as in prefill.
    Default: True except on CPU adapters, which get the CPU graph: decode matvecs through
    kernels/matvec_broadcast.wgsl (a lane a row, where the adapter has subgroups) with the norms
    and the FFN middle fused into it as on GPUs, attention unsplit (kernels/attention_subgroup.wgsl).
    False: one kernel per op (lavapipe ran the GPU graph 1.7x slower than that).
    int8_matvec: in the GPU decode graph, 4-bit matrices of INT8_MATVEC_MIN_WEIGHTS and more
    multiply an input rounded to int8 per 32 values, as llama.cpp's backends do: faster, and the
    log-probabilities move by up to ~1 nat on SmolLM2 with every matrix so
    (tests/test_smollm2_llamacpp.py; llama.cpp's own 8-bit activations move them as much).
    False keeps float products everywhere.
    int8_matmul: with int8_matvec, prefill rounds the same matrices' inputs (kernels/matmul_q4_int8.wgsl).
    kv_cache_dtype: "float16" (default: llama.cpp's default too) or "float32", what keys and values
    are cached as (kernels/kv_cache.wgsl). float16 halves the cache's memory and what attention
    reads; on SmolLM2 it moves top-5 log-probabilities by up to ~0.02 nats from an F32-cache run
    (tests/test_smollm2_llamacpp.py).
    """

    def __init__(
        self,
        ctx: GpuContext,
        model_file: GGUFModelFile,
        context_window_size: int | None = None,
        prefill_chunk_size: int = 128,
        progress: Callable[[int, int], None] | None = None,
        sliding_window_size: int | None = None,
        max_binding_bytes: int | None = None,
        fused_decode: bool | None = None,
        int8_matvec: bool = True,
        int8_matmul: bool = True,
        kv_cache_dtype: str = KV_CACHE_DEFAULT_DTYPE,
    ):
        self.ctx = ctx
        if kv_cache_dtype not in KV_CACHE_DTYPES:
            raise ValueError(f"kv_cache_dtype={kv_cache_dtype!r}; allowed: {', '.join(KV_CACHE_DTYPES)}")
        self.kv_cache_dtype = kv_cache_dtype
        self.kv_format = {"KV_F32": kv_cache_dtype == "float32"}  # the cache kernels' constant
        self.config: ArchitectureConfig = model_file.config
        cfg = self.config
        if cfg.n_head % cfg.n_kv_head:
            raise ModelFormatError(f"n_head={cfg.n_head} is not a multiple of n_kv_head={cfg.n_kv_head}")
        if cfg.head_dim % 4 or cfg.head_dim > MAX_HEAD_DIM or not 0 < cfg.rope_dim <= cfg.head_dim:
            raise ModelFormatError(
                f"head_dim={cfg.head_dim}, rope_dim={cfg.rope_dim}: the kernels need head_dim a multiple of 4 "
                f"and at most {MAX_HEAD_DIM}, and 0 < rope_dim <= head_dim")
        self.context_window_size = min(context_window_size or cfg.context_length, cfg.context_length)
        self.sliding_window = cfg.sliding_window if sliding_window_size is None else max(sliding_window_size, 0)
        self.rope_freq_factors = arch.rope_freq_factors(model_file, cfg, self.context_window_size)
        self.prefill_chunk_size = prefill_chunk_size
        self.max_binding_bytes = max_binding_bytes or ctx.gpu.max_storage_binding
        # GPUs: 32 lanes a row where subgroup shuffles sum them (one warp on NVIDIA), else 64.
        self.matvec_threads_per_row = 4 if ctx.gpu.adapter.is_cpu else 32 if ctx.gpu.has_subgroups else 64
        self.fused_decode = not ctx.gpu.adapter.is_cpu if fused_decode is None else fused_decode
        self.int8_matvec = self.fused_decode and int8_matvec
        self.int8_matmul = self.fused_decode and int8_matmul
        self.broadcast_matvec = ctx.gpu.adapter.is_cpu and ctx.gpu.has_subgroups
        # The norms and the FFN middle go inside the matvecs in the GPU graph, and in the CPU
        # graph where matvec_broadcast.wgsl reads the input (its prologues cost a CPU little).
        self.fused_prologues = self.fused_decode or (fused_decode is None and self.broadcast_matvec)
        # Unsplit attention (prefill; decode on CPU adapters). CPU drivers with subgroups:
        # attention_subgroup.wgsl, a workgroup of one subgroup whose lanes own the head's columns
        # (lavapipe, SmolLM2 at depth 1024: ~89 of a 132 ms step with attention.wgsl), taking up to 4
        # (head, query) pairs as its registers allow (slots · head_dim <= 256): in decode the heads
        # that share a KV head, in prefill queries of one head. GPU prefill: attention_tiled.wgsl,
        # 16 (query, head) rows a workgroup sharing each key tile (heads of one KV head, up to 4).
        # Else attention.wgsl, a workgroup a (query, head). The GPU graph on a CPU driver (tests) takes
        # the GPU kernels.
        self.cpu_attention = ctx.gpu.adapter.is_cpu and not self.fused_decode and ctx.subgroup_size >= 4
        self.attention_subgroup_constants = {"WORKGROUP": ctx.subgroup_size, "HEAD_VEC4": cfg.head_dim // 4,
                                             "COLS_PER_LANE": -(-cfg.head_dim // (4 * ctx.subgroup_size))} if self.cpu_attention else {}
        group = cfg.n_head // cfg.n_kv_head
        fits = [n for n in (4, 3, 2, 1) if n * cfg.head_dim <= 256]
        self.attention_decode_heads = next(n for n in fits if group % n == 0)
        self.attention_queries = next(n for n in fits if n != 3)
        self.tiled_attention_heads = next(h for h in (4, 2, 1) if group % h == 0)
        # rmsnorm.wgsl and rope_kv_write.wgsl (a workgroup a row or head): CPU drivers run a workgroup
        # as SIMD batches of 8 lanes between barriers, so few lanes; lavapipe, SmolLM2, 512-token
        # prefill: the 61 norms 438 -> 111 ms, the 30 RoPE/KV writes 357 -> 217 ms with 16 lanes.
        self.row_kernel_workgroup = {"WORKGROUP": CPU_ROW_WORKGROUP} if ctx.gpu.adapter.is_cpu else {}
        self.matmul_tokens_per_thread = 4 if cfg.dim >= MATMUL_WIDE_TILES_MIN_DIM else 2
        self.matmul_tile_tokens = 16 * self.matmul_tokens_per_thread
        self._upload_weights(model_file, progress)
        self._allocate_activations()
        self.decode_graph = self._sized(self._body(decode=True) + self._head(decode=True), 1)
        # Prefill's workgroup counts that depend on n_tokens are held as 0 and filled in by `_sized`
        # for each chunk. The body is forward_logits' too: built once, as the decode graph is.
        self._prefill_body = self._body(decode=False)
        self._prefill_graph = self._prefill_body + self._head(decode=False)
        self._logits_graph: list[Dispatch] | None = None  # every position's logits: tests only

    # -- load --------------------------------------------------------------------------------
    def _matrix(self, parts: PackedWeight | list[PackedWeight], label: str) -> GpuMatrix:
        """Upload a matrix given as one PackedWeight or as row blocks in order (the loader's fused
        matrices), each further split to fit one storage binding."""
        c, parts = self.ctx, [parts] if isinstance(parts, PackedWeight) else parts
        blocks, start = [], 0
        for part in parts:
            for row_offset, block in split_rows(part, self.max_binding_bytes):
                blocks.append(MatrixBlock(block.layout, start + row_offset, block.rows,
                                          c.buffer(block.codes, label=label), c.buffer(block.scales, label=label)))
            start += part.rows
        return GpuMatrix(start, parts[0].cols, tuple(blocks))

    def _upload_weights(self, f: GGUFModelFile, progress: Callable[[int, int], None] | None) -> None:
        cfg, c = self.config, self.ctx
        self.embedding = self._matrix(f.packed("token_embd.weight"), "token_embd")
        self.lm_head = self.embedding if cfg.tied_embeddings else self._matrix(f.packed("output.weight"), "output")
        self.output_norm = c.buffer(f.vector("output_norm.weight"))
        unused = c.empty(4, label="unused")  # bound where a kernel's optional input is switched off
        self.layers = []
        for i in range(cfg.n_layer):
            p = f"blk.{i}."
            bias = arch.layer_qkv_bias(f, cfg, i)
            qk_norms = arch.layer_qk_norms(f, cfg, i)
            post_norms = arch.layer_post_norms(f, cfg, i)
            self.layers.append(
                {
                    "attn_norm": c.buffer(f.vector(p + "attn_norm.weight")),
                    "qkv": self._matrix(arch.layer_qkv(f, cfg, i), p + "qkv"),
                    "qkv_bias": unused if bias is None else c.buffer(bias, label=p + "qkv_bias"),
                    "q_norm": unused if qk_norms is None else c.buffer(qk_norms[0], label=p + "q_norm"),
                    "k_norm": unused if qk_norms is None else c.buffer(qk_norms[1], label=p + "k_norm"),
                    "attn_output": self._matrix(f.packed(p + "attn_output.weight"), p + "attn_output"),
                    "post_attention_norm": None if post_norms is None else c.buffer(post_norms[0], label=p + "post_attention_norm"),
                    "ffn_norm": c.buffer(f.vector(p + "ffn_norm.weight")),
                    "gate_up": self._matrix(arch.layer_gate_up(f, cfg, i), p + "gate_up"),
                    "ffn_down": self._matrix(f.packed(p + "ffn_down.weight"), p + "ffn_down"),
                    "post_ffw_norm": None if post_norms is None else c.buffer(post_norms[1], label=p + "post_ffw_norm"),
                }
            )
            if progress is not None:
                progress(i + 1, cfg.n_layer)
        self.weight_bytes = sum(
            m.nbytes for layer in self.layers for m in layer.values() if isinstance(m, GpuMatrix)
        ) + self.embedding.nbytes + (0 if cfg.tied_embeddings else self.lm_head.nbytes)

    def _allocate_activations(self) -> None:
        cfg, c, n = self.config, self.ctx, self.prefill_chunk_size
        f32 = 4
        self.qkv_dim = cfg.qkv_dim
        self.tokens = c.empty(n * 4, label="tokens")  # token ids in; the sampler writes tokens[0]
        self.x = c.empty(n * cfg.dim * f32, label="residual")
        self.x_norm = c.empty(n * cfg.dim * f32, label="x_norm")
        self.qkv = c.empty(n * self.qkv_dim * f32, label="qkv")
        self.q = c.empty(n * cfg.n_head * cfg.head_dim * f32, label="q_rotated")
        self.attn = c.empty(n * cfg.n_head * cfg.head_dim * f32, label="attention_out")
        # Decode attention's per-chunk partials (m, l, 0, 0, acc[head_dim]) for every head.
        self.attention_chunks = -(-self.context_window_size // ATTENTION_CHUNK)
        self.attention_partials = c.empty(cfg.n_head * self.attention_chunks * (4 + cfg.head_dim) * f32, label="attention_partials")
        # Post-norm architectures: a block's projection, normed and then added to the residual.
        self.block_out = c.empty(n * cfg.dim * f32, label="block_out") if cfg.post_norms else None
        self.gate_up = c.empty(n * 2 * cfg.ffn_dim * f32, label="gate_up")
        self.ffn_hidden = c.empty(n * cfg.ffn_dim * f32, label="ffn_hidden")
        # Prefill's int8 copy of a matmul input (kernels/quantize_int8.wgsl): 32 bytes of codes and
        # (d, sum) a group of 32 columns.
        widest = max(cfg.dim, cfg.n_head * cfg.head_dim, cfg.ffn_dim) // 32 if self.int8_matmul else 0
        self.x_int8_codes = c.empty(n * widest * 32, label="x_int8_codes")
        self.x_int8_scales = c.empty(n * widest * 2 * f32, label="x_int8_scales")
        self.last_norm = c.empty(cfg.dim * f32, label="last_norm")
        self.logits = c.empty(cfg.vocab_size * f32, label="logits")
        self.step = c.uniform(_step_bytes(0, 0), label="step")
        kv_bytes = self.context_window_size * cfg.n_kv_head * cfg.head_dim * KV_CACHE_DTYPES[self.kv_cache_dtype]
        self.k_cache = [c.empty(kv_bytes, label=f"k_cache.{i}") for i in range(cfg.n_layer)]
        self.v_cache = [c.empty(kv_bytes, label=f"v_cache.{i}") for i in range(cfg.n_layer)]
        def table(base: float, linear_factor: float) -> wgpu.GPUBuffer:
            return c.buffer(rope_table(self.context_window_size, cfg.rope_dim, base, self.rope_freq_factors,
                                       cfg.rope_attn_factor, linear_factor), label=f"rope_base_{base:g}")

        # Global layers, and every layer of an architecture without local ones (all "local" then).
        self.rope = table(cfg.rope_freq_base, cfg.rope_linear_factor)
        local_base = cfg.rope_freq_base_local  # Gemma 3: its own base, and no linear scaling
        self.rope_local = self.rope if local_base is None else table(local_base, 1.0)
        u32 = lambda *v: np.array(v, np.uint32)  # noqa: E731
        eps = np.float32(cfg.rms_eps).view(np.uint32)
        self.norm_params = c.uniform(u32(cfg.dim, eps, 0, 0))
        self.rope_params = c.uniform(u32(cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.rope_dim, eps, 0, 0, 0))
        scale = np.float32(cfg.query_scale).view(np.uint32)
        self.attention_params = c.uniform(u32(cfg.n_head, cfg.n_kv_head, cfg.head_dim, scale, 0, 0, 0, 0))
        self.attention_params_local = c.uniform(u32(cfg.n_head, cfg.n_kv_head, cfg.head_dim, scale, self.sliding_window, 0, 0, 0))
        self.ffn_params = c.uniform(u32(cfg.ffn_dim, 0, 0, 0))
        self.attention_chunk_params = c.uniform(u32(self.attention_chunks, 0, 0, 0))
        self._shape_params: dict[tuple[int, int], wgpu.GPUBuffer] = {}
        self.kv_cache_bytes = 2 * kv_bytes * cfg.n_layer

    def _shape(self, rows: int, cols: int, row_offset: int = 0, out_rows: int = 0) -> wgpu.GPUBuffer:
        """Params of matvec, matmul and embed: a block's rows and cols, its first row, the whole matrix's rows."""
        key = (rows, cols, row_offset, out_rows)
        if key not in self._shape_params:
            self._shape_params[key] = self.ctx.uniform(np.array(key, np.uint32))
        return self._shape_params[key]

    # -- graphs ------------------------------------------------------------------------------
    def _matvec_rows_per_thread(self, rows: int) -> int:
        groups = MATVEC_WORKGROUP // self.matvec_threads_per_row
        wanted = MATVEC_MIN_WORKGROUPS_CPU if self.ctx.gpu.adapter.is_cpu else MATVEC_MIN_WORKGROUPS_GPU
        return next((r for r in (4, 2) if rows >= wanted * groups * r), 1)

    def _takes_int8(self, m: GpuMatrix) -> bool:
        """Whether decode runs every row block of `m` through matvec_q4_int8.wgsl."""
        return all(self._int8_block(b, m.cols) for b in m.blocks)

    def _takes_broadcast(self, m: GpuMatrix) -> bool:
        """Whether `m` runs through matvec_broadcast.wgsl / matmul_broadcast.wgsl (CPU drivers; 32-column groups)."""
        return self.broadcast_matvec and m.cols % 32 == 0

    def _takes_int8_matmul(self, m: GpuMatrix) -> bool:
        """Whether prefill runs `m` through quantize_int8.wgsl and matmul_q4_int8.wgsl: the matrices
        decode runs through matvec_q4_int8.wgsl, so a token's logits do not depend on which graph
        computed it (8-bit inputs move SmolLM2's log-probabilities by tenths of a nat)."""
        return self.int8_matmul and all(self._int8_block(b, m.cols) for b in m.blocks)

    def _prefill_int8_input(self, m: GpuMatrix) -> bool:
        """Whether prefill's producer of `m`'s input (its norm, the FFN middle) writes it as the int8
        matmul's input directly (int8 layouts have whole 32-column groups, as those kernels need)."""
        return INT8_PREFILL_FUSED_QUANTIZE and self._takes_int8_matmul(m)

    def _int8_block(self, b: MatrixBlock, cols: int) -> bool:
        return self.int8_matvec and b.layout in INT8_MATVEC_LAYOUTS and b.rows * cols >= INT8_MATVEC_MIN_WEIGHTS

    def _linear(self, m: GpuMatrix, x: wgpu.GPUBuffer | None, y: wgpu.GPUBuffer, decode: bool, accumulate: bool = False,
                prologue: str | None = None, prologue_buffers: tuple = ()) -> list[Dispatch]:
        """y (+)= in · Wᵀ: matvec for one token, matmul for a chunk (workgroups set per chunk);
        one dispatch per row block of W. Decode only: `prologue` makes `in` rmsnorm(x) · norm
        ("rmsnorm", buffers norm and its params), the FFN middle of x = [gate; up] ("silu_mul",
        "gelu_mul") or the merge of x = split attention's partials ("attention_combine", buffers
        attention params, chunk count, step); else in = x. Prefill with x None: the int8 matmul's
        input is already in x_int8_codes / x_int8_scales (_prefill_int8_input)."""
        if not decode and self._takes_int8_matmul(m):
            return self._int8_matmul(m, x, y, accumulate)
        dispatches = []
        for b in m.blocks:
            shape = self._shape(b.rows, m.cols, b.row_offset, m.rows if len(m.blocks) > 1 else 0)
            if decode:
                constants = {"CHUNK": ATTENTION_CHUNK} if prologue == "attention_combine" else {}
                if self._int8_block(b, m.cols):
                    kernel, rows_per_thread = "matvec_q4_int8", INT8_MATVEC_ROWS_PER_THREAD
                    constants["THREADS_PER_ROW"] = _int8_matvec_threads_per_row(b.rows)
                    constants["DEFER_INPUT_SCALE"] = INT8_MATVEC_DEFER_INPUT_SCALE
                    constants["CHUNK_GROUPS"] = min(m.cols // 32, INT8_MATVEC_MAX_CHUNK_GROUPS)
                    rows_per_workgroup = MATVEC_WORKGROUP // constants["THREADS_PER_ROW"] * rows_per_thread
                elif self._takes_broadcast(m):
                    kernel, rows_per_thread = "matvec_broadcast", _broadcast_matvec_rows_per_thread(b.rows)
                    rows_per_workgroup = BROADCAST_MATVEC_WORKGROUP * rows_per_thread
                else:
                    kernel, rows_per_thread = "matvec", self._matvec_rows_per_thread(b.rows)
                    constants["THREADS_PER_ROW"] = self.matvec_threads_per_row
                    rows_per_workgroup = MATVEC_WORKGROUP // self.matvec_threads_per_row * rows_per_thread
                dispatches.append(self.ctx.dispatch(
                    kernel, [b.codes, b.scales, x, y, shape, *prologue_buffers],
                    _matvec_workgroups(b.rows, rows_per_workgroup), weights=b.layout, prologue=prologue,
                    ACCUMULATE=accumulate, ROWS_PER_THREAD=rows_per_thread, **constants,
                ))
            elif self._takes_broadcast(m):
                dispatches.append(self.ctx.dispatch(
                    "matmul_broadcast", [b.codes, b.scales, x, y, shape, self.step],
                    (-(-b.rows // MATMUL_TILE_ROWS), 0, 1), weights=b.layout, ACCUMULATE=accumulate,
                    TOKENS=MATMUL_BROADCAST_TOKENS, tokens_per_workgroup=MATMUL_BROADCAST_TOKENS,
                ))
            else:
                dispatches.append(self.ctx.dispatch(
                    "matmul", [b.codes, b.scales, x, y, shape, self.step],
                    (-(-b.rows // MATMUL_TILE_ROWS), 0, 1), weights=b.layout, ACCUMULATE=accumulate,
                    TOKENS_PER_THREAD=self.matmul_tokens_per_thread, tokens_per_workgroup=self.matmul_tile_tokens,
                ))
        return dispatches

    def _int8_matmul(self, m: GpuMatrix, x: wgpu.GPUBuffer | None, y: wgpu.GPUBuffer, accumulate: bool) -> list[Dispatch]:
        """Prefill's y (+)= x · Wᵀ for a 4-bit W: x rounded to int8 once (unless x is None: already
        rounded by its producer), then one dispatch a row block."""
        c = self.ctx
        quantized = [self.x_int8_codes, self.x_int8_scales]
        dispatches = [] if x is None else [self._quantize_int8(m, x)]
        for b in m.blocks:
            shape = self._shape(b.rows, m.cols, b.row_offset, m.rows if len(m.blocks) > 1 else 0)
            row_lanes, tokens_per_thread = _int8_matmul_tile(b.rows, m.cols)
            dispatches.append(c.dispatch(
                "matmul_q4_int8", [b.codes, b.scales, *quantized, y, shape, self.step],
                (-(-b.rows // (4 * row_lanes)), 0, 1), weights=b.layout, ACCUMULATE=accumulate,
                TOKENS_PER_THREAD=tokens_per_thread, ROW_LANES=row_lanes, STAGE_GROUPS=INT8_MATMUL_STAGE_GROUPS,
                tokens_per_workgroup=8 * tokens_per_thread))
        return dispatches

    def _quantize_int8(self, m: GpuMatrix, x: wgpu.GPUBuffer, silu_mul_input: bool = False) -> Dispatch:
        """The chunk's input of `m` rounded to int8 into x_int8_codes / x_int8_scales; with
        silu_mul_input, x holds [gate; up] rows and silu(gate) · up is rounded (the FFN middle)."""
        return self.ctx.dispatch("quantize_int8", [x, self.x_int8_codes, self.x_int8_scales, self._shape(m.rows, m.cols), self.step],
                                 (-(-m.cols // (32 * INT8_QUANTIZE_WORKGROUP)), 0, 1), SILU_MUL_INPUT=silu_mul_input)

    def _embed(self) -> list[Dispatch]:
        """Token rows of the embedding, times its scale; one dispatch per row block, in row order."""
        e, scale = self.embedding, self.config.embedding_scale
        constants = {} if scale == 1.0 else {"SCALE": scale}
        return [self.ctx.dispatch("embed", [b.codes, b.scales, self.tokens, self.x, self._shape(b.rows, e.cols, b.row_offset), self.step],
                                  (0, 1, 1), weights=b.layout, **constants) for b in e.blocks]

    def _attention(self, i: int, attention_params: wgpu.GPUBuffer, rope: wgpu.GPUBuffer, decode: bool) -> list[Dispatch]:
        """The QKV epilogue (bias, q/k norm, RoPE, KV-cache write) and attn = softmax(q kᵀ) v over
        layer i's cache. Prefill and CPU adapters: rope_kv_write, then attention in one pass. GPU
        decode: attention split over key chunks (one workgroup per head would leave most of a GPU
        idle at long contexts), the epilogue inside it, and the chunks merged."""
        c, cfg, layer = self.ctx, self.config, self.layers[i]
        epilogue = [layer["qkv_bias"], layer["q_norm"], layer["k_norm"], rope]
        switches = dict(HAS_BIAS=cfg.qkv_bias, QK_NORM=cfg.qk_norm, NEOX=cfg.rope_neox)
        caches = [self.k_cache[i], self.v_cache[i]]
        if not (decode and self.fused_decode):
            kernel, heads, queries, constants = self._unsplit_attention(decode)
            rope_kv_write = [] if self._rope_in_qkv(layer, decode) else [
                c.dispatch("rope_kv_write", [self.qkv, *epilogue, self.q, *caches, self.rope_params, self.step],
                           (0, cfg.n_head + cfg.n_kv_head, 1), **switches, **self.row_kernel_workgroup, **self.kv_format)]
            return [*rope_kv_write, c.dispatch(kernel, [self.q, *caches, self.attn, attention_params, self.step],
                                               (cfg.n_head // heads, 0, 1), tokens_per_workgroup=queries, **constants,
                                               **self.kv_format)]
        split = c.dispatch("attention_split", [self.qkv, *caches, self.attention_partials, attention_params, self.step,
                                               *epilogue, self.rope_params],
                           (cfg.n_head, self.attention_chunks, 1), CHUNK=ATTENTION_CHUNK,
                           **split_attention_lanes(cfg.head_dim), **switches, **self.kv_format)
        if self._combine_in_output_projection():
            return [split]
        return [split, c.dispatch("attention_combine", [self.attention_partials, self.attn, attention_params,
                                                        self.attention_chunk_params, self.step],
                                  (cfg.n_head, 1, 1), CHUNK=ATTENTION_CHUNK)]

    def _rope_in_qkv(self, layer: dict, decode: bool) -> bool:
        """Whether decode's QKV projection does the RoPE and KV-cache write (matvec_broadcast_rope.wgsl):
        the CPU graph (the GPU graph's split attention ropes its own heads)."""
        cfg, m = self.config, layer["qkv"]
        return (decode and not self.fused_decode and self.fused_prologues and self._takes_broadcast(m) and len(m.blocks) == 1
                and not (cfg.rope_neox or cfg.qkv_bias or cfg.qk_norm) and cfg.head_dim % 8 == 0 and cfg.rope_dim % 2 == 0)

    def _qkv_with_rope(self, i: int, rope: wgpu.GPUBuffer) -> list[Dispatch]:
        """Layer i's decode QKV projection writing rotated q to self.q and k, v to its KV cache."""
        layer = self.layers[i]
        m = layer["qkv"]
        b, rows_per_thread = m.blocks[0], _broadcast_matvec_rows_per_thread(m.rows)
        return [self.ctx.dispatch(
            "matvec_broadcast_rope", [b.codes, b.scales, self.x, self.q, self._shape(b.rows, m.cols), layer["attn_norm"],
                                      self.norm_params, self.k_cache[i], self.v_cache[i], rope, self.rope_params, self.step],
            _matvec_workgroups(b.rows, BROADCAST_MATVEC_WORKGROUP * rows_per_thread), weights=b.layout,
            prologue="rmsnorm", ROWS_PER_THREAD=rows_per_thread, **self.kv_format)]

    def _unsplit_attention(self, decode: bool) -> tuple[str, int, int, dict]:
        """The unsplit attention kernel of a phase, its (heads, queries) a workgroup and constants."""
        cfg = self.config
        if self.cpu_attention:
            heads, queries = (self.attention_decode_heads, 1) if decode else (1, self.attention_queries)
            return "attention_subgroup", heads, queries, {**self.attention_subgroup_constants, "HEADS": heads, "TOKENS": queries}
        if (not decode and cfg.head_dim <= TILED_ATTENTION_MAX_HEAD_DIM
                and self.ctx.gpu.max_workgroup_storage >= TILED_ATTENTION_WORKGROUP_BYTES):
            heads = self.tiled_attention_heads
            return "attention_tiled", heads, TILED_ATTENTION_ROWS // heads, {
                "HEAD_VEC4": cfg.head_dim // 4, "HEADS": heads, "TILE": tiled_attention_keys(cfg.head_dim)}
        return "attention", 1, 1, {}

    def _combine_in_output_projection(self) -> bool:
        """GPU decode of small models, and of models whose output projection takes the int8 matvec:
        the output projection merges the attention chunks itself."""
        if not self.fused_decode:
            return False
        o = self.layers[0]["attn_output"]
        return (self.config.dim * self.config.q_dim <= FUSED_COMBINE_MAX_WEIGHTS
                or FUSED_COMBINE_INT8 and all(self._int8_block(b, o.cols) for b in o.blocks))

    def _attention_output(self, layer: dict, attention_params: wgpu.GPUBuffer, decode: bool) -> list[Dispatch]:
        """residual (+)= attn · W_oᵀ, attn merged from the split chunks inside it where that is fused."""
        if decode and self._combine_in_output_projection():
            return self._residual_add(layer["attn_output"], self.attention_partials, layer["post_attention_norm"], decode,
                                      prologue="attention_combine",
                                      prologue_buffers=(attention_params, self.attention_chunk_params, self.step))
        return self._residual_add(layer["attn_output"], self.attn, layer["post_attention_norm"], decode)

    def _normed_linear(self, m: GpuMatrix, norm: wgpu.GPUBuffer, y: wgpu.GPUBuffer, decode: bool) -> list[Dispatch]:
        """y = rmsnorm(residual) · norm · Wᵀ: the norm fused into the matvec in decode, its own dispatch in prefill."""
        if decode and self.fused_prologues:
            return self._linear(m, self.x, y, decode, prologue="rmsnorm", prologue_buffers=(norm, self.norm_params))
        if not decode and self._prefill_int8_input(m):
            return [self.ctx.dispatch("rmsnorm_int8", [self.x, norm, self.x_int8_codes, self.x_int8_scales, self.norm_params,
                                                       self.step], (0, 1, 1), **self.row_kernel_workgroup),
                    *self._linear(m, None, y, decode)]
        return [self.ctx.dispatch("rmsnorm", [self.x, norm, self.x_norm, self.norm_params, self.step], (0, 1, 1), **self.row_kernel_workgroup),
                *self._linear(m, self.x_norm, y, decode)]

    def _ffn_down(self, layer: dict, decode: bool) -> list[Dispatch]:
        """residual (+)= act(gate) · up · W_downᵀ: the FFN middle fused into the matvec in decode."""
        cfg, middle = self.config, FFN_KERNELS[self.config.ffn_activation]
        small = cfg.dim * cfg.ffn_dim <= FUSED_FFN_MAX_WEIGHTS
        if decode and self.fused_prologues and (small or self.broadcast_matvec or self._takes_int8(layer["ffn_down"])):
            return self._residual_add(layer["ffn_down"], self.gate_up, layer["post_ffw_norm"], decode, prologue=middle)
        if not decode and middle == "silu_mul" and self._prefill_int8_input(layer["ffn_down"]):
            return [self._quantize_int8(layer["ffn_down"], self.gate_up, silu_mul_input=True),
                    *self._residual_add(layer["ffn_down"], None, layer["post_ffw_norm"], decode)]
        return [self.ctx.dispatch(middle, [self.gate_up, self.ffn_hidden, self.ffn_params, self.step],
                                  (-(-cfg.ffn_dim // ELEMENTWISE_WORKGROUP), 0, 1)),
                *self._residual_add(layer["ffn_down"], self.ffn_hidden, layer["post_ffw_norm"], decode)]

    def _residual_add(self, block_linear: GpuMatrix, x: wgpu.GPUBuffer | None, post_norm: wgpu.GPUBuffer | None,
                      decode: bool, prologue: str | None = None, prologue_buffers: tuple = ()) -> list[Dispatch]:
        """residual += x · Wᵀ (fused into the projection's epilogue), or with a post norm (Gemma):
        block_out = x · Wᵀ, then residual += rmsnorm(block_out) · post_norm."""
        if post_norm is None:
            return self._linear(block_linear, x, self.x, decode, accumulate=True, prologue=prologue,
                                prologue_buffers=prologue_buffers)
        return self._linear(block_linear, x, self.block_out, decode, prologue=prologue, prologue_buffers=prologue_buffers) + [
            self.ctx.dispatch("rmsnorm", [self.block_out, post_norm, self.x, self.norm_params, self.step], (0, 1, 1), ACCUMULATE=True, **self.row_kernel_workgroup)
        ]

    def _layer(self, i: int, decode: bool) -> list[Dispatch]:
        layer = self.layers[i]
        local = self.config.is_local_layer(i)
        rope, attention_params = (self.rope_local, self.attention_params_local) if local else (self.rope, self.attention_params)
        qkv = (self._qkv_with_rope(i, rope) if self._rope_in_qkv(layer, decode)
               else self._normed_linear(layer["qkv"], layer["attn_norm"], self.qkv, decode))
        return [
            *qkv,
            *self._attention(i, attention_params, rope, decode),
            *self._attention_output(layer, attention_params, decode),
            *self._normed_linear(layer["gate_up"], layer["ffn_norm"], self.gate_up, decode),
            *self._ffn_down(layer, decode),
        ]

    def _body(self, decode: bool) -> list[Dispatch]:
        """The embedding and every layer: the residual stream of the chunk, before the final norm."""
        graph = self._embed()
        for i in range(self.config.n_layer):
            graph += self._layer(i, decode)
        return graph

    def _head(self, decode: bool) -> list[Dispatch]:
        """The final norm of the chunk's last token and the LM head: its logits."""
        if decode and self.fused_prologues:  # one token: the norm fused into the LM head's matvec
            return self._linear(self.lm_head, self.x, self.logits, decode=True, prologue="rmsnorm", prologue_buffers=(self.output_norm, self.norm_params))
        return [
            self.ctx.dispatch("rmsnorm", [self.x, self.output_norm, self.last_norm, self.norm_params, self.step], (1, 1, 1), LAST_ROW_ONLY=True, **self.row_kernel_workgroup),
            *self._linear(self.lm_head, self.last_norm, self.logits, decode=True),
        ]

    def _sized(self, graph: list[Dispatch], n_tokens: int) -> list[Dispatch]:
        """Fill the token-dependent workgroup counts (held as 0) for a chunk of `n_tokens`."""
        out = []
        for d in graph:
            x, y, z = d.workgroups
            if x == 0:
                x = -(-n_tokens // d.tokens_per_workgroup)
            elif y == 0:
                y = -(-n_tokens // d.tokens_per_workgroup)
            out.append(replace(d, workgroups=(x, y, z)) if (x, y, z) != d.workgroups else d)
        return out

    def prefill_graph(self, n_tokens: int) -> list[Dispatch]:
        return self._sized(self._prefill_graph, n_tokens)

    def prefill_body_graph(self, n_tokens: int) -> list[Dispatch]:
        """The prefill graph without the final norm and LM head: a chunk that is not the prompt's last."""
        return self._sized(self._prefill_body, n_tokens)

    def write_step(self, n_tokens: int, position: int, seed: int = 0, temperature: float = 0.0) -> None:
        self.ctx.queue.write_buffer(self.step, 0, _step_bytes(n_tokens, position, seed, temperature))

    # -- test path: logits at every position -------------------------------------------------
    def forward_logits(self, token_ids: list[int]) -> np.ndarray:
        """Logits [T, vocab] for `token_ids` run from position 0 (reads back every chunk's
        logits: for tests and references, never on the generation path)."""
        cfg, c, n = self.config, self.ctx, self.prefill_chunk_size
        if len(token_ids) > self.context_window_size:
            raise ModelFormatError(f"{len(token_ids)} tokens exceed the context window {self.context_window_size}")
        if self._logits_graph is None:
            self.all_logits = c.empty(n * cfg.vocab_size * 4, label="all_logits")
            self._logits_graph = self._prefill_body + [
                c.dispatch("rmsnorm", [self.x, self.output_norm, self.x_norm, self.norm_params, self.step], (0, 1, 1), **self.row_kernel_workgroup),
                *self._linear(self.lm_head, self.x_norm, self.all_logits, decode=False),
            ]
        out = []
        for start in range(0, len(token_ids), n):
            chunk = np.asarray(token_ids[start : start + n], np.uint32)
            c.queue.write_buffer(self.tokens, 0, chunk.tobytes())
            self.write_step(len(chunk), start)
            c.run(self._sized(self._logits_graph, len(chunk)))
            out.append(c.read(self.all_logits, np.float32, len(chunk) * cfg.vocab_size).reshape(len(chunk), cfg.vocab_size))
        return np.concatenate(out)
