"""Command line: `python -m notebook_llm demo` streams a chat completion from the default model;
`python -m notebook_llm adapters` lists the WebGPU adapters (exit 1 when none can run us);
`notebook-llm serve --model ID --port 8000` serves models over OpenAI's HTTP API;
`notebook-llm package CONFIG.json -o OUT_DIR` bundles models into a directory that loads offline;
`notebook-llm convert HF_DIR --quantization Q -o OUT` (and `gen-config`) turn a Hugging Face model into an MLC one."""

from __future__ import annotations

import argparse
import sys

DEMO_PROMPT = "Explain in three sentences why the sky is blue."


def _adapters(args: argparse.Namespace) -> int:
    from .errors import NoAdapterError
    from .gpu.device import list_adapters

    try:
        adapters = list_adapters()
    except NoAdapterError as error:
        print(error, file=sys.stderr)
        return 1
    native = [a for a in adapters if a.backend.lower() != "opengl"]
    for a in adapters:
        print(f"{a.description}  [{a.backend}, {a.adapter_type}]  {'shader-f16 ' if 'shader-f16' in a.features else ''}"
              f"{'subgroup' if 'subgroup' in a.features else ''}")
    if args.require_native and not native:
        print("no Vulkan/Metal/D3D12 adapter found", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from . import create_engine
    from .errors import NotebookLLMError

    try:
        engine = create_engine(adapter=args.adapter)
        print(f"model: {engine.model_id}   adapter: {engine.core.adapter_description}\n", flush=True)
        stream = engine.chat.completions.create(
            messages=[{"role": "user", "content": args.prompt}],
            max_tokens=args.max_tokens, temperature=args.temperature, seed=0,
            stream=True, stream_options={"include_usage": True},
        )
        usage = None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
            if chunk.usage is not None:
                usage = chunk.usage
    except NotebookLLMError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    extra = usage.extra
    print("\n")
    print(f"prompt tokens:     {usage.prompt_tokens}")
    print(f"completion tokens: {usage.completion_tokens}")
    print(f"prefill:           {extra.prefill_tokens_per_s:.1f} tokens/s")
    print(f"decode:            {extra.decode_tokens_per_s:.1f} tokens/s")
    print(f"adapter:           {engine.core.adapter_description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notebook_llm")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="stream a chat completion from the default model")
    demo.add_argument("--prompt", default=DEMO_PROMPT)
    demo.add_argument("--max-tokens", type=int, default=128)
    demo.add_argument("--temperature", type=float, default=0.0)
    demo.add_argument("--adapter", default=None, help="substring of the adapter to use (or $NOTEBOOK_LLM_ADAPTER)")
    adapters = sub.add_parser("adapters", help="list WebGPU adapters")
    adapters.add_argument("--require-native", action="store_true", help="exit 1 unless a Vulkan/Metal/D3D12 adapter exists")
    from .convert.cli import add_convert_commands, run_convert, run_gen_config  # argparse only
    from .packaging import add_package_command, run_package  # argparse only; loaders load when packaging
    from .server.cli import add_serve_command, run_serve  # argparse only; starlette loads when serving

    add_serve_command(sub)
    add_package_command(sub)
    add_convert_commands(sub)
    args = parser.parse_args(argv)
    commands = {"demo": _demo, "adapters": _adapters, "serve": run_serve, "package": run_package,
                "convert": run_convert, "gen-config": run_gen_config}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
