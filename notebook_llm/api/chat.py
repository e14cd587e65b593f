"""`engine.chat.completions.create`: OpenAI's chat API over the local engine.

Owns turning a validated `ChatRequest` into a prompt (the model's chat template) and the
runner's events into `ChatCompletion` objects or a stream of `ChatCompletionChunk`s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..engine.core import EngineCore
from ..engine.grammar import compile_response_format
from ..errors import ContextLengthError, InvalidRequestError
from .requests import ChatRequest, validate_chat_request
from .runner import ChoiceEvent, RunStats, chat_logprobs, collect_choices, run_choices
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChoiceLogprobs,
    ChunkChoice,
    RequestIdentity,
)

if TYPE_CHECKING:
    from .engine import Engine


def chat_prompt_ids(core: EngineCore, request: ChatRequest) -> list[int]:
    """The request's messages through the model's chat template, tokenized; checked to fit."""
    return fitted_chat_prompt(core, request)[0]


def fitted_chat_prompt(core: EngineCore, request: ChatRequest) -> tuple[list[int], int]:
    """(prompt ids, number of oldest messages dropped). Drops only when the model was loaded with
    ChatOptions(context_overflow="drop_oldest_turns"); the system prompt and the last message stay."""
    if core.chat_template is None:
        raise InvalidRequestError(f"model {core.model_id!r} has no chat template; use completions.create", param="messages")
    extra = {} if request.enable_thinking is None else {"enable_thinking": request.enable_thinking}
    messages = list(request.messages)
    dropped = 0
    while True:
        prompt = core.chat_template.render(messages, add_generation_prompt=True, **extra)
        ids = core.tokenizer.encode(prompt, add_special_tokens=False)
        droppable = [i for i, m in enumerate(messages[:-1]) if m["role"] != "system"]
        if len(ids) < core.model.context_window_size or core.options.context_overflow != "drop_oldest_turns" or not droppable:
            break
        del messages[droppable[0]]
        while droppable[0] < len(messages) - 1 and messages[droppable[0]]["role"] == "tool":
            del messages[droppable[0]]  # a tool reply goes with the call it answers
            dropped += 1
        dropped += 1
    check_fits(core, ids)
    return ids, dropped


def check_fits(core: EngineCore, prompt_ids: list[int]) -> None:
    window = core.model.context_window_size
    if len(prompt_ids) >= window:
        raise ContextLengthError(
            f"the prompt has {len(prompt_ids)} tokens but the context window (context_window_size) is {window} "
            f"tokens, and at least one must stay free for the reply (a sliding window does not lengthen it). Shorten the "
            "conversation or reload the model with a larger context_window_size.", param="messages")


class ChatCompletions:
    def __init__(self, engine: "Engine"):
        self._engine = engine

    def create(self, **kwargs: Any) -> ChatCompletion | Iterator[ChatCompletionChunk]:
        """OpenAI's `chat.completions.create`; with `stream=True` an iterator of chunks."""
        core = self._engine.core_for(kwargs.get("model"))
        request = validate_chat_request(kwargs, vocab_size=core.config.vocab_size, defaults=core.sampling_defaults)
        prompt_ids, dropped = fitted_chat_prompt(core, request)
        grammar = compile_response_format(  # errors before any GPU work
            request.response_format, core.tokenizer, vocab_size=core.config.vocab_size)
        stats = RunStats(dropped_messages=dropped)
        events = run_choices(core, prompt_ids, request, stats, grammar)
        self._engine.remember(core, stats)
        if request.stream:
            return self._stream(core, request, events, stats)
        return self._collect(core, request, events, stats)

    def _collect(self, core, request: ChatRequest, events: Iterator[ChoiceEvent], stats: RunStats) -> ChatCompletion:
        collected = collect_choices(events, request.n)
        ident = RequestIdentity()
        choices = [
            Choice(i, ChatCompletionMessage(c.text), c.finish_reason,
                   ChoiceLogprobs(chat_logprobs(core, tuple(c.tokens))) if request.logprobs else None)
            for i, c in enumerate(collected)
        ]
        self._engine.set_last_message(core, collected[0].text)
        return ChatCompletion(id=ident.id, created=ident.created, model=core.model_id, choices=choices, usage=stats.usage())

    def _stream(self, core, request: ChatRequest, events: Iterator[ChoiceEvent], stats: RunStats):
        ident = RequestIdentity()

        def chunk(choices: list[ChunkChoice], usage=None) -> ChatCompletionChunk:
            return ChatCompletionChunk(id=ident.id, created=ident.created, model=core.model_id, choices=choices, usage=usage)

        started: set[int] = set()
        first_text = []
        try:
            for event in events:
                if event.index not in started:
                    started.add(event.index)
                    yield chunk([ChunkChoice(event.index, ChoiceDelta(role="assistant", content=""))])
                if event.index == 0:
                    first_text.append(event.text)
                logprobs = ChoiceLogprobs(chat_logprobs(core, event.tokens)) if request.logprobs and event.tokens else None
                if event.text or logprobs:
                    yield chunk([ChunkChoice(event.index, ChoiceDelta(content=event.text), None, logprobs)])
                if event.finish_reason:
                    yield chunk([ChunkChoice(event.index, ChoiceDelta(), event.finish_reason)])
        finally:
            events.close()
            self._engine.set_last_message(core, "".join(first_text))
        if request.include_usage:
            yield chunk([], usage=stats.usage())


class Chat:
    def __init__(self, engine: "Engine"):
        self.completions = ChatCompletions(engine)
