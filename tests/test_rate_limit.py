"""Rate limits and per-endpoint concurrency, shared by every run in the process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from loopback import LoopbackServer, Reply

from ensemble import Ensemble, RateLimit, Request, RetryPolicy, errors
from ensemble._limits import endpoint_limits
from ensemble.models.openai import OpenAIModel

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, max_retry_after=5.0)


def model(server: LoopbackServer, name: str = "a") -> OpenAIModel:
    return OpenAIModel(name, base_url=server.openai_url, api_key="sk-test")


def ens(server: LoopbackServer, name: str = "a", **kw: Any) -> Ensemble:
    kw.setdefault("retry", FAST)
    kw.setdefault("deadline", 60.0)
    return Ensemble(models=[model(server, name)], **kw)


async def both(a: Ensemble, b: Ensemble, prompt: str = "q") -> None:
    async with a, b:
        await asyncio.gather(a.arun(prompt), b.arun(prompt))


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


async def test_ten_per_second_across_two_concurrent_runs(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text="ok"))
    server.set_default("b", Reply(text="ok"))
    models = [model(server, "a"), model(server, "b")]
    # Pacing is at admission; a cold SDK client spends ~0.2 s building itself before its
    # first request reaches the wire (docs/durable.md), so warm both clients first.
    for m in models:
        await m.agenerate(Request(prompt="warm up"))
    server.requests.clear()
    kw: dict[str, Any] = {"repeats": 15, "max_concurrency": 16, "rate_limit": 10.0}
    a, b = (Ensemble(models=[m], retry=FAST, **kw) for m in models)
    started = time.monotonic()
    await both(a, b)
    elapsed = time.monotonic() - started
    times = [r.time for r in server.requests]
    assert len(times) == 30
    assert busiest_second(times) <= 10
    assert elapsed >= 2.8  # 30 requests at 10/s: the limit is shared, not 10/s per run


async def test_without_a_rate_limit_requests_are_not_paced(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text="ok"))
    await both(ens(server, "a", repeats=15), ens(server, "a", repeats=15))
    assert busiest_second([r.time for r in server.requests]) == 30


async def test_per_endpoint_concurrency_is_shared_by_runs(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text="ok", delay=0.15))
    kw: dict[str, Any] = {"repeats": 6, "max_per_provider": 3}
    await both(ens(server, **kw), ens(server, **kw))
    assert server.count() == 12
    assert server.max_in_flight == 3  # not 3 per run


async def test_a_429_slows_the_whole_endpoint(server: LoopbackServer) -> None:
    server.script("a", Reply(status=429, headers={"Retry-After": "0.6"}))
    server.set_default("a", Reply(text="ok", delay=0.05))
    server.set_default("b", Reply(text="ok", delay=0.05))
    a = ens(server, "a", repeats=1)
    b = ens(server, "b", repeats=4, max_per_provider=1)
    async with a, b:
        first = asyncio.ensure_future(a.arun("q"))
        while server.count() == 0:
            await asyncio.sleep(0.005)
        await asyncio.gather(first, b.arun("q"))
    t429 = server.requests[0].time
    assert server.requests[0].model == "a"
    later = [r.time - t429 for r in server.requests[1:]]
    # b's calls (another run) started after the 429 waited the pause out as well
    assert all(gap < 0.12 or gap >= 0.6 for gap in later)
    assert sum(gap >= 0.6 for gap in later) >= 3
    limits = endpoint_limits(a.models[0].endpoint)
    assert limits.rate_limited == 1


async def test_tokens_per_minute_are_accepted(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text="ok"))
    e = ens(
        server,
        repeats=3,
        max_tokens=10,
        rate_limit=RateLimit(requests_per_second=50, tokens_per_minute=100_000),
    )
    async with e:
        result = await e.arun("q")
    assert all(s.ok for s in result.samples)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "10/s", True])
def test_bad_rate_limits(server: LoopbackServer, bad: Any) -> None:
    with pytest.raises(errors.ConfigurationError, match="rate_limit"):
        ens(server, rate_limit=bad)


def test_rate_limit_is_one_of_the_limits() -> None:
    from ensemble import FunctionModel, Limits

    m = FunctionModel(lambda p: "ok", name="f")
    assert Limits(rate_limit=10).rate_limit == RateLimit(requests_per_second=10.0)
    shorthand = Ensemble(models=[m], rate_limit=10.0)
    assert shorthand.limits == Limits(rate_limit=10.0)
    assert shorthand.rate_limit == RateLimit(requests_per_second=10.0)
    given = Ensemble(models=[m], limits=Limits(rate_limit=RateLimit(tokens_per_minute=600)))
    assert given.rate_limit == RateLimit(tokens_per_minute=600)
    with pytest.raises(errors.ConfigurationError, match="rate_limit"):
        Ensemble(models=[m], limits=Limits(rate_limit=5.0), rate_limit=10.0)
    with pytest.raises(errors.ConfigurationError, match="rate_limit"):
        Limits(rate_limit=-1.0)


async def test_the_fan_out_paces_without_a_durable_layer() -> None:
    """The LLM judge's calls go through fan_out without a store: Limits.rate_limit still
    paces them."""
    from ensemble import FunctionModel, Limits
    from ensemble._fanout import Call, fan_out

    class Paced(FunctionModel):
        @property
        def endpoint(self) -> str:
            return "function@pacing-test"

    times: list[float] = []

    def answer(prompt: str) -> str:
        times.append(time.monotonic())
        return "ok"

    calls = [Call(Paced(answer, name="f"), Request(prompt=str(i)), f"f#{i}") for i in range(6)]
    paced = Limits(deadline=None, rate_limit=5.0)
    returned = await fan_out(calls, limits=paced, retry=FAST)
    assert all(r.completion is not None for r in returned)
    assert len(times) == 6 and times[-1] - times[0] >= 0.9  # 6 at 5/s: at least 1 s apart
    assert busiest_second(times) <= 5
    times.clear()
    started = time.monotonic()
    await fan_out(calls, limits=Limits(deadline=None), retry=FAST)
    assert len(times) == 6 and time.monotonic() - started < 0.5  # unpaced without it
