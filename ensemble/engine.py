"""The consensus engine: pure computation from samples to a :class:`~ensemble.Consensus`.

Nothing here performs I/O. (The module is not called ``consensus`` so that the public function
:func:`ensemble.consensus` does not shadow it.)

Consensus, step by step:

1. the successful samples are the voters; failures are kept in the result but never vote, and
   neither do empty (white-space-only) answers, which are kept and reported in an alert
   (``"empty_samples"``, or ``"all_empty"`` when there is nothing else);
2. the metric's pairwise agreement ``A[i, j]`` (how well sample ``i`` is supported by sample
   ``j``) is symmetrised, and the candidate is the sample with the highest mean agreement with
   the others (minimum Bayes risk); ties go to the lexicographically smallest text, so the order
   of the samples never changes the result;
3. the candidate is split into the metric's spans and each span is scored against every
   *other* voter; its confidence is the metric's aggregate (by default the mean).

Scoring a given text is step 3 with the text in place of the candidate and every sample as
evidence. With ``method="fuse"`` (:attr:`~ensemble.VoteSettings.method`) steps 2 and 3 are
:mod:`ensemble.fuse`'s: the text is made of the sentences most samples state, then scored as
a given text is.

**One path, sync and async.** The steps are written once, as a generator that yields what it
needs from the metric (the agreement matrix, the scores of a text) and receives the answer.
:func:`aconsensus` / :func:`ascore` drive it with the metric's async twins (``aagreement``,
``aevaluate``: an LLM judge shares the caller's event loop, a CPU-bound metric runs in a worker
thread); :func:`consensus` / :func:`score` drive it with the sync methods, with no event loop
at all for a pure metric, and through :mod:`ensemble._sync` (one fresh loop, refused inside a
running one) for a metric that :attr:`~ensemble.Metric.is_async`.

**The seam for another way of building the text.** :mod:`ensemble.fuse` writes its rule as
steps of the same kind and reuses these, so fusion runs on both drivers with no preamble of
its own: :func:`_vote` (the one preamble) and :class:`_Vote`, the asks :class:`_Segment` and
:class:`_Agreement`, :func:`_scored_steps` (score a built text and make the result; it checks
the metric's scores, :func:`~ensemble.metrics.base.check_scores`, and adds the empty-answer
alerts), :func:`_select_steps` and :func:`_full_agreement`, :func:`_evidence` (the samples that
vote, :attr:`Sample.votes`), and the drivers :func:`_sync` /
:func:`_adrive`. Change them together with ``ensemble/fuse.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ensemble import diagnostics
from ensemble._sync import run_sync
from ensemble.calibration import Calibrator
from ensemble.diagnostics import (
    DEFAULT_ALARM,
    UniformityAlarm,
    agreement_breakdown,
    family_key,
    family_mean_agreement,
    model_support,
)
from ensemble.diagnostics._breakdown import family_weights
from ensemble.errors import (
    CalibrationMismatchError,
    ConfigurationError,
    InvalidInputError,
    UnknownNameError,
)
from ensemble.metrics.base import FloatArray, Metric, MetricScores, check_scores
from ensemble.metrics.prompt import bind_prompt, discount_prompt
from ensemble.settings import Method, VoteSettings, Weighting
from ensemble.types import Alert, Consensus, Sample, Span

__all__ = ["aconsensus", "ascore", "consensus", "score"]

#: Support at or above this counts a sample as a supporter of a span.
SUPPORT_THRESHOLD = 0.5

SampleLike = str | Sample
Offsets = Sequence[tuple[int, int]]


def _as_samples(samples: object) -> tuple[Sample, ...]:
    if isinstance(samples, (str, bytes)) or not isinstance(samples, Sequence):
        raise InvalidInputError(
            "samples must be a list of strings (or ensemble.Sample objects), "
            f"not {type(samples).__name__}"
        )
    if len(samples) == 0:
        raise InvalidInputError("no samples were given; at least one is needed")
    out: list[Sample] = []
    for i, s in enumerate(samples):
        if isinstance(s, Sample):
            out.append(s)
        elif isinstance(s, str):
            out.append(Sample(text=s))
        else:
            raise InvalidInputError(
                f"sample {i} is a {type(s).__name__}, not a string or ensemble.Sample"
            )
    return tuple(out)


def _check_weights(weights: Sequence[float] | None, n: int) -> FloatArray | None:
    if weights is None:
        return None
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        w = np.full(0, np.nan)  # refused just below
    if w.shape != (n,) or not np.isfinite(w).all() or np.any(w < 0):
        raise InvalidInputError("weights must be one non-negative finite number per sample")
    return w


# --- what a vote is given, checked once ------------------------------------------------------


@dataclass(frozen=True)
class _Vote:
    """One call of :func:`consensus` / :func:`score`, validated: the samples, their explicit
    weights, the prompt, the vote's settings, the model families (a mapping from model name
    to family, else each sample's :func:`~ensemble.diagnostics.family_key`), and the prompt
    hook's outcome (:func:`ensemble.metrics.prompt.bind_prompt`): the metric bound to the
    prompt and whether the agreement texts are to be discounted."""

    samples: tuple[Sample, ...]
    weights: FloatArray | None
    prompt: str | None
    settings: VoteSettings
    metric: Metric
    """The settings' metric after its ``with_prompt`` hook (the same object without one)."""
    families: Mapping[str, str] | None = None
    discount: bool = False
    """Whether the agreement that chooses the candidate is computed on texts without the
    words copied from the prompt (:func:`ensemble.metrics.prompt.discount_prompt`)."""

    def family(self, i: int) -> str:
        """The family sample ``i`` votes for: ``families[model]`` when that mapping names its
        model, else :func:`~ensemble.diagnostics.family_key` (its catalog family when known,
        else its model name)."""
        sample = self.samples[i]
        if self.families is not None and sample.model is not None:
            named = self.families.get(sample.model)
            if named:
                return named
        return family_key(sample)

    def agreement_texts(self, texts: list[str]) -> list[str]:
        """The texts the candidate-choosing agreement is computed on."""
        return discount_prompt(texts, self.prompt) if self.discount else texts


def _vote(
    samples: Sequence[SampleLike],
    weights: Sequence[float] | None,
    prompt: str | None,
    settings: VoteSettings | None,
    metric: str | Metric,
    weighting: Weighting,
    threshold: float | None,
    alarm: UniformityAlarm | None,
    calibration: Calibrator | str | Path | None,
    method: Method = "select",
    families: Mapping[str, str] | None = None,
) -> _Vote:
    """The one preamble of the public functions (and of :func:`ensemble.fuse.fuse`)."""
    all_samples = _as_samples(samples)
    if families is not None and not isinstance(families, Mapping):
        raise InvalidInputError("families must be a mapping from model name to family name")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be a string or None, not {type(prompt).__name__}")
    try:
        vs = VoteSettings.resolve(
            settings,
            metric=metric,
            weighting=weighting,
            threshold=threshold,
            alarm=alarm,
            calibration=calibration,
            method=method,
        )
    except (CalibrationMismatchError, UnknownNameError):
        raise
    except ConfigurationError as exc:
        if settings is not None:
            raise
        raise InvalidInputError(str(exc)) from None  # a bad argument of this call
    bound, discount = bind_prompt(vs.metric, prompt)
    return _Vote(
        all_samples,
        _check_weights(weights, len(all_samples)),
        prompt,
        vs,
        bound,
        families,
        discount=discount,
    )


# --- the steps, written once -----------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    """Ask the metric for the spans of ``text`` (in a worker thread on the async path: a
    long text, or the splitter's first load, takes seconds)."""

    text: str

    def run(self, metric: Metric) -> list[tuple[int, int]]:
        return metric.segment(self.text)

    async def arun(self, metric: Metric) -> list[tuple[int, int]]:
        return await asyncio.to_thread(metric.segment, self.text)


@dataclass(frozen=True)
class _Agreement:
    """Ask the metric for the agreement matrix of ``texts``."""

    texts: list[str]

    def run(self, metric: Metric) -> FloatArray:
        return metric.agreement(self.texts)

    async def arun(self, metric: Metric) -> FloatArray:
        return await metric.aagreement(self.texts)


@dataclass(frozen=True)
class _Evaluate:
    """Ask the metric for the support and confidence of the spans of ``text``."""

    text: str
    spans: Offsets
    samples: list[str]
    weights: FloatArray | None

    def run(self, metric: Metric) -> MetricScores:
        return metric.evaluate(self.text, self.spans, self.samples, self.weights)

    async def arun(self, metric: Metric) -> MetricScores:
        return await metric.aevaluate(self.text, self.spans, self.samples, self.weights)


_Ask = _Segment | _Agreement | _Evaluate
_Steps = Generator[_Ask, Any, Consensus]


def _drive(steps: _Steps, metric: Metric) -> Consensus:
    """Run the steps with the metric's sync methods (no event loop)."""
    try:
        ask = next(steps)
        while True:
            ask = steps.send(ask.run(metric))
    except StopIteration as done:
        result: Consensus = done.value
        return result


async def _adrive(steps: _Steps, metric: Metric) -> Consensus:
    """Run the steps with the metric's async twins, on the caller's loop."""
    try:
        ask = next(steps)
        while True:
            ask = steps.send(await ask.arun(metric))
    except StopIteration as done:
        result: Consensus = done.value
        return result


def _sync(steps: _Steps, metric: Metric, what: str, instead: str) -> Consensus:
    """The sync wrappers: directly for a pure metric, on a fresh loop for an async one."""
    if not metric.is_async:
        return _drive(steps, metric)
    return run_sync(what, instead, lambda: _adrive(steps, metric), release=metric.aclose)


def choose_candidate(
    texts: Sequence[str],
    agreement: FloatArray,
    families: Sequence[str] | None = None,
    intra_weight: float = diagnostics.INTRA_FAMILY_WEIGHT,
) -> int:
    """Index of the minimum-Bayes-risk candidate among ``texts`` (see the module docstring).

    With ``families`` (one per text) from two or more families, each family has one vote
    in a candidate's mean agreement, its own family weighing ``intra_weight``
    (:attr:`VoteSettings.intra_family_weight`; see
    :func:`ensemble.diagnostics.family_mean_agreement`).
    """
    n = len(texts)
    if n == 1:
        return 0
    sym = (agreement + agreement.T) / 2.0
    if families is not None and len(set(families)) > 1:
        mean = family_mean_agreement(sym, families, intra_weight)
    else:
        mean = (sym.sum(axis=1) - np.diag(sym)) / (n - 1)
    # Round so that summation order (i.e. sample order) cannot break a tie differently.
    keyed = [(-round(float(mean[i]), 9), texts[i], i) for i in range(n)]
    return min(keyed)[2]


def _consensus_steps(vote: _Vote) -> _Steps:
    """The steps of a consensus by the settings' method."""
    if vote.settings.method == "fuse":
        from ensemble.fuse import DEFAULT_RULE, fuse_steps  # fuse builds on this module

        return (yield from fuse_steps(vote, DEFAULT_RULE))
    return (yield from _select_steps(vote))


def _select_steps(vote: _Vote) -> _Steps:
    """``method="select"``: the minimum-Bayes-risk sample, scored against the others."""
    samples = vote.samples
    if not any(s.ok for s in samples):
        raise InvalidInputError("every sample failed; there is nothing to build a consensus from")
    voters = _evidence(samples)
    if not voters:  # every answer is empty: a result that says so, not an empty "consensus"
        return (yield from _scored_steps(vote, "", [], evidence=[], candidate=None, agreement=()))
    texts = [samples[i].text or "" for i in voters]
    # Words copied from the prompt are not agreement about the answer (ensemble.metrics.prompt).
    matrix: FloatArray = yield _Agreement(vote.agreement_texts(texts))
    # One vote per family (weighting="model" without explicit weights; diagnostics.family_key).
    one_per_family = vote.settings.weighting == "model" and vote.weights is None
    fams = [vote.family(i) for i in voters] if one_per_family else None
    local = choose_candidate(texts, matrix, fams, vote.settings.intra_family_weight)
    text = texts[local]
    offsets: Offsets = yield _Segment(text)
    return (
        yield from _scored_steps(
            vote,
            text,
            offsets,
            evidence=[i for i in voters if i != voters[local]],
            candidate=voters[local],
            agreement=_full_agreement(matrix, voters, len(samples)),
        )
    )


def _score_steps(vote: _Vote, text: str | None, sentences: Sequence[str] | None) -> _Steps:
    if text is not None:
        offsets: Offsets = yield _Segment(text)
    else:
        text, offsets = _join_sentences(sentences)
    return (
        yield from _scored_steps(
            vote,
            text,
            offsets,
            evidence=_evidence(vote.samples),
            candidate=None,
            agreement=(),
        )
    )


def _scored_steps(
    vote: _Vote,
    text: str,
    offsets: Offsets,
    *,
    evidence: list[int],
    candidate: int | None,
    agreement: tuple[tuple[float | None, ...], ...],
) -> _Steps:
    """Score the spans of ``text`` against the ``evidence`` samples and build the result, once
    (the shared last step of consensus and score)."""
    vs = vote.settings
    samples = vote.samples
    # One vote per family as the candidate choice counts them (a ``families`` mapping wins).
    w, rule = _evidence_weights(
        vote.weights, [vote.family(i) for i in evidence], evidence, vs.weighting
    )
    asked: MetricScores = yield _Evaluate(
        text, offsets, [samples[i].text or "" for i in evidence], w
    )
    scores = check_scores(vote.metric, asked, len(offsets), len(evidence))
    confidence = scores.confidence if vs.calibration is None else vs.calibration(scores.confidence)
    breakdown = agreement_breakdown(samples, agreement) if agreement else None
    alerts = (
        _empty_alerts(samples)
        + _no_evidence_alert(len(evidence))
        + _abstention_alert(scores.support)
    )
    if vs.alarm is not None:
        alerts += vs.alarm.check(
            samples, agreement=agreement, breakdown=breakdown, prompt=vote.prompt
        )
    return Consensus(
        text=text,
        spans=_spans(text, offsets, confidence, scores.support, evidence, samples, vs.threshold),
        samples=samples,
        candidate=candidate,
        metric=vote.metric.info,
        agreement=agreement,
        alerts=alerts,
        threshold=vs.threshold,
        calibration=None if vs.calibration is None else vs.calibration.info_for(vote.metric.info),
        weighting=rule,
        breakdown=breakdown,
    )


def _spans(
    text: str,
    offsets: Offsets,
    confidence: FloatArray,
    support: FloatArray,
    columns: Sequence[int],
    samples: Sequence[Sample],
    threshold: float | None,
) -> tuple[Span, ...]:
    spans: list[Span] = []
    for k, (a, b) in enumerate(offsets):
        conf = float(np.clip(confidence[k], 0.0, 1.0))
        if threshold is not None and conf < threshold:
            continue
        per_sample: list[float | None] = [None] * len(samples)
        for col, idx in enumerate(columns):
            value = float(support[k, col])
            # NaN: the metric's judge abstained on this (span, sample); it did not vote.
            per_sample[idx] = value if not np.isnan(value) else None
        supporters = tuple(
            i for i, v in enumerate(per_sample) if v is not None and v >= SUPPORT_THRESHOLD
        )
        models, per_model = model_support(samples, tuple(per_sample), supporters)
        spans.append(
            Span(
                text=text[a:b],
                start=a,
                end=b,
                confidence=conf,
                support=tuple(per_sample),
                supporters=supporters,
                supporting_models=models,
                model_support=per_model,
            )
        )
    return tuple(spans)


def _no_evidence_alert(n_voters: int) -> tuple[Alert, ...]:
    if n_voters > 0:
        return ()
    return (
        Alert(
            kind="no_evidence",
            message="no other successful sample to compare with: every confidence is 0",
            severity="info",
        ),
    )


def _evidence(samples: Sequence[Sample]) -> list[int]:
    """The samples that vote (:attr:`Sample.votes`: successful and not empty)."""
    return [i for i, s in enumerate(samples) if s.votes]


def _empty_alerts(samples: Sequence[Sample]) -> tuple[Alert, ...]:
    """Record the empty answers: one info alert, or a critical one when every answer is empty."""
    empty = [i for i, s in enumerate(samples) if s.empty]
    if not empty:
        return ()
    if len(empty) == sum(1 for s in samples if s.ok):
        return (
            Alert(
                kind="all_empty",
                message=(
                    f"every successful sample ({len(empty)}) is empty or white space only: "
                    "there is no answer to vote on"
                ),
                score=1.0,
                severity="critical",
            ),
        )
    return (
        Alert(
            kind="empty_samples",
            message=(
                f"samples {empty} are empty or white space only; they abstain "
                "(neither candidate nor evidence)"
            ),
            score=len(empty) / len(samples),
            severity="info",
        ),
    )


def _abstention_alert(support: FloatArray) -> tuple[Alert, ...]:
    """An alert counting the (span, sample) verdicts the metric abstained on (NaN support)."""
    missing = int(np.isnan(support).sum())
    if missing == 0:
        return ()
    return (
        Alert(
            kind="abstention",
            message=(
                f"the metric gave no verdict on {missing} of {support.size} (span, sample) "
                "pairs; they are left out of the confidences (Span.support shows None)"
            ),
            score=missing / support.size,
            severity="warning",
        ),
    )


def _full_agreement(
    matrix: FloatArray, voters: Sequence[int], n: int
) -> tuple[tuple[float | None, ...], ...]:
    rows: list[list[float | None]] = [[None] * n for _ in range(n)]
    for a, i in enumerate(voters):
        for b, j in enumerate(voters):
            rows[i][j] = float(np.clip(matrix[a, b], 0.0, 1.0))
    return tuple(tuple(r) for r in rows)


def _evidence_weights(
    w_all: FloatArray | None,
    families: Sequence[str],
    evidence: Sequence[int],
    weighting: Weighting,
) -> tuple[FloatArray | None, Literal["sample", "model", "custom"]]:
    """The weights of the evidence samples (``families``: the family of each) and the name
    of the rule that produced them."""
    if w_all is not None:
        return (w_all[list(evidence)] if evidence else None), "custom"
    if weighting == "sample" or not evidence:
        return None, "sample"
    return family_weights(families), "model"


def _join_sentences(sentences: object, sep: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """The sentences joined with ``sep`` and each one's offsets (also ``ensemble.fuse``'s)."""
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Sequence):
        raise InvalidInputError("sentences must be a list of strings")
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise InvalidInputError(f"sentence {i} is a {type(s).__name__}, not a string")
        if i:
            parts.append(sep)
            pos += len(sep)
        offsets.append((pos, pos + len(s)))
        parts.append(s)
        pos += len(s)
    return "".join(parts), offsets


def _check_text(text: str | None, sentences: Sequence[str] | None) -> None:
    if (text is None) == (sentences is None):
        raise InvalidInputError("give exactly one of `text` and `sentences`")
    if text is not None and not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, not {type(text).__name__}")


# --- the public functions: one async core, sync twins -----------------------------------------


async def aconsensus(
    samples: Sequence[SampleLike],
    *,
    metric: str | Metric = "ngram",
    threshold: float | None = None,
    weights: Sequence[float] | None = None,
    weighting: Weighting = "model",
    prompt: str | None = None,
    alarm: UniformityAlarm | None = DEFAULT_ALARM,
    calibration: Calibrator | str | Path | None = None,
    settings: VoteSettings | None = None,
    method: Method = "select",
    families: Mapping[str, str] | None = None,
) -> Consensus:
    """:func:`consensus` from async code: a metric that calls a model (an LLM judge) shares
    the caller's event loop and never blocks it; a CPU-bound metric runs in a worker thread."""
    vote = _vote(
        samples,
        weights,
        prompt,
        settings,
        metric,
        weighting,
        threshold,
        alarm,
        calibration,
        method=method,
        families=families,
    )
    return await _adrive(_consensus_steps(vote), vote.metric)


def consensus(
    samples: Sequence[SampleLike],
    *,
    metric: str | Metric = "ngram",
    threshold: float | None = None,
    weights: Sequence[float] | None = None,
    weighting: Weighting = "model",
    prompt: str | None = None,
    alarm: UniformityAlarm | None = DEFAULT_ALARM,
    calibration: Calibrator | str | Path | None = None,
    settings: VoteSettings | None = None,
    method: Method = "select",
    families: Mapping[str, str] | None = None,
) -> Consensus:
    """Choose the sample the others agree with most and give each of its spans a confidence.

    ``samples`` are strings or :class:`~ensemble.Sample` objects (failed samples are kept in
    the result but never vote). ``threshold`` keeps only spans whose confidence is at least
    that. ``weights`` (one per sample) weigh each sample's support in the confidence.

    ``weighting="model"`` (the default) gives each model's samples one vote in total among
    the evidence (weight ``1 / samples of that model``); with one model, or samples without
    model names, that is exactly ``"sample"`` (every sample alike). Explicit ``weights`` take
    precedence. With samples from two or more model families (:attr:`Sample.family`, the
    models' cards in the catalog, or ``families``), the candidate is chosen with one vote per
    family (``ensemble.diagnostics.family_mean_agreement``). ``prompt`` (when known) is left
    out of the uniformity alarm's evidence, and words copied from it are not evidence of
    agreement when choosing the candidate (``ensemble.metrics.prompt``; a metric with
    ``with_prompt`` handles it itself); ``alarm`` sets that alarm's thresholds (``None``
    turns it off). See ``docs/diagnostics.md``.
    ``calibration`` (a :class:`~ensemble.calibration.Calibrator`, a packaged name such as
    ``"ngram-wikibio"`` or a path to a calibration file) maps each confidence to the
    probability that the span is accurate before the threshold is applied.

    ``method="fuse"`` builds the text from the sentences a majority of the samples (one vote
    per model family; ``families`` maps model names to families) states, instead of choosing
    one sample; see :func:`ensemble.fuse.fuse` and ``docs/fuse.md``.

    ``settings`` (an :class:`ensemble.VoteSettings`) gives ``metric``, ``weighting``,
    ``threshold``, ``alarm``, ``calibration`` and ``method`` at once; a keyword set to another
    value as well is a :class:`~ensemble.errors.ConfigurationError`.

    The sync twin of :func:`aconsensus`: with a metric that :attr:`~ensemble.Metric.is_async`
    (an LLM judge) it cannot be called from a running event loop (use ``aconsensus`` there).
    """
    vote = _vote(
        samples,
        weights,
        prompt,
        settings,
        metric,
        weighting,
        threshold,
        alarm,
        calibration,
        method=method,
        families=families,
    )
    return _sync(
        _consensus_steps(vote),
        vote.metric,
        "ensemble.consensus()",
        "`await ensemble.aconsensus(...)`",
    )


async def ascore(
    text: str | None = None,
    *,
    sentences: Sequence[str] | None = None,
    samples: Sequence[SampleLike],
    metric: str | Metric = "ngram",
    threshold: float | None = None,
    weights: Sequence[float] | None = None,
    weighting: Weighting = "model",
    prompt: str | None = None,
    alarm: UniformityAlarm | None = DEFAULT_ALARM,
    calibration: Calibrator | str | Path | None = None,
    settings: VoteSettings | None = None,
) -> Consensus:
    """:func:`score` from async code (see :func:`aconsensus`)."""
    _check_text(text, sentences)
    vote = _vote(
        samples, weights, prompt, settings, metric, weighting, threshold, alarm, calibration
    )
    return await _adrive(_score_steps(vote, text, sentences), vote.metric)


def score(
    text: str | None = None,
    *,
    sentences: Sequence[str] | None = None,
    samples: Sequence[SampleLike],
    metric: str | Metric = "ngram",
    threshold: float | None = None,
    weights: Sequence[float] | None = None,
    weighting: Weighting = "model",
    prompt: str | None = None,
    alarm: UniformityAlarm | None = DEFAULT_ALARM,
    calibration: Calibrator | str | Path | None = None,
    settings: VoteSettings | None = None,
) -> Consensus:
    """Score a text generated elsewhere against samples; no model is called.

    Give exactly one of ``text`` (the library splits it into the metric's spans) or
    ``sentences`` (exactly these spans, in order; the result's ``text`` is them joined with
    single spaces). Every successful sample is evidence; the other arguments are as in
    :func:`consensus`. The sync twin of :func:`ascore`.
    """
    _check_text(text, sentences)
    vote = _vote(
        samples, weights, prompt, settings, metric, weighting, threshold, alarm, calibration
    )
    return _sync(
        _score_steps(vote, text, sentences),
        vote.metric,
        "ensemble.score()",
        "`await ensemble.ascore(...)`",
    )
