"""The fits behind a :class:`~ensemble.calibration.Calibrator`, numpy only.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ensemble.errors import InvalidInputError

FloatArray = npt.NDArray[np.float64]


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
