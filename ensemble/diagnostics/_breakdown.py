"""Agreement breakdown and independent weighting: who agrees with whom, and how much each
sample counts.

Pure computation on samples and an agreement matrix.

**Agreement breakdown.** Repeats of one model share its mistakes, so agreement *within* a
model is weaker evidence than agreement *between* models. :func:`agreement_breakdown` splits
the agreement matrix into intra-model and inter-model means, per model and per model pair;
:func:`model_support` splits each span's support the same way.
**Independent weighting.** With ``weighting="model"`` (the default) every model
*family*'s samples share one vote in the confidence: a sample of a family with ``k`` samples
among the evidence weighs ``1 / k``. The family comes from the sample (``Sample.family``,
set by the runner from the model's :class:`~ensemble.ModelCard`), else from the default
catalog's card for its model name, else the model name itself, so two names served by the
same weights are one witness. When all evidence comes from one family (or from samples
without a model name) every weight is equal and this *is* the plain rule, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np

from ensemble.metrics.base import FloatArray
from ensemble.types import (
    AgreementBreakdown,
    FamilyAgreement,
    ModelAgreement,
    Sample,
)

#: Name used for samples that carry no model name (all of them count as one source).
UNNAMED = "?"

PairAgreement = Sequence[Sequence[float | None]]


def _model(sample: Sample) -> str:
    return sample.model if sample.model is not None else UNNAMED


def family_key(sample: Sample) -> str:
    """The source a sample speaks for: its ``family``, else the family of its model's card in
    the default catalog (:func:`ensemble.catalog.default_catalog`), else its model name
    (``"?"`` without one)."""
    if sample.family:
        return sample.family
    if sample.model is None:
        return UNNAMED
    from ensemble.catalog import default_catalog

    return default_catalog().family(sample.model)


def _by_family(samples: Sequence[Sample]) -> list[Sample]:
    """The samples with each model name replaced by its family (for the alarm)."""
    return [
        s if s.model is None else s.model_copy(update={"model": family_key(s)}) for s in samples
    ]


# --- 1. agreement breakdown ------------------------------------------------------------------


def _sym(agreement: PairAgreement, i: int, j: int) -> float | None:
    a, b = agreement[i][j], agreement[j][i]
    if a is None or b is None:
        return None
    return (a + b) / 2.0


def agreement_breakdown(
    samples: Sequence[Sample], agreement: PairAgreement
) -> AgreementBreakdown | None:
    """Intra- and inter-model agreement from a ``Consensus``-style agreement matrix.

    Returns ``None`` unless the successful samples come from at least two models (samples
    without a model name count as one model, ``"?"``). Each sample pair's agreement is the
    symmetrised ``(A[i][j] + A[j][i]) / 2``.
    """
    n = len(samples)
    if len(agreement) != n:
        return None
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        if s.ok:
            groups.setdefault(_model(s), []).append(i)
    if len(groups) < 2:
        return None
    names = sorted(groups)
    intra: list[ModelAgreement] = []
    for m in names:
        vals = [_sym(agreement, i, j) for i, j in combinations(groups[m], 2)]
        got = [v for v in vals if v is not None]
        if got:
            intra.append(
                ModelAgreement(models=(m, m), mean=_clip(sum(got) / len(got)), pairs=len(got))
            )
    inter: list[ModelAgreement] = []
    for a, b in combinations(names, 2):
        vals = [_sym(agreement, i, j) for i in groups[a] for j in groups[b]]
        got = [v for v in vals if v is not None]
        if got:
            inter.append(
                ModelAgreement(models=(a, b), mean=_clip(sum(got) / len(got)), pairs=len(got))
            )
    return AgreementBreakdown(
        samples_per_model={m: len(groups[m]) for m in names},
        intra=tuple(intra),
        inter=tuple(inter),
        intra_mean=_mean([x.mean for x in intra]),
        inter_mean=_mean([x.mean for x in inter]),
        families=_family_agreement(samples, agreement),
    )


def _family_agreement(
    samples: Sequence[Sample], agreement: PairAgreement
) -> tuple[FamilyAgreement, ...]:
    """Per family: mean agreement within it and with the other families (two or more)."""
    fam: dict[int, str] = {i: family_key(s) for i, s in enumerate(samples) if s.ok}
    if len(set(fam.values())) < 2:
        return ()
    out = []
    for f in sorted(set(fam.values())):
        own = [i for i, g in fam.items() if g == f]
        rest = [i for i, g in fam.items() if g != f]
        intra = [v for i, j in combinations(own, 2) if (v := _sym(agreement, i, j)) is not None]
        inter = [v for i in own for j in rest if (v := _sym(agreement, i, j)) is not None]
        out.append(
            FamilyAgreement(
                family=f,
                models=tuple(sorted({_model(samples[i]) for i in own})),
                samples=len(own),
                intra=_clip(sum(intra) / len(intra)) if intra else None,
                inter=_clip(sum(inter) / len(inter)) if inter else None,
                intra_pairs=len(intra),
                inter_pairs=len(inter),
            )
        )
    return tuple(out)


def _clip(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def _mean(xs: Sequence[float]) -> float | None:
    return _clip(sum(xs) / len(xs)) if xs else None


def model_support(
    samples: Sequence[Sample], support: Sequence[float | None], supporters: Iterable[int]
) -> tuple[tuple[str, ...], dict[str, float]]:
    """A span's support split by model: the distinct supporting models, and each model's
    mean support over its voting samples. Both are empty when no sample has a model name."""
    if not any(s.model is not None for s in samples):
        return (), {}
    per: dict[str, list[float]] = {}
    for s, v in zip(samples, support, strict=False):
        if v is not None:
            per.setdefault(_model(s), []).append(v)
    means = {m: _clip(sum(v) / len(v)) for m, v in sorted(per.items())}
    models = tuple(sorted({_model(samples[i]) for i in supporters}))
    return models, means


# --- 2. independent weighting ----------------------------------------------------------------


def independence_weights(samples: Sequence[Sample]) -> FloatArray | None:
    """Weights giving each model family's samples one vote in total: ``1 / (samples of that
    family)`` (the family as :func:`family_key` finds it; a model without a card is a family
    of its own, so for cardless models this is one vote per model).

    ``None`` when every weight would be equal (one family, or one sample per family), so the
    caller uses the plain unweighted rule exactly.
    """
    return family_weights([family_key(s) for s in samples])


def family_weights(keys: Sequence[str]) -> FloatArray | None:
    """:func:`independence_weights` for samples whose families are already known (``keys``,
    one per sample): ``1 / (samples of that family)``, ``None`` when all would be equal."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    if len(set(counts.values())) <= 1:
        return None
    return np.array([1.0 / counts[k] for k in keys], dtype=np.float64)


#: How much a candidate's own family counts in its mean agreement, relative to each other
#: family (one vote each), when the consensus chooses its candidate from several families.
#: 0.5 was chosen among 1, 0.5, 0.25 and 0 on the even question ids of
#: ``benchmarks/families.py`` (two real local families), and reported on the odd ones.
INTRA_FAMILY_WEIGHT = 0.5


def family_mean_agreement(
    sym: FloatArray, families: Sequence[str], intra_weight: float = INTRA_FAMILY_WEIGHT
) -> FloatArray:
    """Each sample's mean agreement with the others, one vote per family.

    For sample ``i``: the mean of its symmetrised agreement with each family's samples
    (``i`` itself left out), averaged over the families with equal weight, its own family
    weighing ``intra_weight`` (a family with no other sample does not vote). Repeats of one
    family share its mistakes, so its agreement with its own family is weaker evidence.
    """
    n = len(families)
    names = sorted(set(families))
    member = np.array([[f == g for f in families] for g in names], dtype=np.float64)
    total = np.zeros(n, dtype=np.float64)
    weight = np.zeros(n, dtype=np.float64)
    off = sym.copy()
    np.fill_diagonal(off, 0.0)
    for k, g in enumerate(names):
        cnt = member[k].sum() - np.array([f == g for f in families], dtype=np.float64)
        sums = off @ member[k]
        w = np.where(np.array([f == g for f in families]), intra_weight, 1.0)
        has = cnt > 0
        total[has] += w[has] * sums[has] / cnt[has]
        weight[has] += w[has]
    out: FloatArray = np.divide(total, weight, out=np.zeros(n), where=weight > 0)
    return out
