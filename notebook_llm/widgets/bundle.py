"""Where the widgets' front-end bundle lives: `notebook_llm/static/`, built from `js/` by npm.

The bundle is a build output (git-ignored); anywidget reads it when a widget class is defined,
so a missing file is reported here with the command that builds it.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"


def bundle_file(name: str) -> Path:
    """The path of one bundle file (`picker.js`, `chat.js`, `widgets.css`), which must exist."""
    path = STATIC / name
    if not path.is_file():
        raise FileNotFoundError(
            f"the widget bundle file {path} is missing; build it with `npm install && npm run build` in js/ "
            "(or `pip install -e .`, whose build hook runs npm)")
    return path
