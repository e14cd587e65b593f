"""Model downloads and the download cache, through huggingface_hub only.

Owns fetching a record's repository into huggingface_hub's cache (HF_HUB_CACHE, or an
AppConfig's cache_dir), progress reports, checking what arrived, and cache queries. It never
reads weights (the loader's format modules do) and never touches the GPU.

The hub is `endpoint=`, else HF_ENDPOINT, else huggingface.co. HF_HUB_OFFLINE=1 (or
huggingface_hub's offline mode) loads from the cache only.

What is verified. huggingface_hub checks, for a plain HTTP download, only that the byte count
equals the size the hub announced (Content-Length / X-Linked-Size; "Consistency check failed"),
and resumes a dropped transfer with a Range request (5 tries). It does not hash the content.
So after each file arrives we check its size against the repository listing and its hash:
sha256 for LFS files (the listing's `lfs.oid`), the git blob sha1 for the others (`oid`). A bad
file is deleted and fetched once more; a second bad copy raises ModelFormatError. A later cache
hit re-checks sizes only (hashing gigabytes at every load would cost seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import huggingface_hub
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import ModelFormatError, ModelNotFoundError
from ..progress import InitProgressReport
from ..registry import AppConfig, ModelRecord, find_model

ProgressCallback = Callable[[InitProgressReport], None]

MANIFEST_DIR = "notebook_llm"  # inside the cache dir: what each completed download holds


def _transport_error_classes() -> tuple[type[Exception], ...]:
    """Connection and timeout errors of the HTTP client huggingface_hub uses (httpx2 in 2.4, httpx
    before), which reach the caller unwrapped when the hub cannot be reached at all."""
    classes = []
    for module in ("httpx2", "httpx"):
        try:
            classes.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(classes)


_TRANSPORT_ERRORS = _transport_error_classes()


@dataclass(frozen=True)
class RepoFileInfo:
    """One file of a repository at one commit, as the hub lists it."""

    path: str
    size: int
    sha256: str | None  # LFS files
    git_sha1: str | None  # plain git files: sha1 of "blob {size}\0" + content


def _offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return flag in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def _cache_root(cache_dir: str | os.PathLike | None, app_config: AppConfig | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if app_config is not None and app_config.cache_dir is not None:
        return app_config.cache_dir
    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE).expanduser()


def _repo_id(record: ModelRecord) -> str:
    repo_id = record.repo_id
    if repo_id is None:
        raise ModelNotFoundError(f"{record.model_id} is a local model ({record.model}); there is nothing to download")
    return repo_id


def _manifest_path(cache: Path, repo_id: str, revision: str) -> Path:
    return cache / MANIFEST_DIR / f"{repo_id.replace('/', '--')}--{revision}.json"


def _read_manifest(cache: Path, repo_id: str, revision: str) -> tuple[Path, list[RepoFileInfo]] | None:
    try:
        data = json.loads(_manifest_path(cache, repo_id, revision).read_text())
        return Path(data["snapshot"]), [RepoFileInfo(**f) for f in data["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_manifest(cache: Path, repo_id: str, revision: str, commit: str, snapshot: Path,
                    files: list[RepoFileInfo]) -> None:
    path = _manifest_path(cache, repo_id, revision)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"repo_id": repo_id, "revision": revision, "commit": commit, "snapshot": str(snapshot),
            "files": [f.__dict__ for f in files]}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)


def _bad_sizes(snapshot: Path, files: list[RepoFileInfo]) -> list[str]:
    """Files missing from the snapshot or of the wrong size."""
    bad = []
    for f in files:
        path = snapshot / f.path
        if not path.is_file() or path.stat().st_size != f.size:
            bad.append(f.path)
    return bad


def _content_matches(path: Path, f: RepoFileInfo) -> bool:
    if path.stat().st_size != f.size:
        return False
    if f.sha256:
        digest = hashlib.sha256()
    elif f.git_sha1:
        digest = hashlib.sha1(f"blob {f.size}\0".encode())
    else:
        return True
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == (f.sha256 or f.git_sha1)


def _remove_cached_file(path: Path) -> None:
    """Drop a snapshot entry and the blob it links to, so the next download fetches it anew."""
    target = path.resolve()
    path.unlink(missing_ok=True)
    if target != path:
        target.unlink(missing_ok=True)


class _Progress:
    """Bytes done over all files of one download, as InitProgressReports (monotonic) and a tqdm bar."""

    lock: threading.Lock

    def __init__(self, total_bytes: int, callback: ProgressCallback | None, show_bar: bool, label: str):
        self.lock = threading.Lock()
        self.total = max(total_bytes, 1)
        self.callback = callback
        self.start = time.perf_counter()
        self.per_file: dict[str, int] = {}
        self.reported = 0.0
        self.bar = None
        if show_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc=label)

    def set_file(self, path: str, done: int, size: int) -> None:
        with self.lock:
            self.per_file[path] = min(done, size)
            done_bytes = sum(self.per_file.values())
            fraction = min(done_bytes / self.total, 1.0)
            if fraction <= self.reported and fraction < 1.0:
                return  # a retried file counts again from 0: keep reports monotonic
            self.reported = max(fraction, self.reported)
            if self.bar is not None:
                self.bar.n = done_bytes
                self.bar.refresh()
            self._report(self.reported, done_bytes)

    def _report(self, fraction: float, done_bytes: int) -> None:
        if self.callback is None:
            return
        elapsed = time.perf_counter() - self.start
        speed = done_bytes / elapsed / 1e6 if elapsed > 0 else 0.0
        text = (f"Fetching weights: {done_bytes / 1e6:.1f} MB of {self.total / 1e6:.1f} MB "
                f"({fraction:.0%}), {speed:.1f} MB/s, {elapsed:.1f} s elapsed")
        self.callback(InitProgressReport(fraction, elapsed, text))

    def finish(self, text: str) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.close()
            if self.callback is not None:
                self.reported = 1.0
                self.callback(InitProgressReport(1.0, time.perf_counter() - self.start, text))

    def bar_class(self, path: str, size: int):
        """A tqdm stand-in for one file that huggingface_hub's http_get updates with byte counts."""
        progress = self

        class FileBar:
            def __init__(self, *args, initial: int = 0, **kwargs):
                self.n = initial
                progress.set_file(path, self.n, size)

            def update(self, n: int | float | None = 1) -> None:
                self.n += int(n or 0)
                progress.set_file(path, self.n, size)

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                pass

            def __getattr__(self, name):  # close, refresh, set_postfix_str, update_transfer ...
                return lambda *args, **kwargs: None

        return FileBar


def _list_repo(api: HfApi, repo_id: str, revision: str) -> tuple[str, list[RepoFileInfo]]:
    """The commit `revision` names, and its files with sizes and hashes."""
    info = api.model_info(repo_id, revision=revision)
    commit = info.sha
    files = []
    for entry in api.list_repo_tree(repo_id, recursive=True, revision=commit):
        if not isinstance(entry, huggingface_hub.hf_api.RepoFile):
            continue
        lfs = entry.lfs
        files.append(RepoFileInfo(path=entry.path, size=lfs.size if lfs else entry.size,
                                  sha256=lfs.sha256 if lfs else None, git_sha1=None if lfs else entry.blob_id))
    return commit, files


def _not_found(record: ModelRecord, repo_id: str, endpoint: str | None, error: Exception) -> ModelNotFoundError:
    where = endpoint or constants.ENDPOINT
    return ModelNotFoundError(
        f"{record.model_id}: the repository {repo_id!r} could not be fetched from {where} "
        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}) and it is not in the cache")


def download_model(record: ModelRecord | str, cache_dir: str | os.PathLike | None = None,
                   progress: ProgressCallback | None = None, endpoint: str | None = None,
                   revision: str = "main", app_config: AppConfig | None = None, max_workers: int = 4,
                   show_bar: bool | None = None) -> Path:
    """The local folder (or file, for a local record) holding the record's weights; fetches them if needed.

    The cache is looked at first: a complete earlier download is returned with no request to the
    hub. Otherwise the repository listing is read, files are fetched `max_workers` at a time
    with progress reports over the bytes of all files, and each file is checked (see the module
    docstring). Offline (HF_HUB_OFFLINE=1) a model missing from the cache raises ModelNotFoundError.
    """
    if isinstance(record, str):
        record = find_model(record, app_config)
    if record.repo_id is None:
        path = record.local_path
        if not path.exists():
            raise ModelNotFoundError(f"{record.model_id}: its weights are not at {path}")
        return path
    repo_id = record.repo_id
    cache = _cache_root(cache_dir, app_config)
    use_cache = app_config.use_cache if app_config is not None else True

    cached = _read_manifest(cache, repo_id, revision) if use_cache else None
    if cached is not None and not _bad_sizes(*cached):
        if progress is not None:
            progress(InitProgressReport(1.0, 0.0, f"Found {record.model_id} in the cache at {cached[0]}"))
        return cached[0]
    if _offline():
        return _offline_snapshot(record, repo_id, cache, revision)

    # HF_ENDPOINT read now: huggingface_hub reads it once, when it is imported.
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint)
    try:
        commit, files = _list_repo(api, repo_id, revision)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as error:
        raise _not_found(record, repo_id, endpoint, error) from error
    except (HfHubHTTPError, OSError, *_TRANSPORT_ERRORS) as error:  # hub down or unreachable: the cache may still have it
        try:
            return _offline_snapshot(record, repo_id, cache, revision)
        except ModelNotFoundError:
            raise _not_found(record, repo_id, endpoint, error) from error

    reporter = _Progress(sum(f.size for f in files), progress,
                         sys.stderr.isatty() if show_bar is None else show_bar, record.model_id)

    def fetch(f: RepoFileInfo) -> Path:
        return _fetch_checked(repo_id, commit, f, cache, endpoint, reporter, force=not use_cache)

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        paths = list(pool.map(fetch, files))
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    if paths:
        snapshot = Path(str(paths[0])[: -len(files[0].path) - 1])
    _write_manifest(cache, repo_id, revision, commit, snapshot, files)
    reporter.finish(f"Fetched {record.model_id}: {reporter.total / 1e6:.1f} MB in "
                    f"{time.perf_counter() - reporter.start:.1f} s")
    return snapshot


def _fetch_checked(repo_id: str, commit: str, f: RepoFileInfo, cache: Path, endpoint: str | None,
                   reporter: _Progress, force: bool) -> Path:
    """One file into the cache, checked by size and hash; a bad copy is deleted and fetched once more."""
    for attempt in range(2):
        path = Path(hf_hub_download(repo_id, f.path, revision=commit, cache_dir=cache, endpoint=endpoint,
                                    force_download=force or attempt > 0,
                                    tqdm_class=reporter.bar_class(f.path, f.size)))
        if _content_matches(path, f):
            reporter.set_file(f.path, f.size, f.size)
            return path
        _remove_cached_file(path)
    raise ModelFormatError(
        f"{repo_id}/{f.path} arrived twice with the wrong size or hash (expected {f.size} bytes, "
        f"{'sha256 ' + f.sha256 if f.sha256 else 'git sha1 ' + str(f.git_sha1)}); it was removed from the cache")


def _offline_snapshot(record: ModelRecord, repo_id: str, cache: Path, revision: str) -> Path:
    """A complete cached snapshot, without the network, or ModelNotFoundError saying what is missing."""
    cached = _read_manifest(cache, repo_id, revision)
    if cached is not None:
        bad = _bad_sizes(*cached)
        if not bad:
            return cached[0]
        raise ModelNotFoundError(
            f"{record.model_id}: the hub cannot be used (HF_HUB_OFFLINE=1 or unreachable) and the cached copy "
            f"in {cache} is incomplete ({len(bad)} file(s) missing or of the wrong size, e.g. {bad[0]})")
    try:  # downloaded by another tool (huggingface-cli, transformers): trust huggingface_hub's own check
        return Path(huggingface_hub.snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                                      local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"{record.model_id}: the hub cannot be used (HF_HUB_OFFLINE=1 or unreachable) and {repo_id} is not in "
            f"the cache at {cache}; download it once while online, or unset HF_HUB_OFFLINE") from error


def has_model_in_cache(model_id: str, app_config: AppConfig | None = None, revision: str = "main",
                       cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether a complete download of the model is in the cache (local records: whether the file exists)."""
    record = find_model(model_id, app_config)
    if record.repo_id is None:
        return record.local_path.exists()
    cached = _read_manifest(_cache_root(cache_dir, app_config), record.repo_id, revision)
    return cached is not None and not _bad_sizes(*cached)


def delete_model_from_cache(model_id: str, app_config: AppConfig | None = None,
                            cache_dir: str | os.PathLike | None = None) -> int:
    """Remove every cached revision of the model's repository; returns the bytes freed (0 if absent).

    Local records (PyPI packages, user files) are never deleted.
    """
    record = find_model(model_id, app_config)
    repo_id = _repo_id(record)
    cache = _cache_root(cache_dir, app_config)
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) \
        if folder.exists() else 0
    shutil.rmtree(folder, ignore_errors=True)
    for manifest in (cache / MANIFEST_DIR).glob(f"{repo_id.replace('/', '--')}--*.json"):
        manifest.unlink(missing_ok=True)
    return freed


@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    size_bytes: int
    revisions: tuple[str, ...]  # commit hashes
    model_ids: tuple[str, ...]  # prebuilt / given records that point at this repository
    path: Path


def cache_info(app_config: AppConfig | None = None, cache_dir: str | os.PathLike | None = None) -> list[CachedModel]:
    """Every model repository in the cache, with its size and the record ids that use it."""
    from ..registry import prebuilt_app_config

    cache = _cache_root(cache_dir, app_config)
    if not cache.is_dir():
        return []
    records = (app_config or prebuilt_app_config).model_list
    result = []
    for repo in huggingface_hub.scan_cache_dir(cache).repos:
        if repo.repo_type != "model":
            continue
        ids = tuple(r.model_id for r in records if r.repo_id == repo.repo_id)
        result.append(CachedModel(repo.repo_id, repo.size_on_disk, tuple(sorted(r.commit_hash for r in repo.revisions)),
                                  ids, Path(repo.repo_path)))
    return sorted(result, key=lambda m: m.repo_id)
