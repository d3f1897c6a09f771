"""The :class:`Calibrator`, a fitted monotone map from raw confidence to P(span accurate), and
:func:`expected_calibration_error`, which measures one.


Every calibrator carries the reproducibility signature of the metric it was fitted for
(``ngram|context:0.5|...``); applying it to the confidences of a different metric raises
:class:`~ensemble.errors.CalibrationMismatchError` unless forced (``apply(..., force=True)``
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ensemble._validate import Flag, Int, Number, Settings, as_path, check_int
from ensemble.calibration._fit import (
    FloatArray,
    _as_labels,
    _as_scores,
    _sigmoid,
    fit_logistic,
    pav,
)
from ensemble.errors import CalibrationMismatchError, InvalidInputError, UsageError
from ensemble.types import CalibrationInfo, MetricInfo, metric_part

CalibrationMethod = Literal["isotonic", "centered-isotonic", "platt"]
_METHODS = ("isotonic", "centered-isotonic", "platt")

_FORMAT = "ensemble-calibration"
_FORMAT_VERSION = 1


# --- the calibrator -------------------------------------------------------------------------


def _signature(metric: str | MetricInfo | None) -> str | None:
    if metric is None or isinstance(metric, str):
        return metric
    if isinstance(metric, MetricInfo):
        return metric.signature
    info = getattr(metric, "info", None)  # a Metric instance
    if isinstance(info, MetricInfo):
        return info.signature
    raise InvalidInputError(
        f"metric must be a signature string, a MetricInfo or a Metric, not {type(metric).__name__}"
    )


class Calibrator(Settings):
    """A fitted monotone map from a metric's raw confidence to P(span accurate).

    Build one with :meth:`fit`, :meth:`load` or :meth:`from_json`; call it (or :meth:`apply`)
    on raw confidences. Instances are immutable values (frozen: assigning an attribute raises),
    built keyword-only; invalid parameters raise :class:`~ensemble.errors.InvalidInputError`.

    ``knots_x``/``knots_y`` are the isotonic methods' knots, ``slope``/``intercept`` Platt's
    parameters; ``forced=True`` (see :meth:`forced`) skips the metric check.
    """

    _error: ClassVar[type[UsageError]] = InvalidInputError

    method: CalibrationMethod
    metric: str | None
    """Signature of the metric whose confidences this calibrator maps (``None``: any)."""
    knots_x: tuple[Number, ...] = ()
    knots_y: tuple[Number, ...] = ()
    slope: Number = 0.0
    intercept: Number = 0.0
    n_fitted: Int = Field(default=0, ge=0)
    name: str | None = None
    description: str = ""
    """Where the calibration came from (data, labels, license)."""
    is_forced: Flag = Field(default=False, alias="forced")
    """Whether the metric check is skipped (:meth:`forced`)."""

    @field_validator("knots_x", "knots_y", mode="before")
    @classmethod
    def _as_list(cls, value: object) -> object:
        if isinstance(value, np.ndarray):
            return value.tolist()
        return value

    @model_validator(mode="after")
    def _parameters(self) -> Calibrator:
        kx = np.asarray(self.knots_x, dtype=np.float64)
        ky = np.asarray(self.knots_y, dtype=np.float64)
        if self.method != "platt":
            if kx.shape != ky.shape or kx.size == 0:
                raise ValueError("an isotonic calibrator needs matching, non-empty knots")
            if np.any(np.diff(kx) <= 0) or np.any(np.diff(ky) < 0):
                raise ValueError("isotonic knots must increase in x and not decrease in y")
            if np.any((ky < 0) | (ky > 1)):
                raise ValueError("isotonic knot values must be probabilities in [0, 1]")
        elif self.slope < 0:
            raise ValueError("a Platt calibrator needs a finite, non-negative slope")
        return self

    # -- fitting ----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        scores: Sequence[float] | FloatArray,
        labels: Sequence[float] | FloatArray,
        *,
        method: CalibrationMethod = "isotonic",
        metric: str | MetricInfo | None = None,
        name: str | None = None,
        description: str = "",
        prior: float = 0.0,
    ) -> Calibrator:
        """Fit on raw confidences ``scores`` and ``labels`` (1 = accurate, 0 = not).

        ``metric`` is the metric (signature, :class:`~ensemble.MetricInfo` or metric object)
        that produced ``scores``; the calibrator will refuse other metrics' confidences.
        ``prior`` (isotonic methods only) shrinks each block toward the base rate by that many
        pseudo-labels (see :func:`pav`), so no probability is exactly 0 or 1.
        """
        x = _as_scores(scores, "scores")
        y = _as_labels(labels, x.size)
        if x.size < 2:
            raise InvalidInputError("calibration needs at least two labelled scores")
        sig = _signature(metric)
        if not (isinstance(prior, (int, float)) and math.isfinite(prior) and prior >= 0):
            raise InvalidInputError("prior must be a non-negative number of pseudo-labels")
        if method in ("isotonic", "centered-isotonic"):
            kx, ky = pav(x, y, centered=method == "centered-isotonic", prior=prior)
            return cls(
                method=method,
                metric=sig,
                knots_x=kx,
                knots_y=np.clip(ky, 0.0, 1.0),
                n_fitted=int(x.size),
                name=name,
                description=description,
            )
        if method == "platt":
            # Platt's smoothed targets keep the fit away from 0 and 1 on small data.
            pos = float(y.sum())
            neg = float(x.size - pos)
            hi, lo = (pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0)
            target = y * hi + (1.0 - y) * lo
            b, w = fit_logistic(x[:, None], target)
            a = float(w[0])
            if a < 0:  # anti-informative metric: fall back to the base rate
                a = 0.0
                b = math.log(float(target.mean()) / (1.0 - float(target.mean())))
            return cls(
                method=method,
                metric=sig,
                slope=a,
                intercept=b,
                n_fitted=int(x.size),
                name=name,
                description=description,
            )
        raise InvalidInputError(
            f"unknown calibration method {method!r}; use one of {', '.join(_METHODS)}"
        )

    # -- applying ---------------------------------------------------------------------------

    def forced(self) -> Calibrator:
        """A copy that applies to any metric's confidences without the signature check."""
        return Calibrator(
            method=self.method,
            metric=self.metric,
            knots_x=self.knots_x,
            knots_y=self.knots_y,
            slope=self.slope,
            intercept=self.intercept,
            n_fitted=self.n_fitted,
            name=self.name,
            description=self.description,
            forced=True,
        )

    def check(self, metric: str | MetricInfo | None, *, force: bool = False) -> None:
        """Raise :class:`~ensemble.errors.CalibrationMismatchError` unless this calibrator was
        fitted for ``metric`` (or it is forced, or either side does not name a metric)."""
        sig = _signature(metric)
        if force or self.is_forced or self.metric is None or sig is None:
            return
        if metric_part(sig) != metric_part(self.metric):  # the library version may differ
            raise CalibrationMismatchError(expected=self.metric, got=sig, name=self.name)

    def apply(
        self,
        scores: Sequence[float] | FloatArray | float,
        *,
        metric: str | MetricInfo | None = None,
        force: bool = False,
    ) -> FloatArray:
        """Calibrated probabilities for raw ``scores`` (same shape, values in [0, 1]).

        When ``metric`` is given it must match the metric this calibrator was fitted for.
        """
        self.check(metric, force=force)
        x = np.asarray(scores, dtype=np.float64)
        if self.method != "platt":
            out = np.interp(x, np.asarray(self.knots_x), np.asarray(self.knots_y))
        else:
            out = _sigmoid(self.slope * x + self.intercept)
        return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)

    def __call__(self, scores: Sequence[float] | FloatArray | float) -> FloatArray:
        return self.apply(scores)

    def info_for(self, metric: str | MetricInfo | None = None) -> CalibrationInfo:
        """What a :class:`~ensemble.Consensus` records about this calibrator when it maps
        ``metric``'s confidences (``forced`` is true when the signatures differ)."""
        sig = _signature(metric)
        forced = (
            self.metric is not None
            and sig is not None
            and metric_part(sig) != metric_part(self.metric)
        )
        return CalibrationInfo(
            name=self.name,
            method=self.method,
            metric=self.metric,
            forced=forced,
            n_fitted=self.n_fitted,
        )

    def __repr__(self) -> str:
        label = f"name={self.name!r}, " if self.name else ""
        return f"Calibrator({label}method={self.method!r}, metric={self.metric!r})"

    # -- persistence ------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        params: dict[str, Any]
        if self.method != "platt":
            params = {"knots_x": list(self.knots_x), "knots_y": list(self.knots_y)}
        else:
            params = {"slope": self.slope, "intercept": self.intercept}
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "name": self.name,
            "method": self.method,
            "metric": self.metric,
            "n_fitted": self.n_fitted,
            "description": self.description,
            "params": params,
        }

    def to_json(self) -> str:
        """The calibrator as JSON (floats written exactly, so a round trip is lossless)."""
        return json.dumps(self._state(), indent=2)

    @classmethod
    def from_json(cls, data: str | bytes) -> Calibrator:
        try:
            state = json.loads(data)
        except ValueError as exc:
            raise InvalidInputError(f"not a calibration file: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise InvalidInputError(f'not a calibration file (no "format": "{_FORMAT}")')
        if state.get("format_version") != _FORMAT_VERSION:
            raise InvalidInputError(
                f"calibration format version {state.get('format_version')!r} is not supported "
                f"(this version of ensemble reads {_FORMAT_VERSION})"
            )
        params = state.get("params") or {}
        try:
            return cls(
                method=state["method"],
                metric=state.get("metric"),
                knots_x=params.get("knots_x", ()),
                knots_y=params.get("knots_y", ()),
                slope=float(params.get("slope", 0.0)),
                intercept=float(params.get("intercept", 0.0)),
                n_fitted=int(state.get("n_fitted", 0)),
                name=state.get("name"),
                description=str(state.get("description", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"malformed calibration file: {exc!r}") from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, source: str | Path) -> Calibrator:
        """Load a packaged calibration by name (e.g. ``"ngram-wikibio"``) or a JSON file.

        A string that is neither a packaged name nor an existing file raises
        :class:`~ensemble.errors.UnknownNameError`, which lists the packaged names.
        """
        if not isinstance(source, (str, Path)):
            raise InvalidInputError(
                f"a calibration is loaded from a name or a path, not {type(source).__name__}"
            )
        # The registry of packaged names is built from this class, so it is imported here.
        from ensemble.calibration._packaged import CALIBRATIONS

        if isinstance(source, str) and source.strip() in CALIBRATIONS:
            return CALIBRATIONS.resolve(source)
        if isinstance(source, str) and not source.strip():
            raise CALIBRATIONS.unknown(source)
        path = as_path("calibration", source)
        if not path.is_file():
            raise CALIBRATIONS.unknown(source)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"cannot read the calibration file {str(path)!r}: {exc}"
            ) from exc
        return cls.from_json(text)


# --- measuring calibration ------------------------------------------------------------------


def expected_calibration_error(
    probs: Sequence[float] | FloatArray,
    labels: Sequence[float] | FloatArray,
    bins: int = 10,
) -> float:
    """Expected calibration error with ``bins`` equal-width bins over [0, 1].

    ``sum over bins of (n_bin / n) * |mean(probs in bin) - mean(labels in bin)|``. A bin holds
    the probabilities in ``[k/bins, (k+1)/bins)``; the last bin also holds 1.0. Empty bins
    count nothing.
    """
    p = _as_scores(probs, "probs")
    y = _as_labels(labels, p.size)
    check_int("bins", bins, minimum=1, maximum=1_000_000, error=InvalidInputError)
    if p.size == 0:
        raise InvalidInputError("expected_calibration_error needs at least one probability")
    if np.any((p < 0) | (p > 1)):
        raise InvalidInputError("probs must lie in [0, 1]")
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    sum_y = np.bincount(idx, weights=y, minlength=bins)
    return float(np.abs(sum_p - sum_y).sum() / p.size)
