"""Calibration: turn a metric's raw confidence into the probability that a span is accurate.

A metric's confidence orders spans (higher = better supported) but its value is not a
probability: an ``ngram`` confidence of 0.6 does not mean that six spans in ten with that
score are right. A :class:`Calibrator` is a monotone map, fitted on labelled spans, from raw
confidence to P(span accurate)::

    cal = Calibrator.fit(raw_confidences, labels, method="isotonic", metric=metric.info)
    cal.save("my_calibration.json")
    result = ensemble.score(text=..., samples=..., metric="ngram", calibration=cal)

Three methods, numpy only:

- ``"isotonic"``: isotonic regression by pool-adjacent-violators (PAV). The fitted function is
  a non-decreasing step function through the block means, linearly interpolated between
  blocks and constant beyond the fitted range (as scikit-learn's ``IsotonicRegression`` with
  ``out_of_bounds="clip"``). :func:`isotonic_reference` is a pure-Python twin, checked against
  the fast path in the tests.
- ``"centered-isotonic"``: the same PAV blocks, but the function passes through each block's
  mean at the block's mean score and is linear between them (centred isotonic regression).
  It overfits less on a few hundred labels; the shipped ``ngram`` calibration uses it.
- ``"platt"``: logistic regression ``p = sigmoid(a * score + b)`` fitted by Newton's method
  (IRLS) with a small ridge penalty, using Platt's smoothed targets. The slope is never
  negative: a metric that ranks spans the wrong way gets a constant map (the base rate).

Every calibrator carries the reproducibility signature of the metric it was fitted for
(``ngram|context:0.5|...``); applying it to the confidences of a different metric raises
:class:`~ensemble.errors.CalibrationMismatchError` unless forced (``apply(..., force=True)``
or ``calibration=cal.forced()``).

A calibration fitted on the SelfCheckGPT WikiBio dev split ships with the package as
``"ngram-wikibio"``: ``Calibrator.load("ngram-wikibio")``. See ``docs/calibration.md`` for the
data it came from and its limits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from ensemble._registry import Registry
from ensemble._validate import Flag, Int, Number, Settings, as_path, check_int
from ensemble.errors import CalibrationMismatchError, InvalidInputError, UsageError
from ensemble.types import CalibrationInfo, MetricInfo, metric_part

__all__ = ["Calibrator", "expected_calibration_error", "packaged_calibrations"]

FloatArray = npt.NDArray[np.float64]
CalibrationMethod = Literal["isotonic", "centered-isotonic", "platt"]
_METHODS = ("isotonic", "centered-isotonic", "platt")

#: Calibrations that ship with the package: name -> file in ``ensemble/data``.
_PACKAGED: dict[str, str] = {"ngram-wikibio": "ngram_wikibio_dev.json"}

_FORMAT = "ensemble-calibration"
_FORMAT_VERSION = 1


# --- input checks ---------------------------------------------------------------------------


def _as_scores(values: object, what: str) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a sequence of numbers") from exc
    if arr.ndim != 1:
        raise InvalidInputError(f"{what} must be one-dimensional, not of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{what} must be finite numbers (found NaN or infinity)")
    return arr


def _as_labels(labels: object, n: int) -> FloatArray:
    y = _as_scores(labels, "labels")
    if y.shape != (n,):
        raise InvalidInputError(f"got {n} scores but {y.shape[0]} labels; give one label per score")
    if np.any((y < 0.0) | (y > 1.0)):
        raise InvalidInputError("labels must lie in [0, 1] (1 = accurate, 0 = inaccurate)")
    return y


# --- isotonic regression --------------------------------------------------------------------


def pav(
    x: Sequence[float] | FloatArray,
    y: Sequence[float] | FloatArray,
    w: Sequence[float] | FloatArray | None = None,
    *,
    centered: bool = False,
    prior: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Isotonic (non-decreasing) least-squares fit of ``y`` on ``x`` by pool-adjacent-violators.

    Returns ``(knots_x, knots_y)``: the points through which the fitted function passes, with
    ``knots_x`` strictly increasing and ``knots_y`` strictly increasing between blocks. Each
    block of pooled values contributes its smallest and largest ``x`` (the classic step
    function, as scikit-learn's ``IsotonicRegression``), or with ``centered=True`` one knot at
    its weighted mean ``x`` (centred isotonic regression, Oron & Flournoy 2017: linear between
    block centres, which overfits less on small data). Ties in ``x`` are pooled first (a
    function takes one value at one point).

    ``prior > 0`` shrinks each block's mean toward the overall mean of ``y`` as if ``prior``
    extra labels at that mean were in the block, ``(sum y + prior * mean) / (n + prior)``
    (then the values are made non-decreasing again): small blocks at the ends no longer give
    probabilities of exactly 0 or 1.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    ws = np.ones_like(xs) if w is None else np.asarray(w, dtype=np.float64)
    if xs.size == 0:
        return np.zeros(0), np.zeros(0)
    # Pool ties in x: one (weighted) mean per distinct x.
    ux, inverse = np.unique(xs, return_inverse=True)
    wsum = np.bincount(inverse, weights=ws, minlength=ux.size)
    ysum = np.bincount(inverse, weights=ws * ys, minlength=ux.size)
    means = ysum / wsum
    # Pool adjacent violators with a stack of blocks: mean, weight, weighted sum of x, and
    # the first and last distinct-x index. Equal neighbours are pooled too, so the block
    # means end strictly increasing.
    b_mean: list[float] = []
    b_w: list[float] = []
    b_sx: list[float] = []
    b_lo: list[int] = []
    b_hi: list[int] = []
    for i in range(ux.size):
        m, wt, sx, lo = float(means[i]), float(wsum[i]), float(wsum[i] * ux[i]), i
        while b_mean and b_mean[-1] >= m:
            pw = b_w.pop()
            m = (b_mean.pop() * pw + m * wt) / (pw + wt)
            wt += pw
            sx += b_sx.pop()
            lo = b_lo.pop()
            b_hi.pop()
        b_mean.append(m)
        b_w.append(wt)
        b_sx.append(sx)
        b_lo.append(lo)
        b_hi.append(i)
    values = np.array(b_mean)
    if prior > 0:
        overall = float(ysum.sum() / wsum.sum())
        weight = np.array(b_w)
        values = np.maximum.accumulate((values * weight + prior * overall) / (weight + prior))
    if centered:
        centres = np.array(b_sx) / np.array(b_w)
        return centres, values
    kx: list[float] = []
    ky: list[float] = []
    for m, lo, hi in zip(values.tolist(), b_lo, b_hi, strict=True):
        for idx in (lo, hi) if hi > lo else (lo,):
            kx.append(float(ux[idx]))
            ky.append(m)
    return _drop_flat_interior(np.asarray(kx), np.asarray(ky))


def _drop_flat_interior(kx: FloatArray, ky: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Remove knots that lie inside a run of equal values (they do not change the function)."""
    if kx.size <= 2:
        return kx, ky
    keep = np.ones(kx.size, dtype=bool)
    inner = (ky[1:-1] == ky[:-2]) & (ky[1:-1] == ky[2:])
    keep[1:-1] = ~inner
    return kx[keep], ky[keep]


def isotonic_reference(x: Sequence[float], y: Sequence[float]) -> list[float]:
    """Pure-Python reference twin of :func:`pav`: the isotonic fit at each input point.

    Uses the min-max formula instead of pooling: after sorting by ``x`` (ties pooled), the
    fitted value at position ``i`` is ``max over j <= i of min over k >= i of mean(y[j..k])``.
    It is O(n^3), clearly correct, and shares no code with :func:`pav`; the tests check that
    both give the same function.
    """
    groups: dict[float, list[float]] = {}
    for xi, yi in zip(x, y, strict=True):
        groups.setdefault(float(xi), []).append(float(yi))
    keys = sorted(groups)
    sums = [sum(groups[k]) for k in keys]
    counts = [len(groups[k]) for k in keys]
    n = len(keys)
    fitted_at: dict[float, float] = {}
    for i in range(n):
        best = -math.inf
        for j in range(i + 1):
            worst = math.inf
            for k in range(i, n):
                mean = sum(sums[j : k + 1]) / sum(counts[j : k + 1])
                worst = min(worst, mean)
            best = max(best, worst)
        fitted_at[keys[i]] = best
    return [fitted_at[float(xi)] for xi in x]


# --- logistic regression (Platt scaling, and the combined metric's model) -----------------


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def fit_logistic(
    features: FloatArray,
    labels: FloatArray,
    *,
    ridge: float = 1e-3,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[float, FloatArray]:
    """Logistic regression ``P(y=1) = sigmoid(b + X @ w)`` by Newton's method (IRLS).

    ``features`` has shape ``(n, k)``; ``labels`` lie in [0, 1] (soft labels allowed). A small
    ridge penalty on ``w`` (not on ``b``) keeps the fit finite when the classes separate.
    Returns ``(b, w)``.
    """
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n, k = X.shape
    A = np.hstack([np.ones((n, 1)), X])
    beta = np.zeros(k + 1)
    p0 = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if n else 0.5
    beta[0] = math.log(p0 / (1 - p0))
    penalty = np.full(k + 1, ridge * max(n, 1))
    penalty[0] = 0.0
    for _ in range(max_iter):
        p = _sigmoid(A @ beta)
        grad = A.T @ (p - y) + penalty * beta
        hess = (A * (p * (1 - p))[:, None]).T @ A + np.diag(penalty) + 1e-12 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.max(np.abs(step))) < tol:
            break
    return float(beta[0]), np.asarray(beta[1:], dtype=np.float64)


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


def _packaged(filename: str) -> Callable[[], Calibrator]:
    def load() -> Calibrator:
        ref = resources.files("ensemble") / "data" / filename
        return Calibrator.from_json(ref.read_text(encoding="utf-8"))

    return load


#: Calibrations that ship with the package (files in ``ensemble/data``).
CALIBRATIONS: Registry[Calibrator] = Registry(
    "calibration",
    product=Calibrator,
    builtin={name: _packaged(file) for name, file in _PACKAGED.items()},
    hint="or give the path of a calibration JSON file (no such file exists)",
)


def packaged_calibrations() -> list[str]:
    """Names of the calibrations that ship with the package."""
    return CALIBRATIONS.names()


def load_calibration(calibration: Calibrator | str | Path | None) -> Calibrator | None:
    """Resolve what users pass as ``calibration=``: a calibrator, a packaged name or a path."""
    if calibration is None or isinstance(calibration, Calibrator):
        return calibration
    if isinstance(calibration, (str, Path)):
        return Calibrator.load(calibration)
    raise InvalidInputError(
        "calibration must be a Calibrator, the name of a packaged calibration or a path to a "
        f"calibration JSON file, not {type(calibration).__name__}"
    )


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
