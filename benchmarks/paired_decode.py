"""Decode speed of ours against llama-bench's, interleaved round by round on the same machine.

    python -m benchmarks.paired_decode [--gguf FILE] [--llama-bench PATH] [--depths 0,1024]
                                       [--tokens 64] [--rounds 5] [--extra "-t 2"] [--json OUT]

On a shared machine (the 2-core CI box: its speed moves by ±30% over minutes) a ratio of two runs
made minutes apart measures the neighbours as much as the engines. Here each round times
llama-bench's tg (one repetition, flash attention off and on, the faster kept) and then ours at
the same KV depth, back to back; the ratio is taken per round and the median over rounds reported.
Ours runs with run.py's depth fill for the adapter ("assume" on CPU adapters: the cache rows
below the depth are left stale, which reads the same bytes; llama-bench's -d fills them).
Default file: the installed SmolLM2 GGUF. Benchmark glue, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import measure
from notebook_llm.engine.generation import TokenLoop
from notebook_llm.gpu.compute import GpuContext
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.models.llama import LlamaModel

ROOT = Path(__file__).resolve().parent.parent


def llama_bench_decode(bench: str, gguf: Path, tokens: int, depth: int, extra: list[str]) -> float:
    """llama-bench's tg tokens/s at `depth`: one repetition each with flash attention off and on,
    the faster one."""
    command = [bench, "-m", str(gguf), "-ngl", "99", "-p", "0", "-n", str(tokens), "-d", str(depth),
               "-fa", "0,1", "-r", "1", "-o", "json", *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"llama-bench failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return max(float(row["avg_ts"]) for row in json.loads(done.stdout))


def default_llama_bench() -> str | None:
    for candidate in (os.environ.get("LLAMA_BENCH"), ROOT / ".peer/cpu/llama-bench", ROOT / ".peer/bin/llama-bench"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def paired_rounds(loop: TokenLoop, bench: str, gguf: Path, depths: list[int], tokens: int, rounds: int,
                  extra: list[str], fill: str, log=print) -> list[dict]:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, loop.model.config.vocab_size, size=max(max(depths), 1)).tolist()
    measure.run_generation(loop, ids[:1], 2)  # warm-up: the decode graph's first use
    results = []
    for depth in depths:
        peer, ours = [], []
        for round_ in range(rounds):
            peer.append(llama_bench_decode(bench, gguf, tokens, depth, extra))
            ours.append(measure.measure_decode(loop, ids[: max(depth, 1)], tokens, 1, depth, fill).tokens_per_s)
            log(f"  depth {depth} round {round_ + 1}: ours {ours[-1]:.1f} / peer {peer[-1]:.1f} tok/s = {ours[-1] / peer[-1]:.3f}")
        ratios = [o / p for o, p in zip(ours, peer)]
        results.append({"depth": depth, "tokens": tokens, "ours": ours, "peer": peer, "ratios": ratios,
                        "median_ratio": statistics.median(ratios), "median_ours": statistics.median(ours),
                        "median_peer": statistics.median(peer)})
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gguf", type=Path, default=None, help="default: the installed SmolLM2 GGUF")
    p.add_argument("--llama-bench", default=None, help="default: $LLAMA_BENCH, else .peer/cpu/llama-bench")
    p.add_argument("--depths", default="0,1024")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--extra", default="-t 2", help="more llama-bench flags")
    p.add_argument("--depth-fill", choices=("prefill", "assume"), default=None,
                   help="as run.py's (default: assume on CPU adapters, else prefill)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    bench = args.llama_bench or default_llama_bench()
    if bench is None:
        raise SystemExit("no llama-bench: pass --llama-bench or set LLAMA_BENCH (benchmarks/peers/README.md)")
    if args.gguf is None:
        from notebook_llm.registry import _smollm2_path
        args.gguf = Path(_smollm2_path())
    depths = [int(d) for d in args.depths.split(",")]
    ctx = GpuContext.create()
    fill = args.depth_fill or ("assume" if ctx.gpu.adapter.is_cpu else "prefill")
    model = LlamaModel(ctx, GGUFModelFile(args.gguf), max(depths) + args.tokens + 8, 128)
    loop = TokenLoop(model)
    print(f"{ctx.gpu.adapter.description}: {args.gguf.name}, tg{args.tokens}, {args.rounds} rounds, depth fill {fill}; "
          f"peer {bench} {' '.join(shlex.split(args.extra))}")
    results = paired_rounds(loop, bench, args.gguf, depths, args.tokens, args.rounds, shlex.split(args.extra), fill)
    for r in results:
        print(f"depth {r['depth']}: median ours {r['median_ours']:.1f} / peer {r['median_peer']:.1f} tok/s; "
              f"median ratio {r['median_ratio']:.3f} (rounds: {', '.join(f'{x:.3f}' for x in r['ratios'])})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"adapter": ctx.gpu.adapter.description, "file": str(args.gguf), "peer": bench,
                                         "extra": args.extra, "depth_fill": fill, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
