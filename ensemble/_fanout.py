"""The one fan-out of model calls, shared by the runner and the LLM judge.

:func:`fan_out` sends every call of a batch concurrently through the single retry loop
(:func:`ensemble._retry.call_with_retries`) with one shared :class:`~ensemble._retry.CallState`
(limits overall and per endpoint, refused endpoints, the deadline for retries), waits for them
until the deadline (:func:`asyncio.wait`), cancels the stragglers and gathers them, and returns
one :class:`Returned` per call, in order. A call that came back is kept whatever happens to the
others; a straggler becomes a :class:`~ensemble.errors.DeadlineExceededError`. If the caller
itself is cancelled, the calls are cancelled and wound down before the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ensemble._retry import CallOutcome, CallState, RetryPolicy, call_with_retries
from ensemble.errors import DeadlineExceededError, ProviderError
from ensemble.models.base import Completion, Model, Request
from ensemble.settings import Limits

__all__ = ["Call", "Returned", "fan_out"]

logger = logging.getLogger("ensemble")


@dataclass(frozen=True)
class Call:
    """One call of a batch: which model, what to ask, and a label for the logs."""

    model: Model
    request: Request
    label: str


@dataclass(frozen=True)
class Returned:
    """What one call gave: a completion, or the error that prevented it."""

    completion: Completion | None
    error: BaseException | None
    attempts: int
    latency: float | None
    """Seconds from the first attempt's start to the last attempt's end (``None``: no attempt)."""
    cut: bool = False
    """True when the deadline cancelled the call."""


async def fan_out(calls: Sequence[Call], *, limits: Limits, retry: RetryPolicy) -> list[Returned]:
    """Make every call concurrently under ``limits``; see the module docstring."""
    if not calls:
        return []
    deadline = limits.deadline
    state = CallState(
        max_concurrency=limits.max_concurrency,
        max_per_endpoint=limits.max_per_provider,
        deadline_at=None if deadline is None else time.monotonic() + deadline,
    )
    outcomes = [CallOutcome() for _ in calls]
    tasks = [
        asyncio.ensure_future(
            call_with_retries(
                c.model,
                c.request,
                policy=retry,
                timeout=limits.timeout,
                state=state,
                outcome=outcome,
                label=c.label,
            )
        )
        for c, outcome in zip(calls, outcomes, strict=True)
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


def _returned(
    call: Call, task: asyncio.Future[CallOutcome], outcome: CallOutcome, deadline: float | None
) -> Returned:
    latency = None
    if outcome.started is not None and outcome.finished is not None:
        latency = max(0.0, outcome.finished - outcome.started)
    if task.cancelled():
        limit = "" if deadline is None else f" of {deadline:g} s"
        error: BaseException | None = DeadlineExceededError(
            f"cancelled at the deadline{limit}", model_name=call.model.name
        )
        return Returned(None, error, outcome.attempts, latency, cut=True)
    exc = task.exception()
    if exc is not None:  # call_with_retries does not raise; be safe anyway
        return Returned(None, exc, outcome.attempts, latency)
    if outcome.completion is None and outcome.error is None:  # cannot happen
        error = ProviderError("no answer and no error", model_name=call.model.name)
        return Returned(None, error, outcome.attempts, latency)
    return Returned(outcome.completion, outcome.error, outcome.attempts, latency)
