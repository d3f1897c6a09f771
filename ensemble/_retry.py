"""The single retry loop of ``ensemble``: every model call that retries goes through here.

Adapters make exactly one attempt per call (the vendor SDKs' own retries are off); this module
decides whether and when to try again:

* retried: :class:`~ensemble.errors.ProviderConnectionError`,
  :class:`~ensemble.errors.ProviderTimeoutError` and HTTP 408, 409, 429 and 5xx (the errors
  whose ``retryable`` is true);
* never retried: every other status (400, 401, 403, 404, 422, ...), invalid 200 bodies, and
  exceptions that are not provider errors;
* the wait before retry ``k`` (1-based) is "full jitter" exponential backoff,
  ``uniform(0, min(max_delay, base_delay * 2 ** (k - 1)))``, but never less than the
  provider's ``Retry-After`` / ``retry-after-ms``; a ``Retry-After`` above ``max_retry_after``
  fails the call at once, and so does a wait that would end after the run's deadline;
* a 401 or 403 marks the endpoint as refused in the shared :class:`CallState`: calls that
  have not yet been sent to it fail without a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import Field, model_validator

from ensemble._limits import batch_slot, endpoint_slot
from ensemble._validate import Flag, Int, Number, Settings
from ensemble.errors import (
    AuthenticationError,
    EnsembleError,
    InvalidResponseError,
    ProviderError,
    ProviderTimeoutError,
)
from ensemble.models.base import Completion, Model, Request
from ensemble.types import Sample

__all__ = ["CallOutcome", "CallState", "RetryAfterRefusal", "RetryPolicy", "call_with_retries"]

logger = logging.getLogger("ensemble")


class RetryAfterRefusal(str):
    """The reason :meth:`RetryPolicy.delay` gives when the provider asked to wait longer than
    ``max_retry_after``: a ``str`` like every reason, of its own class so that the retry loop
    recognises it (and writes it into the error) without reading its text."""


class RetryPolicy(Settings):
    """How the runner retries one call. All times in seconds.

    Keyword-only and frozen; invalid settings raise
    :class:`~ensemble.errors.ConfigurationError`. ``max_attempts`` counts the first attempt
    (``1`` disables retries).
    """

    max_attempts: Int = Field(default=4, ge=1, le=100)
    base_delay: Number = Field(default=0.5, ge=0.0, le=3600.0)
    max_delay: Number = Field(default=8.0, ge=0.0, le=3600.0)
    max_retry_after: Number = Field(default=20.0, ge=0.0, le=86400.0)
    """A provider asking to wait longer than this makes the call fail at once."""
    jitter: Flag = True
    """Full jitter (``uniform(0, backoff)``); ``False`` waits the whole backoff."""

    @model_validator(mode="after")
    def _order(self) -> RetryPolicy:
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must not be below base_delay")
        return self

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (1-based), ignoring any Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return rng.uniform(0.0, ceiling) if self.jitter else ceiling

    def delay(self, error: BaseException, attempts: int, rng: random.Random) -> float | str:
        """Seconds to wait before the next attempt, or the reason not to retry."""
        if not isinstance(error, ProviderError) or not error.retryable:
            return "not retryable"
        if attempts >= self.max_attempts:
            return f"gave up after {attempts} attempts"
        wait = self.backoff(attempts, rng)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return RetryAfterRefusal(
                    f"Retry-After {retry_after:g} s exceeds the cap of "
                    f"{self.max_retry_after:g} s (max_retry_after)"
                )
            wait = max(wait, retry_after)
        return wait


class AttemptHooks(Protocol):
    """Called around every attempt (``ensemble._durable.CallPath``: budget, rate limits)."""

    async def before_attempt(self, model: Model, request: Request) -> Any:
        """Right before sending; raising a non-provider error fails the call unsent."""

    def after_attempt(
        self,
        model: Model,
        ticket: Any,
        completion: Completion | None,
        error: BaseException | None,
    ) -> None:
        """After the attempt ended (also when it was cancelled: both are ``None``)."""


@dataclass
class CallState:
    """What the calls of one run share: limits, refused endpoints, the deadline."""

    max_concurrency: int = 16
    max_per_endpoint: int = 8
    deadline_at: float | None = None
    """``time.monotonic()`` value after which no retry is started."""
    refused: dict[str, AuthenticationError] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    hooks: AttemptHooks | None = None
    _all: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def slot(self, endpoint: str) -> AsyncIterator[None]:
        """Hold one per-endpoint slot (shared by every run in the process, see
        :mod:`ensemble._limits`), one of this run's and one of its batch's (if any)."""
        if self._all is None:
            self._all = asyncio.Semaphore(self.max_concurrency)
        async with endpoint_slot(endpoint, self.max_per_endpoint), self._all, batch_slot():
            yield


@dataclass
class CallOutcome:
    """The result of :func:`call_with_retries`: a completion or the last error."""

    completion: Completion | None = None
    error: BaseException | None = None
    attempts: int = 0
    started: float | None = None
    """``time.perf_counter()`` at the first attempt (``None``: no attempt was made)."""
    finished: float | None = None
    sample: Sample | None = None
    """The sample of a successful (or stored) call, once it is built."""


def _refused_error(model: Model, refused: AuthenticationError) -> AuthenticationError:
    return AuthenticationError(
        f"not called: {model.endpoint} refused the key earlier in this run",
        model_name=model.name,
        status_code=refused.status_code,
    )


async def call_with_retries(
    model: Model,
    request: Request,
    *,
    policy: RetryPolicy,
    timeout: float | None,
    state: CallState,
    outcome: CallOutcome | None = None,
    label: str | None = None,
) -> CallOutcome:
    """Call ``model`` until it answers, the policy gives up, or a refusal stops the endpoint.

    Never raises for a failed call (the error is on the outcome); cancellation propagates.
    Pass ``outcome`` to watch progress from outside (e.g. to report attempts of a call that
    the deadline cancelled).
    """
    out = outcome if outcome is not None else CallOutcome()
    label = label or model.name
    endpoint = model.endpoint
    while True:
        if endpoint in state.refused:
            out.error = _refused_error(model, state.refused[endpoint])
            return out
        async with state.slot(endpoint):
            if endpoint in state.refused:  # refused while this call waited for a slot
                out.error = _refused_error(model, state.refused[endpoint])
                return out
            ticket: Any = None
            if state.hooks is not None:
                try:
                    ticket = await state.hooks.before_attempt(model, request)
                except EnsembleError as exc:  # e.g. the budget: not sent, not retried
                    out.error = exc
                    out.finished = time.perf_counter()
                    return out
            out.attempts += 1
            if out.started is None:
                out.started = time.perf_counter()
            completion = None
            error: BaseException | None = None
            try:
                if timeout is None:
                    completion = await model.agenerate(request)
                else:
                    completion = await asyncio.wait_for(model.agenerate(request), timeout)
            except ProviderError as exc:
                error = exc
            except asyncio.TimeoutError:  # TimeoutError from 3.11 on
                error = ProviderTimeoutError(
                    f"no answer within the attempt timeout of {timeout:g} s",
                    model_name=model.name,
                )
            except Exception as exc:  # a misbehaving adapter must not sink the run
                error = exc
            except BaseException:  # cancelled mid-attempt: the hooks must know
                if state.hooks is not None:
                    state.hooks.after_attempt(model, ticket, None, None)
                raise
            if state.hooks is not None:
                answered = completion if isinstance(completion, Completion) else None
                state.hooks.after_attempt(model, ticket, answered, error)
            if error is None:
                if isinstance(completion, Completion):
                    out.completion = completion
                    out.error = None
                    out.finished = time.perf_counter()
                    return out
                error = InvalidResponseError(
                    f"the adapter returned {type(completion).__name__}, not a Completion",
                    model_name=model.name,
                )
        out.error = error
        out.finished = time.perf_counter()
        if isinstance(error, AuthenticationError):
            state.refused.setdefault(endpoint, error)
            logger.debug(
                "%s: attempt %d refused (%s); endpoint stopped", label, out.attempts, error
            )
            return out
        decision = policy.delay(error, out.attempts, state.rng)
        if (
            isinstance(decision, RetryAfterRefusal)
            and isinstance(error, ProviderError)
            and error.not_retried is None
        ):
            # Say why a retryable error was not retried, in the error (and the sample) itself
            # (once: a test double may raise the same instance again).
            error.not_retried = str(decision)
            message = str(error.args[0]) if error.args else str(error)
            error.args = (f"{message}; not retried: {decision}", *error.args[1:])
        if isinstance(decision, str):
            logger.debug(
                "%s: attempt %d failed: %s: %s; %s",
                label,
                out.attempts,
                type(error).__name__,
                error,
                decision,
            )
            return out
        if state.deadline_at is not None and time.monotonic() + decision >= state.deadline_at:
            logger.debug(
                "%s: attempt %d failed (%s); a retry in %.2f s would pass the deadline",
                label,
                out.attempts,
                type(error).__name__,
                decision,
            )
            return out
        logger.debug(
            "%s: attempt %d failed: %s: %s; retrying in %.2f s",
            label,
            out.attempts,
            type(error).__name__,
            error,
            decision,
        )
        await asyncio.sleep(decision)
