"""The engine's lifecycle on random tiny llamas (fast): several models at once, reload/unload,
progress reports, logit processors, the async API, interrupts, and the text-completion endpoint."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import openai.types as oai_types
import pytest

from notebook_llm import (
    ContextLengthError,
    AsyncEngine,
    ChatOptions,
    EngineNotLoadedError,
    InitProgressReport,
    InvalidRequestError,
    create_engine,
)

from .tiny_llama import write_tiny_llama

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lifecycle")
    return [write_tiny_llama(folder / f"tiny{i}.gguf", seed=100 + i) for i in range(2)]


@pytest.fixture(scope="module")
def engine2(tiny_paths):
    return create_engine(list(tiny_paths), chat_options=ChatOptions(context_window_size=128, prefill_chunk_size=16))


def test_several_models_are_addressed_by_the_request_model_field(engine2, tiny_paths):
    ids = [p.stem for p in tiny_paths]
    assert engine2.loaded_models == ids
    replies = [engine2.chat.completions.create(messages=HI, model=m, temperature=0, max_tokens=6, ignore_eos=True)
               for m in ids]
    assert [r.model for r in replies] == ids
    assert replies[0].choices[0].message.content != replies[1].choices[0].message.content
    with pytest.raises(InvalidRequestError, match="several models") as info:
        engine2.chat.completions.create(messages=HI, max_tokens=2)
    assert info.value.param == "model"
    assert engine2.get_message(ids[1]) == replies[1].choices[0].message.content


def test_reload_reports_progress_and_unload_leaves_a_clear_error(tiny_paths):
    reports: list[InitProgressReport] = []
    engine = create_engine(tiny_paths[0], init_progress_callback=reports.append)
    assert reports[0].progress == 0.0 and reports[-1].progress == 1.0
    assert all(a.progress <= b.progress for a, b in zip(reports, reports[1:]))
    assert "Finished" in reports[-1].text
    engine.unload()
    with pytest.raises(EngineNotLoadedError, match="reload"):
        engine.chat.completions.create(messages=HI, max_tokens=2)
    reports.clear()
    engine.reload(tiny_paths[1])
    assert engine.model_id == tiny_paths[1].stem and reports[-1].progress == 1.0
    assert engine.chat.completions.create(messages=HI, max_tokens=3, temperature=0).usage.completion_tokens >= 1


def test_reload_with_an_unknown_model_keeps_the_loaded_one(engine2):
    before = list(engine2.loaded_models)
    with pytest.raises(Exception, match="no-such"):
        engine2.reload("no-such-model")
    assert engine2.loaded_models == before


class ForceToken:
    """A logit processor that makes token `token` the only choice, and records what it saw."""

    def __init__(self, token: int):
        self.token, self.seen, self.resets = token, [], 0

    def process_logits(self, logits: np.ndarray) -> np.ndarray:
        out = np.full_like(logits, -1e9)
        out[self.token] = 0.0
        return out

    def process_sampled_token(self, token: int) -> None:
        self.seen.append(token)

    def reset_state(self) -> None:
        self.resets += 1


def test_logit_processor_edits_every_step_and_sees_the_sampled_tokens(tiny_paths):
    processor = ForceToken(token=77)
    model_id = tiny_paths[0].stem
    engine = create_engine(tiny_paths[0], logit_processor_registry={model_id: processor})
    reply = engine.chat.completions.create(messages=HI, temperature=1.0, max_tokens=5, ignore_eos=True)
    assert processor.seen == [77] * 5
    assert reply.choices[0].message.content == engine.tokenizer.decode([77] * 5)
    assert processor.resets >= 1
    engine.set_logit_processor(model_id, None)
    assert engine.chat.completions.create(messages=HI, temperature=0, max_tokens=5, ignore_eos=True).usage.completion_tokens == 5


def test_async_engine_streams_with_async_for(tiny_paths):
    async def main():
        engine = await AsyncEngine.create(tiny_paths[0])
        stream = await engine.chat.completions.create(messages=HI, temperature=0, max_tokens=6, ignore_eos=True, stream=True)
        pieces = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
        whole = await engine.chat.completions.create(messages=HI, temperature=0, max_tokens=6, ignore_eos=True)
        return "".join(pieces), whole.choices[0].message.content

    streamed, whole = asyncio.run(main())
    assert streamed == whole and streamed


def test_interrupt_generate_from_another_thread_aborts(engine2):
    model = engine2.loaded_models[0]
    stream = engine2.chat.completions.create(messages=HI, model=model, max_tokens=100, ignore_eos=True, stream=True)
    finish = []
    for i, chunk in enumerate(stream):
        if i == 2:
            t = threading.Thread(target=engine2.interrupt_generate)
            t.start()
            t.join()
        if chunk.choices and chunk.choices[0].finish_reason:
            finish.append(chunk.choices[0].finish_reason)
    assert finish == ["abort"]
    reply = engine2.chat.completions.create(messages=HI, model=model, max_tokens=4, ignore_eos=True)
    assert reply.choices[0].finish_reason == "length"


def test_text_completion_endpoint_with_echo_logprobs_and_streaming(engine2):
    model = engine2.loaded_models[0]
    reply = engine2.completions.create(model=model, prompt="hello", max_tokens=5, temperature=0, ignore_eos=True,
                                       logprobs=3)
    oai_types.Completion.model_validate(reply.to_dict())
    choice = reply.choices[0]
    assert reply.object == "text_completion" and choice.finish_reason == "length"
    assert len(choice.logprobs.tokens) == 5 and "".join(choice.logprobs.tokens) == choice.text
    # the legacy format keys alternatives by text, so byte tokens that decode alike ("\ufffd") merge
    assert all(1 <= len(top) <= 3 for top in choice.logprobs.top_logprobs)
    assert all(choice.logprobs.token_logprobs[i] <= 0 for i in range(5))
    echoed = engine2.completions.create(model=model, prompt="hello", max_tokens=5, temperature=0, ignore_eos=True, echo=True)
    assert echoed.choices[0].text == "hello" + choice.text
    streamed = "".join(c.choices[0].text for c in engine2.completions.create(
        model=model, prompt="hello", max_tokens=5, temperature=0, ignore_eos=True, stream=True) if c.choices)
    assert streamed == choice.text
    with pytest.raises(InvalidRequestError) as info:
        engine2.completions.create(model=model, prompt="hello", suffix="bye")
    assert info.value.param == "suffix"


def test_chat_options_are_validated(tiny_paths):
    with pytest.raises(InvalidRequestError, match="sliding_window_size"):
        ChatOptions(sliding_window_size=0)
    assert ChatOptions(sliding_window_size=512).sliding_window_size == 512
    with pytest.raises(InvalidRequestError, match="prefill_chunk_size"):
        ChatOptions(prefill_chunk_size=0)


def test_kv_cache_dtype_is_a_chat_option(tiny_paths):
    """float16 by default (half the memory), float32 on request; anything else a typed error."""
    with pytest.raises(InvalidRequestError, match="kv_cache_dtype") as error:
        ChatOptions(kv_cache_dtype="int8")
    assert error.value.param == "kv_cache_dtype"
    half = create_engine(tiny_paths[0], chat_options=ChatOptions(context_window_size=64))
    full = create_engine(tiny_paths[0], chat_options=ChatOptions(context_window_size=64, kv_cache_dtype="float32"))
    assert (half.core.model.kv_cache_dtype, full.core.model.kv_cache_dtype) == ("float16", "float32")
    assert full.core.model.kv_cache_bytes == 2 * half.core.model.kv_cache_bytes
    ask = dict(messages=HI, temperature=0.0, max_tokens=6, ignore_eos=True)
    assert full.chat.completions.create(**ask).usage.completion_tokens == 6


def test_context_overflow_drops_the_oldest_turns_only_when_asked(tiny_paths):
    turns = [{"role": "system", "content": "sys"}]
    for i in range(12):
        turns += [{"role": "user", "content": f"question {i} " * 3}, {"role": "assistant", "content": f"answer {i} " * 3}]
    turns.append({"role": "user", "content": "last"})
    strict = create_engine(tiny_paths[0], chat_options=ChatOptions(context_window_size=128))
    with pytest.raises(ContextLengthError, match="context_window_size"):
        strict.chat.completions.create(messages=turns, max_tokens=2)
    lenient = create_engine(tiny_paths[0], chat_options=ChatOptions(context_window_size=128, context_overflow="drop_oldest_turns"))
    reply = lenient.chat.completions.create(messages=turns, max_tokens=2, ignore_eos=True)
    dropped = reply.usage.extra.dropped_messages
    assert dropped > 0 and reply.usage.prompt_tokens < 128
    kept = [turns[0]] + turns[1 + dropped :]
    expected = lenient.core.tokenizer.encode(
        lenient.core.chat_template.render(kept, add_generation_prompt=True), add_special_tokens=False)
    assert reply.usage.prompt_tokens == len(expected)


def test_a_seeded_sample_does_not_depend_on_what_the_kv_cache_held(tiny_paths):
    engine = create_engine(tiny_paths[0], chat_options=ChatOptions(context_window_size=128, prefill_chunk_size=8))
    ask = dict(messages=HI, temperature=1.0, seed=1234, max_tokens=8, ignore_eos=True)
    fresh = engine.chat.completions.create(**ask).choices[0].message.content
    assert engine.last_stats().per_choice[0].prefilled_tokens == engine.last_stats().per_choice[0].prompt_tokens
    cached = engine.chat.completions.create(**ask).choices[0].message.content
    assert engine.last_stats().per_choice[0].prefilled_tokens == 1
    assert cached == fresh


def test_reload_refuses_a_registry_model_this_engine_cannot_run_before_unloading(engine2):
    from notebook_llm import ModelFormatError, ModelNotFoundError

    before = list(engine2.loaded_models)
    with pytest.raises(ModelFormatError, match="gemma2-q4f16_1"):
        engine2.reload("gemma-2-2b-it-q4f16_1-MLC")  # Gemma 2's soft-capping is not implemented
    with pytest.raises(ModelNotFoundError, match="SmolLM2"):
        engine2.reload("SmolLM2-135M-Instruct-Q4")  # a near miss gets suggestions
    assert engine2.loaded_models == before
