"""Test harness: greedy generation through the engine's own token loop, recording the logits each
token was sampled from (through the loop's logit-processor hook, which returns them unchanged)."""

from __future__ import annotations

import numpy as np

from notebook_llm.engine.generation import GenerationConfig, GenerationStats, TokenLoop
from notebook_llm.engine.sampler import SamplingParams
from notebook_llm.models.llama import LlamaModel


class LogitRecorder:
    def __init__(self):
        self.rows: list[np.ndarray] = []

    def process_logits(self, logits: np.ndarray) -> np.ndarray:
        self.rows.append(logits.copy())
        return logits

    def process_sampled_token(self, token: int) -> None:
        pass

    def reset_state(self) -> None:
        self.rows = []


def greedy_trace(model: LlamaModel, prompt_ids: list[int], n_new: int) -> tuple[list[int], np.ndarray]:
    """Greedy ids (no stop tokens) and the float32 logits [n_new, vocab] each was picked from,
    computed by the chunked prefill graph (first token) and the decode graph (the rest)."""
    loop = TokenLoop(model)
    loop.logit_processor = recorder = LogitRecorder()
    config = GenerationConfig(max_new_tokens=n_new, sampling=SamplingParams(temperature=0.0))
    ids = [s.token for s in loop.generate(list(prompt_ids), config, GenerationStats())]
    return ids, np.stack(recorder.rows)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
