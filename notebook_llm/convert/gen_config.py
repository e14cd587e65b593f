"""`mlc-chat-config.json` for a Hugging Face model directory, as MLC-LLM's `gen_config` writes it,
and the tokenizer files copied beside it.

From mlc-llm's python/mlc_llm/interface/gen_config.py and protocol/mlc_chat_config.py:

- model_type, quantization, model_config (convert/architectures.py, overrides applied) and,
  at the top level, vocab_size, context_window_size, sliding_window_size (−1: none),
  prefill_chunk_size, attention_sink_size (−1: none), tensor_parallel_shards,
  pipeline_parallel_stages, active_vocab_size (the tokenizer's size, added tokens included).
- Sampling defaults and token ids: each of temperature, top_p, presence/frequency/repetition
  penalty, pad/bos/eos_token_id is taken from generation_config.json, else config.json, else
  MLC's system default (temperature 1.0, top_p 1.0, penalties 0 / 0 / 1.0, pad 0, bos 1, eos 2).
- conv_template: a named MLC template (convert/conv_templates.py) or a JSON file's object, checked
  by loader/conv_template.py. Unlike MLC, its stop_token_ids are checked against tokenizer.json:
  an id that is not a special (added) token there would end replies at an ordinary token, so it
  is dropped with a warning (MLC's "chatml" hard-codes id 2, <|im_end|> in SmolLM2's vocabulary
  only).
- tokenizer_files: those of tokenizer.model, tokenizer.json, vocab.json, merges.txt,
  added_tokens.json, tokenizer_config.json that exist, copied; tokenizer_info from
  tokenizer.json's decoder and normalizer (MLC's detection, reduced to what those say).

A directory without tokenizer.json is refused: the engine reads Hugging Face tokenizer.json only
(MLC converts tokenizer.model with transformers, which is not a dependency here).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from ..errors import InvalidRequestError, ModelFormatError
from ..loader.conv_template import ConvTemplate
from .architectures import OVERRIDE_FIELDS, detect_model_type, model_config
from .conv_templates import CONV_TEMPLATE_NAMES, conv_template
from .hf_checkpoint import HFCheckpoint, read_json
from .quantize import quantization

CHAT_CONFIG_FILE = "mlc-chat-config.json"
CHAT_CONFIG_VERSION = "0.1.0"  # mlc-llm support/constants.py MLC_CHAT_CONFIG_VERSION
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "vocab.json", "merges.txt", "added_tokens.json",
                   "tokenizer_config.json")
# MLC's MLC_CHAT_SYSTEM_DEFAULT, for the fields neither generation_config.json nor config.json sets.
SYSTEM_DEFAULTS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "temperature": 1.0,
                   "presence_penalty": 0.0, "frequency_penalty": 0.0, "repetition_penalty": 1.0, "top_p": 1.0}


@dataclass(frozen=True)
class ChatConfigResult:
    """What gen_config wrote: the config, its path, the tokenizer files copied, and warnings."""

    config: dict[str, Any]
    path: Path
    tokenizer_files: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())


def _conv_template_object(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path).expanduser()
    if name_or_path not in CONV_TEMPLATE_NAMES and path.suffix == ".json" and path.is_file():
        data = read_json(path, "a conv_template")
        ConvTemplate.from_dict(data)  # ModelFormatError naming the bad field
        return data
    return conv_template(name_or_path)


def guess_conv_template(model_type: str, tokenizer: Tokenizer | None) -> str:
    """A template for `convert` when none is given: Qwen's and Phi-3's own, Mistral's, and for
    llama the format its special tokens show (Llama 3 headers, ChatML), else "LM" (plain text)."""
    if model_type in ("qwen2", "qwen3"):
        return model_type
    if model_type == "phi3":
        return "phi-3"
    if model_type == "mistral":
        return "mistral_default"
    vocab = tokenizer.get_vocab(with_added_tokens=True) if tokenizer is not None else {}
    if "<|start_header_id|>" in vocab:
        return "llama-3"
    if "<|im_start|>" in vocab:
        return "chatml"
    return "LM"


def _special_token_ids(tokenizer: Tokenizer) -> set[int]:
    return {index for index, token in tokenizer.get_added_tokens_decoder().items() if token.special}


def _check_stop_ids(conv: dict[str, Any], tokenizer: Tokenizer) -> list[str]:
    """Drop conv_template.stop_token_ids that are not special tokens of the tokenizer (see the
    module docstring); returns the warnings."""
    specials = _special_token_ids(tokenizer)
    kept = [i for i in conv.get("stop_token_ids", []) if i in specials]
    dropped = [i for i in conv.get("stop_token_ids", []) if i not in specials]
    if not dropped:
        return []
    conv["stop_token_ids"] = kept
    shown = {i: tokenizer.id_to_token(i) for i in dropped}
    return [(f"conv_template {conv.get('name')!r}: stop_token_ids {dropped} are not special tokens of tokenizer.json "
             f"(they are {shown}); dropped, the template's stop_str {conv.get('stop_str', [])} still ends replies")]


def _tokenizer_info(spec: Mapping[str, Any]) -> dict[str, Any]:
    """MLC's TokenizerInfo from tokenizer.json: how token strings become bytes."""

    def types(node: Any) -> set[str]:
        if not isinstance(node, Mapping):
            return set()
        found = {str(node.get("type", ""))}
        for key in ("decoders", "normalizers", "pretokenizers"):
            for member in node.get(key) or ():
                found |= types(member)
        return found

    decoders, normalizers = types(spec.get("decoder")), types(spec.get("normalizer"))
    prepend = "Prepend" in normalizers or "Metaspace" in types(spec.get("pre_tokenizer"))
    return {"token_postproc_method": "byte_level" if "ByteLevel" in decoders else "byte_fallback",
            "prepend_space_in_encode": prepend, "strip_space_in_decode": "Strip" in decoders}


def generate_chat_config(hf_dir: str | Path, quantization_name: str, output: str | Path, *,
                         conv_template_name: str | None = None, overrides: Mapping[str, Any] | None = None,
                         copy_tokenizer: bool = True) -> ChatConfigResult:
    """Write mlc-chat-config.json (and copy the tokenizer files) into `output` for the Hugging
    Face model in `hf_dir` (see the module docstring). `conv_template_name`: a name in
    CONV_TEMPLATE_NAMES or a .json file; None guesses one (`guess_conv_template`).
    `overrides`: values for OVERRIDE_FIELDS."""
    checkpoint = HFCheckpoint(hf_dir)
    quant = quantization(quantization_name)
    unknown = sorted(set(overrides or {}) - set(OVERRIDE_FIELDS))
    if unknown:
        raise InvalidRequestError(f"unknown override(s) {unknown}; allowed: {list(OVERRIDE_FIELDS)}", param=unknown[0])
    _check_override_values(overrides or {})
    model_type = detect_model_type(checkpoint.config)
    mc = model_config(model_type, checkpoint.config, overrides)
    tokenizer_json = checkpoint.path / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise ModelFormatError(f"{str(checkpoint.path)!r} has no tokenizer.json; the engine reads Hugging Face "
                               "tokenizer.json files (save one with transformers: AutoTokenizer.from_pretrained(dir)"
                               ".save_pretrained(dir))")
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_json))
    except Exception as error:  # tokenizers raises a plain Exception on a bad file
        raise ModelFormatError(f"{tokenizer_json} is not a readable tokenizer.json: {error}") from error
    conv = _conv_template_object(conv_template_name or guess_conv_template(model_type, tokenizer))
    notes = _check_stop_ids(conv, tokenizer)

    output = Path(output).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in TOKENIZER_FILES:
        source = checkpoint.path / name
        if source.is_file():
            if copy_tokenizer and source.resolve() != (output / name).resolve():
                shutil.copyfile(source, output / name)
            copied.append(name)

    config: dict[str, Any] = {
        "version": CHAT_CONFIG_VERSION, "model_type": model_type, "quantization": quant.name, "model_config": mc,
        "vocab_size": mc["vocab_size"], "context_window_size": mc.get("context_window_size", -1),
        "sliding_window_size": mc.get("sliding_window_size", -1), "prefill_chunk_size": mc["prefill_chunk_size"],
        "attention_sink_size": mc.get("attention_sink_size", -1),
        "tensor_parallel_shards": mc.get("tensor_parallel_shards", 1),
        "pipeline_parallel_stages": mc.get("pipeline_parallel_stages", 1),
        "active_vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
    }
    for key, default in SYSTEM_DEFAULTS.items():  # generation_config.json, then config.json, then MLC's default
        given = [source[key] for source in (checkpoint.generation_config, checkpoint.config)
                 if source.get(key) is not None]
        config[key] = given[0] if given else default
    config |= {"tokenizer_files": copied,
               "tokenizer_info": _tokenizer_info(json.loads(tokenizer_json.read_text(encoding="utf-8"))),
               "conv_template": conv}
    for note in notes:
        warnings.warn(note, stacklevel=2)
    path = output / CHAT_CONFIG_FILE
    path.write_text(json.dumps(_ordered(config), indent=2), encoding="utf-8")
    return ChatConfigResult(config, path, tuple(copied), tuple(notes))


# MLCChatConfig's field order, as MLC dumps it.
_ORDER = ("version", "model_type", "quantization", "model_config", "vocab_size", "context_window_size",
          "sliding_window_size", "prefill_chunk_size", "attention_sink_size", "tensor_parallel_shards",
          "pipeline_parallel_stages", "active_vocab_size", "temperature", "presence_penalty", "frequency_penalty",
          "repetition_penalty", "top_p", "tokenizer_files", "tokenizer_info", "conv_template", "pad_token_id",
          "bos_token_id", "eos_token_id")


def _ordered(config: dict[str, Any]) -> dict[str, Any]:
    return {key: config[key] for key in _ORDER if key in config} | config


_OVERRIDE_RULES = {
    "context_window_size": (lambda v: v >= 1 or v == -1, "an integer >= 1, or -1 (no limit: sliding-window models)"),
    "prefill_chunk_size": (lambda v: v >= 1, "an integer >= 1"),
    "sliding_window_size": (lambda v: v >= 1 or v == -1, "an integer >= 1, or -1 (off)"),
    "attention_sink_size": (lambda v: v >= 0, "an integer >= 0"),
    "max_batch_size": (lambda v: v >= 1, "an integer >= 1"),
}


def _check_override_values(overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if value is None:
            continue
        check, allowed = _OVERRIDE_RULES[key]
        if not isinstance(value, int) or isinstance(value, bool) or not check(value):
            raise InvalidRequestError(f"{key} is {value!r}; {allowed} is allowed", param=key)
