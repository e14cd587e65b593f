"""Chat templates render as Hugging Face transformers' apply_chat_template renders them.

The expected prompts are written out by hand from SmolLM2's template text (ChatML with a default
system prompt) and from jinja2's documented whitespace rules, not produced by our renderer.
"""

from __future__ import annotations

import json

import pytest

from notebook_llm.errors import InvalidRequestError
from notebook_llm.loader.chat_template import ChatTemplate
from notebook_llm.loader.gguf_file import GGUFModelFile
from notebook_llm.loader.models_offline import default_model_path

DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


@pytest.fixture(scope="module")
def smollm2_template() -> ChatTemplate:
    model = GGUFModelFile(default_model_path())
    tokenizer = model.tokenizer()
    return ChatTemplate(
        model.chat_template,
        bos_token=tokenizer.id_to_token(tokenizer.bos_token_id),
        eos_token=tokenizer.id_to_token(tokenizer.eos_token_id),
    )


@pytest.mark.slow
def test_smollm2_inserts_its_default_system_prompt_when_none_is_given(smollm2_template):
    prompt = smollm2_template.render([{"role": "user", "content": "What is 2+2?"}])
    assert prompt == DEFAULT_SYSTEM + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.slow
def test_smollm2_uses_the_given_system_message_instead_of_the_default(smollm2_template):
    messages = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]
    prompt = smollm2_template.render(messages)
    assert prompt == (
        "<|im_start|>system\nAnswer in French.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_smollm2_multi_turn_with_and_without_generation_prompt(smollm2_template):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke.\nA short one."},
    ]
    turns = (
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
        "<|im_start|>user\nTell me a joke.\nA short one.<|im_end|>\n"
    )
    assert smollm2_template.render(messages) == DEFAULT_SYSTEM + turns + "<|im_start|>assistant\n"
    assert smollm2_template.render(messages, add_generation_prompt=False) == DEFAULT_SYSTEM + turns


@pytest.mark.slow
def test_text_parts_are_joined_into_one_string_before_rendering(smollm2_template):
    parts = [{"type": "text", "text": "first part"}, {"type": "text", "text": "second part"}]
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": parts}]
    assert smollm2_template.render(messages, add_generation_prompt=False) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nfirst part\nsecond part<|im_end|>\n"
    )
    assert messages[1]["content"] is parts  # the caller's messages are not modified


@pytest.mark.slow
def test_smollm2_bos_and_eos_strings_come_from_the_vocabulary(smollm2_template):
    assert (smollm2_template.bos_token, smollm2_template.eos_token) == ("<|im_start|>", "<|im_end|>")


def test_non_text_content_part_is_rejected_with_its_type():
    template = ChatTemplate("{{ messages[0].content }}")
    image = [{"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]
    with pytest.raises(InvalidRequestError, match="'image_url'") as error:
        template.render([{"role": "user", "content": image}])
    assert error.value.param == "messages[0].content"


def test_raise_exception_in_the_template_becomes_invalid_request_error():
    template = ChatTemplate(
        "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
        "{{ raise_exception('Only user and assistant roles are supported, got ' + m.role) }}"
        "{% endif %}{{ m.content }}{% endfor %}"
    )
    assert template.render([{"role": "user", "content": "ok"}]) == "ok"
    with pytest.raises(InvalidRequestError, match="Only user and assistant roles are supported, got tool"):
        template.render([{"role": "tool", "content": "x"}])


def test_template_syntax_error_becomes_invalid_request_error():
    with pytest.raises(InvalidRequestError, match="does not compile") as error:
        ChatTemplate("{% for m in messages %}{{ m.content }}")
    assert error.value.param == "chat_template"


def test_content_none_in_a_concatenating_template_is_an_invalid_request():
    template = ChatTemplate("{% for m in messages %}{{ m.role + ': ' + m.content }}{% endfor %}")
    with pytest.raises(InvalidRequestError, match="chat template rejected the messages"):
        template.render([{"role": "assistant", "content": None}])


def test_messages_must_be_a_list_of_role_dicts():
    template = ChatTemplate("{{ messages }}")
    for bad in ("hello", [{"content": "no role"}], [["user", "hi"]]):
        with pytest.raises(InvalidRequestError, match="messages must be a list"):
            template.render(bad)


def test_block_whitespace_is_trimmed_as_in_transformers():
    # trim_blocks drops the newline after a block tag; lstrip_blocks drops indentation before one.
    template = ChatTemplate(
        "{% for m in messages %}\n"
        "    {% if m.role == 'user' %}\n"
        "U:{{ m.content }}\n"
        "    {% endif %}\n"
        "{% endfor %}"
    )
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert template.render(messages) == "U:a\nU:c\n"


def test_template_variables_helpers_and_extra_kwargs():
    template = ChatTemplate(
        "{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ add_generation_prompt }}|"
        "{{ enable_thinking }}|{{ messages[0] | tojson }}|{{ {'b': 1, 'a': [2]} | tojson(indent=2, sort_keys=True) }}|"
        "{{ strftime_now('%Y') | length }}",
        bos_token="<s>",
        eos_token="</s>",
    )
    message = {"role": "user", "content": "<b>café & 'quotes'</b>"}
    rendered = template.render([message], add_generation_prompt=False, enable_thinking=False)
    # tojson keeps <, >, & and ' and non-ASCII as they are (jinja2's own filter would HTML-escape them).
    expected = [
        "<s>",
        "</s>",
        "True",
        "False",
        "False",
        json.dumps(message, ensure_ascii=False),
        json.dumps({"a": [2], "b": 1}, indent=2),
        "4",
    ]
    assert rendered == "|".join(expected)


def test_loop_controls_and_generation_blocks_compile():
    template = ChatTemplate(
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% if m.role == 'assistant' %}{% generation %}[{{ m.content }}]{% endgeneration %}"
        "{% else %}{{ m.content }}{% endif %}{% endfor %}"
    )
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "dropped"},
    ]
    assert template.render(messages) == "q[a]"


def test_sandbox_forbids_mutating_objects():
    template = ChatTemplate("{% set seen = [] %}{{ seen.append(1) }}")
    with pytest.raises(InvalidRequestError, match="chat template rejected the messages"):
        template.render([{"role": "user", "content": "x"}])
