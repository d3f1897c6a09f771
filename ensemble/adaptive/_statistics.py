"""Posterior probabilities behind the stopping rules: the leader's share, the Beta-binomial
(``"predictive"``) and Dirichlet-multinomial (``"dirichlet"``) predictive bounds, and the
strict-majority probability (see :mod:`ensemble.adaptive._stopping` for how they are used).
"""

from __future__ import annotations

import math
from collections.abc import Callable


def leader_probability(a: int, b: int) -> float:
    """``P(p > 1/2)`` for ``p ~ Beta(a + 1, b + 1)``: the posterior probability, under a
    uniform prior, that the answer seen ``a`` times beats the one seen ``b`` times.

    Exact: ``P(Beta(a + 1, b + 1) > 1/2) = P(Binomial(a + b + 1, 1/2) <= a)``.
    """
    n = a + b + 1
    return sum(math.comb(n, k) for k in range(a + 1)) / 2.0**n


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def predictive_probability(a: int, d: int, remaining: int, b: int | None = None) -> float:
    """Probability that the answer seen ``a`` times is still the plurality answer once
    ``remaining`` more samples are drawn, when ``d`` samples gave other answers, ``b`` of them
    (default: all ``d``) the most common other answer.

    The leader's share has the posterior ``Beta(a + 1, d + 1)`` (uniform prior), so its count
    ``X`` among the remaining samples is Beta-binomial. In the worst case for the leader every
    other new sample goes to the runner-up, so the result is ``P(a + X > b + remaining - X)``.
    """
    rival = d if b is None else b
    total = 0.0
    for x in range(remaining + 1):
        if a + x > rival + remaining - x:
            log_pmf = (
                math.log(math.comb(remaining, x))
                + _log_beta(x + a + 1, remaining - x + d + 1)
                - _log_beta(a + 1, d + 1)
            )
            total += math.exp(log_pmf)
    return min(1.0, total)


#: The prior of ``rule="dirichlet"`` on the shares of (leader, runner-up, the rest): it lumps
#: to ``Beta(1, 1)`` on the leader's share, the uniform prior of the other rules.
DIRICHLET_PRIOR = (1.0, 0.5, 0.5)


def dirichlet_probability(
    a: int, b: int, rest: int, remaining: int, third: int | None = None
) -> float:
    """Probability that the answer seen ``a`` times ends *strictly* ahead of every other
    answer once ``remaining`` more samples are drawn, when the runner-up was seen ``b`` times
    and all other answers ``rest`` times together, the largest of them ``third`` times
    (default: ``rest``, as if they were one answer, the most cautious reading).

    The shares of (leader, runner-up, rest) have the posterior ``Dirichlet(a + 1, b + 1/2,
    rest + 1/2)`` (prior :data:`DIRICHLET_PRIOR`), so the new counts ``(X, Y, Z)`` are
    Dirichlet-multinomial, and the result is ``P(a + X > b + Y and a + X > third + Z)``
    (exact sum over every ``(X, Y, Z)``). The rest's ``Z`` new samples are taken to land
    on its largest answer, the worst case for the leader; ties are losses.
    """
    e = _check_counts(a, b, rest, remaining, third)
    return _posterior_mass(a, b, rest, remaining, lambda x, y, z: a + x > b + y and a + x > e + z)


def majority_probability(
    a: int, b: int, rest: int, remaining: int, third: int | None = None
) -> float:
    """Probability that, once ``remaining`` more samples are drawn, some answer holds a
    *strict majority* of all ``a + b + rest + remaining`` answers: the leader (seen ``a``
    times), the runner-up (``b``) or the largest of the other answers (``third``, default
    ``rest``; they were seen ``rest`` times together).

    The same posterior as :func:`dirichlet_probability`; the rest's new samples are taken to
    land on its largest answer, which is the *most* favourable case for a majority, so the
    result never understates it (what ``futility`` in :class:`SequentialStopping` needs).
    """
    e = _check_counts(a, b, rest, remaining, third)
    n = a + b + rest + remaining
    return _posterior_mass(a, b, rest, remaining, lambda x, y, z: 2 * max(a + x, b + y, e + z) > n)


def _check_counts(a: int, b: int, rest: int, remaining: int, third: int | None) -> int:
    """Validate the counts of the two functions above; the largest other answer's count."""
    for name, value in (("a", a), ("b", b), ("rest", rest), ("remaining", remaining)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, not {value}")
    e = rest if third is None else third
    if not 0 <= e <= rest:
        raise ValueError(f"third must lie in [0, rest], not {third}")
    return e


def _posterior_mass(
    a: int, b: int, rest: int, remaining: int, event: Callable[[int, int, int], bool]
) -> float:
    """The Dirichlet-multinomial probability (posterior ``Dirichlet(a + 1, b + 1/2,
    rest + 1/2)``, :data:`DIRICHLET_PRIOR`) that the ``remaining`` new samples split as
    ``(x, y, z)`` over (leader, runner-up, rest) with ``event(x, y, z)`` true (exact sum)."""
    pa, pb, pc = (a + DIRICHLET_PRIOR[0], b + DIRICHLET_PRIOR[1], rest + DIRICHLET_PRIOR[2])
    # log of r! * Gamma(pa + pb + pc) / (Gamma(pa) Gamma(pb) Gamma(pc) Gamma(pa + pb + pc + r))
    base = (
        math.lgamma(remaining + 1)
        + math.lgamma(pa + pb + pc)
        - math.lgamma(pa)
        - math.lgamma(pb)
        - math.lgamma(pc)
        - math.lgamma(pa + pb + pc + remaining)
    )
    total = 0.0
    for x in range(remaining + 1):
        gx = math.lgamma(pa + x) - math.lgamma(x + 1)
        for y in range(remaining - x + 1):
            z = remaining - x - y
            if event(x, y, z):
                total += math.exp(
                    base
                    + gx
                    + math.lgamma(pb + y)
                    - math.lgamma(y + 1)
                    + math.lgamma(pc + z)
                    - math.lgamma(z + 1)
                )
    return min(1.0, total)
