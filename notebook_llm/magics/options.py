"""The `%%llm` option line: parsing it into `CellOptions`, and `CellOptions` into request arguments.

Owns the option names, their types and the rules between options (`--json` or `--schema`, not
both). Ranges of sampling values are the API's to check (`validate_chat_request`), so the rules
live in one place; this module only maps a rejected request field back to the option that set it.
No IPython, no engine.
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import InvalidRequestError

FORMATS = ("markdown", "text", "code", "json", "html")
DEFAULT_TOP_LOGPROBS = 5  # `--logprobs` without a number
REMOTE_PREFIX = "remote:"  # a model spec `remote:URL[#MODEL]` names a model on an OpenAI-compatible server
API_KEY_ENVS = ("NOTEBOOK_LLM_API_KEY", "OPENAI_API_KEY")  # a remote server's key when --api-key is not given
REMOTE_SPEC_HELP = "remote:http(s)://HOST:PORT/v1[#MODEL_ID], e.g. remote:http://127.0.0.1:8000/v1"
Format = Literal["markdown", "text", "code", "json", "html"]

# request field -> the option that sets it, for error messages
OPTION_OF_PARAM = {
    "temperature": "--temperature", "top_p": "--top-p", "max_tokens": "--max-tokens", "seed": "--seed",
    "stop": "--stop", "n": "-n", "top_logprobs": "--logprobs", "response_format": "--json/--schema",
    "model": "--model", "base_url": "--model",
}


@dataclass(frozen=True)
class CellOptions:
    """What one `%%llm` line asks for; None means "the LLMMagics default"."""

    model: str | None = None
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    json: bool = False
    schema: str | None = None  # name of a variable holding a JSON schema
    format: Format | None = None
    top_logprobs: int | None = None  # None: no logprobs
    new: bool = False
    out: str | None = None  # name of the variable that receives the reply
    stream: bool = True
    interpolate: bool = True
    api_key: str | None = field(default=None, repr=False)  # for a remote: model; None: from the environment

    @property
    def display_format(self) -> Format:
        """The format the reply is shown in when `--format` is not given (before config defaults)."""
        return self.format or ("json" if self.json or self.schema else "markdown")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting the kernel."""

    def error(self, message: str):
        raise InvalidRequestError(f"{message} (options: %%llm?)", param="%%llm")


def _identifier(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Python variable name")
    return value


def cell_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%llm", add_help=False, allow_abbrev=False,
                description="Send the cell to the model as the next user message and show the reply.")
    p.add_argument("-m", "--model",
                   help="model id or path to a .gguf file (loaded if it is not), or a model on an OpenAI-compatible "
                        f"server: {REMOTE_SPEC_HELP} (default: the server's first model)")
    p.add_argument("--api-key", dest="api_key", metavar="KEY",
                   help=f"bearer key of a remote: server (default: ${API_KEY_ENVS[0]}, else ${API_KEY_ENVS[1]}); "
                        "write --api-key $name to pass a variable's value, so the key is not saved in the notebook")
    p.add_argument("--system", metavar="TEXT", help="system prompt of the conversation from this cell on")
    p.add_argument("--temperature", type=float, metavar="T", help="sampling temperature, 0 (greedy) to 2")
    p.add_argument("--top-p", type=float, dest="top_p", metavar="P", help="nucleus sampling, (0, 1]")
    p.add_argument("--max-tokens", type=int, dest="max_tokens", metavar="N", help="most tokens in the reply")
    p.add_argument("--seed", type=int, help="sampling seed (one is drawn and recorded when left out)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help=r"stop string, repeatable; \n and \t are escapes")
    p.add_argument("-n", type=int, default=1, help="number of replies (the first continues the conversation)")
    p.add_argument("--json", action="store_true", help="constrain the reply to a JSON object")
    p.add_argument("--schema", type=_identifier, metavar="VAR",
                   help="constrain the reply to the JSON schema in variable VAR (a dict or a pydantic model)")
    p.add_argument("--format", choices=FORMATS, help="how the reply is shown (default: markdown; json with --json)")
    p.add_argument("--logprobs", type=int, nargs="?", const=DEFAULT_TOP_LOGPROBS, dest="top_logprobs", metavar="K",
                   help=f"show token probabilities with K alternatives (default {DEFAULT_TOP_LOGPROBS})")
    p.add_argument("--new", action="store_true", help="start a new conversation with this cell")
    p.add_argument("--out", type=_identifier, metavar="VAR",
                   help="store the reply's text (parsed JSON for json) in VAR")
    p.add_argument("--no-stream", action="store_false", dest="stream", help="show the reply only when it is complete")
    p.add_argument("--no-interpolate", action="store_false", dest="interpolate",
                   help="send {name} as written instead of the variable's value")
    return p


def parse_cell_line(line: str) -> CellOptions:
    """`--temperature 0 --stop '\\n'` -> CellOptions. Raises InvalidRequestError with one-line messages."""
    try:
        words = shlex.split(line)
    except ValueError as e:  # unbalanced quotes
        raise InvalidRequestError(f"cannot split the option line: {e}", param="%%llm") from None
    args = cell_parser().parse_args(words)
    if args.json and args.schema:
        raise InvalidRequestError("--json and --schema exclude each other; --schema already implies JSON",
                                  param="--json")
    values = vars(args)
    values["stop"] = tuple(unescape(s) for s in values["stop"])
    return CellOptions(**values)


def use_parser() -> argparse.ArgumentParser:
    """`%llm use MODEL [--api-key KEY]`."""
    p = _Parser(prog="%llm use", add_help=False, allow_abbrev=False)
    p.add_argument("model")
    p.add_argument("--api-key", dest="api_key", metavar="KEY")
    return p


def parse_use_line(line: str) -> tuple[str, str | None]:
    """`remote:http://h:8000/v1 --api-key K` -> (model spec, api key or None)."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise InvalidRequestError(f"cannot split the line: {e}", param="%llm") from None
    if not words:
        raise InvalidRequestError(f"use needs a model: %llm use MODEL_ID_OR_PATH.gguf, or %llm use {REMOTE_SPEC_HELP}",
                                  param="%llm")
    args = use_parser().parse_args(words)
    return args.model, args.api_key


@dataclass(frozen=True)
class RemoteSpec:
    """A model served elsewhere: the server's base URL (ending in /v1 for ours) and the model's id
    there (None: the first one it lists)."""

    base_url: str
    model: str | None = None


def parse_remote_spec(spec: str) -> RemoteSpec | None:
    """`remote:URL[#MODEL_ID]` -> RemoteSpec; None when `spec` is not a remote one (a model id or a
    path). The model id follows `#`, the one character a URL never sends to its server. Raises
    InvalidRequestError for a remote spec whose URL is not http(s)://host..."""
    if not spec.startswith(REMOTE_PREFIX):
        return None
    url, _, model = spec[len(REMOTE_PREFIX):].partition("#")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise InvalidRequestError(f"model {spec!r} is not a remote model spec; allowed: {REMOTE_SPEC_HELP}",
                                  param="--model")
    return RemoteSpec(url.rstrip("/"), model or None)


def remote_api_key(option: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key for a remote server: the option's, else the first of API_KEY_ENVS that is set."""
    if option:
        return option
    return next((environ[name] for name in API_KEY_ENVS if environ.get(name)), None)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def unescape(text: str) -> str:
    r"""`\n`, `\t` and `\\` in an option value become a newline, a tab and a backslash."""
    return re.sub(r"\\([nt\\])", lambda m: _ESCAPES[m.group(1)], text)


@dataclass(frozen=True)
class RequestDefaults:
    """The LLMMagics traits a request falls back on."""

    temperature: float | None
    max_tokens: int | None


def request_arguments(options: CellOptions, defaults: RequestDefaults, seed: int,
                      namespace: Mapping[str, Any]) -> dict[str, Any]:
    """`chat.completions.create` keyword arguments for the options (without messages, model, stream)."""
    kwargs: dict[str, Any] = {"n": options.n, "seed": seed}
    temperature = options.temperature if options.temperature is not None else defaults.temperature
    if temperature is not None:
        kwargs["temperature"] = temperature
    if options.top_p is not None:
        kwargs["top_p"] = options.top_p
    max_tokens = options.max_tokens if options.max_tokens is not None else defaults.max_tokens
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if options.stop:
        kwargs["stop"] = list(options.stop)
    if options.top_logprobs is not None:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = options.top_logprobs
    if options.json:
        kwargs["response_format"] = {"type": "json_object"}
    elif options.schema:
        kwargs["response_format"] = schema_format(options.schema, namespace)
    return kwargs


def schema_format(name: str, namespace: Mapping[str, Any]) -> dict:
    """The json_schema response_format for the schema held in variable `name`."""
    if name not in namespace:
        raise InvalidRequestError(f"--schema {name}: no variable {name!r} in the notebook", param="--schema")
    value = namespace[name]
    if hasattr(value, "model_json_schema"):  # a pydantic model class
        value = value.model_json_schema()
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            f"--schema {name}: {name} is of type {type(value).__name__}; "
            "allowed: a dict (a JSON schema) or a pydantic model",
            param="--schema")
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(value)}}


def describe_error(error: Exception, magic: str = "%%llm") -> str:
    """One line for the user: the option or field at fault, then the message."""
    param = getattr(error, "param", None)
    option = OPTION_OF_PARAM.get((param or "").split(".")[0].split("[")[0], None)
    message = " ".join(str(error).split())  # one line, whatever the error's text held
    if param and param.startswith(("-", "%")):
        option = None  # already named in the message
    return f"{magic}: {option + ': ' if option else ''}{message}"
