"""The one fan-out of model calls, shared by the runner and the LLM judge.

:func:`fan_out` sends every call of a batch concurrently through the single retry loop
(:func:`ensemble._retry.call_with_retries`) with one shared :class:`~ensemble._retry.CallState`
(limits overall and per endpoint, refused endpoints, the deadline for retries), waits for them
until the deadline (:func:`asyncio.wait`), cancels the stragglers and gathers them, and returns
one :class:`Returned` per call, in order. A call that came back is kept whatever happens to the
others; a straggler becomes a :class:`~ensemble.errors.DeadlineExceededError`. If the caller
itself is cancelled, the calls are cancelled and wound down before the cancellation propagates.

With a durable layer (``durable=``, the runner's :class:`ensemble._durable.CallPath`: store,
prices, budget, rate limits) each call goes through :meth:`~ensemble._durable.CallPath.call`
instead, which serves it from the store or makes it through the same retry loop with the
layer's hooks around every attempt (the budget reservation, the rate limits, the 429 pause),
and commits the sample that ``build`` makes of it before anything votes; that sample comes
back on :attr:`Returned.sample` and is kept whatever happens to the others. The judge's
calls go through the same fan-out without one; a ``limits.rate_limit`` paces them all the
same (and a 429 pauses their endpoint), through a durable layer of rate limits alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ensemble._retry import CallOutcome, CallState, RetryPolicy, call_with_retries
from ensemble.errors import DeadlineExceededError, ProviderError
from ensemble.models.base import Completion, Model, Request
from ensemble.settings import Limits
from ensemble.types import Sample

if TYPE_CHECKING:
    from ensemble._durable import CallPath

__all__ = ["Call", "Returned", "fan_out"]

logger = logging.getLogger("ensemble")


@dataclass(frozen=True)
class Call:
    """One call of a batch: which model, what to ask, and a label for the logs."""

    model: Model
    request: Request
    label: str
    repeat: int = 0
    """The repeat index (part of a stored call's key)."""


@dataclass(frozen=True)
class Returned:
    """What one call gave: a completion, or the error that prevented it."""

    completion: Completion | None
    error: BaseException | None
    attempts: int
    latency: float | None
    """Seconds from the first attempt's start to the last attempt's end (``None``: no attempt)."""
    sample: Sample | None = None
    """With a durable layer: the sample the call became (fresh and committed, or stored)."""


async def fan_out(
    calls: Sequence[Call],
    *,
    limits: Limits,
    retry: RetryPolicy,
    durable: CallPath | None = None,
    build: Callable[[Call, Returned], Sample] | None = None,
) -> list[Returned]:
    """Make every call concurrently under ``limits``; see the module docstring.

    ``durable`` needs ``build``: how a successful call becomes its sample.
    """
    if durable is not None and build is None:
        raise TypeError("fan_out(durable=...) needs build=")
    if not calls:
        return []
    if durable is None and limits.rate_limit is not None:
        from ensemble._budget import Pricing
        from ensemble._durable import CallPath

        pacer: CallPath | None = CallPath(
            store=None, pricing=Pricing(None), budget=None, rate_limit=limits.rate_limit
        )
    else:
        pacer = durable
    deadline = limits.deadline
    state = CallState(
        max_concurrency=limits.max_concurrency,
        max_per_endpoint=limits.max_per_provider,
        deadline_at=None if deadline is None else time.monotonic() + deadline,
        hooks=pacer,
    )
    outcomes = [CallOutcome() for _ in calls]

    def one(c: Call, outcome: CallOutcome) -> Coroutine[Any, Any, CallOutcome]:
        if durable is None or build is None:
            return call_with_retries(
                c.model,
                c.request,
                policy=retry,
                timeout=limits.timeout,
                state=state,
                outcome=outcome,
                label=c.label,
            )
        make = build
        return durable.call(
            c.model,
            c.repeat,
            c.request,
            policy=retry,
            timeout=limits.timeout,
            state=state,
            outcome=outcome,
            label=c.label,
            build=lambda o: make(c, _answered(o)),
        )

    tasks = [
        asyncio.ensure_future(one(c, outcome)) for c, outcome in zip(calls, outcomes, strict=True)
    ]
    logger.debug("fan-out: %d call(s), deadline %s s", len(tasks), deadline)
    try:
        _done, pending = await asyncio.wait(tasks, timeout=deadline)
        if pending:
            logger.debug("fan-out: deadline passed; cancelling %d straggler(s)", len(pending))
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        leftover = [t for t in tasks if not t.done()]
        for t in leftover:
            t.cancel()
        if leftover:  # the caller was cancelled: let the calls wind down
            await asyncio.gather(*leftover, return_exceptions=True)
    return [_returned(c, t, o, deadline) for c, t, o in zip(calls, tasks, outcomes, strict=True)]


def _latency(outcome: CallOutcome) -> float | None:
    if outcome.started is not None and outcome.finished is not None:
        return max(0.0, outcome.finished - outcome.started)
    return None


def _answered(outcome: CallOutcome) -> Returned:
    """The :class:`Returned` of a call that has just come back (for ``build``)."""
    return Returned(outcome.completion, outcome.error, outcome.attempts, _latency(outcome))


def _returned(
    call: Call, task: asyncio.Future[CallOutcome], outcome: CallOutcome, deadline: float | None
) -> Returned:
    latency = _latency(outcome)
    if outcome.sample is not None:  # it came back (or was stored): never lost
        return Returned(outcome.completion, None, outcome.attempts, latency, sample=outcome.sample)
    if task.cancelled():
        limit = "" if deadline is None else f" of {deadline:g} s"
        error: BaseException | None = DeadlineExceededError(
            f"cancelled at the deadline{limit}", model_name=call.model.name
        )
        return Returned(None, error, outcome.attempts, latency)
    exc = task.exception()
    if exc is not None:  # call_with_retries does not raise; be safe anyway
        return Returned(None, exc, outcome.attempts, latency)
    if outcome.completion is None and outcome.error is None:  # cannot happen
        error = ProviderError("no answer and no error", model_name=call.model.name)
        return Returned(None, error, outcome.attempts, latency)
    return Returned(outcome.completion, outcome.error, outcome.attempts, latency)
