"""Checking the custom messages a widget's front end sends to the kernel.

A message is a dict with a `type` and that type's fields. Anything else (not a dict, an unknown
type, a missing or mistyped field) is logged as a warning and dropped: a stale or buggy front
end must never raise inside the kernel.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("notebook_llm.widgets")

# message type → {field: the Python type its JSON value must have}
MessageSchema = Mapping[str, Mapping[str, type]]


def parse_message(content: Any, schema: MessageSchema, widget: str) -> dict[str, Any] | None:
    """`content` if it is a well-formed message of one of the schema's types, else None (logged)."""
    if not isinstance(content, dict):
        log.warning("%s ignored a front-end message that is not an object: %r", widget, content)
        return None
    kind = content.get("type")
    if not isinstance(kind, str) or kind not in schema:
        log.warning("%s ignored a front-end message of unknown type %r; known types: %s",
                    widget, kind, ", ".join(schema))
        return None
    for field, expected in schema[kind].items():
        value = content.get(field)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            log.warning("%s ignored a %r message: its field %r is %r, a %s is required",
                        widget, kind, field, value, expected.__name__)
            return None
    return content


def error_text(error: BaseException) -> str:
    """An error as a front end shows it: our typed errors' messages are written for users; any
    other exception also names its class."""
    from ..errors import NotebookLLMError

    if isinstance(error, NotebookLLMError):
        return str(error)
    return f"{type(error).__name__}: {error}"
