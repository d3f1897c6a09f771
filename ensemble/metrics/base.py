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

Every method has an async twin (``asupport``, ``aevaluate``, ``aagreement``) that the async
core (:func:`ensemble.aconsensus`, :meth:`ensemble.Ensemble.arun`) awaits. By default they run
the sync method in a worker thread, so a CPU-bound metric never blocks the event loop. A metric
whose work is itself a coroutine (e.g. an LLM judge) overrides :meth:`Metric.asupport` (and
reports ``is_async``): the default ``aevaluate`` / ``aagreement`` are then built on it, on the
caller's loop, and the sync methods are the wrappers.

Third-party packages register metrics through the entry-point group ``ensemble.metrics``::

    [project.entry-points."ensemble.metrics"]
    length = "mypkg.metrics:LengthMetric"
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt

from ensemble import segment
from ensemble._registry import Registry
from ensemble._version import __version__
from ensemble.errors import InvalidInputError, MetricOutputError
from ensemble.types import MetricInfo, SettingValue

__all__ = ["Metric", "MetricScores", "available_metrics", "get_metric", "register_metric"]

FloatArray = npt.NDArray[np.float64]
Granularity = Literal["sentence", "token", "text"]
GRANULARITIES: tuple[str, ...] = ("sentence", "token", "text")
#: Support or confidence this far outside [0, 1] is floating-point noise, clipped silently.
_SLACK = 1e-9
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

    :attr:`info` names the library version as well (``MetricInfo.ensemble``), so a change to
    what all metrics share (segmentation, the consensus) changes every signature.
    """

    name: ClassVar[str]
    granularity: ClassVar[Granularity] = "sentence"
    symmetric: ClassVar[bool] = False
    version: ClassVar[str] = "1"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("granularity")
        if declared is not None and not isinstance(declared, property):  # a property: at use
            _check_granularity(cls.__name__, declared)

    def settings(self) -> dict[str, SettingValue]:
        """The settings that, with ``name`` and ``version``, reproduce this metric's numbers."""
        return {}

    @property
    def info(self) -> MetricInfo:
        return MetricInfo(
            name=self.name, settings=self.settings(), version=self.version, ensemble=__version__
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"

    def segment(self, text: str) -> list[tuple[int, int]]:
        """Split ``text`` into the spans this metric scores, as character offsets."""
        _check_granularity(type(self).__name__, self.granularity)
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

    @property
    def is_async(self) -> bool:
        """Whether this metric's work is natively a coroutine (it overrides :meth:`asupport`).

        Then the async twins run on the caller's event loop, and the sync calls of the engine
        (:func:`ensemble.consensus`, :func:`ensemble.score`) run the async core on a loop of
        their own (refusing inside a running loop).
        """
        return type(self).asupport is not Metric.asupport

    async def asupport(self, text: str, spans: Offsets, samples: Sequence[str]) -> FloatArray:
        """:meth:`support` as a coroutine; the default runs it in a worker thread."""
        return await asyncio.to_thread(self.support, text, spans, samples)

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
        return self._scores(self.support(text, spans, samples), spans, samples, weights)

    async def aevaluate(
        self,
        text: str,
        spans: Offsets,
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> MetricScores:
        """:meth:`evaluate` as a coroutine: built on :meth:`asupport` when the metric
        :attr:`is_async`, else :meth:`evaluate` in a worker thread."""
        if not self.is_async:
            return await asyncio.to_thread(self.evaluate, text, spans, samples, weights)
        return self._scores(await self.asupport(text, spans, samples), spans, samples, weights)

    def _scores(
        self,
        support: object,
        spans: Offsets,
        samples: Sequence[str],
        weights: FloatArray | None,
    ) -> MetricScores:
        sup = check_support(self, support, len(spans), len(samples))
        return MetricScores(sup, weighted_mean(sup, weights))

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        """Pairwise agreement: ``A[i, j]`` is how well ``texts[i]`` is supported by ``texts[j]``.

        The default is the length-weighted mean support of the spans of ``texts[i]`` by
        ``texts[j]`` (abstentions left out); the diagonal is 1. A text with no spans agrees
        fully with an empty text and not at all with anything else.
        """
        out = np.eye(len(texts), dtype=np.float64)
        for i, spans, others in self._agreement_rows(texts, out):
            sup = self.support(texts[i], spans, [texts[j] for j in others])
            out[i, others] = _row_agreement(self, sup, spans, len(others))
        return out

    async def aagreement(self, texts: Sequence[str]) -> FloatArray:
        """:meth:`agreement` as a coroutine: built on :meth:`asupport` when the metric
        :attr:`is_async` (one text after the other, so a judge's limits hold), else
        :meth:`agreement` in a worker thread."""
        if not self.is_async:
            return await asyncio.to_thread(self.agreement, texts)
        out = np.eye(len(texts), dtype=np.float64)
        rows = await asyncio.to_thread(self._agreement_rows, texts, out)  # segmentation
        for i, spans, others in rows:
            sup = await self.asupport(texts[i], spans, [texts[j] for j in others])
            out[i, others] = _row_agreement(self, sup, spans, len(others))
        return out

    def _agreement_rows(
        self, texts: Sequence[str], out: FloatArray
    ) -> list[tuple[int, list[tuple[int, int]], list[int]]]:
        """The rows of :meth:`agreement` that need the metric: ``(i, spans of texts[i],
        the other indices)``. Rows of texts without spans are filled in ``out`` here."""
        n = len(texts)
        rows = []
        for i, text in enumerate(texts):
            others = [j for j in range(n) if j != i]
            if not others:
                continue
            spans = self.segment(text)
            if not spans:
                out[i, others] = [1.0 if not texts[j].strip() else 0.0 for j in others]
                continue
            rows.append((i, spans, others))
        return rows

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Release what the metric holds open on the current event loop (e.g. a judge
        model's connections); the metric stays usable."""


def _row_agreement(metric: Metric, support: object, spans: Offsets, n_others: int) -> FloatArray:
    """Length-weighted mean support of ``spans`` (rows) for each other text (columns), the
    support validated first (:func:`check_support`)."""
    sup = check_support(metric, support, len(spans), n_others)
    lengths = np.array([max(b - a, 1) for a, b in spans], dtype=np.float64)
    return weighted_mean(sup.T, lengths)


def _check_granularity(owner: str, granularity: object) -> None:
    if granularity not in GRANULARITIES:
        raise MetricOutputError(
            f"{owner}.granularity is {granularity!r}; it must be one of "
            + ", ".join(repr(g) for g in GRANULARITIES)
        )


def _metric_label(metric: object) -> str:
    name = getattr(metric, "name", None)
    return f"metric {name!r} ({type(metric).__name__})" if name else type(metric).__name__


def _checked(metric: object, what: str, values: object, shape: tuple[int, ...]) -> FloatArray:
    """``values`` as a float array of ``shape`` in [0, 1] (NaN allowed), or a clear error."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MetricOutputError(
            f"{_metric_label(metric)} returned {what} that is not an array of numbers: {exc}"
        ) from None
    if arr.shape != shape:
        raise MetricOutputError(
            f"{_metric_label(metric)} returned {what} of shape {arr.shape}, expected {shape}"
        )
    finite = arr[~np.isnan(arr)]
    if finite.size and (
        not np.isfinite(finite).all() or finite.min() < -_SLACK or finite.max() > 1.0 + _SLACK
    ):
        bad = finite[~np.isfinite(finite) | (finite < -_SLACK) | (finite > 1.0 + _SLACK)]
        raise MetricOutputError(
            f"{_metric_label(metric)} returned {what} outside [0, 1] (e.g. {float(bad[0])!r}); "
            "values must lie in [0, 1], with NaN for an abstention"
        )
    return np.clip(arr, 0.0, 1.0)


def check_support(metric: object, support: object, n_spans: int, n_samples: int) -> FloatArray:
    """Validate a metric's support matrix: shape ``(n_spans, n_samples)``, values in [0, 1]
    or NaN (an abstention). Raises :class:`~ensemble.errors.MetricOutputError` naming the
    metric otherwise."""
    return _checked(metric, "support", support, (n_spans, n_samples))


def check_scores(metric: object, scores: object, n_spans: int, n_samples: int) -> MetricScores:
    """Validate what :meth:`Metric.evaluate` returned (see :func:`check_support`); the
    confidences must be numbers in [0, 1] (not NaN: a span with no verdict has confidence 0)."""
    if not isinstance(scores, MetricScores):
        raise MetricOutputError(
            f"{_metric_label(metric)}.evaluate returned {type(scores).__name__}, not a MetricScores"
        )
    support = check_support(metric, scores.support, n_spans, n_samples)
    confidence = _checked(metric, "confidence", scores.confidence, (n_spans,))
    if np.isnan(confidence).any():
        raise MetricOutputError(
            f"{_metric_label(metric)} returned a NaN confidence; use 0.0 for a span nothing "
            "supports (NaN is for abstentions in the support matrix)"
        )
    return MetricScores(support, confidence)


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
