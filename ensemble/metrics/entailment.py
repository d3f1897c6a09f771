"""``entailment``: is each span entailed, contradicted, or not addressed by each sample?

A *backend* judges one sample against all the spans of the candidate at once and returns, for
each span, three probabilities ``(entail, neutral, contradict)`` that sum to 1, or an
*abstention* (a row of NaN) when it has no verdict (for example an LLM judge whose answer did
not parse). The metric turns verdicts into support:

    support = max(0, P(entail) - P(contradict))

so a span is supported only as far as the sample entails it, and a contradiction takes away as
much as an entailment gives: a sample that contradicts a span gives 0, exactly like a sample
that says nothing about it, but a sample that is split between entailing and contradicting
counts for less than one that only entails. (SelfCheckGPT's ``P(e) / (P(e) + P(c))`` ignores
the neutral mass: a sample that does not mention the fact at all would then count as
half-support, which is not what "supported" means here; it is available as
``formula="ratio"``.)

The confidence of a span is the (weighted) mean support over the samples that gave a verdict
(with ``power=k``, the mean of each sample's support raised to ``k``: a sample that half
supports a span then counts 1/2**k; ``combined`` uses ``power=2``).
An abstention is never counted as 0.5 or as 0: it is left out of the mean, shows as ``None`` in
``Span.support``, and is reported in ``Consensus.alerts``. A span on which every sample
abstained gets confidence 0 (nothing supports it).

Backends (``backend=``):

- ``"similarity"`` (the default, :class:`SimilarityBackend`, extra ``[similarity]``): an
  **approximation** of entailment from sentence embeddings plus contradiction cues; no download,
  no key. See :mod:`ensemble.metrics._similarity`.
- ``"nli:MODEL"`` or ``NLIBackend(MODEL)`` (extra ``[nli]``): any MNLI-style cross-encoder
  from Hugging Face transformers, by name (from the local cache unless you allow downloads) or
  by local path. See :mod:`ensemble.metrics._nli`.
- any :class:`EntailmentBackend` instance, for example an LLM judge.

Writing a backend: subclass :class:`EntailmentBackend` and implement
:meth:`~EntailmentBackend.judge` (synchronous), or subclass :class:`AsyncEntailmentBackend`
and implement :meth:`~AsyncEntailmentBackend.ajudge` (a coroutine). Either may override the
many-sample methods to batch or run concurrently. With an async backend the metric
:attr:`~ensemble.Metric.is_async`: awaited through the async core
(:func:`ensemble.aconsensus`, :func:`ensemble.ascore`, :meth:`ensemble.Ensemble.arun`) the
judge's calls share the caller's event loop and never block it; the synchronous calls run it on
a loop of their own and refuse inside a running loop (see :mod:`ensemble._sync`).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from ensemble._registry import Registry
from ensemble._sync import run_sync
from ensemble._validate import check_int
from ensemble.errors import ConfigurationError
from ensemble.metrics.base import FloatArray, Granularity, Metric, MetricScores, weighted_mean
from ensemble.types import SettingValue

if TYPE_CHECKING:
    from ensemble.metrics._nli import NLIBackend
    from ensemble.metrics._similarity import SimilarityBackend

__all__ = [
    "AsyncEntailmentBackend",
    "BatchedEntailmentBackend",
    "EntailmentBackend",
    "EntailmentMetric",
    "NLIBackend",
    "SimilarityBackend",
]

#: Column of each verdict: P(entail), P(neutral), P(contradict).
ENTAIL, NEUTRAL, CONTRADICT = 0, 1, 2

Formula = Literal["difference", "ratio"]


def abstention(n_spans: int) -> FloatArray:
    """Verdicts that abstain on every one of ``n_spans`` spans (rows of NaN)."""
    return np.full((n_spans, 3), np.nan, dtype=np.float64)


def check_verdicts(verdicts: object, n_spans: int, who: str = "backend") -> FloatArray:
    """Validate a backend's answer: shape ``(n_spans, 3)``, each row a probability vector (it
    is renormalised to sum 1) or all NaN (an abstention). Raises ``ValueError`` otherwise."""
    v = np.array(verdicts, dtype=np.float64)  # a copy: the backend's array is left alone
    if v.shape != (n_spans, 3):
        raise ValueError(f"{who} returned verdicts of shape {v.shape}, expected {(n_spans, 3)}")
    nan = np.isnan(v)
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    if partial.any():
        raise ValueError(f"{who} returned a verdict with some but not all values NaN")
    given = ~nan.all(axis=1)
    rows = v[given]
    if not np.isfinite(rows).all() or (rows < 0).any() or (rows.sum(axis=1) <= 0).any():
        raise ValueError(f"{who} returned probabilities that are negative, infinite or all zero")
    v[given] = rows / rows.sum(axis=1, keepdims=True)
    return v


def support_from_verdicts(verdicts: FloatArray, formula: Formula = "difference") -> FloatArray:
    """Support in [0, 1] from verdicts ``(..., 3)``; NaN where the backend abstained.

    ``"difference"``: ``max(0, P(e) - P(c))``. ``"ratio"``: ``P(e) / (P(e) + P(c))``, and 0.5
    for a purely neutral verdict (SelfCheckGPT's NLI score, as support).
    """
    pe = verdicts[..., ENTAIL]
    pc = verdicts[..., CONTRADICT]
    if formula == "difference":
        return np.clip(pe - pc, 0.0, 1.0)
    eps = 1e-6
    return np.clip((pe + eps) / (pe + pc + 2 * eps), 0.0, 1.0)


class EntailmentBackend(abc.ABC):
    """Judges spans against samples. Subclasses implement :meth:`judge`.

    Class attributes: ``name`` (shown in the metric's signature), ``version`` (bumped when
    the same settings would give different verdicts) and ``is_async`` (its natural form is a
    coroutine: :class:`AsyncEntailmentBackend`).
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    is_async: ClassVar[bool] = False

    def settings(self) -> dict[str, SettingValue]:
        """Settings that, with ``name`` and ``version``, reproduce this backend's verdicts."""
        return {}

    @abc.abstractmethod
    def judge(self, spans: Sequence[str], sample: str, *, text: str | None = None) -> FloatArray:
        """Verdicts on every span given one sample: shape ``(len(spans), 3)``.

        Row ``k`` is ``(P(entail), P(neutral), P(contradict))`` for ``spans[k]`` given
        ``sample`` as the evidence, or all NaN to abstain. ``text`` is the whole text the spans
        come from (context for pronouns), when known.
        """

    async def ajudge(
        self, spans: Sequence[str], sample: str, *, text: str | None = None
    ) -> FloatArray:
        """:meth:`judge` as a coroutine; the default runs it in a worker thread."""
        return await asyncio.to_thread(self.judge, spans, sample, text=text)

    def judge_samples(
        self, spans: Sequence[str], samples: Sequence[str], *, text: str | None = None
    ) -> FloatArray:
        """Verdicts on every span for every sample: shape ``(len(spans), len(samples), 3)``.

        The default calls :meth:`judge` once per sample; override it to batch across samples.
        """
        out = np.empty((len(spans), len(samples), 3), dtype=np.float64)
        for j, sample in enumerate(samples):
            out[:, j, :] = self.judge(spans, sample, text=text)
        return out

    async def ajudge_samples(
        self, spans: Sequence[str], samples: Sequence[str], *, text: str | None = None
    ) -> FloatArray:
        """:meth:`judge_samples` as a coroutine; the default judges the samples concurrently
        with :meth:`ajudge` (one call per sample)."""
        parts = await asyncio.gather(*(self.ajudge(spans, s, text=text) for s in samples))
        out = np.empty((len(spans), len(samples), 3), dtype=np.float64)
        for j, part in enumerate(parts):
            out[:, j, :] = part
        return out

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Release what the backend holds open on the current event loop (e.g. a judge
        model's connections); the backend stays usable."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"


class BatchedEntailmentBackend(EntailmentBackend):
    """A backend that judges all samples in one batch (e.g. one model forward pass).
    Implement :meth:`judge_samples`; :meth:`judge` is one sample's slice of it."""

    @abc.abstractmethod
    def judge_samples(
        self, spans: Sequence[str], samples: Sequence[str], *, text: str | None = None
    ) -> FloatArray:
        """Verdicts on every span for every sample: shape ``(len(spans), len(samples), 3)``."""

    def judge(self, spans: Sequence[str], sample: str, *, text: str | None = None) -> FloatArray:
        return self.judge_samples(spans, [sample], text=text)[:, 0, :]


class AsyncEntailmentBackend(EntailmentBackend):
    """A backend whose natural form is a coroutine (e.g. a model call). Implement :meth:`ajudge`
    (and, to control concurrency across samples, :meth:`ajudge_samples`); the synchronous
    methods run them on an event loop of their own, then :meth:`aclose`, and refuse inside a
    running loop (:mod:`ensemble._sync`)."""

    is_async: ClassVar[bool] = True

    @abc.abstractmethod
    async def ajudge(
        self, spans: Sequence[str], sample: str, *, text: str | None = None
    ) -> FloatArray:
        """See :meth:`EntailmentBackend.judge`."""

    def judge(self, spans: Sequence[str], sample: str, *, text: str | None = None) -> FloatArray:
        return self.judge_samples(spans, [sample], text=text)[:, 0, :]

    def judge_samples(
        self, spans: Sequence[str], samples: Sequence[str], *, text: str | None = None
    ) -> FloatArray:
        """Synchronous :meth:`ajudge_samples`; releases the backend's connections afterwards."""
        return run_sync(
            f"{type(self).__name__}.judge_samples()",
            "`await backend.ajudge_samples(...)`, or the async core "
            "(`await ensemble.aconsensus(...)`, `ascore(...)`, `Ensemble.arun(...)`),",
            lambda: self.ajudge_samples(spans, samples, text=text),
            release=self.aclose,
        )


def _similarity_backend(arg: str | None) -> EntailmentBackend:
    if arg:
        raise ConfigurationError(f"the 'similarity' backend takes no argument, not {arg!r}")
    from ensemble.metrics._similarity import SimilarityBackend

    return SimilarityBackend()


def _nli_backend(arg: str | None) -> EntailmentBackend:
    from ensemble.metrics._nli import NLIBackend

    return NLIBackend(arg or "")


#: Backend specs: ``"similarity"`` and ``"nli:MODEL"`` (a Hugging Face name or a local path).
BACKENDS: Registry[EntailmentBackend] = Registry(
    "entailment backend",
    product=EntailmentBackend,
    builtin={"nli": _nli_backend, "similarity": _similarity_backend},
    specs=True,
    needs_arg=("nli",),
    arg_label="MODEL",
    hint="or pass an EntailmentBackend instance",
)


def _make_backend(backend: str | EntailmentBackend) -> EntailmentBackend:
    if isinstance(backend, EntailmentBackend):
        return backend
    if not isinstance(backend, str):
        raise ConfigurationError(
            "backend must be 'similarity', 'nli:MODEL' or an EntailmentBackend instance, "
            f"not {type(backend).__name__}"
        )
    return BACKENDS.resolve(backend)


def __getattr__(name: str) -> Any:
    # The backends load their heavy dependencies only when first named.
    if name == "SimilarityBackend":
        from ensemble.metrics._similarity import SimilarityBackend

        return SimilarityBackend
    if name == "NLIBackend":
        from ensemble.metrics._nli import NLIBackend

        return NLIBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class EntailmentMetric(Metric):
    """Support = ``max(0, P(entail) - P(contradict))`` per span and sample; confidence = mean
    support over the samples that gave a verdict. See the module docstring."""

    name: ClassVar[str] = "entailment"
    granularity: ClassVar[Granularity] = "sentence"
    symmetric: ClassVar[bool] = False
    version: ClassVar[str] = "1"

    def __init__(
        self,
        *,
        backend: str | EntailmentBackend = "similarity",
        formula: Formula = "difference",
        power: int = 1,
    ) -> None:
        if formula not in ("difference", "ratio"):
            raise ConfigurationError(f"formula must be 'difference' or 'ratio', not {formula!r}")
        self.power = check_int("power", power, minimum=1)
        self.backend = _make_backend(backend)
        self.formula: Formula = formula

    def settings(self) -> dict[str, SettingValue]:
        out: dict[str, SettingValue] = {
            "backend": self.backend.name,
            "backend_version": self.backend.version,
            "formula": self.formula,
            "power": self.power,
        }
        for key, value in self.backend.settings().items():
            out[f"backend.{key}"] = value
        return out

    def verdicts(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        """The backend's checked verdicts, shape ``(len(spans), len(samples), 3)``."""
        pieces = [text[a:b] for a, b in spans]
        if not pieces or not samples:
            return np.zeros((len(pieces), len(samples), 3), dtype=np.float64)
        raw = np.asarray(self.backend.judge_samples(pieces, samples, text=text), dtype=np.float64)
        return self._check(raw, len(pieces), len(samples))

    async def averdicts(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        """:meth:`verdicts` from async code (an LLM judge then shares the caller's loop)."""
        pieces = [text[a:b] for a, b in spans]
        if not pieces or not samples:
            return np.zeros((len(pieces), len(samples), 3), dtype=np.float64)
        raw = await self.backend.ajudge_samples(pieces, samples, text=text)
        return self._check(np.asarray(raw, dtype=np.float64), len(pieces), len(samples))

    def _check(self, raw: FloatArray, n_spans: int, n_samples: int) -> FloatArray:
        who = type(self.backend).__name__
        if raw.shape != (n_spans, n_samples, 3):
            raise ValueError(
                f"{who} returned verdicts of shape {raw.shape}, expected {(n_spans, n_samples, 3)}"
            )
        out = np.empty_like(raw)
        for j in range(n_samples):
            out[:, j, :] = check_verdicts(raw[:, j, :], n_spans, who)
        return out

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        """Support per span and sample; NaN where the backend abstained."""
        return support_from_verdicts(self.verdicts(text, spans, samples), self.formula)

    def _scores(
        self,
        support: object,
        spans: Sequence[tuple[int, int]],
        samples: Sequence[str],
        weights: FloatArray | None,
    ) -> MetricScores:
        """The base rule (validated support, its weighted mean), with each sample's support
        raised to ``power`` before the mean; abstentions (NaN) stay left out."""
        scores = super()._scores(support, spans, samples, weights)
        if self.power == 1 or len(samples) == 0:
            return scores
        return MetricScores(scores.support, weighted_mean(scores.support**self.power, weights))

    @property
    def is_async(self) -> bool:
        """True with an async backend (an LLM judge): see :attr:`ensemble.Metric.is_async`."""
        return self.backend.is_async

    async def asupport(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        """:meth:`support` on the caller's event loop with an async backend (an LLM judge);
        a synchronous backend runs in a worker thread."""
        if not self.backend.is_async:
            return await asyncio.to_thread(self.support, text, spans, samples)
        return support_from_verdicts(await self.averdicts(text, spans, samples), self.formula)

    async def aclose(self) -> None:
        """Release the backend's connections (e.g. the judge model's)."""
        await self.backend.aclose()
