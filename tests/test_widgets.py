"""ModelPicker and ChatWidget, driven as the browser drives them: front-end messages go in through
ipywidgets' dispatch (`_handle_custom_msg`, `set_state`) and everything the kernel sends comes back
through the widget's comm, recorded in order (`Wire`).

Real replies and loads use the session's engine (SmolLM2-135M on whatever adapter the machine has;
lavapipe in CI, ~10 s a reply), so those tests keep max_tokens small. Exact timings, failures in
the middle of a stream and clearing during a reply use `ScriptedEngine`, a stand-in with the
engine's interface that streams the API's real chunk types on a fixed schedule.
"""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from huggingface_hub import constants
from traitlets import TraitError

from notebook_llm import create_engine
from notebook_llm.api.remote import RemoteEngine
from notebook_llm.api.types import ChatCompletionChunk, ChoiceDelta, ChunkChoice, CompletionUsage, UsageExtra
from notebook_llm.errors import ContextLengthError, InvalidRequestError, LoadCancelledError, ModelNotFoundError
from notebook_llm.gpu.device import AdapterInfo
from notebook_llm.loader.download import download_model
from notebook_llm.progress import InitProgressReport
from notebook_llm.registry import DEFAULT_MODEL_ID, VRAM_ENV, AppConfig, ModelRecord, find_model
from notebook_llm.widgets import ChatWidget, ModelPicker
from notebook_llm.widgets.timing import LatestValueThrottle

from .tiny_llama import write_tiny_llama

WIDGET_LOG = "notebook_llm.widgets"


# --------------------------------------------------------------------------------------------
# What the front end receives, and a front end that follows the contract's streaming rule
# --------------------------------------------------------------------------------------------


class Wire:
    """Every comm message a widget sends from now on, in order: state updates and custom messages."""

    def __init__(self, widget):
        self.initial = copy.deepcopy(widget.get_state())
        self.messages: list[dict] = []
        self._lock = threading.Lock()
        widget.comm.publish_msg = self._record

    def _record(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        with self._lock:
            self.messages.append(copy.deepcopy(data))

    def custom(self, kind: str | None = None) -> list[dict]:
        return [m["content"] for m in list(self.messages)
                if m["method"] == "custom" and (kind is None or m["content"].get("type") == kind)]

    def updates(self) -> list[dict]:
        return [m["state"] for m in list(self.messages) if m["method"] == "update"]

    def traits_after(self, count: int) -> dict:
        """The synced state a view rendered after the first `count` messages would start from."""
        traits = copy.deepcopy(self.initial)
        for message in self.messages[:count]:
            if message["method"] == "update":
                traits.update(copy.deepcopy(message["state"]))
        return traits


class View:
    """A chat front end: render from the traits, rebuild from `messages` when `messages`/`seq`
    change, and apply a delta when its seq is above every seq seen (the contract's rule) or, with
    `strict`, only when it is the next one (so a view rendered between a delta and the next commit
    waits for that commit instead of showing text with a gap)."""

    def __init__(self, traits: dict, strict: bool = False):
        self.traits = copy.deepcopy(traits)
        self.messages = copy.deepcopy(traits["messages"])
        self.last_seq = traits["seq"]
        self.strict = strict

    def receive(self, message: dict) -> None:
        if message["method"] == "update":
            self.traits.update(copy.deepcopy(message["state"]))
            if {"messages", "seq"} & set(message["state"]):
                self.messages = copy.deepcopy(self.traits["messages"])
                self.last_seq = max(self.last_seq, self.traits["seq"])
            return
        event = message["content"]
        if event["type"] != "delta" or event["seq"] <= self.last_seq:
            return
        if self.strict and event["seq"] != self.last_seq + 1:
            return
        if event["index"] == len(self.messages):
            self.messages.append({"role": "assistant", "content": event["text"]})
        else:
            self.messages[event["index"]]["content"] += event["text"]
        self.last_seq = event["seq"]


def assert_every_view_converges(wire: Wire, final_messages: list[dict]) -> None:
    """A view rendered after any prefix of the wire ends with the kernel's messages. With the strict
    rule, what it shows of the last reply only ever grows along the final text (nothing lost or
    repeated on the way); so does a view rendered before the reply, under either rule."""
    final_text = final_messages[-1]["content"] if final_messages else ""
    for strict in (False, True):
        for start in range(len(wire.messages) + 1):
            view = View(wire.traits_after(start), strict)
            for message in wire.messages[start:]:
                view.receive(message)
                if (strict or start == 0) and len(view.messages) == len(final_messages) and view.messages:
                    assert final_text.startswith(view.messages[-1]["content"]), (strict, start, view.messages[-1])
            assert view.messages == final_messages, f"a view rendered after {start} messages ends differently"


def assert_commits_hold_the_deltas_up_to_their_seq(wire: Wire, index: int) -> None:
    """Each commit of `messages` holds exactly the text of the deltas numbered up to its `seq`."""
    deltas = [d for d in wire.custom("delta") if d["index"] == index]
    for count, message in enumerate(wire.messages, start=1):
        if message["method"] != "update" or "messages" not in message["state"]:
            continue
        traits = wire.traits_after(count)
        if len(traits["messages"]) > index:
            expected = "".join(d["text"] for d in deltas if d["seq"] <= traits["seq"])
            assert traits["messages"][index]["content"] == expected


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


# --------------------------------------------------------------------------------------------
# A stand-in engine with exact timing
# --------------------------------------------------------------------------------------------

FAKE_ADAPTER = AdapterInfo("fake adapter (tests)", "Vulkan", "CPU", frozenset(), {})


class ScriptedEngine:
    """The Engine interface the widgets use. A reply streams `tokens` (one per `step` seconds, at
    most max_tokens), ends with "abort" once interrupted, and raises `fail_on_create` from create()
    or RuntimeError after `fail_after` tokens. A load reports `load_steps` progress reports."""

    def __init__(self, tokens=("Hello", ",", " world", "!"), step=0.0, fail_on_create=None, fail_after=None,
                 model_id="fake-model", load_steps=5, load_step_s=0.0):
        self.tokens, self.step = list(tokens), step
        self.fail_on_create, self.fail_after = fail_on_create, fail_after
        self.load_steps, self.load_step_s = load_steps, load_step_s
        self.requests: list[dict] = []
        self.interrupts = 0
        self._interrupt = threading.Event()
        self._loaded = [model_id]
        self._progress = None
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    @property
    def loaded_models(self) -> list[str]:
        return list(self._loaded)

    def core_for(self, model):
        return SimpleNamespace(ctx=SimpleNamespace(gpu=SimpleNamespace(adapter=FAKE_ADAPTER)))

    def interrupt_generate(self) -> None:
        self.interrupts += 1
        self._interrupt.set()

    def unload(self) -> None:
        self._loaded = []

    def get_init_progress_callback(self):
        return self._progress

    def set_init_progress_callback(self, callback) -> None:
        self._progress = callback

    def reload(self, model, chat_options=None) -> None:
        self._loaded = []
        for i in range(self.load_steps):
            if self._progress is not None:
                self._progress(InitProgressReport(i / (self.load_steps - 1), i * self.load_step_s, f"step {i}"))
            time.sleep(self.load_step_s)
        self._loaded = [model]

    def _create(self, **kwargs):
        self.requests.append(kwargs)
        if self.fail_on_create is not None:
            raise self.fail_on_create
        self._interrupt.clear()  # as the engine does when a generation starts
        return self._chunks(kwargs)

    def _chunks(self, kwargs):
        def chunk(choices, usage=None):
            return ChatCompletionChunk(id="chatcmpl-test", choices=choices, created=0, model=kwargs["model"], usage=usage)

        yield chunk([ChunkChoice(0, ChoiceDelta(role="assistant", content=""))])
        finish, produced = "stop", 0
        for i, token in enumerate(self.tokens):
            if produced == kwargs["max_tokens"]:
                finish = "length"
                break
            time.sleep(self.step)
            if self._interrupt.is_set():
                finish = "abort"
                break
            if self.fail_after == i:
                raise RuntimeError("the device was lost")
            produced += 1
            yield chunk([ChunkChoice(0, ChoiceDelta(content=token))])
        yield chunk([ChunkChoice(0, ChoiceDelta(), finish)])
        extra = UsageExtra(e2e_latency_s=0.5, prefill_tokens_per_s=100.0, decode_tokens_per_s=20.0,
                           time_to_first_token_s=0.1, time_per_output_token_s=0.05)
        yield chunk([], CompletionUsage(7, produced, 7 + produced, extra))


def scripted_chat(engine: ScriptedEngine | None = None, **settings) -> tuple[ChatWidget, ScriptedEngine, Wire]:
    engine = engine or ScriptedEngine()
    chat = ChatWidget(engine=engine, **settings)
    return chat, engine, Wire(chat)


# --------------------------------------------------------------------------------------------
# ChatWidget with the real model
# --------------------------------------------------------------------------------------------


@pytest.fixture
def loaded_engine(engine):
    """The session's engine with the default model loaded (picker tests unload and reload it)."""
    if engine.loaded_models != [DEFAULT_MODEL_ID]:
        engine.reload()
    return engine


@pytest.mark.slow
def test_streamed_reply_deltas_add_up_to_the_committed_text(loaded_engine):
    chat = ChatWidget(engine=loaded_engine, max_tokens=6, temperature=0.0)
    wire = Wire(chat)
    chat._handle_custom_msg({"type": "send", "text": "Say hi"}, [])
    assert chat.status == "generating"
    assert chat.wait(timeout=120)

    assert [m["role"] for m in chat.messages] == ["user", "assistant"]
    deltas = wire.custom("delta")
    assert deltas and all(d["index"] == 1 for d in deltas)
    assert [d["seq"] for d in deltas] == list(range(deltas[0]["seq"], deltas[0]["seq"] + len(deltas)))
    assert "".join(d["text"] for d in deltas) == chat.messages[1]["content"] != ""
    assert wire.messages[-1] == {"method": "custom", "content": {"type": "done", "seq": chat.seq, "index": 1}}
    assert chat.seq == deltas[-1]["seq"]
    assert chat.status == "idle" and chat.error == ""
    stats = chat.reply_stats["1"]
    assert stats["completion_tokens"] <= 6 and stats["prompt_tokens"] > 0
    assert stats["finish_reason"] in ("stop", "length")
    assert stats["seconds"] >= stats["ttft_s"] > 0 and stats["tokens_per_s"] > 0
    # the final text, stats and status went out in one update, before "done"
    final = wire.messages[-2]["state"]
    assert final["status"] == "idle" and "1" in final["reply_stats"]
    assert_commits_hold_the_deltas_up_to_their_seq(wire, index=1)
    assert_every_view_converges(wire, chat.messages)


@pytest.mark.slow
def test_stop_mid_reply_keeps_the_partial_text_with_finish_reason_abort(loaded_engine):
    chat = ChatWidget(engine=loaded_engine, max_tokens=40, temperature=0.0)
    wire = Wire(chat)
    chat.ask("Count from one to twenty in words.")
    wait_for(lambda: wire.custom("delta"), timeout=120, what="the first delta")
    chat._handle_custom_msg({"type": "stop"}, [])
    assert chat.wait(timeout=60)

    text = chat.messages[-1]["content"]
    assert text and text == "".join(d["text"] for d in wire.custom("delta"))
    stats = chat.reply_stats["1"]
    assert stats["finish_reason"] == "abort"
    assert stats["completion_tokens"] < 40
    assert chat.status == "idle" and chat.error == ""
    assert wire.custom()[-1]["type"] == "done"
    assert_every_view_converges(wire, chat.messages)


@pytest.mark.slow
def test_regenerate_replaces_the_last_reply(loaded_engine):
    chat = ChatWidget(engine=loaded_engine, max_tokens=4, temperature=0.0)
    chat.messages = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "(an old reply)"}]
    wire = Wire(chat)
    chat._handle_custom_msg({"type": "regenerate"}, [])
    assert wire.updates()[0]["messages"] == [{"role": "user", "content": "Say hi"}]  # the old reply goes first
    assert chat.wait(timeout=120)

    assert len(chat.messages) == 2 and chat.messages[1]["content"] not in ("", "(an old reply)")
    assert {d["index"] for d in wire.custom("delta")} == {1}
    assert chat.reply_stats["1"]["completion_tokens"] <= 4
    assert_every_view_converges(wire, chat.messages)


@pytest.mark.slow
def test_request_the_engine_refuses_gives_the_text_back_and_the_next_send_works(loaded_engine):
    chat = ChatWidget(engine=loaded_engine, max_tokens=2, temperature=0.0)
    wire = Wire(chat)
    too_long = "word " * 3000  # more tokens than the 2048-token context window
    chat.ask(too_long, wait=True)
    assert chat.messages == []
    assert chat.draft == too_long
    with pytest.raises(ContextLengthError, match="context window"):
        loaded_engine.chat.completions.create(messages=[{"role": "user", "content": too_long}])
    assert chat.error.startswith("the prompt has") and "context window" in chat.error
    assert chat.status == "idle"
    assert wire.custom() == [{"type": "done", "seq": 0, "index": 1}]

    chat._handle_custom_msg({"type": "send", "text": "Say hi"}, [])
    assert chat.wait(timeout=120)
    assert chat.error == ""
    assert [m["role"] for m in chat.messages] == ["user", "assistant"] and chat.messages[1]["content"]


# --------------------------------------------------------------------------------------------
# ChatWidget on a RemoteEngine: a random-weight tiny llama served on 127.0.0.1 (fast, gibberish)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    engine = create_engine(str(write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=7)))
    with engine.serve(port=0) as running:
        yield running


def test_chat_widget_on_a_remote_engine_streams_stops_and_picks_among_the_served_models(tiny_server):
    remote = create_engine(base_url=tiny_server.url)
    chat = ChatWidget(engine=remote, max_tokens=4, temperature=0.0)
    picker = chat.picker
    assert isinstance(picker.engine, RemoteEngine) and picker.adapter == f"served at {tiny_server.url}"
    assert [m["model_id"] for m in picker.models] == ["tiny"] and picker.models[0]["runnable"]
    assert picker.loaded_model_id == "tiny" and picker.status == "loaded"

    wire = Wire(chat)
    chat._handle_custom_msg({"type": "send", "text": "hi"}, [])
    assert chat.wait(timeout=60)
    deltas = wire.custom("delta")
    assert deltas and "".join(d["text"] for d in deltas) == chat.messages[1]["content"] != ""
    stats = chat.reply_stats["1"]
    assert stats["finish_reason"] in ("stop", "length") and 0 < stats["completion_tokens"] <= 4
    assert chat.status == "idle" and chat.error == ""
    assert_every_view_converges(wire, chat.messages)

    chat.max_tokens = 100  # about a second of tokens: stopped after the first delta, it ends far sooner
    wire = Wire(chat)
    chat.ask("again")
    wait_for(lambda: wire.custom("delta"), timeout=60, what="the first delta")
    chat._handle_custom_msg({"type": "stop"}, [])
    assert chat.wait(timeout=60)
    assert chat.reply_stats["3"]["finish_reason"] == "abort"  # interrupt_generate closed the HTTP stream
    assert chat.messages[3]["content"] == "".join(d["text"] for d in wire.custom("delta"))
    assert_every_view_converges(wire, chat.messages)

    picker.unload()  # the server keeps its model; this client stops using it
    assert picker.loaded_model_id == "" and remote.loaded_models == []
    picker.load("tiny", wait=True)
    assert picker.status == "loaded" and picker.loaded_model_id == "tiny" and picker.error == ""
    picker.load("no-such-model", wait=True)
    assert picker.status == "error" and "not served" in picker.error and remote.loaded_models == ["tiny"]


def test_clear_empties_the_conversation_and_its_stats():
    chat, _, wire = scripted_chat()
    chat.ask("hi", wait=True)
    assert chat.reply_stats
    chat._handle_custom_msg({"type": "clear"}, [])
    assert chat.messages == [] and chat.reply_stats == {} and chat.error == ""
    assert wire.updates()[-1]["messages"] == []


# --------------------------------------------------------------------------------------------
# ChatWidget: timing, failures and the front end's messages (ScriptedEngine)
# --------------------------------------------------------------------------------------------


def test_commits_while_streaming_hold_exactly_the_deltas_up_to_their_seq():
    chat, engine, wire = scripted_chat(ScriptedEngine(tokens=[f"t{i} " for i in range(50)], step=0.004))
    chat.delta_interval, chat.commit_interval = 0.01, 0.04
    chat.ask("go", wait=True)
    chat.ask("again", wait=True)  # seq goes on from the first reply's last delta

    deltas = wire.custom("delta")
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert len(deltas) < 0.8 * 100, "deltas are batched, not one per token (100 tokens)"
    intermediate = [u for u in wire.updates()
                    if "messages" in u and u["messages"][-1]["role"] == "assistant" and "status" not in u]
    assert len(intermediate) >= 2, "messages are committed while the reply streams"
    assert_commits_hold_the_deltas_up_to_their_seq(wire, index=1)
    assert_commits_hold_the_deltas_up_to_their_seq(wire, index=3)
    assert_every_view_converges(wire, chat.messages)
    dones = wire.custom("done")
    assert [d["index"] for d in dones] == [1, 3]
    assert dones[0]["seq"] == max(d["seq"] for d in deltas if d["index"] == 1)
    assert dones[1]["seq"] == chat.seq == deltas[-1]["seq"]


def test_settings_from_the_front_end_apply_to_the_next_request_and_bad_values_are_sent_back(caplog):
    chat, engine, wire = scripted_chat()
    chat.set_state({"temperature": 1.3, "top_p": 0.5, "max_tokens": 3, "system_prompt": "Be brief."})
    with caplog.at_level(logging.WARNING, logger=WIDGET_LOG):
        for bad in ({"temperature": 5.0}, {"top_p": 0}, {"max_tokens": 0}, {"temperature": float("nan")},
                    {"messages": [{"role": "user", "content": "injected"}]}, {"seq": 99}):
            chat.set_state(bad)
    assert len(caplog.records) == 6
    name = next(iter(bad))
    assert wire.updates()[-1] == {name: 0}, "the kernel's value goes back to the view"
    assert (chat.temperature, chat.top_p, chat.max_tokens, chat.seq) == (1.3, 0.5, 3, 0)

    chat.ask("hi", wait=True)
    request = engine.requests[-1]
    assert (request["temperature"], request["top_p"], request["max_tokens"]) == (1.3, 0.5, 3)
    assert request["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert request["model"] == "fake-model" and request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert chat.messages[1]["content"] == "Hello, world"  # max_tokens=3


def test_settings_from_python_are_checked():
    chat, _, _ = scripted_chat()
    for name, value in (("temperature", 2.5), ("top_p", 1.5), ("top_p", 0.0), ("max_tokens", 0)):
        with pytest.raises(TraitError, match=name):
            setattr(chat, name, value)
    with pytest.raises(InvalidRequestError, match="unknown argument.*colour"):
        ChatWidget(engine=ScriptedEngine(), colour="blue")
    with pytest.raises(InvalidRequestError, match="unknown argument"):
        ModelPicker(engine=ScriptedEngine(), modelid="x")


def test_bad_frontend_messages_are_ignored_with_a_warning(caplog):
    chat, engine, wire = scripted_chat()
    picker = chat.picker
    bad_chat = ["send", None, [], {}, {"type": 3}, {"type": "dance"}, {"type": "send"}, {"type": "send", "text": 5},
                {"type": "send", "text": None}]
    bad_picker = ["load", {"type": "load"}, {"type": "load", "model_id": 7}, {"type": "load", "model_id": True},
                  {"type": "explode"}]
    with caplog.at_level(logging.WARNING, logger=WIDGET_LOG):
        for content in bad_chat:
            chat._handle_custom_msg(content, [])
        for content in bad_picker:
            picker._handle_custom_msg(content, [])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(bad_chat) + len(bad_picker)
    assert engine.requests == [] and wire.custom() == [] and picker.status == "loaded"
    chat._handle_custom_msg({"type": "send", "text": "still here?"}, [])
    assert chat.wait(5) and chat.messages[-1]["content"] == "Hello, world!"


def test_engine_error_before_any_text_removes_the_user_message_and_gives_its_text_back():
    engine = ScriptedEngine(fail_on_create=ContextLengthError("the prompt is too long for the window"))
    chat, _, wire = scripted_chat(engine)
    chat.messages = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "reply"}]
    chat._handle_custom_msg({"type": "send", "text": "my long question"}, [])
    assert chat.wait(5)
    assert chat.messages == [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "reply"}]
    assert chat.draft == "my long question"
    assert chat.error == "the prompt is too long for the window"
    assert chat.status == "idle"

    engine.fail_on_create = KeyError("surprise")  # any exception, not only ours
    chat.ask("my long question", wait=True)
    assert chat.error == "KeyError: 'surprise'"
    drafts = [u["draft"] for u in wire.updates() if "draft" in u]
    assert drafts == ["my long question", "", "my long question"], "each failure gives the text back anew"

    engine.fail_on_create = None
    chat.ask("now?", wait=True)
    assert chat.error == "" and chat.messages[-1] == {"role": "assistant", "content": "Hello, world!"}


def test_failure_after_text_arrived_keeps_the_partial_reply():
    chat, _, _ = scripted_chat(ScriptedEngine(fail_after=2))
    chat.ask("hi", wait=True)
    assert chat.messages[-1] == {"role": "assistant", "content": "Hello,"}
    assert chat.reply_stats["1"]["finish_reason"] == "error"
    assert chat.error == "RuntimeError: the device was lost"
    assert chat.status == "idle" and chat.draft == ""


def test_clear_during_a_reply_stops_it_and_drops_its_text():
    chat, engine, wire = scripted_chat(ScriptedEngine(tokens=["x"] * 200, step=0.01))
    chat.ask("go")
    wait_for(lambda: wire.custom("delta"), timeout=5, what="a delta")
    chat._handle_custom_msg({"type": "clear"}, [])
    assert chat.messages == [] and engine.interrupts >= 1
    sent_at_clear = len(wire.custom("delta"))
    assert chat.wait(5)
    assert len(wire.custom("delta")) == sent_at_clear, "no text after the clear"
    assert chat.messages == [] and chat.reply_stats == {} and chat.status == "idle"
    assert wire.custom()[-1]["type"] == "done"
    engine.tokens = ["ok"]
    chat.ask("again", wait=True)
    assert chat.messages == [{"role": "user", "content": "again"}, {"role": "assistant", "content": "ok"}]


def test_send_is_refused_while_a_reply_runs_and_stop_is_a_no_op_when_idle():
    chat, engine, _ = scripted_chat(ScriptedEngine(tokens=["x"] * 100, step=0.01))
    assert chat.stop() is False
    chat.ask("first")
    chat._handle_custom_msg({"type": "send", "text": "second"}, [])
    assert chat.error.startswith("a reply is still being generated") and chat.draft == "second"
    chat._handle_custom_msg({"type": "regenerate"}, [])
    assert chat.stop() is True
    assert chat.wait(5) and len(engine.requests) <= 1  # a Stop before the request starts skips it
    assert chat.reply_stats["1"]["finish_reason"] == "abort"
    chat.ask("   ")
    assert chat.error.startswith("the message is empty")


def test_send_with_no_model_loaded_gives_the_text_back():
    chat = ChatWidget()
    assert chat.picker.engine is None and chat.picker.selected_model_id == DEFAULT_MODEL_ID
    assert chat.selected_model_id == DEFAULT_MODEL_ID and chat.status == "idle"
    chat._handle_custom_msg({"type": "send", "text": "hello?"}, [])
    assert chat.error.startswith("no model is loaded") and chat.draft == "hello?"
    assert chat.messages == []
    chat.selected_model_id = "another-model"
    assert chat.picker.selected_model_id == "another-model", "chat and picker share the selection"


def test_messages_set_from_python_are_checked_and_reset_the_stats():
    chat, _, _ = scripted_chat()
    chat.ask("hi", wait=True)
    for bad in ([{"role": "system", "content": "x"}], [{"role": "user"}], [{"role": "user", "content": 1}],
                [{"role": "user", "content": "x", "name": "bob"}], ["hi"]):
        with pytest.raises(TraitError):
            chat.messages = bad
    chat.messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert chat.messages == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert chat.reply_stats == {}


def test_repr_names_the_model_and_state_without_an_address():
    chat, _, _ = scripted_chat()
    assert repr(chat) == "ChatWidget(selected_model_id='fake-model', messages=0, status='idle')"
    assert repr(chat.picker) == ("ModelPicker(selected_model_id='fake-model', loaded_model_id='fake-model', "
                                 f"status='loaded', models={len(chat.picker.models)})")


def test_importing_the_package_does_not_import_the_widget_libraries():
    code = ("import sys, notebook_llm; assert 'anywidget' not in sys.modules and 'ipywidgets' not in sys.modules; "
            "assert notebook_llm.ChatWidget.__name__ == 'ChatWidget' and 'anywidget' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------------
# ModelPicker
# --------------------------------------------------------------------------------------------


def test_picker_load_progress_is_throttled_but_the_last_report_arrives():
    engine = ScriptedEngine(load_steps=60, load_step_s=0.005)
    picker = ModelPicker(engine=engine)
    shown = []
    picker.observe(lambda change: shown.append(change["new"]), "progress")
    chat = ChatWidget(picker=picker)
    statuses = []
    chat.observe(lambda change: statuses.append(change["new"]), "status")
    started = time.monotonic()
    picker.load("other-model", wait=True)
    elapsed = time.monotonic() - started
    assert picker.status == "loaded" and picker.loaded_model_id == "other-model" == chat.selected_model_id
    assert shown[-1] == {"progress": 1.0, "time_elapsed": pytest.approx(59 * 0.005), "text": "step 59"}
    assert len(shown) <= 3 + elapsed / 0.1, "at most ~10 progress updates a second (+ the first and last)"
    assert statuses == ["loading", "idle"]
    assert engine.get_init_progress_callback() is None, "the engine's own callback is put back"


def test_picker_lists_every_record_marking_the_default_runnable_and_on_disk():
    picker = ModelPicker(engine=ScriptedEngine())
    by_id = {m["model_id"]: m for m in picker.models}
    default = by_id[DEFAULT_MODEL_ID]
    record = find_model(DEFAULT_MODEL_ID)
    assert default["runnable"] is True and default["reason"] == "" and default["cached"] is True
    assert default["size_mb"] == pytest.approx(record.local_path.stat().st_size / 2**20, abs=0.01)
    assert default["context_window_size"] == 2048 and default["model_type"] == "LLM"
    assert default["family"] == "SmolLM2" and default["quantization"] == "Q4_1" and default["parameters"] > 1e8
    assert set(default) == {"model_id", "family", "quantization", "parameters", "size_mb", "vram_required_MB",
                            "required_features", "low_resource_required", "model_type", "context_window_size",
                            "cached", "runnable", "reason"}
    others = [m for m in picker.models if m["model_id"] != DEFAULT_MODEL_ID]
    unimplemented = [m for m in others if "model_lib" in m["reason"]]
    assert unimplemented and all(not m["runnable"] for m in unimplemented)  # formats not implemented yet
    assert all(m["runnable"] == (m["reason"] == "") for m in picker.models)
    assert all(m["size_mb"] > 0 for m in picker.models)
    assert picker.adapter == FAKE_ADAPTER.description


def test_picker_disables_records_needing_a_missing_feature_or_too_much_memory(monkeypatch):
    path = find_model(DEFAULT_MODEL_ID).local_path
    common = dict(model=str(path), model_lib="llama-gguf")
    config = AppConfig([
        ModelRecord(model_id="fits", vram_required_MB=500.0, **common),
        ModelRecord(model_id="needs-feature", vram_required_MB=500.0, required_features=("imaginary-feature",), **common),
        ModelRecord(model_id="too-big", vram_required_MB=80_000.0, **common),
    ])
    monkeypatch.setenv(VRAM_ENV, "4096")
    picker = ModelPicker(engine=ScriptedEngine(), app_config=config)
    by_id = {m["model_id"]: m for m in picker.models}
    assert list(by_id) == ["fits", "needs-feature", "too-big"]
    assert by_id["fits"]["runnable"] and by_id["fits"]["cached"]
    assert not by_id["needs-feature"]["runnable"] and "imaginary-feature" in by_id["needs-feature"]["reason"]
    assert not by_id["too-big"]["runnable"] and "4096 MB" in by_id["too-big"]["reason"]

    monkeypatch.delenv(VRAM_ENV)
    picker._handle_custom_msg({"type": "refresh"}, [])
    assert {m["model_id"]: m["runnable"] for m in picker.models}["too-big"] is True


def test_picker_ignores_front_end_writes_to_kernel_owned_traits(caplog):
    picker = ModelPicker(engine=ScriptedEngine())
    wire = Wire(picker)
    with caplog.at_level(logging.WARNING, logger=WIDGET_LOG):
        picker.set_state({"status": "error", "loaded_model_id": "x", "selected_model_id": DEFAULT_MODEL_ID})
    assert picker.status == "loaded" and picker.loaded_model_id == "fake-model"
    assert picker.selected_model_id == DEFAULT_MODEL_ID
    assert wire.updates()[-1] == {"loaded_model_id": "fake-model", "status": "loaded"}
    assert "kernel-owned" in caplog.text


@pytest.mark.slow
def test_picker_loads_the_model_reporting_progress(engine):
    picker = ModelPicker(engine=engine)
    reports = []
    picker.observe(lambda change: reports.append(change["new"]), "progress")
    picker._handle_custom_msg({"type": "load", "model_id": DEFAULT_MODEL_ID}, [])
    assert picker.status == "loading"
    assert picker.wait(timeout=120)
    assert picker.status == "loaded" and picker.loaded_model_id == DEFAULT_MODEL_ID and picker.error == ""
    fractions = [r["progress"] for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 3
    assert reports[-1]["text"].startswith(f"Finished loading {DEFAULT_MODEL_ID}")
    assert engine.loaded_models == [DEFAULT_MODEL_ID]
    assert picker.adapter == engine.core.adapter_description


@pytest.mark.slow
def test_picker_unload_leaves_nothing_loaded(loaded_engine):
    picker = ModelPicker(engine=loaded_engine)
    chat = ChatWidget(picker=picker)
    picker._handle_custom_msg({"type": "unload"}, [])
    assert loaded_engine.loaded_models == []
    assert picker.status == "unloaded" and picker.loaded_model_id == ""
    chat.ask("anyone there?")
    assert chat.error.startswith("no model is loaded") and chat.draft == "anyone there?"


@pytest.mark.slow
def test_cancel_from_the_first_progress_report_leaves_the_engine_ready_for_the_next_load(engine):
    picker = ModelPicker(engine=engine)

    def cancel_on_first_report(change):  # a report from the engine arrives on the loader thread
        if threading.current_thread() is not threading.main_thread():
            picker._handle_custom_msg({"type": "cancel"}, [])

    picker.observe(cancel_on_first_report, "progress")
    picker.load(DEFAULT_MODEL_ID)
    assert picker.wait(timeout=120)
    assert picker.status == "unloaded" and picker.error == "load cancelled"
    assert picker.loaded_model_id == "" and engine.loaded_models == []
    assert picker.progress["progress"] < 1.0

    picker.unobserve(cancel_on_first_report, "progress")
    picker.load(wait=True)
    assert picker.status == "loaded" and picker.error == "" and engine.loaded_models == [DEFAULT_MODEL_ID]


@pytest.mark.slow
def test_loading_an_unknown_model_sets_error_and_keeps_the_loaded_one(loaded_engine):
    picker = ModelPicker(engine=loaded_engine)
    picker._handle_custom_msg({"type": "load", "model_id": "no-such-model"}, [])
    assert picker.wait(timeout=60)
    with pytest.raises(ModelNotFoundError) as typed:
        find_model("no-such-model")
    assert picker.status == "error" and picker.error == str(typed.value)
    assert picker.loaded_model_id == DEFAULT_MODEL_ID and loaded_engine.loaded_models == [DEFAULT_MODEL_ID]


def test_load_cancelled_error_propagates_out_of_a_download(hub_server, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    repo = "test-org/Tiny-q4f16_1-MLC"
    hub_server.add_repo(repo, {"weights.bin": bytes(range(256)) * 1000, "config.json": b"{}"})
    record = ModelRecord(model=f"https://huggingface.co/{repo}", model_id="Tiny", model_lib="llama-q4f16_1",
                         vram_required_MB=1.0)
    config = AppConfig([record], cache_dir=tmp_path / "cache")

    def cancel(report):
        raise LoadCancelledError("cancelled by the test")

    with pytest.raises(LoadCancelledError):
        download_model(record, app_config=config, endpoint=hub_server.endpoint, progress=cancel, show_bar=False)
    path = download_model(record, app_config=config, endpoint=hub_server.endpoint, show_bar=False)
    assert (path / "config.json").read_bytes() == b"{}"


def test_latest_value_throttle_delivers_the_last_value():
    delivered = []
    throttle = LatestValueThrottle(10.0, delivered.append)
    for value in range(100):
        throttle.offer(value)
    assert delivered == [0]
    throttle.flush()
    assert delivered == [0, 99]
    throttle.offer(100, final=True)
    assert delivered == [0, 99, 100]
