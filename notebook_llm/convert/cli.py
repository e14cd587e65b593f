"""`notebook-llm convert` and `notebook-llm gen-config`: argparse wiring only (the work is in
convert/weights.py and convert/gen_config.py, imported when a command runs)."""

from __future__ import annotations

import argparse
import sys
import warnings

QUANTIZATION_CHOICES = ("q4f16_1", "q4f32_1", "q0f16", "q0f32")  # convert/quantize.py QUANTIZATIONS


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", metavar="HF_DIR", help="a Hugging Face model folder: config.json, *.safetensors, "
                                                         "tokenizer.json")
    parser.add_argument("--quantization", required=True, choices=QUANTIZATION_CHOICES,
                        help="MLC quantization: q4f16_1 / q4f32_1 (4-bit, groups of 32), q0f16 / q0f32 (none)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="the folder to write")
    parser.add_argument("--context-window-size", type=int, default=None, help="default: the model's "
                                                                             "max_position_embeddings")
    parser.add_argument("--prefill-chunk-size", type=int, default=None,
                        help="default: min(context, 8192), 2048 for Qwen")
    parser.add_argument("--sliding-window-size", type=int, default=None, help="mistral only; -1: off")
    parser.add_argument("--attention-sink-size", type=int, default=None, help="mistral only")
    parser.add_argument("--max-batch-size", type=int, default=None, help="recorded in model_config (default 1)")


def add_convert_commands(commands) -> None:
    """Add `convert` and `gen-config` to the subcommands of `python -m notebook_llm` / `notebook-llm`."""
    convert = commands.add_parser(
        "convert", help="convert a Hugging Face model folder into an MLC model folder the engine loads",
        description="Quantize HF_DIR's weights as mlc_llm convert_weight does (params_shard_*.bin, "
                    "tensor-cache.json) and write mlc-chat-config.json with the tokenizer files, as gen-config does. "
                    "Architectures: llama (SmolLM2, Llama 2/3), mistral, qwen2, qwen3, phi3.")
    _add_common(convert)
    convert.add_argument("--conv-template", default=None, metavar="NAME",
                         help="an MLC conversation template or a .json file (default: guessed from the model)")
    convert.add_argument("--float32-storage", choices=("bf16", "raw"), default="bf16",
                         help="how float32 tensors are stored: bf16 (MLC's f32-to-bf16, default) or raw float32")
    convert.add_argument("--shard-mb", type=float, default=32, help="shard size cap in MiB (default 32)")
    convert.add_argument("--overwrite", action="store_true", help="replace a model already converted into OUT")
    gen = commands.add_parser(
        "gen-config", help="write mlc-chat-config.json and the tokenizer files for a Hugging Face model folder",
        description="MLC-LLM's gen_config: model_config from config.json, sampling defaults from "
                    "generation_config.json, the conversation template, the tokenizer files copied.")
    _add_common(gen)
    gen.add_argument("--conv-template", required=True, metavar="NAME",
                     help="an MLC conversation template (chatml, llama-3, qwen2, ...) or a .json file")


def _overrides(args: argparse.Namespace) -> dict[str, int]:
    keys = ("context_window_size", "prefill_chunk_size", "sliding_window_size", "attention_sink_size",
            "max_batch_size")
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)


def run_gen_config(args: argparse.Namespace) -> int:
    from ..errors import NotebookLLMError
    from .gen_config import generate_chat_config

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = generate_chat_config(args.hf_dir, args.quantization, args.output,
                                          conv_template_name=args.conv_template, overrides=_overrides(args))
    except NotebookLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_warnings(caught)
    config = result.config
    print(f"{config['model_type']} {config['quantization']}, conv_template {config['conv_template'].get('name')!r}, "
          f"context {config['context_window_size']}, prefill chunk {config['prefill_chunk_size']}")
    print(f"wrote {result.path} (tokenizer files: {', '.join(result.tokenizer_files)})")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ..errors import NotebookLLMError
    from .weights import convert_model

    def progress(done: int, total: int, name: str) -> None:
        if done * 4 // total != (done - 1) * 4 // total:  # at each quarter
            print(f"  {done}/{total} parameters ({name})", file=sys.stderr)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            weights, chat = convert_model(args.hf_dir, args.quantization, args.output,
                                          conv_template_name=args.conv_template, overrides=_overrides(args),
                                          shard_mb=args.shard_mb, float32_storage=args.float32_storage,
                                          overwrite=args.overwrite, progress=progress)
    except NotebookLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_warnings(caught)
    print(f"{weights.model_type} {weights.quantization}: {weights.source_parameters:,} parameters -> "
          f"{weights.tensors} tensors in {weights.shards} shards, {weights.stored_bytes / 2**20:.1f} MiB, "
          f"{weights.seconds:.1f} s")
    print(f"conv_template {chat.config['conv_template'].get('name')!r}; wrote {weights.path.parent}")
    print(f"load it with notebook_llm.create_engine({str(weights.path.parent)!r})")
    return 0
