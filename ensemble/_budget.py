"""Prices, the cost of samples, and the budget cap.

**Prices** are USD per million tokens, ``(input, output)``, looked up per model by its full name
(``"openai:gpt-4o-mini"``) or its name without the provider (``"gpt-4o-mini"``). A price may
also be any object with ``price_in`` and ``price_out`` (a model card); a model that carries a
``card`` with those is priced by it when ``prices=`` does not name it. A model with no price is
*unpriced*: its samples have ``cost=None`` and reports list it, never as $0.

**The budget** (:class:`Budget`) is a cap in USD on what one :class:`~ensemble.Ensemble` spends.
Before each attempt the worst case is reserved, under one lock: the prompt's tokens bounded
above (:func:`estimate_prompt_tokens`) plus ``max_tokens``, times the model's prices. An attempt
whose worst case does not fit is not sent: it waits while other reservations are in flight (they
may come back cheaper) and fails with :class:`~ensemble.errors.BudgetExceededError` when none
is. When the answer arrives the reservation is replaced by its actual cost (from the provider's
usage). An attempt that failed with an HTTP status is refunded (nothing was generated); one
whose fate is unknown (a timeout, a dropped connection, a cancellation) stays charged at its
worst case, since the provider may bill it. So ``spent + reserved <= cap`` at every moment, and
the spend never exceeds the cap however many calls are in flight.

A budget whose past spend is unknown (a Ray actor restarted after it died, ``ensemble.ray``)
is closed with :meth:`Budget.spend_rest`: what is left of the cap counts as spent, nothing more
is sent under it, and the reservations in flight settle as usual.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ensemble._validate import check_number
from ensemble.errors import BudgetExceededError, ConfigurationError
from ensemble.models.base import Model, Request
from ensemble.types import CostReport, ModelCost, Sample, Usage

__all__ = [
    "Budget",
    "Pricing",
    "Reservation",
    "cost_report",
    "estimate_prompt_tokens",
]

#: Tokens added per message and per request for the chat template's own tokens.
_PER_MESSAGE_TOKENS = 8
_PER_REQUEST_TOKENS = 16


@runtime_checkable
class _Priced(Protocol):
    price_in: float | None
    price_out: float | None


def _price_pair(name: str, value: object) -> tuple[float, float] | None:
    if isinstance(value, _Priced):
        pin, pout = value.price_in, value.price_out
        if pin is None or pout is None:
            return None
        value = (pin, pout)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ConfigurationError(
            f"prices[{name!r}] must be (input, output) in USD per million tokens, not {value!r}"
        )
    out: list[float] = []
    for v in value:
        try:  # check_number also refuses a huge int (math.isfinite would raise OverflowError)
            out.append(check_number("price", v, low=0.0))
        except ConfigurationError:
            raise ConfigurationError(
                f"prices[{name!r}] must be two numbers >= 0 (USD per million tokens), not {value!r}"
            ) from None
    return out[0], out[1]


class Pricing:
    """Prices by model name (validated here, once)."""

    def __init__(self, prices: Mapping[str, Any] | None = None) -> None:
        if prices is not None and not isinstance(prices, Mapping):
            raise ConfigurationError(
                "prices must be a mapping of model name to (input, output) USD per million tokens"
            )
        self._prices: dict[str, tuple[float, float] | None] = {
            str(k): _price_pair(str(k), v) for k, v in (prices or {}).items()
        }

    def __bool__(self) -> bool:
        return bool(self._prices)

    def price(self, model: Model | str) -> tuple[float, float] | None:
        """``(input, output)`` USD per million tokens, or ``None`` (unpriced)."""
        name = model if isinstance(model, str) else model.name
        for key in (name, name.split(":", 1)[-1]):
            if key in self._prices:
                return self._prices[key]
        card = getattr(model, "card", None)
        if card is not None and isinstance(card, _Priced):
            return _price_pair(name, card)
        return None

    def cost(self, model: Model | str, usage: Usage | None) -> float | None:
        """USD for ``usage`` of ``model``; ``None`` when unpriced or the usage is unknown."""
        price = self.price(model)
        if price is None or usage is None:
            return None
        if usage.input_tokens is None or usage.output_tokens is None:
            return None
        return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6

    def worst_case(self, model: Model, request: Request) -> float | None:
        """USD of the most ``request`` can cost (``None``: unpriced or unbounded output)."""
        price = self.price(model)
        if price is None or request.max_tokens is None:
            return None
        return (estimate_prompt_tokens(request) * price[0] + request.max_tokens * price[1]) / 1e6


def estimate_prompt_tokens(request: Request) -> int:
    """An upper bound on the prompt tokens of ``request`` for byte-level BPE tokenizers.

    Every token covers at least one byte of UTF-8, so the byte count bounds the text's tokens;
    a few tokens per message cover the chat template. Pessimistic (about 4x for English), which
    is what a reservation must be.
    """
    messages, system = request.chat()
    total = _PER_REQUEST_TOKENS
    if system:
        total += len(system.encode("utf-8")) + _PER_MESSAGE_TOKENS
    for m in messages:
        total += len(m.content.encode("utf-8")) + _PER_MESSAGE_TOKENS
    return total


@dataclass
class Reservation:
    amount: float
    settled: bool = False


class Budget:
    """A cap in USD shared by every call of one ensemble (thread- and task-safe)."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.spent = 0.0
        """USD charged: actual costs, plus worst cases of attempts whose fate is unknown."""
        self.reserved = 0.0
        """USD reserved by attempts in flight."""
        self.refused = 0
        """Attempts not sent because they would have crossed the cap."""
        self.closed = False
        """Whether :meth:`spend_rest` counted the rest of the cap as spent."""
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"Budget(cap={self.cap:g}, spent={self.spent:.6g}, reserved={self.reserved:.6g})"

    @property
    def exhausted(self) -> bool:
        return self.refused > 0

    def _try(self, amount: float) -> Reservation | asyncio.Future[None] | None:
        """A reservation; a future to wait on when it cannot fit now but might once the
        reservations in flight settle; ``None`` when it can never fit."""
        with self._lock:
            if self.closed:
                self.refused += 1
                return None
            if self.spent + self.reserved + amount <= self.cap:
                self.reserved += amount
                return Reservation(amount)
            if self.reserved > 0 and self.spent + amount <= self.cap:
                loop = asyncio.get_running_loop()
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
                return fut
            self.refused += 1
            return None

    async def reserve(self, amount: float, *, model_name: str) -> Reservation:
        """Reserve ``amount`` USD, waiting while in-flight reservations may free room.

        Raises :class:`~ensemble.errors.BudgetExceededError` when it can never fit.
        """
        while True:
            got = self._try(amount)
            if isinstance(got, Reservation):
                return got
            if got is None:
                raise BudgetExceededError(
                    f"not sent: its worst case ${amount:.6g} would cross the budget of "
                    f"${self.cap:g} (${self.spent:.6g} spent)",
                    model_name=model_name,
                )
            await got

    def spend_rest(self) -> None:
        """Count what is left of the cap as spent, for good: for a budget whose past spend is
        unknown (the share of a Ray actor restarted after it died, which may have spent all of
        it). Every later attempt is refused; a reservation in flight settles as usual, and
        what it leaves unused counts as spent too, so ``spent + reserved`` stays at the cap
        (``spent`` ends at the cap, or above it only by what an answer cost beyond its
        reserved worst case)."""
        with self._lock:
            self.closed = True
            self._spend_rest()
            waiters, self._waiters = self._waiters, []
        _wake(waiters)  # they retry, are refused, and fail now instead of waiting

    def _spend_rest(self) -> None:
        """Under the lock: on a closed budget, the unreserved rest of the cap is spent."""
        if self.closed:
            self.spent = max(self.spent, self.cap - self.reserved)

    def settle(self, reservation: Reservation, actual: float | None) -> None:
        """Replace the reservation by the actual cost (``None``: unknown, keep the worst case)."""
        if reservation.settled:
            return
        with self._lock:
            reservation.settled = True
            self.reserved = max(0.0, self.reserved - reservation.amount)
            self.spent += reservation.amount if actual is None else actual
            self._spend_rest()
            waiters, self._waiters = self._waiters, []
        _wake(waiters)

    def refund(self, reservation: Reservation) -> None:
        """The attempt generated nothing (an HTTP error): release its reservation."""
        if reservation.settled:
            return
        with self._lock:
            reservation.settled = True
            self.reserved = max(0.0, self.reserved - reservation.amount)
            self._spend_rest()
            waiters, self._waiters = self._waiters, []
        _wake(waiters)


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    for loop, fut in waiters:
        if loop.is_closed():
            continue

        def done(f: asyncio.Future[None] = fut) -> None:
            if not f.done():
                f.set_result(None)

        try:
            if loop is _running_loop():
                done()
            else:
                loop.call_soon_threadsafe(done)
        except RuntimeError:  # the loop closed meanwhile
            pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def cost_report(samples: tuple[Sample, ...], pricing: Pricing) -> CostReport:
    """Tokens and USD per model and in total over the successful samples."""
    per: dict[str, dict[str, Any]] = {}
    for s in samples:
        if s.model is None or not s.ok:
            continue
        row = per.setdefault(
            s.model, {"samples": 0, "input": 0, "output": 0, "cost": 0.0, "unknown": 0}
        )
        row["samples"] += 1
        if s.usage is not None:
            row["input"] += s.usage.input_tokens or 0
            row["output"] += s.usage.output_tokens or 0
        cost = s.cost if s.cost is not None else pricing.cost(s.model, s.usage)
        if cost is None:
            row["unknown"] += 1
        else:
            row["cost"] += cost
    models = tuple(
        ModelCost(
            model=name,
            samples=row["samples"],
            input_tokens=row["input"],
            output_tokens=row["output"],
            cost=None if row["unknown"] else row["cost"],
        )
        for name, row in per.items()
    )
    priced = [m.cost for m in models if m.cost is not None]
    return CostReport(
        models=models,
        input_tokens=sum(m.input_tokens for m in models),
        output_tokens=sum(m.output_tokens for m in models),
        cost=sum(priced) if priced else None,
        unpriced=tuple(m.model for m in models if m.cost is None),
    )
