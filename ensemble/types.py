"""Immutable, typed results: :class:`Sample`, :class:`Span`, :class:`Consensus` and friends.

Every model here is a frozen pydantic v2 model, so results can be hashed by identity, shared
between threads, and round-tripped through JSON::

    Consensus.model_validate_json(result.model_dump_json()) == result
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Alert",
    "AlertEvidence",
    "CalibrationInfo",
    "Consensus",
    "MetricInfo",
    "Sample",
    "SampleError",
    "Span",
    "Usage",
]

SettingValue = str | int | float | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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

    @model_validator(mode="after")
    def _text_or_error(self) -> Sample:
        if (self.text is None) == (self.error is None):
            raise ValueError("a Sample has exactly one of `text` and `error`")
        return self

    @property
    def ok(self) -> bool:
        """True when the sample has text (a failure never votes)."""
        return self.error is None


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


class MetricInfo(_Frozen):
    """The metric that produced the confidences, with every setting needed to reproduce them."""

    name: str
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    version: str = "1"

    @property
    def signature(self) -> str:
        """A compact reproducibility signature, e.g. ``ngram|n:1|stem:yes|version:1``."""
        parts = [self.name]
        for key in sorted(self.settings):
            value = self.settings[key]
            shown = ("yes" if value else "no") if isinstance(value, bool) else str(value)
            parts.append(f"{key}:{shown}")
        parts.append(f"version:{self.version}")
        return "|".join(parts)


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
    calibration: CalibrationInfo | None = None
    """The calibration that mapped raw confidences to probabilities (``None``: raw)."""

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
