"""What the model is sent: the cell text with `{name}` filled in, the conversation so far, and the
prompt of `%llm fix`. Also the record of errors raised by cells (`Err[n]`).

Interpolation replaces only braces around a known name — a variable of the notebook, or
`In[n]`, `Out[n]`, `Err[n]` — and leaves every other brace as written, so code in a cell
(`{k: v for ...}`, `{}`, `{{ jinja }}`) reaches the model unchanged. `str.format` is never used.
No engine, no display.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

# {name} or {In[3]} / {Out[3]} / {Err[3]}, not part of a doubled {{ }}
_PLACEHOLDER = re.compile(
    r"(?<!\{)\{(?:(?P<history>In|Out|Err)\[(?P<index>-?\d+)\]|(?P<name>[A-Za-z_]\w*))\}(?!\})")
HISTORY_NAMES = ("In", "Out", "Err")
MAX_TRACEBACK_CHARS = 3000  # of a traceback sent to the model: its tail (the error) matters most


@dataclass(frozen=True)
class NotebookHistory:
    """Read access to the notebook's cells for interpolation: the raw input of cell n, the text of
    its output as the notebook showed it, and the traceback it raised."""

    inputs: Callable[[int], str | None]
    outputs: Callable[[int], str | None]
    errors: Callable[[int], str | None]

    def lookup(self, kind: str, index: int) -> str | None:
        return {"In": self.inputs, "Out": self.outputs, "Err": self.errors}[kind](index)


def interpolate(text: str, variables: Mapping[str, Any], history: NotebookHistory,
                hidden: frozenset[str] = frozenset()) -> str:
    """`text` with each `{name}` of a variable (not in `hidden`) and each `{In[n]}`, `{Out[n]}`,
    `{Err[n]}` that exists replaced by its text; everything else stays as written."""

    def replace(match: re.Match) -> str:
        if match["history"]:
            value = history.lookup(match["history"], int(match["index"]))
            return match[0] if value is None else value
        name = match["name"]
        if name in hidden or name in HISTORY_NAMES or name not in variables:
            return match[0]
        return str(variables[name])

    return _PLACEHOLDER.sub(replace, text)


@dataclass
class Conversation:
    """The notebook's chat: an optional system prompt and the user/assistant turns so far.

    Requests are built from `messages_with(user_text)`; a turn is kept (`add_turn`) only once the
    reply came back, so a failed request leaves the conversation as it was.
    """

    system: str | None = None
    turns: list[dict] = field(default_factory=list)

    def messages_with(self, user_text: str, system: str | None = None) -> list[dict]:
        system = self.system if system is None else system
        head = [{"role": "system", "content": system}] if system else []
        return [*head, *self.turns, {"role": "user", "content": user_text}]

    def add_turn(self, user_text: str, reply: str, system: str | None = None) -> None:
        if system is not None:
            self.system = system
        self.turns += [{"role": "user", "content": user_text}, {"role": "assistant", "content": reply}]

    def clear(self, system: str | None = None) -> None:
        self.system = system
        self.turns = []

    def as_text(self) -> str:
        if not self.turns and not self.system:
            return "(the conversation is empty)"
        messages = self.messages_with("")[:-1]
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


@dataclass(frozen=True)
class CellError:
    """An exception raised by cell `execution_count` (None: a cell run outside the history), with
    that cell's source."""

    execution_count: int | None
    cell: str
    traceback: str


def traceback_text(error: BaseException) -> str:
    """The traceback as plain text (no colours), without IPython's own frames above the cell's."""
    if isinstance(error, SyntaxError):
        return "".join(traceback.format_exception_only(type(error), error))
    tb: TracebackType | None = error.__traceback__
    while tb is not None and _is_ipython_frame(tb):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def _is_ipython_frame(tb: TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename.replace("\\", "/")
    return "/IPython/core/" in filename


def fix_prompt(error: CellError) -> str:
    """The user message of `%llm fix`: the failing cell, its traceback, what to answer."""
    tb = error.traceback.strip()
    if len(tb) > MAX_TRACEBACK_CHARS:
        tb = "…" + tb[-MAX_TRACEBACK_CHARS:]
    return (
        "This notebook cell raised an error.\n\n"
        f"```python\n{error.cell.strip()}\n```\n\n"
        f"The error:\n```\n{tb}\n```\n\n"
        "Explain the cause in one or two sentences, then give the corrected cell as one ```python code block."
    )
