"""MLC-LLM model directories: repacking, the tensor cache, config, tokenizer, conversation templates,
and the engine end to end through a local hub.

Tiny random MLC repositories come from tests/mlc_fixture.py, which quantizes and lays out weights
with its own numpy implementation of MLC's format (never the loader's code). Repacked matrices are
compared bit for bit with that fixture's dequantization; logits with tests/llama_numpy.py's float64
forward pass, to ‖Δ‖/‖ref‖ < 1e-4 as for GGUF files (tests/test_architectures.py: float32 rounding
over two layers, observed ~3e-7).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from huggingface_hub import constants
from tokenizers import Tokenizer

from notebook_llm.api.engine import create_engine
from notebook_llm.engine.core import ChatOptions
from notebook_llm.errors import DeviceLimitError, InvalidRequestError, ModelFormatError
from notebook_llm.loader.conv_template import ConvTemplate
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.loader.mlc_model import MLCModelFile
from notebook_llm.loader.mlc_quant import decode_cache_array
from notebook_llm.loader.repack import dequantize
from notebook_llm.models.llama import LlamaModel
from notebook_llm.registry import AppConfig, ModelRecord

from .conftest import relative_error
from .llama_numpy import LlamaWeights, forward
from .mlc_fixture import QUANTIZATIONS, SAMPLING, bf16_bits, write_mlc_model
from .tiny_llama import Llama3Rope, write_tiny_model

# float32 arithmetic against float64, both caching keys and values in float16: a value whose float32
# result straddles an f16 rounding boundary lands one f16 ulp (2^-10 relative) from the reference's,
# which moves the logits by up to ~1.4e-4 relative (measured); the arithmetic alone stays ~1e-6.
LOGIT_BOUND = 3e-4
FEATURE_EFFECT = 1e-2  # a convention left out must move the reference logits by 100x the bound
CONTEXT_WINDOW = 128
CHUNK = 16  # a 40-token prompt takes three chunks, the last one ragged
ARCH_OPTIONS = {
    "llama": dict(llama3_rope=Llama3Rope()),  # and Llama 3.1's rope_scaling, computed from the config
    "qwen2": dict(tied=True),  # c_attn with its bias; tied embeddings
    "qwen3": dict(head_dim=32),  # q/k norms; q_dim 128 while dim is 64
    "phi3": {},  # transformer.h.* names
    "mistral": dict(sliding_window=12),  # llama's names, untied, a window shorter than the prompt
}
LAYOUTS = {"q4f16_1": "q4g32f", "q4f32_1": "q4g32f", "q4f16_0": "q4g32f", "q4f16_2": "q4g32f",
           "q0f16": "f16", "q0f32": "f32", "q0bf16": "f32"}


def _seed() -> int:
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"tiny MLC model seed {seed}")
    return seed


@pytest.fixture(scope="module", params=[(a, q) for a in ARCH_OPTIONS for q in QUANTIZATIONS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def tiny(request, tmp_path_factory):
    arch, quantization = request.param
    return write_mlc_model(tmp_path_factory.mktemp(f"{arch}-{quantization}"), _seed(), arch, quantization,
                           **ARCH_OPTIONS[arch])


# --- repacking and the tensor cache ---------------------------------------------------------------


def test_repacked_matrices_equal_the_numpy_dequantization_bit_for_bit(tiny):
    f = MLCModelFile(tiny.path)
    matrices = {name: module for name, (kind, module) in f.gguf_names.items() if kind == "matrix"}
    assert len(matrices) == 4 * f.config.n_layer + 1 + (not f.config.tied_embeddings)
    for name, module in matrices.items():
        packed = f.packed(name)
        ours = dequantize(packed).astype(np.float64)
        assert np.array_equal(ours, tiny.dense[module]), f"{tiny.quantization} {module} ({packed.layout})"
        plain_end = tiny.quantization == "q4f16_2" and name in ("token_embd.weight", "output.weight")
        assert packed.layout == ("f16" if plain_end else LAYOUTS[tiny.quantization]), name


def test_vectors_are_the_stored_values(tiny):
    f = MLCModelFile(tiny.path)
    reference = tiny.reference.tensors
    for name, (kind, _) in f.gguf_names.items():
        if kind in ("vector", "bias"):
            assert np.array_equal(f.vector(name).astype(np.float64), reference[name]), name


def test_full_precision_f32_scales_repack_as_int8_codes_rounding_once(tmp_path):
    """A cache written with format "raw" keeps q4f32_1's float32 scales (24 significant bits): the
    codes become q8g32f's int8 q − 7, so the kernel's one product rounds as MLC's float32 multiply."""
    tiny = write_mlc_model(tmp_path, _seed(), "llama", "q4f32_1", f32_format="raw")
    f = MLCModelFile(tiny.path)
    packed = f.packed("blk.0.attn_output.weight")
    assert packed.layout == "q8g32f"
    exact = tiny.dense["model.layers.0.self_attn.o_proj"]
    assert np.array_equal(dequantize(packed), exact.astype(np.float32))
    assert not np.array_equal(exact.astype(np.float32).astype(np.float64), exact), "products need 27 bits"


def test_f32_to_bf16_records_widen_exactly(rng):
    values = rng.standard_normal(1000).astype(np.float32) * np.float32(1e3) ** rng.integers(-3, 4, 1000)
    bits = bf16_bits(values)
    decoded = decode_cache_array(np.frombuffer(bits.tobytes(), np.uint8), "float32", "f32-to-bf16", (1000,), "x")
    assert decoded.dtype == np.float32
    assert np.array_equal(decoded.view(np.uint32), bits.astype(np.uint32) << 16)
    assert np.max(np.abs(decoded / values - 1)) < 2**-8  # and it is the rounded value, not garbage
    # tvmjs marks a cache's float16 and uint32 records "f32-to-bf16" too, with their bytes raw
    halves = np.array([1.5, -2.25], np.float16)
    assert np.array_equal(decode_cache_array(halves.view(np.uint8), "float16", "f32-to-bf16", (2,), "x"), halves)


@pytest.mark.parametrize("cache_name", ["tensor-cache.json", "ndarray-cache.json"])
def test_both_tensor_cache_names_load(tmp_path, cache_name):
    tiny = write_mlc_model(tmp_path, _seed(), "qwen2", "q4f16_1", cache_name=cache_name, with_md5=False,
                           shard_bytes=8192)
    f = MLCModelFile(tiny.path)
    assert f.tensor_cache_path.name == cache_name and len(f.shards) > 3
    assert np.array_equal(dequantize(f.packed("token_embd.weight")).astype(np.float64),
                          tiny.dense["model.embed_tokens"])


def test_corrupt_shard_fails_its_md5_naming_the_shard(tmp_path):
    tiny = write_mlc_model(tmp_path, _seed(), "llama", "q4f16_1", shard_bytes=8192)
    shard = tmp_path / "params_shard_2.bin"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    f = MLCModelFile(tiny.path)  # sizes are right: opening works
    with pytest.raises(ModelFormatError, match="params_shard_2.bin.*md5"):
        for name in f.gguf_names:
            f.packed(name) if f.gguf_names[name][0] == "matrix" else f.vector(name)
    MLCModelFile(tiny.path, verify_md5=False).packed("blk.1.ffn_down.weight")  # the check can be skipped


def test_short_or_missing_shard_is_named_when_the_directory_opens(tmp_path):
    tiny = write_mlc_model(tmp_path, _seed(), "llama", "q0f16", shard_bytes=8192)
    shard = tmp_path / "params_shard_1.bin"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ModelFormatError, match="params_shard_1.bin.*bytes"):
        MLCModelFile(tiny.path)
    shard.unlink()
    with pytest.raises(ModelFormatError, match="params_shard_1.bin.*missing"):
        MLCModelFile(tiny.path)


def test_unsupported_quantization_and_model_type_are_named(tmp_path):
    tiny = write_mlc_model(tmp_path, _seed(), "llama", "q4f16_1")
    config_path = tmp_path / "mlc-chat-config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"quantization": "q3f16_1"}))
    with pytest.raises(ModelFormatError, match="q3f16_1.*supported"):
        MLCModelFile(tiny.path)
    config_path.write_text(json.dumps(config | {"model_type": "gemma2"}))
    with pytest.raises(ModelFormatError, match="gemma2.*supported"):
        MLCModelFile(tiny.path)


# --- config ---------------------------------------------------------------------------------------


def test_config_comes_from_mlc_chat_config_and_the_tensors(tiny):
    cfg = MLCModelFile(tiny.path).config
    hp = tiny.reference.hparams
    assert (cfg.n_layer, cfg.dim, cfg.ffn_dim, cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.vocab_size) == \
        (hp.n_layer, hp.dim, hp.ffn, hp.n_head, hp.n_kv_head, hp.head_dim, hp.vocab)
    assert cfg.rope_neox, "MLC keeps Hugging Face's q/k rows: RoPE rotates halves, llama included"
    assert cfg.tied_embeddings == ("output.weight" not in tiny.reference.tensors)
    assert cfg.qkv_bias == (tiny.arch == "qwen2") and cfg.qk_norm == (tiny.arch == "qwen3")
    assert cfg.sliding_window == (12 if tiny.arch == "mistral" else 0)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.context_length) == (1, 2, 128)


def test_mlc_chat_config_defaults(tmp_path):
    f = MLCModelFile(write_mlc_model(tmp_path, _seed(), "qwen3", "q0f16").path)
    assert f.sampling_defaults == SAMPLING
    assert f.runtime_defaults == {"context_window_size": 128, "prefill_chunk_size": 32}
    config = json.loads((tmp_path / "mlc-chat-config.json").read_text())
    (tmp_path / "mlc-chat-config.json").write_text(json.dumps(config | {"top_p": 0}))
    with pytest.raises(ModelFormatError, match="top_p"):
        MLCModelFile(tmp_path).sampling_defaults


# --- the graph against numpy ----------------------------------------------------------------------


@pytest.mark.parametrize("arch,quantization", [
    ("llama", "q4f16_1"), ("llama", "q0f32"), ("qwen2", "q4f32_1"), ("qwen2", "q0f16"), ("qwen3", "q4f16_1"),
    ("qwen3", "q0f32"), ("phi3", "q4f16_0"), ("mistral", "q0bf16"), ("llama", "q4f16_2"),
])
def test_prefill_logits_match_numpy_at_every_position(ctx, tmp_path, rng, arch, quantization):
    tiny = write_mlc_model(tmp_path, _seed(), arch, quantization, **ARCH_OPTIONS[arch])
    model = LlamaModel(ctx, MLCModelFile(tiny.path), context_window_size=CONTEXT_WINDOW, prefill_chunk_size=CHUNK)
    ids = rng.integers(0, model.config.vocab_size, size=40).tolist()
    logits = model.forward_logits(ids)
    reference = forward(tiny.reference, ids, CONTEXT_WINDOW)
    for t in range(len(ids)):
        assert relative_error(logits[t], reference[t]) < LOGIT_BOUND, f"{arch} {quantization}: position {t}"


def test_llama_rope_order_and_llama3_scaling_matter(tmp_path, rng):
    """The reference runs llama with llama.cpp's interleaved q/k rows; without the permutation (or
    without the config's rope_scaling) its logits move far more than the bound."""
    tiny = write_mlc_model(tmp_path, _seed(), "llama", "q0f32", llama3_rope=Llama3Rope())
    ids = rng.integers(0, 300, size=40).tolist()
    reference = forward(tiny.reference, ids, CONTEXT_WINDOW)
    unpermuted = dict(tiny.reference.tensors)
    q_dim = 64
    for i in range(2):
        qkv = tiny.dense[f"model.layers.{i}.self_attn.qkv_proj"]
        unpermuted[f"blk.{i}.attn_q.weight"], unpermuted[f"blk.{i}.attn_k.weight"] = qkv[:q_dim], qkv[q_dim: q_dim + 32]
    assert relative_error(forward(LlamaWeights(tiny.reference.hparams, unpermuted), ids, CONTEXT_WINDOW), reference) > FEATURE_EFFECT
    no_scaling = {k: v for k, v in tiny.reference.tensors.items() if k != "rope_freqs.weight"}
    assert relative_error(forward(LlamaWeights(tiny.reference.hparams, no_scaling), ids, CONTEXT_WINDOW), reference) > FEATURE_EFFECT


# --- tokenizer ------------------------------------------------------------------------------------

TEXTS = ["Hello world", "the cat and the hat 1234", "<|im_start|>user\nhi there<|im_end|>\n",
         "ünïcödé ½ ² 😀 中文", "  spaces\tand\nnewlines  ", "it's we'll"]


def test_tokenizer_json_gives_the_gguf_tokenizers_ids_and_text(tmp_path):
    """The same byte-level vocabulary as a GGUF file (tests/tiny_llama.py) and as tokenizer.json."""
    tiny = write_mlc_model(tmp_path / "mlc", _seed(), "llama", "q0f16")
    ours = MLCModelFile(tiny.path).tokenizer()
    gguf = GGUFModelFile(write_tiny_model(tmp_path / "tiny.gguf", seed=1, vocab=300)).tokenizer()
    assert ours.vocab_size == 300 and tiny.tokenizer_size == 294  # padded up to the model's vocabulary
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == gguf.encode(text), text
        assert ours.decode(ids) == text == gguf.decode(ids)
        stream = ours.stream_decoder()
        assert "".join(stream.push(i) for i in ids) + stream.flush() == text
    assert ours.encode("<|im_end|>") == [2] and ours.is_special(2) and not ours.is_special(40)
    assert ours.decode([3, 299]) == ours.decode([3]) and ours.is_special(299)  # padding decodes to nothing
    assert (ours.bos_token_id, ours.eos_token_id) == (1, 2)
    assert set(ours.stop_token_ids) == {0, 2}  # eos [2, 0] and the template's stop_token_ids


def test_system_prefix_token_ids_must_be_special_tokens(tmp_path):
    roles = {"user": "U:", "assistant": "A:"}
    tiny = write_mlc_model(tmp_path / "ok", _seed(), "llama", "q0f16",
                           conv_template={"roles": roles, "seps": ["\n"], "system_prefix_token_ids": [0]})
    f = MLCModelFile(tiny.path)
    prompt = f.prompt_template().render([{"role": "user", "content": "hi"}])
    assert prompt == "<|endoftext|>U:hi\nA:" and f.tokenizer().encode(prompt, add_special_tokens=False)[0] == 0
    merged = f.tokenizer().token_to_id("Ġt")  # a normal token: its text tokenizes as its bytes
    bad = write_mlc_model(tmp_path / "bad", _seed(), "llama", "q0f16",
                          conv_template={"roles": roles, "seps": ["\n"], "system_prefix_token_ids": [merged]})
    with pytest.raises(ModelFormatError, match="system_prefix_token_ids"):
        MLCModelFile(bad.path).prompt_template()


# --- conversation templates (mlc-llm's definitions, python/mlc_llm/conversation_template/) --------

QWEN2 = {"name": "qwen2", "system_template": "<|im_start|>system\n{system_message}<|im_end|>\n",
         "system_message": "You are a helpful assistant.",
         "roles": {"user": "<|im_start|>user", "assistant": "<|im_start|>assistant"},
         "seps": ["<|im_end|>\n"], "role_content_sep": "\n", "role_empty_sep": "\n",
         "stop_str": ["<|endoftext|>, <|im_end|>"], "stop_token_ids": [151643, 151645]}
LLAMA3 = {"name": "llama-3",
          "system_template": "<|start_header_id|>system<|end_header_id|>\n\n{system_message}<|eot_id|>",
          "system_message": "You are a helpful, respectful and honest assistant.",
          "roles": {"user": "<|start_header_id|>user", "assistant": "<|start_header_id|>assistant"},
          "seps": ["<|eot_id|>"], "role_content_sep": "<|end_header_id|>\n\n", "role_empty_sep": "<|end_header_id|>\n\n",
          "stop_str": ["<|end_of_text|>", "<|eot_id|>"], "stop_token_ids": [128001, 128009],
          "system_prefix_token_ids": [128000], "add_role_after_system_message": True}
LLAMA2 = {"name": "llama-2", "system_template": "[INST] <<SYS>>\n{system_message}\n<</SYS>>\n\n",
          "system_message": "You are a helpful, respectful and honest assistant.",
          "roles": {"user": "<s>[INST]", "assistant": "[/INST]", "tool": "[INST]"},
          "seps": [" ", " </s>"], "role_content_sep": " ", "role_empty_sep": " ", "stop_str": ["[INST]"],
          "stop_token_ids": [2], "system_prefix_token_ids": [1], "add_role_after_system_message": False}
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "2+2?"}]


def test_chatml_qwen2_prompt_with_and_without_a_system_message():
    conv = ConvTemplate.from_dict(QWEN2)
    assert conv.render([{"role": "system", "content": "Be brief."}, *CHAT]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert conv.render(CHAT[:1]) == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                     "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert conv.render(CHAT[:1], add_generation_prompt=False).endswith("Hi<|im_end|>\n")
    assert conv.stop_strings == ("<|endoftext|>, <|im_end|>",) and conv.stop_token_ids == (151643, 151645)


def test_llama3_prompt_starts_with_its_bos_text():
    conv = ConvTemplate.from_dict(LLAMA3, prefix_text="<|begin_of_text|>")
    assert conv.system_prefix_token_ids == (128000,)
    assert conv.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_llama2_prompt_puts_the_first_message_inside_the_system_turn():
    conv = ConvTemplate.from_dict(LLAMA2, prefix_text="<s>")
    assert conv.render(CHAT) == (
        "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.\n<</SYS>>\n\n"
        "Hi [/INST] Hello! </s><s>[INST] 2+2? [/INST] ")
    assert conv.render([{"role": "system", "content": ""}, *CHAT[:1]]) == (
        "<s>[INST] <<SYS>>\n\n<</SYS>>\n\nHi [/INST] ")


def test_template_rejects_roles_it_does_not_have_and_late_system_messages():
    conv = ConvTemplate.from_dict(QWEN2)
    with pytest.raises(InvalidRequestError, match=r"messages\[0\].role is 'tool'"):
        conv.render([{"role": "tool", "content": "x"}])
    with pytest.raises(InvalidRequestError, match=r"messages\[1\].role is 'system'.*first message only"):
        conv.render([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}])


def test_qwen3_history_loses_old_reasoning_and_thinking_can_be_switched_off():
    conv = ConvTemplate.from_dict(QWEN2 | {"name": "qwen3", "strip_reasoning_in_history": True})
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nB"},
                {"role": "user", "content": "c"}]
    prompt = conv.render(messages, enable_thinking=False)
    assert "hmm" not in prompt and "<|im_start|>assistant\nB<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


# --- the engine -----------------------------------------------------------------------------------

USER = [{"role": "user", "content": "the cat and the hat"}]
CHATML_PROMPT = ("<|im_start|>system\nYou are tiny.<|im_end|>\n<|im_start|>user\nthe cat and the hat<|im_end|>\n"
                 "<|im_start|>assistant\n")
STOP_IDS = {0, 2}


def _numpy_greedy(weights: LlamaWeights, prompt: list[int], n: int) -> tuple[list[int], str]:
    ids: list[int] = []
    for _ in range(n):
        token = int(np.argmax(forward(weights, prompt + ids, CONTEXT_WINDOW)[-1]))
        if token in STOP_IDS:
            return ids, "stop"
        ids.append(token)
    return ids, "length"


def _hub_files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def hub_model(hub_server, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    tiny = write_mlc_model(tmp_path / "repo", _seed(), "qwen2", "q4f16_1", tied=True)
    hub_server.add_repo("test-org/Tiny-qwen2-q4f16_1-MLC", _hub_files(tiny.path))
    return tiny


def _config(tmp_path, **record) -> AppConfig:
    fields = dict(model="HF://test-org/Tiny-qwen2-q4f16_1-MLC", model_id="tiny-mlc", model_lib="qwen2-q4f16_1",
                  vram_required_MB=1.0, overrides={"context_window_size": 96, "prefill_chunk_size": 16,
                                                   "temperature": 0.0})
    return AppConfig([ModelRecord(**(fields | record))], cache_dir=tmp_path / "cache")


def test_hub_record_downloads_loads_and_answers_like_numpy(hub_server, hub_model, tmp_path):
    reports = []
    engine = create_engine("tiny-mlc", app_config=_config(tmp_path), init_progress_callback=reports.append)
    core = engine.core
    # the record's overrides, over the mlc-chat-config's own window and sampling defaults
    assert (core.model.context_window_size, core.model.prefill_chunk_size) == (96, 16)
    assert core.sampling_defaults == SAMPLING | {"temperature": 0.0}
    fractions = [r.progress for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("Fetching" in r.text and r.progress <= 0.5 for r in reports)
    assert any("Loading layer" in r.text and r.progress > 0.5 for r in reports)

    prompt = Tokenizer.from_file(str(hub_model.path / "tokenizer.json")).encode(CHATML_PROMPT, add_special_tokens=False).ids
    expected, finish = _numpy_greedy(hub_model.reference, prompt, 8)
    reply = engine.chat.completions.create(messages=USER, max_tokens=8)  # greedy: the record's temperature 0
    assert reply.usage.prompt_tokens == len(prompt)
    assert reply.choices[0].message.content == core.tokenizer.decode(expected)
    assert reply.choices[0].finish_reason == finish
    assert reply.usage.completion_tokens == len(expected) + (finish == "stop")

    # a second load finds the download in the cache: no request reaches the hub
    before = hub_server.count()
    engine.reload("tiny-mlc", ChatOptions(context_window_size=64))  # the caller's choice beats the record's
    assert hub_server.count() == before and engine.core.model.context_window_size == 64


def test_record_the_adapter_cannot_run_fails_before_any_download(hub_server, hub_model, tmp_path):
    config = _config(tmp_path, required_features=("imaginary-feature",))
    with pytest.raises(DeviceLimitError, match="imaginary-feature"):
        create_engine("tiny-mlc", app_config=config)
    assert hub_server.count() == 0


def test_local_directory_loads_and_honours_the_templates_stop_strings(tmp_path):
    tiny = write_mlc_model(tmp_path / "model", _seed(), "llama", "q4f32_1")
    options = ChatOptions(context_window_size=CONTEXT_WINDOW, prefill_chunk_size=CHUNK)
    engine = create_engine(str(tiny.path), chat_options=options)
    assert engine.model_id == "model" and engine.core.options.prefill_chunk_size == CHUNK
    full = engine.chat.completions.create(messages=USER, max_tokens=10, temperature=0)
    text = full.choices[0].message.content
    if full.choices[0].finish_reason != "length" or len(text) < 4:
        pytest.skip(f"this seed's greedy reply {text!r} is too short to place a stop string in")
    stop = text[len(text) // 2: len(text) // 2 + 2]
    config_path = tiny.path / "mlc-chat-config.json"
    config = json.loads(config_path.read_text())
    config["conv_template"]["stop_str"] = [stop]
    shutil.copytree(tiny.path, tmp_path / "stopping")
    (tmp_path / "stopping" / "mlc-chat-config.json").write_text(json.dumps(config))
    engine.reload(str(tmp_path / "stopping"), options)
    cut = engine.chat.completions.create(messages=USER, max_tokens=10, temperature=0)
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
