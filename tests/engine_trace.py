"""Test harness: run the engine's own prefill and decode graphs step by step, reading back the
logits each step samples from. Slower than the real loop (a readback per token); tests only."""

from __future__ import annotations

import numpy as np

from notebook_llm.engine.generation import GenerationConfig, TokenLoop
from notebook_llm.models.llama import LlamaModel


def greedy_trace(model: LlamaModel, prompt_ids: list[int], n_new: int) -> tuple[list[int], np.ndarray]:
    """Greedy ids and the float32 logits [n_new, vocab] each one was picked from, computed by
    the chunked prefill graph (first token) and the decode graph (the rest)."""
    ctx, vocab = model.ctx, model.config.vocab_size
    loop = TokenLoop(model)
    loop.prefill(list(prompt_ids), GenerationConfig(max_new_tokens=n_new, temperature=0.0))
    ids, rows = [], []
    for i in range(n_new):
        rows.append(ctx.read(model.logits, np.float32, vocab))
        ids.append(int(ctx.read(model.tokens, np.uint32, 1)[0]))
        if i + 1 < n_new:
            model.write_step(1, len(prompt_ids) + i, 0, 0.0)
            ctx.run(model.decode_graph)
    return ids, np.stack(rows)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
