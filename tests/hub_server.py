"""A model hub on 127.0.0.1, shaped well enough for huggingface_hub's downloads, with injectable faults.

Serves what huggingface_hub 2.x asks for (read from its file_download.py, hf_api.py and
_snapshot_download.py):

- GET  /api/models/{org}/{repo}/revision/{rev}   → {"id", "sha", "siblings"}     (HfApi.model_info)
- GET  /api/models/{org}/{repo}/tree/{rev}       → [{"type", "path", "size", "oid", "lfs"}]  (list_repo_tree)
- HEAD /{org}/{repo}/resolve/{rev}/{file}        → ETag, X-Repo-Commit, Content-Length (+ X-Linked-*)
- GET  /{org}/{repo}/resolve/{rev}/{file}        → the bytes; `Range: bytes=N-` answered with 206

An unknown repository is a 404 with X-Error-Code: RepoNotFound, as the hub answers. Faults, each
spent on first use: `drop_once` (send half the body, then close the connection), `corrupt_once`
(the right length, wrong bytes). Every request is recorded in `requests` as (method, path).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

LFS_SUFFIXES = (".bin", ".gguf", ".safetensors")  # served as LFS files, the others as plain git files


@dataclass
class HubRepo:
    files: dict[str, bytes]
    commit: str

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def etag(self, path: str) -> str:
        data = self.files[path]
        if self.is_lfs(path):
            return hashlib.sha256(data).hexdigest()
        return self.git_sha1(path)

    def git_sha1(self, path: str) -> str:
        data = self.files[path]
        return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()

    def tree_entry(self, path: str) -> dict:
        data = self.files[path]
        entry = {"type": "file", "path": path, "size": len(data), "oid": self.git_sha1(path)}
        if self.is_lfs(path):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry


@dataclass
class FakeHub:
    repos: dict[str, HubRepo] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    drop_once: set[str] = field(default_factory=set)  # "org/repo/file"
    corrupt_once: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> HubRepo:
        commit = hashlib.sha1(repo_id.encode() + b"".join(files[name] for name in sorted(files))).hexdigest()  # 40 hex
        self.repos[repo_id] = HubRepo(dict(files), commit)
        return self.repos[repo_id]

    def count(self, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def take_fault(self, faults: set[str], key: str) -> bool:
        with self.lock:
            if key in faults:
                faults.discard(key)
                return True
            return False


_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)/revision/([^/?]+)")
_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/?]+)")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/([^?]+)")


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _json(self, data, status: int = 200, headers: dict | None = None) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def _not_found(self, code: str) -> None:
            self._json({"error": f"{code}"}, 404, {"X-Error-Code": code, "X-Error-Message": code})

        def _repo(self, repo_id: str, revision: str) -> HubRepo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._not_found("RepoNotFound")
                return None
            if revision not in ("main", repo.commit):
                self._not_found("RevisionNotFound")
                return None
            return repo

        def _serve(self, body: bool) -> None:
            with hub.lock:
                hub.requests.append((self.command, self.path))
            if match := _INFO.match(self.path):
                if repo := self._repo(match.group(1), match.group(2)):
                    self._json({"id": match.group(1), "modelId": match.group(1), "sha": repo.commit,
                                "siblings": [{"rfilename": p} for p in repo.files]})
            elif match := _TREE.match(self.path):
                if repo := self._repo(match.group(1), match.group(2)):
                    self._json([repo.tree_entry(p) for p in sorted(repo.files)])
            elif match := _RESOLVE.match(self.path):
                if repo := self._repo(match.group(1), match.group(2)):
                    self._file(repo, match.group(1), match.group(3), body)
            else:
                self._not_found("NotFound")

        def _file(self, repo: HubRepo, repo_id: str, path: str, body: bool) -> None:
            if path not in repo.files:
                self._json({"error": "Entry not found"}, 404,
                           {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit})
                return
            data = repo.files[path]
            start = 0
            if body and (ranged := re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))):
                start = int(ranged.group(1))
            key = f"{repo_id}/{path}"
            if body and hub.take_fault(hub.corrupt_once, key):
                data = bytes(b ^ 0xFF for b in data)
            self.send_response(206 if start else 200)
            self.send_header("ETag", f'"{repo.etag(path)}"')
            self.send_header("X-Repo-Commit", repo.commit)
            if repo.is_lfs(path):
                self.send_header("X-Linked-Etag", f'"{repo.etag(path)}"')
                self.send_header("X-Linked-Size", str(len(data)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not body:
                return
            if hub.take_fault(hub.drop_once, key):
                self.wfile.write(data[start: start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

    return Handler


@pytest.fixture
def hub_server():
    """A FakeHub served on a free port of 127.0.0.1; `hub.endpoint` is its URL."""
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
