"""Request validation: OpenAI-style keyword arguments in, typed and normalized records out.

Owns the rules for the arguments of `chat.completions.create`, `completions.create` and
`embeddings.create` (the HTTP server's /v1/embeddings; no embedding model runs yet): which
fields exist, their types, ranges and defaults, which OpenAI fields notebook_llm rejects by
name, and the shape of `messages`. Pure Python: no wgpu, no engine, no tokenizer; the model's
`vocab_size` is the one fact about the model it takes. Every error is an `InvalidRequestError`
whose `param` is the field's path (`temperature`, `messages[2].content`) and whose message names
the bad value and what is allowed. Turning a request into a prompt or a `GenerationConfig` is
the caller's job.
"""

from __future__ import annotations

import difflib
import numbers
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..errors import InvalidRequestError

ROLES = ("system", "user", "assistant", "tool")
MAX_N = 128
MAX_STOP_SEQUENCES = 16  # OpenAI allows 4; stop strings cost nothing on the GPU here
MAX_TOP_LOGPROBS = 20
MAX_LEGACY_LOGPROBS = 5  # `completions.create(logprobs=k)`
LOGIT_BIAS_LIMIT = 100.0
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema", "grammar")
COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for the legacy endpoint
# Sampling fields whose default a model may set (`defaults=`), and the built-in defaults (OpenAI's).
SAMPLING_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
                     "repetition_penalty": 1.0}

# OpenAI chat fields the engine does not implement: rejected by name, not as unknown.
# None counts as leaving the field out (clients and frameworks often send `tools=None`).
CHAT_UNSUPPORTED = (
    "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "audio",
    "modalities", "prediction", "reasoning_effort", "service_tier", "store", "metadata",
    "web_search_options",
)
COMMON_FIELDS = (
    "model", "stream", "stream_options", "n", "temperature", "top_p", "top_k", "min_p",
    "max_tokens", "stop", "seed", "frequency_penalty", "presence_penalty", "repetition_penalty",
    "logit_bias", "logprobs", "ignore_eos", "user",
)
CHAT_FIELDS = COMMON_FIELDS + (
    "messages", "max_completion_tokens", "top_logprobs", "response_format", "enable_thinking",
)
COMPLETION_FIELDS = COMMON_FIELDS + ("prompt", "echo", "suffix", "best_of")
STREAM_OPTIONS = ("include_usage", "include_obfuscation")  # obfuscation is accepted and ignored

# Message keys that OpenAI's own response objects carry; None there means "absent".
MESSAGE_KEYS = {
    "system": ("role", "content", "name"),
    "user": ("role", "content", "name"),
    "assistant": ("role", "content", "name", "tool_calls"),
    "tool": ("role", "content", "name", "tool_call_id"),
}
MESSAGE_UNSUPPORTED = ("refusal", "audio", "function_call", "annotations")
RESPONSE_FORMAT_KEYS = {
    "text": ("type",),
    "json_object": ("type", "schema"),  # WebLLM's `schema`: a JSON-schema string (or dict)
    "json_schema": ("type", "json_schema"),
    "grammar": ("type", "grammar"),  # WebLLM's EBNF grammar string
}
JSON_SCHEMA_KEYS = ("name", "schema", "description", "strict")
EMBEDDING_FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
ENCODING_FORMATS = ("float", "base64")  # the openai client asks for base64 unless told otherwise
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit on the items of one embeddings request


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    """The fields both endpoints share, validated; `ChatRequest` and `CompletionRequest` add theirs."""

    model: str | None = None  # None: the loaded model
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with usage only
    n: int = 1  # choices per request, 1..128
    temperature: float = 1.0  # [0, 2]; 0 is greedy
    top_p: float = 1.0  # (0, 1]; 1 is off
    top_k: int = 0  # >= 0; 0 is off
    min_p: float = 0.0  # [0, 1]; 0 is off
    max_tokens: int | None = None  # None: until a stop or the context window is full
    stop: list[str] = field(default_factory=list)  # up to 16 non-empty strings
    seed: int | None = None  # None: the caller draws one
    frequency_penalty: float = 0.0  # [-2, 2]
    presence_penalty: float = 0.0  # [-2, 2]
    repetition_penalty: float = 1.0  # (0, 10]; WebLLM's multiplicative penalty, 1 is off
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> [-100, 100]
    logprobs: bool = False  # report the sampled tokens' log-probabilities
    top_logprobs: int = 0  # and this many alternatives per token (chat 0..20, legacy 0..5)
    ignore_eos: bool = False  # keep generating past end-of-sequence tokens
    user: str | None = None  # accepted and ignored, as OpenAI's end-user id


@dataclass(frozen=True, kw_only=True)
class ChatRequest(GenerationRequest):
    """A validated `chat.completions.create` call."""

    # {"role", "content", ["name"], ["tool_calls"], ["tool_call_id"]}; content is a str, or None
    # for an assistant message that only carries tool_calls
    messages: list[dict]
    response_format: dict | None = None  # shape-checked only; compiled by the grammar layer
    enable_thinking: bool | None = None  # None: the chat template's default


@dataclass(frozen=True, kw_only=True)
class CompletionRequest(GenerationRequest):
    """A validated `completions.create` call (OpenAI's legacy text-completion endpoint)."""

    prompt: str | list[int]  # text, or token ids that skip the tokenizer
    echo: bool = False  # the prompt is repeated at the start of the text
    max_tokens: int | None = COMPLETION_DEFAULT_MAX_TOKENS


@dataclass(frozen=True, kw_only=True)
class EmbeddingRequest:
    """A validated `embeddings.create` call."""

    input: list[str] | list[list[int]]  # texts, or token-id lists; a single one becomes a list of one
    model: str | None = None  # None: the loaded model
    encoding_format: str = "float"  # "float" lists, or "base64" of little-endian float32
    dimensions: int | None = None  # None: the model's own; else truncated to this many (>= 1)
    user: str | None = None  # accepted and ignored, as OpenAI's end-user id


def validate_chat_request(kwargs: Mapping[str, Any], *, vocab_size: int | None = None,
                          defaults: Mapping[str, float] | None = None) -> ChatRequest:
    """Check `chat.completions.create` arguments and return them normalized and with defaults.

    `extra_body` entries count as top-level fields (OpenAI's client sends them that way);
    `vocab_size`, when given, bounds the token ids in `logit_bias`; `defaults` replaces the built-in
    defaults of sampling fields (SAMPLING_DEFAULTS) the request leaves out, e.g. a model's own.
    """
    fields = _merge_extra_body(kwargs)
    _reject_unexpected(fields, CHAT_FIELDS, CHAT_UNSUPPORTED)
    if "messages" not in fields:
        _fail("messages", "messages is missing; allowed: a non-empty list of {'role', 'content'} dicts")
    logprobs = _bool(fields, "logprobs", False)
    top_logprobs = _int(fields, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
    if fields.get("top_logprobs") is not None and not logprobs:
        _fail("top_logprobs", f"top_logprobs is {top_logprobs} but logprobs is {fields.get('logprobs')!r}; "
                              "allowed: top_logprobs only with logprobs=True")
    return ChatRequest(
        messages=_messages(fields["messages"]),
        max_tokens=_max_tokens(fields),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
        response_format=_response_format(fields.get("response_format")),
        enable_thinking=_optional_bool(fields, "enable_thinking"),
        **_common(fields, vocab_size, defaults),
    )


def validate_completion_request(kwargs: Mapping[str, Any], *, vocab_size: int | None = None,
                                defaults: Mapping[str, float] | None = None) -> CompletionRequest:
    """Check `completions.create` arguments and return them normalized and with defaults
    (`vocab_size` and `defaults` as in `validate_chat_request`).

    The legacy `logprobs=k` (0..5) becomes `logprobs=True, top_logprobs=k`; `max_tokens`
    defaults to 16 as in OpenAI's API, and an explicit None means no limit.
    """
    fields = _merge_extra_body(kwargs)
    _reject_unexpected(fields, COMPLETION_FIELDS, ())
    if "prompt" not in fields:
        _fail("prompt", "prompt is missing; allowed: a non-empty string or a list of token ids")
    if fields.get("suffix") is not None:
        _fail("suffix", f"suffix is {_show(fields['suffix'])}; insertion after a suffix is not supported "
                        "by notebook_llm; allowed: leave it out or None")
    common = _common(fields, vocab_size, defaults)
    best_of = fields.get("best_of")
    if best_of is not None and (not _is_int(best_of) or best_of != common["n"]):
        _fail("best_of", f"best_of is {_show(best_of)} and n is {common['n']}; notebook_llm samples each "
                         "choice once, so allowed: best_of left out, None or equal to n")
    legacy_logprobs = _int(fields, "logprobs", None, 0, MAX_LEGACY_LOGPROBS)
    max_tokens = COMPLETION_DEFAULT_MAX_TOKENS
    if "max_tokens" in fields:
        max_tokens = _int(fields, "max_tokens", None, 1, None)
    return CompletionRequest(
        prompt=_prompt(fields["prompt"], vocab_size),
        max_tokens=max_tokens,
        logprobs=legacy_logprobs is not None,
        top_logprobs=legacy_logprobs or 0,
        echo=_bool(fields, "echo", False),
        **common,
    )


def validate_embedding_request(kwargs: Mapping[str, Any]) -> EmbeddingRequest:
    """Check `embeddings.create` arguments (OpenAI's: `input` a string, a list of strings, a list
    of token ids or a list of such lists, at most 2048 items) and return them normalized."""
    fields = _merge_extra_body(kwargs)
    _reject_unexpected(fields, EMBEDDING_FIELDS, ())
    if "input" not in fields:
        _fail("input", "input is missing; allowed: a non-empty string, a list of them, a list of token ids, "
                       "or a list of token-id lists")
    encoding_format = fields.get("encoding_format")
    if encoding_format is not None and encoding_format not in ENCODING_FORMATS:
        _fail("encoding_format", f"encoding_format is {_show(encoding_format)}; allowed: {', '.join(ENCODING_FORMATS)}")
    return EmbeddingRequest(
        input=_embedding_input(fields["input"]),
        model=_model(fields.get("model")),
        encoding_format=encoding_format or "float",
        dimensions=_int(fields, "dimensions", None, 1, None),
        user=_optional_str(fields, "user"),
    )


# --- fields shared by both endpoints -------------------------------------------------------


def _common(fields: dict, vocab_size: int | None, defaults: Mapping[str, float] | None = None) -> dict:
    stream = _bool(fields, "stream", False)
    default = {**SAMPLING_DEFAULTS, **(defaults or {})}
    return dict(
        model=_model(fields.get("model")),
        stream=stream,
        include_usage=_include_usage(fields.get("stream_options"), stream),
        n=_int(fields, "n", 1, 1, MAX_N),
        temperature=_float(fields, "temperature", default["temperature"], 0.0, 2.0),
        top_p=_float(fields, "top_p", default["top_p"], 0.0, 1.0, low_open=True),
        top_k=_int(fields, "top_k", 0, 0, None),
        min_p=_float(fields, "min_p", 0.0, 0.0, 1.0),
        stop=_stop(fields.get("stop")),
        seed=_int(fields, "seed", None, None, None),
        frequency_penalty=_float(fields, "frequency_penalty", default["frequency_penalty"], -2.0, 2.0),
        presence_penalty=_float(fields, "presence_penalty", default["presence_penalty"], -2.0, 2.0),
        repetition_penalty=_float(fields, "repetition_penalty", default["repetition_penalty"], 0.0, 10.0, low_open=True),
        logit_bias=_logit_bias(fields.get("logit_bias"), vocab_size),
        ignore_eos=_bool(fields, "ignore_eos", False),
        user=_optional_str(fields, "user"),
    )


def _merge_extra_body(kwargs: Mapping[str, Any]) -> dict:
    if not isinstance(kwargs, Mapping):
        _fail(None, f"the request is {_show(kwargs)}; allowed: a dict of keyword arguments")
    fields = dict(kwargs)
    extra = fields.pop("extra_body", None)
    if extra is None:
        return fields
    if not isinstance(extra, Mapping):
        _fail("extra_body", f"extra_body is {_show(extra)}; allowed: a dict of extra request fields or None")
    for name, value in extra.items():
        if name == "extra_body":
            _fail("extra_body", "extra_body contains extra_body; allowed: request fields only")
        if name in fields and fields[name] != value:
            _fail(name, f"{name} is given both as an argument ({_show(fields[name])}) and in extra_body "
                        f"({_show(value)}); allowed: one of them, or the same value in both")
        fields[name] = value
    return fields


def _reject_unexpected(fields: dict, allowed: tuple[str, ...], unsupported: tuple[str, ...]) -> None:
    for name, value in fields.items():
        if name in allowed:
            continue
        if name in unsupported:
            if value is None:
                continue
            _fail(name, f"{name} is not supported by notebook_llm (got {_show(value)}); "
                        "allowed: leave it out or None")
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail(str(name), f"unknown parameter {name!r}{hint}; allowed: {', '.join(sorted(allowed + ('extra_body',)))}")


def _model(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value):
        _fail("model", f"model is {_show(value)}; allowed: a model id string or None for the loaded model")
    return value


def _include_usage(options: Any, stream: bool) -> bool:
    if options is None:
        return False
    if not stream:
        _fail("stream_options", f"stream_options is {_show(options)} but stream is False; "
                                "allowed: stream_options only with stream=True")
    if not isinstance(options, Mapping):
        _fail("stream_options", f"stream_options is {_show(options)}; allowed: a dict such as "
                                "{'include_usage': True}")
    for key in options:
        if key not in STREAM_OPTIONS:
            _fail(f"stream_options.{key}", f"stream_options.{key} is not a stream option; allowed: "
                                           f"{', '.join(STREAM_OPTIONS)}")
    return _bool(options, "include_usage", False, path="stream_options.include_usage")


def _max_tokens(fields: dict) -> int | None:
    new = _int(fields, "max_completion_tokens", None, 1, None)
    old = _int(fields, "max_tokens", None, 1, None)
    if new is not None and old is not None and new != old:
        _fail("max_completion_tokens", f"max_completion_tokens is {new} and max_tokens is {old}; "
                                       "allowed: one of them, or the same value in both")
    return new if new is not None else old


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if (not isinstance(stops, (list, tuple)) or len(stops) > MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) and s for s in stops)):
        _fail("stop", f"stop is {_show(value)}; allowed: a non-empty string or a list of up to "
                      f"{MAX_STOP_SEQUENCES} non-empty strings")
    return list(stops)


def _logit_bias(value: Any, vocab_size: int | None) -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail("logit_bias", f"logit_bias is {_show(value)}; allowed: a dict from token id to a number "
                            f"in [-{LOGIT_BIAS_LIMIT:g}, {LOGIT_BIAS_LIMIT:g}]")
    ids = "token ids >= 0" if vocab_size is None else f"token ids 0..{vocab_size - 1}"
    bias: dict[int, float] = {}
    for key, amount in value.items():
        token = _token_id(key)
        if token is None or (vocab_size is not None and token >= vocab_size):
            _fail("logit_bias", f"logit_bias has key {key!r}; allowed: {ids}, as int or decimal string")
        if not _is_real(amount) or not -LOGIT_BIAS_LIMIT <= amount <= LOGIT_BIAS_LIMIT:
            _fail("logit_bias", f"logit_bias[{key!r}] is {_show(amount)}; allowed: a number in "
                                f"[-{LOGIT_BIAS_LIMIT:g}, {LOGIT_BIAS_LIMIT:g}]")
        if token in bias and bias[token] != float(amount):
            _fail("logit_bias", f"logit_bias gives token {token} two values ({bias[token]:g} and "
                                f"{float(amount):g}); allowed: one value per token id")
        bias[token] = float(amount)
    return bias


def _token_id(key: Any) -> int | None:
    if _is_int(key) and key >= 0:
        return int(key)
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    return None


# --- chat-only fields ------------------------------------------------------------------------


def _messages(value: Any) -> list[dict]:
    if not isinstance(value, (list, tuple)) or not value:
        _fail("messages", f"messages is {_show(value)}; allowed: a non-empty list of "
                          "{'role', 'content'} dicts")
    clean: list[dict] = []
    answerable: set[str] = set()  # tool_call ids of the assistant turn that tool messages answer
    after_tool_calls = False
    for i, raw in enumerate(value):
        message = _message(raw, i)
        if message["role"] == "tool":
            if not after_tool_calls:
                _fail(f"messages[{i}].role", f"messages[{i}].role is 'tool' but messages[{i}] does not follow "
                                             "an assistant message with tool_calls; allowed: tool messages "
                                             "right after the assistant message whose calls they answer")
            if message["tool_call_id"] not in answerable:
                _fail(f"messages[{i}].tool_call_id",
                      f"messages[{i}].tool_call_id is {message['tool_call_id']!r}; allowed: an id from the "
                      f"preceding assistant message's tool_calls: {', '.join(sorted(answerable))}")
        else:
            calls = message.get("tool_calls", ())
            answerable = {call["id"] for call in calls}
            after_tool_calls = bool(calls)
        clean.append(message)
    return clean


def _message(raw: Any, i: int) -> dict:
    where = f"messages[{i}]"
    if not isinstance(raw, Mapping):
        dump = getattr(raw, "model_dump", None)  # openai's (or our) response message objects
        if not callable(dump):
            _fail(where, f"{where} is {_show(raw)}; allowed: a dict with 'role' and 'content'")
        raw = dump()
    role = raw.get("role")
    if role not in ROLES:
        _fail(f"{where}.role", f"{where}.role is {_show(role)}; allowed: {', '.join(ROLES)}")
    given = {key: v for key, v in raw.items() if v is not None or key == "content"}
    for key in given:
        if key in MESSAGE_UNSUPPORTED:
            _fail(f"{where}.{key}", f"{where}.{key} is {_show(given[key])}: {key} in messages is not "
                                    "supported by notebook_llm; allowed: leave it out or None")
        if key not in MESSAGE_KEYS[role]:
            _fail(f"{where}.{key}", f"{where}.{key} is not a key of a {role} message; allowed: "
                                    f"{', '.join(MESSAGE_KEYS[role])}")
    message: dict[str, Any] = {"role": role}
    calls = _tool_calls(given["tool_calls"], f"{where}.tool_calls") if "tool_calls" in given else []
    if calls:
        message["tool_calls"] = calls
    content = given.get("content")
    if content is None and calls:
        message["content"] = None
    else:
        message["content"] = _content(content, f"{where}.content", role)
    if "name" in given:
        message["name"] = _nonempty_str(given["name"], f"{where}.name", "a non-empty string")
    if role == "tool":
        message["tool_call_id"] = _nonempty_str(given.get("tool_call_id"), f"{where}.tool_call_id",
                                                "the id of the tool call this message answers")
    return message


def _content(content: Any, where: str, role: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        empty_ok = " (or None when the message has tool_calls)" if role == "assistant" else ""
        _fail(where, f"{where} is {_show(content)}; allowed: a string or a list of "
                     f"{{'type': 'text', 'text': str}} parts{empty_ok}")
    texts = []
    for j, part in enumerate(content):
        path = f"{where}[{j}]"
        if not isinstance(part, Mapping):
            _fail(path, f"{path} is {_show(part)}; allowed: a {{'type': 'text', 'text': str}} dict")
        kind = part.get("type")
        if kind != "text":
            _fail(f"{path}.type", f"{path}.type is {_show(kind)}: only text content is supported by "
                                  "notebook_llm; allowed: 'text'")
        if not isinstance(part.get("text"), str):
            _fail(f"{path}.text", f"{path}.text is {_show(part.get('text'))}; allowed: a string")
        texts.append(part["text"])
    return "".join(texts)


def _tool_calls(value: Any, where: str) -> list[dict]:
    if not isinstance(value, (list, tuple)):
        _fail(where, f"{where} is {_show(value)}; allowed: a list of "
                     "{'id', 'type': 'function', 'function': {'name', 'arguments'}} dicts")
    calls = []
    for j, call in enumerate(value):
        path = f"{where}[{j}]"
        if not isinstance(call, Mapping) and callable(getattr(call, "model_dump", None)):
            call = call.model_dump()
        if not isinstance(call, Mapping):
            _fail(path, f"{path} is {_show(call)}; allowed: a dict with id, type and function")
        if call.get("type", "function") != "function":
            _fail(f"{path}.type", f"{path}.type is {_show(call.get('type'))}; allowed: 'function'")
        function = call.get("function")
        if not isinstance(function, Mapping):
            _fail(f"{path}.function", f"{path}.function is {_show(function)}; allowed: a dict with "
                                      "name and arguments")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            _fail(f"{path}.function.arguments", f"{path}.function.arguments is {_show(arguments)}; "
                                                "allowed: a JSON string")
        calls.append({
            "id": _nonempty_str(call.get("id"), f"{path}.id", "a non-empty string"),
            "type": "function",
            "function": {
                "name": _nonempty_str(function.get("name"), f"{path}.function.name", "a non-empty string"),
                "arguments": arguments,
            },
        })
    return calls


def _response_format(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        _fail("response_format", f"response_format is {_show(value)}; allowed: None or a dict with "
                                 f"type in {', '.join(RESPONSE_FORMAT_TYPES)}")
    kind = value.get("type")
    if kind not in RESPONSE_FORMAT_TYPES:
        _fail("response_format.type", f"response_format.type is {_show(kind)}; allowed: "
                                      f"{', '.join(RESPONSE_FORMAT_TYPES)}")
    _only_keys(value, RESPONSE_FORMAT_KEYS[kind], "response_format", f"a {kind} response_format")
    clean = dict(value)
    if kind == "json_object" and "schema" in value and not isinstance(value["schema"], (str, Mapping)):
        _fail("response_format.schema", f"response_format.schema is {_show(value['schema'])}; allowed: "
                                        "a JSON schema as a string or dict")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, Mapping):
            _fail("response_format.json_schema", f"response_format.json_schema is {_show(spec)}; allowed: "
                                                 "a dict with name and schema")
        _only_keys(spec, JSON_SCHEMA_KEYS, "response_format.json_schema", "json_schema")
        _nonempty_str(spec.get("name"), "response_format.json_schema.name", "a non-empty string")
        if not isinstance(spec.get("schema"), Mapping):
            _fail("response_format.json_schema.schema", "response_format.json_schema.schema is "
                                                        f"{_show(spec.get('schema'))}; allowed: a JSON schema dict")
        if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
            _fail("response_format.json_schema.strict", "response_format.json_schema.strict is "
                                                        f"{_show(spec['strict'])}; allowed: True, False or None")
        clean["json_schema"] = dict(spec)
    if kind == "grammar":
        _nonempty_str(value.get("grammar"), "response_format.grammar", "a non-empty grammar string")
    return clean


def _only_keys(value: Mapping, allowed: tuple[str, ...], where: str, what: str) -> None:
    for key in value:
        if key not in allowed:
            _fail(f"{where}.{key}", f"{where}.{key} is not a key of {what}; allowed: {', '.join(allowed)}")


# --- completion-only fields -------------------------------------------------------------------


def _prompt(value: Any, vocab_size: int | None) -> str | list[int]:
    allowed = "a non-empty string or a non-empty list of token ids (or a list holding one of these)"
    if isinstance(value, (list, tuple)) and value and all(isinstance(p, (str, list, tuple)) for p in value):
        if len(value) > 1:
            _fail("prompt", f"prompt is a batch of {len(value)} prompts; notebook_llm takes one prompt per "
                            f"request; allowed: {allowed}")
        value = value[0]
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(_is_int(t) and t >= 0 for t in value):
        too_big = [t for t in value if vocab_size is not None and t >= vocab_size]
        if too_big:
            _fail("prompt", f"prompt has token id {too_big[0]}; allowed: token ids 0..{vocab_size - 1}")
        return [int(t) for t in value]
    _fail("prompt", f"prompt is {_show(value)}; allowed: {allowed}")


def _embedding_input(value: Any) -> list[str] | list[list[int]]:
    allowed = "a non-empty string, a list of them, a list of token ids, or a list of token-id lists"

    def token_ids(item: Any) -> bool:
        return isinstance(item, (list, tuple)) and bool(item) and all(_is_int(t) and t >= 0 for t in item)

    if isinstance(value, str) and value:
        return [value]
    if token_ids(value):
        return [[int(t) for t in value]]
    if isinstance(value, (list, tuple)) and value:
        if len(value) > MAX_EMBEDDING_INPUTS:
            _fail("input", f"input has {len(value)} items; allowed: at most {MAX_EMBEDDING_INPUTS}")
        if all(isinstance(item, str) and item for item in value):
            return list(value)
        if all(token_ids(item) for item in value):
            return [[int(t) for t in item] for item in value]
    _fail("input", f"input is {_show(value)}; allowed: {allowed}")


# --- scalars ----------------------------------------------------------------------------------


def _float(fields: Mapping, name: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
    value = fields.get(name)
    if value is None:
        return default
    above_low = _is_real(value) and (value > low if low_open else value >= low)
    if not (above_low and value <= high):  # NaN fails both comparisons
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        _fail(name, f"{name} is {_show(value)}; allowed: a number in {interval}")
    return float(value)


def _int(fields: Mapping, name: str, default: int | None, low: int | None, high: int | None) -> int | None:
    value = fields.get(name)
    if value is None:
        return default
    if not (_is_int(value) and (low is None or value >= low) and (high is None or value <= high)):
        if low is None:
            allowed = "an integer"
        elif high is None:
            allowed = "a positive integer" if low == 1 else f"an integer >= {low}"
        else:
            allowed = f"an integer in [{low}, {high}]"
        _fail(name, f"{name} is {_show(value)}; allowed: {allowed}")
    return int(value)


def _bool(fields: Mapping, name: str, default: bool, *, path: str | None = None) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        _fail(path or name, f"{path or name} is {_show(value)}; allowed: True or False")
    return value


def _optional_bool(fields: Mapping, name: str) -> bool | None:
    return None if fields.get(name) is None else _bool(fields, name, False)


def _optional_str(fields: Mapping, name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        _fail(name, f"{name} is {_show(value)}; allowed: a string or None")
    return value


def _nonempty_str(value: Any, where: str, allowed: str) -> str:
    if not (isinstance(value, str) and value):
        _fail(where, f"{where} is {_show(value)}; allowed: {allowed}")
    return value


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict, _repr.maxlevel = 60, 60, 4, 4, 3


def _show(value: Any) -> str:
    """The bad value for an error message, shortened so a long prompt does not flood it."""
    return _repr.repr(value)


def _fail(param: str | None, message: str) -> NoReturn:
    raise InvalidRequestError(message, param=param)
