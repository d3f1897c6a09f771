"""``ensemble.evaluation`` against scikit-learn and scipy, on fixed and random vectors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble.errors import InvalidInputError
from ensemble.evaluation import (
    auc_pr,
    average_precision,
    pearson,
    precision_recall_curve,
    rankdata,
    selfcheck_figures,
    spearman,
)

sk_metrics = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")


def sk_auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = sk_metrics.precision_recall_curve(labels, scores)
    return float(sk_metrics.auc(recall, precision))


FIXED = [
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]),
    ([1, 0, 1, 0, 1, 1], [0.9, 0.9, 0.5, 0.5, 0.5, 0.1]),  # ties across classes
    ([1, 1, 1], [0.2, 0.2, 0.2]),  # all positive, all tied
    ([0, 1, 0, 0, 0], [5.0, 4.0, 3.0, 2.0, 1.0]),
    ([1, 0], [0.0, 0.0]),
    ([True, False, True, False], [-1.0, -2.0, -3.0, -4.0]),
]


@pytest.mark.parametrize(("labels", "scores"), FIXED)
def test_fixed_vectors_match_sklearn(labels: list[int], scores: list[float]) -> None:
    y, s = np.array(labels), np.array(scores)
    precision, recall, thresholds = precision_recall_curve(y, s)
    sk_p, sk_r, sk_t = sk_metrics.precision_recall_curve(y, s)
    assert precision == pytest.approx(sk_p)
    assert recall == pytest.approx(sk_r)
    assert thresholds == pytest.approx(sk_t)
    assert auc_pr(y, s) == pytest.approx(sk_auc_pr(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(
        sk_metrics.average_precision_score(y, s), abs=1e-12
    )


def test_known_values() -> None:
    # the sklearn docstring example: precision [.5, .667, .5, 1, 1], recall [1, 1, .5, .5, 0]
    assert auc_pr([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(
        0.5 * (1 + 1) / 2 + 0.5 * (0.5 + 2 / 3) / 2
    )
    # a constant scorer: the trapezoid gives (1 + share) / 2, average precision the share
    y = [1, 0, 0, 0]
    assert auc_pr(y, [0.0] * 4) == pytest.approx((1 + 0.25) / 2)
    assert average_precision(y, [0.0] * 4) == pytest.approx(0.25)
    # a perfect ranking
    assert auc_pr([0, 0, 1, 1], [1, 2, 3, 4]) == pytest.approx(1.0)


def test_random_vectors_match_sklearn_to_a_hundredth_of_a_point() -> None:
    rng = np.random.default_rng(7)
    worst = 0.0
    for trial in range(300):
        n = int(rng.integers(2, 300))
        y = rng.random(n) < rng.uniform(0.05, 0.95)
        y[rng.integers(n)] = True
        s = rng.integers(0, 6, n).astype(float) if trial % 3 == 0 else rng.normal(size=n)
        worst = max(worst, abs(100 * auc_pr(y, s) - 100 * sk_auc_pr(y, s)))
    assert worst < 0.01


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.booleans(), st.integers(-5, 5)),
        min_size=1,
        max_size=40,
    ).filter(lambda xs: any(y for y, _ in xs))
)
def test_property_matches_sklearn(data: list[tuple[bool, int]]) -> None:
    y = np.array([a for a, _ in data])
    s = np.array([b for _, b in data], dtype=float)
    assert auc_pr(y, s) == pytest.approx(sk_auc_pr(y, s), abs=1e-9)
    assert average_precision(y, s) == pytest.approx(
        sk_metrics.average_precision_score(y, s), abs=1e-9
    )


def test_correlations_match_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = rng.normal(size=20)
        y = np.round(x + rng.normal(size=20), 0)  # ties in y
        assert pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y)[0])
        assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y)[0])
        assert rankdata(y) == pytest.approx(scipy_stats.rankdata(y))
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_selfcheck_protocol_on_a_small_case() -> None:
    labels = [np.array([1.0, 1.0]), np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.0])]
    scores = [np.array([0.9, 0.8]), np.array([0.1, 0.5, 0.7]), np.array([0.2, 0.3])]
    f = selfcheck_figures(labels, scores)
    y = np.concatenate(labels)
    s = np.concatenate(scores)
    assert f.nonfact == pytest.approx(100 * sk_auc_pr(y > 0, s))
    assert f.factual == pytest.approx(100 * sk_auc_pr(y == 0, -s))
    # NonFact*: the first passage (all major) is left out; positives are major errors only
    y_star = np.concatenate(labels[1:])
    s_star = np.concatenate(scores[1:])
    assert f.nonfact_star == pytest.approx(100 * sk_auc_pr(y_star == 1, s_star))
    means_y = [lab.mean() for lab in labels]
    means_s = [sc.mean() for sc in scores]
    assert f.pearson == pytest.approx(100 * scipy_stats.pearsonr(means_y, means_s)[0])
    assert f.n_sentences == 7 and f.n_passages == 3 and f.distinct_scores == 7


def test_bad_input_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        auc_pr([0, 0], [0.1, 0.2])  # no positive
    with pytest.raises(InvalidInputError):
        auc_pr([0, 1], [0.1])
    with pytest.raises(InvalidInputError):
        auc_pr([0, 1], [0.1, float("nan")])
    with pytest.raises(InvalidInputError):
        selfcheck_figures([np.array([0.3])], [np.array([0.1])])
    with pytest.raises(InvalidInputError):
        selfcheck_figures([], [])


def test_wikibio_benchmark_runs_on_a_small_file(tmp_path: Path) -> None:
    """The benchmark script itself, on a made-up file of the same shape (not the real data)."""
    facts = ["Ada was born in London.", "She wrote notes on engines.", "She liked tea."]
    wrong = ["Ada was born in Paris.", "She built ships.", "She hated music."]
    samples = [" ".join(facts)] * 3 + ["Ada was born in London. She wrote about engines."]
    passages = [
        {
            "gpt3_sentences": facts[:2] + wrong[i % 3 : i % 3 + 1],
            "annotation": ["accurate", "minor_inaccurate", "major_inaccurate"],
            "gpt3_text_samples": samples,
        }
        for i in range(4)
    ]
    passages.append(
        {
            "gpt3_sentences": wrong,
            "annotation": ["major_inaccurate"] * 3,
            "gpt3_text_samples": samples,
        }
    )
    data = tmp_path / "mini.json"
    data.write_text(json.dumps(passages), encoding="utf-8")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "wikibio.py"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--data",
            str(data),
            "--metric",
            "ngram",
            "--repeats",
            "1",
            "--split-check",
            "--random-splits",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "5 passages, 15 sentences" in out
    line = next(x for x in out.splitlines() if x.startswith("ngram "))
    nonfact, nonfact_star, factual = (float(v) for v in line.split()[1:4])
    assert 0 <= nonfact <= 100 and 0 <= nonfact_star <= 100 and 0 <= factual <= 100
    assert "5 random half-splits" in out
