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

import ensemble  # noqa: E402
from ensemble.errors import (  # noqa: E402
    ConfigurationError,
    InvalidInputError,
    MissingDependencyError,
)
from ensemble.ray import run_dataset, score_dataset  # noqa: E402

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
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")  # nothing phones home
        # The workers must import this checkout of ensemble, installed or not.
        path = os.environ.get("PYTHONPATH")
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *([path] if path else [])]))
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",  # loopback only
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            yield ray
        finally:
            ray.shutdown()


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


def test_rate_limit_share_paces_the_prompts_of_a_worker() -> None:
    """A worker with a share of 10 requests/s and 2 calls per prompt starts one prompt every
    0.2 s (the first at once): 5 prompts span at least 0.8 s. Run in-process, without Ray."""
    import time

    import pandas as pd

    from ensemble.ray import _Runner, _worker_share

    assert _worker_share(20.0, 2) == 10.0

    def now(prompt: str) -> str:
        return f"{prompt} at {time.monotonic():.6f}"

    settings = {"repeats": 2, "metric": "ngram", "seed": 1, "timeout": 5.0, "deadline": 10.0}
    models = [ensemble.FunctionModel(now, name="clock")]
    paced = _Runner(models, settings, "prompt", prompts_in_flight=5, rate_share=10.0)
    free = _Runner(models, settings, "prompt", prompts_in_flight=5, rate_share=None)
    batch = pd.DataFrame({"prompt": [f"p{i}" for i in range(5)]})

    def starts(runner: _Runner) -> list[float]:
        table = runner(batch)
        assert table.column("error").to_pylist() == [None] * 5
        out = []
        for doc in table.column("consensus").to_pylist():
            texts = [s.text for s in ensemble.Consensus.model_validate_json(doc).samples]
            out.append(min(float(t.rsplit(" at ", 1)[1]) for t in texts))
        return sorted(out)

    t = starts(paced)
    assert t[-1] - t[0] >= 0.75  # 4 gaps of 0.2 s, less a little timer slack
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(t))
    t = starts(free)
    assert t[-1] - t[0] < 0.5  # without a rate the 5 prompts start together
