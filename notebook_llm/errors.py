"""Every error notebook_llm raises on purpose. One module so users can catch by class.

Messages name the field, the bad value and what is allowed.
"""

from __future__ import annotations


class NotebookLLMError(Exception):
    """Base class of every error raised on purpose by notebook_llm."""


class NoAdapterError(NotebookLLMError):
    """No WebGPU adapter (GPU or CPU fallback such as lavapipe) could be found."""


class DeviceLimitError(NotebookLLMError):
    """The adapter lacks a feature or limit that the model needs."""


class ModelFormatError(NotebookLLMError):
    """A weight file is malformed or uses something the engine does not implement."""


class ModelNotFoundError(NotebookLLMError):
    """A model id or path does not name a model that can be loaded."""


class InvalidRequestError(NotebookLLMError, ValueError):
    """A request parameter is missing, has the wrong type or is out of range."""

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param


class PackageConfigError(InvalidRequestError):
    """A model packaging configuration (`notebook-llm package CONFIG.json`) is malformed; `param`
    is the JSON path of the bad field, e.g. "model_list[1].model_id"."""


class ContextLengthError(InvalidRequestError):
    """The prompt plus the requested completion does not fit the context window."""


class EngineNotLoadedError(NotebookLLMError):
    """A request arrived while no model is loaded."""


class EngineBusyError(NotebookLLMError):
    """A generation is already running (or a stream is still open) on this model."""


class LoadCancelledError(NotebookLLMError):
    """A model load was cancelled. Raise it from an init progress callback to stop a load: it
    propagates out of `Engine.reload` (the engine is left with no model loaded, ready for the next
    `reload`) and out of `download_model`."""
