"""The runner: retries, deadline, quorum, limits and keys, against the real loopback server."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import socket
import time
import warnings
from typing import Any

import numpy as np
import pytest
from loopback import LoopbackServer, Reply

import ensemble
from ensemble import Ensemble, RetryPolicy, ScriptedModel, errors
from ensemble._retry import CallState
from ensemble.models.anthropic import AnthropicModel
from ensemble.models.base import Model, Request
from ensemble.models.openai import OpenAIModel

CANARY = "sk-CANARY-0b7e2d19c4a8f635ee42"
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=5.0)


def oai(server: LoopbackServer, name: str, **kw: Any) -> OpenAIModel:
    kw.setdefault("api_key", CANARY)
    if kw.get("transport") == "aiohttp":
        pytest.importorskip("aiohttp")
    return OpenAIModel(name, base_url=server.openai_url, **kw)


#: The SDK path and the lean aiohttp path, for the tests about connections and cancellation.
TRANSPORTS = pytest.mark.parametrize("transport", ["httpx", "aiohttp"])


def ens(models: list[Model], **kw: Any) -> Ensemble:
    kw.setdefault("repeats", 1)
    kw.setdefault("retry", FAST)
    kw.setdefault("metric", "ngram")
    return Ensemble(models=models, **kw)


async def arun(e: Ensemble, prompt: str = "What is the capital of France?") -> Any:
    async with e:
        return await e.arun(prompt)


async def asample(e: Ensemble, prompt: str = "q") -> tuple[ensemble.Sample, ...]:
    async with e:
        return await e.asample(prompt)


def by_model(result: Any) -> dict[str, ensemble.Sample]:
    return {s.model: s for s in result.samples}


# --- retries ---------------------------------------------------------------------------------


async def test_429_with_retry_after_1_then_success(server: LoopbackServer) -> None:
    server.script("a", Reply(status=429, headers={"Retry-After": "1"}), Reply(text="Paris."))
    result = await arun(ens([oai(server, "a")]))
    (sample,) = result.samples
    assert sample.ok and sample.text == "Paris."
    assert server.count("a") == 2
    gap = server.requests[1].time - server.requests[0].time
    assert 1.0 <= gap < 2.0  # waited what the provider asked, not the tiny backoff
    assert sample.latency is not None and sample.latency >= 1.0


async def test_429_with_retry_after_beyond_the_cap_fails_at_once(server: LoopbackServer) -> None:
    server.script("a", Reply(status=429, headers={"Retry-After": "120"}), Reply(text="never"))
    started = time.monotonic()
    samples = await asample(ens([oai(server, "a")]))
    (sample,) = samples
    assert time.monotonic() - started < 2.0
    assert server.count("a") == 1
    assert sample.error is not None
    assert (sample.error.type, sample.error.status_code, sample.error.attempts) == (
        "RateLimitError",
        429,
        1,
    )


async def test_500_and_503_then_success_takes_three_requests(server: LoopbackServer) -> None:
    server.script("a", Reply(status=500), Reply(status=503), Reply(text="Paris."))
    result = await arun(ens([oai(server, "a")]))
    assert result.samples[0].text == "Paris."
    assert server.count("a") == 3


async def test_retries_stop_at_max_attempts(server: LoopbackServer) -> None:
    server.set_default("a", Reply(status=502))
    samples = await asample(
        ens([oai(server, "a")], retry=FAST.model_copy(update={"max_attempts": 3}))
    )
    assert server.count("a") == 3
    assert samples[0].error is not None and samples[0].error.attempts == 3


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_not_retried(server: LoopbackServer, status: int) -> None:
    server.script("a", Reply(status=status))
    server.set_default("b", Reply(text="fine"))
    result = await arun(ens([oai(server, "a"), oai(server, "b")]))
    assert server.count("a") == 1
    err = by_model(result)["openai:a"].error
    assert err is not None and err.status_code == status and err.attempts == 1
    assert by_model(result)["openai:b"].text == "fine"


async def test_401_stops_every_call_to_that_endpoint(
    server: LoopbackServer, server2: LoopbackServer
) -> None:
    server.script("bad", Reply(status=401))
    server.set_default("x", Reply(text="never sent"))
    server2.set_default("y", Reply(text="Paris is the capital of France."))
    models: list[Model] = [oai(server, "bad"), oai(server, "x"), oai(server2, "y")]
    # one call at a time per endpoint: the 401 arrives before "x" is sent
    e = ens(models, repeats=3, max_per_provider=1)
    result = await arun(e)
    assert server.count("bad") == 1  # the 401 stopped its own other repeats too
    assert server.count("x") == 0
    assert server2.count("y") == 3
    refused = [s for s in result.samples if s.model in ("openai:bad", "openai:x")]
    assert len(refused) == 6
    first = result.samples[0]
    assert (first.model, first.repeat) == ("openai:bad", 0)
    assert first.error is not None and first.error.attempts == 1
    for s in refused:
        assert s.error is not None and s.error.type == "AuthenticationError"
        assert s.error.status_code == 401
    not_called = [s for s in refused if s.error and s.error.attempts == 0]
    assert len(not_called) == 5
    assert all("not called" in (s.error.message if s.error else "") for s in not_called)
    assert result.text == "Paris is the capital of France."


async def test_connection_refused_is_retried_then_recorded() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = OpenAIModel("gone", base_url=f"http://127.0.0.1:{port}/v1", api_key=CANARY)
    samples = await asample(ens([model], retry=FAST.model_copy(update={"max_attempts": 2})))
    err = samples[0].error
    assert err is not None
    assert (err.type, err.attempts, err.status_code) == ("ProviderConnectionError", 2, None)


@TRANSPORTS
async def test_server_that_never_answers_hits_the_attempt_timeout(
    server: LoopbackServer, transport: str
) -> None:
    server.set_default("mute", Reply(hang=True))
    e = ens(
        [oai(server, "mute", transport=transport)],
        timeout=0.4,
        retry=FAST.model_copy(update={"max_attempts": 2}),
    )
    started = time.monotonic()
    samples = await asample(e)
    elapsed = time.monotonic() - started
    err = samples[0].error
    assert err is not None
    assert (err.type, err.attempts) == ("ProviderTimeoutError", 2)
    assert "0.4 s" in err.message
    assert server.count("mute") == 2
    assert 0.8 <= elapsed < 2.5
    for _ in range(40):  # both abandoned connections were closed by the client
        if server.client_gone == 2:
            break
        await asyncio.sleep(0.05)
    assert server.client_gone == 2


@TRANSPORTS
async def test_deadline_cancels_a_30s_straggler_and_votes_on_the_rest(
    server: LoopbackServer, transport: str
) -> None:
    server.set_default("slow", Reply(text="late", delay=30.0))
    for name in ("a", "b", "c"):
        server.set_default(name, Reply(text="Paris is the capital of France."))
    models: list[Model] = [oai(server, n, transport=transport) for n in ("a", "b", "c", "slow")]
    e = ens(models, deadline=5.0, timeout=60.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.monotonic()
        result = await arun(e)
        elapsed = time.monotonic() - started
        gc.collect()
    assert 4.9 <= elapsed < 6.5  # about the deadline, not the 30 s straggler
    slow = by_model(result)["openai:slow"]
    assert slow.error is not None and slow.error.type == "DeadlineExceededError"
    assert slow.error.attempts == 1
    assert result.text == "Paris is the capital of France."
    assert [s.ok for s in result.samples] == [True, True, True, False]
    assert all(3 not in span.supporters for span in result.spans)  # a failure never votes
    assert [str(w.message) for w in caught] == []
    for _ in range(40):
        if server.client_gone == 1:
            break
        await asyncio.sleep(0.05)
    assert server.client_gone == 1  # the straggler's connection was closed


async def test_non_json_200_becomes_an_invalid_response_sample(server: LoopbackServer) -> None:
    server.script("a", Reply(body=b"<html>oops</html>"))
    server.set_default("b", Reply(text="ok then"))
    result = await arun(ens([oai(server, "a"), oai(server, "b")]))
    err = by_model(result)["openai:a"].error
    assert err is not None and err.type == "InvalidResponseError" and err.attempts == 1
    assert server.count("a") == 1
    assert result.text == "ok then"


# --- quorum ----------------------------------------------------------------------------------


def five_members(server: LoopbackServer) -> list[Model]:
    server.set_default("m1", Reply(text="The capital of France is Paris."))
    server.set_default("m2", Reply(text="Paris is the capital of France."))
    server.set_default("m3", Reply(text="The capital of France is Paris."))
    server.set_default("m4", Reply(status=400))
    server.set_default("m5", Reply(body=b"not json"))
    return [oai(server, f"m{i}") for i in range(1, 6)]


async def test_two_failures_of_five_with_quorum_3_vote_on_three(server: LoopbackServer) -> None:
    result = await arun(ens(five_members(server), quorum=3))
    assert len(result.samples) == 5
    assert [s.ok for s in result.samples] == [True, True, True, False, False]
    assert result.candidate in (0, 1, 2)
    assert result.text in {s.text for s in result.samples[:3]}
    for span in result.spans:
        assert span.support[3] is None and span.support[4] is None
        assert not {3, 4} & set(span.supporters)
    assert server.count() == 5


async def test_two_failures_of_five_with_quorum_4_raise_and_keep_samples(
    server: LoopbackServer,
) -> None:
    with pytest.raises(errors.QuorumError) as info:
        await arun(ens(five_members(server), quorum=4))
    err = info.value
    assert err.quorum == 4
    assert len(err.samples) == 5 and sum(s.ok for s in err.samples) == 3
    assert [s.model for s in err.failures] == ["openai:m4", "openai:m5"]
    message = str(err)
    assert "3 successful sample(s), quorum is 4" in message
    assert "openai:m4#0: ProviderHTTPError: HTTP 400" in message
    assert "openai:m5#0: InvalidResponseError" in message


async def test_empty_answers_abstain_so_they_never_count_toward_the_quorum() -> None:
    members: list[Model] = [
        ScriptedModel("", name="a"),
        ScriptedModel(" \n\t", name="b"),
        ScriptedModel("Paris.", name="c"),
    ]
    with pytest.raises(errors.QuorumError) as info:
        await arun(ens(members, quorum=2))
    err = info.value
    assert (err.voters, err.empty, err.quorum) == (1, 2, 2)
    assert [s.text for s in err.samples] == ["", " \n\t", "Paris."]  # all kept
    message = str(err)
    assert message.startswith("1 voting sample(s), quorum is 2 (3 successful, 2 of them empty")
    assert "a#0: empty answer (abstains)" in message and "b#0: empty answer" in message
    assert err.summary in message and "failures" not in err.summary


async def test_a_run_of_only_empty_answers_is_below_the_default_quorum() -> None:
    with pytest.raises(errors.QuorumError) as info:
        await arun(ens([ScriptedModel("", name="a"), ScriptedModel("  ", name="b")]))
    assert (info.value.voters, info.value.empty, info.value.quorum) == (0, 2, 1)
    assert len(info.value.samples) == 2 and not info.value.failures


async def test_empty_answers_still_abstain_when_the_quorum_is_met_or_unchecked() -> None:
    e = ens([ScriptedModel("Paris.", "", name="a"), ScriptedModel("Paris.", name="b")])
    async with e:
        result = await e.avote(
            [*await e.asample("q"), ensemble.Sample(text="", model="a", repeat=1)]
        )
        assert result.text == "Paris." and len(result.samples) == 3
        assert any(a.kind == "empty_samples" for a in result.alerts)
        # a partial vote (``check_quorum=False``, as the escalation's rounds) on empty answers
        # only says so in its alerts instead of raising; no successful sample still raises
        empty = (ensemble.Sample(text=" ", model="a", repeat=0),)
        assert (await e.avote(empty, check_quorum=False)).alerts[0].kind == "all_empty"
        failed = ensemble.Sample(
            model="a", repeat=0, error=ensemble.SampleError(type="ProviderError", message="x")
        )
        with pytest.raises(errors.QuorumError):
            await e.avote([failed], check_quorum=False)


# --- counts, seeds, temperatures, limits -------------------------------------------------------


async def test_exact_request_counts_and_distinct_seeds(server: LoopbackServer) -> None:
    models: list[Model] = [oai(server, n) for n in ("a", "b", "c")]
    result = await arun(ens(models, repeats=4, seed=100))
    assert server.count() == 12
    assert server.connections <= 12
    for name in ("a", "b", "c"):
        seeds = sorted(r.body["seed"] for r in server.requests if r.model == name)  # type: ignore[index]
        assert seeds == [100, 101, 102, 103]
    assert [(s.model, s.repeat, s.seed) for s in result.samples[:4]] == [
        ("openai:a", r, 100 + r) for r in range(4)
    ]
    s0 = result.samples[0]
    assert s0.usage is not None and s0.finish_reason == "stop" and s0.request_id
    assert s0.latency is not None and s0.latency > 0


async def test_seed_is_drawn_per_run_and_omitted_where_unsupported(
    server: LoopbackServer,
) -> None:
    anth = AnthropicModel("claude", base_url=server.anthropic_url, api_key=CANARY)
    e = ens([oai(server, "a"), anth], repeats=3)
    async with e:
        samples = await e.asample("q")
    seeds = [s.seed for s in samples if s.model == "openai:a"]
    assert None not in seeds and len(set(seeds)) == 3
    assert [s.seed for s in samples if s.model == "anthropic:claude"] == [None] * 3
    assert all("seed" not in (r.body or {}) for r in server.requests if r.model == "claude")


async def test_temperature_per_model(server: LoopbackServer) -> None:
    models: list[Model] = [
        oai(server, "a"),
        oai(server, "b", temperature=0.2),
        oai(server, "c"),
    ]
    async with ens(models, temperature={"openai:a": 0.9}) as e:
        samples = await e.asample("q")
    sent = {r.model: (r.body or {}).get("temperature") for r in server.requests}
    assert sent == {"a": 0.9, "b": 0.2, "c": None}
    assert [s.temperature for s in samples] == [0.9, 0.2, None]
    async with ens(models, temperature=0.5) as e:
        await e.asample("q")
    assert {(r.body or {}).get("temperature") for r in server.requests[3:]} == {0.5}


async def test_concurrency_is_bounded_per_provider_and_overall(
    server: LoopbackServer,
) -> None:
    server.default = Reply(text="x", delay=0.4)
    other = server.openai_url.replace("127.0.0.1", "localhost")  # same server, other endpoint
    models: list[Model] = [
        oai(server, "a"),
        oai(server, "b"),
        OpenAIModel("c", base_url=other, api_key=CANARY),
    ]
    async with ens(models, repeats=4, max_per_provider=2, max_concurrency=3) as e:
        await e.asample("q")
    assert server.count() == 12
    assert server.max_in_flight == 3  # the overall bound, reached (2 + 2 would be allowed)
    hosts = [r.headers["host"].split(":")[0] for r in server.requests]
    assert hosts.count("localhost") == 4


async def test_concurrency_is_bounded_per_provider(server: LoopbackServer) -> None:
    server.default = Reply(text="x", delay=0.3)
    models: list[Model] = [oai(server, "a"), oai(server, "b")]
    async with ens(models, repeats=3, max_per_provider=2) as e:
        samples = await e.asample("q")
    assert all(s.ok for s in samples)
    assert server.max_in_flight == 2


async def test_fan_out_is_concurrent(server: LoopbackServer) -> None:
    server.default = Reply(text="x", delay=0.3)
    models: list[Model] = [oai(server, f"m{i}") for i in range(4)]
    async with ens(models, repeats=4, max_per_provider=16) as e:
        await e.asample("warm-up")  # clients, connections and imports are ready
        started = time.monotonic()
        samples = await e.asample("q")
        elapsed = time.monotonic() - started
    assert all(s.ok for s in samples) and len(samples) == 16
    # 16 calls of 0.3 s: one by one 4.8 s; two at a time 2.4 s; all at once ~0.3 s
    assert elapsed < 2.0
    assert server.max_in_flight >= 12


async def test_asample_rounds_and_mapping(server: LoopbackServer) -> None:
    models: list[Model] = [oai(server, "a"), oai(server, "b")]
    async with ens(models, repeats=5, seed=7) as e:
        first = await e.asample("q", repeats={"openai:a": 2})
        more = await e.asample("q", repeats=1, start_repeat=2, models=[models[1]])
        none = await e.asample("q", repeats=0)
    assert [(s.model, s.repeat, s.seed) for s in first] == [("openai:a", 0, 7), ("openai:a", 1, 8)]
    assert [(s.model, s.repeat, s.seed) for s in more] == [("openai:b", 2, 9)]
    assert none == ()
    assert server.count() == 3
    with pytest.raises(errors.ConfigurationError):
        await e.asample("q", repeats={"openai:zzz": 1})


# --- keys ------------------------------------------------------------------------------------


async def test_canary_key_is_absent_everywhere(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f'{{"error": {{"message": "bad key {CANARY}"}}}}'.encode()
    server.set_default("good", Reply(text="Paris."))
    server.set_default("bad", Reply(status=403, body=echo))
    server.set_default("odd", Reply(body=echo))
    good, bad, odd = oai(server, "good"), oai(server2 := server, "bad"), oai(server2, "odd")
    e = ens([good], repeats=2)
    texts = [repr(e), repr(good)]
    result = await arun(e)
    texts += [result.model_dump_json(), repr(result)]
    with pytest.raises(errors.QuorumError) as info:
        await arun(ens([bad, odd], quorum=1))
    texts += [str(info.value), repr(info.value)]
    texts += [s.model_dump_json() for s in info.value.samples]
    texts.append(caplog.text)
    assert "attempt 1 refused" in caplog.text  # the DEBUG log was captured
    for text in texts:
        assert CANARY not in text


# --- sync wrapper, validation, policy ----------------------------------------------------------


@TRANSPORTS
def test_run_is_sync_and_releases_connections(server: LoopbackServer, transport: str) -> None:
    server.default = Reply(text="Paris is the capital.")
    e = ens(
        [oai(server, "a", transport=transport), oai(server, "b", transport=transport)], repeats=2
    )
    first = e.run("q")
    second = e.run("q")  # a fresh loop each time works
    assert first.text == second.text == "Paris is the capital."
    assert server.count() == 8


async def test_run_inside_a_running_loop_says_use_arun() -> None:
    e = ens([ScriptedModel(default="x")])
    with pytest.raises(errors.UsageError, match="arun"):
        e.run("q")


class WrongShape(ensemble.Metric):
    """A custom metric whose support has the wrong shape, so every vote with it fails."""

    name = "wrong-shape"

    def support(self, text: str, spans: Any, samples: Any) -> Any:
        return np.zeros((len(spans) + 1, len(samples)))


def test_a_vote_that_fails_raises_a_run_error_that_keeps_the_samples() -> None:
    model = ScriptedModel("Paris.", "Paris, France.", name="fake")
    with pytest.raises(errors.RunError) as info:
        ens([model], repeats=2, metric=WrongShape()).run("q")
    error = info.value
    assert not isinstance(error, errors.QuorumError) and error.index is None
    assert isinstance(error.__cause__, errors.MetricOutputError)
    assert str(error) == f"MetricOutputError: {error.__cause__}"
    assert "'wrong-shape'" in str(error)
    # Paid for, so kept: both samples, with their text.
    assert sorted(s.text or "" for s in error.samples) == ["Paris, France.", "Paris."]
    assert len(model.requests) == 2


async def test_a_quorum_error_is_raised_as_it_is() -> None:
    model = ScriptedModel("", "", name="fake")
    with pytest.raises(errors.QuorumError) as info:
        await arun(ens([model], repeats=2, metric=WrongShape()))
    assert info.value.__cause__ is None and len(info.value.samples) == 2


def test_scripted_model_through_the_runner() -> None:
    rate = errors.RateLimitError("slow", model_name="fake", status_code=429, retry_after=0.0)
    model = ScriptedModel("Paris.", rate, "Paris.", "Lyon.", name="fake")
    result = ens([model], repeats=3).run("q")
    assert len(model.requests) == 4  # the 429 was retried once
    # repeat 1 hit the 429; repeat 2 took the next answer meanwhile; the retry got the last
    assert [s.text for s in result.samples] == ["Paris.", "Lyon.", "Paris."]
    assert result.text == "Paris."
    assert len({r.seed for r in model.requests}) == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"repeats": 0},
        {"repeats": 2.5},
        {"quorum": 0},
        {"quorum": 7},
        {"timeout": 0},
        {"deadline": -1},
        {"timeout": float("nan")},
        {"temperature": -0.1},
        {"temperature": {"nobody": 0.3}},
        {"max_concurrency": 0},
        {"max_per_provider": 0},
        {"retry": {"max_attempts": 2}},
        {"seed": "7"},
        {"max_tokens": 0},
        {"models": []},
        {"models": "openai:gpt"},
    ],
)
def test_invalid_settings_raise_configuration_error(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"models": [ScriptedModel(name="a"), ScriptedModel(name="b")]}
    base.update(kwargs)
    base.setdefault("repeats", 3)
    with pytest.raises(errors.ConfigurationError):
        Ensemble(**base)


def test_duplicate_names_and_unknown_metric() -> None:
    with pytest.raises(errors.ConfigurationError, match="distinct"):
        Ensemble(models=[ScriptedModel(name="a"), ScriptedModel(name="a")])
    with pytest.raises(errors.UnknownNameError):
        Ensemble(models=[ScriptedModel()], metric="nope")
    e = Ensemble(models=[ScriptedModel()])
    assert e.quorum == 1 and e.repeats == 5


def test_retry_policy_decisions() -> None:
    rng = random.Random(0)
    p = RetryPolicy(base_delay=1.0, max_delay=4.0, max_retry_after=10.0)
    name = {"model_name": "m"}
    http = errors.ProviderHTTPError
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0), (9, 4.0)]:
        waits = [p.backoff(retry, rng) for _ in range(200)]
        assert min(waits) >= 0.0 and max(waits) <= ceiling
        assert max(waits) > ceiling * 0.8  # full jitter spans the range
    assert RetryPolicy(jitter=False, base_delay=1.0).backoff(3, rng) == 4.0
    for status in (400, 401, 403, 404, 422):
        assert p.delay(http("x", status_code=status, **name), 1, rng) == "not retryable"
    for status in (408, 409, 429, 500, 502, 503, 504):
        assert isinstance(p.delay(http("x", status_code=status, **name), 1, rng), float)
    assert isinstance(p.delay(errors.ProviderConnectionError("x", **name), 1, rng), float)
    assert isinstance(p.delay(errors.ProviderTimeoutError("x", **name), 1, rng), float)
    assert p.delay(errors.InvalidResponseError("x", **name), 1, rng) == "not retryable"
    assert p.delay(ValueError("bug"), 1, rng) == "not retryable"
    late = errors.RateLimitError("x", status_code=429, retry_after=9.0, **name)
    assert p.delay(late, 1, rng) >= 9.0  # type: ignore[operator]
    too_late = errors.RateLimitError("x", status_code=429, retry_after=11.0, **name)
    assert "max_retry_after" in str(p.delay(too_late, 1, rng))
    assert "gave up" in str(p.delay(errors.ProviderTimeoutError("x", **name), 4, rng))
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=5.0, max_delay=1.0)


async def test_a_retry_after_refusal_is_recognised_by_its_class_not_its_text() -> None:
    from ensemble._retry import RetryAfterRefusal, call_with_retries

    policy = RetryPolicy(base_delay=0.0, max_delay=0.0, max_retry_after=30.0)
    rng = random.Random(0)
    late = errors.RateLimitError("slow", model_name="f", status_code=429, retry_after=120.0)
    assert isinstance(policy.delay(late, 1, rng), RetryAfterRefusal)
    assert not isinstance(policy.delay(late, 4, rng), RetryAfterRefusal)  # gave up: a str
    # a provider whose own message already reads like the refusal is still annotated, once,
    # even when the same instance is raised again (a test double)
    said = "Retry-After 120 s exceeds the cap of 30 s (max_retry_after)"
    echo = errors.RateLimitError(said, model_name="f", status_code=429, retry_after=120.0)
    model = ScriptedModel(echo, echo, name="f")
    for _ in range(2):
        out = await call_with_retries(
            model, Request(prompt="q"), policy=policy, timeout=None, state=CallState()
        )
        assert out.error is echo and out.attempts == 1
    assert echo.not_retried == said
    assert str(echo) == f"f: HTTP 429: {said}; not retried: {said}"
    # another retryable error that is given up on is not marked
    flaky = errors.ProviderConnectionError("reset", model_name="g")
    out = await call_with_retries(
        ScriptedModel(flaky, name="g"),
        Request(prompt="q"),
        policy=RetryPolicy(max_attempts=1),
        timeout=None,
        state=CallState(),
    )
    assert out.error is flaky and flaky.not_retried is None and str(flaky) == "g: reset"


async def test_retry_that_would_pass_the_deadline_is_not_started() -> None:
    rate = errors.RateLimitError("wait", model_name="f", status_code=429, retry_after=3.0)
    model = ScriptedModel(rate, "never", name="f")
    e = ens([model], deadline=1.0)
    started = time.monotonic()
    samples = await e.asample("q")
    assert time.monotonic() - started < 0.5
    assert len(model.requests) == 1
    assert samples[0].error is not None and samples[0].error.type == "RateLimitError"


async def test_a_misbehaving_adapter_does_not_sink_the_run() -> None:
    class Broken(Model):
        provider = "broken"

        def __init__(self) -> None:
            self.name = "broken"

        async def agenerate(self, request: ensemble.Request) -> ensemble.Completion:
            raise KeyError("bug")

    class Sloppy(Model):
        provider = "sloppy"

        def __init__(self) -> None:
            self.name = "sloppy"

        async def agenerate(self, request: ensemble.Request) -> ensemble.Completion:
            return "a bare string"  # type: ignore[return-value]

    e = ens([Broken(), Sloppy(), ScriptedModel(default="fine")])
    result = await e.arun("q")
    assert result.text == "fine"
    err = by_model(result)["broken"].error
    assert err is not None and err.type == "KeyError" and err.attempts == 1
    err = by_model(result)["sloppy"].error
    assert err is not None and err.type == "InvalidResponseError" and "str" in err.message


def test_call_state_creates_semaphores_lazily() -> None:
    state = CallState(max_concurrency=2, max_per_endpoint=1)
    assert state._all is None  # made on the loop that uses it, not at construction

    async def use() -> None:
        async with state.slot("e"):
            pass

    asyncio.run(use())
    assert state._all is not None


def test_network_outside_loopback_is_blocked() -> None:
    with pytest.raises(OSError), socket.create_connection(("10.255.255.1", 80), timeout=0.5):
        pass
    with pytest.raises(OSError):
        socket.getaddrinfo("example.com", 443)


def test_function_models_example_runs_offline() -> None:
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "function_models.py"
    proc = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    out = proc.stdout
    assert "consensus: Canberra is the capital of Australia." in out
    assert "6 of 9 samples came back" in out
    assert "'busy' was called 4 times" in out
    assert out.count("failed: broken#") == 3


async def test_cancelling_the_run_cancels_every_call(server: LoopbackServer) -> None:
    server.default = Reply(text="late", delay=30.0)
    e = ens([oai(server, "a"), oai(server, "b")], repeats=2)
    async with e:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(e.arun("q"), 0.5)
    for _ in range(40):
        if server.client_gone == 4:
            break
        await asyncio.sleep(0.05)
    assert server.client_gone == 4  # all four connections were closed by the client


async def test_sync_entry_points_refuse_a_running_loop_and_name_the_async_twin() -> None:
    model = ScriptedModel(name="s")
    model.enqueue("unused")
    ens = Ensemble(models=[model], repeats=1)
    with pytest.raises(errors.UsageError, match=r"await ensemble\.arun\(prompt\)"):
        ens.run("question")
    with pytest.raises(errors.UsageError, match=r"await ensemble\.aclose\(\)"):
        ens.close()
    assert model.requests == []  # nothing was sent
