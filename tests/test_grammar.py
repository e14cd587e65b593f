"""Constrained decoding: replies decoded under a response_format parse and match it.

CPU only. Random logits stand in for the model: at each step the ids that `allowed_bitmask()`
leaves set compete, the winner is consumed, until the grammar is finished or 200 tokens. A bonus
on tokens holding a closing character (`"`, `}`, `]` for JSON, `)` for arithmetic) and on the stop
tokens plays a model that wants to finish; without it a random walk inside an open JSON string
rarely ends (measured over 400 seeds per case: at most 110 tokens, median under 40).
jsonschema comes with nbformat (the test extra)."""

from __future__ import annotations

import json
import re

import jsonschema
import numpy as np
import pytest

from notebook_llm.engine.grammar import Grammar, compile_response_format, llg_tokenizer
from notebook_llm.errors import InvalidRequestError
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.loader.models_offline import default_model_path
from notebook_llm.loader.tokenizer import GGUFTokenizer

MAX_TOKENS = 200
CLOSING_BONUS = 3.0  # added to the logits (standard deviation 1) of closing tokens
TOP_K = 8  # the sampled variant draws from the 8 best ids, as the engine's top_k sampler would

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "colour": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "minItems": 1, "maxItems": 3},
    },
    "required": ["name", "age", "colour", "tags"],
    "additionalProperties": False,
}
ARITHMETIC_LARK = r"""
start: expr
expr: term (("+" | "-") term)*
term: factor (("*" | "/") factor)*
factor: NUMBER | "(" expr ")"
NUMBER: /[0-9]{1,3}/
"""


@pytest.fixture(scope="module")
def tokenizer() -> GGUFTokenizer:
    return GGUFModelFile(default_model_path()).tokenizer()


@pytest.fixture(scope="module")
def closing(tokenizer) -> dict[str, np.ndarray]:
    """Per kind of format, 1.0 for the stop ids and every id whose bytes hold one of its closing
    characters, else 0.0. JSON leaves `)` out: inside a string it is only more string."""
    token_bytes = [tokenizer.token_to_bytes(i) for i in range(tokenizer.vocab_size)]

    def marks(chars: bytes) -> np.ndarray:
        closes = np.array([any(ch in token for ch in chars) for token in token_bytes], np.float64)
        closes[list(tokenizer.stop_token_ids)] = 1.0
        return closes

    return {"json": marks(b'"}]'), "arithmetic": marks(b")")}


def allowed_ids(words: np.ndarray, vocab_size: int) -> np.ndarray:
    """Bool per id, read from the words as the GPU reads them: bit i % 32 of word i // 32."""
    ids = np.arange(vocab_size)
    return (words[ids // 32] >> (ids % 32).astype(np.uint32)) & 1 == 1


def decode_under(grammar: Grammar, tokenizer, closing: np.ndarray, rng, *, sample: bool) -> str:
    """The reply a random 'model' writes under `grammar`; fails if it runs past MAX_TOKENS."""
    ids = []
    while not grammar.is_finished():
        assert len(ids) < MAX_TOKENS, f"not finished after {MAX_TOKENS} tokens: {tokenizer.decode(ids)!r}"
        allowed = allowed_ids(grammar.allowed_bitmask(), tokenizer.vocab_size)
        assert allowed.any(), f"no token allowed after {tokenizer.decode(ids)!r}"
        logits = np.where(allowed, rng.standard_normal(tokenizer.vocab_size) + CLOSING_BONUS * closing, -np.inf)
        if sample:
            best = np.argsort(logits)[-TOP_K:]
            best = best[np.isfinite(logits[best])]
            p = np.exp(logits[best] - logits[best].max())
            token = int(rng.choice(best, p=p / p.sum()))
        else:
            token = int(np.argmax(logits))
        grammar.consume(token)
        if token in tokenizer.stop_token_ids:
            break  # the engine stops here with finish_reason "stop"
        ids.append(token)
    return tokenizer.decode(ids)


# --- replies follow the format -------------------------------------------------------------------


@pytest.mark.parametrize("sample", [False, True], ids=["argmax", "sampled"])
def test_json_object_reply_is_a_json_object(tokenizer, closing, rng, sample):
    grammar = compile_response_format({"type": "json_object"}, tokenizer)
    text = decode_under(grammar, tokenizer, closing["json"], rng, sample=sample)
    assert isinstance(json.loads(text), dict), text


@pytest.mark.parametrize("sample", [False, True], ids=["argmax", "sampled"])
def test_openai_json_schema_reply_validates_against_the_schema(tokenizer, closing, rng, sample):
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
    }
    grammar = compile_response_format(response_format, tokenizer)
    text = decode_under(grammar, tokenizer, closing["json"], rng, sample=sample)
    jsonschema.validate(json.loads(text), PERSON_SCHEMA)


@pytest.mark.parametrize("sample", [False, True], ids=["argmax", "sampled"])
def test_webllm_json_object_with_schema_string_validates_against_the_schema(tokenizer, closing, rng, sample):
    response_format = {"type": "json_object", "schema": json.dumps(PERSON_SCHEMA)}
    grammar = compile_response_format(response_format, tokenizer)
    text = decode_under(grammar, tokenizer, closing["json"], rng, sample=sample)
    jsonschema.validate(json.loads(text), PERSON_SCHEMA)


@pytest.mark.parametrize("grammar_text", ['start: "yes" | "no"', 'root ::= "yes" | "no"'], ids=["lark", "gbnf"])
@pytest.mark.parametrize("sample", [False, True], ids=["argmax", "sampled"])
def test_webllm_yes_no_grammar_reply_is_yes_or_no(tokenizer, closing, rng, grammar_text, sample):
    grammar = compile_response_format({"type": "grammar", "grammar": grammar_text}, tokenizer)
    assert decode_under(grammar, tokenizer, closing["json"], rng, sample=sample) in ("yes", "no")


@pytest.mark.parametrize("sample", [False, True], ids=["argmax", "sampled"])
def test_webllm_arithmetic_grammar_reply_is_an_expression(tokenizer, closing, rng, sample):
    grammar = compile_response_format({"type": "grammar", "grammar": ARITHMETIC_LARK}, tokenizer)
    text = decode_under(grammar, tokenizer, closing["arithmetic"], rng, sample=sample)
    # Numbers between operators, "(" only before a number and ")" only after one, and the nesting
    # depth never below zero and back to zero at the end: exactly the strings the grammar derives.
    assert re.fullmatch(r"\(*[0-9]{1,3}\)*(?:[-+*/]\(*[0-9]{1,3}\)*)*", text), text
    depths = np.cumsum([{"(": 1, ")": -1}.get(ch, 0) for ch in text])
    assert depths.min() >= 0 and depths[-1] == 0, text


def test_text_and_none_mean_no_grammar(tokenizer):
    assert compile_response_format(None, tokenizer) is None
    assert compile_response_format({"type": "text"}, tokenizer) is None


# --- malformed formats are refused before any GPU work -------------------------------------------

MALFORMED = {
    "not_a_dict": "json",
    "missing_type": {},
    "unknown_type": {"type": "xml"},
    "text_with_schema": {"type": "text", "schema": "{}"},
    "unknown_key": {"type": "json_object", "grammar": 'start: "a"'},
    "schema_string_not_json": {"type": "json_object", "schema": "{'type': 'object'}"},
    "schema_not_an_object": {"type": "json_object", "schema": "[1, 2]"},
    "schema_bad_type": {"type": "json_object", "schema": {"type": "bogus"}},
    "schema_unknown_format": {"type": "json_object", "schema": {"type": "string", "format": "shoe-size"}},
    "schema_dangling_ref": {"type": "json_object", "schema": {"properties": {"a": {"$ref": "#/$defs/nope"}}}},
    "json_schema_missing": {"type": "json_schema"},
    "json_schema_not_an_object": {"type": "json_schema", "json_schema": "person"},
    "json_schema_without_schema": {"type": "json_schema", "json_schema": {"name": "person"}},
    "json_schema_strict_not_bool": {"type": "json_schema", "json_schema": {"name": "p", "schema": {}, "strict": "yes"}},
    "json_schema_unknown_key": {"type": "json_schema", "json_schema": {"name": "p", "schema": {}, "extra": 1}},
    "json_schema_unsatisfiable": {
        "type": "json_schema",
        "json_schema": {"name": "p", "schema": {"type": "integer", "minimum": 5, "maximum": 1}},
    },
    "grammar_missing": {"type": "grammar"},
    "grammar_empty": {"type": "grammar", "grammar": "  "},
    "grammar_not_a_string": {"type": "grammar", "grammar": ["yes", "no"]},
    "lark_unknown_rule": {"type": "grammar", "grammar": "start: answer"},
    "lark_bad_regex": {"type": "grammar", "grammar": "start: /[a-/"},
    "gbnf_unknown_rule": {"type": "grammar", "grammar": "root ::= answer"},
}


@pytest.mark.parametrize("response_format", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_response_format_raises_invalid_request(tokenizer, response_format):
    with pytest.raises(InvalidRequestError) as caught:
        compile_response_format(response_format, tokenizer)
    assert caught.value.param == "response_format"
    assert "response_format" in str(caught.value)


# --- the mask itself -----------------------------------------------------------------------------


def test_bitmask_bits_match_llguidance_logit_bias(tokenizer, closing, rng):
    """At every step of a decoded reply, bit i % 32 of word i // 32 is set exactly for the ids that
    llguidance's byte-per-token mask (compute_logit_bias: 200 allowed, 0 not) allows."""
    grammar = compile_response_format({"type": "json_schema", "json_schema": {"schema": PERSON_SCHEMA}}, tokenizer)
    while not grammar.is_finished():
        words = grammar.allowed_bitmask()
        assert words.dtype == np.uint32 and words.shape == ((tokenizer.vocab_size + 31) // 32,)
        allowed = allowed_ids(words, tokenizer.vocab_size)
        per_token = np.frombuffer(grammar._matcher.compute_logit_bias(), np.uint8)[: tokenizer.vocab_size]
        np.testing.assert_array_equal(allowed, per_token == 200)
        logits = np.where(allowed, rng.standard_normal(tokenizer.vocab_size) + CLOSING_BONUS * closing["json"], -np.inf)
        grammar.consume(int(np.argmax(logits)))


def test_bitmask_is_padded_with_disallowed_ids_for_a_larger_model_vocab(tokenizer):
    grammar = compile_response_format({"type": "json_object"}, tokenizer, vocab_size=tokenizer.vocab_size + 100)
    words = grammar.allowed_bitmask()
    assert words.shape == ((tokenizer.vocab_size + 100 + 31) // 32,)
    assert not allowed_ids(words, tokenizer.vocab_size + 100)[tokenizer.vocab_size :].any()


def test_stop_tokens_are_allowed_only_where_the_grammar_accepts(tokenizer):
    grammar = compile_response_format({"type": "json_schema", "json_schema": {"schema": PERSON_SCHEMA}}, tokenizer)
    reply = tokenizer.encode('{"name": "Ada", "age": 36, "colour": "red", "tags": ["x"]}', add_special_tokens=False)
    stops = list(tokenizer.stop_token_ids)
    for token in reply:
        allowed = allowed_ids(grammar.allowed_bitmask(), tokenizer.vocab_size)
        assert not allowed[stops].any() and not grammar.is_accepting()
        grammar.consume(token)
    allowed = allowed_ids(grammar.allowed_bitmask(), tokenizer.vocab_size)
    assert allowed[stops].all() and grammar.is_accepting() and grammar.is_finished()


def test_special_tokens_are_never_allowed_inside_a_json_string(tokenizer):
    grammar = compile_response_format({"type": "json_object"}, tokenizer)
    for token in tokenizer.encode('{"note": "abc', add_special_tokens=False):
        grammar.allowed_bitmask()
        grammar.consume(token)
    allowed = allowed_ids(grammar.allowed_bitmask(), tokenizer.vocab_size)
    special = [i for i in range(tokenizer.vocab_size) if tokenizer.is_special(i)]
    assert allowed.sum() > 10_000  # almost any text may continue the string, but no control token
    assert not allowed[special].any()


def test_disallowed_token_raises_and_leaves_the_grammar_usable(tokenizer):
    grammar = compile_response_format({"type": "grammar", "grammar": 'start: "yes" | "no"'}, tokenizer)
    grammar.allowed_bitmask()
    with pytest.raises(RuntimeError, match="not allowed"):
        grammar.consume(tokenizer.encode("{", add_special_tokens=False)[0])
    with pytest.raises(RuntimeError, match="outside the vocabulary"):
        grammar.consume(tokenizer.vocab_size)
    for token in tokenizer.encode("yes", add_special_tokens=False):
        grammar.consume(token)  # without a fresh mask, checked by llguidance instead
    assert grammar.is_finished()


def test_reset_returns_to_the_start(tokenizer):
    grammar = compile_response_format({"type": "json_object"}, tokenizer)
    first = grammar.allowed_bitmask().copy()
    for token in tokenizer.encode('{"a": 1}', add_special_tokens=False):
        grammar.consume(token)
    assert grammar.is_finished()
    grammar.reset()
    assert not grammar.is_finished()
    np.testing.assert_array_equal(grammar.allowed_bitmask(), first)


def test_llguidance_tokenizer_is_built_once_per_tokenizer(tokenizer):
    assert llg_tokenizer(tokenizer) is llg_tokenizer(tokenizer)
