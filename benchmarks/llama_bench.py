"""Reading llama.cpp's `llama-bench -o json` output (the peer) and picking the figures we compare with.

A file is a JSON list of test rows (llama-bench's `-o json`), a JSON-lines file (`-o jsonl`), or
what benchmarks/peers/run_llamacpp.sh writes: {"rows": [...], ...}. Each row names its GGUF in
`model_filename`; rows are matched to our shapes by that file's name, so both engines must have
timed the same file. A test row is pp (n_prompt > 0, n_gen = 0) or tg (n_gen > 0, n_prompt = 0)
at a KV depth `n_depth` (absent in older builds: 0), with `avg_ts` tokens/s over its repetitions.
Where flash attention was timed both ways, the faster row is the peer's figure (its `flash_attn`
is recorded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

ROW_FIELDS = ("flash_attn", "n_prompt", "n_gen", "n_depth", "avg_ts", "stddev_ts", "n_batch", "n_ubatch",
              "n_gpu_layers", "type_k", "type_v")


def load_rows(paths: Iterable[Path]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        text = Path(path).read_text().strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError:  # -o jsonl: one object per line
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        if isinstance(data, dict):
            data = data.get("rows", [])
        rows += [r for r in data if isinstance(r, dict) and "avg_ts" in r]
    return rows


def _best(rows: list[dict]) -> dict | None:
    if not rows:
        return None
    row = max(rows, key=lambda r: r["avg_ts"])
    return {"tokens_per_s": float(row["avg_ts"]), "stddev": float(row.get("stddev_ts", 0.0)),
            "flash_attn": row.get("flash_attn"), "n_prompt": row.get("n_prompt"), "n_gen": row.get("n_gen"),
            "n_depth": row.get("n_depth", 0)}


def peer_figures(rows: list[dict], model_file: Path, prompt_tokens: int, decode_tokens: int,
                 depths: Iterable[int]) -> dict | None:
    """The peer's prefill and decode figures for `model_file`, or None when no row names it.
    Rows with our prompt / decode length are preferred; where there are none, any length is taken
    (and the length is in the record)."""
    mine = [r for r in rows if Path(str(r.get("model_filename", ""))).name == model_file.name]
    if not mine:
        return None
    depth_of = lambda r: int(r.get("n_depth", 0) or 0)  # noqa: E731
    pp = [r for r in mine if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0 and depth_of(r) == 0]
    prefill = _best([r for r in pp if r["n_prompt"] == prompt_tokens]) or _best(pp)
    decode = {}
    for depth in depths:
        tg = [r for r in mine if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0 and depth_of(r) == depth]
        best = _best([r for r in tg if r["n_gen"] == decode_tokens]) or _best(tg)
        if best is not None:
            decode[str(depth)] = best
    first = mine[0]
    return {
        "engine": first.get("engine") or "llama.cpp llama-bench",  # llama_cpp_python_bench.py names itself
        "build_commit": first.get("build_commit"), "build_number": first.get("build_number"),
        "backends": first.get("backends"), "gpu_info": first.get("gpu_info"), "cpu_info": first.get("cpu_info"),
        "model_filename": first.get("model_filename"), "model_size": first.get("model_size"),
        "model_n_params": first.get("model_n_params"),
        "prefill": prefill, "decode": decode,
        "rows": [{k: r.get(k) for k in ROW_FIELDS if k in r} for r in mine],
    }
