"""`%%llm -m remote:URL[#MODEL]` and `%llm use remote:...`: the magics on a model served over
OpenAI's HTTP API, against our own server on 127.0.0.1 serving a random-weight tiny llama (fast;
its text is gibberish, but the same engine answers locally and remotely, so the two can be
compared token for token). Keys from --api-key or the environment; a bad URL, a server that is
down or refuses the key is one line in the cell and leaves the magic working for the next cell.
"""

from __future__ import annotations

import pytest
from IPython.testing import globalipapp

from notebook_llm import create_engine
from notebook_llm.api.remote import RemoteEngine
from notebook_llm.errors import InvalidRequestError
from notebook_llm.magics import unload_ipython_extension
from notebook_llm.magics.options import RemoteSpec, parse_cell_line, parse_remote_spec, remote_api_key
from notebook_llm.server.background import bind_socket

from . import test_magics as local
from .tiny_llama import write_tiny_llama

ASK = "--new --temperature 0 --max-tokens 4 --seed 5 --logprobs 2"
KEY_ENVS = ("NOTEBOOK_LLM_API_KEY", "OPENAI_API_KEY")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=7)


@pytest.fixture(scope="module")
def tiny_engine(tiny_path):
    return create_engine(str(tiny_path))


@pytest.fixture(scope="module")
def server(tiny_engine):
    with tiny_engine.serve(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def guarded(tiny_engine):
    with tiny_engine.serve(port=0, api_key="s3cret") as running:
        yield running


@pytest.fixture(scope="module")
def ip():
    globalipapp.start_ipython()  # once per process: later calls return None, so ask for the shell after it
    return globalipapp.get_ipython()


@pytest.fixture
def shell(ip, monkeypatch):
    publisher = local.RecordingPublisher(shell=ip)
    monkeypatch.setattr(ip, "display_pub", publisher)
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    yield ip
    unload_ipython_extension(ip)
    ip.config.pop("LLMMagics", None)
    ip.user_ns.pop("key", None)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just bound and released)."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/v1"


def shown(publisher) -> list[tuple]:
    """What a cell displayed, in order: (kind, text/plain) of every display and update, and clears."""
    return [(e[0], e[1].get("text/plain")) if e[0] != "clear" else e for e in publisher.events]


# --- the spec and the key (no server) ---------------------------------------------------------------


def test_remote_spec_is_a_url_with_an_optional_model_after_the_hash():
    assert parse_remote_spec("remote:http://127.0.0.1:8000/v1") == RemoteSpec("http://127.0.0.1:8000/v1")
    assert parse_remote_spec("remote:https://h.example/v1/#org/model-1") == RemoteSpec("https://h.example/v1",
                                                                                      "org/model-1")
    assert parse_remote_spec("remote:http://h:8000/v1#") == RemoteSpec("http://h:8000/v1")
    assert parse_remote_spec("SmolLM2-135M-Instruct-Q4_1") is None and parse_remote_spec("m.gguf") is None
    for bad in ("remote:127.0.0.1:8000/v1", "remote:ftp://h/v1", "remote:", "remote:http:///v1"):
        with pytest.raises(InvalidRequestError, match="allowed: remote:http"):
            parse_remote_spec(bad)
    options = parse_cell_line("-m remote:http://h:1/v1#m --api-key sk-XYZ")
    assert options.model == "remote:http://h:1/v1#m" and options.api_key == "sk-XYZ" and "XYZ" not in repr(options)


def test_api_key_comes_from_the_option_then_notebook_llm_then_openai_environment():
    both = {"NOTEBOOK_LLM_API_KEY": "ours", "OPENAI_API_KEY": "theirs"}
    assert remote_api_key("given", both) == "given"
    assert remote_api_key(None, both) == "ours"
    assert remote_api_key(None, {"OPENAI_API_KEY": "theirs"}) == "theirs"
    assert remote_api_key(None, {}) is None


# --- against the server --------------------------------------------------------------------------------


def test_remote_reply_streams_and_shows_logprobs_exactly_as_the_local_engine(shell, tiny_engine, tiny_path, server):
    magics = local.load(shell, tiny_engine)
    local.run(shell, f"%%llm {ASK}\nhi")
    local_events, local_reply = shown(shell.display_pub), magics.last_reply
    shell.display_pub.events.clear()
    local.run(shell, f"%%llm -m remote:{server.url} {ASK}\nhi")
    remote_events, remote_reply = shown(shell.display_pub), magics.last_reply

    assert isinstance(magics.engine, RemoteEngine)
    assert [e[0] for e in remote_events].count("update") >= 2  # it streamed: the live display grew
    assert remote_events == local_events  # the same live updates, clear, reply and heatmap summary
    assert remote_reply.texts == local_reply.texts and remote_reply.finish_reasons == local_reply.finish_reasons
    assert [t.token for t in remote_reply.logprobs[0]] == [t.token for t in local_reply.logprobs[0]]
    assert [t.logprob for t in remote_reply.logprobs[0]] == pytest.approx(
        [t.logprob for t in local_reply.logprobs[0]], abs=1e-5)  # same engine; JSON keeps float64 exactly
    reply, heatmap = shell.display_pub.displays()[-2:]
    assert reply[2]["notebook_llm"]["model_id"] == "tiny" and reply[2]["notebook_llm"]["seed"] == 5
    assert "<span" in heatmap[1]["text/html"] and "4 tokens" in heatmap[1]["text/plain"]

    local.run(shell, "%%llm --temperature 0 --max-tokens 2 --no-stream\nand again")  # no -m: still remote
    assert isinstance(magics.engine, RemoteEngine) and len(magics.conversation.turns) == 4
    local.run(shell, f"%%llm -m {tiny_path} --temperature 0 --max-tokens 2\nlocal now")  # a local id switches back
    assert magics.engine is tiny_engine


def test_llm_use_remote_makes_it_the_default_and_list_shows_the_served_models(shell, tiny_engine, server, capsys):
    magics = local.load(shell, tiny_engine)
    local.run(shell, f"%llm use remote:{server.url}#tiny")
    assert capsys.readouterr().out.strip() == f"Using tiny at {server.url}"
    assert magics.default_model == f"remote:{server.url}#tiny" and isinstance(magics.engine, RemoteEngine)
    local.run(shell, "%llm list")
    listing = capsys.readouterr().out
    assert f"Models served at {server.url}" in listing and "* tiny" in listing
    local.run(shell, "%%llm --temperature 0 --max-tokens 2\nhi")
    assert shell.display_pub.replies()[-1][2]["notebook_llm"]["model_id"] == "tiny"
    local.run(shell, "%llm stats")
    assert "decode" in capsys.readouterr().out  # the server's timing, from the stream's usage


def test_the_key_comes_from_the_option_a_variable_or_the_environment(shell, tiny_engine, tiny_path, guarded, capsys,
                                                                     monkeypatch):
    local.load(shell, tiny_engine)
    local.run(shell, f"%%llm -m remote:{guarded.url} --max-tokens 1\nhi")
    assert "refused the request (401)" in local.one_line_error(capsys)
    shell.user_ns["key"] = "s3cret"
    local.run(shell, f"%%llm -m remote:{guarded.url} --api-key $key --max-tokens 1\nhi")  # IPython expands $key
    assert capsys.readouterr().err == ""

    magics = local.load(shell, tiny_engine)  # a fresh magic: no key remembered
    monkeypatch.setenv("OPENAI_API_KEY", "s3cret")
    local.run(shell, f"%llm use remote:{guarded.url}")
    assert magics.engine.model_id == "tiny"
    monkeypatch.setenv("NOTEBOOK_LLM_API_KEY", "wrong")  # ours comes first
    magics = local.load(shell, tiny_engine)
    local.run(shell, f"%%llm -m remote:{guarded.url} --max-tokens 1\nhi")
    assert "401" in local.one_line_error(capsys)
    local.run(shell, f"%%llm -m {tiny_path} --api-key s3cret --max-tokens 1\nhi")
    assert "--api-key is the key of a remote: model's server" in local.one_line_error(capsys)


def test_bad_url_or_server_down_is_one_line_and_the_next_cell_still_works(shell, tiny_engine, tiny_path, capsys):
    magics = local.load(shell, tiny_engine)
    local.run(shell, "%%llm -m remote:127.0.0.1:8000/v1 --max-tokens 1\nhi")
    assert "allowed: remote:http(s)://HOST:PORT/v1[#MODEL_ID]" in local.one_line_error(capsys)
    local.run(shell, f"%%llm -m remote:{closed_port_url()} --max-tokens 1\nhi")
    assert "cannot reach" in (down := local.one_line_error(capsys)) and "is the server running" in down
    assert magics.engine is tiny_engine and magics.conversation.turns == []
    local.run(shell, "%%llm --temperature 0 --max-tokens 1\nhi")  # the magic still works, on the local engine
    assert capsys.readouterr().err == "" and len(magics.conversation.turns) == 2

    with tiny_engine.serve(port=0) as short_lived:
        local.run(shell, f"%%llm -m remote:{short_lived.url}#no-such-model --max-tokens 1\nhi")
        assert "'no-such-model' is not served" in local.one_line_error(capsys) and magics.engine is tiny_engine
        local.run(shell, f"%llm use remote:{short_lived.url}")
        capsys.readouterr()
    local.run(shell, "%%llm --max-tokens 1\nhi")  # the server is gone since the last cell
    assert "cannot reach" in local.one_line_error(capsys) and len(magics.conversation.turns) == 2
    local.run(shell, f"%llm use {tiny_path}")  # back to the local engine, which stayed loaded
    local.run(shell, "%%llm --temperature 0 --max-tokens 1\nhi")
    assert magics.engine is tiny_engine and len(magics.conversation.turns) == 4
