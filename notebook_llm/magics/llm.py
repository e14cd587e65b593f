"""`LLMMagics`: the `%%llm` cell magic and the `%llm` line magic.

Owns the notebook's conversation (one per kernel), the engine the magics use (created on first
use, or given), the record of cell errors behind `Err[n]` and `%llm fix`, and the traits that
`%config LLMMagics.<name> = <value>` sets. The engine is local, or a `RemoteEngine` for a
`remote:URL[#MODEL]` spec (a model on an OpenAI-compatible server: same calls, same reply records,
so streaming, formats and logprob views work alike); switching to a remote model keeps the local
engine loaded for when a cell names a local model again. Parsing lives in `options`, prompts in
`prompt`, outputs in `render`. A user's mistake (bad option, unknown model, rejected request) prints one
line to stderr and changes nothing; a bug still raises.
"""

from __future__ import annotations

import math
import secrets
import sys
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Enum, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from ..api.engine import Engine, create_engine
from ..api.remote import RemoteEngine
from ..api.requests import ChatRequest, validate_chat_request
from ..engine.core import DEFAULT_MODEL_ID, resolve_model_path
from ..errors import InvalidRequestError, NotebookLLMError
from .options import (
    FORMATS,
    CellOptions,
    RequestDefaults,
    RemoteSpec,
    cell_parser,
    describe_error,
    parse_cell_line,
    parse_remote_spec,
    parse_use_line,
    remote_api_key,
    request_arguments,
)
from .prompt import CellError, Conversation, NotebookHistory, fix_prompt, interpolate, traceback_text
from .render import LiveView, Reply, extract_code, final_bundle, logprobs_html, parse_json, publish

SUBCOMMANDS = {
    "list": "the loaded models and the default",
    "use MODEL": "load MODEL, a model id or a .gguf path, in place of the loaded one",
    "use remote:URL[#MODEL]": "use a model of an OpenAI-compatible server (--api-key KEY, else from the environment)",
    "history": "the conversation so far",
    "reset": "forget the conversation",
    "stats": "speed of the last request",
    "config": "the defaults; change them with %config LLMMagics.<name> = <value>",
    "fix [OPTIONS]": "explain the last error and insert a corrected cell below (OPTIONS as for %%llm)",
}


@magics_class
class LLMMagics(Magics, Configurable):
    """`%%llm` sends the cell to a local model as the next message of the notebook's conversation;
    `%llm` manages the model and the conversation (`%llm` alone lists its subcommands).
    A model is local (a registry id, a .gguf path) or on a server: `remote:http://127.0.0.1:8000/v1`
    (its first model) or `remote:http://127.0.0.1:8000/v1#MODEL_ID`, with the key from `--api-key`,
    else $NOTEBOOK_LLM_API_KEY, else $OPENAI_API_KEY."""

    default_model = Unicode(
        None, allow_none=True, help="model of cells without -m (None: the built-in default)").tag(config=True)
    """Model id, path to a .gguf file or `remote:URL[#MODEL]` that cells without `-m` use; None is the
    built-in default.

    - Type: `str | None`
    - Default: `None`
    """

    default_system = Unicode(
        None, allow_none=True, help="system prompt of new conversations (None: the model's)").tag(config=True)
    """System prompt of a conversation that `--system` has not set; None keeps the chat template's own.

    - Type: `str | None`
    - Default: `None`
    """

    default_temperature = Float(
        0.7, allow_none=True, help="temperature of cells without --temperature").tag(config=True)
    """Sampling temperature of cells without `--temperature`, 0 (greedy) to 2; None is the API's 1.0.

    - Type: `float | None`
    - Default: `0.7`
    """

    default_max_tokens = Int(
        512, allow_none=True, help="reply length limit of cells without --max-tokens").tag(config=True)
    """Most tokens in a reply of cells without `--max-tokens`; None runs to the end of the turn.

    - Type: `int | None`
    - Default: `512`
    """

    default_format = Enum(FORMATS, "markdown", help="how replies are shown without --format").tag(config=True)
    """How a reply is shown when the cell gives no `--format` (`--json`/`--schema` imply json).

    - Type: one of `markdown`, `text`, `code`, `json`, `html`
    - Default: `"markdown"`
    """

    stream_interval = Float(0.05, help="seconds between updates of a streaming reply").tag(config=True)
    """Shortest time between two updates of the live display while a reply streams; 0 updates on every token.

    - Type: `float`
    - Default: `0.05`
    """

    def __init__(self, shell=None, engine: Engine | RemoteEngine | None = None, **kwargs: Any):
        super().__init__(shell=shell, **kwargs)
        self._engine = engine  # the engine cells use: the local one or a RemoteEngine
        self._local_engine = engine if not isinstance(engine, RemoteEngine) else None
        self._remote_keys: dict[str, str | None] = {}  # base URL -> the key last used there (kept in memory only)
        self.conversation = Conversation()
        self.last_error: CellError | None = None  # for %llm fix
        self.error_texts: dict[int, str] = {}  # `Err` in the notebook: execution count -> traceback text
        self.last_reply: Reply | None = None

    # -- traits ----------------------------------------------------------------------------------
    @validate("default_model")
    def _check_model(self, proposal):
        if proposal.value is not None:
            try:
                if parse_remote_spec(proposal.value) is None:  # a remote spec is checked, not connected to
                    resolve_model_path(proposal.value)
            except NotebookLLMError as e:
                raise TraitError(str(e)) from None
        return proposal.value

    @validate("default_temperature", "default_max_tokens")
    def _check_request_default(self, proposal):
        field = proposal.trait.name.removeprefix("default_")
        if proposal.value is not None:
            try:
                validate_chat_request({"messages": [{"role": "user", "content": "-"}], field: proposal.value})
            except InvalidRequestError as e:
                raise TraitError(f"{proposal.trait.name}: {e}") from None
        return proposal.value

    @validate("stream_interval")
    def _check_interval(self, proposal):
        if proposal.value < 0:
            raise TraitError(f"stream_interval is {proposal.value}; allowed: seconds >= 0")
        return proposal.value

    # -- the engine ------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine | RemoteEngine:
        """The engine, loading the default model (or connecting to the default remote one) on first use."""
        if self._engine is None:
            remote = parse_remote_spec(self.default_model) if self.default_model else None
            if remote is not None:
                self._use_remote(remote, None)
            else:
                print(f"Loading {self.default_model or DEFAULT_MODEL_ID}…", file=sys.stderr)
                self._engine = self._local_engine = create_engine(self.default_model)
        return self._engine

    def _model_for(self, spec: str | None, api_key: str | None = None) -> str | None:
        """The `model` of a request for `spec` (None: the engine's own), loading it or connecting to
        its server if needed; `api_key` is the cell's --api-key, for a remote model only."""
        remote = parse_remote_spec(spec) if spec is not None else None
        if remote is None and spec is None and api_key is not None and self._is_remote():
            remote = RemoteSpec(self._engine.base_url, self._engine.model_id)  # another key, same server
        if remote is not None:
            return self._use_remote(remote, api_key)
        if api_key is not None:
            raise _usage_error("--api-key is the key of a remote: model's server; this cell's model is local")
        if spec is None:
            return None
        model_id = resolve_model_path(spec)[0]  # an unknown model fails before anything loads
        if self._local_engine is None:
            print(f"Loading {model_id}…", file=sys.stderr)
            self._local_engine = create_engine(spec)
        elif model_id not in self._local_engine.loaded_models:
            loaded = ", ".join(self._local_engine.loaded_models) or "nothing"
            print(f"Loading {model_id} in place of {loaded}…", file=sys.stderr)
            self._local_engine.reload(spec)
        self._use_local()
        return model_id

    def _is_remote(self) -> bool:
        return isinstance(self._engine, RemoteEngine)

    def _use_remote(self, remote: RemoteSpec, api_key: str | None) -> str:
        """Make `remote` the engine in use and return the model id requests name. Connects unless
        the engine in use already talks to that server with that key; the key is `api_key`, else
        the one this server was last used with, else the environment's. Any failure (no server,
        wrong key, model not served) leaves the engine in use as it was."""
        known = self._remote_keys.get(remote.base_url)
        key = api_key or known or remote_api_key(None)
        engine = self._engine
        if isinstance(engine, RemoteEngine) and engine.base_url == remote.base_url and key == known:
            if remote.model is not None and remote.model != engine.model_id:
                engine.reload(remote.model)  # ModelNotFoundError, listing the served ones, changes nothing
            return engine.model_id
        return self._connect(remote, key).model_id

    def _connect(self, remote: RemoteSpec, key: str | None) -> RemoteEngine:
        """A RemoteEngine for `remote`, made the engine in use (the previous remote one is closed)."""
        engine = create_engine(remote.model, base_url=remote.base_url, api_key=key)
        previous, self._engine = self._engine, engine
        self._remote_keys[remote.base_url] = key
        if isinstance(previous, RemoteEngine):
            previous.close()
        return engine

    def _use_local(self) -> None:
        """Switch back from a remote engine to the local one (which stayed loaded)."""
        if self._is_remote():
            self._engine.close()
        self._engine = self._local_engine

    # -- the magic -------------------------------------------------------------------------------
    @line_cell_magic
    def llm(self, line: str, cell: str | None = None):
        magic = "%llm" if cell is None else "%%llm"
        try:
            if cell is None:
                self._subcommand(line)
            else:
                self._cell(line, cell)
        except NotebookLLMError as e:
            print(describe_error(e, magic), file=sys.stderr)

    def _cell(self, line: str, cell: str) -> None:
        options = parse_cell_line(line)
        text = cell.strip("\n")
        if not text.strip():
            raise _usage_error("the cell is empty; write the message on the lines below %%llm")
        if options.interpolate:
            text = interpolate(text, self.shell.user_ns, self._history(), frozenset(self.shell.user_ns_hidden))
        fmt = options.format or ("json" if options.json or options.schema else self.default_format)
        reply = self._ask(options, text, fmt)
        if fmt == "code" and (code := extract_code(reply.texts[0])):
            self.shell.set_next_input(code[1], replace=False)
        if options.out:
            self.shell.user_ns[options.out] = _out_value(reply, fmt)

    def _ask(self, options: CellOptions, text: str, fmt: str) -> Reply:
        """Send `text` as the next user message, show the reply and keep the turn (a request that
        fails raises before the conversation changes; an interrupted one keeps its partial reply)."""
        conversation = Conversation() if options.new else self.conversation
        system = options.system if options.system is not None else (conversation.system or self.default_system)
        messages = conversation.messages_with(text, system)
        seed = options.seed if options.seed is not None else secrets.randbits(31)
        defaults = RequestDefaults(self.default_temperature, self.default_max_tokens)
        arguments = {"messages": messages, **request_arguments(options, defaults, seed, self.shell.user_ns)}
        request = validate_chat_request(arguments)  # pure checks, before any model loads
        arguments["model"] = self._model_for(options.model or self.default_model, options.api_key)
        reply, interrupted = self._generate(arguments, options.stream, fmt)
        if options.new:
            self.conversation.clear()
        self.conversation.add_turn(text, reply.texts[0] if reply.texts else "", system=options.system)
        self.last_reply = reply
        self._show(reply, fmt, request)
        if interrupted:
            print("%%llm: interrupted; the partial reply is kept in the conversation", file=sys.stderr)
        return reply

    def _generate(self, arguments: dict, stream: bool, fmt: str) -> tuple[Reply, bool]:
        """(the reply, whether the user interrupted it), with a live display meanwhile."""
        engine = self.engine
        view = LiveView(self.shell.display_pub, fmt, self.stream_interval)
        view.start()
        reply, interrupted = Reply(), False
        try:
            if not stream:
                reply = Reply.from_completion(engine.chat.completions.create(**arguments))
                return reply, False
            chunks = engine.chat.completions.create(**arguments, stream=True, stream_options={"include_usage": True})
            try:
                for chunk in chunks:
                    reply.add_chunk(chunk)
                    view.update(_live_text(reply.texts))
            finally:
                chunks.close()  # ends the generation (and frees the engine) however the loop ended
        except KeyboardInterrupt:
            engine.interrupt_generate()
            reply.mark_aborted()
            interrupted = True
        finally:
            view.finish()
        return reply, interrupted

    def _show(self, reply: Reply, fmt: str, request: ChatRequest) -> None:
        publisher = self.shell.display_pub
        count = len(reply.texts)
        for index, text in enumerate(reply.texts):
            if count > 1:
                heading = f"Reply {index + 1} of {count}"
                publish(publisher, {"text/markdown": f"**{heading}**", "text/plain": heading + ":"})
            bundle, warning = final_bundle(text, fmt)
            publish(publisher, bundle, {"notebook_llm": {
                "model_id": reply.model, "seed": request.seed, "temperature": request.temperature,
                "top_p": request.top_p, "max_tokens": request.max_tokens, "index": index,
                "finish_reason": reply.finish_reasons[index],
            }})
            if warning:
                print(f"%%llm: {warning}", file=sys.stderr)
        if request.logprobs and reply.logprobs and reply.logprobs[0]:
            publish(publisher, {"text/html": logprobs_html(reply), "text/plain": _logprob_summary(reply)})

    # -- %llm subcommands --------------------------------------------------------------------------
    def _subcommand(self, line: str) -> None:
        name, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        commands = {"list": self._list, "use": self._use, "history": self._print_history, "reset": self._reset,
                    "stats": self._stats, "config": self._config, "fix": self._fix}
        if not name:
            print(_subcommand_help() + "\nAsk the model with the %%llm cell magic (options: %%llm?).")
            return
        if name not in commands:
            raise _usage_error(f"unknown subcommand {name!r}; allowed: {', '.join(commands)} "
                             "(ask the model with the %%llm cell magic)")
        if rest and name not in ("use", "fix"):
            raise _usage_error(f"{name} takes no arguments, got {rest!r}")
        commands[name](rest)

    def _list(self, _: str) -> None:
        if self._is_remote():
            self._list_remote()
            return
        from ..gpu.device import list_adapters
        from ..loader.download import has_model_in_cache
        from ..registry import list_models, prebuilt_app_config

        adapters = list_adapters()
        adapter = adapters[0] if adapters else None
        runnable = list_models(adapter=adapter, runnable=True)
        where = adapter.description if adapter else "no adapter"
        print(f"Models this engine can run on {where} (* = downloaded or on disk):")
        for record in runnable:
            mark = "*" if has_model_in_cache(record.model_id) else " "
            print(f"  {mark} {record.model_id}  ({record.vram_required_MB:.0f} MB)")
        others = len(prebuilt_app_config.model_list) - len(runnable)
        print(f"{others} more registry records need formats or architectures not implemented yet "
              "(notebook_llm.list_models(runnable=False)); any llama .gguf path works too.")
        loaded = self._engine.loaded_models if self._engine is not None else []
        print(f"default: {self.default_model or DEFAULT_MODEL_ID}")
        print(f"loaded:  {', '.join(loaded) if loaded else '(none yet: the default loads on first use)'}")

    def _list_remote(self) -> None:
        engine = self._engine
        print(f"Models served at {engine.base_url} (* = in use):")
        for model in engine.served_models():
            print(f"  {'*' if model == engine.model_id else ' '} {model}")
        print(f"default: {self.default_model or DEFAULT_MODEL_ID}")
        local = ", ".join(self._local_engine.loaded_models) if self._local_engine is not None else ""
        print(f"loaded here: {local or '(nothing)'}")

    def _use(self, line: str) -> None:
        spec, api_key = parse_use_line(line)
        spec = spec.strip("'\"")
        remote = parse_remote_spec(spec)
        if remote is not None:
            model_id = self._use_remote(remote, api_key)
            print(f"Using {model_id} at {remote.base_url}")
        elif api_key is not None:
            raise _usage_error("--api-key is the key of a remote: model's server; allowed only with use remote:URL")
        else:
            resolve_model_path(spec)  # fails before anything is unloaded
            if self._local_engine is None:
                self._local_engine = create_engine(spec)
            else:
                self._local_engine.reload(spec)
            self._use_local()
            print(f"Using {self._engine.model_id}")
        self.default_model = spec

    def _print_history(self, _: str) -> None:
        print(self.conversation.as_text() if self.conversation.turns else "(the conversation is empty)")

    def _reset(self, _: str) -> None:
        self.conversation.clear()
        if self._engine is not None:
            for model in self._engine.loaded_models:
                self._engine.reset_chat(model=model)
        print("The conversation is empty.")

    def _stats(self, _: str) -> None:
        if self._engine is None:
            print("No model loaded yet.")
            return
        for model in self._engine.loaded_models:
            print(self._engine.runtime_stats_text(model))

    def _config(self, _: str) -> None:
        for name in self.trait_names(config=True):
            print(f"LLMMagics.{name} = {getattr(self, name)!r}")
        print("Change with %config LLMMagics.<name> = <value>")

    def _fix(self, line: str) -> None:
        if self.last_error is None:
            raise _usage_error("no error recorded yet: %llm fix explains the last cell that raised one")
        options = parse_cell_line(line)
        reply = self._ask(options, fix_prompt(self.last_error), "markdown")
        code = extract_code(reply.texts[0], whole_if_no_fence=False)
        if code is None:
            print("%llm fix: the reply has no code block; nothing was inserted", file=sys.stderr)
        else:
            self.shell.set_next_input(code[1], replace=False)

    # -- notebook history ------------------------------------------------------------------------
    def record_error(self, result) -> None:
        """post_run_cell hook: keep the traceback of a cell that raised, for Err[n] and %llm fix."""
        error = result.error_in_exec or result.error_before_exec
        if error is None:
            return
        count = result.execution_count  # None for a cell run without history (no Err entry then)
        cell = getattr(getattr(result, "info", None), "raw_cell", None) or ""
        self.last_error = CellError(count, cell, traceback_text(error))
        if count is not None:
            self.error_texts[count] = self.last_error.traceback

    def _history(self) -> NotebookHistory:
        history = self.shell.history_manager
        plain = self.shell.display_formatter.formatters["text/plain"]

        def inputs(n: int) -> str | None:
            raw = history.input_hist_raw
            return raw[n] if 1 <= n < len(raw) else None

        def outputs(n: int) -> str | None:
            return plain(history.output_hist[n]) if n in history.output_hist else None

        return NotebookHistory(inputs, outputs, self.error_texts.get)


def _subcommand_help() -> str:
    width = max(map(len, SUBCOMMANDS))
    return "%llm subcommands:\n" + "\n".join(f"  %llm {k:<{width}}  {v}" for k, v in SUBCOMMANDS.items())


LLMMagics.llm.__doc__ = (
    "%%llm [options]: the cell is the next user message of the notebook's conversation.\n\n"
    "{name} in the cell is replaced by the variable's value, {In[n]}, {Out[n]} and {Err[n]} by cell n's\n"
    "input, output and traceback; other braces stay as written (--no-interpolate: all of them).\n\n"
    + cell_parser().format_help() + "\n" + _subcommand_help()
)


def _usage_error(message: str) -> InvalidRequestError:
    """A mistake in how a magic was called (printed as one line, like a rejected request)."""
    return InvalidRequestError(message, param="%llm")


def _live_text(texts: list[str]) -> str:
    if len(texts) <= 1:
        return texts[0] if texts else ""
    return "\n\n".join(f"Reply {i + 1}:\n{t}" for i, t in enumerate(texts))


def _out_value(reply: Reply, fmt: str) -> Any:
    """What --out stores: the text, parsed JSON for the json format, a list of them when n > 1."""
    def one(text: str) -> Any:
        if fmt == "json":
            try:
                return parse_json(text)
            except ValueError:
                return text
        return text

    values = [one(t) for t in reply.texts]
    return values[0] if len(values) == 1 else values


def _logprob_summary(reply: Reply) -> str:
    tokens = reply.logprobs[0]
    mean = sum(t.logprob for t in tokens) / len(tokens)
    return f"{len(tokens)} tokens, mean probability per token {math.exp(mean):.3f} (geometric)"
