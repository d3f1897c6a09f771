"""The metric interface and the registry that resolves metric names.

A metric answers one question: *how well is each span of a text supported by each of a set
of samples?* It returns a matrix of support values in [0, 1], one row per span and one column
per sample, and turns that matrix into one confidence per span (by default the weighted mean
over samples). The consensus engine does the rest: choosing the candidate text, aligning
support with the samples, thresholds and results.

Writing a metric::

    class LengthMetric(Metric):
        name = "length"
        granularity = "sentence"

        def support(self, text, spans, samples):
            ...  # np.ndarray of shape (len(spans), len(samples)), values in [0, 1]

    ensemble.register_metric("length", LengthMetric)

Third-party packages register metrics through the entry-point group ``ensemble.metrics``::

    [project.entry-points."ensemble.metrics"]
    length = "mypkg.metrics:LengthMetric"
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

from ensemble import segment
from ensemble._registry import Registry
from ensemble.errors import InvalidInputError
from ensemble.types import MetricInfo, SettingValue

__all__ = ["Metric", "MetricScores", "available_metrics", "get_metric", "register_metric"]

FloatArray = npt.NDArray[np.float64]
Granularity = Literal["sentence", "token", "text"]
Offsets = Sequence[tuple[int, int]]


class MetricScores:
    """What :meth:`Metric.evaluate` returns: per-sample support and per-span confidence."""

    __slots__ = ("confidence", "support")

    def __init__(self, support: FloatArray, confidence: FloatArray) -> None:
        self.support = support
        """Shape ``(n_spans, n_samples)``, values in [0, 1]."""
        self.confidence = confidence
        """Shape ``(n_spans,)``, values in [0, 1]."""


class Metric(abc.ABC):
    """Base class of all metrics. Subclasses implement :meth:`support`.

    Class attributes declare what a metric is, so callers never have to probe:

    - ``name``: the registry name;
    - ``granularity``: the spans it scores when the library segments a text itself
      (``"sentence"``, ``"token"`` or ``"text"`` for the whole text as one span);
    - ``symmetric``: whether ``agreement(texts)`` is symmetric;
    - ``version``: bumped whenever the same settings would give different numbers.
    """

    name: ClassVar[str]
    granularity: ClassVar[Granularity] = "sentence"
    symmetric: ClassVar[bool] = False
    version: ClassVar[str] = "1"

    def settings(self) -> dict[str, SettingValue]:
        """The settings that, with ``name`` and ``version``, reproduce this metric's numbers."""
        return {}

    @property
    def info(self) -> MetricInfo:
        return MetricInfo(name=self.name, settings=self.settings(), version=self.version)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"

    def segment(self, text: str) -> list[tuple[int, int]]:
        """Split ``text`` into the spans this metric scores, as character offsets."""
        if self.granularity == "sentence":
            return segment.sentences(text)
        if self.granularity == "token":
            return segment.tokens(text)
        stripped = text.strip()
        if not stripped:
            return []
        start = text.index(stripped)
        return [(start, start + len(stripped))]

    @abc.abstractmethod
    def support(self, text: str, spans: Offsets, samples: Sequence[str]) -> FloatArray:
        """How well each span of ``text`` is supported by each sample.

        Returns an array of shape ``(len(spans), len(samples))`` with values in [0, 1]. A
        NaN entry is an abstention (the sample could not be judged for that span): it is left
        out of the confidence and of the agreement, and shows as ``None`` in ``Span.support``.
        """

    def evaluate(
        self,
        text: str,
        spans: Offsets,
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> MetricScores:
        """Support per sample and one confidence per span.

        The default confidence is the weighted mean of support over the samples (equal weights
        unless ``weights`` is given). A metric may override this to pool evidence across
        samples, as long as it documents what the number means. With no samples, every
        confidence is 0.0: nothing supports the text.
        """
        sup = np.asarray(self.support(text, spans, samples), dtype=np.float64)
        if sup.shape != (len(spans), len(samples)):
            raise ValueError(
                f"{type(self).__name__}.support returned shape {sup.shape}, "
                f"expected {(len(spans), len(samples))}"
            )
        sup = np.clip(sup, 0.0, 1.0)
        return MetricScores(sup, weighted_mean(sup, weights))

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        """Pairwise agreement: ``A[i, j]`` is how well ``texts[i]`` is supported by ``texts[j]``.

        The default is the length-weighted mean support of the spans of ``texts[i]`` by
        ``texts[j]`` (abstentions left out); the diagonal is 1. A text with no spans agrees
        fully with an empty text and not at all with anything else.
        """
        n = len(texts)
        out = np.eye(n, dtype=np.float64)
        for i, text in enumerate(texts):
            others = [j for j in range(n) if j != i]
            if not others:
                continue
            spans = self.segment(text)
            if not spans:
                out[i, others] = [1.0 if not texts[j].strip() else 0.0 for j in others]
                continue
            sup = np.clip(
                np.asarray(self.support(text, spans, [texts[j] for j in others]), float), 0.0, 1.0
            )
            lengths = np.array([max(b - a, 1) for a, b in spans], dtype=np.float64)
            out[i, others] = weighted_mean(sup.T, lengths)
        return out


def weighted_mean(support: FloatArray, weights: FloatArray | None) -> FloatArray:
    """Mean of ``support`` over its columns (samples), weighted, leaving NaN (abstentions) out.

    A row with no sample left (none given, or all abstained) gets 0.0: nothing supports it.
    """
    n_spans, n_samples = support.shape
    if n_samples == 0:
        return np.zeros(n_spans, dtype=np.float64)
    if weights is None:
        w = np.ones(n_samples, dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n_samples,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise InvalidInputError("weights must be one non-negative finite number per sample")
    mass = ~np.isnan(support) * w[None, :]
    total = mass.sum(axis=1)
    summed = (np.nan_to_num(support) * mass).sum(axis=1)
    return np.where(total > 0, summed / np.where(total > 0, total, 1.0), 0.0)


# --- registry -------------------------------------------------------------------------------

MetricFactory = Callable[[], Metric]

#: Built-in metrics, imported only when first asked for (heavy backends stay unloaded).
_BUILTIN: dict[str, str] = {
    "combined": "ensemble.metrics.combined:CombinedMetric",
    "entailment": "ensemble.metrics.entailment:EntailmentMetric",
    "ngram": "ensemble.metrics.ngram:NgramMetric",
    "prefix": "ensemble.metrics.prefix:PrefixMetric",
    "semantic": "ensemble.metrics.semantic:SemanticMetric",
    "vote": "ensemble.metrics.vote:VoteMetric",
}
METRICS: Registry[Metric] = Registry(
    "metric", product=Metric, builtin=_BUILTIN, group="ensemble.metrics"
)


def register_metric(name: str, factory: MetricFactory, *, replace: bool = False) -> None:
    """Make ``get_metric(name)`` return ``factory()``.

    ``factory`` is a :class:`Metric` subclass or any callable returning a metric.
    """
    METRICS.register(name, factory, replace=replace)


def available_metrics() -> list[str]:
    """Every metric name that :func:`get_metric` resolves (built-in, registered, entry points)."""
    return METRICS.names()


def get_metric(name: str | Metric) -> Metric:
    """Resolve a metric name (or pass a :class:`Metric` through unchanged).

    Raises :class:`~ensemble.errors.UnknownNameError`, which lists the known names, for a name
    no registry knows.
    """
    if isinstance(name, Metric):
        return name
    if not isinstance(name, str):
        raise InvalidInputError(
            f"metric must be a name or a Metric instance, not {type(name).__name__}"
        )
    return METRICS.resolve(name)
