"""`ChatWidget`: a chat panel in the notebook, streaming replies from a local engine, or from a
model on an OpenAI-compatible server (`ChatWidget(engine=create_engine(base_url=...))`).

Owns the conversation as the front end shows it, the reply worker thread and the pacing of what
is sent to the front end (deltas every `delta_interval`, commits of `messages` every
`commit_interval`). Requests go through the OpenAI-style `engine.chat.completions.create`; the
embedded `ModelPicker` owns the engine and its loading. Never touches wgpu.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ipywidgets import widget_serialization
from traitlets import Dict, Enum, Float, Instance, Int, List, TraitError, Unicode, link, observe, validate

from ..errors import InvalidRequestError, NotebookLLMError
from .base import KernelStateWidget
from .bundle import bundle_file
from .frontend_messages import MessageSchema, error_text, log, parse_message
from .picker import ModelPicker
from .timing import Ticker

if TYPE_CHECKING:
    from ..api.engine import Engine
    from ..api.types import ChatCompletionChunk, CompletionUsage

CHAT_MESSAGES: MessageSchema = {"send": {"text": str}, "stop": {}, "regenerate": {}, "clear": {}}

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
ROLES = ("user", "assistant")
SETTINGS = ("temperature", "top_p", "max_tokens")  # keyword arguments besides engine/model/system_prompt/picker


@dataclass
class _Reply:
    """One reply being generated. Mutated only under ChatWidget._lock."""

    engine: "Engine"
    request: dict[str, Any]  # keyword arguments of chat.completions.create
    history: list[dict[str, str]]  # `messages` the reply answers; the reply goes at index len(history)
    restore: list[dict[str, str]]  # `messages` to put back if it fails before any text arrives
    restore_stats: dict[str, Any]
    draft: str  # the user's text, given back to the input box on such a failure ("" for regenerate)
    stop: threading.Event = field(default_factory=threading.Event)
    text: str = ""  # everything received so far
    pending: str = ""  # received but not yet sent as a delta
    committed_chars: int = 0  # len(text) at the last commit of `messages`
    committed_at: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    finish_reason: str | None = None
    usage: "CompletionUsage | None" = None
    discarded: bool = False  # the conversation was cleared: nothing of this reply is shown any more

    @property
    def index(self) -> int:
        return len(self.history)

    def take(self, chunk: "ChatCompletionChunk") -> None:
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.delta.content:
                self.text += choice.delta.content
                self.pending += choice.delta.content
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason

    def stats(self, finish_reason: str) -> dict[str, Any]:
        """The `reply_stats` entry: the usage block's numbers, or what the widget measured without one."""
        usage = self.usage
        extra = usage.extra if usage is not None else None
        seconds = extra.e2e_latency_s if extra is not None else time.monotonic() - self.started
        return {
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "completion_tokens": usage.completion_tokens if usage is not None else None,
            "seconds": round(seconds, 3),
            "ttft_s": round(extra.time_to_first_token_s, 3) if extra is not None else None,
            "tokens_per_s": round(extra.decode_tokens_per_s, 2) if extra is not None else None,
            "finish_reason": finish_reason,
        }


class ChatWidget(KernelStateWidget):
    """A chat panel: messages, an input box, Send / Stop / Regenerate / Clear, settings, and the
    embedded model picker.

    `ChatWidget(engine=None, model=None, system_prompt=..., picker=None, temperature=, top_p=,
    max_tokens=)`: with an engine its loaded model is used; `model=` starts loading that model
    at once; with neither, the picker preselects the default model and waits for Load.
    """

    _lock: threading.RLock  # guards _reply, _thread, _seq and every commit of traits

    _esm = bundle_file("chat.js")
    _css = bundle_file("widgets.css")
    _kernel_owned: ClassVar[frozenset[str]] = frozenset(
        {"messages", "status", "error", "draft", "seq", "reply_stats", "picker"})

    messages = List(Dict()).tag(sync=True)
    """The conversation, OpenAI message dicts without the system prompt; the reply being streamed
    is the last entry as of the last commit. - Type: list of {"role": "user"|"assistant", "content": str}"""
    system_prompt = Unicode(DEFAULT_SYSTEM_PROMPT).tag(sync=True)
    """Sent first with every request; "" sends none. - Default: "You are a helpful assistant." """
    temperature = Float(0.7).tag(sync=True)
    """- Type: float in [0, 2] - Default: 0.7"""
    top_p = Float(0.95).tag(sync=True)
    """- Type: float in (0, 1] - Default: 0.95"""
    max_tokens = Int(512).tag(sync=True)
    """Longest reply, in tokens. - Type: int >= 1 - Default: 512"""
    status = Enum(("idle", "generating", "loading"), "idle").tag(sync=True)
    """ "loading" while the picker loads a model. - Default: "idle" """
    error = Unicode("").tag(sync=True)
    """Why the last action failed; cleared by the next send. - Default: "" """
    draft = Unicode("").tag(sync=True)
    """Text given back to the input box when a send fails. - Default: "" """
    seq = Int(0).tag(sync=True)
    """The last delta's seq whose text `messages` holds. - Default: 0"""
    reply_stats = Dict().tag(sync=True)
    """str(message index) → stats of that assistant reply. - Default: {}"""
    selected_model_id = Unicode("").tag(sync=True)
    """The model requests go to; linked to the picker's. - Type: str"""
    picker = Instance(ModelPicker).tag(sync=True, **widget_serialization)
    """The embedded model picker. - Type: ModelPicker"""

    delta_interval: ClassVar[float] = 0.04  # seconds between delta messages while streaming
    commit_interval: ClassVar[float] = 2.0  # seconds between commits of `messages` while streaming

    def __init__(self, engine: "Engine | None" = None, model: str | None = None,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, picker: ModelPicker | None = None,
                 **settings: Any):
        unknown = sorted(set(settings) - set(SETTINGS) - {"messages"})
        if unknown:
            raise InvalidRequestError(
                f"ChatWidget got unknown argument(s) {unknown}; allowed are "
                f"{['engine', 'model', 'system_prompt', 'picker', *SETTINGS, 'messages']}", param=unknown[0])
        if picker is None:
            picker = ModelPicker(engine=engine, model_id=model)
        elif engine is not None and picker.engine is not engine:
            raise InvalidRequestError("engine and picker disagree: the picker is bound to another engine; "
                                      "pass one of them", param="engine")
        self._reply: _Reply | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0  # the last delta's seq: +1 per delta message, never reset
        super().__init__(picker=picker, system_prompt=system_prompt,
                         selected_model_id=picker.selected_model_id, **settings)
        self._model_link = link((picker, "selected_model_id"), (self, "selected_model_id"))
        picker.observe(self._on_picker_status, "status")
        self.on_msg(self._on_frontend_message)
        loaded = picker.engine.loaded_models if picker.engine is not None else []
        if model is not None and model not in loaded:
            picker.load(model)
        self._on_picker_status()

    # -- checks on values set from Python or the front end ----------------------------------------
    @validate("temperature")
    def _check_temperature(self, proposal: dict) -> float:
        return _in_range("temperature", proposal["value"], 0.0, 2.0, "a number in [0, 2]")

    @validate("top_p")
    def _check_top_p(self, proposal: dict) -> float:
        value = proposal["value"]
        if value == 0:
            raise TraitError("top_p is 0; a number in (0, 1] is allowed (1 turns it off)")
        return _in_range("top_p", value, 0.0, 1.0, "a number in (0, 1] (1 turns it off)")

    @validate("max_tokens")
    def _check_max_tokens(self, proposal: dict) -> int:
        value = proposal["value"]
        if value < 1:
            raise TraitError(f"max_tokens is {value!r}; an integer >= 1 is allowed")
        return value

    @validate("messages")
    def _check_messages(self, proposal: dict) -> list[dict[str, str]]:
        if self._reply is not None and not self._in_commit():
            raise TraitError("messages cannot be replaced while a reply is being generated; "
                             "call stop() and wait() first")
        checked = []
        for i, message in enumerate(proposal["value"]):
            if set(message) != {"role", "content"} or message["role"] not in ROLES \
                    or not isinstance(message["content"], str):
                raise TraitError(
                    f"messages[{i}] is {message!r}; a dict with exactly 'role' ('user' or 'assistant') and "
                    "'content' (a str) is allowed; the system prompt goes in system_prompt")
            checked.append({"role": message["role"], "content": message["content"]})
        return checked

    @observe("messages")
    def _on_messages_replaced(self, change: dict) -> None:
        if not self._in_commit():  # set from Python: the stats described another conversation
            self.reply_stats = {}

    # -- actions (the front end's messages call these) --------------------------------------------
    def ask(self, text: str, wait: bool = False) -> None:
        """Append `text` as a user message and stream a reply; when that cannot start, `error` says
        why and the text comes back in `draft`. `wait=True` blocks until the reply ends.
        (Not `send`: that is ipywidgets' method for custom messages to the front end.)"""
        if not isinstance(text, str):
            raise InvalidRequestError(f"text is a {type(text).__name__}; a str is allowed", param="text")
        with self._lock:
            refusal = "the message is empty; type something to send" if not text.strip() else None
            refusal = refusal or self._refusal()
            if refusal:
                self._refuse(refusal, draft=text)
                return
            history = [*self.messages, {"role": "user", "content": text}]
            self._launch(history, restore=list(self.messages), draft=text)
        if wait:
            self.wait()

    def regenerate(self, wait: bool = False) -> None:
        """Drop the last assistant message (if the last message is one) and answer again."""
        with self._lock:
            history = list(self.messages)
            if history and history[-1]["role"] == "assistant":
                history.pop()
            refusal = self._refusal()
            if not refusal and (not history or history[-1]["role"] != "user"):
                refusal = "there is no user message to answer again"
            if refusal:
                self._refuse(refusal, draft="")
                return
            self._launch(history, restore=list(self.messages), draft="")
        if wait:
            self.wait()

    def stop(self) -> bool:
        """Stop the reply being generated (its text so far is kept, finish_reason "abort");
        False when none is running."""
        with self._lock:
            reply = self._reply
            if reply is None:
                return False
            reply.stop.set()
        reply.engine.interrupt_generate()
        return True

    def clear(self) -> None:
        """Empty the conversation, stopping the reply being generated first."""
        with self._lock:
            if self._reply is not None:
                self._reply.discarded = True
                self.stop()
            with self._committing():
                self.messages = []
                self.seq = self._seq
                self.reply_stats = {}
                self.error = ""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the reply being generated; True when none is running any more."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- starting a reply ---------------------------------------------------------------------
    def _refusal(self) -> str | None:
        """Why a request cannot start now, or None."""
        if self._reply is not None:
            if self._reply.discarded:
                return "the previous reply is still stopping; try again in a moment"
            return "a reply is still being generated; press Stop first"
        if self.picker.loading:
            return f"{self.picker.selected_model_id} is still loading; try again when it has loaded"
        return self._target()[1]

    def _target(self) -> tuple[str, str | None]:
        """(model id for the request, None) or ("", why there is none)."""
        engine = self.picker.engine
        loaded = engine.loaded_models if engine is not None else []
        if not loaded:
            return "", "no model is loaded; choose one in the picker and press Load"
        model = self.selected_model_id or (loaded[0] if len(loaded) == 1 else "")
        if model not in loaded:
            return "", (f"the selected model {model!r} is not loaded (loaded: {', '.join(loaded)}); "
                        "press Load, or select the loaded model")
        return model, None

    def _refuse(self, reason: str, draft: str) -> None:
        log.info("ChatWidget: %s", reason)
        self.error = reason
        self._give_back(draft)

    def _give_back(self, text: str) -> None:
        """Put `text` back in the front end's input box (a change event even when draft was equal)."""
        if text:
            self.draft = ""
            self.draft = text

    def _launch(self, history: list[dict[str, str]], restore: list[dict[str, str]], draft: str) -> None:
        model, _ = self._target()
        engine = self.picker.engine
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt.strip() else []
        request = dict(
            messages=system + [dict(m) for m in history], model=model, stream=True,
            stream_options={"include_usage": True}, temperature=self.temperature, top_p=self.top_p,
            max_tokens=self.max_tokens)
        reply = _Reply(engine, request, history, restore, dict(self.reply_stats), draft)
        stats = dict(self.reply_stats)
        stats.pop(str(reply.index), None)
        self._reply = reply
        with self._committing():
            self.messages = history
            self.seq = self._seq
            self.reply_stats = stats
            self.error = ""
            self.status = "generating"
        self._thread = threading.Thread(target=self._generate, args=(reply,), daemon=True,
                                        name="notebook_llm-chat-reply")
        self._thread.start()

    # -- the reply thread -----------------------------------------------------------------------
    def _generate(self, reply: _Reply) -> None:
        ticker = Ticker(self.delta_interval, lambda: self._flush(reply), name="notebook_llm-chat-deltas").start()
        failure: BaseException | None = None
        try:
            if not reply.stop.is_set():
                self._stream(reply)
        except Exception as error:  # noqa: BLE001 — any failure ends this reply, not the widget
            failure = error
            if not isinstance(error, NotebookLLMError):
                log.exception("ChatWidget: the reply failed")
        finally:
            ticker.stop()
            try:
                self._finish(reply, failure)
            except Exception:  # noqa: BLE001 — e.g. the comm failed: still leave the widget usable
                log.exception("ChatWidget: ending the reply failed")
                with self._lock:
                    self._reply = None
                    self.status = "idle"

    def _stream(self, reply: _Reply) -> None:
        stream = reply.engine.chat.completions.create(**reply.request)
        try:
            for chunk in stream:
                with self._lock:
                    reply.take(chunk)
                if reply.stop.is_set():
                    # again per chunk: a generation that started after Stop cleared the first interrupt
                    reply.engine.interrupt_generate()
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _flush(self, reply: _Reply) -> None:
        """Every delta_interval: send the text received since the last delta; every
        commit_interval: commit `messages` with `seq`."""
        with self._lock:
            if reply.discarded:
                return
            self._send_pending(reply)
            if reply.committed_chars < len(reply.text) and \
                    time.monotonic() - reply.committed_at >= self.commit_interval:
                with self._committing():
                    self._commit_reply(reply)

    def _send_pending(self, reply: _Reply) -> None:
        if reply.pending and not reply.discarded:
            self._seq += 1
            self._send_event({"type": "delta", "seq": self._seq, "index": reply.index, "text": reply.pending})
            reply.pending = ""

    def _commit_reply(self, reply: _Reply) -> None:
        """`messages` with the reply's text so far, and the seq of the last delta that carried it
        (call inside _committing, after _send_pending)."""
        self.messages = [*reply.history, {"role": "assistant", "content": reply.text}]
        self.seq = self._seq
        reply.committed_chars, reply.committed_at = len(reply.text), time.monotonic()

    def _finish(self, reply: _Reply, failure: BaseException | None) -> None:
        with self._lock:
            self._send_pending(reply)
            give_back = ""
            with self._committing():
                if reply.discarded:
                    pass  # cleared: the conversation no longer has this reply
                elif failure is not None and not reply.text:
                    self.messages = reply.restore
                    self.seq = self._seq
                    self.reply_stats = reply.restore_stats
                    self.error = error_text(failure)
                    give_back = reply.draft
                else:
                    self._commit_reply(reply)
                    finish = reply.finish_reason or ("error" if failure is not None else
                                                     "abort" if reply.stop.is_set() else "stop")
                    self.reply_stats = {**self.reply_stats, str(reply.index): reply.stats(finish)}
                    self.error = error_text(failure) if failure is not None else ""
                self._reply = None
                self.status = "loading" if self.picker.loading else "idle"
            self._give_back(give_back)
            self._send_event({"type": "done", "seq": self._seq, "index": reply.index})

    def close(self) -> None:
        """Close the widget's comm and detach it from its picker (a running reply is stopped)."""
        if getattr(self, "_lock", None) is not None:  # __del__ may meet a half-built widget
            self.stop()
            self.picker.unobserve(self._on_picker_status, "status")
            self._model_link.unlink()
        super().close()

    # -- the picker and the front end ---------------------------------------------------------
    def _on_picker_status(self, _change: Any = None) -> None:
        with self._lock:
            if self._reply is None:
                self.status = "loading" if self.picker.status == "loading" else "idle"

    def _on_frontend_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        message = parse_message(content, CHAT_MESSAGES, "ChatWidget")
        if message is None:
            return
        kind = message["type"]
        try:
            if kind == "send":
                self.ask(message["text"])
            elif kind == "stop":
                self.stop()
            elif kind == "regenerate":
                self.regenerate()
            else:
                self.clear()
        except Exception as error:  # noqa: BLE001 — a front-end action must never raise in the kernel
            log.exception("ChatWidget: %r from the front end failed", kind)
            self.error = error_text(error)

    def _repr_fields(self) -> dict[str, Any]:
        return {"selected_model_id": self.selected_model_id, "messages": len(self.messages), "status": self.status}


def _in_range(name: str, value: float, low: float, high: float, allowed: str) -> float:
    if not math.isfinite(value) or not low <= value <= high:
        raise TraitError(f"{name} is {value!r}; {allowed} is allowed")
    return value
