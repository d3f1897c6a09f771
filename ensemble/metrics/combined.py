"""``CombinedMetric``: one confidence from several metrics.

Two ways to combine the parts' confidences ``c_1 .. c_k`` of a span:

- **weights** (the default: equal weights; :data:`DEFAULT_WEIGHTS` for the default parts):
  ``confidence = sum_i w_i * c_i / sum_i w_i``, a
  weighted mean, so it stays in [0, 1] and means "the parts' average support".
- **a small logistic model**: ``confidence = sigmoid(b + sum_i a_i * c_i)``, fitted on labelled
  spans with :meth:`CombinedMetric.fit` (numpy Newton/IRLS, see
  :func:`ensemble.calibration.fit_logistic`). Its confidence is then an estimate of
  P(span accurate) on data like the data it was fitted on.

The per-sample support matrix (``Span.support``) is the weighted mean of the parts' support
matrices (with the logistic model, weighted by ``|a_i|``); a part that abstains on a (span,
sample) pair (NaN) is left out of that pair's mean. Pairwise agreement (used to choose the
consensus candidate) is the same weighted mean of the parts' agreement matrices.

The parts must split texts the same way (the same ``granularity``). The signature of a combined
metric names every part with its own signature, and the weights or the model, so a number can
be reproduced::

    metric = CombinedMetric(["ngram", "semantic"], weights=[0.7, 0.3])
    metric.info.signature
    # 'combined|parts:ngram|...;semantic|...|weights:0.7,0.3|version:1'

``get_metric("combined")`` is ``0.85 x ngram + 0.15 x entailment`` (offline default backend,
each sample's support squared: ``EntailmentMetric(power=2)``). Whether combinations of the
offline metrics beat ``ngram`` alone on the WikiBio benchmark is measured, with
cross-validation over the halves of the passages, by ``benchmarks/combine.py --halves``;
see ``docs/metrics/combined.md`` for the figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ensemble.calibration import fit_logistic
from ensemble.errors import ConfigurationError, InvalidInputError
from ensemble.metrics.base import FloatArray, Granularity, Metric, MetricScores, get_metric
from ensemble.types import SettingValue, metric_part

__all__ = ["CombinedMetric"]

#: The weights of the default parts of ``CombinedMetric()`` (``ngram`` and an
#: ``entailment`` part that squares each sample's support, ``power=2``:
#: :func:`_default_parts`). Chosen by cross-validation over the two halves of the 60 WikiBio
#: dev passages with ``ngram`` version 4 (mean AP on one half, reported on the other;
#: ``benchmarks/combine.py --halves``): both halves pick an ngram weight of 0.85
#: (docs/metrics/combined.md). Other parts, or explicit ``weights``, default to equal weights.
DEFAULT_WEIGHTS: tuple[float, ...] = (0.85, 0.15)


def _default_parts() -> tuple[Metric, ...]:
    """What ``get_metric("combined")`` (``CombinedMetric()``) combines, with
    :data:`DEFAULT_WEIGHTS`: ``ngram`` and ``entailment`` with ``power=2`` (each sample's
    support squared before the mean). It needs the ``similarity`` extra."""
    from ensemble.metrics.entailment import EntailmentMetric

    return (get_metric("ngram"), EntailmentMetric(power=2))


def _number(x: float) -> str:
    return f"{x:.6g}"


class CombinedMetric(Metric):
    """Several metrics combined into one confidence (see the module docstring)."""

    name: ClassVar[str] = "combined"
    version: ClassVar[str] = "1"

    def __init__(
        self,
        metrics: Sequence[str | Metric] | None = None,
        *,
        weights: Sequence[float] | None = None,
        logistic: tuple[float, Sequence[float]] | None = None,
    ) -> None:
        if metrics is None:
            self.parts: tuple[Metric, ...] = _default_parts()
        elif isinstance(metrics, (str, Metric)) or not isinstance(metrics, Sequence):
            raise ConfigurationError("metrics must be a list of metric names or Metric objects")
        elif len(metrics) == 0:
            raise ConfigurationError("a combined metric needs at least one metric")
        else:
            self.parts = tuple(get_metric(m) for m in metrics)
        kinds = {p.granularity for p in self.parts}
        if len(kinds) > 1:
            listed = ", ".join(f"{p.name} ({p.granularity})" for p in self.parts)
            raise ConfigurationError(
                f"the metrics of a combination must split texts the same way; got {listed}"
            )
        self._granularity: Granularity = self.parts[0].granularity
        k = len(self.parts)
        if weights is None and logistic is None and metrics is None:
            weights = DEFAULT_WEIGHTS
        if weights is not None and logistic is not None:
            raise ConfigurationError("give weights or logistic, not both")
        self.logistic: tuple[float, tuple[float, ...]] | None = None
        if logistic is not None:
            intercept, coef = logistic
            coefs = tuple(float(c) for c in coef)
            if len(coefs) != k or not all(math.isfinite(c) for c in (*coefs, float(intercept))):
                raise ConfigurationError(
                    f"logistic needs a finite intercept and {k} finite coefficient(s)"
                )
            self.logistic = (float(intercept), coefs)
            raw = np.abs(np.array(coefs))
            self.weights = tuple((raw / raw.sum()).tolist()) if raw.sum() > 0 else (1.0 / k,) * k
        else:
            w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
            if w.shape != (k,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ConfigurationError(
                    f"weights must be {k} non-negative finite number(s) with a positive sum"
                )
            self.weights = tuple((w / w.sum()).tolist())

    @property
    def granularity(self) -> Granularity:  # type: ignore[override]
        return self._granularity

    @classmethod
    def fit(
        cls,
        metrics: Sequence[str | Metric],
        confidences: FloatArray | Sequence[Sequence[float]],
        labels: Sequence[float] | FloatArray,
        *,
        ridge: float = 1e-3,
    ) -> CombinedMetric:
        """A logistic combination fitted on labelled spans.

        ``confidences`` has one row per labelled span and one column per metric (each
        metric's confidence for that span, e.g. from :meth:`part_confidences`); ``labels``
        are 1 for an accurate span and 0 for an inaccurate one.
        """
        X = np.asarray(confidences, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(metrics) or y.shape != (X.shape[0],):
            raise InvalidInputError(
                "confidences must have one row per label and one column per metric"
            )
        if X.shape[0] < 2 or not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise InvalidInputError("fitting needs at least two finite rows")
        if ((y < 0) | (y > 1)).any():
            raise InvalidInputError("labels must lie in [0, 1]")
        b, a = fit_logistic(X, y, ridge=ridge)
        return cls(metrics, logistic=(b, a.tolist()))

    def settings(self) -> dict[str, SettingValue]:
        out: dict[str, SettingValue] = {
            "parts": "[" + ";".join(metric_part(p.info.signature) for p in self.parts) + "]"
        }
        if self.logistic is not None:
            b, a = self.logistic
            out["logistic"] = ",".join(_number(x) for x in (b, *a))
        else:
            out["weights"] = ",".join(_number(w) for w in self.weights)
        return out

    def __repr__(self) -> str:
        parts = ", ".join(repr(p) for p in self.parts)
        how = f"logistic={self.logistic!r}" if self.logistic else f"weights={self.weights!r}"
        return f"CombinedMetric([{parts}], {how})"

    # -- scoring ----------------------------------------------------------------------------

    def _mix(self, arrays: Sequence[FloatArray]) -> FloatArray:
        """Weighted mean over the parts, leaving NaN (abstentions) out; NaN if all are."""
        stack = np.stack([np.asarray(a, dtype=np.float64) for a in arrays])
        w = np.asarray(self.weights, dtype=np.float64).reshape((-1,) + (1,) * (stack.ndim - 1))
        given = ~np.isnan(stack)
        mass = (given * w).sum(axis=0)
        total = (np.nan_to_num(stack) * w * given).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(mass > 0, total / np.where(mass > 0, mass, 1.0), np.nan)
        return np.asarray(out, dtype=np.float64)

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        return self._mix([p.support(text, spans, samples) for p in self.parts])

    def part_confidences(
        self,
        text: str,
        spans: Sequence[tuple[int, int]],
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> FloatArray:
        """Each part's confidence per span: shape ``(len(spans), len(parts))``."""
        return np.stack(
            [p.evaluate(text, spans, samples, weights).confidence for p in self.parts], axis=1
        ).reshape(len(spans), len(self.parts))

    def combine(self, part_confidences: FloatArray) -> FloatArray:
        """The combined confidence from the parts' confidences ``(n, len(parts))``."""
        c = np.asarray(part_confidences, dtype=np.float64)
        if self.logistic is not None:
            b, a = self.logistic
            z = b + c @ np.asarray(a, dtype=np.float64)
            return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)
        return np.asarray(c @ np.asarray(self.weights, dtype=np.float64), dtype=np.float64)

    def evaluate(
        self,
        text: str,
        spans: Sequence[tuple[int, int]],
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> MetricScores:
        scores = [p.evaluate(text, spans, samples, weights) for p in self.parts]
        conf = np.stack([s.confidence for s in scores], axis=1).reshape(len(spans), len(scores))
        support = self._mix([s.support for s in scores])
        return MetricScores(support, np.clip(self.combine(conf), 0.0, 1.0))

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        return self._mix([p.agreement(texts) for p in self.parts])
