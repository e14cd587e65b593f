"""The GGUF tokenizer gives llama.cpp's ids, decodes back to the text, and streams whole characters.

Reference ids: tests/data/smollm2_tokenizer_cases.json (byte-level BPE, SmolLM2), written once by
scripts/make_tokenizer_reference.py, and tests/data/gemma3_tokenizer_cases.json (SentencePiece,
Gemma 3 270M; also the same vocabulary with add_space_prefix, as Llama 2 and Mistral files have it),
written by scripts/make_gemma3_tokenizer_reference.py, and tests/data/pre_tokenizer_cases.json (SmolLM2's
vocabulary plus a few tokens, under every tokenizer.ggml.pre value the loader maps: Llama 3's llama-bpe,
Qwen's qwen2, ...), written by scripts/make_pre_tokenizer_reference.py, all with llama-cpp-python (CI has
no llama.cpp).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notebook_llm.errors import InvalidRequestError, ModelFormatError
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.loader.models_offline import default_model_path
from notebook_llm.loader.tokenizer import PRE_TOKENIZERS, GGUFTokenizer

REFERENCE = json.loads((Path(__file__).parent / "data" / "smollm2_tokenizer_cases.json").read_text(encoding="utf-8"))
CASES = REFERENCE["cases"]
GEMMA3_REFERENCE = json.loads((Path(__file__).parent / "data" / "gemma3_tokenizer_cases.json").read_text(encoding="utf-8"))
GEMMA3_CASES = GEMMA3_REFERENCE["cases"]
PRE_REFERENCE = json.loads((Path(__file__).parent / "data" / "pre_tokenizer_cases.json").read_text(encoding="utf-8"))


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
    with pytest.raises(ModelFormatError, match="tokenizer.ggml.model = 't5' is not supported"):
        GGUFTokenizer.from_gguf(tiny_vocabulary(tokenizer__ggml__model="t5"))


def tiny_sentencepiece(**overrides) -> Metadata:
    """▁ for spaces; "ab" outranks "▁a" (higher score), byte tokens for what the vocabulary lacks."""
    tokens = ["<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA9>", "▁", "a", "b", "ab", "▁a", "▁ab", "<br>"]
    keys = dict(
        tokenizer__ggml__model="llama",
        tokenizer__ggml__tokens=tokens,
        tokenizer__ggml__scores=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -9.0, -7.0, -8.0, -1.0, -2.0, -3.0, 0.0],
        tokenizer__ggml__token_type=[2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 1, 1, 4],
        tokenizer__ggml__bos_token_id=1,
        tokenizer__ggml__eos_token_id=2,
        tokenizer__ggml__unknown_token_id=0,
        tokenizer__ggml__add_bos_token=True,
        tokenizer__ggml__add_space_prefix=False,
    )
    keys.update(overrides)
    return Metadata(**keys)


def test_sentencepiece_merges_by_score_with_byte_fallback():
    tokenizer = GGUFTokenizer.from_gguf(tiny_sentencepiece())
    # " ab": ▁ a b → "ab" (score -1) before "▁a" (-2), then "▁ab" (-3).
    assert tokenizer.encode(" ab", add_special_tokens=False) == [11]
    assert tokenizer.encode("ab ab") == [1, 9, 11]
    # "é" is not in the vocabulary: its UTF-8 bytes; "\n" likewise; "<br>" is user-defined.
    assert tokenizer.encode("é\n<br>a", add_special_tokens=False) == [4, 5, 3, 12, 7]
    assert tokenizer.decode([1, 4, 5, 3, 12, 11]) == "<s>é\n<br> ab"
    assert tokenizer.decode([1, 4, 5], skip_special_tokens=True) == "é"


def test_sentencepiece_space_prefix_goes_before_each_piece_after_a_special_token():
    tokenizer = GGUFTokenizer.from_gguf(tiny_sentencepiece(tokenizer__ggml__add_space_prefix=True))
    assert tokenizer.encode("ab<br>ab", add_special_tokens=False) == [11, 12, 11]


def test_sentencepiece_needs_a_score_per_token():
    with pytest.raises(ModelFormatError, match="scores"):
        GGUFTokenizer.from_gguf(tiny_sentencepiece(tokenizer__ggml__scores=[0.0]))


def test_unknown_pre_tokenizer_is_rejected_by_name():
    # "tekken" (Mistral Nemo) and "gpt-4o" are llama.cpp pre types whose regexes are not implemented here.
    for pre in ("tekken", "gpt-4o", "gpt2"):
        with pytest.raises(ModelFormatError, match=f"tokenizer.ggml.pre = '{pre}' is not supported.*'llama-bpe'"):
            GGUFTokenizer.from_gguf(tiny_vocabulary(tokenizer__ggml__pre=pre))


def test_missing_pre_tokenizer_is_rejected_rather_than_guessed():
    with pytest.raises(ModelFormatError, match="no tokenizer.ggml.pre"):
        GGUFTokenizer.from_gguf(tiny_vocabulary(tokenizer__ggml__pre=None))


# --- tokenizer.ggml.pre: each pre type against llama.cpp -----------------------------------------


class WithPreTokenizer:
    """SmolLM2's metadata with the reference's added tokens and merges, tokenizer.ggml.pre = `pre`,
    and no tokenizer.ggml.add_bos_token, as scripts/make_pre_tokenizer_reference.py wrote the files."""

    def __init__(self, model: GGUFModelFile, pre: str, **keys):
        added = PRE_REFERENCE["added_tokens"]
        self.keys = {
            "tokenizer.ggml.pre": pre,
            "tokenizer.ggml.add_bos_token": None,
            "tokenizer.ggml.tokens": [*model.metadata("tokenizer.ggml.tokens"), *(token for token, _ in added)],
            "tokenizer.ggml.merges": [*model.metadata("tokenizer.ggml.merges"), *(merge for _, merge in added if merge)],
            "tokenizer.ggml.token_type": [*model.metadata("tokenizer.ggml.token_type"), *[1] * len(added)],
            **{key.replace("__", "."): value for key, value in keys.items()},
        }
        self.model = model

    def metadata(self, key, default=None):
        if key in self.keys:
            return default if self.keys[key] is None else self.keys[key]
        return self.model.metadata(key, default)


@pytest.fixture(scope="module")
def smollm2_file() -> GGUFModelFile:
    model = GGUFModelFile(default_model_path())
    assert PRE_REFERENCE["model_file"] == model.path.name
    return model


def pre_type_groups() -> list:
    """One param per distinct spec (the names llama.cpp treats alike), so each tokenizer is built once."""
    groups: dict = {}
    for name, spec in PRE_TOKENIZERS.items():
        groups.setdefault(spec, []).append(name)
    return [pytest.param(names, id="+".join(names)) for names in groups.values()]


@pytest.mark.slow
def test_pre_tokenizer_reference_covers_every_mapped_pre_type():
    cases = PRE_REFERENCE["cases"]
    assert {case["pre"] for case in cases} == set(PRE_TOKENIZERS)
    assert all(sum(case["pre"] == name for case in cases) >= 45 for name in PRE_TOKENIZERS)


@pytest.mark.slow
@pytest.mark.parametrize("names", pre_type_groups())
def test_pre_tokenizer_ids_and_text_match_llama_cpp(smollm2_file, names):
    """Digit runs, contractions in both cases, runs of spaces and newlines, CJK, emoji, code: the ids
    (BOS by the pre type's default included) and llama.cpp's detokenized text, for every name."""
    tokenizer = GGUFTokenizer.from_gguf(WithPreTokenizer(smollm2_file, names[0]))
    cases = [case for case in PRE_REFERENCE["cases"] if case["pre"] in names]
    mismatched = [(case["pre"], case["text"]) for case in cases if tokenizer.encode(case["text"]) != case["ids"]]
    assert not mismatched
    assert all(tokenizer.decode(case["ids"]) == case["llama_cpp_text"] for case in cases)


def reference_pieces(pre: str, text: str, tokenizer: GGUFTokenizer) -> list[str]:
    (case,) = [c for c in PRE_REFERENCE["cases"] if c["pre"] == pre and c["text"] == text]
    return [tokenizer.token_to_piece(i) for i in case["ids"]]


@pytest.mark.slow
def test_pre_types_differ_where_their_regexes_do(smollm2_file):
    """The reference itself shows the differences the regexes make, so a wrong mapping cannot pass."""
    pieces = GGUFTokenizer.from_gguf(WithPreTokenizer(smollm2_file, "gpt-2"))  # the same vocabulary for all
    bos = "<|im_start|>"
    assert reference_pieces("llama-bpe", "12345678", pieces) == [bos, "123", "456", "78"]  # threes
    assert reference_pieces("qwen2", "12345678", pieces) == list("12345678")  # single digits
    assert reference_pieces("gpt-2", "12345678", pieces) == ["12", "34", "56", "78"]  # one word, merged
    # llama-bpe sets ignore_merges: " HelloWorld" is a vocabulary entry that no merge reaches.
    assert reference_pieces("llama-bpe", " HelloWorld and HelloWorld, helloWorld", pieces)[1] == " HelloWorld"
    assert reference_pieces("dbrx", " HelloWorld and HelloWorld, helloWorld", pieces)[:2] == [" Hello", "World"]
    # Upper-case contractions are split off by Llama 3 and Qwen, not by GPT-2.
    assert "'T" in reference_pieces("qwen2", "I'm DON'T you're WE'LL it's THEY'VE she'D I'M", pieces)
    assert "'T" not in reference_pieces("gpt-2", "I'm DON'T you're WE'LL it's THEY'VE she'D I'M", pieces)
    # Llama 3 and Qwen keep newlines on a punctuation run and let one mark lead a word.
    assert "?\n" in reference_pieces("qwen2", "what?\nreally:\n\nyes", pieces)
    assert "?\n" not in reference_pieces("gpt-2", "what?\nreally:\n\nyes", pieces)
    assert "(hello" in reference_pieces("qwen2", "(hello) [world] {x} \"quoted\" 'single' (Hello", pieces)
    assert "(hello" not in reference_pieces("smollm", "(hello) [world] {x} \"quoted\" 'single' (Hello", pieces)


@pytest.mark.slow
def test_llama3_adds_bos_unless_the_file_says_not_to(smollm2_file):
    assert GGUFTokenizer.from_gguf(WithPreTokenizer(smollm2_file, "llama-bpe")).encode("hi")[0] == 1
    explicit = WithPreTokenizer(smollm2_file, "llama-bpe", tokenizer__ggml__add_bos_token=False)
    assert GGUFTokenizer.from_gguf(explicit).encode("hi") == GGUFTokenizer.from_gguf(explicit).encode("hi", False)
    assert GGUFTokenizer.from_gguf(WithPreTokenizer(smollm2_file, "qwen2")).add_bos is False


# --- Gemma 3: SentencePiece BPE against llama.cpp ------------------------------------------------


class WithSpacePrefix:
    """The Gemma 3 file's metadata, but tokenizer.ggml.add_space_prefix = true."""

    def __init__(self, model: GGUFModelFile):
        self.model = model

    def metadata(self, key, default=None):
        return True if key == "tokenizer.ggml.add_space_prefix" else self.model.metadata(key, default)


@pytest.fixture(scope="module")
def gemma3_file() -> GGUFModelFile:
    from .test_loader_gguf import gemma3_270m_path

    model = GGUFModelFile(gemma3_270m_path())
    assert GEMMA3_REFERENCE["model_file"] == model.path.name
    return model


@pytest.fixture(scope="module")
def gemma3_tokenizer(gemma3_file) -> GGUFTokenizer:
    return gemma3_file.tokenizer()


def gemma3_cases(*kinds: str) -> list:
    return [pytest.param(c, id=f"{c['kind']}{i}") for i, c in enumerate(GEMMA3_CASES) if c["kind"] in kinds]


@pytest.mark.slow
def test_gemma3_reference_covers_strings_chats_and_the_space_prefix():
    kinds = [case["kind"] for case in GEMMA3_CASES]
    assert kinds.count("string") >= 50 and kinds.count("chat") >= 8 and kinds.count("space_prefix") >= 50


@pytest.mark.slow
def test_gemma3_ids_match_llama_cpp(gemma3_tokenizer):
    """Tricky strings (whitespace runs, HTML tags, byte fallback, repeated characters, control tokens
    in text) with and without BOS, and chat prompts of llama.cpp's gemma template."""
    mismatched = [case["text"] for case in GEMMA3_CASES if case["kind"] in ("string", "raw", "chat")
                  and gemma3_tokenizer.encode(case["text"], add_special_tokens=case["add_bos"]) != case["ids"]]
    assert not mismatched


@pytest.mark.slow
def test_gemma3_vocabulary_with_space_prefix_matches_llama_cpp(gemma3_file):
    tokenizer = GGUFTokenizer.from_gguf(WithSpacePrefix(gemma3_file))
    mismatched = [case["text"] for case in GEMMA3_CASES if case["kind"] == "space_prefix"
                  and tokenizer.encode(case["text"]) != case["ids"]]
    assert not mismatched


@pytest.mark.slow
def test_gemma3_decode_equals_llama_cpp_detokenize_and_the_hf_decoder(gemma3_tokenizer):
    for case in GEMMA3_CASES:
        if case["kind"] == "space_prefix":
            continue
        text = gemma3_tokenizer.decode(case["ids"])
        assert text == case["llama_cpp_text"], repr(case["text"])
        assert gemma3_tokenizer.hf.decode(case["ids"], skip_special_tokens=False) == text


@pytest.mark.slow
def test_gemma3_stream_deltas_join_to_decode(gemma3_tokenizer):
    for case in GEMMA3_CASES:
        stream = gemma3_tokenizer.stream_decoder(skip_special_tokens=True)
        streamed = "".join(stream.push(i) for i in case["ids"]) + stream.flush()
        assert streamed == gemma3_tokenizer.decode(case["ids"], skip_special_tokens=True), repr(case["text"])


@pytest.mark.slow
def test_gemma3_special_ids_stop_tokens_and_pieces(gemma3_tokenizer):
    tok = gemma3_tokenizer
    assert tok.vocab_size == 262144
    assert (tok.bos_token_id, tok.eos_token_id, tok.add_bos) == (2, 1, True)
    assert tok.stop_token_ids == (1, 106)  # <eos>, <end_of_turn>
    assert tok.token_to_piece(106) == "<end_of_turn>" and tok.is_special(106)
    (hello,) = tok.encode(" hello", add_special_tokens=False)
    assert tok.id_to_token(hello) == "▁hello" and tok.token_to_piece(hello) == " hello"
    assert tok.token_to_bytes(tok.token_to_id("<0xE2>")) == b"\xe2"
    assert tok.encode("\n\n", add_special_tokens=False) == [108]  # a user-defined token, not special
    assert tok.decode([2, 108], skip_special_tokens=True) == "\n\n"


@pytest.mark.slow
def test_gemma3_builtin_chat_template_gives_llama_cpp_gemma_prompts(gemma3_file, gemma3_tokenizer):
    """The GGUF has no tokenizer.chat_template; the loader supplies Gemma's turn format. Rendered
    with the file's BOS it is llama.cpp's built-in "gemma" text after <bos>, and its ids (no BOS
    added: the text has it) are llama.cpp's ids with add_bos."""
    from notebook_llm.loader.chat_template import ChatTemplate

    assert gemma3_file.metadata("tokenizer.chat_template") is None
    template = ChatTemplate(gemma3_file.chat_template, bos_token="<bos>", eos_token="<eos>")
    for case in GEMMA3_CASES:
        if case["kind"] == "chat":
            text = template.render(case["messages"], add_generation_prompt=True)
            assert text == "<bos>" + case["text"]
            assert gemma3_tokenizer.encode(text, add_special_tokens=False) == case["ids"]
