"""A custom metric's output is validated where it enters the engine (issue 11, point 5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

import ensemble
from ensemble.errors import InvalidInputError, MetricOutputError, UsageError
from ensemble.metrics.base import FloatArray, Metric, MetricScores


class Fixed(Metric):
    """Support: one fixed value everywhere (or a fixed array)."""

    name = "fixed"

    def __init__(self, value: object) -> None:
        self.value = value

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        if isinstance(self.value, float):
            return np.full((len(spans), len(samples)), self.value)
        return self.value  # type: ignore[return-value]


TEXT = "Paris is the capital. It is big."
SAMPLES = ["Paris is the capital.", "It is big."]


@pytest.mark.parametrize("value", [2.0, -1.0, float("inf"), float("-inf"), 1.5])
def test_support_outside_the_unit_interval_is_an_error_naming_the_metric(value: float) -> None:
    with pytest.raises(MetricOutputError, match=r"'fixed'.*outside \[0, 1\]"):
        ensemble.score(text=TEXT, samples=SAMPLES, metric=Fixed(value))
    with pytest.raises(MetricOutputError):
        ensemble.consensus(SAMPLES, metric=Fixed(value))


def test_nan_support_is_an_abstention_not_an_error() -> None:
    result = ensemble.score(text=TEXT, samples=SAMPLES, metric=Fixed(float("nan")))
    assert all(s.confidence == 0.0 and s.support == (None, None) for s in result.spans)
    assert any(a.kind == "abstention" for a in result.alerts)


def test_tiny_rounding_outside_the_interval_is_clipped() -> None:
    result = ensemble.score(text=TEXT, samples=SAMPLES, metric=Fixed(1.0 + 1e-12))
    assert all(s.confidence == 1.0 for s in result.spans)


@pytest.mark.parametrize("value", [np.zeros((5, 7)), np.zeros(2), [["a", "b"]], None])
def test_a_wrong_shape_is_the_trees_error_not_a_bare_value_error(value: object) -> None:
    with pytest.raises(MetricOutputError, match="fixed") as info:
        ensemble.score(text=TEXT, samples=SAMPLES, metric=Fixed(value))
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, UsageError)


def test_an_undocumented_granularity_is_refused() -> None:
    with pytest.raises(MetricOutputError, match="granularity"):

        class Paragraph(Fixed):
            granularity = "paragraph"  # type: ignore[assignment]

    metric = Fixed(0.5)
    metric.granularity = "paragraph"  # type: ignore[misc]
    with pytest.raises(MetricOutputError, match="granularity"):
        ensemble.score(text=TEXT, samples=SAMPLES, metric=metric)


class BadEvaluate(Fixed):
    def __init__(self, confidence: FloatArray) -> None:
        super().__init__(0.5)
        self.confidence = confidence

    def evaluate(
        self,
        text: str,
        spans: Sequence[tuple[int, int]],
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> MetricScores:
        return MetricScores(np.full((len(spans), len(samples)), 0.5), self.confidence)


@pytest.mark.parametrize(
    "confidence", [np.array([0.5, 2.0]), np.array([0.5, np.nan]), np.array([0.5])]
)
def test_an_overridden_evaluate_is_validated_too(confidence: FloatArray) -> None:
    with pytest.raises(MetricOutputError, match="fixed"):
        ensemble.score(text=TEXT, samples=SAMPLES, metric=BadEvaluate(confidence))


class AsyncFixed(Fixed):
    """``Fixed`` as a natively async metric: the engine reaches it through ``asupport``."""

    async def asupport(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        return self.support(text, spans, samples)


@pytest.mark.parametrize("value", [2.0, np.zeros((5, 7))])
async def test_the_async_path_validates_support_too(value: object) -> None:
    with pytest.raises(MetricOutputError, match="fixed"):
        await ensemble.ascore(text=TEXT, samples=SAMPLES, metric=Fixed(value))
    with pytest.raises(MetricOutputError, match="fixed"):
        await ensemble.aconsensus(SAMPLES, metric=Fixed(value))
    with pytest.raises(MetricOutputError, match="fixed"):  # asupport, then aagreement
        await ensemble.aconsensus(SAMPLES, metric=AsyncFixed(value))
    with pytest.raises(MetricOutputError, match="fixed"):  # asupport, then aevaluate
        await ensemble.ascore(text=TEXT, samples=SAMPLES, metric=AsyncFixed(value))


class BadAsyncEvaluate(BadEvaluate):
    async def aevaluate(
        self,
        text: str,
        spans: Sequence[tuple[int, int]],
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> MetricScores:
        return self.evaluate(text, spans, samples, weights)


async def test_an_overridden_aevaluate_is_validated_on_the_async_path() -> None:
    metric = BadAsyncEvaluate(np.array([0.5, 2.0]))
    with pytest.raises(MetricOutputError, match="fixed"):
        await ensemble.ascore(text=TEXT, samples=SAMPLES, metric=metric)
    with pytest.raises(MetricOutputError, match="fixed"):
        ensemble.score(text=TEXT, samples=SAMPLES, metric=metric)
