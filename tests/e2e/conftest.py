"""JupyterLab on 127.0.0.1 and headless Debian chromium driven by Playwright.

The server runs from this Python environment with a random token, in a temporary root directory
holding the notebooks a test writes; the browser is the system's chromium (Playwright's own
browser download is never used). Screenshots go to `E2E_ARTIFACTS` (default tests/e2e/artifacts).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", Path(__file__).parent / "artifacts"))
SERVER_START_TIMEOUT_S = 90

# Chromium as root in a sandbox-less container, and no calls to Google's services (the network is closed)
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A running JupyterLab server: `url(path)` gives an authenticated URL inside it."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen, log: Path):
        self.root, self.port, self.token, self.process, self.log = root, port, token, process, log

    def url(self, path: str = "lab") -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        notebook = {
            "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
                       "outputs": [], "source": source} for i, source in enumerate(cells)],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5,
        }
        path = self.root / name
        path.write_text(json.dumps(notebook))
        return path

    def shutdown_kernels(self) -> None:
        """Stop every kernel (a test's model and worker threads must not slow the next test)."""
        for kernel in self.api("kernels"):
            request = urllib.request.Request(self.url(f"api/kernels/{kernel['id']}"), method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()

    def api(self, path: str) -> object:
        with urllib.request.urlopen(self.url(f"api/{path}"), timeout=10) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory) -> JupyterLab:
    pytest.importorskip("jupyterlab")
    root, home = tmp_path_factory.mktemp("lab"), tmp_path_factory.mktemp("lab-home")
    port, token = _free_port(), secrets.token_hex(16)
    log = home / "jupyterlab.log"
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news pop-up
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), PYTHONUNBUFFERED="1")
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        "--ServerApp.allow_root=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env)
    lab = JupyterLab(root, port, token, process, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            lab.api("status")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"JupyterLab did not start; its log:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
    yield lab
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")  # closed after the module: Playwright's sync API holds an event loop
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/ensure_test_browser.sh)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.console_log = console
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    (ARTIFACTS / f"{request.node.name}-console.txt").write_text("\n".join(console))
    context.close()
