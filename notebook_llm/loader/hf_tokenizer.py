"""A Hugging Face `tokenizer.json` (as MLC-LLM model repositories ship it) behind the engine's tokenizer interface.

The file is loaded with `tokenizers.Tokenizer.from_file` and used as it is for text → ids (its own
normalizer, pre-tokenizer, added tokens and post-processor). For ids → text the engine decodes
through each token's bytes (loader/tokenizer.py's `GGUFTokenizer`, whose `decode`, streaming
decoder and grammar hooks are reused here unchanged), so this module works out those bytes:
byte-level vocabularies (GPT-2's byte-to-character map: Llama 3, Qwen, SmolLM2) map each
character back to its byte; SentencePiece vocabularies (Mistral, Phi-3, Llama 2: a '▁' for a space
and <0xXX> byte-fallback tokens) map '▁' to a space and byte tokens to their byte; added tokens are
their text. Added tokens marked special are control tokens (`is_special`, skipped by
`skip_special_tokens`). Nothing here touches weights or the GPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from ..errors import ModelFormatError
from .tokenizer import (
    BYTE,
    CONTROL,
    NORMAL,
    USER_DEFINED,
    GGUFTokenizer,
    _byte_level_token_bytes,
    _sentencepiece_token_bytes,
)

_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
PADDING_TOKEN = "<|notebook_llm_padding_{}|>"  # ids past the tokenizer's vocabulary, up to the model's


def _decoder_types(decoder: dict[str, Any] | None) -> set[str]:
    """Every decoder type in the file's decoder (Sequence members included)."""
    if not decoder:
        return set()
    found = {decoder.get("type", "")}
    for member in decoder.get("decoders") or ():
        found |= _decoder_types(member)
    return found


def tokenizer_from_json(
    path: str | Path,
    *,
    vocab_size: int | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    extra_stop_token_ids: Iterable[int] = (),
) -> GGUFTokenizer:
    """The tokenizer of a `tokenizer.json`; ids past its vocabulary up to `vocab_size` (the model's
    embedding rows, often padded) become special padding tokens that decode to nothing."""
    path = Path(path)
    try:
        hf = Tokenizer.from_file(str(path))
        spec = json.loads(path.read_text(encoding="utf-8"))
    except Exception as error:  # OSError, ValueError, and the plain Exception tokenizers raises on bad JSON
        raise ModelFormatError(f"{path} is not a readable tokenizer.json: {error}") from error
    by_id = {index: token for token, index in hf.get_vocab(with_added_tokens=True).items()}
    size = max(max(by_id, default=-1) + 1, vocab_size or 0)
    added = hf.get_added_tokens_decoder()
    byte_fallback = bool((spec.get("model") or {}).get("byte_fallback"))
    tokens, types = [], []
    for index in range(size):
        if index in added:
            tokens.append(added[index].content)
            types.append(CONTROL if added[index].special else USER_DEFINED)
        elif index in by_id:
            tokens.append(by_id[index])
            types.append(BYTE if byte_fallback and _BYTE_TOKEN.match(by_id[index]) else NORMAL)
        else:
            tokens.append(PADDING_TOKEN.format(index))
            types.append(CONTROL)
    decoders = _decoder_types(spec.get("decoder"))
    if "ByteLevel" in decoders:
        token_bytes = _byte_level_token_bytes(tokens, types)
    elif decoders & {"Metaspace", "Replace", "ByteFallback"}:
        token_bytes = _sentencepiece_token_bytes(tokens, types)
    else:
        token_bytes = [hf.decode([i], skip_special_tokens=False).encode("utf-8") if i in by_id else t.encode("utf-8")
                       for i, t in enumerate(tokens)]
    for index in range(size):
        if index not in by_id:
            token_bytes[index] = b""
    return GGUFTokenizer(hf, tokens, types, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                         extra_stop_token_ids=extra_stop_token_ids, token_bytes=token_bytes)
