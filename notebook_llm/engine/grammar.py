"""Constrained decoding: a request's `response_format` compiled into the tokens allowed at each step.

This module owns the translation of the OpenAI and WebLLM `response_format` dialects into
llguidance grammars, and the per-request matcher state. It knows nothing of the GPU:
`Grammar.allowed_bitmask()` returns the words the engine uploads to its mask buffer as they are.

Accepted `response_format` values (`None` and keys set to `None` count as absent):

| value | constrains the reply to |
|---|---|
| `None`, `{"type": "text"}` | nothing (returns `None`) |
| `{"type": "json_object"}` | any JSON object |
| `{"type": "json_object", "schema": "<JSON schema>"}` (WebLLM) | that schema (a string, or a dict) |
| `{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": ...}}` (OpenAI) | that schema |
| `{"type": "grammar", "grammar": "<grammar>"}` (WebLLM) | that grammar |

A grammar is llguidance's Lark dialect (`start: "yes" | "no"`, regex terminals `/[0-9]+/`,
`%json {...}` for an embedded schema), or a llama.cpp GBNF grammar (`root ::= "yes" | "no"`),
which llguidance converts to Lark. A schema is enforced exactly as written: `strict` is accepted
and changes nothing (decoding is always strict), and keywords llguidance does not implement are
rejected rather than ignored. Whitespace between JSON tokens is limited (`JSON_WHITESPACE`).
Everything is compiled when the request arrives, so a bad format fails before any GPU work.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import llguidance
import numpy as np

from ..errors import InvalidRequestError, ModelFormatError
from ..loader.tokenizer import GGUFTokenizer

PARAM = "response_format"
FORMAT_KINDS = ("text", "json_object", "json_schema", "grammar")
ALLOWED_FORMS = (
    '{"type": "text"}, {"type": "json_object"}, {"type": "json_object", "schema": "<JSON schema>"}, '
    '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": true}} or '
    '{"type": "grammar", "grammar": "<Lark or GBNF grammar>"}'
)
# Whitespace allowed between two JSON tokens: nothing, one space, or a line break and an indent.
# llguidance's default (any run of whitespace) lets a small model emit newlines until max_tokens.
JSON_WHITESPACE = r"(?: |\n[ \t]{0,40})?"

# One llguidance tokenizer per GGUFTokenizer (building it walks the whole vocabulary: ~0.3 s for
# 49k tokens). Held weakly, so it goes when the model's tokenizer does.
_llg_tokenizers: weakref.WeakKeyDictionary[GGUFTokenizer, llguidance.LLTokenizer] = weakref.WeakKeyDictionary()
_llg_tokenizers_lock = threading.Lock()


def compile_response_format(
    response_format: Mapping[str, Any] | None, tokenizer: GGUFTokenizer, *, vocab_size: int | None = None
) -> Grammar | None:
    """The grammar a request's `response_format` asks for, or None when the reply is free text.

    `vocab_size` is the model's logit count when it exceeds the tokenizer's (padded embedding
    rows); the extra ids are never allowed. Raises InvalidRequestError(param="response_format")
    for anything malformed or rejected by llguidance.
    """
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise InvalidRequestError(
            f"response_format must be an object, got {type(response_format).__name__}; allowed: {ALLOWED_FORMS}",
            param=PARAM,
        )
    fields = {key: value for key, value in response_format.items() if value is not None}
    kind = fields.pop("type", None)
    if kind is None:
        raise InvalidRequestError(f"response_format.type is missing; allowed: {ALLOWED_FORMS}", param=PARAM)
    if kind not in FORMAT_KINDS:
        raise InvalidRequestError(
            f"response_format.type = {kind!r} is not supported; allowed: {', '.join(map(repr, FORMAT_KINDS))}",
            param=PARAM,
        )
    if kind == "text":
        _reject_unknown(fields, (), "response_format")
        return None
    llg_grammar, source = _llg_grammar(kind, fields)
    ll_tokenizer = llg_tokenizer(tokenizer)
    return Grammar(
        _compile_matcher(llg_grammar, ll_tokenizer, source),
        kind=kind,
        vocab_size=vocab_size or tokenizer.vocab_size,
        tokenizer_vocab_size=ll_tokenizer.vocab_size,
    )


def _llg_grammar(kind: str, fields: dict[str, Any]) -> tuple[str, str]:
    """llguidance's serialized grammar for one response_format (its `type` already removed), and
    the field it came from (for error messages)."""
    if kind == "json_object":
        _reject_unknown(fields, ("schema",), "response_format")
        if "schema" not in fields:
            return _grammar_from_schema({"type": "object"}, "response_format"), "response_format"
        schema = _parse_schema(fields["schema"], "response_format.schema")
        return _grammar_from_schema(schema, "response_format.schema"), "response_format.schema"
    if kind == "json_schema":
        _reject_unknown(fields, ("json_schema",), "response_format")
        spec = fields.get("json_schema")
        if not isinstance(spec, Mapping):
            raise InvalidRequestError(
                'response_format of type "json_schema" needs a "json_schema" object '
                f'{{"name": ..., "schema": {{...}}, "strict": ...}}, got {spec!r}',
                param=PARAM,
            )
        spec = {key: value for key, value in spec.items() if value is not None}
        _reject_unknown(spec, ("name", "description", "schema", "strict"), "response_format.json_schema")
        for key, kind_of in (("name", str), ("description", str), ("strict", bool)):
            if key in spec and not isinstance(spec[key], kind_of):
                raise InvalidRequestError(
                    f"response_format.json_schema.{key} must be a {kind_of.__name__}, got {spec[key]!r}", param=PARAM
                )
        if "schema" not in spec:
            raise InvalidRequestError("response_format.json_schema.schema is missing: give a JSON schema", param=PARAM)
        schema = _parse_schema(spec["schema"], "response_format.json_schema.schema")
        return _grammar_from_schema(schema, "response_format.json_schema.schema"), "response_format.json_schema.schema"
    # kind == "grammar"
    _reject_unknown(fields, ("grammar",), "response_format")
    text = fields.get("grammar")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError(
            'response_format of type "grammar" needs "grammar": a non-empty Lark or GBNF grammar string, '
            f"got {text!r}",
            param=PARAM,
        )
    try:  # Lark passes through; GBNF (`::=` rules) is converted to Lark
        return llguidance.grammar_from("grammar", text), "response_format.grammar"
    except ValueError as error:
        raise InvalidRequestError(f"response_format.grammar could not be read: {error}", param=PARAM) from None


def _reject_unknown(fields: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(fields) - set(known) - {"type"})
    if unknown:
        allowed = ", ".join(map(repr, known)) or "nothing besides 'type'"
        raise InvalidRequestError(f"{where} has unknown keys {unknown}; allowed: {allowed}", param=PARAM)


def _parse_schema(schema: Any, where: str) -> dict[str, Any]:
    """A JSON schema given as a dict or as JSON text (WebLLM sends a string)."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as error:
            raise InvalidRequestError(f"{where} is not valid JSON: {error}", param=PARAM) from None
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(
            f"{where} must be a JSON schema object (or its JSON text), got {type(schema).__name__} {schema!r:.80}",
            param=PARAM,
        )
    return dict(schema)


def _grammar_from_schema(schema: dict[str, Any], where: str) -> str:
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_pattern": JSON_WHITESPACE})
    except ValueError as error:
        raise InvalidRequestError(f"{where} was rejected: {error}", param=PARAM) from None


def _compile_matcher(llg_grammar: str, tokenizer: llguidance.LLTokenizer, source: str) -> llguidance.LLMatcher:
    """A matcher at the grammar's start; llguidance reports grammar errors through the matcher."""
    matcher = llguidance.LLMatcher(tokenizer, llg_grammar, log_level=0)
    if matcher.is_error():
        raise InvalidRequestError(f"{source} was rejected by llguidance: {_reason(matcher)}", param=PARAM)
    return matcher


def _reason(matcher: llguidance.LLMatcher) -> str:
    """llguidance's error message without the parser-state dump that follows it."""
    return matcher.get_error().split("\n<state>")[0].strip() or "unknown error"


def llg_tokenizer(tokenizer: GGUFTokenizer) -> llguidance.LLTokenizer:
    """llguidance's view of a GGUF tokenizer, built once: every id's bytes, the special ids (which
    never match grammar text, so no `<|im_end|>` inside a JSON string), and the stop ids as EOS."""
    with _llg_tokenizers_lock:
        cached = _llg_tokenizers.get(tokenizer)
        if cached is None:
            cached = _llg_tokenizers[tokenizer] = _build_llg_tokenizer(tokenizer)
        return cached


class _TokenizerView:
    """The attributes and call that llguidance.TokenizerWrapper reads."""

    def __init__(self, tokenizer: GGUFTokenizer):
        self._tokenizer = tokenizer
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        self.tokens = [tokenizer.token_to_bytes(i) for i in range(tokenizer.vocab_size)]
        self.special_token_ids = [i for i in range(tokenizer.vocab_size) if tokenizer.is_special(i)]

    def __call__(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False)


def _build_llg_tokenizer(tokenizer: GGUFTokenizer) -> llguidance.LLTokenizer:
    # Every stop id counts as EOS: the engine stops on any of them, so the grammar allows each one
    # exactly where the reply may end (a chat model ends its turn with <|im_end|> or <|eot_id|>,
    # which is not always the file's eos id).
    if not tokenizer.stop_token_ids:
        raise ModelFormatError("the tokenizer has no EOS or end-of-turn token, so a grammar could never end")
    return llguidance.LLTokenizer(
        llguidance.TokenizerWrapper(_TokenizerView(tokenizer)), eos_token=list(tokenizer.stop_token_ids)
    )


class Grammar:
    """One request's constraint: which token ids may come next, advanced token by token.

    Not thread-safe; one per request (the engine's token loop is its only user).
    """

    def __init__(self, matcher: llguidance.LLMatcher, *, kind: str, vocab_size: int, tokenizer_vocab_size: int):
        self.kind = kind  # "json_object", "json_schema" or "grammar": the response_format type
        self.vocab_size = vocab_size  # the model's logit count; ids past the tokenizer's are never allowed
        self._matcher = matcher
        self._n_tokens = min(vocab_size, tokenizer_vocab_size)  # ids that can ever be allowed
        self._n_words = math.ceil(vocab_size / 32)
        # llguidance writes ceil(tokenizer vocab / 32) words; words past them stay zero.
        llg_words = math.ceil(tokenizer_vocab_size / 32)
        self._words = np.zeros(max(self._n_words, llg_words), np.uint32)
        self._llg_nbytes = llg_words * 4
        self._mask_is_current = False  # _words holds the mask of the current state

    def allowed_bitmask(self) -> np.ndarray:
        """uint32 words [ceil(vocab_size / 32)]: bit i % 32 of word i // 32 is set iff token i may
        come next. The same array is rewritten by every call: upload or copy it before the next."""
        self._matcher.unsafe_compute_mask_ptr(self._words.ctypes.data, self._llg_nbytes)
        if self._matcher.is_error():
            raise RuntimeError(f"the response_format grammar failed while computing the mask: {self._error()}")
        if self._n_tokens < self._llg_nbytes * 8:  # no bits past the last id the model can produce
            self._clear_from(self._n_tokens)
        self._mask_is_current = True
        return self._words[: self._n_words]

    def consume(self, token_id: int) -> None:
        """Advance past `token_id`. A token the grammar does not allow raises RuntimeError and
        leaves the state as it was. The check reads the last mask; without one (no
        allowed_bitmask() since the last consume) llguidance checks the bytes, which also accepts
        another tokenization of text the grammar forces (the mask allows only the tokenizer's own)."""
        token_id = int(token_id)
        if not 0 <= token_id < self._n_tokens:
            raise RuntimeError(f"token id {token_id} is outside the vocabulary (0..{self._n_tokens - 1})")
        if self._mask_is_current:
            allowed = int(self._words[token_id >> 5]) >> (token_id & 31) & 1 == 1
        else:
            allowed = self._matcher.validate_tokens([token_id]) == 1
        if not allowed:
            raise RuntimeError(f"token id {token_id} is not allowed by the response_format grammar at this point")
        self._mask_is_current = False
        if not self._matcher.consume_token(token_id):
            raise RuntimeError(f"the response_format grammar failed on token id {token_id}: {self._error()}")

    def is_finished(self) -> bool:
        """True once the grammar is complete and only a stop token could follow."""
        return self._matcher.is_stopped() and not self._matcher.is_error()

    def is_accepting(self) -> bool:
        """True when the text so far is a complete match (a stop token is allowed now)."""
        return self._matcher.is_accepting()

    def reset(self) -> None:
        """Back to the start, for reusing the compiled grammar on another reply."""
        self._matcher.reset()
        self._mask_is_current = False

    def _clear_from(self, first_id: int) -> None:
        word, bit = divmod(first_id, 32)
        if bit:
            self._words[word] &= np.uint32((1 << bit) - 1)
            word += 1
        self._words[word:] = 0

    def _error(self) -> str:
        return _reason(self._matcher)
