"""Downloads through huggingface_hub against a hub-shaped server on 127.0.0.1 (tests/hub_server.py)."""

from __future__ import annotations


import pytest
from huggingface_hub import constants

from notebook_llm.errors import ModelNotFoundError
from notebook_llm.loader.download import cache_info, delete_model_from_cache, download_model, has_model_in_cache
from notebook_llm.registry import AppConfig, ModelRecord


REPO = "test-org/Tiny-q4f16_1-MLC"


def _files(seed: int = 0) -> dict[str, bytes]:
    """A small MLC-shaped repository: two LFS shards of a few hundred KB and two plain JSON files."""
    shard = bytes((i * 31 + seed) % 251 for i in range(300_000))
    return {
        "mlc-chat-config.json": b'{"model_type": "llama", "quantization": "q4f16_1"}',
        "tensor-cache.json": b'{"records": []}',
        "params_shard_0.bin": shard,
        "params_shard_1.bin": shard[::-1][:200_000],
    }


@pytest.fixture
def config(tmp_path) -> AppConfig:
    record = ModelRecord(model=f"https://huggingface.co/{REPO}", model_id="Tiny-q4f16_1-MLC",
                         model_lib="llama-q4f16_1", vram_required_MB=1.0)
    return AppConfig([record], cache_dir=tmp_path / "cache")


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """Every test starts online, whatever the environment says; offline tests turn it on themselves."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _fetch(config: AppConfig, hub, reports: list | None = None):
    return download_model(config.model_list[0], app_config=config, endpoint=hub.endpoint,
                          progress=None if reports is None else reports.append, show_bar=False)


def _assert_files_match(path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (path / name).read_bytes() == data, name


def test_download_reports_monotonic_progress_in_mb_ending_at_one(hub_server, config):
    hub_server.add_repo(REPO, _files())
    reports = []
    path = _fetch(config, hub_server, reports)
    _assert_files_match(path, _files())
    fractions = [r.progress for r in reports]
    assert fractions == sorted(fractions), fractions
    assert fractions[-1] == 1.0
    assert len(reports) >= 3
    assert all("MB" in r.text for r in reports)
    assert "MB/s" in reports[-2].text
    assert all(b.time_elapsed >= a.time_elapsed for a, b in zip(reports, reports[1:]))


def test_second_download_is_a_cache_hit_with_no_request(hub_server, config):
    hub_server.add_repo(REPO, _files())
    first = _fetch(config, hub_server)
    before = hub_server.count()
    reports = []
    second = _fetch(config, hub_server, reports)
    assert second == first
    assert hub_server.count() == before
    assert reports[-1].progress == 1.0 and "cache" in reports[-1].text
    assert has_model_in_cache("Tiny-q4f16_1-MLC", config)


def test_connection_dropped_mid_file_resumes_with_a_range_request(hub_server, config):
    hub_server.add_repo(REPO, _files())
    hub_server.drop_once.add(f"{REPO}/params_shard_0.bin")
    path = _fetch(config, hub_server)
    _assert_files_match(path, _files())
    assert not hub_server.drop_once
    shard_gets = [p for m, p in hub_server.requests if m == "GET" and p.endswith("params_shard_0.bin")]
    assert len(shard_gets) == 2  # the dropped one and the resumed one


def test_corrupt_download_is_detected_by_hash_and_fetched_again(hub_server, config):
    hub_server.add_repo(REPO, _files())
    hub_server.corrupt_once.update({f"{REPO}/params_shard_1.bin", f"{REPO}/tensor-cache.json"})
    path = _fetch(config, hub_server)
    _assert_files_match(path, _files())
    gets = [p for m, p in hub_server.requests if m == "GET" and "/resolve/" in p]
    assert sum(p.endswith("params_shard_1.bin") for p in gets) == 2  # sha256 (LFS) mismatch
    assert sum(p.endswith("tensor-cache.json") for p in gets) == 2  # git blob sha1 mismatch


def test_short_file_in_the_cache_is_fetched_again(hub_server, config):
    hub_server.add_repo(REPO, _files())
    path = _fetch(config, hub_server)
    shard = path / "params_shard_0.bin"
    blob = shard.resolve()
    data = blob.read_bytes()
    blob.write_bytes(data[: len(data) // 3])  # a disk problem, or a killed copy
    assert not has_model_in_cache("Tiny-q4f16_1-MLC", config)
    path = _fetch(config, hub_server)
    _assert_files_match(path, _files())


def test_unknown_repository_raises_model_not_found(hub_server, config):
    with pytest.raises(ModelNotFoundError, match="test-org/Tiny-q4f16_1-MLC"):
        _fetch(config, hub_server)


def test_offline_mode_loads_from_the_cache_without_requests(hub_server, config, monkeypatch):
    hub_server.add_repo(REPO, _files())
    first = _fetch(config, hub_server)
    before = hub_server.count()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _fetch(config, hub_server) == first
    assert hub_server.count() == before


def test_offline_mode_without_cache_raises_model_not_found_saying_so(hub_server, config, monkeypatch):
    hub_server.add_repo(REPO, _files())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        _fetch(config, hub_server)
    assert hub_server.count() == 0


def test_cache_info_lists_and_delete_removes_the_model(hub_server, config):
    hub_server.add_repo(REPO, _files())
    _fetch(config, hub_server)
    [entry] = cache_info(config)
    assert entry.repo_id == REPO and entry.model_ids == ("Tiny-q4f16_1-MLC",)
    assert entry.size_bytes >= sum(len(d) for d in _files().values())
    freed = delete_model_from_cache("Tiny-q4f16_1-MLC", config)
    assert freed >= 500_000
    assert not has_model_in_cache("Tiny-q4f16_1-MLC", config)
    assert cache_info(config) == []


def test_local_record_returns_its_path_without_download(tmp_path):
    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"GGUF")
    record = ModelRecord(model=str(weights), model_id="m", model_lib="llama-gguf", vram_required_MB=1)
    assert download_model(record) == weights
    missing = ModelRecord(model=str(tmp_path / "no.gguf"), model_id="n", model_lib="llama-gguf", vram_required_MB=1)
    with pytest.raises(ModelNotFoundError, match="no.gguf"):
        download_model(missing)
