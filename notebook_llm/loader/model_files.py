"""Which reader opens a model path: a `.gguf` file (GGUFModelFile) or an MLC-LLM model directory (MLCModelFile).

Both offer what the graph and the engine read — `config`, `tokenizer()`, `packed`, `vector`,
`has_tensor`, `shape` under llama.cpp's tensor names — and this module is the one place that
knows which paths each reads. Nothing here touches the GPU.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelNotFoundError
from .gguf_file import GGUFModelFile
from .mlc_model import CHAT_CONFIG, MLCModelFile, is_mlc_directory

ModelFileType = GGUFModelFile | MLCModelFile


def is_model_path(path: str | Path) -> bool:
    """Whether `path` names a model this engine reads by path: a .gguf file or an MLC directory."""
    path = Path(path).expanduser()
    return path.suffix == ".gguf" or is_mlc_directory(path)


def open_model_file(path: str | Path) -> ModelFileType:
    """The reader for `path`; ModelNotFoundError when it is neither a .gguf file nor an MLC directory."""
    path = Path(path).expanduser()
    if is_mlc_directory(path):
        return MLCModelFile(path)
    if path.suffix == ".gguf":
        return GGUFModelFile(path)
    raise ModelNotFoundError(
        f"{str(path)!r} is neither a .gguf file nor a directory holding an MLC model ({CHAT_CONFIG})")
