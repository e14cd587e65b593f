"""The picker's view of the registry: one JSON-ready dict per model record, marked for an adapter.
For a `RemoteEngine` (models on an OpenAI-compatible server) the list is the models its server
serves instead, and the adapter line names the server.

Reads the registry, the download cache and the adapter's description; loads nothing. The
"on disk or downloaded" mark is `has_model_in_cache` and the reason a record is disabled is
`why_not_runnable`, the same functions `%llm list` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.remote import RemoteEngine
from ..errors import NoAdapterError
from ..loader.download import cache_info, has_model_in_cache
from ..registry import (
    MB, QUANTIZATIONS, AppConfig, ModelRecord, list_models, memory_budget_mb, prebuilt_app_config, why_not_runnable,
)

if TYPE_CHECKING:
    from ..api.engine import Engine
    from ..gpu.device import AdapterInfo


def current_adapter(engine: "Engine | RemoteEngine | None") -> "AdapterInfo | None":
    """The adapter the engine runs on, or (no model loaded yet) the one it would pick first; None
    for a remote engine (its server's adapter is not ours to see)."""
    if isinstance(engine, RemoteEngine):
        return None
    if engine is not None and engine.loaded_models:
        return engine.core_for(engine.loaded_models[0]).ctx.gpu.adapter
    from ..gpu.device import list_adapters

    try:
        adapters = list_adapters()
    except NoAdapterError:
        return None
    return adapters[0] if adapters else None


def adapter_text(adapter: "AdapterInfo | None", engine: "Engine | RemoteEngine | None" = None) -> str:
    if isinstance(engine, RemoteEngine):
        return f"served at {engine.base_url}"
    return adapter.description if adapter is not None else "no WebGPU adapter found"


def engine_model_entries(engine: "Engine | RemoteEngine | None", app_config: AppConfig | None,
                         adapter: "AdapterInfo | None") -> list[dict[str, Any]]:
    """The picker's `models`: the server's models for a remote engine, else the registry's records."""
    if isinstance(engine, RemoteEngine):
        return served_entries(engine)
    return model_entries(app_config, adapter)


def served_entries(engine: RemoteEngine) -> list[dict[str, Any]]:
    """The models a remote engine's server lists, as `models` entries: runnable, nothing to download,
    sizes and needs unknown here (0), grouped under the server's address."""
    return [{
        "model_id": model_id, "family": f"served at {engine.base_url}", "quantization": "", "parameters": 0,
        "size_mb": 0.0, "vram_required_MB": 0.0, "required_features": [], "low_resource_required": False,
        "model_type": "LLM", "context_window_size": 0, "cached": True, "runnable": True, "reason": "",
    } for model_id in engine.served_models()]


def model_entries(app_config: AppConfig | None, adapter: "AdapterInfo | None") -> list[dict[str, Any]]:
    """Every record of `app_config` (default: the prebuilt list), runnable or not, as the picker's
    `models` entries (keys listed in notebook_llm.widgets)."""
    config = app_config if app_config is not None else prebuilt_app_config
    budget = memory_budget_mb(adapter)  # a malformed NOTEBOOK_LLM_VRAM_MB fails here, once
    records = list_models(config, fits=False)
    cached = {r.model_id: has_model_in_cache(r.model_id, config) for r in records}
    downloaded: dict[str, int] = {}  # repo id → bytes in the cache
    if any(cached[r.model_id] and r.repo_id is not None for r in records):
        downloaded = {m.repo_id: m.size_bytes for m in cache_info(config)}
    return [_entry(r, cached[r.model_id], downloaded, adapter, budget) for r in records]


def _entry(record: ModelRecord, cached: bool, downloaded: dict[str, int], adapter: "AdapterInfo | None",
           budget: float | None) -> dict[str, Any]:
    reason = why_not_runnable(record, adapter, budget) or ""
    if reason.startswith(f"{record.model_id} "):  # the row already shows the id: "needs model_lib …"
        reason = reason[len(record.model_id) + 1:]
    return {
        "model_id": record.model_id,
        "family": record.family,
        "quantization": record.quantization,
        "parameters": record.parameters,
        "size_mb": round(_size_mb(record, cached, downloaded), 2),
        "vram_required_MB": float(record.vram_required_MB),
        "required_features": list(record.required_features),
        "low_resource_required": record.low_resource_required,
        "model_type": record.model_type,
        "context_window_size": record.context_window_size,
        "cached": cached,
        "runnable": not reason,
        "reason": reason,
    }


def _size_mb(record: ModelRecord, cached: bool, downloaded: dict[str, int]) -> float:
    """MiB of weights: what is on disk when it is there, else the download the record implies."""
    path = record.local_path
    if path is not None and path.exists():
        return _bytes_on_disk(path) / MB
    if cached and record.repo_id in downloaded:
        return downloaded[record.repo_id] / MB
    return _weights_estimate_mb(record)


def _bytes_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _weights_estimate_mb(record: ModelRecord) -> float:
    """The weights term of registry.estimate_vram_mb (no KV cache, no activations); 0 when unknown."""
    quant = QUANTIZATIONS.get(record.quantization)
    arch = record.architecture
    if quant is None or arch is None:
        return 0.0
    return (arch.matrix_parameters * quant.bits_per_weight / 8 + arch.norm_parameters * quant.float_bytes) / MB
