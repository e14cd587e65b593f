"""How a reply is shown: collected from a stream (`Reply`), updated live in one display while it
streams (`LiveView`), then rendered once in the chosen format as a plain display output.

Every output is a MIME bundle published on the shell's display publisher. The live display is
cleared when the final output arrives (`clear_output(wait=True)`, so nothing flickers), which
leaves a saved notebook with only the final, ordinary display_data (tools such as nbval ignore
update_display_data messages). Model text becomes HTML only with `--format html`; in Markdown,
tags outside code are escaped. No engine calls here.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..api.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionTokenLogprob,
    Choice,
    ChoiceLogprobs,
    CompletionUsage,
    RequestIdentity,
)

Bundle = dict[str, Any]
PLACEHOLDER = "…"
CURSOR = " ▌"
CODE_LANGUAGES = ("", "python", "py", "python3", "ipython", "ipython3")


# --- the reply, from a stream or a whole completion -------------------------------------------


@dataclass
class Reply:
    """Text, finish reason and token logprobs of each choice, as they arrive."""

    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)
    logprobs: list[list[ChatCompletionTokenLogprob]] = field(default_factory=list)
    usage: CompletionUsage | None = None
    model: str = ""

    def _grow(self, index: int) -> None:
        while len(self.texts) <= index:
            self.texts.append("")
            self.finish_reasons.append(None)
            self.logprobs.append([])

    def add_chunk(self, chunk: ChatCompletionChunk) -> None:
        self.model = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            self._grow(choice.index)
            self.texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                self.finish_reasons[choice.index] = choice.finish_reason
            if choice.logprobs and choice.logprobs.content:
                self.logprobs[choice.index].extend(choice.logprobs.content)

    @classmethod
    def from_completion(cls, completion: ChatCompletion) -> Reply:
        reply = cls(model=completion.model, usage=completion.usage)
        for choice in completion.choices:
            reply._grow(choice.index)
            reply.texts[choice.index] = choice.message.content or ""
            reply.finish_reasons[choice.index] = choice.finish_reason
            if choice.logprobs and choice.logprobs.content:
                reply.logprobs[choice.index] = list(choice.logprobs.content)
        return reply

    def mark_aborted(self) -> None:
        """After an interrupt: every choice not finished ends with WebLLM's "abort"."""
        self._grow(0)
        self.finish_reasons = [reason or "abort" for reason in self.finish_reasons]

    def as_completion(self) -> ChatCompletion:
        """The reply as the non-streaming API would have returned it (for logprob views)."""
        ident = RequestIdentity()
        choices = [
            Choice(i, ChatCompletionMessage(text), reason or "abort",  # type: ignore[arg-type]
                   ChoiceLogprobs(list(lp)) if lp else None)
            for i, (text, reason, lp) in enumerate(zip(self.texts, self.finish_reasons, self.logprobs))
        ]
        return ChatCompletion(id=ident.id, created=ident.created, model=self.model, choices=choices, usage=self.usage)


# --- text in each format ----------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.-]*)[^\n]*\n(?P<code>.*?)(?:^(?P=fence)[ \t]*$|\Z)",
                    re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block; a block cut off by max_tokens runs to the end."""
    return [(m["lang"].lower(), m["code"].rstrip("\n")) for m in _FENCE.finditer(text)]


def extract_code(text: str, *, whole_if_no_fence: bool = True) -> tuple[str, str] | None:
    """(language, code) to offer as a new cell: the Python blocks joined (else every block), or
    the whole text when it has no fence (None instead when `whole_if_no_fence` is off)."""
    blocks = code_blocks(text)
    if not blocks:
        return ("python", text.strip("\n")) if whole_if_no_fence and text.strip() else None
    python = [b for b in blocks if b[0] in CODE_LANGUAGES]
    chosen = python or blocks
    return (chosen[0][0] or "python", "\n\n".join(code for _, code in chosen))


def parse_json(text: str) -> Any:
    """The reply as JSON, also when the model wrapped it in a ```json fence. Raises ValueError."""
    blocks = code_blocks(text)
    candidate = blocks[0][1] if blocks and not text.lstrip().startswith(("{", "[")) else text
    return json.loads(candidate)


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_CODE_SPAN = re.compile(r"(^(`{3,}|~{3,}).*?(?:^\2[ \t]*$|\Z)|`+[^`]*`+)", re.MULTILINE | re.DOTALL)


def escape_markdown_html(text: str) -> str:
    """Markdown with the start of every HTML tag outside code escaped, so the model's text cannot
    become live HTML; code spans and blocks are left alone (they show `<` as written)."""
    pieces, last = [], 0
    for m in _CODE_SPAN.finditer(text):
        pieces += [_TAG_START.sub("&lt;", text[last:m.start()]), m[0]]
        last = m.end()
    pieces.append(_TAG_START.sub("&lt;", text[last:]))
    return "".join(pieces)


def fenced(code: str, language: str = "python") -> str:
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}{language}\n{code}\n{ticks}"


def live_bundle(text: str, fmt: str) -> Bundle:
    """What the live display shows while the reply streams: Markdown as Markdown, anything else
    (code, JSON, HTML) as plain text until it is complete."""
    shown = (text or PLACEHOLDER) + (CURSOR if text else "")
    if fmt == "markdown":
        return {"text/markdown": escape_markdown_html(shown), "text/plain": shown}
    return {"text/plain": shown}


def final_bundle(text: str, fmt: str) -> tuple[Bundle, str | None]:
    """(MIME bundle of the finished reply, a one-line warning or None)."""
    if fmt == "markdown":
        return {"text/markdown": escape_markdown_html(text), "text/plain": text}, None
    if fmt == "html":
        return {"text/html": text, "text/plain": text}, None
    if fmt == "code":
        language, code = extract_code(text) or ("python", "")
        return {"text/markdown": fenced(code, language), "text/plain": code}, None
    if fmt == "json":
        try:
            value = parse_json(text)
        except ValueError as e:
            return {"text/plain": text}, f"the reply is not valid JSON ({e}); shown as text"
        return {"application/json": value, "text/plain": json.dumps(value, indent=2, ensure_ascii=False)}, None
    return {"text/plain": text}, None


# --- token probabilities ----------------------------------------------------------------------


def logprobs_html(reply: Reply, index: int = 0) -> str:
    """The probability heatmap from notebook_llm.viz when it is there, else a small one of our own."""
    try:
        from ..viz import heatmap_html
    except ImportError:  # the viz front end is optional
        return simple_heatmap_html(reply.logprobs[index] if index < len(reply.logprobs) else [])
    return heatmap_html(reply.as_completion(), choice=index)


def simple_heatmap_html(tokens: list[ChatCompletionTokenLogprob]) -> str:
    """Each token shaded by how unlikely it was (white: p = 1, red: p → 0); hover for the alternatives."""
    spans = []
    for t in tokens:
        p = math.exp(t.logprob)
        alternatives = "\n".join(f"{a.token!r}: {math.exp(a.logprob):.3f}" for a in t.top_logprobs)
        title = html.escape(f"p = {p:.3f}" + (f"\n{alternatives}" if alternatives else ""), quote=True)
        text = html.escape(t.token).replace("\n", "↵<br>")
        spans.append(f'<span title="{title}" style="background: rgba(230, 60, 40, {0.85 * (1 - p):.2f})">{text}</span>')
    return ('<div class="notebook-llm-logprobs" style="font-family: monospace; white-space: pre-wrap; '
            f'line-height: 1.7">{"".join(spans)}</div>')


# --- publishing -------------------------------------------------------------------------------


class LiveView:
    """One live display per request, updated at most every `interval` seconds, then replaced by
    the final outputs.

    `publisher` is the shell's display publisher (ipykernel's sends display_data,
    update_display_data and clear_output messages; a test's can record them).
    """

    def __init__(self, publisher, fmt: str, interval: float):
        self.publisher = publisher
        self.fmt = fmt
        self.interval = interval
        self.display_id: str | None = None
        self._last_update = 0.0
        self._shown = ""

    def start(self) -> None:
        self.display_id = uuid.uuid4().hex
        self._publish(live_bundle("", self.fmt), update=False)
        self._last_update = time.monotonic()

    def update(self, text: str, *, force: bool = False) -> None:
        if self.display_id is None or text == self._shown:
            return
        now = time.monotonic()
        if force or now - self._last_update >= self.interval:
            self._shown = text
            self._publish(live_bundle(text, self.fmt), update=True)
            self._last_update = now

    def finish(self) -> None:
        """Clear the live display once the next output arrives (the final one)."""
        if self.display_id is not None:
            self.publisher.clear_output(wait=True)
            self.display_id = None

    def _publish(self, bundle: Bundle, *, update: bool) -> None:
        self.publisher.publish(data=bundle, metadata={}, transient={"display_id": self.display_id}, update=update)


def publish(publisher, bundle: Bundle, metadata: dict | None = None) -> None:
    """A plain display_data output."""
    publisher.publish(data=bundle, metadata=metadata or {})
