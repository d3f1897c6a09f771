"""Adapters against a real loopback server through the official SDKs, and the test doubles."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from typing import Any

import pytest
from loopback import LoopbackServer, Reply

import ensemble
from ensemble import errors
from ensemble.models import get_model, register_model
from ensemble.models.anthropic import AnthropicModel
from ensemble.models.base import Completion, Message, Model, Request, parse_retry_after
from ensemble.models.function import FunctionModel
from ensemble.models.openai import OpenAIModel
from ensemble.models.scripted import ScriptedModel

CANARY = "sk-CANARY-7f3a9c1e5b2d4680aa11"


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)


#: Every adapter, through its SDK (the default) and on the lean ``transport="aiohttp"`` path.
KINDS = ["openai", "anthropic", "openai/aiohttp", "anthropic/aiohttp"]


def make(kind: str, server: LoopbackServer, model: str = "m", **kw: Any) -> Model:
    """``kind`` is a provider, optionally with ``/transport``."""
    provider, _, transport = kind.partition("/")
    if transport:
        pytest.importorskip(transport)
        kw["transport"] = transport
    kw.setdefault("api_key", CANARY)
    if provider == "openai":
        return OpenAIModel(model, base_url=server.openai_url, **kw)
    return AnthropicModel(model, base_url=server.anthropic_url, **kw)


async def call(model: Model, request: Request) -> Completion:
    async with model:
        return await model.agenerate(request)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- requests and completions ---------------------------------------------------------------


def test_request_needs_exactly_one_of_prompt_and_messages() -> None:
    with pytest.raises(ValueError):
        Request()
    with pytest.raises(ValueError):
        Request(prompt="a", messages=(Message(role="user", content="b"),))
    turns, system = Request(
        messages=(Message(role="system", content="S2"), Message(role="user", content="hi")),
        system="S1",
    ).chat()
    assert system == "S1\n\nS2"
    assert turns == (Message(role="user", content="hi"),)


@pytest.mark.parametrize("kind", ["openai", "openai/aiohttp"])
async def test_openai_success_maps_request_and_response(server: LoopbackServer, kind: str) -> None:
    server.script("m", Reply(text="Paris is the capital.", finish_reason="length"))
    req = Request(
        prompt="Capital?", system="Be brief.", temperature=0.7, max_tokens=20, seed=3, stop=("\n",)
    )
    out = await call(make(kind, server), req)
    assert out.text == "Paris is the capital."
    assert out.finish_reason == "length"
    assert out.usage == ensemble.Usage(input_tokens=7, output_tokens=4)
    assert out.request_id == "req-1"
    assert out.model == "m"
    assert out.latency > 0
    (rec,) = server.requests
    assert rec.path == "/v1/chat/completions"
    assert rec.body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital?"},
        ],
        "temperature": 0.7,
        "max_tokens": 20,
        "seed": 3,
        "stop": ["\n"],
    }
    assert rec.headers["authorization"] == f"Bearer {CANARY}"
    assert rec.headers["user-agent"].startswith("AsyncOpenAI/Python")  # the SDK's headers
    assert rec.headers["content-type"] == "application/json"
    if kind == "openai":
        assert rec.headers["x-stainless-retry-count"] == "0"


@pytest.mark.parametrize("kind", ["anthropic", "anthropic/aiohttp"])
async def test_anthropic_success_maps_request_and_response(
    server: LoopbackServer, kind: str
) -> None:
    server.script("c", Reply(text="Paris."))
    req = Request(prompt="Capital?", system="Be brief.", temperature=1.3, seed=5, stop=("X",))
    out = await call(make(kind, server, "c"), req)
    assert (out.text, out.finish_reason, out.request_id) == ("Paris.", "end_turn", "req-1")
    assert out.usage == ensemble.Usage(input_tokens=7, output_tokens=1)
    (rec,) = server.requests
    assert rec.path == "/v1/messages"
    assert rec.body == {
        "model": "c",
        "max_tokens": 1024,  # required by the Messages API: the default fills it
        "messages": [{"role": "user", "content": "Capital?"}],
        "system": "Be brief.",
        "temperature": 1.0,  # clipped to Anthropic's range
        "stop_sequences": ["X"],
    }  # no seed: the Messages API has none
    assert CANARY in rec.headers.get("x-api-key", "") + rec.headers.get("authorization", "")
    assert "anthropic-version" in rec.headers


def test_capabilities_are_class_attributes() -> None:
    assert OpenAIModel.supports_seed and not AnthropicModel.supports_seed
    assert OpenAIModel.key_env_var == "OPENAI_API_KEY"
    assert AnthropicModel.key_env_var == "ANTHROPIC_API_KEY"
    assert OpenAIModel.needs_key and not FunctionModel.needs_key
    assert OpenAIModel.provider == "openai" and AnthropicModel.provider == "anthropic"


# --- errors: one request each, typed --------------------------------------------------------

STATUS_CASES = [
    (400, errors.ProviderHTTPError, False),
    (401, errors.AuthenticationError, False),
    (403, errors.AuthenticationError, False),
    (404, errors.ProviderHTTPError, False),
    (408, errors.ProviderHTTPError, True),
    (409, errors.ProviderHTTPError, True),
    (422, errors.ProviderHTTPError, False),
    (429, errors.RateLimitError, True),
    (500, errors.ProviderHTTPError, True),
    (503, errors.ProviderHTTPError, True),
    (529, errors.ProviderHTTPError, True),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "cls", "retryable"), STATUS_CASES)
async def test_status_codes_map_to_typed_errors_with_one_request(
    server: LoopbackServer, kind: str, status: int, cls: type, retryable: bool
) -> None:
    server.script("m", Reply(status=status))
    with pytest.raises(cls) as info:
        await call(make(kind, server), Request(prompt="x"))
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.retryable is retryable
    assert err.model_name == f"{kind.partition('/')[0]}:m"
    assert f"scripted {status}" in str(err)
    assert server.count() == 1  # the SDK's own retries are off


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "1"}, 1.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "7", "retry-after-ms": "1500"}, 1.5),
        ({}, None),
    ],
)
async def test_retry_after_reaches_the_error(
    server: LoopbackServer, kind: str, headers: dict[str, str], expected: float | None
) -> None:
    server.script("m", Reply(status=429, headers=headers))
    with pytest.raises(errors.RateLimitError) as info:
        await call(make(kind, server), Request(prompt="x"))
    assert info.value.retry_after == expected
    assert server.count() == 1


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"RETRY-AFTER": " 3 "}) == 3.0
    assert parse_retry_after(
        {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412480.0
    ) == (30.0)
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "-1"}) is None
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "2"}) == 2.0
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>502 Bad Gateway</html>"),
        Reply(
            body=b'{"choices": [], "content": "x"}', headers={"Content-Type": "application/json"}
        ),
        Reply(body=b'{"unexpected": true}', headers={"Content-Type": "application/json"}),
    ],
    ids=["html", "empty-choices", "wrong-shape"],
)
async def test_invalid_200_body_is_invalid_response_error(
    server: LoopbackServer, kind: str, reply: Reply
) -> None:
    server.script("m", reply)
    with pytest.raises(errors.InvalidResponseError) as info:
        await call(make(kind, server), Request(prompt="x"))
    assert not info.value.retryable
    assert server.count() == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_refused_is_connection_error(kind: str) -> None:
    port = free_port()  # nothing listens there any more
    provider, _, transport = kind.partition("/")
    if transport:
        pytest.importorskip(transport)
    how: Any = transport or "httpx"
    model: Model
    if provider == "openai":
        model = OpenAIModel(
            "m", base_url=f"http://127.0.0.1:{port}/v1", api_key=CANARY, transport=how
        )
    else:
        model = AnthropicModel(
            "m", base_url=f"http://127.0.0.1:{port}", api_key=CANARY, transport=how
        )
    with pytest.raises(errors.ProviderConnectionError) as info:
        await call(model, Request(prompt="x"))
    assert info.value.retryable
    assert CANARY not in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_sdk_timeout_is_timeout_error(server: LoopbackServer, kind: str) -> None:
    server.script("m", Reply(hang=True))
    started = time.monotonic()
    with pytest.raises(errors.ProviderTimeoutError):
        await call(make(kind, server, timeout=0.3), Request(prompt="x"))
    assert time.monotonic() - started < 3.0
    assert server.count() == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_redirects_are_not_followed_with_the_key(
    server: LoopbackServer, server2: LoopbackServer, kind: str
) -> None:
    openai_kind = kind.startswith("openai")
    target = server2.openai_url if openai_kind else server2.anthropic_url
    path = "/chat/completions" if openai_kind else "/v1/messages"
    server.script("m", Reply(status=307, headers={"Location": target + path}))
    with pytest.raises(errors.ProviderHTTPError) as info:
        await call(make(kind, server), Request(prompt="x"))
    assert info.value.status_code == 307
    assert server.count() == 1
    assert server2.count() == 0  # the key never reached the other host


# --- keys and base URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "var"), [(OpenAIModel, "OPENAI_API_KEY"), (AnthropicModel, "ANTHROPIC_API_KEY")]
)
def test_missing_key_names_the_variable(cls: type, var: str) -> None:
    with pytest.raises(errors.MissingAPIKeyError) as info:
        cls("m")
    assert var in str(info.value)
    assert info.value.env_var == var


async def test_key_from_environment(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    model = OpenAIModel("m")  # official endpoint: the env var is read
    assert model.endpoint == "openai@https://api.openai.com/v1"
    custom = OpenAIModel("m", base_url=server.openai_url)
    await call(custom, Request(prompt="x"))
    # a custom server never gets the OpenAI key from the environment, only a placeholder
    assert server.requests[0].headers["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/v1", "127.0.0.1:8000/v1", "file:///etc/passwd", "http://user:pw@host/v1", ""],
)
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        OpenAIModel("m", base_url=url, api_key="k")
    with pytest.raises(errors.ConfigurationError):
        AnthropicModel("m", base_url=url, api_key="k")


@pytest.mark.parametrize("kind", KINDS)
async def test_canary_key_never_leaks(
    server: LoopbackServer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDKs' and httpx's included
    echo = f'{{"error": {{"message": "Incorrect API key provided: {CANARY}"}}}}'.encode()
    server.script("m", Reply(text="fine"), Reply(status=401, body=echo), Reply(body=echo))
    model = make(kind, server)
    texts = [repr(model), str(model), repr(vars(model))]
    async with model:
        await model.agenerate(Request(prompt="x"))
        for _ in range(2):
            with pytest.raises(errors.ProviderError) as info:
                await model.agenerate(Request(prompt="x"))
            texts += [str(info.value), repr(info.value), str(getattr(info.value, "body", ""))]
    texts.append(caplog.text)
    assert any("fine" in r.getMessage() or "answered" in r.getMessage() for r in caplog.records)
    for text in texts:
        assert CANARY not in text
        assert CANARY[-8:] not in text


# --- sync wrapper, registry ------------------------------------------------------------------


def test_generate_is_the_sync_wrapper(server: LoopbackServer) -> None:
    server.script("m", Reply(text="one"), Reply(text="two"))
    model = make("openai", server)
    assert model.generate(Request(prompt="x")).text == "one"
    assert model.generate(Request(prompt="x")).text == "two"  # a second loop works too
    model.close()


async def test_generate_inside_a_loop_says_use_agenerate() -> None:
    model = ScriptedModel("x")
    with pytest.raises(errors.SyncInAsyncError, match=r"await model\.agenerate"):
        model.generate(Request(prompt="x"))
    with pytest.raises(errors.SyncInAsyncError, match=r"await model\.aclose\(\)"):
        model.close()
    assert model.requests == [] and model.remaining == 1  # refused before any call


class _Closing(ScriptedModel):
    """Counts ``aclose`` calls and the loop each one ran on."""

    def __init__(self, *answers: Any) -> None:
        super().__init__(*answers, name="closing")
        self.closed: list[asyncio.AbstractEventLoop] = []

    async def aclose(self) -> None:
        self.closed.append(asyncio.get_running_loop())


def test_generate_releases_the_connections_on_its_own_loop_even_when_it_fails() -> None:
    model = _Closing("one", errors.ProviderError("boom", model_name="closing"))
    assert model.generate(Request(prompt="x")).text == "one"
    with pytest.raises(errors.ProviderError, match="boom"):
        model.generate(Request(prompt="x"))
    assert len(model.closed) == 2 and model.closed[0] is not model.closed[1]  # a loop per call
    model.close()
    assert len(model.closed) == 3


def test_get_model_resolves_specs(server: LoopbackServer) -> None:
    import os

    os.environ["OPENAI_API_KEY"] = CANARY
    os.environ["ANTHROPIC_API_KEY"] = CANARY
    try:
        m = get_model("openai:gpt-4o-mini")
        assert isinstance(m, OpenAIModel) and m.name == "openai:gpt-4o-mini"
        a = get_model("anthropic:claude-3-5-haiku-latest")
        assert isinstance(a, AnthropicModel) and a.model == "claude-3-5-haiku-latest"
    finally:
        del os.environ["OPENAI_API_KEY"], os.environ["ANTHROPIC_API_KEY"]
    assert get_model(m) is m
    with pytest.raises(errors.UnknownNameError) as info:
        get_model("mistral:small")
    for known in ("openai:MODEL", "anthropic:MODEL", "local"):
        assert known in str(info.value)
    with pytest.raises(errors.ConfigurationError):
        get_model("openai")
    with pytest.raises(errors.InvalidInputError):
        get_model(42)  # type: ignore[arg-type]


def test_registered_and_entry_point_models(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensemble.models as registry

    monkeypatch.setattr(registry.MODELS, "_registered", {})
    register_model("echo", lambda rest: ScriptedModel(default=rest, name=f"echo:{rest}"))
    m = get_model("echo:hi")
    assert m.name == "echo:hi"
    assert m.generate(Request(prompt="x")).text == "hi"
    with pytest.raises(errors.InvalidInputError):
        register_model("echo", lambda rest: ScriptedModel())
    import ensemble._registry

    monkeypatch.setattr(
        ensemble._registry,
        "entry_point_targets",
        lambda group: {"fn": "ensemble.models.scripted:ScriptedModel"} if group else {},
    )
    assert "fn" in registry.available_model_prefixes()
    assert isinstance(get_model("fn"), ScriptedModel)


# --- FunctionModel and ScriptedModel ----------------------------------------------------------


async def test_function_model_sync_and_async() -> None:
    import threading

    main = threading.get_ident()
    seen: list[int] = []

    def sync_fn(prompt: str) -> str:
        seen.append(threading.get_ident())
        return prompt.upper()

    async def async_fn(prompt: str) -> str:
        await asyncio.sleep(0)
        return prompt[::-1]

    assert (await FunctionModel(sync_fn, name="s").agenerate(Request(prompt="ab"))).text == "AB"
    assert seen and seen[0] != main  # ran in a worker thread
    assert (await FunctionModel(async_fn, name="a").agenerate(Request(prompt="ab"))).text == "ba"
    msgs = Request(
        messages=(
            Message(role="user", content="first"),
            Message(role="assistant", content="x"),
            Message(role="user", content="last"),
        )
    )
    assert (await FunctionModel(sync_fn, name="s").agenerate(msgs)).text == "LAST"


async def test_function_model_errors() -> None:
    def boom(prompt: str) -> str:
        raise KeyError("nope")

    def limited(prompt: str) -> str:
        raise errors.RateLimitError("slow", model_name="f", status_code=429, retry_after=0.1)

    with pytest.raises(errors.ProviderError, match="KeyError") as info:
        await FunctionModel(boom, name="f").agenerate(Request(prompt="x"))
    assert type(info.value) is errors.ProviderError and not info.value.retryable
    with pytest.raises(errors.RateLimitError):
        await FunctionModel(limited, name="f").agenerate(Request(prompt="x"))
    with pytest.raises(errors.InvalidResponseError):
        await FunctionModel(lambda p: 42, name="f").agenerate(Request(prompt="x"))
    with pytest.raises(errors.ConfigurationError):
        FunctionModel("not callable", name="f")  # type: ignore[arg-type]


async def test_scripted_model_plays_its_script_and_records() -> None:
    done = Completion(text="given", finish_reason="length", model="x")
    model = ScriptedModel(name="fake")
    model.enqueue(
        "plain",
        done,
        errors.ProviderTimeoutError("late", model_name="fake"),
        lambda req: f"seed={req.seed}",
    )
    assert (await model.agenerate(Request(prompt="1"))).text == "plain"
    assert await model.agenerate(Request(prompt="2")) is done
    with pytest.raises(errors.ProviderTimeoutError):
        await model.agenerate(Request(prompt="3"))
    assert (await model.agenerate(Request(prompt="4", seed=9))).text == "seed=9"
    with pytest.raises(errors.ProviderError, match="ran out"):
        await model.agenerate(Request(prompt="5"))
    assert [r.prompt for r in model.requests] == ["1", "2", "3", "4", "5"]
    assert model.remaining == 0


async def test_scripted_model_delay_is_cancellable() -> None:
    model = ScriptedModel(default="late", delay=5.0)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(model.agenerate(Request(prompt="x")), 0.1)
    assert time.monotonic() - started < 1.0


def test_unclosed_model_releases_connections_when_its_loop_ends(server: LoopbackServer) -> None:
    import gc
    import warnings

    server.default = Reply(text="ok")
    model = make("openai", server)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # two loops, never closed by hand
            assert asyncio.run(model.agenerate(Request(prompt="x"))).text == "ok"
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert server.count() == 2


def test_local_spec_imports_local_model_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ensemble.models import get_model\n"
        "assert 'ensemble.models.local' not in sys.modules\n"
        "try:\n"
        "    m = get_model('local')\n"
        "except ImportError as exc:\n"  # MissingDependencyError is an ImportError
        "    print('missing', exc)\n"
        "else:\n"
        "    print(type(m).__module__, type(m).__name__, m.name, m.needs_key)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    out = proc.stdout.strip()
    if out.startswith("missing"):
        pytest.skip(out)
    assert out == "ensemble.models.local LocalModel local False"


def test_local_spec_with_a_path_passes_it_as_model_path(tmp_path: Any) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(errors.UsageError) as info:  # bad path, or the extra is not installed
        get_model(f"local:{missing}")
    assert isinstance(info.value, (errors.ConfigurationError, errors.MissingDependencyError))
    if isinstance(info.value, errors.ConfigurationError):
        assert "nowhere.gguf" in str(info.value)


@pytest.mark.parametrize("kind", ["openai/aiohttp", "anthropic/aiohttp"])
async def test_lean_path_reuses_one_session_and_survives_a_dropped_connection(
    server: LoopbackServer, kind: str
) -> None:
    server.script("m", Reply(text="one"), Reply(drop=True), Reply(text="three"))
    model = make(kind, server)
    async with model:
        assert (await model.agenerate(Request(prompt="x"))).text == "one"
        session = model._clients.client  # type: ignore[attr-defined]
        with pytest.raises(errors.ProviderConnectionError) as info:
            await model.agenerate(Request(prompt="x"))
        assert info.value.retryable
        assert (await model.agenerate(Request(prompt="x"))).text == "three"
        assert model._clients.client is session  # type: ignore[attr-defined]
        assert CANARY not in repr(model._target)  # type: ignore[attr-defined]
    assert session.closed  # the model's context closed its connections
    assert server.count() == 3


def test_lean_path_takes_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ensemble.models._http import env_proxy

    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    assert env_proxy("https://api.openai.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert env_proxy("https://api.openai.com/v1/x") == "http://proxy.internal:3128"
    assert env_proxy("http://api.openai.com/v1/x") is None  # no HTTP_PROXY set
    assert env_proxy("https://127.0.0.1:8000/v1/x") is None  # NO_PROXY


def test_transport_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    with pytest.raises(errors.ConfigurationError):
        OpenAIModel("m", api_key="k", transport="curl")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError):
        OpenAIModel("m", api_key="k", transport="aiohttp", http_client=object())
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name)
    )
    with pytest.raises(errors.MissingDependencyError, match=r"ensemble-consensus\[aiohttp\]"):
        AnthropicModel("m", api_key="k", transport="aiohttp")


def test_sync_and_async_give_the_same_completion(server: LoopbackServer) -> None:
    server.script("m", Reply(text="same"), Reply(text="same"))
    model = make("openai", server)
    request = Request(prompt="x", seed=4, temperature=0.2)
    sync = model.generate(request)

    async def go() -> Completion:
        async with model:
            return await model.agenerate(request)

    via_async = asyncio.run(go())
    fields = ("text", "finish_reason", "usage", "model")
    assert [getattr(sync, f) for f in fields] == [getattr(via_async, f) for f in fields]
    assert server.requests[0].body == server.requests[1].body


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that no CA signed (made with the openssl command)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("kind", KINDS)
async def test_tls_certificates_are_verified(
    self_signed: tuple[str, str], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LoopbackServer(tls=self_signed) as tls_server:
        tls_server.default = Reply(text="over TLS")
        with pytest.raises(errors.ProviderConnectionError) as info:
            await call(make(kind, tls_server), Request(prompt="x"))
        assert "certificate" in str(info.value).lower()
        assert CANARY not in str(info.value)
        assert tls_server.requests == []  # nothing was sent to an unverified server
        if kind.endswith("/aiohttp"):  # the lean path honours SSL_CERT_FILE, as the SDK does
            monkeypatch.setenv("SSL_CERT_FILE", self_signed[0])
            out = await call(make(kind, tls_server), Request(prompt="x"))
            assert out.text == "over TLS"
            assert tls_server.count() == 1


@pytest.mark.skipif(sys.platform != "linux", reason="simulates OpenSSL's store (Linux)")
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_both_paths_trust_the_ca_store_the_sdk_trusts(
    self_signed: tuple[str, str], provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CA installed in the system's store (a company's proxy CA, say) is trusted by the
    lean path exactly when the SDK's own client trusts it: both take their trust from the
    SDK's HTTP library (httpx2: the system store; httpx: certifi)."""
    pytest.importorskip("aiohttp")
    import ssl

    from ensemble.models import _http

    real = ssl.get_default_verify_paths()
    store = real._replace(openssl_cafile=self_signed[0], openssl_capath="/nonexistent")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: store)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    _http._tls_context.cache_clear()
    outcomes = []
    try:
        with LoopbackServer(tls=self_signed) as tls_server:
            tls_server.default = Reply(text="over TLS")
            for kind in (provider, f"{provider}/aiohttp"):
                model = make(kind, tls_server)
                try:
                    outcomes.append((await call(model, Request(prompt="x"))).text)
                except errors.ProviderConnectionError as exc:
                    assert "certificate" in str(exc).lower()
                    outcomes.append("refused")
            library = _http.sdk_target(model._make_client(), "x").tls  # type: ignore[attr-defined]
    finally:
        _http._tls_context.cache_clear()
    assert outcomes[0] == outcomes[1]
    if library == "httpx2":  # current SDKs: the system store, so this CA is trusted
        assert outcomes == ["over TLS", "over TLS"]
    else:  # older SDKs: certifi's bundle, which does not hold it
        assert outcomes == ["refused", "refused"]
