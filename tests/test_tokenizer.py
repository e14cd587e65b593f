"""The GGUF tokenizer gives llama.cpp's ids, decodes back to the text, and streams whole characters.

Reference ids: tests/data/smollm2_tokenizer_cases.json, written once by
scripts/make_tokenizer_reference.py with llama-cpp-python (CI has no llama.cpp).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notebook_llm.errors import InvalidRequestError, ModelFormatError
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.loader.models_offline import default_model_path
from notebook_llm.loader.tokenizer import GGUFTokenizer

REFERENCE = json.loads((Path(__file__).parent / "data" / "smollm2_tokenizer_cases.json").read_text(encoding="utf-8"))
CASES = REFERENCE["cases"]


def cases_of(kind: str) -> list:
    return [pytest.param(case, id=f"{kind}{i}") for i, case in enumerate(c for c in CASES if c["kind"] == kind)]


@pytest.fixture(scope="module")
def tokenizer() -> GGUFTokenizer:
    model = GGUFModelFile(default_model_path())
    assert REFERENCE["model_file"] == model.path.name
    return model.tokenizer()


class Metadata:
    """Stands in for a GGUFModelFile: a dict of metadata keys."""

    def __init__(self, **keys):
        self.keys = {key.replace("__", "."): value for key, value in keys.items()}

    def metadata(self, key, default=None):
        return self.keys.get(key, default)


# --- ids against llama.cpp ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", cases_of("string"))
def test_ids_match_llama_cpp_on_tricky_strings(tokenizer, case):
    assert tokenizer.encode(case["text"]) == case["ids"], repr(case["text"])


@pytest.mark.slow
@pytest.mark.parametrize("case", cases_of("chat"))
def test_ids_match_llama_cpp_on_chat_prompts(tokenizer, case):
    assert tokenizer.encode(case["text"]) == case["ids"], repr(case["text"])


@pytest.mark.slow
def test_reference_has_twenty_plus_strings_and_eight_chat_prompts():
    kinds = [case["kind"] for case in CASES]
    assert kinds.count("string") >= 20 and kinds.count("chat") >= 8


# --- decoding -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", cases_of("string") + cases_of("chat"))
def test_decode_round_trips_to_the_text_and_to_llama_cpp_detokenize(tokenizer, case):
    text = tokenizer.decode(case["ids"])
    assert text == case["text"]
    assert text == case["llama_cpp_text"]
    # The `tokenizers` byte-level decoder on the same ids agrees with our byte table.
    assert tokenizer.hf.decode(case["ids"], skip_special_tokens=False) == text


@pytest.mark.slow
def test_control_tokens_written_in_text_are_single_ids(tokenizer):
    assert tokenizer.encode("<|im_start|>") == [1]
    assert tokenizer.encode("<|im_end|>") == [2]
    assert tokenizer.encode("<|endoftext|>") == [0]
    assert tokenizer.encode("<|im_start|>user\nhi<|im_end|>")[0] == 1
    assert tokenizer.encode("<|im_start|>user\nhi<|im_end|>")[-1] == 2


@pytest.mark.slow
def test_smollm2_special_ids_and_stop_tokens(tokenizer):
    assert tokenizer.vocab_size == 49152
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 2)
    assert tokenizer.add_bos is False  # tokenizer.ggml.add_bos_token = false: no BOS prepended
    assert tokenizer.encode("hi") == tokenizer.encode("hi", add_special_tokens=False)
    # eos (<|im_end|>) first, then <|endoftext|>, which llama.cpp also treats as end of generation.
    assert tokenizer.stop_token_ids == (2, 0)


@pytest.mark.slow
def test_skip_special_tokens_drops_control_tokens_only(tokenizer):
    ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n")
    assert tokenizer.decode(ids) == "<|im_start|>user\nhi<|im_end|>\n"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nhi\n"


@pytest.mark.slow
def test_token_pieces_and_vocabulary_entries(tokenizer):
    (hello,) = tokenizer.encode(" hello")
    assert tokenizer.id_to_token(hello) == "Ġhello"  # the byte-level form stored in the vocabulary
    assert tokenizer.token_to_piece(hello) == " hello"
    assert tokenizer.token_to_bytes(hello) == b" hello"
    assert tokenizer.token_to_id("Ġhello") == hello
    assert tokenizer.token_to_piece(1) == "<|im_start|>"
    (newline,) = tokenizer.encode("\n")
    assert tokenizer.id_to_token(newline) == "Ċ"


@pytest.mark.slow
def test_out_of_range_ids_are_rejected(tokenizer):
    for bad in (-1, 49152):
        with pytest.raises(InvalidRequestError, match="out of range"):
            tokenizer.decode([5, bad])
    with pytest.raises(InvalidRequestError, match="must be a str"):
        tokenizer.encode(b"bytes")


# --- streaming ----------------------------------------------------------------------------------


def is_whole_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.slow
def test_stream_decoder_holds_back_an_emoji_split_across_tokens(tokenizer):
    text = "I 😀 it"
    ids = tokenizer.encode(text)
    emoji_ids = [i for i in ids if not is_whole_utf8(tokenizer.token_to_bytes(i))]
    assert len(emoji_ids) >= 2, "the emoji should span several byte-level tokens"
    stream = tokenizer.stream_decoder()
    deltas = []
    for token_id in ids:
        delta = stream.push(token_id)
        assert "\ufffd" not in delta
        if token_id in emoji_ids[:-1]:
            assert stream.pending_bytes, "a partial emoji must be held back"
        deltas.append(delta)
    assert "😀" in deltas[ids.index(emoji_ids[-1])]
    assert stream.flush() == ""
    assert "".join(deltas) == text


@pytest.mark.slow
def test_stream_decoder_flush_turns_an_unfinished_character_into_a_replacement(tokenizer):
    ids = tokenizer.encode("😀")
    stream = tokenizer.stream_decoder()
    held = "".join(stream.push(i) for i in ids[:-1])
    assert held == ""
    assert stream.flush() == "\ufffd" == tokenizer.decode(ids[:-1])


@pytest.mark.slow
@pytest.mark.parametrize("skip_special_tokens", [False, True])
def test_stream_deltas_join_to_decode_on_every_reference_case(tokenizer, skip_special_tokens):
    for case in CASES:
        stream = tokenizer.stream_decoder(skip_special_tokens=skip_special_tokens)
        streamed = "".join(stream.push(i) for i in case["ids"]) + stream.flush()
        assert streamed == tokenizer.decode(case["ids"], skip_special_tokens=skip_special_tokens), repr(case["text"])


# --- construction from metadata ------------------------------------------------------------------


def tiny_vocabulary(**overrides) -> Metadata:
    keys = dict(
        tokenizer__ggml__model="gpt2",
        tokenizer__ggml__pre="gpt-2",
        tokenizer__ggml__tokens=["<s>", "</s>", "a", "b", "ab", "Ġ", "Ġab", "<tool>"],
        tokenizer__ggml__token_type=[3, 3, 1, 1, 1, 1, 1, 4],
        tokenizer__ggml__merges=["a b", "Ġ ab"],
        tokenizer__ggml__bos_token_id=0,
        tokenizer__ggml__eos_token_id=1,
        tokenizer__ggml__add_bos_token=True,
    )
    keys.update(overrides)
    return Metadata(**keys)


def test_merges_bos_and_user_defined_tokens_of_a_tiny_vocabulary():
    tokenizer = GGUFTokenizer.from_gguf(tiny_vocabulary())
    assert tokenizer.encode("ab ab") == [0, 4, 6]  # BOS, then "ab" and "Ġab" from the two merges
    assert tokenizer.encode("ab ab", add_special_tokens=False) == [4, 6]
    assert tokenizer.encode("<tool>ab", add_special_tokens=False) == [7, 4]  # user-defined: one id
    assert tokenizer.decode([0, 7, 4, 6], skip_special_tokens=True) == "<tool>ab ab"  # only control tokens drop
    assert tokenizer.stop_token_ids == (1,)


def test_other_tokenizer_models_are_rejected_by_name():
    with pytest.raises(ModelFormatError, match="tokenizer.ggml.model = 'llama' is not supported"):
        GGUFTokenizer.from_gguf(tiny_vocabulary(tokenizer__ggml__model="llama"))


def test_unknown_pre_tokenizer_is_rejected_by_name():
    with pytest.raises(ModelFormatError, match="tokenizer.ggml.pre = 'qwen2' is not supported"):
        GGUFTokenizer.from_gguf(tiny_vocabulary(tokenizer__ggml__pre="qwen2"))
