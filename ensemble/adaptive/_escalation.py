"""Escalation tiers over sequential stopping.

**Escalation** (:class:`Escalation` with :class:`Tier` objects): start with a cheap tier (one
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
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from ensemble._closing import AsyncClosing
from ensemble._sync import run_sync
from ensemble._validate import Int, Settings
from ensemble.adaptive._stopping import DEFAULT_STOPPING, SequentialStopping
from ensemble.diagnostics import DEFAULT_ALARM, UniformityAlarm
from ensemble.errors import ConfigurationError
from ensemble.models import get_model
from ensemble.models.base import Model
from ensemble.runner import Ensemble
from ensemble.settings import VoteSettings
from ensemble.types import Consensus, Sample, SamplingReport, TierRun

if TYPE_CHECKING:
    from ensemble.catalog import Catalog


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


class Escalation(AsyncClosing):
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
        """The ensemble's vote on ``samples`` (no quorum yet: rounds are partial); ``None``
        when no sample can vote (every one failed or is empty: an empty answer abstains)."""
        if not any(s.votes for s in samples):
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
                    self.ensemble.require_quorum(samples)  # raises: no sample can vote
                report.append(
                    TierRun(
                        tier=t,
                        models=tuple(m.name for m in models),
                        repeats=tier.repeats,
                        samples_drawn=len(samples) - before,
                        confidence=0.0,
                        outcome="escalated",
                        reason=(
                            "no successful sample"
                            if not any(s.ok for s in samples)
                            else "no voting sample (every successful answer was empty)"
                        ),
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
