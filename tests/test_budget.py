"""Cost per sample and per result, and the budget cap, against the loopback server's usage."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from loopback import LoopbackServer, Reply

from ensemble import Consensus, Ensemble, Request, RetryPolicy, errors
from ensemble._budget import Budget, Pricing, estimate_prompt_tokens
from ensemble.models.openai import OpenAIModel

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
REPLY = "one two three"  # the loopback server reports 7 prompt and 3 completion tokens


def model(server: LoopbackServer, name: str = "a") -> OpenAIModel:
    return OpenAIModel(name, base_url=server.openai_url, api_key="sk-test")


def ens(server: LoopbackServer, **kw: Any) -> Ensemble:
    kw.setdefault("retry", FAST)
    models = kw.pop("models", None) or [model(server)]
    return Ensemble(models=models, **kw)


def server_spend(server: LoopbackServer, price_in: float, price_out: float) -> float:
    """USD by the usage the server reported for every answer it gave (all 200s here)."""
    total = 0.0
    for r in server.requests:
        if r.path.endswith("/chat/completions"):
            total += (7 * price_in + len(REPLY.split()) * price_out) / 1e6
    return total


async def arun(e: Ensemble, prompt: str = "q") -> Consensus:
    async with e:
        return await e.arun(prompt)


# --- cost -----------------------------------------------------------------------------------


@dataclass
class Card:
    price_in: float | None
    price_out: float | None


async def test_every_sample_and_result_carries_its_cost(
    server: LoopbackServer, server2: LoopbackServer
) -> None:
    server.set_default("a", Reply(text=REPLY))
    server.set_default("b", Reply(text=REPLY))
    server2.set_default("c", Reply(text=REPLY))
    e = ens(
        server,
        models=[model(server, "a"), model(server, "b"), model(server2, "c")],
        repeats=2,
        prices={"a": (1.0, 2.0), "openai:c": Card(0.5, 4.0)},
    )
    result = await arun(e)
    by = {m.model: m for m in result.cost.models}  # type: ignore[union-attr]
    one_a = (7 * 1.0 + 3 * 2.0) / 1e6
    one_c = (7 * 0.5 + 3 * 4.0) / 1e6
    assert by["openai:a"].cost == pytest.approx(2 * one_a)
    assert by["openai:c"].cost == pytest.approx(2 * one_c)
    assert by["openai:b"].cost is None  # unpriced, never $0
    assert all(m.input_tokens == 14 and m.output_tokens == 6 for m in by.values())
    assert result.cost is not None
    assert result.cost.unpriced == ("openai:b",)
    assert result.cost.cost == pytest.approx(2 * one_a + 2 * one_c)
    assert (result.cost.input_tokens, result.cost.output_tokens) == (42, 18)
    costs = {s.model: s.cost for s in result.samples}
    assert costs["openai:a"] == pytest.approx(one_a) and costs["openai:b"] is None
    again = Consensus.model_validate_json(result.model_dump_json())
    assert again == result


async def test_without_prices_everything_is_unpriced(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text=REPLY))
    result = await arun(ens(server, repeats=2))
    assert result.cost is not None and result.cost.cost is None
    assert result.cost.unpriced == ("openai:a",) and result.cost.output_tokens == 6


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"prices": {"a": (1.0,)}}, "input, output"),
        ({"prices": {"a": (1.0, -2.0)}}, ">= 0"),
        ({"prices": [("a", 1.0)]}, "mapping"),
        ({"budget": 1.0, "prices": {"a": (1.0, 1.0)}}, "max_tokens"),
        ({"budget": 1.0, "max_tokens": 5}, "price for every model"),
        ({"budget": -1.0, "max_tokens": 5, "prices": {"a": (1, 1)}}, "positive"),
    ],
)
def test_bad_prices_and_budgets(server: LoopbackServer, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(errors.ConfigurationError, match=match):
        ens(server, **kw)


def test_prompt_estimate_bounds_the_bytes() -> None:
    r = Request(prompt="héllo wörld", system="Be brief.")
    assert estimate_prompt_tokens(r) >= len("héllo wörld".encode()) + len(b"Be brief.")
    assert Pricing({"m": (1e6, 1e6)}).worst_case(OpenAIModelStub(), r) is None  # no max_tokens


class OpenAIModelStub:
    name = "m"


# --- the budget -----------------------------------------------------------------------------


async def test_sixteen_in_flight_never_cross_a_cap_worth_five_calls(
    server: LoopbackServer,
) -> None:
    server.set_default("a", Reply(text=REPLY, delay=0.2))
    # $1 per output token, input free: a call costs exactly its worst case, $3
    e = ens(
        server,
        repeats=16,
        max_concurrency=16,
        max_per_provider=16,
        max_tokens=3,
        prices={"a": (0.0, 1e6)},
        budget=15.0,
    )
    result = await arun(e)
    assert server.count() == 5
    assert server_spend(server, 0.0, 1e6) == pytest.approx(15.0)
    assert e.budget is not None and e.budget.spent == pytest.approx(15.0)
    withheld = [s for s in result.samples if s.error is not None]
    assert len(withheld) == 11
    assert {s.error.type for s in withheld if s.error} == {"BudgetExceededError"}
    (alert,) = [a for a in result.alerts if a.kind == "budget"]
    assert "11 of 16" in alert.message


async def test_reservations_are_reconciled_with_the_actual_cost(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text=REPLY, delay=0.1))
    # worst case $6 (max_tokens 6), actual $3: two fit at once, more as answers come back
    e = ens(
        server,
        repeats=16,
        max_concurrency=16,
        max_per_provider=16,
        max_tokens=6,
        prices={"a": (0.0, 1e6)},
        budget=15.0,
    )
    await arun(e)
    spent = server_spend(server, 0.0, 1e6)
    assert spent <= 15.0
    assert server.count() >= 4  # reconciliation let more than the 2 worst cases through
    assert server.max_in_flight <= 2


async def test_below_quorum_the_budget_is_a_quorum_error(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text=REPLY))
    e = ens(server, repeats=4, quorum=3, max_tokens=3, prices={"a": (0.0, 1e6)}, budget=6.0)
    with pytest.raises(errors.QuorumError, match="BudgetExceededError") as info:
        await arun(e)
    assert sum(s.ok for s in info.value.samples) == 2 and server.count() == 2


async def test_http_errors_are_refunded(server: LoopbackServer) -> None:
    server.script("a", Reply(status=500), Reply(status=503))
    server.set_default("a", Reply(text=REPLY))
    e = ens(server, repeats=1, max_tokens=3, prices={"a": (0.0, 1e6)}, budget=3.0)
    result = await arun(e)
    assert result.samples[0].ok and server.count() == 3
    assert e.budget is not None and e.budget.spent == pytest.approx(3.0)


async def test_a_batch_stops_sending_at_the_cap(server: LoopbackServer) -> None:
    server.set_default("a", Reply(text=REPLY))
    e = ens(server, repeats=2, max_tokens=3, prices={"a": (0.0, 1e6)}, budget=12.0)
    async with e:
        results = await e.amap([f"q{i}" for i in range(6)], max_prompts=1)
    assert server.count() == 4
    assert [isinstance(r, Consensus) for r in results] == [True, True] + [False] * 4
    assert all(isinstance(r, errors.QuorumError) for r in results[2:])


# --- a share whose past spend is unknown: Budget.spend_rest ---------------------------------


async def test_spend_rest_counts_the_rest_of_the_cap_as_spent_and_refuses_the_next_call(
    server: LoopbackServer,
) -> None:
    server.set_default("a", Reply(text=REPLY))
    e = ens(server, repeats=1, max_tokens=3, prices={"a": (0.0, 1e6)}, budget=100.0)
    assert e.budget is not None
    e.budget.spend_rest()
    assert e.budget.spent == 100.0 and e.budget.closed
    with pytest.raises(errors.QuorumError, match="BudgetExceededError"):
        await arun(e)
    assert server.count() == 0 and e.budget.refused == 1 and e.budget.spent == 100.0


async def test_spend_rest_keeps_the_cap_with_reservations_in_flight() -> None:
    budget = Budget(1.0)
    first = await budget.reserve(0.3, model_name="m")
    budget.settle(first, 0.1)
    settled = await budget.reserve(0.4, model_name="m")
    refunded = await budget.reserve(0.2, model_name="m")
    budget.spend_rest()
    # What is reserved stays reserved; the unreserved rest is spent.
    assert budget.spent == pytest.approx(0.4) and budget.reserved == pytest.approx(0.6)
    budget.settle(settled, 0.05)  # cheaper than its worst case: the difference is spent too
    assert budget.spent == pytest.approx(0.8) and budget.reserved == pytest.approx(0.2)
    budget.refund(refunded)  # room freed by a refund is not lent to anyone either
    assert budget.spent == pytest.approx(1.0) and budget.reserved == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(errors.BudgetExceededError, match="budget of \\$1"):
        await budget.reserve(0.01, model_name="m")


async def test_spend_rest_wakes_a_waiting_call_to_fail_at_once() -> None:
    budget = Budget(1.0)
    held = await budget.reserve(0.8, model_name="m")
    waiting = asyncio.ensure_future(budget.reserve(0.5, model_name="m"))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # it would fit once the 0.8 in flight comes back cheaper
    budget.spend_rest()
    with pytest.raises(errors.BudgetExceededError):
        await asyncio.wait_for(waiting, 1.0)
    assert not held.settled and budget.refused == 1
