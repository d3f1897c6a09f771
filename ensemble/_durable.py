"""One call of a run, made durable and affordable: the store, the budget, prices, rate limits.

The one fan-out (:func:`ensemble._fanout.fan_out`, given ``durable=``) hands every
(model, repeat) call of a run to :meth:`CallPath.call`, which

1. serves it from the :class:`~ensemble.Store` when the store holds that exact request, or
   waits for an identical call already in flight;
2. else runs the single retry loop (:func:`ensemble._retry.call_with_retries`), whose attempts
   call :meth:`CallPath.before_attempt` / :meth:`CallPath.after_attempt` (the 429 pause, the
   budget reservation, the rate limits, in that order, right before each attempt is sent);
3. turns an answer into its :class:`~ensemble.Sample` (with usage and cost) and commits it to
   the store before anything votes on it.

Nothing here votes; :func:`annotate` adds the cost report and the budget alert to a result.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ensemble._budget import Budget, Pricing, Reservation, cost_report, estimate_prompt_tokens
from ensemble._limits import EndpointLimits, RateLimit, endpoint_limits
from ensemble._retry import CallOutcome, CallState, RetryPolicy, call_with_retries
from ensemble.errors import BudgetExceededError, ProviderHTTPError, RateLimitError
from ensemble.models.base import Completion, Model, Request
from ensemble.store import Store, _safe_endpoint, request_key
from ensemble.types import Alert, Consensus, Sample

if TYPE_CHECKING:
    from ensemble.runner import Ensemble

__all__ = ["CallPath", "annotate", "run_settings"]

_SEED_BOUND = 2**31 - 1


class _Ticket:
    __slots__ = ("reservation",)

    def __init__(self, reservation: Reservation | None) -> None:
        self.reservation = reservation


class CallPath:
    """What an :class:`~ensemble.Ensemble` adds around each call (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store | None,
        pricing: Pricing,
        budget: Budget | None,
        rate_limit: RateLimit | None,
    ) -> None:
        self.store = store
        self.pricing = pricing
        self.budget = budget
        self.rate_limit = rate_limit
        self.run_name: str | None = None
        self.replayed = 0
        """Samples served from the store (or shared with an identical call in flight)."""
        self.drawn = 0
        """Samples that came back from a model call made by this ensemble."""
        self.spent = 0.0
        """USD of the priced samples in ``drawn`` (what this ensemble paid for)."""
        # the endpoints' shared limits stay alive as long as this ensemble does
        self._endpoints: dict[str, EndpointLimits] = {}

    def endpoint(self, name: str) -> EndpointLimits:
        limits = self._endpoints.get(name)
        if limits is None:
            limits = self._endpoints[name] = endpoint_limits(name)
        return limits

    def base_seed(self, prompt: str) -> int:
        """A fresh random base seed, or with a store one derived from the prompt, so that a
        rerun asks for the same samples (and finds them in the store)."""
        if self.store is None:
            return random.randrange(_SEED_BOUND)
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % _SEED_BOUND

    # --- hooks of the retry loop -------------------------------------------------------------

    async def before_attempt(self, model: Model, request: Request) -> _Ticket:
        """Right before an attempt is sent; raises BudgetExceededError to not send it."""
        limits = self.endpoint(model.endpoint)
        reservation = None
        if self.budget is not None:
            worst = self.pricing.worst_case(model, request)
            if worst is None:  # checked at construction; a model added per call is refused
                raise BudgetExceededError(
                    "not sent: under a budget every call needs a price and max_tokens",
                    model_name=model.name,
                )
            reservation = await self.budget.reserve(worst, model_name=model.name)
        try:
            tokens = 0  # counted only for a tokens-per-minute limit
            if self.rate_limit is not None and self.rate_limit.tokens_per_minute is not None:
                tokens = estimate_prompt_tokens(request) + (request.max_tokens or 0)
            await limits.before_send(self.rate_limit, tokens)
        except BaseException:
            if reservation is not None and self.budget is not None:
                self.budget.refund(reservation)
            raise
        return _Ticket(reservation)

    def after_attempt(
        self,
        model: Model,
        ticket: _Ticket | None,
        completion: Completion | None,
        error: BaseException | None,
    ) -> None:
        if isinstance(error, RateLimitError):
            self.endpoint(model.endpoint).rate_limited_by(error.retry_after)
        if ticket is None or ticket.reservation is None or self.budget is None:
            return
        if completion is not None:
            self.budget.settle(ticket.reservation, self.pricing.cost(model, completion.usage))
        elif isinstance(error, ProviderHTTPError):  # answered with a status: nothing generated
            self.budget.refund(ticket.reservation)
        else:  # timeout, dropped connection, cancellation: it may be billed
            self.budget.settle(ticket.reservation, None)

    # --- one call ----------------------------------------------------------------------------

    async def call(
        self,
        model: Model,
        repeat: int,
        request: Request,
        *,
        policy: RetryPolicy,
        timeout: float | None,
        state: CallState,
        outcome: CallOutcome,
        label: str,
        build: Callable[[CallOutcome], Sample],
    ) -> CallOutcome:
        """Make (or replay) one call; a successful one leaves its sample on ``outcome``.

        ``build`` turns a successful outcome into its sample (the runner's provenance); the
        sample is priced and committed to the store here, before any vote.
        """
        key = document = None
        if self.store is not None:
            key, document = request_key(model, request, repeat)
            while True:
                hit = self.store.get(key)
                if hit is not None:
                    outcome.sample = self._priced(hit, model)
                    self.replayed += 1
                    return outcome
                leader = self.store.claim(key)
                if leader is None:
                    break
                # an identical call is in flight: share its answer (shielded: our own
                # cancellation must not cancel the answer the other waiters share)
                shared = await asyncio.shield(leader)
                if shared is not None:
                    outcome.sample = self._priced(shared, model)
                    self.replayed += 1
                    return outcome
                # it failed (errors are not shared); try ourselves
        sample: Sample | None = None
        try:
            await call_with_retries(
                model,
                request,
                policy=policy,
                timeout=timeout,
                state=state,
                outcome=outcome,
                label=label,
            )
            if outcome.completion is not None:
                sample = self._priced(build(outcome), model)
                if self.store is not None and key is not None and document is not None:
                    self.store.put(key, document, sample, run=self.run_name)
                outcome.sample = sample
                self.drawn += 1
                self.spent += sample.cost or 0.0
        finally:
            if self.store is not None and key is not None:
                self.store.release(key, sample)
        return outcome

    def _priced(self, sample: Sample, model: Model) -> Sample:
        cost = self.pricing.cost(model, sample.usage)
        return sample if cost == sample.cost else sample.model_copy(update={"cost": cost})


def annotate(result: Consensus, samples: tuple[Sample, ...], pricing: Pricing) -> Consensus:
    """The result with its cost report, and an alert when the budget cap withheld calls."""
    update: dict[str, Any] = {"cost": cost_report(samples, pricing)}
    withheld = [s for s in samples if s.error is not None and s.error.type == "BudgetExceededError"]
    if withheld:
        update["alerts"] = (
            *result.alerts,
            Alert(
                kind="budget",
                message=f"the budget cap withheld {len(withheld)} of {len(samples)} call(s); "
                "the vote is on the samples that came back",
                score=len(withheld) / len(samples),
                models=tuple(sorted({s.model for s in withheld if s.model})),
            ),
        )
    return result.model_copy(update=update)


def run_settings(ens: Ensemble) -> dict[str, Any]:
    """What a stored run must keep to be resumed (hashed by :meth:`Store.begin_run`)."""
    temperature: Any = ens.temperature
    if isinstance(temperature, Mapping):
        temperature = dict(sorted(temperature.items()))
    return {
        "models": [[m.name, _safe_endpoint(m.endpoint)] for m in ens.models],
        "repeats": ens.repeats,
        "metric": ens._metric.info.signature,
        "method": ens.method,
        "temperature": temperature,
        "seed": ens.seed,
        "max_tokens": ens.max_tokens,
        "system": ens.system,
        "quorum": ens.quorum,
        "calibration": None
        if ens.calibration is None
        else (getattr(ens.calibration, "name", None) or type(ens.calibration).__name__),
    }
