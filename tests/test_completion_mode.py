"""``OpenAIModel(mode="completion")`` against a real loopback server: ``/v1/completions``.

The request body is checked exactly (model, the rendered prompt, sampling settings, stop
sequences), on both transports; the answer is read from ``choices[0].text``; the raw prompt
travels to the sample.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import pytest
from loopback import LoopbackServer, Recorded, Reply

import ensemble
from ensemble.errors import ConfigurationError, InvalidResponseError
from ensemble.models.base import Message, Request
from ensemble.models.openai import (
    DEFAULT_COMPLETION_STOP,
    DEFAULT_COMPLETION_TEMPLATE,
    OpenAIModel,
    render_completion_prompt,
)

TRANSPORTS = ["httpx"] + (["aiohttp"] if importlib.util.find_spec("aiohttp") else [])


def _text_completion(text: str, finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": "base-model",
            "choices": [{"index": 0, "text": text, "finish_reason": finish}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 5, "total_tokens": 45},
        }
    ).encode()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:

        def answer(rec: Recorded) -> Reply | None:
            if rec.path.endswith("/completions") and not rec.path.endswith("/chat/completions"):
                return Reply(body=_text_completion(" The capital of France is Paris. "))
            return None

        srv.respond_with(answer)
        yield srv


def _model(server: LoopbackServer, transport: str, **kw: Any) -> OpenAIModel:
    return OpenAIModel(
        "base-model",
        base_url=server.openai_url,
        api_key="sk-loop",
        mode="completion",
        transport=transport,  # type: ignore[arg-type]
        **kw,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_exact_request_body_and_default_stop_sequences(
    server: LoopbackServer, transport: str
) -> None:
    model = _model(server, transport)
    request = Request(
        prompt="What is the capital of France?", temperature=0.8, max_tokens=48, seed=11
    )
    try:
        completion = await model.agenerate(request)
    finally:
        await model.aclose()
    (rec,) = server.requests
    assert rec.path == "/v1/completions"
    expected_prompt = (
        "Question: What is the capital of Italy?\n"
        "Answer: The capital of Italy is Rome.\n"
        "\n"
        "Question: Who wrote the play Hamlet?\n"
        "Answer: Hamlet was written by William Shakespeare.\n"
        "\n"
        "Question: What is the capital of France?\n"
        "Answer:"
    )
    assert rec.body == {
        "model": "base-model",
        "prompt": expected_prompt,
        "temperature": 0.8,
        "max_tokens": 48,
        "seed": 11,
        "stop": ["\n\n", "\nQuestion:"],
    }
    assert rec.headers["authorization"] == "Bearer sk-loop"
    assert completion.text == "The capital of France is Paris."  # stripped
    assert completion.prompt_sent == expected_prompt
    assert completion.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.output_tokens == 5


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_prompt_is_rendered_once_per_call_and_that_is_what_is_recorded(
    server: LoopbackServer, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ensemble.models.openai as openai_module

    rendered: list[str] = []

    def counting(request: Request, template: str) -> str:
        text = render_completion_prompt(request, template)
        rendered.append(text)
        return text

    monkeypatch.setattr(openai_module, "render_completion_prompt", counting)
    model = _model(server, transport, prompt_template="Q: {prompt}\nA:")
    request = Request(prompt="Capital of France?", system="Be brief.", seed=2)
    try:
        first = await model.agenerate(request)
        second = await model.agenerate(request)
    finally:
        await model.aclose()
    assert len(rendered) == 2  # once per call (it was twice)
    prompt = "Be brief.\n\nQ: Capital of France?\nA:"
    assert rendered == [prompt, prompt]
    for rec in server.requests:
        assert rec.body == {
            "model": "base-model",
            "prompt": prompt,
            "seed": 2,
            "stop": ["\n\n", "\nQuestion:"],
        }
    assert first.prompt_sent == second.prompt_sent == prompt


async def test_user_template_stop_and_request_stop_are_sent() -> None:
    with LoopbackServer() as server:
        server.respond_with(lambda rec: Reply(body=_text_completion("Paris\n")))
        model = OpenAIModel(
            "base-model",
            base_url=server.openai_url,
            mode="completion",
            prompt_template="Q: {prompt}\nA:",
            stop=["\n"],
        )
        request = Request(prompt="Capital of {France}?", system="Be brief.", stop=("###", "\n"))
        try:
            completion = await model.agenerate(request)
        finally:
            await model.aclose()
        (rec,) = server.requests
    assert rec.body is not None
    # Braces in the question need no escaping; the system text comes first.
    assert rec.body["prompt"] == "Be brief.\n\nQ: Capital of {France}?\nA:"
    assert rec.body["stop"] == ["\n", "###"]  # the model's, then the request's new ones
    assert "temperature" not in rec.body and "seed" not in rec.body
    assert completion.text == "Paris"


async def test_sample_keeps_the_raw_prompt_and_chat_mode_keeps_none(
    server: LoopbackServer,
) -> None:
    base = _model(server, "httpx", name="base")
    chat = OpenAIModel("chat-model", base_url=server.openai_url, name="chat")
    ens = ensemble.Ensemble(models=[base, chat], repeats=2, seed=3, metric="vote")
    try:
        result = await ens.arun("Name the capital of France.")
    finally:
        await ens.aclose()
    rendered = DEFAULT_COMPLETION_TEMPLATE.replace("{prompt}", "Name the capital of France.")
    for s in result.samples:
        assert s.ok
        if s.model == "base":
            assert s.prompt_sent == rendered and s.text == "The capital of France is Paris."
        else:
            assert s.prompt_sent is None
    assert server.count(path="/v1/completions") == 2
    assert server.count(path="/v1/chat/completions") == 2
    # Round trip through JSON keeps the raw prompt.
    again = ensemble.Consensus.model_validate_json(result.model_dump_json())
    assert again.samples[0].prompt_sent == result.samples[0].prompt_sent


def test_messages_are_rendered_as_turns() -> None:
    request = Request(
        messages=(
            Message(role="system", content="Answer briefly."),
            Message(role="user", content="Capital of France?"),
            Message(role="assistant", content="Paris."),
            Message(role="user", content="And of Italy?"),
        )
    )
    text = render_completion_prompt(request, "{prompt}\nAssistant:")
    assert text == (
        "Answer briefly.\n\nUser: Capital of France?\nAssistant: Paris.\nUser: And of Italy?"
        "\nAssistant:"
    )


async def test_a_chat_body_on_the_completions_route_is_an_invalid_response() -> None:
    with LoopbackServer() as server:
        server.respond_with(
            lambda rec: Reply(body=json.dumps({"choices": [{"message": {}}]}).encode())
        )
        model = OpenAIModel("m", base_url=server.openai_url, mode="completion")
        try:
            with pytest.raises(InvalidResponseError, match="not a text completion"):
                await model.agenerate(Request(prompt="x"))
        finally:
            await model.aclose()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "edit"}, "mode must be"),
        ({"prompt_template": "no placeholder", "mode": "completion"}, "containing '{prompt}'"),
        ({"stop": "\n", "mode": "completion"}, "list of non-empty strings"),
        ({"stop": [""], "mode": "completion"}, "list of non-empty strings"),
        ({"stop": ["\n"]}, "need mode='completion'"),
    ],
)
def test_bad_completion_settings_are_configuration_errors(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        OpenAIModel("m", base_url="http://127.0.0.1:9/v1", **kwargs)


def test_default_stop_sequences_are_the_documented_ones() -> None:
    model = OpenAIModel("m", base_url="http://127.0.0.1:9/v1", mode="completion")
    assert model.stop == DEFAULT_COMPLETION_STOP == ("\n\n", "\nQuestion:")
    assert model.prompt_template == DEFAULT_COMPLETION_TEMPLATE
