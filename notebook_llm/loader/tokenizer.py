"""Build a `tokenizers.Tokenizer` from a GGUF file's vocabulary, and decode tokens for streaming.

Two GGUF tokenizer models are mapped, each held to llama.cpp's ids by tests/test_tokenizer.py:
- "gpt2": byte-level BPE from `tokenizer.ggml.tokens` and `.merges` (SmolLM2, Llama 3, Qwen, ...).
  The words the merges run in come from the regexes of the file's `tokenizer.ggml.pre` (Llama 3's
  "llama-bpe": digits in threes; Qwen's "qwen2": single digits; SmolLM's "smollm"; ...), as
  llama.cpp chooses them; an unknown pre type is an error, never a guess.
- "llama": SentencePiece BPE (Gemma, Llama 2, Mistral). The file has tokens and scores but no
  merges. llama.cpp's tokenizer replaces spaces by '▁', starts from single characters, and
  repeatedly joins the adjacent pair whose joined text is a token with the highest score (the
  leftmost on ties); characters outside the vocabulary become <0xXX> byte tokens. That is a BPE
  whose merges are every split (left, right) of every token into two tokens, ranked by the
  token's score: built here as a `tokenizers` BPE with byte fallback (Gemma 3: ~514k merges from
  262k tokens, ~4 s). Control and user-defined tokens (Gemma's runs of spaces, tabs and newlines,
  its HTML tags) are split out of the text first, as llama.cpp does.
This module reads metadata through any object with `.metadata(key, default)` (a `GGUFModelFile`);
it knows nothing of tensors or the GPU.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

from ..errors import InvalidRequestError, ModelFormatError

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Tokens that end a turn, found by their text as llama.cpp does (its end-of-generation list).
END_OF_TURN_TOKENS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<end_of_turn>",
)

# --- byte-level BPE pre-tokenizers, chosen by tokenizer.ggml.pre ---------------------------------
#
# llama.cpp cuts the text into words with a list of regexes applied in turn (each one isolates its
# matches inside every piece the previous one left), then runs the merges inside each word. The
# regexes are the ones in each model family's tokenizer.json, with one change that llama.cpp also
# makes: the contractions are spelled with explicit case classes ('[sS]) instead of (?i:'s), since
# a case-insensitive match would also take "'ſ" (long s folds to s) where llama.cpp does not.
# Held to llama.cpp's ids, per pre type, by tests/test_tokenizer.py (pre_tokenizer_cases.json).

_CONTRACTIONS = r"'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]"
# GPT-2: contractions, words, numbers and punctuation runs with one optional leading space.
_GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# Llama 3 (tiktoken cl100k style): a word takes one leading non-letter (space or punctuation),
# numbers go in groups of at most three digits, punctuation runs keep their trailing newlines.
_LLAMA3_REGEX = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen 2 / 2.5 / 3: Llama 3's regex with every digit on its own.
_QWEN2_REGEX = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# llama.cpp's fallback ("default"): punctuation runs, GPT-2 words, digit runs, then threes of ASCII digits.
_DEFAULT_REGEXES = (r"[\p{P}\$\+<=>\^~\|]+", r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
                    r"\p{N}+", r"[0-9][0-9][0-9]")


@dataclass(frozen=True)
class PreTokenizerSpec:
    """How llama.cpp's BPE tokenizer treats one family of tokenizer.ggml.pre values."""

    regexes: tuple[str, ...]
    """Applied in turn; each isolates its matches inside every piece the previous one left."""
    ignore_merges: bool = False
    """A word that is itself a vocabulary entry becomes that token without running the merges."""
    add_bos: bool = False
    """Whether BOS is prepended when the file has no tokenizer.ggml.add_bos_token."""

    def build(self) -> pre_tokenizers.PreTokenizer:
        splits = [pre_tokenizers.Split(Regex(regex), behavior="isolated") for regex in self.regexes]
        # The words' bytes become GPT-2's printable characters, as the vocabulary writes them.
        return pre_tokenizers.Sequence([*splits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


GPT2_PRE = PreTokenizerSpec((_GPT2_REGEX,))
# The StarCoder family (SmolLM among them) first isolates every \p{N} character; without that,
# " ½", " ²", " ٣" or " Ⅻ" merge with their space and the ids differ from llama.cpp's.
STARCODER_PRE = PreTokenizerSpec((r"\p{N}", _GPT2_REGEX))
LLAMA3_PRE = PreTokenizerSpec((_LLAMA3_REGEX,), ignore_merges=True, add_bos=True)
DBRX_PRE = PreTokenizerSpec((_LLAMA3_REGEX,))  # Llama 3's regex, merges always run, no BOS by default
QWEN2_PRE = PreTokenizerSpec((_QWEN2_REGEX,))
DEFAULT_PRE = PreTokenizerSpec(_DEFAULT_REGEXES)

# tokenizer.ggml.pre → spec, as llama.cpp's llama_vocab::impl::load maps the names (checked against
# the build in llama-cpp-python 0.3.36). Names llama.cpp knows whose regexes are not here (tekken,
# gpt-4o, deepseek-coder, ...) are rejected by name, never guessed.
PRE_TOKENIZERS: Mapping[str, PreTokenizerSpec] = MappingProxyType({
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3"), LLAMA3_PRE),
    **dict.fromkeys(("dbrx", "smaug-bpe"), DBRX_PRE),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"), QWEN2_PRE),
    **dict.fromkeys(("gpt-2", "phi-2", "mpt", "olmo", "jais"), GPT2_PRE),
    **dict.fromkeys(("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"), STARCODER_PRE),
    "default": DEFAULT_PRE,
})


SENTENCEPIECE_SPACE = "\u2581"  # '▁', which SentencePiece vocabularies write for a space


class Metadata(Protocol):
    def metadata(self, key: str, default: Any = None) -> Any: ...


def _byte_of_char() -> dict[str, int]:
    """GPT-2's reversible byte ↔ printable character map, inverted: char in a vocab token → byte.

    Bytes that print as themselves in Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') keep their code point;
    the other 68 bytes take U+0100 onwards in byte order (so a space is 'Ġ', a newline 'Ċ').
    """
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    code_point = {byte: byte for byte in printable}
    for byte in range(256):
        if byte not in code_point:
            code_point[byte] = 0x100 + len(code_point) - len(printable)
    return {chr(cp): byte for byte, cp in code_point.items()}


def _add_vocabulary_tokens(tokenizer: Tokenizer, tokens: list[str], token_types: list[int]) -> None:
    """Control and unknown tokens in text become their single ids (llama.cpp's parse_special=True);
    user-defined tokens are matched too, but are not special (decode keeps them)."""
    tokenizer.add_special_tokens(
        [AddedToken(tokens[i], special=True, normalized=False) for i, kind in enumerate(token_types) if kind in (CONTROL, UNKNOWN)]
    )
    tokenizer.add_tokens(
        [AddedToken(tokens[i], special=False, normalized=False) for i, kind in enumerate(token_types) if kind == USER_DEFINED]
    )


def _build_sentencepiece_bpe(
    tokens: list[str], scores: list[float], token_types: list[int], unknown_token_id: int | None, add_space_prefix: bool
) -> Tokenizer:
    vocab = {token: i for i, token in enumerate(tokens)}
    # Every way to write a normal or byte token as two tokens is a merge, ranked by the token's score
    # (higher first; ties by id). Control and user-defined tokens never form inside a piece of text:
    # they are split out of it before the merges run.
    ranked = []
    for i, token in enumerate(tokens):
        if token_types[i] not in (NORMAL, BYTE):
            continue
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                ranked.append((-scores[i], i, left, right))
    ranked.sort()
    unknown = tokens[unknown_token_id] if unknown_token_id is not None else None
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[(left, right) for _, _, left, right in ranked],
                                     unk_token=unknown, fuse_unk=False, byte_fallback=True))
    # llama.cpp escapes spaces as '▁', after prefixing a space to each piece of text that starts the
    # input or follows a special token when add_space_prefix is set: Prepend runs on each such piece.
    steps = [normalizers.Replace(" ", SENTENCEPIECE_SPACE)]
    if add_space_prefix:
        steps.insert(0, normalizers.Prepend(SENTENCEPIECE_SPACE))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SENTENCEPIECE_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    _add_vocabulary_tokens(tokenizer, tokens, token_types)
    return tokenizer


def pre_tokenizer_spec(pre: str | None) -> PreTokenizerSpec:
    """The spec for a file's tokenizer.ggml.pre, or ModelFormatError naming the value and the supported ones."""
    if pre is None:
        raise ModelFormatError(
            "the GGUF file has a 'gpt2' tokenizer but no tokenizer.ggml.pre, so its pre-tokenizer is unknown "
            "(llama.cpp then guesses 'default' and warns that generation quality degrades); convert the model "
            f"again with a current llama.cpp. Supported values: {sorted(PRE_TOKENIZERS)}")
    try:
        return PRE_TOKENIZERS[pre]
    except KeyError:
        raise ModelFormatError(
            f"tokenizer.ggml.pre = {pre!r} is not supported yet: its pre-tokenizer regexes are not implemented, "
            f"and another family's would give wrong token ids. Supported: {sorted(PRE_TOKENIZERS)}") from None


def _build_byte_level_bpe(
    tokens: list[str], merges: list[str], token_types: list[int], spec: PreTokenizerSpec
) -> Tokenizer:
    vocab = {token: i for i, token in enumerate(tokens)}  # a repeated string keeps its last id, as in llama.cpp
    # A merge is "left right"; llama.cpp splits at the first space after the first character.
    pairs = []
    for merge in merges:
        cut = merge.find(" ", 1)
        if cut < 0:
            raise ModelFormatError(f"tokenizer.ggml.merges entry {merge!r} has no space between its two parts")
        pairs.append((merge[:cut], merge[cut + 1 :]))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False,
                                     ignore_merges=spec.ignore_merges))
    tokenizer.pre_tokenizer = spec.build()
    tokenizer.decoder = decoders.ByteLevel()
    _add_vocabulary_tokens(tokenizer, tokens, token_types)
    return tokenizer


def _byte_level_token_bytes(tokens: list[str], token_types: list[int]) -> list[bytes]:
    byte_of = _byte_of_char()
    table = []
    for text, kind in zip(tokens, token_types):
        if kind in (CONTROL, UNKNOWN, USER_DEFINED) or not all(ch in byte_of for ch in text):
            table.append(text.encode("utf-8"))  # written as plain text, not byte-mapped
        else:
            table.append(bytes(byte_of[ch] for ch in text))
    return table


def _sentencepiece_token_bytes(tokens: list[str], token_types: list[int]) -> list[bytes]:
    """'▁' is a space in normal tokens; <0xXX> byte tokens are that byte; the rest is their text."""
    table = []
    for text, kind in zip(tokens, token_types):
        if kind == BYTE:
            table.append(bytes([int(text[3:-1], 16)]))
        elif kind == NORMAL:
            table.append(text.replace(SENTENCEPIECE_SPACE, " ").encode("utf-8"))
        else:
            table.append(text.encode("utf-8"))
    return table


class GGUFTokenizer:
    """A GGUF file's tokenizer: ids from text, text from ids, and the ids that end generation.

    `hf` is the underlying `tokenizers.Tokenizer`. Decoding goes through each token's bytes so
    that `decode` and `StreamDecoder` agree byte for byte.
    """

    def __init__(
        self,
        hf: Tokenizer,
        tokens: list[str],
        token_types: list[int],
        *,
        bos_token_id: int | None,
        eos_token_id: int | None,
        add_bos: bool = False,
        add_eos: bool = False,
        extra_stop_token_ids: Iterable[int] = (),
        token_bytes: list[bytes] | None = None,
    ):
        self.hf = hf
        self._tokens = tokens
        self._types = token_types
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.add_bos = add_bos
        self.add_eos = add_eos
        self._token_bytes = token_bytes if token_bytes is not None else _byte_level_token_bytes(tokens, token_types)
        self._special_ids = frozenset(i for i, kind in enumerate(token_types) if kind in (CONTROL, UNKNOWN))
        stops = [eos_token_id, *extra_stop_token_ids, *(hf.token_to_id(text) for text in END_OF_TURN_TOKENS)]
        self.stop_token_ids: tuple[int, ...] = tuple(dict.fromkeys(i for i in stops if i is not None))
        self._set_post_processor()

    @classmethod
    def from_gguf(cls, source: Metadata) -> GGUFTokenizer:
        """Build from a GGUF file's `tokenizer.ggml.*` metadata."""
        kind = source.metadata("tokenizer.ggml.model")
        tokens = source.metadata("tokenizer.ggml.tokens")
        token_types = source.metadata("tokenizer.ggml.token_type") or ([NORMAL] * len(tokens) if tokens else [])

        def token_id(name: str) -> int | None:
            value = source.metadata(f"tokenizer.ggml.{name}_token_id")
            return None if value is None else int(value)

        if kind == "gpt2":
            merges = source.metadata("tokenizer.ggml.merges")
            if not tokens or merges is None:
                raise ModelFormatError("a 'gpt2' tokenizer needs tokenizer.ggml.tokens and tokenizer.ggml.merges")
            spec = pre_tokenizer_spec(source.metadata("tokenizer.ggml.pre"))
            hf = _build_byte_level_bpe(tokens, merges, token_types, spec)
            token_bytes = _byte_level_token_bytes(tokens, token_types)
            default_add_bos = spec.add_bos
        elif kind == "llama":
            scores = source.metadata("tokenizer.ggml.scores")
            if not tokens or scores is None or len(scores) != len(tokens):
                raise ModelFormatError("a 'llama' (SentencePiece) tokenizer needs tokenizer.ggml.tokens and as many "
                                       "tokenizer.ggml.scores")
            add_space_prefix = bool(source.metadata("tokenizer.ggml.add_space_prefix", True))  # llama.cpp's default
            hf = _build_sentencepiece_bpe(tokens, scores, token_types, token_id("unknown"), add_space_prefix)
            token_bytes = _sentencepiece_token_bytes(tokens, token_types)
            default_add_bos = True  # llama.cpp's default for SentencePiece vocabularies
        else:
            raise ModelFormatError(
                f"tokenizer.ggml.model = {kind!r} is not supported yet; supported: 'gpt2' (byte-level BPE), "
                "'llama' (SentencePiece BPE)"
            )

        return cls(
            hf,
            tokens,
            token_types,
            bos_token_id=token_id("bos"),
            eos_token_id=token_id("eos"),
            add_bos=bool(source.metadata("tokenizer.ggml.add_bos_token", default_add_bos)),
            add_eos=bool(source.metadata("tokenizer.ggml.add_eos_token", False)),
            extra_stop_token_ids=[i for i in (token_id("eot"), token_id("eom")) if i is not None],
            token_bytes=token_bytes,
        )

    def _set_post_processor(self) -> None:
        if self.add_bos and self.bos_token_id is None or self.add_eos and self.eos_token_id is None:
            raise ModelFormatError("tokenizer.ggml.add_bos/eos_token is set but the token id is missing")
        before = ["bos"] if self.add_bos else []
        after = ["eos"] if self.add_eos else []
        if not before and not after:
            return
        named = {"bos": self.bos_token_id, "eos": self.eos_token_id}
        used = [(self._tokens[named[n]], named[n]) for n in dict.fromkeys(before + after)]
        single = [self._tokens[named[n]] for n in before] + ["$A"] + [self._tokens[named[n]] for n in after]
        self.hf.post_processor = processors.TemplateProcessing(single=" ".join(single), special_tokens=used)

    # --- text ↔ ids -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`. Control tokens written in the text (`<|im_start|>`) become their ids;
        `add_special_tokens` adds BOS/EOS where the file asks for them."""
        if not isinstance(text, str):
            raise InvalidRequestError(f"text to encode must be a str, got {type(text).__name__}")
        return self.hf.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The text of `ids`; bytes that do not form UTF-8 become U+FFFD."""
        ids = [self._check_id(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._special_ids]
        return b"".join(self._token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    def token_to_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (a piece of a character for some byte-level tokens)."""
        return self._token_bytes[self._check_id(token_id)]

    def token_to_piece(self, token_id: int) -> str:
        """The token's text, as llama.cpp prints it (U+FFFD for a partial character)."""
        return self.token_to_bytes(token_id).decode("utf-8", errors="replace")

    def id_to_token(self, token_id: int) -> str:
        """The vocabulary entry itself ('Ġhello' in byte-level BPE, '▁hello' in SentencePiece, for ' hello')."""
        return self._tokens[self._check_id(token_id)]

    def token_to_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    def stream_decoder(self, skip_special_tokens: bool = False) -> StreamDecoder:
        return StreamDecoder(self, skip_special_tokens=skip_special_tokens)

    def _check_id(self, token_id: int) -> int:
        if not 0 <= token_id < len(self._tokens):
            raise InvalidRequestError(
                f"token id {token_id} is out of range; the vocabulary has ids 0..{len(self._tokens) - 1}"
            )
        return int(token_id)


class StreamDecoder:
    """Text deltas from token ids fed one at a time. A character whose UTF-8 bytes are split over
    several tokens (emoji, CJK in byte-level BPE) is held back until its last byte arrives, so the
    deltas joined equal `tokenizer.decode(all ids)`."""

    def __init__(self, tokenizer: GGUFTokenizer, skip_special_tokens: bool = False):
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became complete (possibly '')."""
        if self._skip_special_tokens and self._tokenizer.is_special(token_id):
            return ""
        return self._utf8.decode(self._tokenizer.token_to_bytes(token_id))

    @property
    def pending_bytes(self) -> bytes:
        """Bytes of an unfinished character, waiting for the next token."""
        return self._utf8.getstate()[0]

    def flush(self) -> str:
        """End of stream: bytes still waiting become U+FFFD."""
        return self._utf8.decode(b"", final=True)
