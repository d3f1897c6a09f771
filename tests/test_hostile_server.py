"""The HTTP adapters against a hostile or unusual loopback server, on all four paths.

Every test runs on OpenAIModel and AnthropicModel, each over the SDK's default transport and
over ``transport="aiohttp"`` (the lean path), and counts the requests the server saw.
"""

from __future__ import annotations

import asyncio
import time
import traceback
import tracemalloc
from typing import Any

import pytest
from loopback import LoopbackServer, Recorded, Reply

import ensemble
from ensemble import errors
from ensemble._retry import CallState, RetryPolicy, call_with_retries
from ensemble.models.anthropic import AnthropicModel
from ensemble.models.base import Model, Request
from ensemble.models.openai import OpenAIModel

CANARY = "sk-CANARY-hostile-5e0c2a9b7d14f3"
KINDS = ["openai", "anthropic", "openai/aiohttp", "anthropic/aiohttp"]
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "ENSEMBLE_ALLOW_METADATA_HOSTS",
    ):
        monkeypatch.delenv(var, raising=False)


def make(kind: str, server: LoopbackServer | None, model: str = "m", **kw: Any) -> Model:
    provider, _, transport = kind.partition("/")
    if transport:
        pytest.importorskip(transport)
        kw["transport"] = transport
    kw.setdefault("api_key", CANARY)
    if server is not None:
        kw.setdefault("base_url", server.openai_url if provider == "openai" else server.url)
    cls = OpenAIModel if provider == "openai" else AnthropicModel
    return cls(model, **kw)


async def call(model: Model, request: Request | None = None) -> Any:
    async with model:
        return await model.agenerate(request or Request(prompt="x"))


async def with_retries(model: Model, policy: RetryPolicy | None = None) -> Any:
    policy = policy or RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
    async with model:
        return await call_with_retries(
            model, Request(prompt="x"), policy=policy, timeout=None, state=CallState()
        )


# --- 1. x-should-retry ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_should_retry_false_on_a_500_is_sent_once(server: LoopbackServer, kind: str) -> None:
    server.set_default("m", Reply(status=500, headers={"x-should-retry": "false"}))
    out = await with_retries(make(kind, server))
    assert isinstance(out.error, errors.ProviderHTTPError)
    assert out.error.status_code == 500 and out.error.retryable is False
    assert "x-should-retry: false" in str(out.error)
    assert (out.attempts, server.count()) == (1, 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_500_without_the_header_is_retried(server: LoopbackServer, kind: str) -> None:
    server.set_default("m", Reply(status=500))
    out = await with_retries(make(kind, server))
    assert (out.attempts, server.count()) == (4, 4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_should_retry_true_retries_a_non_retryable_status(
    server: LoopbackServer, kind: str, status: int
) -> None:
    server.script("m", *[Reply(status=status, headers={"X-Should-Retry": "true"})] * 2)
    server.set_default("m", Reply(text="third time"))
    out = await with_retries(make(kind, server))
    assert out.completion is not None and out.completion.text == "third time"
    assert (out.attempts, server.count()) == (3, 3)


@pytest.mark.parametrize("kind", KINDS)
async def test_should_retry_true_does_not_retry_a_refused_key(
    server: LoopbackServer, kind: str
) -> None:
    server.set_default("m", Reply(status=401, headers={"x-should-retry": "true"}))
    out = await with_retries(make(kind, server))
    assert isinstance(out.error, errors.AuthenticationError)
    assert server.count() == 1


# --- 2. the base URL from the environment ----------------------------------------------------


def _env_var(kind: str) -> tuple[str, str]:
    return (
        ("OPENAI_BASE_URL", "OPENAI_API_KEY")
        if kind.startswith("openai")
        else ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
    )


def _sent_key(rec: Recorded) -> str:
    return rec.headers.get("x-api-key") or rec.headers.get("authorization", "")


@pytest.mark.parametrize("kind", KINDS)
async def test_base_url_from_the_environment_is_where_requests_go_and_what_endpoint_says(
    server: LoopbackServer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_var, key_var = _env_var(kind)
    url = server.openai_url if kind.startswith("openai") else server.url
    monkeypatch.setenv(url_var, url)
    monkeypatch.setenv(key_var, CANARY)
    model = make(kind, None, api_key=None)
    provider = kind.partition("/")[0]
    assert model.base_url == url  # type: ignore[attr-defined]
    assert model.base_url_source == url_var  # type: ignore[attr-defined]
    assert model.endpoint == f"{provider}@{url}"
    ens = ensemble.Ensemble(models=[model], repeats=2, metric="vote", quorum=1)
    result = await ens.arun("x")
    await ens.aclose()
    assert server.count() == 2  # the requests went where the variable says
    assert [s.endpoint for s in result.samples] == [f"{provider}@{url}"] * 2
    # both the URL and the key come from the environment: the key goes there (documented)
    assert all(CANARY in _sent_key(r) for r in server.requests)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_base_url_argument_wins_and_never_gets_the_environment_key(
    server: LoopbackServer, server2: LoopbackServer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_var, key_var = _env_var(kind)
    monkeypatch.setenv(url_var, server2.openai_url if kind.startswith("openai") else server2.url)
    monkeypatch.setenv(key_var, CANARY)
    model = make(kind, server, api_key=None)
    assert model.base_url_source == "argument"  # type: ignore[attr-defined]
    await call(model)
    assert (server.count(), server2.count()) == (1, 0)
    assert CANARY not in _sent_key(server.requests[0])
    assert "not-needed" in _sent_key(server.requests[0])


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_without_the_variable_the_official_url_is_the_endpoint(kind: str) -> None:
    model = make(kind, None)
    official = "https://api.openai.com/v1" if kind == "openai" else "https://api.anthropic.com"
    assert (model.base_url, model.base_url_source) == (official, "default")  # type: ignore[attr-defined]
    assert model.endpoint == f"{kind}@{official}"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_endpoint_never_shows_a_query_string(kind: str) -> None:
    model = make(kind, None, base_url=f"https://proxy.example.com/v1?api-key={CANARY}#frag")
    assert model.endpoint == f"{kind}@https://proxy.example.com/v1"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("bad", ["ftp://x/v1", "not a url", "http://169.254.169.254/v1"])
def test_a_bad_base_url_in_the_environment_is_refused_naming_the_variable(
    kind: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url_var, _ = _env_var(kind)
    monkeypatch.setenv(url_var, bad)
    with pytest.raises(errors.ConfigurationError, match=url_var):
        make(kind, None)


# --- 3a/3b. big answers and the response size limit -----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_two_8_mb_one_line_answers_arrive_intact_under_a_raised_limit(
    server: LoopbackServer, kind: str
) -> None:
    texts = ["A" * 8_000_000, "B" * 8_000_000]
    server.script("m", *(Reply(text=t) for t in texts))
    model = make(kind, server, max_response_bytes=16 * MiB)
    async with model:
        outs = await asyncio.gather(*(model.agenerate(Request(prompt="x")) for _ in texts))
    assert sorted(o.text for o in outs) == texts
    assert server.count() == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_an_8_mb_answer_is_refused_by_the_default_limit(
    server: LoopbackServer, kind: str
) -> None:
    server.script("m", Reply(text="A" * 8_000_000))
    with pytest.raises(errors.ResponseTooLargeError) as info:
        await call(make(kind, server))
    assert isinstance(info.value, errors.InvalidResponseError) and not info.value.retryable
    assert info.value.limit == 4 * MiB
    assert "max_response_bytes=4194304" in str(info.value)
    assert server.count() == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_50_mb_body_is_refused_without_reading_it(
    server: LoopbackServer, kind: str, chunked: bool
) -> None:
    total = 50 * MiB
    server.script("m", Reply(stream_bytes=total, chunked=chunked))
    model = make(kind, server, max_response_bytes=1 * MiB)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(errors.ResponseTooLargeError) as info:
            await call(model)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for _ in range(100):  # let the server notice that the client went away
        if server.client_gone:
            break
        await asyncio.sleep(0.05)
    assert ("Content-Length is" in str(info.value)) is not chunked
    assert elapsed < 5.0
    assert peak < 24 * MiB  # the client never held the body
    assert server.client_gone == 1  # the client hung up ...
    assert server.body_bytes_sent < total // 2  # ... long before the end of the body
    assert server.count() == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_the_limit_is_configurable_and_can_be_lifted(
    server: LoopbackServer, kind: str
) -> None:
    server.script("m", Reply(text="w " * 2000), Reply(text="w " * 2000))
    with pytest.raises(errors.ResponseTooLargeError):
        await call(make(kind, server, max_response_bytes=1000))
    assert (await call(make(kind, server, max_response_bytes=None))).text == "w " * 2000


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4MB"])
def test_max_response_bytes_is_validated(kind: str, bad: Any) -> None:
    with pytest.raises(errors.ConfigurationError, match="max_response_bytes"):
        make(kind, None, max_response_bytes=bad)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_numeric_settings_share_the_library_checks(kind: str) -> None:
    cls = "OpenAIModel" if kind == "openai" else "AnthropicModel"
    cases: list[tuple[str, Any, str]] = [
        ("max_response_bytes", 0, "must be an integer >= 1, not 0"),
        ("max_response_bytes", 1.5, "must be an integer, not 1.5"),
        ("timeout", 0, "must be a positive number, not 0"),
        ("timeout", float("inf"), "must be a finite number, not inf"),  # was accepted
        ("timeout", True, "must be a number, not True"),
        ("temperature", "hot", "must be a number, not 'hot'"),  # were all accepted
        ("temperature", -0.5, "must lie in [0, inf], not -0.5"),
        ("temperature", float("nan"), "must be a finite number, not nan"),
        ("temperature", True, "must be a number, not True"),
    ]
    for field, bad, says in cases:
        with pytest.raises(errors.ConfigurationError) as info:
            make(kind, None, base_url="http://127.0.0.1:9", **{field: bad})
        assert str(info.value) == f"{cls}: {field} {says}"
    model = make(kind, None, base_url="http://127.0.0.1:9", timeout=3, temperature=1)
    assert model.timeout == 3.0 and isinstance(model.timeout, float)
    assert model.temperature == 1.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_huge_error_body_is_not_read_in_full(
    server: LoopbackServer, kind: str, chunked: bool
) -> None:
    total = 50 * MiB
    server.script("m", Reply(status=503, stream_bytes=total, chunked=chunked))
    tracemalloc.start()
    try:
        with pytest.raises(errors.ProviderHTTPError) as info:
            await call(make(kind, server))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for _ in range(100):
        if server.client_gone:
            break
        await asyncio.sleep(0.05)
    assert info.value.status_code == 503 and info.value.retryable  # the status is kept
    assert len(info.value.body or "") <= 500
    assert peak < 24 * MiB
    assert server.client_gone == 1
    assert server.body_bytes_sent < total // 2
    assert server.count() == 1


# --- 3c. the adapter's timeout bounds the whole attempt ----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_bounds_the_whole_attempt_against_a_dripping_server(
    server: LoopbackServer, kind: str
) -> None:
    server.script("m", Reply(text="slow but steady", drip=0.8))
    model = make(kind, server, timeout=2)
    started = time.monotonic()
    with pytest.raises(errors.ProviderTimeoutError) as info:
        model.generate(Request(prompt="x"))
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 4.0
    assert "timeout=2 s" in str(info.value)
    assert info.value.retryable
    assert server.body_bytes_sent >= 1  # the body had started to arrive
    assert server.count() == 1


# --- 3d. no text: one rule for both adapters ---------------------------------------------------

OPENAI_NO_TEXT = [
    {"role": "assistant", "content": None},
    {"role": "assistant", "content": None, "refusal": "I can't help with that."},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function"}]},
]
ANTHROPIC_NO_TEXT: list[Any] = [
    [],
    None,
    [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
]


def _no_text_body(kind: str, variant: int) -> bytes:
    import json

    if kind.startswith("openai"):
        data: dict[str, Any] = {
            "id": "c1",
            "model": "m",
            "choices": [{"index": 0, "message": OPENAI_NO_TEXT[variant], "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 0},
        }
    else:
        data = {
            "id": "msg_1",
            "type": "message",
            "model": "m",
            "content": ANTHROPIC_NO_TEXT[variant],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 0},
        }
    return json.dumps(data).encode()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", [0, 1, 2], ids=["null-or-empty", "refusal-or-null", "tools"])
async def test_an_answer_without_text_is_an_empty_completion_on_both_adapters(
    server: LoopbackServer, kind: str, variant: int
) -> None:
    server.script(
        "m", Reply(body=_no_text_body(kind, variant), headers={"Content-Type": "application/json"})
    )
    out = await call(make(kind, server))
    assert out.text == "" and out.empty
    assert out.usage == ensemble.Usage(input_tokens=5, output_tokens=0)  # what was paid is kept
    assert out.finish_reason in ("stop", "end_turn")
    assert server.count() == 1


# --- 3e. no reference to the SDK's exception (which may echo the key) ---------------------------


def _echo_key(rec: Recorded) -> Reply:
    import json

    sent = _sent_key(rec)
    body = {"error": {"message": f"bad key {sent}", "echo": {"headers": rec.headers}}}
    return Reply(status=500, body=json.dumps(body).encode())


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["status", "connection", "timeout"])
async def test_the_raised_error_holds_no_reference_to_the_library_exception(
    server: LoopbackServer, kind: str, fault: str
) -> None:
    import openai

    server.respond_with(_echo_key)
    if fault == "connection":
        server.respond_with(lambda rec: Reply(drop=True))
    elif fault == "timeout":
        server.respond_with(lambda rec: Reply(hang=True))
    model = make(kind, server, timeout=0.5 if fault == "timeout" else None)
    try:
        await call(model)
    except errors.ProviderError as exc:
        err: BaseException = exc
    else:
        pytest.fail("no error")
    chain = _chain(err)
    assert chain == [err]  # neither __cause__ nor __context__
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    text += repr(vars(err)) + str(err)
    assert CANARY not in text and CANARY[-8:] not in text
    tb = err.__traceback__
    while tb is not None:  # no frame of the traceback keeps a library exception alive
        for value in tb.tb_frame.f_locals.values():
            assert not isinstance(value, BaseException) or isinstance(value, errors.EnsembleError)
            assert not isinstance(value, openai.OpenAIError)
        tb = tb.tb_next
    assert server.count() == 1


# --- 3f. why a 429 was not retried ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_429_over_the_retry_after_cap_says_why(server: LoopbackServer, kind: str) -> None:
    server.set_default("m", Reply(status=429, headers={"Retry-After": "120"}))
    policy = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0, max_retry_after=30.0)
    out = await with_retries(make(kind, server), policy)
    assert isinstance(out.error, errors.RateLimitError)
    assert "Retry-After 120 s exceeds the cap of 30 s" in str(out.error)
    assert server.count() == 1
    ens = ensemble.Ensemble(models=[make(kind, server)], repeats=1, retry=policy, quorum=1)
    with pytest.raises(errors.QuorumError) as info:
        await ens.arun("x")
    await ens.aclose()
    (sample,) = info.value.samples
    assert sample.error is not None
    assert "Retry-After 120 s exceeds the cap of 30 s" in sample.error.message
    assert server.count() == 2


# --- 4. cloud-metadata base URLs ----------------------------------------------------------------

METADATA_URLS = [
    "http://169.254.169.254/v1",
    "http://169.254.170.2/v1",  # ECS task metadata
    "http://169.254.0.1",
    "https://[fd00:ec2::254]/latest",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://METADATA.Google.Internal./v1",
    "http://100.100.100.200/latest",
    "http://0xa9fea9fe/v1",
    "http://0XA9FEA9FE/v1",
    "http://2852039166/v1",
    "http://[::ffff:169.254.169.254]/v1",
    "http://[::ffff:a9fe:a9fe]/v1",
    "http://[::169.254.169.254]/v1",
    "http://[64:ff9b::a9fe:a9fe]/v1",
    "http://0251.0376.0251.0376/v1",
    "http://0251.254.169.254/v1",
    "http://0xa9.0xfe.0xa9.0xfe/v1",
    "http://169.254.43518/v1",
    "http://169.16689662/v1",
    "http://169.254.169.254./v1",
    "http://%31%36%39.254.169.254/v1",
    "http://1684300999/v1",  # 100.100.100.199 is fine ...
    "http://1684301000/v1",  # ... 100.100.100.200 is not
]
METADATA_REFUSED = [u for u in METADATA_URLS if "1684300999" not in u]


@pytest.mark.parametrize("cls", [OpenAIModel, AnthropicModel])
@pytest.mark.parametrize("url", METADATA_REFUSED)
def test_cloud_metadata_base_urls_are_refused_at_construction(cls: type, url: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="metadata") as info:
        cls("m", base_url=url, api_key=CANARY)
    assert "allow_metadata_hosts=True" in str(info.value)
    assert CANARY not in str(info.value)


@pytest.mark.parametrize("cls", [OpenAIModel, AnthropicModel])
@pytest.mark.parametrize(
    "url",
    [
        "http://169.253.255.255/v1",
        "http://169.255.0.1/v1",
        "http://100.100.100.201/v1",
        "http://1684300999/v1",
        "http://metadata.example.com/v1",
        "http://google.internal/v1",
        "http://127.0.0.1:8000/v1",
        "http://[::1]:8000/v1",
        "https://api.example.com/v1",
    ],
)
def test_other_hosts_are_accepted(cls: type, url: str) -> None:
    model = cls("m", base_url=url, api_key=CANARY)
    assert model.base_url_source == "argument"


@pytest.mark.parametrize("cls", [OpenAIModel, AnthropicModel])
def test_metadata_hosts_can_be_allowed(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://169.254.169.254/v1"
    assert cls("m", base_url=url, api_key=CANARY, allow_metadata_hosts=True).base_url == url
    with pytest.raises(errors.ConfigurationError):
        cls("m", base_url=url, api_key=CANARY)
    monkeypatch.setenv("ENSEMBLE_ALLOW_METADATA_HOSTS", "1")
    assert cls("m", base_url=url, api_key=CANARY).base_url == url
    with pytest.raises(errors.ConfigurationError):
        cls("m", base_url=url, api_key=CANARY, allow_metadata_hosts="yes")


def test_metadata_host_needs_no_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from ensemble.models._http import metadata_host

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a name was resolved")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    assert metadata_host("metadata.google.internal")
    assert not metadata_host("metadata.internal.example.com")
    assert not metadata_host("api.openai.com")


async def test_the_retry_after_reason_is_added_once_to_a_reused_error() -> None:
    from ensemble.models.scripted import ScriptedModel

    limited = errors.RateLimitError("slow", model_name="s", status_code=429, retry_after=120.0)
    model = ScriptedModel(default=limited, name="s")  # the same instance, raised every call
    policy = RetryPolicy(max_retry_after=30.0)
    for _ in range(3):
        out = await call_with_retries(
            model, Request(prompt="x"), policy=policy, timeout=None, state=CallState()
        )
        assert out.error is limited and out.attempts == 1
    assert str(limited).count("exceeds the cap of 30 s") == 1
