"""Same-machine A/B of a tuning constant of notebook_llm/models/llama.py (or of another module, named
with its dotted path: engine.recording.STEPS_AHEAD): benchmarks/run.py once per value and round,
interleaved, each in a fresh process (so pipelines and graphs are built with it).

    python -m benchmarks.ab_constant FUSED_COMBINE_MAX_WEIGHTS 0,524288 --rounds 3 -- \\
        --shapes B,D --synthetic-only --repeats 3 --depths 0,1024 --prompt-tokens 64 --split-steps 10

Prints run.py's speed-table row of each shape for every (value, round); with --out DIR also keeps
each run's whole output there. Decode figures of short runs move by ±10%: compare medians over
rounds. Benchmark glue (how benchmarks/results/2026-12-07-nvidia-h100-fused-combine-ab.txt was made).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

_PATCHED_RUN = """
import importlib, runpy, sys
module = importlib.import_module("notebook_llm." + {module!r})
if not hasattr(module, {name!r}):
    raise SystemExit("notebook_llm.{module} has no constant {name}")
setattr(module, {name!r}, {value})
sys.argv = ["benchmarks.run", *{args!r}]
runpy.run_module("benchmarks.run", run_name="__main__")
"""


def main(argv: list[str]) -> None:
    if "--" in argv:
        argv, run_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    else:
        run_args = []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="a module-level constant of notebook_llm/models/llama.py, or module.NAME "
                   "for another module of notebook_llm")
    p.add_argument("values", help="comma-separated Python literals, e.g. 0,524288")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="keep each run's output here")
    args = p.parse_args(argv)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    for round_ in range(1, args.rounds + 1):
        for value in args.values.split(","):
            module, _, name = args.name.rpartition(".")
            code = _PATCHED_RUN.format(module=module or "models.llama", name=name, value=value, args=run_args)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if args.out:
                # no "=" in the name: a device call returns only plainly named files
                (args.out / f"{args.name}-{value}.round{round_}.txt").write_text(done.stdout + done.stderr)
            rows = [line for line in done.stdout.splitlines() if " | " in line and not line.startswith("shape")]
            print(f"== {args.name}={value} round {round_} (rc {done.returncode})", flush=True)
            for line in rows or done.stderr.splitlines()[-3:]:
                print("  " + line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
