"""Sequential stopping within a tier.

**Sequential stopping** (:class:`SequentialStopping`): sample in rounds and stop as soon as
the consensus is settled, at most the tier's budget. The samples are grouped into answers
(clusters of the agreement matrix: two samples are the same answer when their agreement is
at least ``agree_at``; for the ``vote`` metric these are exactly the normalised answers).
With ``a`` successful samples on the leading answer, ``b`` on the runner-up, ``d`` on any
other answer (so ``d >= b``) and ``r`` samples of budget left, the round stops when either

- the leader can no longer be caught: ``a > b + r`` (then the full budget would elect the
  same answer whatever the remaining samples say), or
- the full budget would most probably keep the leader, dissent being spread over several
  answers (``rule="dirichlet"``, the default): the shares of (leader, runner-up, all other
  answers lumped together) get the prior ``Dirichlet(1, 1/2, 1/2)``, so the posterior is
  ``Dirichlet(a + 1, b + 1/2, c + 1/2)`` with ``c = d - b``, and the counts ``(X, Y, Z)``
  among the ``r`` samples left are Dirichlet-multinomial. With ``e`` samples on the largest
  of the other answers (``e <= b``, ``e <= c``), the round stops when
  ``P(a + X > b + Y and a + X > e + Z) >= confidence`` (default 0.95). That event means
  the leader ends *strictly* ahead of every other answer whichever way the ``Z`` new
  samples of the lumped rest split (at worst all on its largest answer, or all on one new
  answer), so the probability is a Bayesian bound on the chance that the full budget
  elects the leader. A tie counts as a loss: the fixed-``N`` consensus breaks ties by the
  lexicographically smallest text, which no count predicts. The prior lumps to the uniform
  prior on the leader's share (``Beta(1, 1)``), so ``X`` has exactly the Beta-binomial
  law of ``"predictive"`` below, whose event implies this one: the probability is never
  below the ``"predictive"`` one, and the rule never stops later. With ``N = 10``:
  unanimity stops after 3 samples, one dissent after 5, two different dissents after 6,
  two identical ones after 7 (:func:`dirichlet_probability`).
- or, with ``rule="predictive"`` (the worst case of the above: every other new sample goes
  to the runner-up): with a uniform prior on the leader's share ``p`` of all answers, the
  posterior is ``Beta(a + 1, d + 1)``; the leader's count ``X`` among the ``r`` samples
  left is then Beta-binomial, and the round stops when ``P(a + X > b + r - X) >=
  confidence``. With ``N = 10``: unanimity stops after 3 samples, one dissent after 6.
- or, with ``rule="share"``, the leader's share among the two leading answers is settled:
  ``P(Beta(a + 1, b + 1) > 1/2) >= confidence`` (unanimity stops after 4 samples, one
  dissent after 7), whatever the budget.

With ``abstains`` (a predicate on a :class:`~ensemble.Sample`, default ``None``), samples
that give no answer (an apology, gibberish, no city named: whatever the predicate says)
abstain from the posterior rules (all but the first): they were drawn and count as drawn,
but they are neither the leader, nor the runner-up, nor dissent in the posterior, so
``a``, ``b``, ``d`` and ``e`` count answering samples only. The first rule still counts
every successful sample (it is a guarantee about the vote, and abstainers still vote),
and while the consensus candidate itself abstains only the first rule may stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field

from ensemble._validate import Int, Number, Settings
from ensemble.adaptive._statistics import (
    dirichlet_probability,
    leader_probability,
    majority_probability,
    predictive_probability,
)
from ensemble.types import Consensus, Sample


def _groups(
    result: Consensus,
    agree_at: float = 0.5,
    abstains: Callable[[Sample], bool] | None = None,
) -> tuple[int, list[int]]:
    """``(leader, others)``: samples agreeing with the consensus candidate, and the sizes of
    the other answers, largest first (see :func:`answer_counts`)."""
    voters = [
        i for i, s in enumerate(result.samples) if s.ok and (abstains is None or not abstains(s))
    ]
    if not voters:
        return 0, []
    pos = {i: k for k, i in enumerate(voters)}
    cand = 0 if result.candidate is None else pos.get(result.candidate)
    if len(voters) == 1 or not result.agreement:
        return (1, []) if cand is not None else (0, [1])
    a = np.array(
        [[result.agreement[i][j] or 0.0 for j in voters] for i in voters], dtype=np.float64
    )
    same = (a + a.T) / 2.0 >= agree_at
    np.fill_diagonal(same, True)
    left = np.ones(len(voters), dtype=bool)
    leader = same[cand] & left if cand is not None else np.zeros(len(voters), dtype=bool)
    left &= ~leader
    others: list[int] = []
    while left.any():
        sizes = (same & left[None, :]).sum(axis=1) * left
        k = int(np.argmax(sizes))
        group = same[k] & left
        others.append(int(group.sum()))
        left &= ~group
    return int(leader.sum()), sorted(others, reverse=True)


def answer_counts(
    result: Consensus,
    agree_at: float = 0.5,
    abstains: Callable[[Sample], bool] | None = None,
) -> tuple[int, int]:
    """``(leader, runner_up)``: samples agreeing with the consensus candidate, and the size of
    the largest group among the rest (greedy clusters of the symmetrised agreement matrix).

    With ``abstains``, only successful samples for which it is false are counted; when the
    consensus candidate itself abstains, the leader is ``0`` and the runner-up is the largest
    group of answering samples.
    """
    leader, others = _groups(result, agree_at, abstains)
    return leader, (others[0] if others else 0)


class SequentialStopping(Settings):
    """When to stop sampling within a tier (see the module docstring for the rule).

    Keyword-only and frozen; invalid settings raise :class:`~ensemble.errors.ConfigurationError`.

    - ``confidence``: the probability the rule asks for (see ``rule``). 0.95 keeps the
      full budget's answer almost always; 0.85 stops sooner (with ``N = 10``: one dissent
      after 4, two different ones after 5) and is the setting measured to draw at most 60%
      of a fixed budget's samples at the same accuracy (``docs/adaptive.md``);
    - ``rule``: ``"dirichlet"`` (the default: the full budget would keep the leader, with
      dissent spread over the runner-up and the other answers), ``"predictive"`` (the same,
      in the worst case where all new dissent goes to the runner-up) or ``"share"`` (the
      leader's share beats the runner-up's);
    - ``min_samples``: successful samples before the rule may stop (the first round's size);
    - ``batch``: samples per model in each later round (more is faster, less is thriftier);
    - ``agree_at``: agreement at which two samples count as the same answer;
    - ``abstains``: ``None`` (the default: every successful sample is an answer), or a
      predicate that is true for a successful sample that gives no answer (an apology,
      gibberish, no city named). Such samples are drawn and counted as drawn, and they still
      vote in the consensus, but the posterior rules (all three ``rule`` values) leave
      them out: they are neither the leader, nor the runner-up, nor dissent. The "cannot be
      overtaken" rule still counts them, and while the consensus candidate itself abstains
      only that rule may stop. For the ``vote`` metric a natural predicate is an empty
      normalised answer: ``lambda s: not ensemble.VoteMetric.normalize(s.text or "")``;
    - ``futility``: ``None`` (the default: off), or a probability such as 0.05. A round then
      also stops when the tier's budget can most probably *not* settle the question: when
      the probability that some answer ends with a strict majority of the budget's answers
      (:func:`majority_probability`, which never understates it) is below ``futility``.
      Such a stop is not a settled answer: :class:`Escalation` escalates on it (or reports
      the last tier "exhausted"), so the remaining samples go to the next tier instead of
      to a model that keeps splitting its answers. The answer it returns may differ from
      the one the full budget would have elected (see :meth:`futile`).
    """

    confidence: Number = Field(default=0.95, gt=0.5, lt=1.0)
    min_samples: Int = Field(default=3, ge=1, le=1_000_000)
    batch: Int = Field(default=1, ge=1, le=1_000_000)
    agree_at: Number = Field(default=0.5, gt=0.0, le=1.0)
    rule: Literal["dirichlet", "predictive", "share"] = "dirichlet"
    abstains: Callable[[Sample], bool] | None = None
    futility: Number | None = Field(default=None, gt=0.0, lt=0.5)

    def settled(self, result: Consensus, remaining: int) -> str | None:
        """Why the consensus is settled, or ``None`` to keep sampling."""
        ok = sum(1 for s in result.samples if s.ok)
        if ok < self.min_samples:
            return None
        a, b = answer_counts(result, self.agree_at)
        if a > b + remaining:
            return f"leader {a} vs {b} cannot be overtaken by the {remaining} samples left"
        note = ""
        a, others = _groups(result, self.agree_at, self.abstains)
        if self.abstains is not None:
            if a == 0:  # no answer yet, or the consensus candidate itself abstains
                return None
            note = f"; {ok - a - sum(others)} abstained"
        b = others[0] if others else 0
        if self.rule == "share":
            p = leader_probability(a, b)
            if p >= self.confidence:
                return (
                    f"leader {a} vs {b}{note}: P(leader's share > 1/2) = {p:.3f} "
                    f">= {self.confidence}"
                )
            return None
        d = sum(others)
        if self.rule == "dirichlet":
            third = others[1] if len(others) > 1 else 0
            p = dirichlet_probability(a, b, d - b, remaining, third)
            if p >= self.confidence:
                return (
                    f"leader {a} vs {b} (of {d} other samples on {len(others)} answer(s)"
                    f"{note}): P(strictly ahead after the {remaining} samples left) = {p:.3f} "
                    f">= {self.confidence}"
                )
            return None
        p = predictive_probability(a, d, remaining, b)
        if p >= self.confidence:
            return (
                f"leader {a} vs {b} (of {d} other samples{note}): P(still ahead after the "
                f"{remaining} samples left) = {p:.3f} >= {self.confidence}"
            )
        return None

    def futile(self, result: Consensus, remaining: int) -> str | None:
        """Why the budget can most probably not settle the question (``futility``), or
        ``None``. Checked after :meth:`settled`; never true while ``futility`` is ``None``.

        Settling means that some answer ends with a strict majority of the answers; when the
        probability of that is below ``futility``, more samples of the same models would
        mostly buy a plurality of a split vote. The current consensus is returned as it is.
        """
        if self.futility is None or remaining <= 0:
            return None
        if sum(1 for s in result.samples if s.ok) < self.min_samples:
            return None
        a, others = _groups(result, self.agree_at, self.abstains)
        if a == 0:  # no answer yet, or the consensus candidate itself abstains
            return None
        b = others[0] if others else 0
        third = others[1] if len(others) > 1 else 0
        rest = sum(others) - b
        p = majority_probability(a, b, rest, remaining, third)
        if p < self.futility:
            total = a + b + rest + remaining
            return (
                f"unsettled: leader {a} vs {b} (of {b + rest} other samples on {len(others)} "
                f"answer(s)): P(some answer holds a majority of {total} after the {remaining} "
                f"samples left) = {p:.3f} < {self.futility}"
            )
        return None


#: The stopping rule :class:`Escalation` uses unless told otherwise.
DEFAULT_STOPPING = SequentialStopping()
