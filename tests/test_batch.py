"""Batches: ``Ensemble.map`` / ``amap`` / ``astream`` against the real loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from loopback import LoopbackServer, Recorded, Reply

from ensemble import Consensus, Ensemble, RetryPolicy, errors
from ensemble.metrics.base import FloatArray, Metric
from ensemble.models.openai import OpenAIModel

FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


def prompt_of(rec: Recorded) -> str:
    assert rec.body is not None
    return str(rec.body["messages"][-1]["content"])


def model(server: LoopbackServer, name: str = "a") -> OpenAIModel:
    return OpenAIModel(name, base_url=server.openai_url, api_key="sk-test")


def ens(server: LoopbackServer, **kw: Any) -> Ensemble:
    kw.setdefault("repeats", 2)
    kw.setdefault("retry", FAST)
    return Ensemble(models=[kw.pop("model", None) or model(server)], **kw)


def echo(delay: float = 0.0) -> Any:
    def respond(rec: Recorded) -> Reply:
        p = prompt_of(rec)
        if "bad" in p:
            return Reply(status=400)
        return Reply(text=f"Answer to {p}.", delay=delay)

    return respond


def test_map_keeps_order_and_isolates_failures(server: LoopbackServer) -> None:
    server.respond_with(echo())
    prompts = ["p0", "p1 bad", "p2", "p3", "p4 bad", "p5"]
    results = ens(server).map(prompts)
    assert len(results) == len(prompts)
    for i, (p, r) in enumerate(zip(prompts, results, strict=True)):
        if "bad" in p:
            assert isinstance(r, errors.QuorumError) and r.index == i
            assert len(r.samples) == 2 and all(s.error is not None for s in r.samples)
            assert r.samples[0].error is not None and r.samples[0].error.status_code == 400
        else:
            assert isinstance(r, Consensus)
            assert r.text == f"Answer to {p}."
    assert server.count() == 2 * len(prompts)  # a 400 is not retried


def test_a_bad_prompt_is_one_failed_result(server: LoopbackServer) -> None:
    server.respond_with(echo())
    results = ens(server).map(["ok", 42, "fine"])  # type: ignore[list-item]
    assert isinstance(results[0], Consensus) and isinstance(results[2], Consensus)
    bad = results[1]
    assert isinstance(bad, errors.RunError) and not isinstance(bad, errors.QuorumError)
    # Its place is an attribute, not a prefix of the message (which is the error's own).
    assert bad.index == 1 and bad.samples == ()
    assert str(bad) == "ConfigurationError: prompt must be a string, not int"
    assert isinstance(bad.__cause__, errors.ConfigurationError)


class WrongShape(Metric):
    """A custom metric that fails on the samples (its support has the wrong shape)."""

    name = "wrong-shape"

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        return np.zeros((len(spans) + 1, len(samples)))


async def test_a_vote_that_fails_keeps_the_samples_that_came_back(
    server: LoopbackServer,
) -> None:
    server.respond_with(echo())
    e = ens(server, metric=WrongShape())
    async with e:
        results = await e.amap(["p0", "p1"])
    assert server.count() == 4
    for i, r in enumerate(results):
        assert isinstance(r, errors.RunError) and not isinstance(r, errors.QuorumError)
        assert r.index == i and isinstance(r.__cause__, errors.MetricOutputError)
        assert str(r).startswith("MetricOutputError: ") and "'wrong-shape'" in str(r)
        # Paid for, so kept: both samples of the prompt, with their text.
        assert [s.text for s in r.samples] == [f"Answer to p{i}."] * 2


class Traced(Ensemble):
    """A subclass with its own ``arun``: it records each prompt and refuses "skip"."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.prompts: list[str] = []

    async def arun(self, prompt: str) -> Consensus:
        self.prompts.append(prompt)
        if prompt == "skip":
            raise errors.RunError("skipped by the subclass")
        result = await super().arun(prompt)
        return result.model_copy(update={"text": result.text.upper()})


def test_a_subclass_arun_is_the_one_a_batch_runs(server: LoopbackServer) -> None:
    server.respond_with(echo())
    e = Traced(models=[model(server)], repeats=2, retry=FAST)
    results = e.map(["p0", "skip", "p2"])
    assert sorted(e.prompts) == ["p0", "p2", "skip"]
    assert [r.text for r in results if isinstance(r, Consensus)] == [
        "ANSWER TO P0.",
        "ANSWER TO P2.",
    ]
    skipped = results[1]
    assert isinstance(skipped, errors.RunError) and skipped.index == 1
    assert str(skipped) == "skipped by the subclass"
    assert server.count() == 4  # "skip" was never sent


async def test_concurrency_is_bounded_over_the_whole_batch(server: LoopbackServer) -> None:
    server.respond_with(echo(delay=0.1))
    e = ens(server, max_concurrency=4, max_per_provider=8)
    started = time.monotonic()
    async with e:
        results = await e.amap([f"q{i}" for i in range(12)])
    elapsed = time.monotonic() - started
    assert all(isinstance(r, Consensus) for r in results)
    assert server.count() == 24
    assert server.max_in_flight == 4  # bounded across prompts, and the bound is used
    assert elapsed < 24 * 0.1 / 2  # concurrent: far below the serial 2.4 s


async def test_astream_yields_as_prompts_finish(server: LoopbackServer) -> None:
    def respond(rec: Recorded) -> Reply:
        return Reply(text="slow.", delay=0.6) if prompt_of(rec) == "slow" else Reply(text="x.")

    server.respond_with(respond)
    e = ens(server, repeats=1)
    order = []
    async with e:
        async for i, result in e.astream(["slow", "fast1", "fast2"]):
            assert isinstance(result, Consensus)
            order.append(i)
    assert order[-1] == 0 and sorted(order) == [0, 1, 2]


async def test_prompts_are_read_lazily_and_max_prompts_bounds_them(
    server: LoopbackServer,
) -> None:
    server.respond_with(echo(delay=0.05))
    pulled: list[int] = []

    def gen() -> Any:
        for i in range(10):
            pulled.append(i)
            yield f"g{i}"

    e = ens(server, repeats=1)
    seen = 0
    async with e:
        async for _i, _r in e.astream(gen(), max_prompts=2):
            seen += 1
            if seen == 1:
                # two workers, each holding at most one prompt, and one result queued
                assert len(pulled) <= 5
    assert seen == 10 and server.max_in_flight <= 2


async def test_leaving_the_stream_early_cancels_the_rest(server: LoopbackServer) -> None:
    server.respond_with(echo(delay=0.3))
    e = ens(server, repeats=1)
    async with e:
        stream = e.astream([f"q{i}" for i in range(50)], max_prompts=4)
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    assert server.count() < 20


async def test_map_refuses_a_running_loop_and_names_amap(server: LoopbackServer) -> None:
    with pytest.raises(errors.SyncInAsyncError) as info:
        ens(server).map(["q"])
    assert str(info.value).endswith("use `await ensemble.amap(prompts)` instead")
    assert "instead instead" not in str(info.value)
    assert server.count() == 0


def test_bad_batch_settings(server: LoopbackServer) -> None:
    e = ens(server)
    with pytest.raises(errors.ConfigurationError, match="max_prompts"):
        e.map(["q"], max_prompts=0)
    with pytest.raises(errors.ConfigurationError, match="one string"):
        e.map("just one prompt")
    with pytest.raises(errors.ConfigurationError, match="store"):
        e.map(["q"], run="nightly")


# --- the `ensemble batch` command ------------------------------------------------------------


def write_rows(path: Any, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cli(server: LoopbackServer, *args: str) -> int:
    from ensemble.cli import main

    return main(["batch", *args, "--base-url", server.openai_url, "-m", "openai:a"])


def test_cli_batch_writes_one_row_per_input_row_in_order(
    server: LoopbackServer, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    server.respond_with(echo())
    src, out, db = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "s.db"
    write_rows(
        src,
        [
            '{"id": "x1", "prompt": "p1"}',
            "not json",
            '{"id": "x3", "prompt": "p3 bad"}',
            '{"id": "x4"}',
            '{"id": 5, "prompt": "p5"}',
        ],
    )
    prices = tmp_path / "prices.json"
    prices.write_text('{"a": [1.0, 2.0]}')
    argv = [str(src), "-o", str(out), "--store", str(db), "-n", "2", "--prices", str(prices)]
    assert cli(server, *argv) == 3  # some rows failed: EXIT_FAILED
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("id") for r in rows] == ["x1", None, "x3", "x4", 5]
    assert rows[0]["consensus"]["text"] == "Answer to p1."
    assert rows[0]["consensus"]["cost"]["cost"] > 0
    assert rows[1]["error"]["type"] == "InvalidInputError"
    assert rows[2]["error"]["type"] == "QuorumError" and len(rows[2]["error"]["samples"]) == 2
    assert "prompt" in rows[3]["error"]["message"]
    assert Consensus.model_validate(rows[4]["consensus"]).text == "Answer to p5."
    sent = server.count()
    assert sent == 6
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # piped: no bar, no summary

    first = out.read_text().splitlines()
    assert cli(server, *argv) == 3
    assert server.count() == sent + 2  # only the failed (400) calls are asked again
    again = out.read_text().splitlines()
    assert [again[i] for i in (0, 1, 3, 4)] == [first[i] for i in (0, 1, 3, 4)]

    code = cli(server, str(src), "-o", str(out), "--store", str(db), "-n", "3")
    assert code == 2 and "repeats: 2 then, 3 now" in capsys.readouterr().err


def test_cli_batch_budget_needs_max_tokens(
    server: LoopbackServer, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    write_rows(src, ['{"id": 1, "prompt": "q"}'])
    assert cli(server, str(src), "-o", str(tmp_path / "o.jsonl"), "--budget", "1") == 2
    assert "max_tokens" in capsys.readouterr().err
    assert server.count() == 0


def test_cli_batch_all_rows_ok_exits_0_and_fuses_with_method(
    server: LoopbackServer, tmp_path: Any
) -> None:
    import json

    server.respond_with(echo())
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_rows(src, ['{"id": 1, "prompt": "p1"}', '{"id": 2, "prompt": "p2"}'])
    assert cli(server, str(src), "-o", str(out), "-n", "2", "--method", "fuse") == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["consensus"]["method"] for r in rows] == ["fuse", "fuse"]
    assert rows[1]["consensus"]["text"] == "Answer to p2."
