"""MLC-LLM's conversation templates (`conv_template` in mlc-chat-config.json) as prompt text.

Owns turning an OpenAI messages list into the prompt MLC-LLM and WebLLM build from the same
template (mlc-llm's `Conversation.as_prompt`, python/mlc_llm/protocol/conversation_protocol.py):

    [prefix tokens] system_template(system_message)
    for each message:  roles[role] + role_content_sep + role_templates[role](content) + sep
    reply header:      roles["assistant"] + role_empty_sep

- The request's system message, allowed only first, replaces the template's default
  `system_message`; the system part is left out when it renders empty.
- `seps` has one entry (after every message) or two (seps[0] after user and tool messages,
  seps[1] after assistant ones).
- With `add_role_after_system_message` false (Llama 2's "[INST] <<SYS>>..." format) the first
  message after a non-empty system part has no role prefix: the system part opened the turn.
- A message whose content is None renders as its role and `role_empty_sep` only.
- `strip_reasoning_in_history` (Qwen 3): earlier assistant replies lose everything up to their
  last "</think>", as Qwen 3's own chat template drops old reasoning.
- `system_prefix_token_ids` (a BOS) come first. The engine tokenizes the whole prompt text, so they
  are written as their tokens' text (`prefix_text`, which the loader checks tokenizes back to
  exactly those ids: they are special tokens).

`stop_str` and `stop_token_ids` end a reply: the engine adds them to the request's stop strings
and the tokenizer's stop ids. Pure text in, text out: no tokens, no GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequestError, ModelFormatError
from .chat_template import _flatten_content

PLACEHOLDERS = {"system": "{system_message}", "user": "{user_message}", "assistant": "{assistant_message}",
                "tool": "{tool_message}"}
FUNCTION_PLACEHOLDER = "{function_string}"
THINK_END = "</think>"
# What Qwen 3's template puts after the reply header when thinking is switched off.
EMPTY_THINKING = "<think>\n\n</think>\n\n"
# mlc-chat-config fields this module reads; the others (messages, function_string,
# use_function_calling, ...) are MLC runtime state or tool calling, not part of the format.
FIELDS = ("name", "system_template", "system_message", "system_prefix_token_ids", "add_role_after_system_message",
          "roles", "role_templates", "seps", "role_content_sep", "role_empty_sep", "stop_str", "stop_token_ids",
          "strip_reasoning_in_history")


def _strings(data: Mapping[str, Any], key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ModelFormatError(f"conv_template.{key} is {value!r}; a list of strings is allowed")
    return tuple(value)


def _ints(data: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = data.get(key) or ()
    if isinstance(value, int):
        value = (value,)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ModelFormatError(f"conv_template.{key} is {value!r}; a list of token ids is allowed")
    return tuple(value)


def _text(data: Mapping[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ModelFormatError(f"conv_template.{key} is {value!r}; a string is allowed")
    return value


@dataclass(frozen=True)
class ConvTemplate:
    """An MLC conversation template; `render` gives the prompt text for an OpenAI messages list."""

    name: str
    system_template: str
    system_message: str
    roles: Mapping[str, str]
    role_templates: Mapping[str, str]
    seps: tuple[str, ...]
    role_content_sep: str = ""
    role_empty_sep: str = ""
    system_prefix_token_ids: tuple[int, ...] = ()
    add_role_after_system_message: bool = True
    stop_strings: tuple[str, ...] = ()  # mlc-chat-config's stop_str
    stop_token_ids: tuple[int, ...] = ()
    strip_reasoning_in_history: bool = False
    prefix_text: str = field(default="", compare=False)  # the text of system_prefix_token_ids' tokens

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix_text: str = "") -> ConvTemplate:
        """From mlc-chat-config.json's `conv_template` object (see FIELDS; unknown keys are ignored)."""
        if not isinstance(data, Mapping):
            raise ModelFormatError(f"conv_template is {type(data).__name__}; an object is expected")
        roles = data.get("roles")
        if not isinstance(roles, Mapping) or not {"user", "assistant"} <= set(roles) \
                or not all(isinstance(v, str) for v in roles.values()):
            raise ModelFormatError(f"conv_template.roles is {roles!r}; an object with 'user' and 'assistant' "
                                   "strings is required")
        role_templates = {role: PLACEHOLDERS.get(role, "") for role in roles}
        given = data.get("role_templates") or {}
        if not isinstance(given, Mapping) or not all(isinstance(v, str) for v in given.values()):
            raise ModelFormatError(f"conv_template.role_templates is {given!r}; an object of strings is allowed")
        role_templates.update(given)
        seps = _strings(data, "seps")
        if not 1 <= len(seps) <= 2:
            raise ModelFormatError(f"conv_template.seps is {list(seps)}; one or two separators are allowed")
        return cls(
            name=_text(data, "name"),
            system_template=_text(data, "system_template", PLACEHOLDERS["system"]),
            system_message=_text(data, "system_message"),
            roles=dict(roles),
            role_templates=role_templates,
            seps=seps,
            role_content_sep=_text(data, "role_content_sep"),
            role_empty_sep=_text(data, "role_empty_sep"),
            system_prefix_token_ids=_ints(data, "system_prefix_token_ids"),
            add_role_after_system_message=bool(data.get("add_role_after_system_message", True)),
            stop_strings=tuple(s for s in _strings(data, "stop_str") if s),
            stop_token_ids=_ints(data, "stop_token_ids"),
            strip_reasoning_in_history=bool(data.get("strip_reasoning_in_history", False)),
            prefix_text=prefix_text,
        )

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The prompt text for `messages`, ending with the assistant's reply header when
        `add_generation_prompt`. Keyword arguments: `enable_thinking=False` opens the reply with an
        empty reasoning block (templates with strip_reasoning_in_history, i.e. Qwen 3); others
        (template variables of jinja templates) do not apply and are ignored."""
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise InvalidRequestError('messages must be a list of {"role": ..., "content": ...} dicts', param="messages")
        messages = [_flatten_content(m, i) for i, m in enumerate(messages)]
        system_message, offset = self.system_message, 0
        if messages and messages[0]["role"] == "system":
            system_message, offset = messages[0].get("content") or "", 1
            messages = messages[1:]
        system = self.system_template.replace(PLACEHOLDERS["system"], system_message)
        after_user, after_assistant = self.seps[0], self.seps[-1]
        parts = [self.prefix_text, system]
        for index, message in enumerate(messages):
            role, content = message["role"], message.get("content")
            where = f"messages[{index + offset}]"
            if role not in self.roles:
                allowed = sorted(self.roles) + ["system (first message only)"]
                raise InvalidRequestError(f"{where}.role is {role!r}; the {self.name or 'model'!r} conversation "
                                          f"template allows {allowed}", param=f"{where}.role")
            if content is None:
                parts.append(self.roles[role] + self.role_empty_sep)
                continue
            if not isinstance(content, str):
                raise InvalidRequestError(f"{where}.content must be a string, a list of text parts or None",
                                          param=f"{where}.content")
            if role == "assistant" and self.strip_reasoning_in_history:
                content = content.rsplit(THINK_END, 1)[-1].lstrip("\n") if THINK_END in content else content
            first_after_system = index == 0 and system != "" and not self.add_role_after_system_message
            prefix = "" if first_after_system else self.roles[role] + self.role_content_sep
            body = self.role_templates.get(role, PLACEHOLDERS.get(role, "")).replace(PLACEHOLDERS.get(role, "\0"), content)
            parts.append(prefix + body + (after_assistant if role == "assistant" else after_user))
        if add_generation_prompt:
            parts.append(self.roles["assistant"] + self.role_empty_sep)
            if kwargs.get("enable_thinking") is False and self.strip_reasoning_in_history:
                parts.append(EMPTY_THINKING)
        return "".join(parts).replace(FUNCTION_PLACEHOLDER, "")
