"""`%%llm` and `%llm` in a real IPython shell: option parsing, interpolation, the conversation,
what is displayed (live updates, then one plain display with metadata), and one-line errors.

Generation runs on a random-weight tiny llama (fast; its text is gibberish but every path is
real), on a scripted engine where a test needs exact text (code fences, JSON, interrupts), and
on the real default model in the two tests marked slow.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import re
import sys
from collections.abc import Iterator

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.testing.globalipapp import get_ipython

from notebook_llm import create_engine
from notebook_llm.api.types import (
    ChatCompletionChunk,
    ChatCompletionTokenLogprob,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
    TopLogprob,
)
from notebook_llm.magics import (
    CellOptions,
    Conversation,
    interpolate,
    load_ipython_extension,
    parse_cell_line,
    unload_ipython_extension,
)
from notebook_llm.magics.prompt import NotebookHistory
from notebook_llm.magics.render import code_blocks, escape_markdown_html, extract_code, parse_json, simple_heatmap_html

from .tiny_llama import write_tiny_llama

MAGIC_TRAITS = (
    "default_model", "default_system", "default_temperature", "default_max_tokens", "default_format",
    "stream_interval",
)


class RecordingPublisher(DisplayPublisher):
    """Keeps every display, update and clear instead of sending them to a front end."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.events: list[tuple] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        self.events.append(("update" if update else "display", data, metadata or {}, transient or {}))

    def clear_output(self, wait=False):
        self.events.append(("clear", wait))

    def displays(self) -> list[tuple]:
        """Plain display_data outputs that come after the last clear: what a saved notebook keeps."""
        last_clear = max((i for i, e in enumerate(self.events) if e[0] == "clear"), default=-1)
        return [e for e in self.events[last_clear + 1:] if e[0] == "display"]

    def replies(self) -> list[tuple]:
        return [e for e in self.displays() if "notebook_llm" in e[2]]


class ScriptedEngine:
    """Stands in for Engine where a test needs exact reply text: streams `reply` a word at a time."""

    model_id = "scripted"

    def __init__(self, reply: str = "Hello there, notebook.", interrupt_after: int | None = None):
        self.loaded_models = ["scripted"]
        self.reply, self.interrupt_after = reply, interrupt_after
        self.requests: list[dict] = []
        self.interrupted = self.resets = 0
        self.chat = type("Chat", (), {"completions": self})()

    def create(self, **kwargs):
        self.requests.append(kwargs)
        return self._chunks()

    def _chunks(self) -> Iterator[ChatCompletionChunk]:
        parts = re.findall(r"\s*\S+\s*", self.reply)
        for i, part in enumerate(parts):
            if self.interrupt_after is not None and i == self.interrupt_after:
                raise KeyboardInterrupt
            yield ChatCompletionChunk("c", [ChunkChoice(0, ChoiceDelta(content=part))], 0, self.model_id)
        yield ChatCompletionChunk("c", [ChunkChoice(0, ChoiceDelta(), "stop")], 0, self.model_id)
        yield ChatCompletionChunk("c", [], 0, self.model_id, usage=CompletionUsage(3, len(parts), 3 + len(parts)))

    def interrupt_generate(self):
        self.interrupted += 1

    def reset_chat(self, keep_stats=False, model=None):
        self.resets += 1

    def runtime_stats_text(self, model=None):
        return "scripted: no GPU"


@pytest.fixture(scope="module")
def ip():
    return get_ipython()


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    return create_engine(str(write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=7)))


@pytest.fixture
def shell(ip, monkeypatch):
    """The shell with a recording display publisher and set_next_input captured in `ip.next_inputs`."""
    publisher = RecordingPublisher(shell=ip)
    monkeypatch.setattr(ip, "display_pub", publisher)
    ip.next_inputs = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: ip.next_inputs.append((text, replace)))
    yield ip
    unload_ipython_extension(ip)
    ip.config.pop("LLMMagics", None)  # %config in a test must not configure the next test's magics
    for name in ("x", "r", "s", "out", "schema", "city", "data"):
        ip.user_ns.pop(name, None)


def load(ip, engine):
    unload_ipython_extension(ip)
    magics = load_ipython_extension(ip, engine=engine)
    magics.stream_interval = 0  # every chunk updates the live display: deterministic tests
    return magics


def run(ip, source: str):
    """Run a cell as a notebook does (with history), failing on any traceback."""
    result = ip.run_cell(source, store_history=True)
    assert result.error_in_exec is None and result.error_before_exec is None, result
    return result


def one_line_error(capsys, magic: str = "%%llm") -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(magic + ":"), err
    assert "Traceback" not in err
    return err


# --- option parsing (no model) ----------------------------------------------------------------


def test_every_option_is_parsed_into_cell_options():
    options = parse_cell_line(
        "-m tiny.gguf --system 'Be brief.' --temperature 0.5 --top-p 0.9 --max-tokens 7 --seed 3 "
        r"--stop '\n' --stop END -n 2 --schema spec --format code --logprobs 3 --new --out reply "
        "--no-stream --no-interpolate")
    assert options == CellOptions(
        model="tiny.gguf", system="Be brief.", temperature=0.5, top_p=0.9, max_tokens=7, seed=3, stop=("\n", "END"),
        n=2, schema="spec", format="code", top_logprobs=3, new=True, out="reply", stream=False, interpolate=False)
    assert parse_cell_line("") == CellOptions()
    assert parse_cell_line("--json").display_format == "json"
    assert parse_cell_line("--logprobs").top_logprobs == 5
    assert parse_cell_line("--logprobs 0").top_logprobs == 0
    assert parse_cell_line("--model x").model == "x"


@pytest.mark.parametrize("line, expected", [
    ("--temperature hot", "invalid float value: 'hot'"),
    ("--temperature 3", "--temperature: temperature is 3.0"),
    ("--top-p 0", "--top-p: top_p is 0.0"),
    ("--max-tokens 0", "--max-tokens: max_tokens is 0"),
    ("--max-tokens many", "invalid int value"),
    ("-n 0", "-n: n is 0"),
    ("--logprobs 99", "--logprobs: top_logprobs is 99"),
    ("--stop ''", "--stop"),
    ("--format pdf", "invalid choice: 'pdf'"),
    ("--out 2x", "'2x' is not a Python variable name"),
    ("--json --schema spec", "--json and --schema exclude each other"),
    ("--schema missing", "no variable 'missing'"),
    ("--schema x", "x is of type int; allowed: a dict"),
    ("--bogus", "unrecognized arguments: --bogus"),
    ("--temperature", "expected one argument"),
    ("--system 'unclosed", "No closing quotation"),
    ("-m no-such-model", "'no-such-model' is not in the model list"),
])
def test_bad_option_prints_one_line_and_leaves_the_conversation(shell, capsys, line, expected):
    engine = ScriptedEngine()
    magics = load(shell, engine)
    shell.user_ns["x"] = 1
    magics.conversation.add_turn("before", "kept")
    run(shell, f"%%llm {line}\nhello")
    assert expected in one_line_error(capsys)
    assert engine.requests == [] and magics.conversation.turns[-1]["content"] == "kept"
    assert shell.display_pub.events == []


def test_empty_cell_is_an_error(shell, capsys):
    load(shell, ScriptedEngine())
    run(shell, "%%llm --temperature 0\n\n   \n")
    assert "the cell is empty" in one_line_error(capsys)


def test_request_arguments_follow_options_and_defaults(shell):
    engine = ScriptedEngine()
    magics = load(shell, engine)
    shell.user_ns["schema"] = {"type": "object", "properties": {"a": {"type": "integer"}}}
    run(shell, "%%llm --top-p 0.5 --seed 11 --stop END --logprobs 2 -n 1 --schema schema\nhi")
    request = engine.requests[-1]
    assert request["temperature"] == magics.default_temperature and request["max_tokens"] == magics.default_max_tokens
    assert request["top_p"] == 0.5 and request["seed"] == 11 and request["stop"] == ["END"]
    assert request["logprobs"] is True and request["top_logprobs"] == 2
    assert request["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "schema", "schema": shell.user_ns["schema"]}}
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    run(shell, "%%llm --json\nhi")
    assert engine.requests[-1]["response_format"] == {"type": "json_object"}
    assert isinstance(engine.requests[-1]["seed"], int)  # drawn, so the output's metadata can replay it


def test_config_traits_set_the_defaults_and_reject_bad_values(shell, capsys, caplog):
    engine = ScriptedEngine()
    magics = load(shell, engine)
    run(shell, "%config LLMMagics.default_temperature = 0.0")
    run(shell, "%config LLMMagics.default_max_tokens = 9")
    run(shell, "%config LLMMagics.default_system = 'You are terse.'")
    run(shell, "%config LLMMagics.default_temperature = 7")  # rejected (IPython logs it): stays 0.0
    assert "default_temperature: temperature is 7.0; allowed: a number in [0, 2]" in caplog.text
    run(shell, "%%llm\nhi")
    request = engine.requests[-1]
    assert (request["temperature"], request["max_tokens"]) == (0.0, 9)
    assert request["messages"][0] == {"role": "system", "content": "You are terse."}
    run(shell, "%llm config")
    shown = capsys.readouterr().out
    for name in MAGIC_TRAITS:
        assert f"LLMMagics.{name} = " in shown
    assert magics.default_temperature == 0.0


# --- interpolation ----------------------------------------------------------------------------


def _no_history() -> NotebookHistory:
    return NotebookHistory(lambda n: None, lambda n: None, lambda n: None)


def test_interpolation_fills_known_names_and_leaves_every_other_brace():
    variables = {"x": 42, "name": "Ada", "k": "K"}
    text = "x={x} {name}! {k: v for k, v in d.items()} {} {{x}} {{ name }} {unknown} {x.real} {0} f'{x!r}'"
    assert interpolate(text, variables, _no_history()) == (
        "x=42 Ada! {k: v for k, v in d.items()} {} {{x}} {{ name }} {unknown} {x.real} {0} f'{x!r}'")
    assert interpolate("{x}", variables, _no_history(), hidden=frozenset({"x"})) == "{x}"


def test_interpolation_of_in_out_err_in_a_shell(shell):
    engine = ScriptedEngine()
    load(shell, engine)
    first = run(shell, "data = [1, 2]\ndata").execution_count
    failed = shell.run_cell("data[5]", store_history=True).execution_count
    message = f"Code: {{In[{first}]}} Out: {{Out[{first}]}} Err: {{Err[{failed}]}} missing: {{Out[999]}} {{data}}"
    run(shell, "%%llm\n" + message)
    sent = engine.requests[-1]["messages"][-1]["content"]
    assert "Code: data = [1, 2]\ndata Out: [1, 2] Err: Traceback (most recent call last):" in sent
    assert "IndexError: list index out of range" in sent
    assert "interactiveshell.py" not in sent  # IPython's own frames are left out
    assert sent.endswith("missing: {Out[999]} [1, 2]")
    assert shell.user_ns["Err"][failed].endswith("IndexError: list index out of range\n")


def test_no_interpolate_sends_the_cell_as_written(shell):
    engine = ScriptedEngine()
    load(shell, engine)
    shell.user_ns["x"] = 42
    run(shell, "%%llm --no-interpolate\nkeep {x} as is")
    assert engine.requests[-1]["messages"][-1]["content"] == "keep {x} as is"


def test_code_with_comprehension_braces_reaches_the_model_unchanged(shell):
    engine = ScriptedEngine()
    load(shell, engine)
    shell.user_ns["x"] = 1
    code = "Why is this slow?\nsquares = {k: k * k for k in range(10)}\nempty = {}\nfmt = f'{{literal}}'"
    run(shell, "%%llm\n" + code)
    assert engine.requests[-1]["messages"][-1]["content"] == code


# --- display ----------------------------------------------------------------------------------


def test_stream_updates_one_live_display_then_shows_one_plain_output_with_metadata(shell):
    engine = ScriptedEngine("Paris is the capital of **France**.")
    load(shell, engine)
    run(shell, "%%llm --temperature 0 --seed 5 --max-tokens 30\nCapital of France?")
    events = shell.display_pub.events
    kinds = [e[0] for e in events]
    assert kinds[0] == "display" and kinds.count("update") >= 4, kinds
    live_id = events[0][3]["display_id"]
    assert all(e[3]["display_id"] == live_id for e in events if e[0] == "update")
    updates = [e[1]["text/plain"] for e in events if e[0] == "update"]
    assert all(len(a) < len(b) for a, b in itertools.pairwise(updates))  # accumulated text, growing
    assert kinds.index("clear") > max(i for i, k in enumerate(kinds) if k == "update")
    (final,) = shell.display_pub.displays()
    assert final[3] == {}  # an ordinary display, not tied to the live display
    assert final[1]["text/markdown"] == "Paris is the capital of **France**."
    assert final[2]["notebook_llm"] == {"model_id": "scripted", "seed": 5, "temperature": 0.0, "top_p": 1.0,
                                        "max_tokens": 30, "index": 0, "finish_reason": "stop"}


def test_stream_interval_limits_the_number_of_updates(shell):
    magics = load(shell, ScriptedEngine("a " * 50))
    magics.stream_interval = 60.0
    run(shell, "%%llm\nhi")
    assert [e[0] for e in shell.display_pub.events].count("update") == 0
    assert shell.display_pub.replies()[0][1]["text/markdown"] == "a " * 50


def test_each_format_renders_as_its_mime_type(shell, capsys):
    engine = ScriptedEngine()
    load(shell, engine)
    engine.reply = "<b>bold</b> and `<i>` in code"
    run(shell, "%%llm\nhi")
    assert shell.display_pub.replies()[-1][1]["text/markdown"] == "&lt;b>bold&lt;/b> and `<i>` in code"
    run(shell, "%%llm --format html\nhi")
    assert shell.display_pub.replies()[-1][1]["text/html"] == "<b>bold</b> and `<i>` in code"
    run(shell, "%%llm --format text\nhi")
    assert set(shell.display_pub.replies()[-1][1]) == {"text/plain"}
    engine.reply = 'Here:\n```json\n{"a": [1, 2]}\n```'
    run(shell, "%%llm --format json\nhi")
    assert shell.display_pub.replies()[-1][1]["application/json"] == {"a": [1, 2]}
    engine.reply = "not json"
    run(shell, "%%llm --json --out out\nhi")
    assert shell.display_pub.replies()[-1][1] == {"text/plain": "not json"}
    assert "not valid JSON" in capsys.readouterr().err
    assert shell.user_ns["out"] == "not json"


def test_format_code_offers_the_fenced_code_as_the_next_cell(shell):
    engine = ScriptedEngine("Use this:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.")
    load(shell, engine)
    run(shell, "%%llm --format code\nadd two numbers")
    assert shell.next_inputs == [("def add(a, b):\n    return a + b", False)]
    final = shell.display_pub.replies()[-1][1]
    assert final["text/plain"] == "def add(a, b):\n    return a + b"
    assert final["text/markdown"].startswith("```python\ndef add")


def test_logprobs_show_a_heatmap_under_the_answer(shell, tiny_engine):
    load(shell, tiny_engine)
    run(shell, "%%llm --temperature 0 --max-tokens 4 --logprobs 2\nhi")
    displays = shell.display_pub.displays()
    assert "notebook_llm" in displays[0][2]
    heatmap = displays[-1][1]
    assert "<span" in heatmap["text/html"] and "4 tokens" in heatmap["text/plain"]


def test_logprobs_fall_back_to_a_plain_heatmap_without_the_viz_module(shell, tiny_engine, monkeypatch):
    monkeypatch.setitem(sys.modules, "notebook_llm.viz", None)  # importing it raises ImportError
    load(shell, tiny_engine)
    run(shell, "%%llm --temperature 0 --max-tokens 3 --logprobs 2\nhi")
    heatmap = shell.display_pub.displays()[-1][1]["text/html"]
    assert heatmap.startswith('<div class="notebook-llm-logprobs"') and heatmap.count("<span") == 3


def test_plain_heatmap_escapes_tokens_and_shades_by_probability():
    tokens = [ChatCompletionTokenLogprob("<b>", 0.0, top_logprobs=[TopLogprob("<b>", 0.0)]),
              ChatCompletionTokenLogprob("\n", math.log(0.25))]
    html = simple_heatmap_html(tokens)
    assert "&lt;b&gt;" in html and "<b>" not in html and "↵<br>" in html
    assert "rgba(230, 60, 40, 0.00)" in html and "rgba(230, 60, 40, 0.64)" in html
    assert "p = 0.250" in html and "&#x27;&lt;b&gt;&#x27;: 1.000" in html


def test_no_stream_shows_only_the_final_output(shell, tiny_engine):
    load(shell, tiny_engine)
    run(shell, "%%llm --temperature 0 --max-tokens 3 --no-stream --out r\nhi")
    kinds = [e[0] for e in shell.display_pub.events]
    assert "update" not in kinds
    (final,) = shell.display_pub.replies()
    assert final[1]["text/markdown"] == escape_markdown_html(shell.user_ns["r"])
    assert final[2]["notebook_llm"]["finish_reason"] == "length"


def test_keyboard_interrupt_keeps_the_partial_reply(shell, capsys):
    engine = ScriptedEngine("one two three four", interrupt_after=3)
    magics = load(shell, engine)
    run(shell, "%%llm --out r\ncount")
    assert engine.interrupted == 1
    assert shell.user_ns["r"] == "one two three "  # the three words that arrived
    assert magics.conversation.turns[-1] == {"role": "assistant", "content": "one two three "}
    assert shell.display_pub.replies()[0][2]["notebook_llm"]["finish_reason"] == "abort"
    assert "interrupted" in capsys.readouterr().err


# --- generation on the tiny model: conversation, --out, --new, JSON, seeds ----------------------


def test_conversation_continues_across_cells_and_reuses_the_kv_cache(shell, tiny_engine):
    magics = load(shell, tiny_engine)
    run(shell, "%%llm --temperature 0 --max-tokens 3 --out r\nfirst")
    first = shell.user_ns["r"]
    run(shell, "%%llm --temperature 0 --max-tokens 3\nsecond")
    assert [m["content"] for m in magics.conversation.turns][:3] == ["first", first, "second"]
    stats = tiny_engine.last_stats().per_choice[0]
    # the first user turn comes from the KV cache; the tiny model's reply is invalid UTF-8 that
    # does not re-tokenize to the same ids, so the real-model test checks the reply's reuse
    assert stats.prefilled_tokens < stats.prompt_tokens
    run(shell, "%%llm --new --temperature 0 --max-tokens 3\nthird")
    assert [m["content"] for m in magics.conversation.turns[::2]] == ["third"]


def test_the_seed_in_the_metadata_replays_the_reply(shell, tiny_engine):
    load(shell, tiny_engine)
    run(shell, "%llm reset")
    run(shell, "%%llm --temperature 1 --max-tokens 6 --out r\nhi")
    seed, first = shell.display_pub.replies()[-1][2]["notebook_llm"]["seed"], shell.user_ns["r"]
    # after a reset, as the first run had: a prompt served from the KV cache samples differently (engine)
    run(shell, "%llm reset")
    run(shell, f"%%llm --temperature 1 --seed {seed} --max-tokens 6 --out r\nhi")
    assert shell.user_ns["r"] == first
    assert shell.display_pub.replies()[-1][2]["notebook_llm"]["seed"] == seed


def test_schema_reply_is_parseable_json_stored_by_out(shell, tiny_engine):
    load(shell, tiny_engine)
    shell.user_ns["schema"] = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                               "additionalProperties": False}
    run(shell, "%%llm --schema schema --temperature 0 --max-tokens 24 --out out\nanswer")
    value = shell.user_ns["out"]
    assert isinstance(value, dict) and set(value) == {"ok"}
    final = shell.display_pub.replies()[-1][1]
    assert final["application/json"] == value and json.loads(final["text/plain"]) == value


def test_n_replies_each_get_an_output_and_the_first_continues_the_conversation(shell, tiny_engine):
    magics = load(shell, tiny_engine)
    run(shell, "%%llm -n 2 --temperature 1 --seed 3 --max-tokens 3 --out r\nhi")
    replies = shell.display_pub.replies()
    assert [r[2]["notebook_llm"]["index"] for r in replies] == [0, 1]
    assert isinstance(shell.user_ns["r"], list) and len(shell.user_ns["r"]) == 2
    assert magics.conversation.turns[-1]["content"] == shell.user_ns["r"][0]


def test_stop_string_ends_the_reply(shell, tiny_engine):
    load(shell, tiny_engine)
    run(shell, "%%llm --new --temperature 0 --max-tokens 8 --out r\nhi")
    full = shell.user_ns["r"]
    stop = full[2:4]
    run(shell, f"%%llm --new --temperature 0 --max-tokens 8 --stop '{stop}' --out r\nhi")
    assert shell.user_ns["r"] == full[: full.index(stop)]


def test_invalid_request_from_the_engine_is_one_line_and_keeps_the_conversation(shell, tiny_engine, capsys):
    magics = load(shell, tiny_engine)
    run(shell, "%%llm --temperature 0 --max-tokens 2\nhi")
    before = list(magics.conversation.turns)
    shell.user_ns["schema"] = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)"}}}
    run(shell, "%%llm --schema schema\nhi")  # compiled by the engine's grammar layer: rejected there
    assert "--json/--schema" in one_line_error(capsys)
    assert magics.conversation.turns == before
    run(shell, "%%llm --max-tokens 200\n" + "word " * 200)  # longer than the tiny model's 128-token window
    assert "context window" in one_line_error(capsys)
    assert magics.conversation.turns == before


# --- %llm subcommands ---------------------------------------------------------------------------


def test_llm_line_subcommands(shell, capsys):
    engine = ScriptedEngine("Reply.")
    magics = load(shell, engine)
    run(shell, "%llm")
    assert "%llm fix" in capsys.readouterr().out
    run(shell, "%llm list")
    out = capsys.readouterr().out
    assert "* SmolLM2-135M-Instruct-Q4_1" in out and "more registry records" in out and "scripted" in out
    run(shell, "%llm history")
    assert "empty" in capsys.readouterr().out
    run(shell, "%%llm --system 'Be brief.'\nHello?")
    run(shell, "%llm history")
    assert capsys.readouterr().out.split() == ["[system]", "Be", "brief.", "[user]", "Hello?", "[assistant]", "Reply."]
    run(shell, "%llm stats")
    assert "scripted: no GPU" in capsys.readouterr().out
    run(shell, "%llm reset")
    assert magics.conversation == Conversation() and engine.resets == 1
    run(shell, "%llm unknown")
    assert "unknown subcommand 'unknown'" in one_line_error(capsys, "%llm")
    run(shell, "%llm use no-such.gguf")
    assert "no GGUF file at" in one_line_error(capsys, "%llm")
    run(shell, "%llm history please")
    assert "takes no arguments" in one_line_error(capsys, "%llm")


def test_llm_use_loads_a_gguf_and_makes_it_the_default(shell, tmp_path, capsys):
    path = write_tiny_llama(tmp_path / "other.gguf", seed=1)
    magics = load(shell, None)
    magics._engine = None  # nothing loaded yet: `use` creates the engine itself
    run(shell, f"%llm use {path}")
    assert capsys.readouterr().out.strip() == "Using other"
    assert magics.engine.loaded_models == ["other"] and magics.default_model == str(path)
    run(shell, "%%llm --temperature 0 --max-tokens 2\nhi")
    assert shell.display_pub.replies()[-1][2]["notebook_llm"]["model_id"] == "other"


def test_model_option_loads_the_named_model(shell, tmp_path, capsys):
    path = write_tiny_llama(tmp_path / "third.gguf", seed=2)
    engine = create_engine(str(write_tiny_llama(tmp_path / "first.gguf", seed=3)))
    load(shell, engine)
    run(shell, f"%%llm -m {path} --temperature 0 --max-tokens 2\nhi")
    assert engine.loaded_models == ["third"]
    assert "Loading third in place of first" in capsys.readouterr().err


def test_fix_sends_the_failing_cell_and_its_traceback_and_inserts_the_fix(shell):
    engine = ScriptedEngine("`x` is not defined.\n```python\nx = 1\nprint(x + 1)\n```")
    magics = load(shell, engine)
    shell.run_cell("print(x_undefined + 1)", store_history=True)
    run(shell, "%llm fix --max-tokens 50 --temperature 0")
    sent = engine.requests[-1]["messages"][-1]["content"]
    assert "print(x_undefined + 1)" in sent and "NameError: name 'x_undefined' is not defined" in sent
    assert engine.requests[-1]["max_tokens"] == 50
    assert shell.next_inputs == [("x = 1\nprint(x + 1)", False)]
    assert magics.conversation.turns[-1]["content"].startswith("`x` is not defined.")


def test_fix_without_an_error_or_code_block_says_so(shell, capsys):
    engine = ScriptedEngine("No code here.")
    magics = load(shell, engine)
    magics.last_error = None
    run(shell, "%llm fix")
    assert "no error recorded yet" in one_line_error(capsys, "%llm")
    shell.run_cell("1 / 0", store_history=True)
    capsys.readouterr()
    run(shell, "%llm fix")
    assert "no code block" in capsys.readouterr().err and shell.next_inputs == []


@pytest.mark.parametrize("extension", ["notebook_llm.magics", "notebook_llm"])
def test_load_ext_registers_the_magics_and_unload_removes_them(ip, extension):
    if not hasattr(importlib.import_module(extension), "load_ipython_extension"):
        pytest.skip(f"{extension} does not re-export load_ipython_extension yet")
    unload_ipython_extension(ip)
    ip.run_line_magic("load_ext", extension)
    try:
        assert "llm" in ip.magics_manager.magics["cell"] and "llm" in ip.magics_manager.magics["line"]
        assert "Err" in ip.user_ns
        assert any(type(c).__name__ == "LLMMagics" for c in ip.configurables)
    finally:
        ip.run_line_magic("unload_ext", extension)
    assert "llm" not in ip.magics_manager.magics["cell"] and "Err" not in ip.user_ns
    assert not any(type(c).__name__ == "LLMMagics" for c in ip.configurables)


# --- pure helpers -----------------------------------------------------------------------------


def test_code_extraction_prefers_python_blocks_and_accepts_a_cut_off_fence():
    text = "a\n```bash\npip install x\n```\n```python\nprint(1)\n```\n```py\nprint(2)\n```"
    assert extract_code(text) == ("python", "print(1)\n\nprint(2)")
    assert code_blocks("```python\nprint(1)\nprint(") == [("python", "print(1)\nprint(")]
    assert extract_code("x = 1\n") == ("python", "x = 1")
    assert extract_code("no code", whole_if_no_fence=False) is None
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}


def test_markdown_escapes_tags_outside_code_only():
    assert escape_markdown_html("<script>x</script> a < b `<b>`\n```html\n<p>\n```") == (
        "&lt;script>x&lt;/script> a < b `<b>`\n```html\n<p>\n```")
    assert re.search("&lt;", escape_markdown_html("```\n<p>")) is None


# --- the real default model -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_engine():
    return create_engine()


@pytest.mark.slow
def test_real_model_answers_a_question_in_a_cell(shell, real_engine):
    magics = load(shell, real_engine)
    run(shell, "%%llm --temperature 0 --max-tokens 8 --out r\nWhat is the capital of France?")
    assert "Paris" in shell.user_ns["r"]
    (final,) = shell.display_pub.replies()
    assert final[2]["notebook_llm"]["model_id"] == "SmolLM2-135M-Instruct-Q4_1"
    run(shell, "%%llm --temperature 0 --max-tokens 2\nAnd of Italy?")
    stats = real_engine.last_stats().per_choice[0]
    assert stats.prefilled_tokens < stats.prompt_tokens / 2  # the first turn came from the KV cache
    assert len(magics.conversation.turns) == 4


def test_engine_is_created_on_first_use(shell, tiny_engine, monkeypatch):
    import notebook_llm.magics.llm as llm_module

    created = []
    monkeypatch.setattr(llm_module, "create_engine", lambda model=None: created.append(model) or tiny_engine)
    magics = load(shell, None)
    run(shell, "%llm stats")
    assert created == []  # asking for stats loads nothing
    run(shell, "%%llm --temperature 0 --max-tokens 1\nHi")
    assert created == [None] and magics.engine is tiny_engine
