"""IPython magics for talking to a local model from a notebook: `%%llm` and `%llm`.

    %load_ext notebook_llm

    %%llm --temperature 0 --max-tokens 64
    Explain what {df_name} holds in one sentence.

The front end only: it talks to the engine through the OpenAI-style API (`notebook_llm.api`),
never to wgpu. Loading the extension registers `LLMMagics`, the hook that records cell errors
(`Err[n]`, `%llm fix`) and the `Err` dict in the user namespace; unloading removes all three.
"""

from __future__ import annotations

from .llm import LLMMagics
from .options import CellOptions, parse_cell_line
from .prompt import Conversation, interpolate

__all__ = ["CellOptions", "Conversation", "LLMMagics", "interpolate", "load_ipython_extension",
           "parse_cell_line", "unload_ipython_extension"]

def load_ipython_extension(ip, engine=None) -> LLMMagics:
    """Register `%llm`/`%%llm` on `ip` (IPython calls this for `%load_ext`); `engine` is optional,
    the default model otherwise loads on first use. Loading twice keeps the first registration."""
    registered = ip.magics_manager.registry.get(LLMMagics.__name__)
    if registered is not None:
        return registered
    magics = LLMMagics(ip, engine=engine)
    ip.register_magics(magics)
    ip.events.register("post_run_cell", magics.record_error)
    ip.user_ns["Err"] = magics.error_texts
    ip.user_ns_hidden["Err"] = magics.error_texts
    return magics


def unload_ipython_extension(ip) -> None:
    magics = ip.magics_manager.registry.pop(LLMMagics.__name__, None)
    if magics is None:
        return
    ip.events.unregister("post_run_cell", magics.record_error)
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("llm", None)
    if magics in ip.configurables:
        ip.configurables.remove(magics)
    if ip.user_ns.get("Err") is magics.error_texts:
        del ip.user_ns["Err"]
    ip.user_ns_hidden.pop("Err", None)
