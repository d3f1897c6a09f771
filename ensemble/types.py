"""Immutable, typed results: :class:`Sample`, :class:`Span`, :class:`Consensus` and friends.

Every model here is a frozen pydantic v2 model, so results can be hashed by identity, shared
between threads, and round-tripped through JSON::

    Consensus.model_validate_json(result.model_dump_json()) == result

Text that cannot be written as UTF-8 never enters a result: every surrogate code point
(U+D800 to U+DFFF, e.g. a lone ``"\\ud800"`` from a badly decoded answer) in a string field is
replaced by U+FFFD, one for one, so character offsets stay valid and ``model_dump_json()``
always works (see :func:`clean_text`).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AgreementBreakdown",
    "Alert",
    "AlertEvidence",
    "CalibrationInfo",
    "Claim",
    "Consensus",
    "CostReport",
    "DroppedClaim",
    "FamilyAgreement",
    "MetricInfo",
    "ModelAgreement",
    "ModelCost",
    "Sample",
    "SampleError",
    "SamplingReport",
    "Span",
    "TierRun",
    "Usage",
]

SettingValue = str | int | float | bool | None


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with every surrogate code point replaced by U+FFFD (one for one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value):
        return type(value)(clean_text(v) if isinstance(v, str) else v for v in value)
    if isinstance(value, dict):
        return {
            (clean_text(k) if isinstance(k, str) else k): (
                clean_text(v) if isinstance(v, str) else v
            )
            for k, v in value.items()
        }
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        return _clean(value)


class Usage(_Frozen):
    """Token usage reported by the provider (``None`` where it did not say)."""

    input_tokens: int | None = None
    output_tokens: int | None = None


class SampleError(_Frozen):
    """Why a sample has no text. Never contains an API key."""

    type: str
    """Name of the exception class, e.g. ``"RateLimitError"``."""
    message: str
    status_code: int | None = None
    attempts: int = 1


class Sample(_Frozen):
    """One answer, with where it came from, or the error that prevented it.

    Samples given directly to :func:`ensemble.consensus` or :func:`ensemble.score` have only
    ``text``; samples gathered by :class:`ensemble.Ensemble` carry their provenance.
    """

    text: str | None = None
    model: str | None = None
    """Name of the model that produced it (e.g. ``"openai:gpt-4o-mini"``)."""
    repeat: int | None = None
    """Index of the repeat for that model (0-based)."""
    seed: int | None = None
    temperature: float | None = None
    latency: float | None = Field(default=None, ge=0)
    """Seconds from the first attempt's start to the answer."""
    usage: Usage | None = None
    finish_reason: str | None = None
    request_id: str | None = None
    error: SampleError | None = None
    cost: float | None = Field(default=None, ge=0)
    """USD this sample cost (its usage times its model's prices); ``None``: unpriced or no
    usage reported (never a silent 0)."""
    endpoint: str | None = None
    """Where the request went (the model's ``endpoint``, e.g. ``"openai@https://api.openai.com/v1"``)."""
    prompt_sent: str | None = None
    """The raw prompt sent when the adapter rendered the request into one (completion mode)."""
    family: str | None = None
    """The model family (from its :class:`~ensemble.ModelCard`): samples of one family share
    one vote under ``weighting="model"``."""

    @model_validator(mode="after")
    def _text_or_error(self) -> Sample:
        if (self.text is None) == (self.error is None):
            raise ValueError("a Sample has exactly one of `text` and `error`")
        return self

    @property
    def ok(self) -> bool:
        """True when the sample has text (a failure never votes)."""
        return self.error is None

    @property
    def empty(self) -> bool:
        """True when the sample succeeded with nothing but white space: an abstention (kept,
        never a vote, never counted toward a quorum)."""
        return self.error is None and not (self.text or "").strip()

    @property
    def votes(self) -> bool:
        """True when the sample succeeded with some text: it votes (a failure never does, an
        empty answer abstains)."""
        return self.error is None and bool((self.text or "").strip())


class ModelCost(_Frozen):
    """Tokens and cost of one model's successful samples in a result."""

    model: str
    samples: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost: float | None = Field(default=None, ge=0)
    """USD; ``None`` when the model is unpriced (or a sample reported no usage)."""


class CostReport(_Frozen):
    """Tokens and USD per model and in total (see ``docs/durable.md``).

    It is what the samples cost when they were drawn: a result replayed from a store reports
    the same cost, although nothing was paid again.
    """

    models: tuple[ModelCost, ...] = ()
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cost: float | None = Field(default=None, ge=0)
    """USD of the priced models; ``None`` when no model is priced."""
    unpriced: tuple[str, ...] = ()
    """Models whose cost is unknown; when non-empty, ``cost`` leaves them out."""


class Span(_Frozen):
    """A piece of the consensus text and how well the samples support it."""

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    confidence: float = Field(ge=0.0, le=1.0)
    support: tuple[float | None, ...] = ()
    """Support of this span by each sample, aligned with ``Consensus.samples``; ``None`` where a
    sample did not vote (it failed, or it is the candidate the span was taken from)."""
    supporters: tuple[int, ...] = ()
    """Indices (into ``Consensus.samples``) of the samples whose support is at least 0.5."""
    supporting_models: tuple[str, ...] = ()
    """Distinct model names among ``supporters`` (sorted): independent support, where
    ``supporters`` also counts repeats of one model. Empty when the samples carry no model."""
    model_support: dict[str, float] = Field(default_factory=dict)
    """Mean support of this span by each model's voting samples (see ``docs/diagnostics.md``)."""
    cluster: int | None = None
    """``method="fuse"``: id of the claim (``Consensus.claims``) this span stands for."""
    sources: tuple[int, ...] = ()
    """``method="fuse"``: indices of the samples that state this claim in a sentence of their
    own (the cluster's members), as opposed to ``supporters`` (the metric's verdict)."""
    source_models: tuple[str, ...] = ()
    """``method="fuse"``: distinct model names among ``sources`` (sorted)."""

    @model_validator(mode="after")
    def _check_offsets(self) -> Span:
        if self.end < self.start:
            raise ValueError("Span.end must not be before Span.start")
        if self.end - self.start != len(self.text):
            raise ValueError("Span offsets do not match the length of Span.text")
        return self

    @field_validator("support")
    @classmethod
    def _check_support(cls, v: tuple[float | None, ...]) -> tuple[float | None, ...]:
        for x in v:
            if x is not None and not (0.0 <= x <= 1.0 and math.isfinite(x)):
                raise ValueError("span support values must lie in [0, 1]")
        return v


class Claim(_Frozen):
    """One cluster of agreeing sentences of a fused consensus (see ``docs/fuse.md``)."""

    cluster: int = Field(ge=0)
    """The claim's id (``Span.cluster`` of the span that states it)."""
    text: str
    """The member sentence chosen to state the claim (the best supported one)."""
    support: float = Field(ge=0.0, le=1.0)
    """Share of the vote behind the claim: each model family (or, without model names, each
    sample) has one vote, split evenly over its voting samples."""
    sources: tuple[int, ...] = ()
    """Indices (into ``Consensus.samples``) of the samples with a sentence in the cluster."""
    backers: tuple[int, ...] = ()
    """Indices of the samples whose vote ``support`` counts: ``sources``, plus, with
    ``contain=``, the samples that state the claim inside a longer sentence."""
    models: tuple[str, ...] = ()
    """Distinct model names among ``sources`` (sorted; empty without model names)."""
    position: float = Field(default=0.5, ge=0.0, le=1.0)
    """Median relative position of the members in their samples (0 first, 1 last)."""
    members: int = Field(default=1, ge=1)
    """Number of member sentences (a sample may repeat itself)."""


class DroppedClaim(Claim):
    """A claim left out of a fused consensus, and why."""

    reason: Literal["minority", "conflict", "redundant"]
    """``minority``: its support was below the quorum; ``conflict``: it reached the quorum
    but contradicts a better-supported claim that was kept; ``redundant`` (only with
    ``contain=``): it contains a kept claim or is contained in one."""
    conflicts_with: int | None = None
    """Id of the kept claim it contradicts (or, for ``redundant``, repeats), if any; a
    minority claim may contradict one too."""


class MetricInfo(_Frozen):
    """The metric that produced the confidences, with every setting needed to reproduce them."""

    name: str
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    version: str = "1"
    ensemble: str | None = None
    """The version of the library that computed the numbers (its segmentation, consensus and
    diagnostics are shared by every metric); ``None`` in results saved before it was recorded."""

    @property
    def signature(self) -> str:
        """A compact reproducibility signature, e.g.
        ``ngram|n:1|stem:yes|version:1|ensemble:0.1.0``: the metric's name, settings and
        version, then the library's version."""
        parts = [self.name]
        for key in sorted(self.settings):
            value = self.settings[key]
            shown = ("yes" if value else "no") if isinstance(value, bool) else str(value)
            parts.append(f"{key}:{shown}")
        parts.append(f"version:{self.version}")
        if self.ensemble is not None:
            parts.append(f"ensemble:{self.ensemble}")
        return "|".join(parts)


def metric_part(signature: str) -> str:
    """``signature`` without its trailing ``|ensemble:<version>`` part: what identifies the
    metric itself (used to match a calibration to a metric across library versions)."""
    head, sep, tail = signature.rpartition("|ensemble:")
    return head if sep and "|" not in tail else signature


class CalibrationInfo(_Frozen):
    """The calibration applied to a result's confidences (see :mod:`ensemble.calibration`).

    When a :class:`Consensus` carries one, every ``Span.confidence`` is the calibrated
    probability that the span is accurate; ``Span.support`` stays the metric's raw support.
    """

    name: str | None = None
    """The packaged calibration's name (e.g. ``"ngram-wikibio"``), if it has one."""
    method: str
    """``"isotonic"``, ``"centered-isotonic"`` or ``"platt"``."""
    metric: str | None = None
    """Signature of the metric the calibration was fitted for (``None``: any metric)."""
    forced: bool = False
    """True when it was applied to a metric other than the one it was fitted for."""
    n_fitted: int = 0
    """Number of labelled spans it was fitted on."""


class AlertEvidence(_Frozen):
    """A piece of text shared by the samples that raised an alert."""

    text: str
    sample: int
    """Index into ``Consensus.samples`` of the sample the offsets refer to."""
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Alert(_Frozen):
    """A warning about a run that is not a confidence (it never raises or lowers one)."""

    kind: str
    """Short machine-readable kind, e.g. ``"uniformity"`` or ``"no_evidence"``."""
    message: str
    score: float | None = None
    models: tuple[str, ...] = ()
    evidence: tuple[AlertEvidence, ...] = ()
    severity: Literal["info", "warning", "critical"] = "warning"


class ModelAgreement(_Frozen):
    """Mean pairwise agreement between the samples of two models, or of one model's repeats."""

    models: tuple[str, str]
    """The two model names (sorted); the same name twice for intra-model agreement."""
    mean: float = Field(ge=0.0, le=1.0)
    """Mean symmetrised agreement ``(A[i][j] + A[j][i]) / 2`` over the sample pairs."""
    pairs: int = Field(ge=1)
    """Number of sample pairs the mean is taken over."""


class FamilyAgreement(_Frozen):
    """How one model family's samples agree among themselves and with the other families'.

    A family (from the models' :class:`~ensemble.ModelCard`) is one set of weights, whatever
    names serve it: its samples share its mistakes, so ``intra`` is the weaker evidence.
    """

    family: str
    models: tuple[str, ...]
    """The model names of this family among the samples (sorted)."""
    samples: int = Field(ge=0)
    intra: float | None = Field(default=None, ge=0.0, le=1.0)
    """Mean agreement between two samples of this family (``None`` with one sample)."""
    inter: float | None = Field(default=None, ge=0.0, le=1.0)
    """Mean agreement between a sample of this family and one of another family."""
    intra_pairs: int = Field(default=0, ge=0)
    inter_pairs: int = Field(default=0, ge=0)


class AgreementBreakdown(_Frozen):
    """Who agrees with whom: agreement within each model and between each pair of models.

    Repeats of one model share its mistakes, so intra-model agreement is weaker evidence than
    inter-model agreement. See ``docs/diagnostics.md``.
    """

    samples_per_model: dict[str, int]
    """Successful samples of each model."""
    intra: tuple[ModelAgreement, ...] = ()
    """One entry per model with at least two successful samples."""
    inter: tuple[ModelAgreement, ...] = ()
    """One entry per pair of different models."""
    intra_mean: float | None = None
    """Mean of the ``intra`` entries (each model counts once); ``None`` when there are none."""
    inter_mean: float | None = None
    """Mean of the ``inter`` entries (each model pair counts once); ``None`` when none."""
    families: tuple[FamilyAgreement, ...] = ()
    """Intra- and inter-family agreement per model family, when the samples come from two
    or more families (samples without a known family count as a family of their model)."""


class TierRun(_Frozen):
    """One tier of an adaptive or escalating run (see ``docs/adaptive.md``)."""

    tier: int = Field(ge=0)
    models: tuple[str, ...]
    repeats: int = Field(ge=1)
    """Most samples per model this tier allows (counting samples of earlier tiers)."""
    samples_drawn: int = Field(ge=0)
    """New samples drawn while this tier ran."""
    confidence: float = Field(ge=0.0, le=1.0)
    """Confidence of the consensus when the tier finished."""
    alerts: tuple[str, ...] = ()
    """Kinds of the alerts raised when the tier finished."""
    stopped_early: bool = False
    """True when the stopping rule settled the consensus before the tier's budget ran out."""
    outcome: Literal["accepted", "escalated", "exhausted"]
    """``accepted``: the result was good enough; ``escalated``: the next tier ran;
    ``exhausted``: the last tier was not good enough either, its result is returned."""
    reason: str


class SamplingReport(_Frozen):
    """How many samples an adaptive or escalating run drew, and why it stopped where it did."""

    tiers: tuple[TierRun, ...]
    samples_drawn: int = Field(ge=0)
    samples_budget: int = Field(ge=0)
    """Samples the tiers that ran would have drawn without early stopping."""
    threshold: float | None = None
    """The confidence threshold below which a tier escalates (``None``: never on confidence)."""

    @property
    def samples_saved(self) -> int:
        return self.samples_budget - self.samples_drawn


class Consensus(_Frozen):
    """The result of :func:`ensemble.consensus`, :func:`ensemble.score` and ``Ensemble.run``."""

    text: str
    """The consensus text (for :func:`ensemble.score`, the text that was scored)."""
    spans: tuple[Span, ...]
    """The spans of ``text`` with their confidence, in order (only those at or above
    ``threshold`` when a threshold was given)."""
    samples: tuple[Sample, ...]
    """Every sample, successful or not, in the order they were requested."""
    candidate: int | None = None
    """Index into ``samples`` of the sample chosen as the consensus text (``None`` for
    :func:`ensemble.score`, where the text came from the caller)."""
    metric: MetricInfo
    agreement: tuple[tuple[float | None, ...], ...] = ()
    """Pairwise agreement between samples: ``agreement[i][j]`` is how well sample ``i`` is
    supported by sample ``j``; ``None`` where either sample failed."""
    alerts: tuple[Alert, ...] = ()
    threshold: float | None = None
    weighting: Literal["sample", "model", "custom"] = "sample"
    """How the samples' support was weighed into confidences: ``"sample"`` (every sample
    alike), ``"model"`` (each model's samples share one vote) or ``"custom"`` (``weights=``)."""
    breakdown: AgreementBreakdown | None = None
    """Intra- and inter-model agreement; ``None`` unless the voters come from 2+ models."""
    sampling: SamplingReport | None = None
    """Tiers and samples of an adaptive or escalating run (``None`` for a fixed run)."""
    calibration: CalibrationInfo | None = None
    """The calibration that mapped raw confidences to probabilities (``None``: raw)."""
    cost: CostReport | None = None
    """Tokens and USD of the samples (set by ``Ensemble`` runs; ``None`` otherwise)."""
    method: Literal["select", "fuse"] = "select"
    """``select``: ``text`` is one sample (``candidate``); ``fuse``: ``text`` is made of the
    samples' sentences that a majority states (see ``docs/fuse.md``)."""
    claims: tuple[Claim, ...] = ()
    """``method="fuse"``: the claims kept in ``text``, in text order."""
    dropped: tuple[DroppedClaim, ...] = ()
    """``method="fuse"``: the claims left out, with their support, sources and reason."""

    @property
    def confidence(self) -> float:
        """Length-weighted mean confidence of the spans (0.0 when there are none)."""
        total = sum(s.end - s.start for s in self.spans)
        if total == 0:
            return 0.0
        return sum(s.confidence * (s.end - s.start) for s in self.spans) / total

    @property
    def supported_text(self) -> str:
        """The text of the spans (after any threshold), joined with single spaces."""
        return " ".join(s.text for s in self.spans)
