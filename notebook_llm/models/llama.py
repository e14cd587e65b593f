"""The llama-architecture graph: weights on the GPU and the dispatch lists of one step.

Owns: uploading a GGUF llama model's weights in the GPU layouts, the activation and KV-cache
buffers, and two recorded graphs — decode (one token, matrix-vector kernels) and prefill
(a chunk of tokens, matrix-matrix kernels), each ending with the logits of the chunk's last
token; sampling is appended by the engine. Everything here is built once at load; a step
only writes the 16-byte `Step` uniform and replays a dispatch list. Sampling, stopping and
the generation loop live in `notebook_llm/engine/`; nothing here knows about chat messages.

Activations are float32 row-major [n_tokens, features]; the KV cache is float32
[context, n_kv_head, head_dim] per layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import wgpu

from ..errors import ModelFormatError
from ..gpu.compute import Dispatch, GpuContext
from ..loader.gguf_file import GGUFModelFile, LlamaConfig
from ..loader.repack import PackedWeight, concat_rows
from .rope import rope_table

MAX_WORKGROUPS = 65535
MATMUL_TILE_ROWS = 64  # kernels/matmul.wgsl: one workgroup computes 64 rows × 32 tokens
MATMUL_TILE_TOKENS = 32
MATVEC_WORKGROUP = 256  # kernels/matvec.wgsl: rows per workgroup × threads per row
ELEMENTWISE_WORKGROUP = 256  # kernels/silu_mul.wgsl


@dataclass(frozen=True)
class GpuMatrix:
    """A packed weight matrix uploaded to the GPU."""

    layout: str
    rows: int
    cols: int
    codes: wgpu.GPUBuffer
    scales: wgpu.GPUBuffer


def _step_bytes(n_tokens: int, position: int, seed: int = 0, temperature: float = 0.0) -> bytes:
    words = np.array([n_tokens, position, seed & 0xFFFFFFFF, 0], np.uint32)
    words[3] = np.float32(temperature).view(np.uint32)
    return words.tobytes()


def _matvec_workgroups(rows: int, rows_per_workgroup: int) -> tuple[int, int, int]:
    groups = -(-rows // rows_per_workgroup)
    return (min(groups, MAX_WORKGROUPS), -(-groups // MAX_WORKGROUPS), 1)


class LlamaModel:
    """A llama model resident on the GPU, with its decode and prefill graphs."""

    def __init__(
        self,
        ctx: GpuContext,
        model_file: GGUFModelFile,
        context_window_size: int | None = None,
        prefill_chunk_size: int = 128,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.ctx = ctx
        self.config: LlamaConfig = model_file.config
        cfg = self.config
        if cfg.n_head % cfg.n_kv_head:
            raise ModelFormatError(f"n_head={cfg.n_head} is not a multiple of n_kv_head={cfg.n_kv_head}")
        self.context_window_size = min(context_window_size or cfg.context_length, cfg.context_length)
        self.prefill_chunk_size = prefill_chunk_size
        self.matvec_threads_per_row = 4 if ctx.gpu.adapter.is_cpu else 64
        self._upload_weights(model_file, progress)
        self._allocate_activations()
        self.decode_graph = self._build_graph(decode=True)
        self._prefill_graph = self._build_graph(decode=False)
        self._logits_graph: list[Dispatch] | None = None  # every position's logits: tests only

    # -- load --------------------------------------------------------------------------------
    def _matrix(self, packed: PackedWeight, label: str) -> GpuMatrix:
        c = self.ctx
        return GpuMatrix(packed.layout, packed.rows, packed.cols, c.buffer(packed.codes, label=label), c.buffer(packed.scales, label=label))

    def _upload_weights(self, f: GGUFModelFile, progress: Callable[[int, int], None] | None) -> None:
        cfg, c = self.config, self.ctx
        self.embedding = self._matrix(f.packed("token_embd.weight"), "token_embd")
        self.lm_head = self.embedding if cfg.tied_embeddings else self._matrix(f.packed("output.weight"), "output")
        self.output_norm = c.buffer(f.vector("output_norm.weight"))
        self.layers = []
        for i in range(cfg.n_layer):
            p = f"blk.{i}."
            qkv = concat_rows([f.packed(p + "attn_q.weight"), f.packed(p + "attn_k.weight"), f.packed(p + "attn_v.weight")])
            gate_up = concat_rows([f.packed(p + "ffn_gate.weight"), f.packed(p + "ffn_up.weight")])
            self.layers.append(
                {
                    "attn_norm": c.buffer(f.vector(p + "attn_norm.weight")),
                    "qkv": self._matrix(qkv, p + "qkv"),
                    "attn_output": self._matrix(f.packed(p + "attn_output.weight"), p + "attn_output"),
                    "ffn_norm": c.buffer(f.vector(p + "ffn_norm.weight")),
                    "gate_up": self._matrix(gate_up, p + "gate_up"),
                    "ffn_down": self._matrix(f.packed(p + "ffn_down.weight"), p + "ffn_down"),
                }
            )
            if progress is not None:
                progress(i + 1, cfg.n_layer)
        self.weight_bytes = sum(
            m.codes.size + m.scales.size
            for layer in self.layers
            for m in layer.values()
            if isinstance(m, GpuMatrix)
        ) + self.embedding.codes.size + self.embedding.scales.size

    def _allocate_activations(self) -> None:
        cfg, c, n = self.config, self.ctx, self.prefill_chunk_size
        f32 = 4
        self.qkv_dim = (cfg.n_head + 2 * cfg.n_kv_head) * cfg.head_dim
        self.tokens = c.empty(n * 4, label="tokens")  # token ids in; the sampler writes tokens[0]
        self.x = c.empty(n * cfg.dim * f32, label="residual")
        self.x_norm = c.empty(n * cfg.dim * f32, label="x_norm")
        self.qkv = c.empty(n * self.qkv_dim * f32, label="qkv")
        self.q = c.empty(n * cfg.n_head * cfg.head_dim * f32, label="q_rotated")
        self.attn = c.empty(n * cfg.n_head * cfg.head_dim * f32, label="attention_out")
        self.gate_up = c.empty(n * 2 * cfg.ffn_dim * f32, label="gate_up")
        self.ffn_hidden = c.empty(n * cfg.ffn_dim * f32, label="ffn_hidden")
        self.last_norm = c.empty(cfg.dim * f32, label="last_norm")
        self.logits = c.empty(cfg.vocab_size * f32, label="logits")
        self.step = c.uniform(_step_bytes(0, 0), label="step")
        kv_bytes = self.context_window_size * cfg.n_kv_head * cfg.head_dim * f32
        self.k_cache = [c.empty(kv_bytes, label=f"k_cache.{i}") for i in range(cfg.n_layer)]
        self.v_cache = [c.empty(kv_bytes, label=f"v_cache.{i}") for i in range(cfg.n_layer)]
        self.rope = c.buffer(rope_table(self.context_window_size, cfg.rope_dim, cfg.rope_freq_base), label="rope")
        u32 = lambda *v: np.array(v, np.uint32)  # noqa: E731
        self.norm_params = c.uniform(np.array([cfg.dim, np.float32(cfg.rms_eps).view(np.uint32), 0, 0], np.uint32))
        self.rope_params = c.uniform(u32(cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.rope_dim))
        scale = np.float32(1.0 / np.sqrt(cfg.head_dim)).view(np.uint32)
        self.attention_params = c.uniform(u32(cfg.n_head, cfg.n_kv_head, cfg.head_dim, scale))
        self.silu_params = c.uniform(u32(cfg.ffn_dim, 0, 0, 0))
        self._shape_params: dict[tuple[int, int], wgpu.GPUBuffer] = {}
        self.kv_cache_bytes = 2 * kv_bytes * cfg.n_layer

    def _shape(self, rows: int, cols: int) -> wgpu.GPUBuffer:
        key = (rows, cols)
        if key not in self._shape_params:
            self._shape_params[key] = self.ctx.uniform(np.array([rows, cols, 0, 0], np.uint32))
        return self._shape_params[key]

    # -- graphs ------------------------------------------------------------------------------
    def _linear(self, m: GpuMatrix, x: wgpu.GPUBuffer, y: wgpu.GPUBuffer, decode: bool, accumulate: bool = False) -> Dispatch:
        """y (+)= x · Wᵀ: matvec for one token, matmul for a chunk (workgroups set per chunk)."""
        if decode:
            rows_per_workgroup = MATVEC_WORKGROUP // self.matvec_threads_per_row
            return self.ctx.dispatch(
                "matvec", [m.codes, m.scales, x, y, self._shape(m.rows, m.cols)],
                _matvec_workgroups(m.rows, rows_per_workgroup), weights=m.layout, ACCUMULATE=accumulate,
                ROWS_PER_WORKGROUP=rows_per_workgroup, THREADS_PER_ROW=self.matvec_threads_per_row,
            )
        return self.ctx.dispatch(
            "matmul", [m.codes, m.scales, x, y, self._shape(m.rows, m.cols), self.step],
            (-(-m.rows // MATMUL_TILE_ROWS), 0, 1), weights=m.layout, ACCUMULATE=accumulate,
        )

    def _build_graph(self, decode: bool) -> list[Dispatch]:
        """Dispatches of one step. Prefill workgroup counts that depend on n_tokens hold 0 and
        are filled in by `_sized` for each chunk."""
        cfg, c, s = self.config, self.ctx, self.step
        e = self.embedding
        graph = [c.dispatch("embed", [e.codes, e.scales, self.tokens, self.x, self._shape(e.rows, e.cols), s], (0, 1, 1), weights=e.layout)]
        for i, layer in enumerate(self.layers):
            graph += [
                c.dispatch("rmsnorm", [self.x, layer["attn_norm"], self.x_norm, self.norm_params, s], (0, 1, 1)),
                self._linear(layer["qkv"], self.x_norm, self.qkv, decode),
                c.dispatch("rope_kv_write", [self.qkv, self.rope, self.q, self.k_cache[i], self.v_cache[i], self.rope_params, s], (0, 1, 1)),
                c.dispatch("attention", [self.q, self.k_cache[i], self.v_cache[i], self.attn, self.attention_params, s], (cfg.n_head, 0, 1)),
                self._linear(layer["attn_output"], self.attn, self.x, decode, accumulate=True),
                c.dispatch("rmsnorm", [self.x, layer["ffn_norm"], self.x_norm, self.norm_params, s], (0, 1, 1)),
                self._linear(layer["gate_up"], self.x_norm, self.gate_up, decode),
                c.dispatch("silu_mul", [self.gate_up, self.ffn_hidden, self.silu_params, s], (-(-cfg.ffn_dim // ELEMENTWISE_WORKGROUP), 0, 1)),
                self._linear(layer["ffn_down"], self.ffn_hidden, self.x, decode, accumulate=True),
            ]
        graph += [
            c.dispatch("rmsnorm", [self.x, self.output_norm, self.last_norm, self.norm_params, s], (1, 1, 1), LAST_ROW_ONLY=True),
            self._linear(self.lm_head, self.last_norm, self.logits, decode=True),
        ]
        return self._sized(graph, 1) if decode else graph

    @staticmethod
    def _sized(graph: list[Dispatch], n_tokens: int) -> list[Dispatch]:
        """Fill the token-dependent workgroup counts (held as 0) for a chunk of `n_tokens`."""
        out = []
        for d in graph:
            x, y, z = d.workgroups
            if x == 0:
                x = n_tokens
            elif y == 0:
                y = n_tokens if not d.label.startswith("matmul") else -(-n_tokens // MATMUL_TILE_TOKENS)
            out.append(replace(d, workgroups=(x, y, z)) if (x, y, z) != d.workgroups else d)
        return out

    def prefill_graph(self, n_tokens: int) -> list[Dispatch]:
        return self._sized(self._prefill_graph, n_tokens)

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
            head = self.lm_head
            self._logits_graph = [
                c.dispatch("rmsnorm", [self.x, self.output_norm, self.x_norm, self.norm_params, self.step], (0, 1, 1)),
                c.dispatch("matmul", [head.codes, head.scales, self.x_norm, self.all_logits, self._shape(head.rows, head.cols), self.step],
                           (-(-head.rows // MATMUL_TILE_ROWS), 0, 1), weights=head.layout),
            ]
        body = self._prefill_graph[:-2]  # everything up to the final norm and LM head
        out = []
        for start in range(0, len(token_ids), n):
            chunk = np.asarray(token_ids[start : start + n], np.uint32)
            c.queue.write_buffer(self.tokens, 0, chunk.tobytes())
            self.write_step(len(chunk), start)
            c.run(self._sized(body + self._logits_graph, len(chunk)))
            out.append(c.read(self.all_logits, np.float32, len(chunk) * cfg.vocab_size).reshape(len(chunk), cfg.vocab_size))
        return np.concatenate(out)
