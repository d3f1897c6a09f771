"""Figures for judging a metric against labelled spans, in plain numpy.

Use these to check a metric (yours or a built-in one) on your own labelled data::

    from ensemble.evaluation import auc_pr, selfcheck_figures

    # one array of labels (0 accurate, 0.5 minor error, 1 major error) and one array of
    # hallucination scores (higher = more likely wrong, e.g. 1 - confidence) per passage
    figures = selfcheck_figures(labels, scores)
    print(figures.nonfact, figures.nonfact_star, figures.factual)

:func:`auc_pr` is the area under the precision-recall curve by the trapezoidal rule over the
curve's points, the same number as ``sklearn.metrics.auc(recall, precision)`` over
``sklearn.metrics.precision_recall_curve`` (scikit-learn >= 1.1, which keeps every threshold),
without needing scikit-learn.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ensemble.errors import InvalidInputError

__all__ = [
    "SelfCheckFigures",
    "auc_pr",
    "average_precision",
    "pearson",
    "precision_recall_curve",
    "rankdata",
    "selfcheck_figures",
    "spearman",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = Sequence[float] | Sequence[bool] | npt.NDArray[np.generic]


def _pair(labels: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise InvalidInputError(f"{y.size} labels but {s.size} scores")
    if y.size == 0:
        raise InvalidInputError("no labels were given")
    if not (np.isfinite(s).all() and np.isfinite(y).all()):
        raise InvalidInputError("labels and scores must be finite numbers")
    return y, s


def precision_recall_curve(
    labels: ArrayLike, scores: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Precision, recall and thresholds, as ``sklearn.metrics.precision_recall_curve`` gives them.

    ``labels`` are truthy for the positive class. One point per distinct score (predict
    positive when score >= threshold), ordered by decreasing recall, followed by the point
    (recall 0, precision 1).
    """
    y, s = _pair(labels, scores)
    positive = y != 0
    if not positive.any():
        raise InvalidInputError("there is no positive label, so recall is undefined")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    hits = positive[order].astype(np.float64)
    # last index of each run of equal scores
    ends = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(hits)[ends]
    fps = (ends + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return (
        np.r_[precision[::-1], 1.0],
        np.r_[recall[::-1], 0.0],
        s_sorted[ends][::-1].copy(),
    )


def auc_pr(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve (trapezoidal rule), in [0, 1].

    Equal to ``sklearn.metrics.auc(recall, precision)`` for
    ``precision, recall, _ = sklearn.metrics.precision_recall_curve(labels, scores)``.
    """
    precision, recall, _ = precision_recall_curve(labels, scores)
    # recall decreases along the curve; integrate from recall 0 upwards
    x = recall[::-1]
    p = precision[::-1]
    return float(np.sum(np.diff(x) * (p[1:] + p[:-1]) / 2.0))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Step-wise area under the precision-recall curve, in [0, 1].

    Equal to ``sklearn.metrics.average_precision_score``. Unlike :func:`auc_pr` it gives no
    credit to ties: the trapezoid between two points of a run of tied scores interpolates
    precision linearly, so a constant scorer gets ``(1 + positive share) / 2`` AUC-PR but only
    the positive share as average precision. Report both when a metric's scores tie a lot.
    """
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def rankdata(values: ArrayLike) -> FloatArray:
    """Ranks starting at 1, ties given the mean of their ranks (like ``scipy.stats.rankdata``)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_v)) + 1]
    ends = np.r_[starts[1:], v.size]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; NaN when either side is constant."""
    a, b = _pair(x, y)
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else math.nan


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (Pearson on tie-averaged ranks); NaN when a side is constant."""
    a, b = _pair(x, y)
    return pearson(rankdata(a), rankdata(b))


@dataclasses.dataclass(frozen=True)
class SelfCheckFigures:
    """The SelfCheckGPT figures, as percentages (AUC-PR x 100, correlations x 100).

    The ``*_ap`` fields repeat the three detection figures as average precision, which gives
    no credit to tied scores (see :func:`average_precision`); a metric whose AUC-PR is far above
    its average precision is being flattered by ties.
    """

    nonfact: float
    """AUC-PR for finding sentences with any error (minor or major), by hallucination score."""
    nonfact_star: float
    """AUC-PR for finding major errors, among passages that are not wholly major errors."""
    factual: float
    """AUC-PR for finding accurate sentences, by minus the hallucination score."""
    pearson: float
    """Passage level: mean sentence score against mean label."""
    spearman: float
    nonfact_ap: float
    nonfact_star_ap: float
    factual_ap: float
    n_sentences: int
    n_passages: int
    distinct_scores: int
    """How many different hallucination scores the sentences got (ties flatter AUC-PR)."""


def _both(positive: FloatArray, scores: FloatArray) -> tuple[float, float]:
    if positive.size == 0 or not positive.any():
        return math.nan, math.nan
    return 100.0 * auc_pr(positive, scores), 100.0 * average_precision(positive, scores)


def selfcheck_figures(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> SelfCheckFigures:
    """The SelfCheckGPT protocol (Manakul et al., 2023) over passages of labelled sentences.

    ``labels[p]`` holds one label per sentence of passage ``p``: 0 accurate, 0.5 minor
    inaccurate, 1 major inaccurate. ``scores[p]`` holds one hallucination score per sentence
    (higher = more likely wrong; for a confidence ``c`` use ``1 - c``).

    - NonFact: positives are minor or major errors, ranked by score;
    - NonFact*: positives are major errors, among the passages that are not wholly major
      errors (the others are left out), ranked by score;
    - Factual: positives are accurate sentences, ranked by minus the score;
    - Pearson / Spearman: per passage, mean score against mean label.
    """
    if len(labels) != len(scores):
        raise InvalidInputError(f"{len(labels)} label lists but {len(scores)} score lists")
    if len(labels) == 0:
        raise InvalidInputError("no passages were given")
    pairs = [_pair(y, s) for y, s in zip(labels, scores, strict=True)]
    y_all = np.concatenate([y for y, _ in pairs])
    s_all = np.concatenate([s for _, s in pairs])
    if not np.isin(y_all, (0.0, 0.5, 1.0)).all():
        raise InvalidInputError("labels must be 0 (accurate), 0.5 (minor) or 1 (major)")
    star = [(y, s) for y, s in pairs if not np.all(y == 1.0)]
    y_star = np.concatenate([y for y, _ in star]) if star else np.zeros(0)
    s_star = np.concatenate([s for _, s in star]) if star else np.zeros(0)
    nonfact = _both((y_all > 0).astype(np.float64), s_all)
    nonfact_star = _both((y_star == 1.0).astype(np.float64), s_star)
    factual = _both((y_all == 0).astype(np.float64), -s_all)
    p_label = np.array([y.mean() for y, _ in pairs])
    p_score = np.array([s.mean() for _, s in pairs])
    many = len(pairs) > 1
    return SelfCheckFigures(
        nonfact=nonfact[0],
        nonfact_star=nonfact_star[0],
        factual=factual[0],
        pearson=100.0 * pearson(p_label, p_score) if many else math.nan,
        spearman=100.0 * spearman(p_label, p_score) if many else math.nan,
        nonfact_ap=nonfact[1],
        nonfact_star_ap=nonfact_star[1],
        factual_ap=factual[1],
        n_sentences=int(y_all.size),
        n_passages=len(pairs),
        distinct_scores=int(np.unique(s_all).size),
    )
