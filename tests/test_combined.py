"""CombinedMetric: weighted means, the logistic model, signatures, abstentions, registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest

import ensemble
from ensemble.errors import ConfigurationError, InvalidInputError
from ensemble.metrics.base import FloatArray, Metric
from ensemble.metrics.combined import CombinedMetric
from ensemble.metrics.entailment import EntailmentMetric


class Const(Metric):
    """Support ``value`` everywhere (NaN to abstain)."""

    name: ClassVar[str] = "const"

    def __init__(self, value: float) -> None:
        self.value = value

    def settings(self) -> dict[str, ensemble.types.SettingValue]:
        return {"value": self.value}

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        return np.full((len(spans), len(samples)), self.value)


TEXT = "Ada Lovelace was born in London. She died in 1852."
SAMPLES = ["Ada Lovelace was born in London.", "Ada died in 1852 in London.", "Something else."]


def test_weighted_mean_of_parts() -> None:
    m = CombinedMetric([Const(0.2), Const(0.8)], weights=[3, 1])
    r = ensemble.score(text=TEXT, samples=SAMPLES, metric=m)
    assert [s.confidence for s in r.spans] == pytest.approx([0.35, 0.35])
    assert r.spans[0].support == pytest.approx((0.35, 0.35, 0.35))


def test_equal_weights_by_default_and_real_metrics() -> None:
    ngram = ensemble.get_metric("ngram")
    m = CombinedMetric([ngram, ngram])
    r = ensemble.score(text=TEXT, samples=SAMPLES, metric=m)
    alone = ensemble.score(text=TEXT, samples=SAMPLES, metric="ngram")
    assert [s.confidence for s in r.spans] == pytest.approx([s.confidence for s in alone.spans])
    c = ensemble.consensus(SAMPLES, metric=m)
    assert c.text in SAMPLES


def test_signature_names_parts_and_weights() -> None:
    m = CombinedMetric([Const(0.2), "ngram"], weights=[1, 3])
    sig = m.info.signature
    assert sig.startswith("combined|parts:[const|value:0.2|version:1;ngram|")
    assert "weights:0.25,0.75" in sig
    other = CombinedMetric([Const(0.2), "ngram"], weights=[3, 1])
    assert other.info.signature != sig


def test_logistic_model() -> None:
    m = CombinedMetric([Const(0.2), Const(0.8)], logistic=(-1.0, [2.0, 1.0]))
    conf = m.evaluate(TEXT, [(0, 5)], SAMPLES).confidence
    assert conf[0] == pytest.approx(1 / (1 + np.exp(-(-1.0 + 0.4 + 0.8))))
    assert "logistic:-1,2,1" in m.info.signature


def test_fit_learns_which_part_matters() -> None:
    rng = np.random.default_rng(0)
    useful = rng.uniform(size=2000)
    noise = rng.uniform(size=2000)
    labels = (rng.uniform(size=2000) < useful).astype(float)
    m = CombinedMetric.fit([Const(0.0), Const(0.0)], np.c_[useful, noise], labels)
    assert m.logistic is not None
    _b, (a_useful, a_noise) = m.logistic
    assert a_useful > 3.0 and abs(a_noise) < 0.5
    with pytest.raises(InvalidInputError):
        CombinedMetric.fit(["ngram"], np.c_[useful, noise], labels)


def test_abstentions_are_left_out_not_counted() -> None:
    m = CombinedMetric([Const(float("nan")), Const(0.6)])
    sup = m.support(TEXT, [(0, 5)], SAMPLES)
    assert sup == pytest.approx(np.full((1, 3), 0.6))
    both = CombinedMetric([Const(float("nan")), Const(float("nan"))])
    assert np.isnan(both.support(TEXT, [(0, 5)], SAMPLES)).all()


def test_bad_configurations() -> None:
    with pytest.raises(ConfigurationError):
        CombinedMetric([])
    with pytest.raises(ConfigurationError):
        CombinedMetric("ngram")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="split texts the same way"):
        CombinedMetric(["ngram", "prefix"])
    with pytest.raises(ConfigurationError):
        CombinedMetric(["ngram", "ngram"], weights=[1, -1])
    with pytest.raises(ConfigurationError):
        CombinedMetric(["ngram", "ngram"], weights=[1, 1], logistic=(0.0, [1.0, 1.0]))
    with pytest.raises(ConfigurationError):
        CombinedMetric(["ngram", "ngram"], logistic=(0.0, [1.0]))


def test_registered_default_is_ngram_plus_entailment() -> None:
    assert "combined" in ensemble.available_metrics()
    try:
        m = ensemble.get_metric("combined")
    except ImportError:  # MissingDependencyError: the similarity extra is not installed
        pytest.skip("entailment needs the similarity extra")
    assert isinstance(m, CombinedMetric)
    assert [p.name for p in m.parts] == ["ngram", "entailment"]
    assert m.weights == (0.85, 0.15)  # chosen by cross-validation over the WikiBio halves
    assert CombinedMetric(["ngram", "entailment"]).weights == (0.5, 0.5)  # explicit parts


def test_default_entailment_part_squares_support() -> None:
    try:
        m = CombinedMetric()
    except ImportError:  # MissingDependencyError: the similarity extra is not installed
        pytest.skip("entailment needs the similarity extra")
    entailment = m.parts[1]
    assert isinstance(entailment, EntailmentMetric) and entailment.power == 2
    # explicit parts by name keep each metric's own defaults
    explicit = CombinedMetric(["ngram", "entailment"]).parts[1]
    assert isinstance(explicit, EntailmentMetric) and explicit.power == 1
