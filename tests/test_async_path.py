"""One async path: a metric that calls a model never blocks the caller's event loop.

The heartbeat tests run a 50 ms ticker on the same loop while an LLM judge whose every call
takes 0.4 s (an async sleep) scores the vote. Before the async core existed, ``Ensemble.arun``
voted synchronously and the judge ran on a second loop in a worker thread that the first loop
waited on: the ticker did not tick once in three seconds. (Segmentation runs in a worker
thread on the async path too, so a long text does not stop the ticker either.)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

import ensemble
import ensemble.segment
from ensemble.errors import UsageError
from ensemble.metrics.entailment import EntailmentMetric
from ensemble.metrics.judge import JudgeBackend

_T = TypeVar("_T")


@pytest.fixture(autouse=True, scope="module")
def _sentence_splitter_loaded() -> None:
    """The sentence splitter loads its model once per process (seconds of Python code). On the
    async path that happens in a worker thread, but it still holds the GIL most of the time;
    these tests measure the steady state, so load it before the heartbeat starts."""
    ensemble.segment.sentences("One. Two.")


TICK = 0.05
JUDGE_SECONDS = 0.4
ANSWERS = [
    "Paris is the capital of France. It lies on the Seine.",
    "Paris is the capital of France. It is a large city.",
    "Paris is the capital of France. It lies on the Seine.",
]


class SlowJudge:
    """An async judge that takes 0.4 s per call and supports every claim."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: str) -> str:
        self.calls += 1
        await asyncio.sleep(JUDGE_SECONDS)
        ids = sorted(set(re.findall(r'kind="claim" id="(c\d+)"', prompt)))
        return json.dumps({"verdicts": dict.fromkeys(ids, "supported")})


def _judge_metric(judge: SlowJudge) -> EntailmentMetric:
    model = ensemble.FunctionModel(judge, name="judge")
    return EntailmentMetric(backend=JudgeBackend(model, retry=ensemble.RetryPolicy(max_attempts=1)))


def _ensemble(metric: EntailmentMetric, repeats: int = 3) -> ensemble.Ensemble:
    answers = iter(ANSWERS * 10)

    async def answer(prompt: str) -> str:
        return next(answers)

    return ensemble.Ensemble(
        models=[ensemble.FunctionModel(answer, name="answers")],
        repeats=repeats,
        metric=metric,
        deadline=None,
    )


async def _with_heartbeat(work: Callable[[], Awaitable[_T]]) -> tuple[_T, int, float]:
    """Run ``work()`` next to a 50 ms ticker; ``(result, ticks, seconds)``."""
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(TICK)
            ticks += 1

    beat = asyncio.ensure_future(heartbeat())
    started = time.perf_counter()
    try:
        result = await work()
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        await beat
    return result, ticks, seconds


def _assert_kept_ticking(ticks: int, seconds: float) -> None:
    expected = seconds / TICK
    assert seconds >= JUDGE_SECONDS  # the judge really was slow
    assert ticks >= 0.8 * expected, f"{ticks} ticks in {seconds:.2f} s (expected ~{expected:.0f})"


async def test_ensemble_arun_with_a_slow_judge_keeps_the_loop_ticking() -> None:
    judge = SlowJudge()
    ens = _ensemble(_judge_metric(judge))
    async with ens:
        result, ticks, seconds = await _with_heartbeat(lambda: ens.arun("Capital of France?"))
    assert judge.calls >= 4
    assert result.metric.name == "entailment"
    assert [s.confidence for s in result.spans] == [1.0, 1.0]
    _assert_kept_ticking(ticks, seconds)


async def test_escalation_arun_with_a_slow_judge_keeps_the_loop_ticking() -> None:
    judge = SlowJudge()
    esc = ensemble.Escalation(
        _ensemble(_judge_metric(judge), repeats=4),
        stopping=ensemble.SequentialStopping(min_samples=2, batch=1),
    )
    result, ticks, seconds = await _with_heartbeat(lambda: esc.arun("Capital of France?"))
    await esc.ensemble.aclose()
    assert result.sampling is not None and judge.calls >= 4
    _assert_kept_ticking(ticks, seconds)


async def test_aconsensus_and_ascore_with_a_slow_judge_keep_the_loop_ticking() -> None:
    judge = SlowJudge()
    metric = _judge_metric(judge)
    result, ticks, seconds = await _with_heartbeat(
        lambda: ensemble.aconsensus(ANSWERS, metric=metric)
    )
    _assert_kept_ticking(ticks, seconds)
    scored, ticks, seconds = await _with_heartbeat(
        lambda: ensemble.ascore(text=ANSWERS[0], samples=ANSWERS[1:], metric=metric)
    )
    _assert_kept_ticking(ticks, seconds)
    assert scored.text == ANSWERS[0] and result.candidate is not None
    await metric.aclose()


def test_sync_twins_give_the_async_cores_results() -> None:
    """consensus/score with a judge run the async core on a loop of their own."""

    async def both() -> tuple[ensemble.Consensus, ensemble.Consensus]:
        metric = _judge_metric(SlowJudge())
        try:
            a = await ensemble.aconsensus(ANSWERS, metric=metric, alarm=None)
            b = await ensemble.ascore(text=ANSWERS[1], samples=ANSWERS, metric=metric)
        finally:
            await metric.aclose()
        return a, b

    a, b = asyncio.run(both())
    metric = _judge_metric(SlowJudge())
    assert ensemble.consensus(ANSWERS, metric=metric, alarm=None) == a
    assert ensemble.score(text=ANSWERS[1], samples=ANSWERS, metric=metric) == b


def test_pure_metrics_agree_across_the_sync_and_async_cores() -> None:
    samples = ["The sky is blue. Grass is green.", "The sky is blue.", "Grass is red."]
    for name in ("ngram", "prefix", "vote"):
        sync = ensemble.consensus(samples, metric=name)
        assert asyncio.run(ensemble.aconsensus(samples, metric=name)) == sync
        scored = ensemble.score(text=samples[0], samples=samples, metric=name)
        assert asyncio.run(ensemble.ascore(text=samples[0], samples=samples, metric=name)) == (
            scored
        )


async def test_sync_wrappers_refuse_inside_a_running_loop_and_name_the_a_twin() -> None:
    metric = _judge_metric(SlowJudge())
    ens = _ensemble(metric)
    with pytest.raises(ensemble.errors.SyncInAsyncError, match=r"await ensemble\.aconsensus"):
        ensemble.consensus(ANSWERS, metric=metric)
    with pytest.raises(UsageError, match=r"await ensemble\.ascore"):
        ensemble.score(text="A.", samples=["A."], metric=metric)
    with pytest.raises(UsageError, match=r"await ensemble\.arun"):
        ens.run("x")
    with pytest.raises(UsageError, match=r"await ensemble\.aconsensus"):
        ens.vote([ensemble.Sample(text="A.")])
    with pytest.raises(UsageError, match=r"await escalation\.arun"):
        ensemble.Escalation(ens).run("x")
    # a pure metric's sync call needs no loop, so it works anywhere
    assert ensemble.consensus(["a b", "a b"], metric="ngram").text == "a b"


def test_metric_default_twins_run_the_sync_methods() -> None:
    class Halves(ensemble.Metric):
        name = "halves"

        def support(self, text, spans, samples):  # type: ignore[no-untyped-def]
            import numpy as np

            return np.full((len(spans), len(samples)), 0.5)

    m = Halves()
    assert not m.is_async
    scores = asyncio.run(m.aevaluate("A. B.", [(0, 2), (3, 5)], ["x", "y"]))
    assert scores.confidence.tolist() == [0.5, 0.5]
    assert asyncio.run(m.aagreement(["A.", "B."])).tolist() == m.agreement(["A.", "B."]).tolist()
    assert _judge_metric(SlowJudge()).is_async


async def test_escalation_makes_its_metric_once_and_votes_through_the_ensemble() -> None:
    made = 0

    class Counted(ensemble.Metric):
        name = "counted"

        def __init__(self) -> None:
            nonlocal made
            made += 1
            self.votes = 0

        def support(self, text, spans, samples):  # type: ignore[no-untyped-def]
            import numpy as np

            return np.array([[1.0 if s == text else 0.0 for s in samples] for _ in spans])

        def agreement(self, texts):  # type: ignore[no-untyped-def]
            self.votes += 1
            return super().agreement(texts)

    ensemble.register_metric("counted-for-escalation", Counted, replace=True)
    model = ensemble.ScriptedModel(name="m", default="x")
    model.enqueue(*(["Rome.", "Milan."] * 20))
    ens = ensemble.Ensemble(models=[model], repeats=1, metric="counted-for-escalation")
    tiers = [ensemble.Tier(repeats=k) for k in range(1, 8)]
    async with ensemble.Escalation(ens, tiers=tiers, threshold=1.0, stopping=None) as esc:
        result = await esc.arun("Capital of Italy?")
    assert result.sampling is not None and len(result.sampling.tiers) == 7
    metric = ens.settings.metric
    assert isinstance(metric, Counted) and metric.votes == 7  # seven rounds, one metric
    assert made == 1


async def test_escalation_settings_and_the_alarm_shorthand() -> None:
    ens = ensemble.Ensemble(models=[ensemble.ScriptedModel(name="m", default="Rome.")], repeats=2)
    assert ensemble.Escalation(ens).settings is ens.settings
    quiet = ensemble.Escalation(ens, alarm=None)
    assert quiet.settings.alarm is None and quiet.settings.metric is ens.settings.metric
    own = ensemble.VoteSettings(metric="vote", threshold=0.5)
    assert ensemble.Escalation(ens, settings=own).settings is own
    result = await ensemble.Escalation(ens, settings=own, stopping=None).arun("?")
    assert result.metric.name == "vote" and result.threshold == 0.5
    with pytest.raises(ensemble.errors.ConfigurationError, match="alarm"):
        ensemble.Escalation(ens, settings=own, alarm=ensemble.UniformityAlarm(min_run=20))
