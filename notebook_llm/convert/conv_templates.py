"""MLC-LLM's named conversation templates, as `gen_config` writes them into mlc-chat-config.json.

The values are those of mlc-llm's python/mlc_llm/conversation_template/*.py registrations;
`conv_template(name)` returns the JSON object MLC's `Conversation.to_json_dict()` gives (defaults
filled in: role_templates for user, assistant and tool, empty messages, function-calling fields),
which loader/conv_template.py turns into prompts. One deliberate difference: MLC's "qwen2"
template lists its stop strings as the single string "<|endoftext|>, <|im_end|>"; here they are
the two strings that were meant.

Data only; nothing here reads files or touches the GPU.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import InvalidRequestError

_CHATML = {"system_template": "<|im_start|>system\n{system_message}<|im_end|>\n",
           "roles": {"user": "<|im_start|>user", "assistant": "<|im_start|>assistant"},
           "seps": ["<|im_end|>\n"], "role_content_sep": "\n", "role_empty_sep": "\n"}
_LLAMA3 = {"system_template": "<|start_header_id|>system<|end_header_id|>\n\n{system_message}<|eot_id|>",
           "system_message": "You are a helpful, respectful and honest assistant.",
           "seps": ["<|eot_id|>"], "role_content_sep": "<|end_header_id|>\n\n",
           "role_empty_sep": "<|end_header_id|>\n\n", "system_prefix_token_ids": [128000],  # <|begin_of_text|>
           "add_role_after_system_message": True}

# name → the fields MLC's registration sets (the rest take Conversation's defaults).
_TEMPLATES: dict[str, dict[str, Any]] = {
    "chatml": _CHATML | {
        "system_message": "A conversation between a user and an LLM-based AI assistant. The assistant gives helpful "
                          "and honest answers.",
        "stop_str": ["<|im_end|>"], "stop_token_ids": [2]},
    "chatml_nosystem": _CHATML | {"system_template": "{system_message}", "system_message": "",
                                  "stop_str": ["<|im_end|>"], "stop_token_ids": [2]},
    "qwen2": _CHATML | {"system_message": "You are a helpful assistant.",
                        "stop_str": ["<|endoftext|>", "<|im_end|>"], "stop_token_ids": [151643, 151645]},
    "qwen3": _CHATML | {"system_message": "You are a helpful assistant.",
                        "stop_str": ["<|endoftext|>", "<|im_end|>"], "stop_token_ids": [151643, 151645],
                        "strip_reasoning_in_history": True},
    "llama-3": _LLAMA3 | {"roles": {"user": "<|start_header_id|>user", "assistant": "<|start_header_id|>assistant"},
                          "stop_str": ["<|end_of_text|>", "<|eot_id|>"], "stop_token_ids": [128001, 128009]},
    "llama-3_1": _LLAMA3 | {"roles": {"user": "<|start_header_id|>user", "assistant": "<|start_header_id|>assistant",
                                      "tool": "<|start_header_id|>ipython"},
                            "stop_str": [], "stop_token_ids": [128001, 128008, 128009]},
    "llama-2": {"system_template": "[INST] <<SYS>>\n{system_message}\n<</SYS>>\n\n",
                "system_message": "You are a helpful, respectful and honest assistant.",
                "roles": {"user": "<s>[INST]", "assistant": "[/INST]", "tool": "[INST]"},
                "seps": [" ", " </s>"], "role_content_sep": " ", "role_empty_sep": " ",
                "stop_str": ["[INST]"], "stop_token_ids": [2], "system_prefix_token_ids": [1],
                "add_role_after_system_message": False},
    "mistral_default": {
        "system_template": "[INST] {system_message}",
        "system_message": "Always assist with care, respect, and truth. Respond with utmost utility yet securely. "
                          "Avoid harmful, unethical, prejudiced, or negative content. Ensure replies promote fairness "
                          "and positivity.",
        "roles": {"user": "[INST]", "assistant": "[/INST]", "tool": "[INST]"},
        "seps": [" "], "role_content_sep": " ", "role_empty_sep": "", "stop_str": ["</s>"], "stop_token_ids": [2],
        "system_prefix_token_ids": [1], "add_role_after_system_message": False},
    "phi-3": {"system_template": "<|system|>\n{system_message}",
              "system_message": "You are a helpful digital assistant. Please provide safe, ethical and accurate "
                                "information to the user.",
              "roles": {"user": "<|user|>", "assistant": "<|assistant|>"},
              "seps": ["<|end|>\n"], "role_content_sep": "\n", "role_empty_sep": "\n",
              "system_prefix_token_ids": [1], "stop_str": ["<|endoftext|>"], "stop_token_ids": [32000, 32001, 32007]},
    "LM": {"system_template": "{system_message}", "system_message": "", "roles": {"user": "", "assistant": ""},
           "seps": [""], "role_content_sep": "", "role_empty_sep": "", "stop_str": [], "stop_token_ids": [2],
           "system_prefix_token_ids": [1]},
}
CONV_TEMPLATE_NAMES = tuple(_TEMPLATES)

# mlc-llm's Conversation defaults, in its field order (to_json_dict leaves out fields that are None).
_DEFAULTS: dict[str, Any] = {
    "name": None, "system_template": "{system_message}", "system_message": "", "system_prefix_token_ids": None,
    "add_role_after_system_message": True, "roles": None, "role_templates": None, "messages": [], "seps": None,
    "role_content_sep": "", "role_empty_sep": "", "stop_str": [], "stop_token_ids": [], "function_string": "",
    "use_function_calling": False, "strip_reasoning_in_history": False,
}
_ROLE_TEMPLATES = {"user": "{user_message}", "assistant": "{assistant_message}", "tool": "{tool_message}"}


def conv_template(name: str) -> dict[str, Any]:
    """The template called `name` as mlc-chat-config.json's `conv_template` object (a fresh copy);
    InvalidRequestError naming the known templates otherwise."""
    if name not in _TEMPLATES:
        raise InvalidRequestError(f"conv_template is {name!r}; one of {list(CONV_TEMPLATE_NAMES)} is allowed, or "
                                  "the path of a JSON file holding a conv_template object", param="conv_template")
    fields = copy.deepcopy(_DEFAULTS) | {"name": name} | copy.deepcopy(_TEMPLATES[name])
    fields["role_templates"] = dict(_ROLE_TEMPLATES)
    return {key: value for key, value in fields.items() if value is not None}
