"""The chat panel in a real JupyterLab: load the default model, stream a reply, stop it.

Runs the default model on whatever adapter the kernel finds (lavapipe in CI), so waits are long
and nothing asserts a speed; the delay from Enter to the first streamed token is printed and
written to the artifacts folder.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from notebook_llm.registry import DEFAULT_MODEL_ID

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LOAD_TIMEOUT_MS = 240_000  # kernel start + model load on lavapipe
REPLY_TIMEOUT_MS = 120_000


def open_notebook(page, url: str) -> None:
    """Open a notebook and wait until its kernel is connected and idle (keys pressed before
    that are lost)."""
    page.goto(url)
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=120_000)


def run_cell(page, index: int) -> None:
    """Select code cell `index` and run it with Shift+Enter, as a user would; waits until the
    kernel has taken it (its prompt shows [*] or a number)."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    cell.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).wait_for(timeout=30_000)


def cell_output_text(page, index: int) -> str:
    return page.locator(".jp-Notebook .jp-CodeCell").nth(index).locator(".jp-OutputArea").inner_text()


def assistant_text(page) -> str:
    bodies = page.locator('.nllm-message[data-role="assistant"] .nllm-message-body')
    return bodies.last.inner_text() if bodies.count() else ""


def test_chat_widget_streams_and_stops(jupyterlab, page):
    jupyterlab.write_notebook("chat.ipynb", [
        "from notebook_llm import ChatWidget\n"
        f"chat = ChatWidget(model={DEFAULT_MODEL_ID!r}, max_tokens=200, temperature=0.0)\n"
        "chat",
        "print('kernel answers', 6 * 7)",
        "print(repr(chat.messages[-1]['content']))",
    ])
    open_notebook(page, jupyterlab.url("lab/tree/chat.ipynb"))
    run_cell(page, 0)

    # the embedded picker shows the default model loaded
    page.locator(".nllm-chat").wait_for(timeout=LOAD_TIMEOUT_MS)
    status = page.locator(".nllm-picker-status")
    status.filter(has_text=f"Loaded {DEFAULT_MODEL_ID}").wait_for(timeout=LOAD_TIMEOUT_MS)
    loaded_row = page.locator(f'.nllm-model-row.is-loaded[data-model-id="{DEFAULT_MODEL_ID}"]')
    assert loaded_row.count() == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-loaded.png"), full_page=True)

    box = page.locator("textarea.nllm-input")
    box.fill("List the colors of the rainbow, one per line, with a short note on each.")
    box.press("Enter")
    pressed = time.monotonic()
    page.locator('.nllm-message[data-role="user"]').first.wait_for(timeout=10_000)
    page.wait_for_function(
        """() => { const b = document.querySelectorAll('.nllm-message[data-role="assistant"] .nllm-message-body');
                   return b.length > 0 && b[b.length - 1].innerText.trim().length > 0; }""",
        timeout=REPLY_TIMEOUT_MS, polling=50)
    first_token_s = time.monotonic() - pressed
    first_text = assistant_text(page)

    # the text grows while streaming, and the kernel still runs cells meanwhile
    page.wait_for_function(
        """(n) => { const b = document.querySelectorAll('.nllm-message[data-role="assistant"] .nllm-message-body');
                    return b[b.length - 1].innerText.trim().length > n; }""",
        arg=len(first_text.strip()), timeout=REPLY_TIMEOUT_MS, polling=100)
    assert page.locator(".nllm-message.is-streaming").count() == 1
    run_cell(page, 1)
    page.locator(".jp-Notebook .jp-CodeCell").nth(1).locator(".jp-OutputArea-output").wait_for(timeout=60_000)
    assert "kernel answers 42" in cell_output_text(page, 1)
    page.screenshot(path=str(ARTIFACTS / "chat-streaming.png"), full_page=True)

    # Stop ends the reply; the partial text stays, in the page and in Python
    page.locator("button.nllm-stop").click()
    page.locator(".nllm-message.is-streaming").wait_for(state="detached", timeout=60_000)
    partial = assistant_text(page)
    assert partial.strip(), "the partial reply was lost"
    time.sleep(1.5)
    assert assistant_text(page) == partial, "text kept arriving after Stop"
    assert page.locator("button.nllm-stop").is_disabled()
    run_cell(page, 2)
    page.locator(".jp-Notebook .jp-CodeCell").nth(2).locator(".jp-OutputArea-output").wait_for(timeout=60_000)
    kernel_text = cell_output_text(page, 2)
    assert partial.split()[0] in kernel_text
    page.screenshot(path=str(ARTIFACTS / "chat-stopped.png"), full_page=True)

    timings = {"enter_to_first_token_s": round(first_token_s, 3), "partial_chars": len(partial)}
    (ARTIFACTS / "chat-timings.json").write_text(json.dumps(timings, indent=2))
    print(f"\nEnter → first streamed token in the browser: {first_token_s:.2f} s")

