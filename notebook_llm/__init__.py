"""notebook_llm: language models in the Jupyter kernel, on the GPU through WebGPU."""

__version__ = "0.1.0"
