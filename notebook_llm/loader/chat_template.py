"""Render a model's chat template (`tokenizer.chat_template`) the way Hugging Face transformers does.

Same jinja2 setup as `apply_chat_template`: a sandboxed, immutable environment with
trim_blocks and lstrip_blocks, the `loopcontrols` extension, a `{% generation %}` block,
`raise_exception`, `strftime_now` and a `tojson` that does not HTML-escape. Variables:
messages, add_generation_prompt, bos_token, eos_token, tools, documents and any extras
(enable_thinking, ...). Pure text in, text out: no tokens, no GPU.

Files without a `tokenizer.chat_template` get their architecture's conversation format from
BUILTIN_TEMPLATES (`builtin_template`), written here from the model's documented prompt format.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import InvalidRequestError


class _GenerationBlock(Extension):
    """`{% generation %}...{% endgeneration %}` marks the assistant's part in training templates;
    transformers tracks it for masks. Rendering only needs the body."""

    tags = {"generation"}

    def parse(self, parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys: bool = False
) -> str:
    # jinja2's own tojson escapes <, >, & and ' for HTML; prompts need the plain JSON.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(date_format: str) -> str:
    return datetime.now().strftime(date_format)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, "jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def _flatten_content(message: dict[str, Any], index: int) -> dict[str, Any]:
    """A copy of the message whose list-of-text-parts content is one string (parts joined by newlines)."""
    content = message.get("content")
    if not isinstance(content, list):
        return dict(message)
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidRequestError(
                f"messages[{index}].content has a part of type {kind!r}; only text parts "
                '({"type": "text", "text": ...}) are supported',
                param=f"messages[{index}].content",
            )
        texts.append(part["text"])
    return {**message, "content": "\n".join(texts)}


# Gemma's turn format (the Gemma docs' "prompt formatting"): each turn is
#     <start_of_turn>{user|model}\n{text}<end_of_turn>\n
# and the reply starts after "<start_of_turn>model\n". Gemma has no system turn: system text goes
# at the top of the next user turn, followed by a blank line. Message text is trimmed. The same
# text as llama.cpp's built-in "gemma" template (tests/data/gemma3_tokenizer_cases.json), plus the
# BOS token, which llama.cpp adds when tokenizing and this engine takes from the rendered text.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set state = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set state.system = state.system + message['content'] | trim -%}"
    "{%- else -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if state.system and role != 'model' -%}"
    "{{ state.system + '\n\n' }}{%- set state.system = '' -%}"
    "{%- endif -%}"
    "{{ message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

BUILTIN_TEMPLATES = {"gemma3": GEMMA_TEMPLATE}


class PromptTemplate(Protocol):
    """What the engine asks of a model's conversation format: this module's jinja `ChatTemplate`
    (GGUF files) or an MLC `conv_template` (loader/conv_template.py's `ConvTemplate`)."""

    stop_strings: tuple[str, ...]  # text that ends a reply, besides the request's `stop`
    stop_token_ids: tuple[int, ...]  # ids that end a reply, besides the tokenizer's own

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The prompt text for an OpenAI messages list, tokenized by the engine without BOS/EOS added."""
        ...


def builtin_template(architecture: str) -> str | None:
    """The conversation format of an architecture whose files may lack a chat template, or None."""
    return BUILTIN_TEMPLATES.get(architecture)


class ChatTemplate:
    """A compiled chat template with the model's BOS and EOS strings (a `PromptTemplate`; its stops
    are the tokenizer's end-of-turn tokens)."""

    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()

    def __init__(self, template: str, *, bos_token: str = "", eos_token: str = ""):
        self.source = template
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template = _environment().from_string(template)
        except jinja2.TemplateError as error:
            raise InvalidRequestError(f"chat template does not compile: {error}", param="chat_template") from error

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The prompt text for `messages` (`[{"role": ..., "content": ...}]`); extra keyword
        arguments (tools, documents, enable_thinking, ...) become template variables."""
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise InvalidRequestError(
                'messages must be a list of {"role": ..., "content": ...} dicts', param="messages"
            )
        variables = {
            "tools": None,
            "documents": None,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **kwargs,
            "messages": [_flatten_content(m, i) for i, m in enumerate(messages)],
            "add_generation_prompt": add_generation_prompt,
        }
        try:
            return self._template.render(**variables)
        except (jinja2.TemplateError, TypeError) as error:
            # TemplateError: raise_exception() or an undefined name; TypeError: e.g. 'str' + None content.
            raise InvalidRequestError(f"chat template rejected the messages: {error}", param="messages") from error
