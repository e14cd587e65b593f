"""The speed harness (benchmarks/run.py) runs end to end and records every field; no time is asserted.

A tiny llama and a tiny qwen2 (benchmarks/synthetic_gguf.py's "tiny" shapes, written into the
test's folder) go through the whole harness in a few seconds on lavapipe; llama-bench rows are
paired with our results by file name.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import llama_bench, run
from benchmarks.synthetic_gguf import SHAPES, tokenizer


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "result.json"
    run.main(["--shapes", "tiny,tiny-qwen2", "--prompt-tokens", "20", "--decode-tokens", "4", "--depths", "0,24",
              "--repeats", "1", "--depth-fill", "prefill", "--split-steps", "3", "--bandwidth-mb", "4", "--gguf-dir", str(folder), "--json", str(out)])
    return json.loads(out.read_text())


def test_json_names_the_device_wgpu_and_date(tiny_result):
    device = tiny_result["device"]
    assert device["name"] and device["backend"] and device["driver"] is not None
    assert tiny_result["wgpu_version"] and tiny_result["date"].startswith("20")
    assert tiny_result["bandwidth"]["gbs"] > 0 and tiny_result["bandwidth"]["buffer_bytes"] >= 2**20


def test_every_shape_has_positive_prefill_decode_and_split(tiny_result):
    assert [r["shape"] for r in tiny_result["results"]] == ["tiny", "tiny-qwen2"], tiny_result["skipped"]
    for r in tiny_result["results"]:
        assert r["prefill"]["prompt_tokens"] == 20
        assert r["prefill"]["tokens_per_s"] > 0 and r["prefill"]["ttft_ms"] > 0
        assert [d["depth"] for d in r["decode"]] == [0, 24]
        for d in r["decode"]:
            assert d["tokens"] == 4
            for key in ("tokens_per_s", "step_ms", "weight_bytes_per_token", "bytes_per_token", "achieved_gbs",
                        "roofline_fraction", "loop_cpu_us"):
                assert d[key] > 0, key
        assert r["decode"][1]["kv_bytes_per_token"] > r["decode"][0]["kv_bytes_per_token"] > 0
        split = r["step_split"]
        assert split["dispatches"] > 2 * SHAPES[r["shape"]].n_layer and split["encode_us"] > 0
        if "timestamp-query" in tiny_result["device"]["features"]:
            assert split["gpu_us"] > 0


def test_kernel_times_group_the_step_by_label(tiny_result):
    for r in tiny_result["results"]:
        kernels = r["kernels"]["by_label"]
        labels = {k["label"] for k in kernels}
        # GPUs: norms in the matvecs' prologues, attention split + combined; CPU adapters: norms in the
        # prologues of matvec_broadcast, attention unsplit (attention_subgroup where there are subgroups)
        assert "sample" in labels
        assert ({"attention_split", "attention_combine"} <= labels or "attention_subgroup" in labels
                or "attention" in labels)
        assert any(label.endswith("(lm head)") for label in labels)
        assert sum(k["dispatches"] for k in kernels) == r["step_split"]["dispatches"]
        assert r["kernels"]["total_us"] > 0 and abs(sum(k["share"] for k in kernels) - 1) < 1e-6


def test_prefill_kernel_times_cover_the_chunk(tiny_result):
    for r in tiny_result["results"]:
        prefill = r["prefill_kernels"]
        assert prefill["tokens"] == 20
        labels = {k["label"]: k["dispatches"] for k in prefill["by_label"]}
        assert any(label.endswith("(lm head)") for label in labels) and "sample" not in labels
        assert any(label.startswith("embed") for label in labels)
        assert sum(n for label, n in labels.items() if label.startswith("attention")) >= SHAPES[r["shape"]].n_layer
        assert prefill["total_us"] > 0 and abs(sum(k["share"] for k in prefill["by_label"]) - 1) < 1e-6
        # the same chunk as one pass with its first token sampled: the graph plus the sampler
        split = r["prefill_split"]
        assert split["tokens"] == 20 and split["dispatches"] > sum(labels.values())
        assert split["encode_us"] > 0 and split["wall_us"] > 0
        if "timestamp-query" in tiny_result["device"]["features"]:
            assert 0 < split["gpu_us"] <= split["wall_us"]


def test_peer_rows_pair_by_file_name_and_give_ratios(tiny_result, tmp_path):
    """Fake llama-bench rows for the tiny file: the faster flash-attention setting is the peer's figure."""
    file = tiny_result["results"][0]["file"]
    row = lambda fa, n_prompt, n_gen, depth, ts: {  # noqa: E731
        "model_filename": file, "flash_attn": fa, "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": depth,
        "avg_ts": ts, "stddev_ts": 1.0, "backends": "CUDA", "gpu_info": "test GPU", "build_commit": "abc"}
    rows = [row(0, 20, 0, 0, 100.0), row(1, 20, 0, 0, 200.0), row(0, 0, 4, 0, 50.0), row(1, 0, 4, 0, 40.0),
            row(1, 0, 4, 24, 30.0), row(1, 0, 4, 0, 999.0) | {"model_filename": "/elsewhere/other.gguf"}]
    peer_file = tmp_path / "peer.json"
    peer_file.write_text(json.dumps({"rows": rows}))
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(tiny_result))
    paired = run.main(["--render", str(saved), "--peer-json", str(peer_file)])
    ours = paired["results"][0]
    assert ours["peer"]["prefill"]["tokens_per_s"] == 200.0 and ours["peer"]["prefill"]["flash_attn"] == 1
    assert ours["peer"]["decode"]["0"]["tokens_per_s"] == 50.0 and ours["peer"]["decode"]["24"]["tokens_per_s"] == 30.0
    assert ours["ours_over_peer"]["prefill"] == pytest.approx(ours["prefill"]["tokens_per_s"] / 200.0)
    assert ours["ours_over_peer"]["decode_depth_24"] == pytest.approx(ours["decode"][1]["tokens_per_s"] / 30.0)
    assert paired["results"][1]["peer"] is None  # no row names the qwen2 file
    assert llama_bench.load_rows([peer_file]) == rows


def test_synthetic_tokenizer_fills_the_vocabulary_with_unique_tokens():
    tokens, types, merges = tokenizer(SHAPES["D"].vocab_size)
    assert len(tokens) == len(set(tokens)) == len(types) == 151936
    assert all(" " in m for m in merges)


def test_ab_constant_runs_the_harness_once_per_value_and_round(tmp_path, capsys):
    """benchmarks/ab_constant.py: each value in its own run.py process, the speed rows printed; an
    unknown constant is refused (the run exits with an error instead of timing the default)."""
    from benchmarks import ab_constant

    run_args = ["--shapes", "tiny", "--prompt-tokens", "8", "--decode-tokens", "2", "--depths", "0", "--repeats", "1",
                "--split-steps", "1", "--bandwidth-mb", "1", "--gguf-dir", str(tmp_path)]
    ab_constant.main(["CPU_ROW_WORKGROUP", "16,32", "--rounds", "1", "--out", str(tmp_path / "runs"), "--", *run_args])
    printed = capsys.readouterr().out
    for value in ("16", "32"):
        assert f"== CPU_ROW_WORKGROUP={value} round 1 (rc 0)" in printed
        assert "tiny" in (tmp_path / "runs" / f"CPU_ROW_WORKGROUP-{value}.round1.txt").read_text()
    assert printed.count("  tiny ") == 2
    ab_constant.main(["NO_SUCH_CONSTANT", "1", "--rounds", "1", "--", *run_args])
    assert "(rc 1)" in capsys.readouterr().out
    # another module's constant, by its dotted path under notebook_llm
    ab_constant.main(["engine.recording.STEPS_AHEAD", "0", "--rounds", "1", "--", *run_args])
    printed = capsys.readouterr().out
    assert "== engine.recording.STEPS_AHEAD=0 round 1 (rc 0)" in printed and "  tiny " in printed



@pytest.mark.parametrize("script", ["device_one_call.sh", "device_ab.sh"])
def test_device_scripts_ab_only_constants_that_exist(script):
    """Every `ab NAME VALUES` of the device scripts names a constant ab_constant can set, with values
    of its type: a renamed constant would otherwise surface only in a (scarce) GPU call."""
    import importlib
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "benchmarks" / script).read_text()
    calls = re.findall(r"^\s*ab ([\w.]+) (\S+) ", text, re.MULTILINE)
    assert len(calls) >= 4
    for name, values in calls:
        module, _, constant = name.rpartition(".")
        default = getattr(importlib.import_module("notebook_llm." + (module or "models.llama")), constant)
        for value in values.split(","):
            assert type(eval(value)) is type(default), (name, value)  # noqa: S307 (the scripts' literals)


def test_matmul_sweep_times_float_and_int8_prefill_kernels(ctx, monkeypatch, capsys):
    """One small shape: every configuration timed, the float kernel exact to float32 and the int8
    path within its input rounding."""
    from benchmarks import matmul_sweep

    monkeypatch.setattr(matmul_sweep, "REPEATS", 2)
    results = matmul_sweep.sweep_shape(ctx, np.random.default_rng(0), "tiny", 200, 128, 40)
    int8 = {f"matmul_q4_int8 tokens/thread {t} ROW_LANES={r}" for t in (8, 4) for r in (32, 16)}
    assert set(results) == {"quantize_int8", "matmul tokens/thread 4"} | int8
    assert all(seconds > 0 for seconds, _ in results.values())
    assert results["matmul tokens/thread 4"][1] < 1e-5
    assert all(1e-5 < results[label][1] < 3e-2 for label in int8)
    assert "TFLOPS" in capsys.readouterr().out


def test_paired_decode_times_the_peer_and_ours_round_by_round(ctx, tmp_path, rng):
    """benchmarks/paired_decode.py against a stand-in llama-bench (its flash-attention rows 40 and 50
    tok/s: the faster is the peer's figure); a failing llama-bench is an error, not a figure."""
    from benchmarks.paired_decode import llama_bench_decode, paired_rounds
    from notebook_llm.engine.generation import TokenLoop
    from notebook_llm.loader.gguf_file import GGUFModelFile
    from notebook_llm.models.llama import LlamaModel

    from .tiny_llama import write_tiny_llama

    fake = tmp_path / "llama-bench"
    fake.write_text("#!/bin/sh\necho '[{\"avg_ts\": 40.0, \"flash_attn\": false}, {\"avg_ts\": 50.0, \"flash_attn\": true}]'\n")
    fake.chmod(0o755)
    path = write_tiny_llama(tmp_path / "tiny.gguf", seed=int(rng.integers(2**31)))
    loop = TokenLoop(LlamaModel(ctx, GGUFModelFile(path), context_window_size=64, prefill_chunk_size=16))
    lines = []
    results = paired_rounds(loop, str(fake), path, [0, 12], tokens=4, rounds=2, extra=[], fill="assume", log=lines.append)
    assert [r["depth"] for r in results] == [0, 12] and len(lines) == 4
    for r in results:
        assert r["peer"] == [50.0, 50.0] and all(t > 0 for t in r["ours"])
        assert r["ratios"] == [o / 50.0 for o in r["ours"]] and min(r["ratios"]) <= r["median_ratio"] <= max(r["ratios"])
    fake.write_text("#!/bin/sh\necho 'no such model' >&2\nexit 3\n")
    with pytest.raises(RuntimeError, match="llama-bench failed"):
        llama_bench_decode(str(fake), path, 4, 0, [])


def test_cpu_loads_checks_every_load_kernel_against_numpy(monkeypatch):
    """benchmarks/cpu_loads.py: each element type's kernel (64-bit ones where the adapter has
    shader-int64) and the uniform-address one read a ragged row count right; a kernel that folds its
    row wrong is caught, not timed."""
    from benchmarks import cpu_loads
    ctx = cpu_loads.load_context()
    int64 = "shader-int64" in ctx.gpu.features
    times = cpu_loads.measure(ctx, rows=40, row_bytes=96, dispatches=1, rounds=1)
    kinds = {(t.element, t.uniform) for t in times}
    assert {("u32", False), ("vec4<u32>", False), ("vec4<u32>", True)} <= kinds
    assert (("vec4<u64>", False) in kinds) == int64
    assert all(t.seconds > 0 and t.nbytes == 40 * 96 for t in times)
    monkeypatch.setitem(cpu_loads.ELEMENTS, "u32", (4, "s ^ 1u"))
    with pytest.raises(AssertionError, match="u32"):
        cpu_loads.measure(ctx, rows=40, row_bytes=96, dispatches=1, rounds=1)
