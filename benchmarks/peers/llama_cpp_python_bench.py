"""llama-bench's measurements, made through llama-cpp-python (llama.cpp's CPU build), as llama-bench JSON rows.

    /opt/refvenv/bin/python benchmarks/peers/llama_cpp_python_bench.py OUT.json FILE.gguf [FILE.gguf ...]
        [-p 512] [-n 128] [-d 0,1024] [-fa 0,1] [-r 5] [-t 2] [--pp-depths 0] [--no-threadpool] [--seed 0]

Where no llama-bench binary is built (a CPU build takes well over ten minutes on the 2-core CI
machine), the `llama-cpp-python` wheel already holds llama.cpp's libraries. This script drives them
with the calls llama-bench makes (tools/llama-bench/llama-bench.cpp of the same llama.cpp), through
the binding's ctypes functions, never through `Llama.__call__`:

- one `llama_context` per test (n_ctx = n_prompt + n_gen + n_depth, n_batch 2048, n_ubatch 512,
  f16 K and V, flash attention off / on), a ggml threadpool of `-t` threads (poll 50, llama-bench's
  default) attached with `llama_attach_threadpool`;
- warm-up: the whole prompt once (pp tests), one generated token (tg tests);
- each repetition: `llama_memory_clear`; at depth d > 0 the cache is filled with d random tokens
  (untimed; the sequence state is saved after the first fill and restored later, as llama-bench does);
  then, timed: pp = the prompt's random tokens (the first one BOS where the vocab adds it) in
  `llama_decode` calls of n_batch tokens, logits of the last only; tg = n_gen calls of
  `llama_decode` on one token each, at the next position, every one followed by
  `llama_synchronize`, the next token drawn at random (no sampling, as llama-bench);
- tokens/s per repetition = tokens / seconds; `avg_ts` their mean, `stddev_ts` their sample
  standard deviation (llama-bench's formulas); `samples_ns` / `samples_ts` each repetition.

Python's share of a timed tg step is one ctypes call and a few field stores (a few µs against ~10 ms
of CPU work per token for a 135M model on 2 cores); pp is a handful of calls per test.

`-d` gives the depths of the tg tests; pp tests run at `--pp-depths` (default 0: what
benchmarks/run.py pairs; llama-bench would run pp at every -d depth, `--pp-depths 0,1024` does).
OUT.json is {"command", "files", "errors", "rows"} as benchmarks/peers/run_llamacpp.sh writes it;
each row has llama-bench's fields (build_commit = the llama_cpp package's version, backends "CPU",
cpu_info / gpu_info from ggml's device list) plus `engine`, `llama_version`, `system_info` and
`threadpool`. `python -m benchmarks.run --peer-json OUT.json` pairs the rows by the GGUF's name.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import llama_cpp
import llama_cpp._logger
import llama_cpp.llama_cpp as L

ENGINE = f"llama.cpp via llama-cpp-python {llama_cpp.__version__} (llama_decode, ctypes)"
GGML_MAX_N_THREADS = 512  # ggml.h
DEV_TYPE_CPU, DEV_TYPE_GPU, DEV_TYPE_IGPU, DEV_TYPE_ACCEL = 0, 1, 2, 3  # enum ggml_backend_dev_type


class ThreadpoolParams(ctypes.Structure):  # struct ggml_threadpool_params (ggml.h)
    _fields_ = [("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS), ("n_threads", ctypes.c_int),
                ("prio", ctypes.c_int), ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool),
                ("paused", ctypes.c_bool)]


def _libs() -> dict[str, ctypes.CDLL]:
    """ggml's libraries next to libllama.so (already loaded by the binding: same handles)."""
    base = Path(L.__file__).with_name("lib")
    out = {"llama": L._lib}
    for name in ("ggml", "ggml-base", "ggml-cpu"):
        out[name] = ctypes.CDLL(str(base / f"lib{name}.so"))
    g, gb, gc, ll = out["ggml"], out["ggml-base"], out["ggml-cpu"], out["llama"]
    g.ggml_backend_dev_count.restype = ctypes.c_size_t
    g.ggml_backend_dev_get.argtypes, g.ggml_backend_dev_get.restype = [ctypes.c_size_t], ctypes.c_void_p
    g.ggml_backend_reg_count.restype = ctypes.c_size_t
    g.ggml_backend_reg_get.argtypes, g.ggml_backend_reg_get.restype = [ctypes.c_size_t], ctypes.c_void_p
    gb.ggml_backend_dev_type.argtypes, gb.ggml_backend_dev_type.restype = [ctypes.c_void_p], ctypes.c_int
    gb.ggml_backend_dev_description.argtypes, gb.ggml_backend_dev_description.restype = [ctypes.c_void_p], ctypes.c_char_p
    gb.ggml_backend_reg_name.argtypes, gb.ggml_backend_reg_name.restype = [ctypes.c_void_p], ctypes.c_char_p
    gb.ggml_threadpool_params_default.argtypes, gb.ggml_threadpool_params_default.restype = [ctypes.c_int], ThreadpoolParams
    gc.ggml_threadpool_new.argtypes, gc.ggml_threadpool_new.restype = [ctypes.POINTER(ThreadpoolParams)], ctypes.c_void_p
    gc.ggml_threadpool_free.argtypes, gc.ggml_threadpool_free.restype = [ctypes.c_void_p], None
    ll.llama_attach_threadpool.argtypes, ll.llama_attach_threadpool.restype = [ctypes.c_void_p] * 3, None
    return out


def device_info(libs: dict[str, ctypes.CDLL]) -> tuple[str, str, str]:
    """(backends, cpu_info, gpu_info) as llama-bench's get_backend / get_cpu_info / get_gpu_info."""
    g, gb = libs["ggml"], libs["ggml-base"]
    cpus, gpus = [], []
    for i in range(g.ggml_backend_dev_count()):
        dev = g.ggml_backend_dev_get(i)
        kind, desc = gb.ggml_backend_dev_type(dev), (gb.ggml_backend_dev_description(dev) or b"").decode()
        if kind in (DEV_TYPE_CPU, DEV_TYPE_ACCEL):
            cpus.append(desc)
        elif kind in (DEV_TYPE_GPU, DEV_TYPE_IGPU):
            gpus.append(desc)
    regs = [(gb.ggml_backend_reg_name(g.ggml_backend_reg_get(i)) or b"").decode() for i in range(g.ggml_backend_reg_count())]
    others = [r for r in regs if r != "CPU" and not r.startswith("RPC")]
    return (",".join(others) or "CPU"), ", ".join(cpus), ", ".join(gpus)


def _avg(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _stdev(values: list[float]) -> float:  # llama-bench's: sample standard deviation
    if len(values) <= 1:
        return 0.0
    mean = _avg(values)
    return math.sqrt(max(0.0, sum(v * v for v in values) / (len(values) - 1) - mean * mean * len(values) / (len(values) - 1)))


class Bench:
    """One loaded model; `run_test` makes one llama-bench test row."""

    def __init__(self, path: Path, args: argparse.Namespace, libs: dict[str, ctypes.CDLL]):
        self.path, self.args, self.libs = path, args, libs
        mparams = L.llama_model_default_params()
        self.n_gpu_layers = int(mparams.n_gpu_layers)
        self.model = L.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama_model_load_from_file failed on {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.bos = L.llama_vocab_bos(self.vocab)
        buf = ctypes.create_string_buffer(128)
        L.llama_model_desc(self.model, buf, len(buf))
        self.model_type = buf.value.decode()
        self.model_size = int(L.llama_model_size(self.model))
        self.model_n_params = int(L.llama_model_n_params(self.model))
        self.rng = random.Random(args.seed)
        self.state: tuple[int, int, ctypes.Array] | None = None  # (depth, flash_attn, saved sequence state)

    def close(self) -> None:
        L.llama_model_free(self.model)

    def _token(self) -> int:
        return self.rng.randrange(self.n_vocab)

    def _prompt(self, ctx, n_prompt: int) -> None:  # llama-bench's test_prompt
        n_batch = self.args.n_batch
        tokens = (L.llama_token * n_batch)()
        done = 0
        while done < n_prompt:
            n = min(n_prompt - done, n_batch)
            tokens[0] = self.bos if done == 0 and self.add_bos else self._token()
            for i in range(1, n):
                tokens[i] = self._token()
            res = L.llama_decode(ctx, L.llama_batch_get_one(tokens, n))
            if res != 0:
                raise RuntimeError(f"llama_decode of a prompt batch returned {res}")
            done += n
        L.llama_synchronize(ctx)

    def _gen(self, ctx, batch, n_gen: int) -> None:  # llama-bench's test_gen
        token = self.bos if self.add_bos else self._token()
        pos = L.llama_memory_seq_pos_max(L.llama_get_memory(ctx), 0) + 1
        batch.n_tokens = 1
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = 1
        decode, synchronize, draw = L.llama_decode, L.llama_synchronize, self._token
        for _ in range(n_gen):
            batch.token[0] = token
            batch.pos[0] = pos
            pos += 1
            res = decode(ctx, batch)
            if res != 0:
                raise RuntimeError(f"llama_decode of a generation step returned {res}")
            synchronize(ctx)
            token = draw()

    def run_test(self, n_prompt: int, n_gen: int, n_depth: int, flash_attn: int, device: tuple[str, str, str]) -> dict:
        args = self.args
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_prompt + n_gen + n_depth
        cparams.n_batch, cparams.n_ubatch = args.n_batch, args.n_ubatch
        cparams.n_threads = cparams.n_threads_batch = args.threads
        cparams.type_k = cparams.type_v = L.GGML_TYPE_F16
        cparams.flash_attn_type = flash_attn
        cparams.offload_kqv, cparams.embeddings = True, False
        ctx = L.llama_init_from_model(self.model, cparams)
        if not ctx:
            raise RuntimeError(f"llama_init_from_model failed (flash_attn={flash_attn}, n_ctx={cparams.n_ctx})")
        threadpool = None
        batch = L.llama_batch_init(1, 0, 1)
        try:
            test_time = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            L.llama_set_n_threads(ctx, args.threads, args.threads)
            if args.threadpool:
                tpp = self.libs["ggml-base"].ggml_threadpool_params_default(args.threads)
                tpp.poll = args.poll
                threadpool = self.libs["ggml-cpu"].ggml_threadpool_new(ctypes.byref(tpp))
                if not threadpool:
                    raise RuntimeError("ggml_threadpool_new failed")
                self.libs["llama"].llama_attach_threadpool(ctx, threadpool, None)
            memory = L.llama_get_memory(ctx)
            L.llama_memory_clear(memory, False)
            if n_prompt > 0:  # warm-up
                self._prompt(ctx, n_prompt)
            if n_gen > 0:
                self._gen(ctx, batch, 1)
            samples_ns = []
            for _ in range(args.repetitions):
                L.llama_memory_clear(memory, False)
                if n_depth > 0:
                    cached = self.state is not None and self.state[:2] == (n_depth, flash_attn)
                    if cached and L.llama_state_seq_set_data(ctx, self.state[2], len(self.state[2]), 0) == 0:
                        cached = False
                    if not cached:
                        self._prompt(ctx, n_depth)
                        size = L.llama_state_seq_get_size(ctx, 0)
                        buf = (ctypes.c_uint8 * size)()
                        L.llama_state_seq_get_data(ctx, buf, size, 0)
                        self.state = (n_depth, flash_attn, buf)
                t0 = time.perf_counter_ns()
                if n_prompt > 0:
                    self._prompt(ctx, n_prompt)
                if n_gen > 0:
                    self._gen(ctx, batch, n_gen)
                samples_ns.append(time.perf_counter_ns() - t0)
        finally:
            L.llama_batch_free(batch)
            L.llama_free(ctx)
            if threadpool:
                self.libs["ggml-cpu"].ggml_threadpool_free(threadpool)
        ts = [1e9 * (n_prompt + n_gen) / t for t in samples_ns]
        backends, cpu_info, gpu_info = device
        return {
            "build_commit": llama_cpp.__version__, "build_number": 0, "cpu_info": cpu_info, "gpu_info": gpu_info,
            "backends": backends, "model_filename": str(self.path), "model_type": self.model_type,
            "model_size": self.model_size, "model_n_params": self.model_n_params,
            "n_batch": args.n_batch, "n_ubatch": args.n_ubatch, "n_threads": args.threads,
            "cpu_mask": "0x0", "cpu_strict": False, "poll": args.poll if args.threadpool else None,
            "type_k": "f16", "type_v": "f16", "n_gpu_layers": self.n_gpu_layers, "n_cpu_moe": 0,
            "split_mode": "layer", "main_gpu": 0, "no_kv_offload": False, "flash_attn": flash_attn,
            "devices": "auto", "tensor_split": "0.00", "tensor_buft_overrides": "none", "embeddings": False,
            "no_op_offload": 0, "no_host": False, "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": n_depth,
            "test_time": test_time, "avg_ns": int(_avg(samples_ns)), "stddev_ns": int(_stdev(samples_ns)),
            "avg_ts": _avg(ts), "stddev_ts": _stdev(ts), "samples_ns": samples_ns, "samples_ts": ts,
            "engine": ENGINE, "llama_version": L.llama_version().decode(), "threadpool": bool(args.threadpool),
            "system_info": L.llama_print_system_info().decode().strip(),
        }


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="JSON file written: {command, files, errors, rows}")
    p.add_argument("files", type=Path, nargs="+", help="GGUF files (those benchmarks/run.py timed)")
    p.add_argument("-p", "--n-prompt", type=_ints, default=[512], help="prompt lengths of the pp tests (0: none)")
    p.add_argument("-n", "--n-gen", type=_ints, default=[128], help="decode steps of the tg tests (0: none)")
    p.add_argument("-d", "--n-depth", type=_ints, default=[0, 1024], help="KV depths of the tg tests")
    p.add_argument("--pp-depths", type=_ints, default=[0], help="KV depths of the pp tests (llama-bench: the -d list)")
    p.add_argument("-fa", "--flash-attn", type=_ints, default=[0, 1], help="flash attention off (0) / on (1)")
    p.add_argument("-r", "--repetitions", type=int, default=5)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-b", "--n-batch", type=int, default=2048)
    p.add_argument("-ub", "--n-ubatch", type=int, default=512)
    p.add_argument("--poll", type=int, default=50, help="threadpool polling level (llama-bench's default 50)")
    p.add_argument("--threadpool", action=argparse.BooleanOptionalAction, default=True,
                   help="attach a ggml threadpool as llama-bench does (off: ggml's own per-graph threads)")
    p.add_argument("--seed", type=int, default=0, help="of the random token ids")
    args = p.parse_args(argv)
    if args.repetitions < 1 or args.threads < 1:
        p.error("-r and -t must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    llama_cpp._logger.set_verbose(False)  # llama.cpp's log: errors only
    L.llama_backend_init()
    libs = _libs()
    device = device_info(libs)
    tests = [(p, 0, d) for p in args.n_prompt if p > 0 for d in args.pp_depths]
    tests += [(0, n, d) for n in args.n_gen if n > 0 for d in args.n_depth]
    print(f"{ENGINE}; {device[0]} {device[1]}; {L.llama_print_system_info().decode().strip()}", file=sys.stderr)
    print(f"load average {os.getloadavg()}", file=sys.stderr)
    rows, errors = [], {}
    for path in args.files:
        try:
            bench = Bench(path, args, libs)
        except RuntimeError as error:
            errors[path.name] = str(error)
            print(f"{path.name}: {error}", file=sys.stderr)
            continue
        try:
            for fa in args.flash_attn:
                for n_prompt, n_gen, n_depth in tests:
                    kind = f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"
                    t0 = time.perf_counter()
                    try:
                        row = bench.run_test(n_prompt, n_gen, n_depth, fa, device)
                    except RuntimeError as error:
                        errors[f"{path.name} fa={fa} {kind} @d{n_depth}"] = str(error)
                        print(f"{path.name} fa={fa} {kind} @d{n_depth}: {error}", file=sys.stderr)
                        continue
                    rows.append(row)
                    print(f"{path.name:44.44s} fa={fa} {kind:6s} @d{n_depth:<5} {row['avg_ts']:10.1f} ± {row['stddev_ts']:6.1f} tok/s"
                          f"  ({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
        finally:
            bench.close()
    command = " ".join([Path(sys.executable).as_posix(), *sys.argv]) if argv is None else " ".join(map(str, argv))
    out = {"command": command, "engine": ENGINE, "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
           "files": [str(f) for f in args.files], "errors": errors, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}: {len(rows)} rows" + (f", failed: {sorted(errors)}" if errors else ""), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
