"""Limits shared by every run in the process that talks to one endpoint.

An *endpoint* is what :attr:`ensemble.models.Model.endpoint` names (a provider and its base
URL). Three things are shared per endpoint, process-wide, whichever :class:`~ensemble.Ensemble`
(or batch) the call comes from:

* **concurrency**: :func:`endpoint_slot` admits a call while the endpoint's calls in flight,
  counted over every run, are fewer than *that run's* ``max_per_provider``. Two runs of limit 8
  against one endpoint hold at most 8 between them (today's per-run semaphores held 16);
* **rate**: :class:`RateLimit` (requests per second, optionally tokens per minute), enforced by
  :mod:`aiolimiter` right before each attempt is sent. Requests are paced, not burst: the
  request bucket holds one request and drains at the rate (slowed by :data:`PACING_MARGIN`), so
  no window of one second sees more than ``requests_per_second`` sends;
* **back-off**: a 429 from the endpoint pauses every run's next attempt to it for the
  provider's ``Retry-After`` (or :data:`DEFAULT_PAUSE` seconds when it gave none).

A batch (:mod:`ensemble._batch`) also bounds the attempts in flight over *all* its prompts with
:func:`batch_slot`, through a context variable that the batch sets for its own tasks only.

asyncio primitives (and :class:`aiolimiter.AsyncLimiter`) belong to one event loop, while the
sync entry points (``Ensemble.run``) start a fresh loop per call. So the state kept per
endpoint lives in a plain object (:class:`EndpointLimits`), and the loop-bound primitives are
made per (endpoint, loop); runs that share a loop share them. Two sync runs one after the
other each start with a fresh request bucket: at most one request at the seam comes early.

The registry holds :class:`EndpointLimits` weakly: an :class:`~ensemble.Ensemble` keeps the
ones it used alive, so limits hold across its runs and vanish with the last run that used them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_PAUSE",
    "PACING_MARGIN",
    "EndpointLimits",
    "RateLimit",
    "batch_slot",
    "endpoint_limits",
    "endpoint_slot",
]

#: Requests are spaced ``(1 + PACING_MARGIN) / requests_per_second`` apart, so that network
#: and scheduling jitter (a few ms) cannot push an extra request into a one-second window as
#: the server counts it.
PACING_MARGIN = 0.03

#: Seconds every call to an endpoint waits after a 429 that named no ``Retry-After``.
DEFAULT_PAUSE = 1.0


class RateLimit(BaseModel):
    """Requests per second (and optionally tokens per minute) allowed to one endpoint.

    ``Ensemble(rate_limit=10.0)`` is ``RateLimit(requests_per_second=10.0)``. Tokens are
    counted before the call as the prompt's estimated tokens plus ``max_tokens`` (the worst
    case, the same estimate the budget reserves).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tokens_per_minute: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class _Gate:
    """A counting gate whose capacity each waiter brings along (``asyncio.Semaphore`` has one
    fixed capacity; here a run of limit 2 and a run of limit 8 share one count). FIFO."""

    def __init__(self) -> None:
        self.active = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, limit: int) -> None:
        if self.active < limit:
            self.active += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (limit, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif fut.done() and not fut.cancelled():  # woken, then cancelled: pass it on
                self.active -= 1
                self._wake()
            raise
        # a woken waiter was counted in by _wake

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        for entry in list(self._waiters):
            limit, fut = entry
            if fut.done():
                self._waiters.remove(entry)
                continue
            if self.active < limit:
                self._waiters.remove(entry)
                self.active += 1
                fut.set_result(None)
                return


class _LoopLimits:
    """The loop-bound half of an endpoint's limits."""

    def __init__(self) -> None:
        self.gate = _Gate()
        self.requests: AsyncLimiter | None = None
        self.requests_rate: float | None = None
        self.tokens: AsyncLimiter | None = None
        self.tokens_rate: float | None = None


class EndpointLimits:
    """What every run talking to one endpoint shares (see the module docstring)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.paused_until = 0.0
        """``time.monotonic()`` before which no attempt is sent (set by a 429)."""
        self.rate_limited = 0
        """429s seen from this endpoint."""
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopLimits] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"EndpointLimits({self.endpoint!r})"

    def _here(self) -> _LoopLimits:
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = self._loops.get(loop)
            if mine is None:
                mine = self._loops[loop] = _LoopLimits()
            return mine

    @contextlib.asynccontextmanager
    async def slot(self, limit: int) -> AsyncIterator[None]:
        gate = self._here().gate
        await gate.acquire(limit)
        try:
            yield
        finally:
            gate.release()

    async def before_send(self, rate: RateLimit | None, tokens: int) -> None:
        """Wait out a 429 pause, then take this attempt's share of the rate limits."""
        while True:
            wait = self.paused_until - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        if rate is None:
            return
        here = self._here()
        if rate.tokens_per_minute is not None:
            tpm = rate.tokens_per_minute
            if here.tokens is None or here.tokens_rate is None or tpm < here.tokens_rate:
                here.tokens, here.tokens_rate = AsyncLimiter(tpm, 60.0), tpm
            # a call larger than a minute's worth waits for the whole bucket, not forever
            await here.tokens.acquire(min(float(max(tokens, 1)), here.tokens.max_rate))
        if rate.requests_per_second is not None:
            rps = rate.requests_per_second
            if here.requests is None or here.requests_rate is None or rps < here.requests_rate:
                # one request per interval, no burst: the strictest run's rate holds
                interval = (1.0 + PACING_MARGIN) / rps
                here.requests, here.requests_rate = AsyncLimiter(1, interval), rps
            await here.requests.acquire()

    def rate_limited_by(self, retry_after: float | None) -> None:
        """A 429 arrived: every run's next attempt to this endpoint waits."""
        pause = DEFAULT_PAUSE if retry_after is None else max(0.0, retry_after)
        with self._lock:
            self.rate_limited += 1
            self.paused_until = max(self.paused_until, time.monotonic() + pause)


_registry: weakref.WeakValueDictionary[str, EndpointLimits] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def endpoint_limits(endpoint: str) -> EndpointLimits:
    """The process-wide :class:`EndpointLimits` of ``endpoint`` (made on first use).

    Held weakly: keep a reference for as long as its state (pauses, rate buckets) must last.
    """
    with _registry_lock:
        limits = _registry.get(endpoint)
        if limits is None:
            limits = _registry[endpoint] = EndpointLimits(endpoint)
        return limits


@contextlib.asynccontextmanager
async def endpoint_slot(endpoint: str, limit: int) -> AsyncIterator[EndpointLimits]:
    """Hold one of ``endpoint``'s process-wide slots (admitted below ``limit`` in flight)."""
    limits = endpoint_limits(endpoint)
    async with limits.slot(limit):
        yield limits


_batch: contextvars.ContextVar[asyncio.Semaphore | None] = contextvars.ContextVar(
    "ensemble_batch_slots", default=None
)


def set_batch_slots(slots: asyncio.Semaphore | None) -> contextvars.Token[Any]:
    """Bound the attempts of the current task (and tasks it starts) by ``slots``."""
    return _batch.set(slots)


@contextlib.asynccontextmanager
async def batch_slot() -> AsyncIterator[None]:
    """One of the current batch's overall slots (nothing outside a batch)."""
    slots = _batch.get()
    if slots is None:
        yield
        return
    async with slots:
        yield


def rate_limit_from(value: object) -> RateLimit | None:
    """``rate_limit=`` as given to :class:`~ensemble.Ensemble`: a number (requests per second),
    a :class:`RateLimit`, or ``None``."""
    from ensemble._validate import check_number
    from ensemble.errors import ConfigurationError

    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"rate_limit must be requests per second (a number) or an ensemble.RateLimit, "
            f"not {value!r}"
        )
    return RateLimit(requests_per_second=check_number("rate_limit", value, low=0.0, low_open=True))
