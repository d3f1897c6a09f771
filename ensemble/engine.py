"""The consensus engine: pure computation from samples to a :class:`~ensemble.Consensus`.

Nothing here performs I/O. (The module is not called ``consensus`` so that the public function
:func:`ensemble.consensus` does not shadow it.)

Consensus, step by step:

1. the successful samples are the voters; failures are kept in the result but never vote;
2. the metric's pairwise agreement ``A[i, j]`` (how well sample ``i`` is supported by sample
   ``j``) is symmetrised, and the candidate is the sample with the highest mean agreement with
   the others (minimum Bayes risk); ties go to the lexicographically smallest text, so the order
   of the samples never changes the result;
3. the candidate is split into the metric's spans and each span is scored against every
   *other* successful sample; its confidence is the metric's aggregate (by default the mean).

Scoring a given text is step 3 with the text in place of the candidate and every sample as
evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ensemble.calibration import Calibrator, load_calibration
from ensemble.diagnostics import (
    DEFAULT_ALARM,
    UniformityAlarm,
    agreement_breakdown,
    independence_weights,
    model_support,
)
from ensemble.errors import ConfigurationError, InvalidInputError
from ensemble.metrics.base import FloatArray, Metric, get_metric
from ensemble.types import Alert, Consensus, Sample, Span

Weighting = Literal["sample", "model"]

__all__ = ["consensus", "score"]

#: Support at or above this counts a sample as a supporter of a span.
SUPPORT_THRESHOLD = 0.5

SampleLike = str | Sample


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


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not (
        isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0
    ):
        raise InvalidInputError(f"threshold must be a number in [0, 1], not {threshold!r}")


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


def _spans(
    text: str,
    offsets: Sequence[tuple[int, int]],
    confidence: FloatArray,
    support: FloatArray,
    columns: Sequence[int],
    n_samples: int,
    threshold: float | None,
) -> tuple[Span, ...]:
    spans: list[Span] = []
    for k, (a, b) in enumerate(offsets):
        per_sample: list[float | None] = [None] * n_samples
        for col, idx in enumerate(columns):
            value = float(support[k, col])
            # NaN: the metric's judge abstained on this (span, sample); it did not vote.
            per_sample[idx] = value if not np.isnan(value) else None
        conf = float(np.clip(confidence[k], 0.0, 1.0))
        if threshold is not None and conf < threshold:
            continue
        spans.append(
            Span(
                text=text[a:b],
                start=a,
                end=b,
                confidence=conf,
                support=tuple(per_sample),
                supporters=tuple(
                    i for i, v in enumerate(per_sample) if v is not None and v >= SUPPORT_THRESHOLD
                ),
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


def _calibrator(calibration: Calibrator | str | Path | None, metric: Metric) -> Calibrator | None:
    """Resolve ``calibration=`` and check, before any work, that it fits the metric."""
    cal = load_calibration(calibration)
    if cal is not None:
        cal.check(metric.info)
    return cal


def _calibrated(confidence: FloatArray, cal: Calibrator | None) -> FloatArray:
    return confidence if cal is None else cal.apply(confidence, force=True)


def _evidence_weights(
    w_all: FloatArray | None,
    samples: Sequence[Sample],
    evidence: Sequence[int],
    weighting: object,
) -> tuple[FloatArray | None, Literal["sample", "model", "custom"]]:
    """The weights of the evidence samples and the name of the rule that produced them."""
    if weighting not in ("sample", "model"):
        raise InvalidInputError(f"weighting must be 'sample' or 'model', not {weighting!r}")
    if w_all is not None:
        return (w_all[list(evidence)] if evidence else None), "custom"
    if weighting == "sample" or not evidence:
        return None, "sample"
    return independence_weights([samples[i] for i in evidence]), "model"


def _diagnose(
    result: Consensus,
    weighting: Literal["sample", "model", "custom"],
    prompt: str | None,
    alarm: UniformityAlarm | None,
) -> Consensus:
    """Add the agreement breakdown, each span's split by model, and the uniformity alarm."""
    samples = result.samples
    spans = []
    for span in result.spans:
        models, per_model = model_support(samples, span.support, span.supporters)
        spans.append(
            span.model_copy(update={"supporting_models": models, "model_support": per_model})
        )
    breakdown = agreement_breakdown(samples, result.agreement) if result.agreement else None
    alerts = result.alerts
    if alarm is not None and not isinstance(alarm, UniformityAlarm):
        raise ConfigurationError(
            f"alarm must be an ensemble.UniformityAlarm or None, not {type(alarm).__name__}"
        )
    if alarm is not None:
        alerts = alerts + alarm.check(
            samples, agreement=result.agreement, breakdown=breakdown, prompt=prompt
        )
    return result.model_copy(
        update={
            "spans": tuple(spans),
            "weighting": weighting,
            "breakdown": breakdown,
            "alerts": alerts,
        }
    )


def _scored(
    text: str,
    offsets: Sequence[tuple[int, int]],
    all_samples: tuple[Sample, ...],
    evidence: list[int],
    metric_obj: Metric,
    *,
    w_all: FloatArray | None,
    weighting: Weighting,
    cal: Calibrator | None,
    threshold: float | None,
    candidate: int | None,
    agreement: tuple[tuple[float | None, ...], ...],
    prompt: str | None,
    alarm: UniformityAlarm | None,
) -> Consensus:
    """Score the spans of ``text`` against the ``evidence`` samples and build the result
    (the shared last step of :func:`consensus` and :func:`score`)."""
    w, rule = _evidence_weights(w_all, all_samples, evidence, weighting)
    scores = metric_obj.evaluate(text, offsets, [all_samples[i].text or "" for i in evidence], w)
    result = Consensus(
        text=text,
        spans=_spans(
            text,
            offsets,
            _calibrated(scores.confidence, cal),
            scores.support,
            evidence,
            len(all_samples),
            threshold,
        ),
        samples=all_samples,
        candidate=candidate,
        metric=metric_obj.info,
        agreement=agreement,
        alerts=_no_evidence_alert(len(evidence)) + _abstention_alert(scores.support),
        threshold=threshold,
        calibration=None if cal is None else cal.info_for(metric_obj.info),
    )
    return _diagnose(result, rule, prompt, alarm)


def choose_candidate(texts: Sequence[str], agreement: FloatArray) -> int:
    """Index of the minimum-Bayes-risk candidate among ``texts`` (see the module docstring)."""
    n = len(texts)
    if n == 1:
        return 0
    sym = (agreement + agreement.T) / 2.0
    mean = (sym.sum(axis=1) - np.diag(sym)) / (n - 1)
    # Round so that summation order (i.e. sample order) cannot break a tie differently.
    keyed = [(-round(float(mean[i]), 9), texts[i], i) for i in range(n)]
    return min(keyed)[2]


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
) -> Consensus:
    """Choose the sample the others agree with most and give each of its spans a confidence.

    ``samples`` are strings or :class:`~ensemble.Sample` objects (failed samples are kept in
    the result but never vote). ``threshold`` keeps only spans whose confidence is at least
    that. ``weights`` (one per sample) weigh each sample's support in the confidence.

    ``weighting="model"`` (the default) gives each model's samples one vote in total among
    the evidence (weight ``1 / samples of that model``); with one model, or samples without
    model names, that is exactly ``"sample"`` (every sample alike). Explicit ``weights`` take
    precedence. ``prompt`` (when known) is left out of the uniformity alarm's evidence;
    ``alarm`` sets that alarm's thresholds (``None`` turns it off). See
    ``docs/diagnostics.md``.
    ``calibration`` (a :class:`~ensemble.calibration.Calibrator`, a packaged name such as
    ``"ngram-wikibio"`` or a path to a calibration file) maps each confidence to the
    probability that the span is accurate before the threshold is applied.
    """
    all_samples = _as_samples(samples)
    metric_obj = get_metric(metric)
    _check_threshold(threshold)
    cal = _calibrator(calibration, metric_obj)
    w_all = _check_weights(weights, len(all_samples))
    voters = [i for i, s in enumerate(all_samples) if s.ok]
    if not voters:
        raise InvalidInputError("every sample failed; there is nothing to build a consensus from")
    texts = [all_samples[i].text or "" for i in voters]
    matrix = metric_obj.agreement(texts)
    local = choose_candidate(texts, matrix)
    cand = voters[local]
    text = texts[local]
    return _scored(
        text,
        metric_obj.segment(text),
        all_samples,
        [i for i in voters if i != cand],
        metric_obj,
        w_all=w_all,
        weighting=weighting,
        cal=cal,
        threshold=threshold,
        candidate=cand,
        agreement=_full_agreement(matrix, voters, len(all_samples)),
        prompt=prompt,
        alarm=alarm,
    )


def _join_sentences(sentences: object) -> tuple[str, list[tuple[int, int]]]:
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Sequence):
        raise InvalidInputError("sentences must be a list of strings")
    parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise InvalidInputError(f"sentence {i} is a {type(s).__name__}, not a string")
        if i:
            parts.append(" ")
            pos += 1
        offsets.append((pos, pos + len(s)))
        parts.append(s)
        pos += len(s)
    return "".join(parts), offsets


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
) -> Consensus:
    """Score a text generated elsewhere against samples; no model is called.

    Give exactly one of ``text`` (the library splits it into the metric's spans) or
    ``sentences`` (exactly these spans, in order; the result's ``text`` is them joined with
    single spaces). Every successful sample is evidence; ``weighting``, ``prompt`` and
    ``alarm`` are as in :func:`consensus`. ``calibration``: as in
    :func:`consensus`.
    """
    if (text is None) == (sentences is None):
        raise InvalidInputError("give exactly one of `text` and `sentences`")
    all_samples = _as_samples(samples)
    metric_obj = get_metric(metric)
    _check_threshold(threshold)
    cal = _calibrator(calibration, metric_obj)
    w_all = _check_weights(weights, len(all_samples))
    if text is not None:
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string, not {type(text).__name__}")
        offsets = metric_obj.segment(text)
    else:
        text, offsets = _join_sentences(sentences)
    return _scored(
        text,
        offsets,
        all_samples,
        [i for i, s in enumerate(all_samples) if s.ok],
        metric_obj,
        w_all=w_all,
        weighting=weighting,
        cal=cal,
        threshold=threshold,
        candidate=None,
        agreement=(),
        prompt=prompt,
        alarm=alarm,
    )
