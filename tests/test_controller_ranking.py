"""The controller's word-overlap ranking: ties keep the order the user gave the cards.

Ties went to the card name before, so a request that shares no word with any description (a
general-knowledge question) put ``calculator`` first: the first card the planning prompt
showed, the first alternative of the schema and the fallback plan's first model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ensemble import _plan
from ensemble.catalog import Catalog, ModelCard
from ensemble.controller import Controller
from ensemble.models.function import FunctionModel
from ensemble.models.scripted import ScriptedModel

ANSWER = "Canberra is the capital of Australia."
#: Shares no content word with any description below.
UNRELATED = "What is the capital of Australia?"


def card(name: str, description: str, family: str | None = None) -> ModelCard:
    return ModelCard(
        FunctionModel(lambda _p: ANSWER, name=name), description, family=family or name
    )


def given() -> list[ModelCard]:
    """In the order a user would list them: general models first, specialists after, and not
    in name order."""
    return [
        card("zephyr-general", "A general chat model that answers everyday questions."),
        card("mistral-general", "Another general chat model, from a different vendor."),
        card("calculator", "Exact arithmetic: adds, multiplies and divides numbers."),
        card("translator", "Translates French sentences into English."),
    ]


def test_ties_keep_the_order_of_the_cards_not_the_alphabet() -> None:
    cards = given()
    ranked = _plan.rank_cards(UNRELATED, cards)
    assert {score for _, score in ranked} == {0.0}  # every card ties
    assert [c.name for c, _ in ranked] == [c.name for c in cards]
    backwards = cards[::-1]
    assert [c.name for c, _ in _plan.rank_cards(UNRELATED, backwards)] == [
        c.name for c in backwards
    ]


def test_a_better_score_still_ranks_first_and_ties_behind_it_keep_their_order() -> None:
    cards = given()
    ranked = [c.name for c, _ in _plan.rank_cards("Translate this French sentence", cards)]
    assert ranked == ["translator", "zephyr-general", "mistral-general", "calculator"]
    twins = [
        card("b-twin", "Translates French sentences into English."),
        card("a-twin", "Translates French sentences into English."),
        card("other", "Exact arithmetic."),
    ]
    ranked = [c.name for c, _ in _plan.rank_cards("translate French", twins)]
    assert ranked == ["b-twin", "a-twin", "other"]


def test_the_catalog_gives_its_cards_in_the_order_given() -> None:
    cards = given()
    catalog = Catalog(cards)
    assert [c.name for c in catalog.as_given()] == [c.name for c in cards]
    assert [c.name for c in catalog] == sorted(c.name for c in cards)  # iteration: name order
    late = card("aardvark", "Added last.")
    catalog.add(late)
    assert catalog.as_given()[-1].name == "aardvark"
    replacement = card("calculator", "A better calculator.")
    catalog.add(replacement, replace=True)  # a replaced card keeps its place
    assert [c.name for c in catalog.as_given()].index("calculator") == 2
    assert catalog["calculator"].description == "A better calculator."
    merged = catalog.merged([card("mistral-general", "Replaced."), card("new", "New.")])
    assert [c.name for c in merged.as_given()] == [
        "zephyr-general",
        "mistral-general",
        "calculator",
        "translator",
        "aardvark",
        "new",
    ]


def test_a_catalog_file_keeps_the_file_order(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps(
            {
                "model": [
                    {"model": "local", "description": "General local model.", "family": "a"},
                    {"model": "fn:zz", "description": "Exact arithmetic.", "family": "b"},
                    {"model": "fn:aa", "description": "Translates French.", "family": "c"},
                ]
            }
        )
    )
    catalog = Catalog.from_file(path)
    assert [c.name for c in catalog.as_given()] == ["local", "fn:zz", "fn:aa"]
    plan = _plan.fallback_plan(UNRELATED, catalog=catalog, risk="low", reason="r", raw=None)
    assert plan.ranking == ("local", "fn:zz", "fn:aa")


def test_the_fallback_plan_and_the_planning_prompt_follow_the_given_order() -> None:
    cards = given()
    planner = ScriptedModel("not a plan", ANSWER, name="planner")
    ctl = Controller(catalog=Catalog(cards), planner=planner, similarity="words")
    result = ctl.run(UNRELATED, risk="low")
    assert result.plan.source == "fallback"
    names = tuple(c.name for c in cards)
    assert result.plan.ranking == names
    lim = _plan.RISK_LIMITS["low"]
    chosen = [m.name for m in result.plan.tasks[0].models]
    assert chosen == list(names[: lim.fallback_models])
    assert "calculator" not in chosen
    # The planner was shown the cards in that order, and the schema's first alternative is
    # the first card.
    request = planner.requests[0]
    shown = re.findall(r'kind="card" name="([^"]+)"', request.chat()[0][-1].content)
    assert tuple(shown) == names
    assert request.response_format is not None
    defs = request.response_format["json_schema"]["schema"]["$defs"]
    first = defs["models"]["anyOf"][0]["prefixItems"][0]["$ref"].rsplit("/", 1)[-1]
    assert defs[first]["properties"]["name"]["const"] == "zephyr-general"
