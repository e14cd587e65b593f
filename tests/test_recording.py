"""engine/recording.py: decode steps recorded on a worker thread ahead of their submit."""

from __future__ import annotations

import threading

import pytest

from notebook_llm.engine.generation import GenerationConfig, GenerationStats, TokenLoop
from notebook_llm.engine.recording import STEPS_AHEAD, StepRecorder
from notebook_llm.engine.sampler import SamplingParams
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.models.llama import LlamaModel

from .tiny_llama import write_tiny_llama


def test_steps_come_in_order_recorded_ahead_on_worker_threads():
    recorder = StepRecorder()
    recorded, threads = [], set()
    gate = threading.Event()

    def record(step):
        gate.wait(5)
        recorded.append(step)
        threads.add(threading.current_thread().name)
        return f"commands {step}"

    recording = recorder.recording(record, range(3, 9))
    gate.set()
    assert [recording.next() for _ in range(6)] == [f"commands {k}" for k in range(3, 9)]
    assert sorted(recorded) == list(range(3, 9))  # the workers may finish them out of order
    assert threads and threading.main_thread().name not in threads
    assert recording.seconds >= 0.0
    with pytest.raises(RuntimeError, match="no more steps"):
        recording.next()
    recorder.close()


def test_cancel_drops_steps_not_taken_and_errors_reach_the_taker():
    recorder = StepRecorder()
    recorded = []
    gate = threading.Event()

    def record(step):
        gate.wait(5)
        recorded.append(step)
        if step == 2:
            raise ValueError("bad step")
        return step

    recording = recorder.recording(record, range(100))
    recording.cancel()  # step 0 may already be running: it finishes; the rest never starts
    gate.set()
    failing = recorder.recording(record, range(1, 4))
    assert failing.next() == 1
    with pytest.raises(ValueError, match="bad step"):
        failing.next()
    assert failing.next() == 3
    assert set(recorded) <= {0, 1, 2, 3} and {1, 2, 3} <= set(recorded)
    assert STEPS_AHEAD >= 1
    recorder.close()


def test_a_generation_closed_early_leaves_the_loop_consistent(ctx, rng, tmp_path):
    """The consumer stops reading after two tokens: the steps recorded ahead are dropped, and the
    next generation (which reuses the cached prefix) gives what a fresh loop gives."""
    path = write_tiny_llama(tmp_path / "tiny.gguf", seed=int(rng.integers(2**31)))
    model = LlamaModel(ctx, GGUFModelFile(path), context_window_size=96, prefill_chunk_size=16)
    greedy = GenerationConfig(max_new_tokens=12, sampling=SamplingParams(temperature=0.0))
    prompt = rng.integers(0, model.config.vocab_size, size=9).tolist()
    loop = TokenLoop(model)
    stream = loop.generate(prompt, greedy, GenerationStats())
    first = [next(stream).token, next(stream).token]
    stream.close()
    again = [t.token for t in loop.generate(prompt + first, greedy, GenerationStats())]
    loop.reset()
    fresh = [t.token for t in loop.generate(prompt + first, greedy, GenerationStats())]
    assert again == fresh and len(fresh) == 12
    loop.recorder.close()


def test_no_steps_ahead_records_each_step_when_taken(monkeypatch):
    from notebook_llm.engine import recording as recording_module

    monkeypatch.setattr(recording_module, "STEPS_AHEAD", 0)
    recorder = StepRecorder()
    recorded = []
    recording = recorder.recording(lambda step: recorded.append(step) or step, range(4))
    assert recorded == []
    assert recording.next() == 0 and recording.next() == 1
    assert recorded == [0, 1]
    recorder.close()
