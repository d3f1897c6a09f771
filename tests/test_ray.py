"""ensemble.ray: scoring and running over a ray.data.Dataset on a local two-CPU Ray.

One local Ray instance (``ray.init(num_cpus=2)``, loopback only, no dashboard, no usage
statistics) serves the whole module: starting Ray takes ten seconds or more on a busy machine.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from ray_local import local_ray as start_local_ray  # noqa: E402

import ensemble  # noqa: E402
from ensemble.errors import (  # noqa: E402
    ConfigurationError,
    InvalidInputError,
    MissingDependencyError,
)
from ensemble.ray import run_dataset, score_dataset, spent_per_worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UPPER = [ensemble.FunctionModel(str.upper, name="upper")]

pytestmark = [
    # Ray Data's own DataContext() sets its deprecated fields (use_push_based_shuffle,
    # use_polars, ...) on creation and warns about them (Ray 2.60): only those, from that module.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]


def _wikibio() -> Path | None:
    """The shared data where benchmarks/_wikibio.py looks for it (``../shared/data`` next to the
    repository), or one level further up for a worktree at ``wt/NAME``."""
    for base in (ROOT.parent, ROOT.parent.parent):
        path = base / "shared" / "data" / "wikibio_dev.json"
        if path.exists():
            return path
    return None


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    with start_local_ray(__name__, num_cpus=2) as instance:
        instance.data.DataContext.get_current().enable_progress_bars = False
        yield instance


def test_import_ensemble_does_not_import_ray() -> None:
    code = "import sys, ensemble, ensemble.ray; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"ensemble-consensus\[ray\]"):
        score_dataset(object())
    with pytest.raises(ImportError):  # it is also an ImportError
        run_dataset(object(), models=UPPER)


def test_score_dataset_gives_exactly_the_local_confidences(local_ray: Any, tmp_path: Path) -> None:
    data_path = _wikibio()
    if data_path is None:
        pytest.skip("wikibio_dev.json not found next to the repository")
    passages = json.loads(data_path.read_text(encoding="utf-8"))[:3]
    rows: list[dict[str, Any]] = [
        {"id": i, "sentences": p["gpt3_sentences"], "samples": p["gpt3_text_samples"]}
        for i, p in enumerate(passages)
    ]
    rows.append({"id": 99, "sentences": ["A lone sentence."], "samples": []})  # no evidence
    ds = local_ray.data.from_items(rows)
    scored = score_dataset(ds, sentences_column="sentences", concurrency=1, batch_size=2)
    scored = scored.materialize()
    out = {r["id"]: r for r in scored.take_all()}
    assert sorted(out) == [0, 1, 2, 99]
    for i, p in enumerate(passages):
        local = ensemble.score(sentences=p["gpt3_sentences"], samples=p["gpt3_text_samples"])
        assert out[i]["error"] is None
        assert list(out[i]["confidences"]) == [s.confidence for s in local.spans]
        assert ensemble.Consensus.model_validate_json(out[i]["consensus"]) == local
    bad = out[99]
    assert bad["error"].startswith("InvalidInputError: ")
    assert "no samples" in bad["error"]
    assert bad["confidences"] is None and bad["consensus"] is None
    # Results land in Parquet with one schema, whether a batch had errors or not.
    scored.write_parquet(str(tmp_path / "out"))
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out")
    assert str(table.schema.field("confidences").type) == "list<element: double>"
    assert str(table.schema.field("error").type) == "string"
    assert table.num_rows == 4
    ids, confs = table.column("id").to_pylist(), table.column("confidences").to_pylist()
    by_id = dict(zip(ids, confs, strict=True))
    assert by_id[0] == list(out[0]["confidences"]) and by_id[99] is None


def test_score_dataset_splits_a_text_column(local_ray: Any) -> None:
    samples = ["Paris is the capital of France. It is large.", "Paris is in France."]
    text = "Paris is the capital of France. It has a moon."
    ds = local_ray.data.from_items([{"text": text, "samples": samples}])
    (row,) = score_dataset(ds, concurrency=1).take_all()
    local = ensemble.score(text, samples=samples)
    assert row["error"] is None
    assert list(row["confidences"]) == [s.confidence for s in local.spans]
    assert len(row["confidences"]) == 2


def test_bad_columns_and_settings_are_clear_errors(local_ray: Any) -> None:
    ds = local_ray.data.from_items([{"text": "a", "samples": ["a"], "prompt": "p"}])
    with pytest.raises(InvalidInputError, match="no column 'sentences'"):
        score_dataset(ds, sentences_column="sentences")
    with pytest.raises(InvalidInputError, match="no column 'answers'"):
        score_dataset(ds, samples_column="answers")
    with pytest.raises(InvalidInputError, match="no column 'question'"):
        run_dataset(ds, models=UPPER, prompt_column="question")
    with pytest.raises(InvalidInputError, match="already has the output column"):
        score_dataset(ds.add_column("error", lambda df: df["text"]))
    with pytest.raises(InvalidInputError, match=r"ray\.data\.Dataset"):
        score_dataset([{"text": "a", "samples": ["a"]}])
    with pytest.raises(ConfigurationError, match="concurrency"):
        score_dataset(ds, concurrency=0)
    with pytest.raises(ConfigurationError, match="fixed actor pool"):
        run_dataset(ds, models=UPPER, repeats=1, rate_limit=10.0)
    with pytest.raises(ensemble.errors.UnknownNameError):
        score_dataset(ds, metric="no-such-metric")


def test_run_dataset_runs_an_ensemble_per_prompt(local_ray: Any) -> None:
    def models() -> list[ensemble.Model]:
        def answer(prompt: str) -> str:
            if "fail" in prompt:
                raise RuntimeError("this prompt always fails")
            return f"The answer to {prompt} is forty-two."

        def other(prompt: str) -> str:
            if "fail" in prompt:
                raise RuntimeError("this prompt always fails")
            return f"The answer to {prompt} is forty-two. Or so it seems."

        return [
            ensemble.FunctionModel(answer, name="a"),
            ensemble.FunctionModel(other, name="b"),
        ]

    prompts = ["life", "the universe", "please fail", "everything"]
    ds = local_ray.data.from_items([{"id": i, "prompt": p} for i, p in enumerate(prompts)])
    done = run_dataset(ds, models=models, repeats=2, concurrency=1, batch_size=2, rate_limit=50)
    out = {r["id"]: r for r in done.take_all()}
    local = ensemble.Ensemble(models=models(), repeats=2)
    for i, prompt in enumerate(prompts):
        if "fail" in prompt:
            continue
        expected = local.run(prompt)
        got = ensemble.Consensus.model_validate_json(out[i]["consensus"])
        assert out[i]["error"] is None
        assert got.text == expected.text
        assert list(out[i]["confidences"]) == [s.confidence for s in expected.spans]
        assert {s.model for s in got.samples} == {"a", "b"} and len(got.samples) == 4
    failed = out[2]
    assert failed["consensus"] is None
    assert failed["error"].startswith("QuorumError")  # the prompt failed, the job did not


def busiest_second(times: list[float]) -> int:
    """The most timestamps in any half-open window of one second."""
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


def test_worker_share_divides_requests_and_tokens() -> None:
    from ensemble.ray import _rate_share, _worker_share

    both = ensemble.RateLimit(requests_per_second=20.0, tokens_per_minute=90_000.0)
    assert _worker_share(both, 2) == ensemble.RateLimit(
        requests_per_second=10.0, tokens_per_minute=45_000.0
    )
    assert _rate_share(12, 4) == ensemble.RateLimit(requests_per_second=3.0)
    assert _rate_share(ensemble.RateLimit(tokens_per_minute=600.0), 3) == ensemble.RateLimit(
        tokens_per_minute=200.0
    )
    assert _rate_share(None, None) is None
    with pytest.raises(ConfigurationError, match="rate_limit"):
        _rate_share(-1.0, 2)
    with pytest.raises(ConfigurationError, match="fixed actor pool"):
        _rate_share(10.0, (1, 2))


def test_rate_limit_share_paces_every_request_of_a_worker() -> None:
    """A worker whose share is 10 requests/s sends one call every ~0.1 s, whichever prompt it
    belongs to: the 10 calls of 5 prompts x 2 repeats span at least 0.9 s and no two come
    closer than the pacing allows (today's prompt pacing let a prompt's 2 calls go together).
    Run in-process, without Ray."""
    import time

    import pyarrow as pa

    from ensemble.ray import _Runner

    calls: list[float] = []

    def models() -> list[ensemble.Model]:
        def now(prompt: str) -> str:
            calls.append(time.monotonic())
            return f"{prompt} answered."

        return [ensemble.FunctionModel(now, name="clock")]

    share = ensemble.RateLimit(requests_per_second=10.0)
    settings = {"repeats": 2, "metric": "ngram", "seed": 1, "timeout": 5.0, "deadline": 10.0}
    paced = _Runner(models, {**settings, "rate_limit": share}, "prompt", prompts_in_flight=5)
    batch = pa.table({"prompt": [f"p{i}" for i in range(5)]})
    table = paced(batch)
    assert table.column("error").to_pylist() == [None] * 5
    t = sorted(calls)
    assert len(t) == 10
    assert t[-1] - t[0] >= 0.85  # 9 gaps of 0.103 s, less a little timer slack
    assert all(b - a >= 0.08 for a, b in itertools.pairwise(t))
    assert busiest_second(t) <= 10
    calls.clear()
    free = _Runner(models, settings, "prompt", prompts_in_flight=5)
    assert free(batch).column("error").to_pylist() == [None] * 5
    assert max(calls) - min(calls) < 0.5  # without a rate the 10 calls go together


def test_a_batch_runs_as_one_amap_in_order_with_failures_isolated() -> None:
    """An actor's batch goes through one Ensemble.amap: at most prompts_in_flight prompts at
    once, results in row order, a null prompt an InvalidInputError row sent nowhere, a
    failing prompt a QuorumError row (run in-process, without Ray)."""
    import threading
    import time

    import pyarrow as pa

    from ensemble.ray import _Runner

    lock = threading.Lock()
    active: set[str] = set()
    peak: list[int] = [0]
    asked: list[str] = []

    def models() -> list[ensemble.Model]:
        def answer(prompt: str) -> str:
            with lock:
                asked.append(prompt)
                active.add(prompt)
                peak[0] = max(peak[0], len(active))
            time.sleep(0.05)
            with lock:
                active.discard(prompt)
            if prompt == "p3":
                raise RuntimeError("p3 always fails")
            return f"The answer to {prompt} is {prompt[1:]}."

        return [ensemble.FunctionModel(answer, name="f")]

    settings = {"repeats": 2, "metric": "ngram", "seed": 1, "timeout": 5.0, "deadline": 10.0}
    runner = _Runner(models, settings, "prompt", prompts_in_flight=2)
    prompts = ["p0", "p1", None, "p3", "p4", "p5"]
    table = runner(pa.table({"prompt": pa.array(prompts, pa.string())}))
    errors = table.column("error").to_pylist()
    assert errors[2] == "InvalidInputError: column 'prompt' must hold strings, not NoneType"
    assert errors[3] is not None and errors[3].startswith("QuorumError")
    assert [e is None for i, e in enumerate(errors) if i not in (2, 3)] == [True] * 4
    for i, doc in enumerate(table.column("consensus").to_pylist()):
        if i in (2, 3):
            assert doc is None
        else:  # row order kept: each row holds its own prompt's answer
            assert ensemble.Consensus.model_validate_json(doc).text == f"The answer to p{i} is {i}."
    assert None not in asked and len(asked) == 10  # 5 string prompts x 2 repeats
    assert peak[0] == 2  # prompts_in_flight=2 prompts at once, never more


def _posting(url: str) -> Any:
    """A factory of one model that POSTs each call to the loopback server at ``url`` (in a
    worker thread, through the library's retry loop and endpoint limiter), as the model
    ``m-<pid>`` so that the server tells the actors apart. Plain urllib: no SDK client whose
    first request spends ~0.1 s setting itself up after admission (docs/scale.md)."""

    def models() -> list[ensemble.Model]:
        import urllib.request

        name = f"m-{os.getpid()}"

        def answer(prompt: str) -> str:
            body = json.dumps({"model": name, "messages": [{"role": "user", "content": prompt}]})
            req = urllib.request.Request(
                url + "/chat/completions",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as response:
                reply = json.loads(response.read())
            return f"{prompt}: {reply['choices'][0]['message']['content']}."

        return [ensemble.FunctionModel(answer, name="m")]

    return models


def test_two_workers_never_exceed_the_job_rate_at_the_server(local_ray: Any, server: Any) -> None:
    """2 actors, a job rate of 16 requests/s (8 each): the loopback server's own timestamps
    show no one-second window with more than 16 requests, over 80 requests (about 5 s), with
    both actors sending. Prompt pacing (before the fix) let a worker send a prompt's 4 calls
    at once on top of its rate: up to 12 a second per worker."""
    rate, repeats = 16, 4
    prompts = [f"question {i}" for i in range(20)]
    ds = local_ray.data.from_items([{"id": i, "prompt": p} for i, p in enumerate(prompts)])
    done = run_dataset(
        ds,
        models=_posting(server.openai_url),
        repeats=repeats,
        rate_limit=float(rate),
        concurrency=2,
        batch_size=2,
        prompts_in_flight=2,
    )
    rows = done.take_all()
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows]
    times = [r.time for r in server.requests]
    assert len(times) == len(prompts) * repeats
    by_worker: dict[str | None, list[float]] = {}
    for r in server.requests:
        by_worker.setdefault(r.model, []).append(r.time)
    assert len(by_worker) == 2 == len({r["worker"] for r in rows})  # both actors sent
    assert busiest_second(times) <= rate
    assert all(busiest_second(t) <= rate // 2 for t in by_worker.values())  # each its share


# --- budget and store shared across workers ----------------------------------------------------

#: What one call of _priced() costs against a budget: FunctionModel reports no usage, so each call
#: stays charged at its worst case, (prompt tokens bounded above + max_tokens) x the price.
PRICE = (1000.0, 1000.0)  # USD per million tokens, in and out
MAX_TOKENS = 10


def _priced() -> list[ensemble.Model]:
    def answer(prompt: str) -> str:
        return f"The answer to {prompt} is forty-two."

    return [ensemble.FunctionModel(answer, name="f")]


def _worst_case(prompt: str) -> float:
    ens = ensemble.Ensemble(
        models=_priced(), repeats=1, max_tokens=MAX_TOKENS, prices={"f": PRICE}, budget=1.0
    )
    ens.run(prompt)
    assert ens.budget is not None
    return ens.budget.spent


def test_run_dataset_gives_each_worker_a_share_of_the_budget(local_ray: Any) -> None:
    """A job budget worth 6 calls over 2 actors: each actor may spend 3 calls' worth, the job
    at most 6; every prompt beyond a worker's share fails with a budget error, sends nothing."""
    prompts = [f"question {i:02d}" for i in range(12)]  # all of one length: one worst case
    worst = _worst_case(prompts[0])
    cap = 6 * worst * 1.0001  # 6 calls and a hair, never 7
    ds = local_ray.data.from_items([{"id": i, "prompt": p} for i, p in enumerate(prompts)])
    done = run_dataset(
        ds,
        models=_priced,
        repeats=1,
        max_tokens=MAX_TOKENS,
        prices={"f": PRICE},
        budget=cap,
        concurrency=2,
        batch_size=2,
        prompts_in_flight=1,
    ).materialize()
    rows = done.take_all()
    spent = spent_per_worker(done)
    assert spent == spent_per_worker(rows)  # the helper reads a dataset or rows alike
    assert 1 <= len(spent) <= 2
    for worker, usd in spent.items():
        assert usd <= cap / 2 + 1e-12, worker
        # A worker spends whole calls: at most floor(share / worst) = 3 of them.
        ok = [r for r in rows if r["worker"] == worker and r["error"] is None]
        assert usd == pytest.approx(len(ok) * worst)
        assert len(ok) <= 3
    assert sum(spent.values()) <= cap
    ok_rows = [r for r in rows if r["error"] is None]
    assert 3 <= len(ok_rows) <= 6
    failed = [r for r in rows if r["error"] is not None]
    assert len(failed) == len(prompts) - len(ok_rows)
    assert all(r["error"].startswith("QuorumError") for r in failed)
    for r in failed:
        assert r["worker_spent"] is not None and r["worker_spent"] <= cap / 2 + 1e-12


def test_budget_shares_need_a_fixed_pool_and_prices(local_ray: Any) -> None:
    ds = local_ray.data.from_items([{"prompt": "p"}])
    with pytest.raises(ConfigurationError, match="fixed actor pool"):
        run_dataset(ds, models=_priced, repeats=1, max_tokens=5, prices={"f": PRICE}, budget=1.0)
    with pytest.raises(ConfigurationError, match="max_tokens"):
        run_dataset(ds, models=_priced, repeats=1, prices={"f": PRICE}, budget=1.0, concurrency=2)
    with pytest.raises(ConfigurationError, match="positive"):
        run_dataset(ds, models=_priced, repeats=1, max_tokens=5, budget=-1.0, concurrency=2)
    with pytest.raises(ConfigurationError, match="store"):
        run_dataset(ds, models=_priced, repeats=1, run="nightly")
    # Without a budget the rows say so: worker set, worker_spent null, no spend reported.
    (row,) = run_dataset(ds, models=_priced, repeats=1, concurrency=1).take_all()
    assert row["worker"] and row["worker_spent"] is None
    assert spent_per_worker([row]) == {}


def _logging(log: str) -> Any:
    """A factory of one model that appends a line to ``log`` for every call it makes (from any
    process) and answers with a random number, so that a replayed sample is told from a new one."""

    def models() -> list[ensemble.Model]:
        def answer(prompt: str) -> str:
            import random

            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {prompt}\n")
            return f"{prompt} is {random.random():.12f}."

        return [ensemble.FunctionModel(answer, name="r")]

    return models


def test_two_workers_share_one_store_and_a_rerun_sends_nothing(
    local_ray: Any, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    path = tmp_path / "runs.db"
    prompts = [f"prompt {i}" for i in range(10)]
    ds = local_ray.data.from_items([{"id": i, "prompt": p} for i, p in enumerate(prompts)])

    def go(repeats: int = 2) -> dict[int, dict[str, Any]]:
        done = run_dataset(
            ds,
            models=_logging(str(log)),
            repeats=repeats,
            store=path,
            run="job",
            concurrency=2,
            batch_size=1,
        )
        return {r["id"]: r for r in done.take_all()}

    first = go()
    calls = log.read_text(encoding="utf-8").splitlines()
    assert len(calls) == 20  # 10 prompts x 2 repeats, each asked once
    assert len({line.split(" ", 1)[1] for line in calls}) == 10
    assert all(r["error"] is None for r in first.values())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with ensemble.Store(path) as store:
        assert len(store) == 20  # one file holds every worker's samples
    assert not list(tmp_path.glob("runs.db.*"))  # no per-worker files

    second = go()
    assert log.read_text(encoding="utf-8").splitlines() == calls  # nothing sent again
    for i in first:  # the random answers came back from the store, whichever worker ran them
        assert second[i]["consensus"] == first[i]["consensus"]

    with pytest.raises(ensemble.errors.ResumeMismatchError, match="repeats"):
        go(repeats=3)  # refused on the driver, before anything is sent
    assert log.read_text(encoding="utf-8").splitlines() == calls


def test_a_store_is_refused_on_a_cluster_of_several_nodes(
    local_ray: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = local_ray.data.from_items([{"prompt": "p"}])
    nodes = [{"Alive": True, "NodeID": "a"}, {"Alive": True, "NodeID": "b"}]
    monkeypatch.setattr(local_ray, "nodes", lambda: nodes)
    with pytest.raises(ConfigurationError, match="2 nodes"):
        run_dataset(ds, models=_priced, repeats=1, store=tmp_path / "s.db")
    nodes[1]["Alive"] = False  # a dead node does not count
    run_dataset(ds, models=_priced, repeats=1, store=tmp_path / "s.db")


def test_a_restarted_actor_counts_its_budget_share_as_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray restarts a dead actor with its constructor's arguments, a fresh share; what the dead
    one spent is unknown, so the new one sends nothing (run in-process, without Ray)."""
    import pyarrow as pa

    import ensemble.ray as ensemble_ray

    calls: list[str] = []

    def models() -> list[ensemble.Model]:
        return [ensemble.FunctionModel(lambda p: calls.append(p) or f"{p}.", name="f")]

    settings = {"repeats": 1, "metric": "ngram", "max_tokens": 5, "prices": {"f": PRICE}}
    settings["budget"] = 1.0
    batch = pa.table({"prompt": ["a", "b"]})
    fresh = ensemble_ray._Runner(models, settings, "prompt", 2)
    assert fresh(batch).column("error").to_pylist() == [None, None] and len(calls) == 2
    monkeypatch.setattr(ensemble_ray, "_restarted", lambda: True)
    again = ensemble_ray._Runner(models, settings, "prompt", 2)
    table = again(batch)
    errors = table.column("error").to_pylist()
    assert all(e.startswith("QuorumError") and "BudgetExceeded" in e for e in errors), errors
    assert len(calls) == 2  # nothing sent
    assert table.column("worker_spent").to_pylist() == [1.0, 1.0]


def test_a_prompt_that_fails_otherwise_is_an_error_row_saying_both_errors() -> None:
    """A prompt the run refuses (an empty string) is the batch's RunError in its row, its
    message the refusal's own: no index of the actor's batch in it (run in-process)."""
    import pyarrow as pa

    import ensemble.ray as ensemble_ray

    settings = {"repeats": 1, "metric": "ngram"}
    runner = ensemble_ray._Runner(_priced, settings, "prompt", 2)
    table = runner(pa.table({"prompt": ["a", "   ", "b"]}))
    errors = table.column("error").to_pylist()
    assert errors[0] is None and errors[2] is None
    assert errors[1] == (
        "RunError: ConfigurationError: the prompt is empty: give the models something to answer"
    )
