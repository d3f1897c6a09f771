"""Spend samples only where risk needs them: sequential stopping and escalation tiers.

Two ideas, one small API (``docs/adaptive.md`` has the long version):

* **Sequential stopping** (:class:`SequentialStopping`): sample in rounds and stop as soon as
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

* **Escalation** (:class:`Escalation` with :class:`Tier` objects): start with a cheap tier (one
  model, few samples); when the consensus confidence is below ``threshold`` or an alert of a
  kind in ``escalate_on`` fired, run the next tier (more samples, more and older models) on top
  of the samples already drawn. Samples are never thrown away: each tier's consensus is over
  every sample drawn so far. The result's ``sampling`` (:class:`~ensemble.SamplingReport`)
  records the tiers that ran, why each stopped or escalated, and the samples saved.

``Escalation(ens)`` with no tiers is plain adaptive stopping over the ensemble's models and
``repeats``. It only uses the ensemble's public methods: every draw is
:meth:`ensemble.Ensemble.asample`, every vote :meth:`ensemble.Ensemble.avote` with the vote
settings resolved once, when the escalation is built (so a registered metric is made once,
not once per round), and the final quorum check :meth:`ensemble.Ensemble.require_quorum`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ensemble._sync import run_sync
from ensemble._validate import Int, Number, Settings
from ensemble.diagnostics import DEFAULT_ALARM, UniformityAlarm
from ensemble.errors import ConfigurationError
from ensemble.models import get_model
from ensemble.models.base import Model
from ensemble.runner import Ensemble
from ensemble.settings import VoteSettings
from ensemble.types import Consensus, Sample, SamplingReport, TierRun

if TYPE_CHECKING:
    from ensemble.catalog import Catalog

__all__ = [
    "Escalation",
    "SequentialStopping",
    "Tier",
    "dirichlet_probability",
    "leader_probability",
    "majority_probability",
    "predictive_probability",
]


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


class Tier(Settings):
    """One level of an :class:`Escalation`: which models, and at most how many samples each.

    ``models`` are names of the ensemble's models, or :class:`~ensemble.models.Model` objects
    or specs (``None``: every model of the ensemble). ``repeats`` counts the samples a model
    already has from earlier tiers: ``Tier(3, ["local"])`` then ``Tier(5, ["local", "big"])``
    draws 2 more of ``local`` and 5 of ``big``. Frozen; the two fields may be given by
    position (``Tier(repeats, models)``); invalid values raise
    :class:`~ensemble.errors.ConfigurationError`.
    """

    repeats: Int = Field(ge=1, le=1_000_000)
    models: tuple[str | Model, ...] | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _not_one_model(cls, value: object) -> object:
        if isinstance(value, (str, Model)):
            raise ValueError("must be a list of models or names, not a single one")
        return value

    def __init__(self, repeats: int, models: Sequence[str | Model] | None = None) -> None:
        super().__init__(repeats=repeats, models=models)

    @classmethod
    def from_catalog(cls, catalog: Catalog | None, repeats: int, **select: Any) -> Tier:
        """A tier of the models that ``catalog.select(**select)`` picks (the default catalog
        for ``None``), e.g. ``Tier.from_catalog(cat, 10, family="gemma3-270m")`` or
        ``Tier.from_catalog(cat, 5, released_before="2024-01-01", one_per_family=True)``.

        Each card gives its model (a :class:`~ensemble.models.Model` or a spec); an empty
        selection raises :class:`~ensemble.errors.ConfigurationError`.
        """
        from ensemble.catalog import default_catalog

        cards = (catalog if catalog is not None else default_catalog()).select(**select)
        if not cards:
            raise ConfigurationError(f"the catalog has no model matching {select!r}")
        return cls(repeats=repeats, models=[card.model for card in cards])


class Escalation:
    """Adaptive stopping within tiers, escalating while the result is weak or alarming.

    Parameters (keyword-only after ``ensemble``):

    - ``ensemble``: the :class:`~ensemble.Ensemble` that draws the samples (its metric,
      temperatures, timeouts, retries, seeds and quorum apply; its ``deadline`` applies to
      each round);
    - ``tiers``: :class:`Tier` objects, cheapest first (default: one tier of every model of
      the ensemble with its ``repeats``, i.e. plain adaptive stopping);
    - ``threshold``: escalate while the consensus confidence is below this (``None``: never
      on confidence);
    - ``escalate_on``: alert kinds that escalate (default ``("uniformity",)``);
    - ``stopping``: the :class:`SequentialStopping` rule within a tier (``None``: every tier
      draws its whole budget);
    - ``alarm``: the uniformity alarm's settings (``None`` turns it off); left at its default
      it is the ensemble's;
    - ``settings``: the :class:`~ensemble.VoteSettings` of every vote (default: the
      ensemble's); ``alarm`` is shorthand for its alarm.

    Use ``async with Escalation(...) as esc`` (or :meth:`aclose`) to release the models'
    connections, as with :class:`~ensemble.Ensemble`.
    """

    def __init__(
        self,
        ensemble: Ensemble,
        *,
        tiers: Sequence[Tier] | None = None,
        threshold: float | None = None,
        escalate_on: Collection[str] = ("uniformity",),
        stopping: SequentialStopping | None = DEFAULT_STOPPING,
        alarm: UniformityAlarm | None = DEFAULT_ALARM,
        settings: VoteSettings | None = None,
    ) -> None:
        if not isinstance(ensemble, Ensemble):
            raise ConfigurationError("ensemble must be an ensemble.Ensemble")
        self.ensemble = ensemble
        if tiers is None:
            tiers = [Tier(repeats=ensemble.repeats)]
        if (
            not isinstance(tiers, Sequence)
            or isinstance(tiers, str)
            or not tiers
            or not all(isinstance(t, Tier) for t in tiers)
        ):
            raise ConfigurationError("tiers must be a non-empty list of ensemble.Tier")
        self.tiers = tuple(tiers)
        self._models = [self._resolve(t) for t in self.tiers]
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0.0 <= threshold <= 1.0
        ):
            raise ConfigurationError(f"threshold must be a number in [0, 1], not {threshold!r}")
        self.threshold = threshold
        if (
            not isinstance(escalate_on, Collection)
            or isinstance(escalate_on, (str, bytes))
            or not all(isinstance(k, str) for k in escalate_on)
        ):
            raise ConfigurationError(
                f"escalate_on must be a collection of alert kinds (strings), not {escalate_on!r}"
            )
        self.escalate_on = frozenset(escalate_on)
        if stopping is not None and not isinstance(stopping, SequentialStopping):
            raise ConfigurationError("stopping must be an ensemble.SequentialStopping or None")
        self.stopping = stopping
        if settings is not None:
            self.settings = VoteSettings.resolve(settings, alarm=alarm)
        elif alarm is DEFAULT_ALARM or alarm == ensemble.settings.alarm:
            self.settings = ensemble.settings  # the same metric instance, resolved once
        else:
            self.settings = ensemble.settings.replace(alarm=alarm)
        self.alarm = self.settings.alarm

    def __repr__(self) -> str:
        tiers = ", ".join(
            f"Tier({t.repeats}, [{', '.join(m.name for m in ms)}])"
            for t, ms in zip(self.tiers, self._models, strict=True)
        )
        return f"Escalation([{tiers}], threshold={self.threshold!r}, stopping={self.stopping!r})"

    def _resolve(self, tier: Tier) -> tuple[Model, ...]:
        if tier.models is None:
            return self.ensemble.models
        by_name = {m.name: m for m in self.ensemble.models}
        out: list[Model] = []
        for m in tier.models:
            model = by_name.get(m) if isinstance(m, str) else m
            out.append(model if model is not None else get_model(m))
        if not out:
            raise ConfigurationError("a Tier must name at least one model")
        return tuple(out)

    # --- running -------------------------------------------------------------------------

    def run(self, prompt: str) -> Consensus:
        """Synchronous :meth:`arun` (not from inside a running event loop); releases the
        models' connections afterwards."""
        return run_sync(
            "Escalation.run()",
            "`await escalation.arun(prompt)`",
            lambda: self.arun(prompt),
            release=self.aclose,
        )

    async def aclose(self) -> None:
        """Release the connections of the ensemble and of every tier's models."""
        extra = {id(m): m for ms in self._models for m in ms if m not in self.ensemble.models}
        await asyncio.gather(self.ensemble.aclose(), *(m.aclose() for m in extra.values()))

    async def __aenter__(self) -> Escalation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _futile(
        self,
        samples: Sequence[Sample],
        models: Sequence[Model],
        result: Consensus,
        remaining: int,
        prompt: str,
    ) -> str | None:
        """The ``futility`` check on the samples of this tier's models only: whether *they*
        can settle the question with the tier's budget. Earlier tiers' models are other
        models, whose split answers say nothing about what these will answer."""
        if self.stopping is None or self.stopping.futility is None:
            return None
        names = {m.name for m in models}
        own = [s for s in samples if s.model in names]
        basis = result if len(own) == len(samples) else await self._vote(own, prompt)
        return None if basis is None else self.stopping.futile(basis, remaining)

    async def _vote(self, samples: Sequence[Sample], prompt: str) -> Consensus | None:
        """The ensemble's vote on ``samples`` (no quorum yet: rounds are partial)."""
        if not any(s.ok for s in samples):
            return None
        return await self.ensemble.avote(
            samples, check_quorum=False, prompt=prompt, settings=self.settings
        )

    async def _draw(
        self, prompt: str, want: dict[Model, int], drawn: dict[str, int]
    ) -> list[Sample]:
        """Draw ``want[m]`` more samples of each model, continuing its repeat indices."""
        groups: dict[tuple[int, int], list[Model]] = {}
        for m, k in want.items():
            if k > 0:
                groups.setdefault((drawn.get(m.name, 0), k), []).append(m)
        batches = await asyncio.gather(
            *(
                self.ensemble.asample(prompt, repeats=k, start_repeat=start, models=models)
                for (start, k), models in groups.items()
            )
        )
        out = [s for batch in batches for s in batch]
        for s in out:
            if s.model is not None:
                drawn[s.model] = drawn.get(s.model, 0) + 1
        return out

    async def arun(self, prompt: str) -> Consensus:
        """Run the tiers on ``prompt`` and return the last tier's consensus (see the class)."""
        samples: list[Sample] = []
        drawn: dict[str, int] = {}
        budget: dict[str, int] = {}
        report: list[TierRun] = []
        result: Consensus | None = None
        for t, (tier, models) in enumerate(zip(self.tiers, self._models, strict=True)):
            for m in models:
                budget[m.name] = max(budget.get(m.name, 0), tier.repeats)
            before = len(samples)
            stopped_early = unsettled = False
            why = ""
            first = True
            while True:
                left = {m: tier.repeats - drawn.get(m.name, 0) for m in models}
                remaining = sum(max(0, k) for k in left.values())
                if remaining == 0:
                    break
                if self.stopping is None:
                    step = dict(left)
                elif first:
                    per = math.ceil(self.stopping.min_samples / len(models))
                    step = {m: min(k, per) for m, k in left.items()}
                else:
                    step = {m: min(k, self.stopping.batch) for m, k in left.items()}
                first = False
                samples += await self._draw(prompt, step, drawn)
                result = await self._vote(samples, prompt)
                remaining = sum(max(0, tier.repeats - drawn.get(m.name, 0)) for m in models)
                if self.stopping is not None and result is not None and remaining > 0:
                    reason = self.stopping.settled(result, remaining)
                    if reason is not None:
                        stopped_early, why = True, reason
                        break
                    reason = await self._futile(samples, models, result, remaining, prompt)
                    if reason is not None:
                        stopped_early, why, unsettled = True, reason, True
                        break
            if result is None:
                if t + 1 == len(self.tiers):
                    self.ensemble.require_quorum(samples)  # raises: no sample succeeded
                report.append(
                    TierRun(
                        tier=t,
                        models=tuple(m.name for m in models),
                        repeats=tier.repeats,
                        samples_drawn=len(samples) - before,
                        confidence=0.0,
                        outcome="escalated",
                        reason="no successful sample",
                    )
                )
                continue
            kinds = tuple(sorted({a.kind for a in result.alerts}))
            weak = self.threshold is not None and result.confidence < self.threshold
            alarmed = sorted(self.escalate_on.intersection(kinds))
            problems = []
            if unsettled:
                problems.append(why)
            if weak:
                problems.append(f"confidence {result.confidence:.3f} < {self.threshold}")
            if alarmed:
                problems.append(f"alert(s): {', '.join(alarmed)}")
            last = t + 1 == len(self.tiers)
            if not problems:
                outcome = "accepted"
                reason = why or "budget spent"
                if self.threshold is not None:
                    reason += f"; confidence {result.confidence:.3f} >= {self.threshold}"
            else:
                outcome = "exhausted" if last else "escalated"
                reason = "; ".join(problems) + (" (no tier left)" if last else "")
            report.append(
                TierRun(
                    tier=t,
                    models=tuple(m.name for m in models),
                    repeats=tier.repeats,
                    samples_drawn=len(samples) - before,
                    confidence=result.confidence,
                    alerts=kinds,
                    stopped_early=stopped_early,
                    outcome=outcome,
                    reason=reason,
                )
            )
            if outcome != "escalated":
                break
        assert result is not None  # the last tier either voted or raised
        self.ensemble.require_quorum(samples)
        return result.model_copy(
            update={
                "sampling": SamplingReport(
                    tiers=tuple(report),
                    samples_drawn=len(samples),
                    samples_budget=sum(budget.values()),
                    threshold=self.threshold,
                )
            }
        )
