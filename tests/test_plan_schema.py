"""The plan's JSON schema admits only valid plans (so a grammar-constrained planner cannot write
an invalid one), admits every valid plan written in its canonical form, and falls back to the
plain enum schema for a catalog with too many allowed model sets."""

from __future__ import annotations

import functools
import itertools
import json
import re
from typing import Any

import jsonschema  # the dev extra installs it
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensemble import _plan
from ensemble.catalog import Catalog, ModelCard
from ensemble.controller import HIGH_RISK_TAG
from ensemble.models.function import FunctionModel


def card(name: str, family: str, *tags: str) -> ModelCard:
    model = FunctionModel(lambda _p: "x", name=name)
    return ModelCard(model, f"{name} model", family=family, tags=tags)


CATALOG = Catalog(
    [
        card("geo", "geo-fam"),
        card("geo2", "geo-fam"),
        card("trans", "trans-fam"),
        card("old", "old-fam", HIGH_RISK_TAG),
        card("calc", "calc-fam"),
    ]
)
NAMES = [c.name for c in CATALOG]
IDS = ["t1", "t2", "t3", "t4", "t5"]


@functools.cache
def validator(risk: _plan.Risk) -> Any:
    schema = _plan.plan_schema(CATALOG, risk=risk)["json_schema"]["schema"]
    return jsonschema.Draft202012Validator(schema)


def is_valid(data: Any, risk: _plan.Risk) -> bool:
    try:
        _plan.validate_plan(
            data, catalog=CATALOG, risk=risk, limits=_plan.RISK_LIMITS[risk], raw=None
        )
    except _plan.PlanInvalid:
        return False
    return True


model_entry = st.fixed_dictionaries(
    {
        "name": st.sampled_from([*NAMES, "nobody"]),
        "repeats": st.integers(0, 9),
        "reason": st.sampled_from(["", "fits"]),
    }
)
task_entry = st.fixed_dictionaries(
    {
        "id": st.sampled_from(IDS),
        "request": st.sampled_from(["q", " ", "", "what is 2+2?"]),
        "depends_on": st.lists(st.sampled_from(IDS), max_size=3),
        "models": st.lists(model_entry, min_size=0, max_size=4),
    }
)
random_plans = st.fixed_dictionaries({"tasks": st.lists(task_entry, min_size=0, max_size=5)})


@st.composite
def near_plans(draw: st.DrawFn) -> dict[str, Any]:
    """Plans close to the schema's canonical form, so that many are admitted or valid and the
    rest differ in one or two ways (a name twice, a late dependency, repeats out of range)."""
    tasks = []
    for k in range(draw(st.sampled_from([1, 1, 2, 3, 5]))):
        names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2))
        if draw(st.booleans()):
            names.append("old")  # the card high risk requires
        if draw(st.integers(0, 3)):
            names = sorted(dict.fromkeys(names), key=NAMES.index)
        tasks.append(
            {
                "id": IDS[k] if draw(st.integers(0, 9)) else draw(st.sampled_from(IDS)),
                "request": draw(st.sampled_from(["q", "q", "what is 2+2?", " "])),
                "depends_on": draw(
                    st.lists(
                        st.sampled_from(IDS[: k + (1 if draw(st.integers(0, 3)) else 2)]),
                        max_size=2,
                    )
                ),
                "models": [
                    {"name": n, "repeats": draw(st.sampled_from([1, 2, 3, 9])), "reason": "fits"}
                    for n in names
                ],
            }
        )
    return {"tasks": tasks}


plans = st.one_of(random_plans, near_plans(), near_plans(), near_plans())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans, risk=st.sampled_from(["low", "normal", "high"]))
def test_every_plan_the_schema_admits_is_valid(plan: dict[str, Any], risk: _plan.Risk) -> None:
    if validator(risk).is_valid(plan):
        assert is_valid(plan, risk), plan


def canonical(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan as the schema writes it: tasks renumbered t1, t2, ... in dependency order,
    each task's models in catalog order."""
    tasks = list(plan["tasks"])
    order = [t.id for t in _plan._topological([_plan.PlanTask.model_validate(t) for t in tasks])]
    new_id = {old: f"t{k + 1}" for k, old in enumerate(order)}
    by_id = {t["id"]: t for t in tasks}
    return {
        "tasks": [
            {
                "id": new_id[old],
                "request": by_id[old]["request"],
                "depends_on": [new_id[d] for d in dict.fromkeys(by_id[old]["depends_on"])],
                "models": sorted(by_id[old]["models"], key=lambda m: NAMES.index(m["name"])),
            }
            for old in order
        ]
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans, risk=st.sampled_from(["low", "normal", "high"]))
def test_every_valid_plan_in_canonical_form_is_admitted(
    plan: dict[str, Any], risk: _plan.Risk
) -> None:
    if not is_valid(plan, risk):
        return
    assert validator(risk).is_valid(canonical(plan)), plan


def test_the_invalid_plans_a_small_planner_wrote_are_outside_the_schema() -> None:
    twice = {"name": "geo", "repeats": 2, "reason": "r"}
    same_model_twice = {
        "tasks": [{"id": "t1", "request": "q", "depends_on": [], "models": [twice, twice]}]
    }
    assert not is_valid(same_model_twice, "normal")
    assert not validator("normal").is_valid(same_model_twice)
    one = [{"name": "geo", "repeats": 2, "reason": "r"}]
    cycle = {
        "tasks": [
            {"id": "t1", "request": "q", "depends_on": ["t2"], "models": one},
            {"id": "t2", "request": "q", "depends_on": ["t1"], "models": one},
        ]
    }
    assert not validator("normal").is_valid(cycle)
    blank = {"tasks": [{"id": "t1", "request": "  ", "depends_on": [], "models": one}]}
    assert not validator("normal").is_valid(blank)


def test_high_risk_sets_hold_the_kept_card_and_two_families() -> None:
    sets = _plan.model_sets(CATALOG, _plan.RISK_LIMITS["high"])
    assert sets is not None and sets
    for names in sets:
        assert "old" in names
        assert len({CATALOG.family(n) for n in names}) >= 2
        assert list(names) == sorted(names, key=NAMES.index)  # catalog order, no repeat
    # Every subset of 1..6 of the 5 cards that holds "old" and two families: all but {"old"}.
    assert len(sets) == 2**4 - 1


def test_a_catalog_with_too_many_model_sets_gets_the_enum_schema() -> None:
    big = Catalog([card(f"m{k:02d}", f"fam{k}") for k in range(12)])
    # 12 + 66 + 220 sets of 1 to 3 cards at normal risk: more than the schema lists.
    assert _plan.model_sets(big, _plan.RISK_LIMITS["normal"]) is None
    schema = _plan.plan_schema(big, risk="normal")["json_schema"]["schema"]
    models = schema["properties"]["tasks"]["items"]["properties"]["models"]
    assert models["items"]["properties"]["name"]["enum"] == [c.name for c in big]
    # Low risk (1 or 2 cards: 12 + 66 = 78 sets) still lists them.
    low = _plan.model_sets(big, _plan.RISK_LIMITS["low"])
    assert low is not None and len(low) == 78


def test_the_request_pattern_keeps_the_json_string_well_formed() -> None:
    pattern = re.compile(_plan._REQUEST_PATTERN)
    assert pattern.match("Convert 5 miles to km")
    assert pattern.match("x" * 160) and not pattern.match("x" * 161)
    for bad in ["", " q", "\tq", 'say "hi"', "a\\b", "line\nbreak"]:
        assert not pattern.match(bad), bad


def test_the_planning_token_bound_covers_the_longest_admitted_plan() -> None:
    lim = _plan.RISK_LIMITS["normal"]
    bound = _plan.plan_token_bound(CATALOG, risk="normal")
    sets = _plan.model_sets(CATALOG, lim)
    assert sets is not None
    longest = max(sets, key=lambda s: sum(len(n) for n in s))
    ids = [f"t{k + 1}" for k in range(lim.max_tasks)]
    plan = {
        "tasks": [
            {
                "id": tid,
                "request": "x" * 160,
                "depends_on": ids[:k],
                "models": [
                    {"name": n, "repeats": lim.max_repeats, "reason": "x" * 80} for n in longest
                ],
            }
            for k, tid in enumerate(ids)
        ]
    }
    assert validator("normal").is_valid(plan)
    # One token per character of the longest plan written compactly, and one more at least
    # for each white-space gap (after each of its JSON lexemes), still fit.
    compact = json.dumps(plan, separators=(",", ":"))
    lexemes = re.findall(r'"[^"]*"|\d+|[{}\[\],:]', compact)
    assert len(compact) + len(lexemes) <= bound
    # A longer string in the plan would not be admitted (the bound is of the schema's maximum).
    plan["tasks"][0]["models"][0]["reason"] = "x" * 81
    assert not validator("normal").is_valid(plan)


@pytest.mark.parametrize("risk", ["low", "normal", "high"])
def test_one_task_plans_the_schema_admits_are_exactly_the_valid_ones(risk: _plan.Risk) -> None:
    # Every list of up to three names (repeats allowed, any order) as a one-task plan: admitted
    # only when valid, and admitted whenever valid and written in catalog order.
    lim = _plan.RISK_LIMITS[risk]
    check = validator(risk)
    admitted = 0
    for size in range(1, 4):
        for names in itertools.product(NAMES, repeat=size):
            models = [{"name": n, "repeats": lim.min_repeats, "reason": ""} for n in names]
            plan = {"tasks": [{"id": "t1", "request": "q", "depends_on": [], "models": models}]}
            valid, ok = is_valid(plan, risk), check.is_valid(plan)
            assert not ok or valid, names
            if valid and list(names) == sorted(names, key=NAMES.index):
                assert ok, names
            admitted += ok
    assert admitted == len([s for s in _plan.model_sets(CATALOG, lim) or [] if len(s) <= 3])


@pytest.mark.local
def test_llama_cpp_accepts_the_schema_and_the_local_planner_plans_validly() -> None:
    # The real llama.cpp server compiles the schema into its grammar (anyOf, const,
    # prefixItems, the request pattern) and the 135M planner's plan is then valid, at the risk
    # with the most model sets. One task per plan, as docs/controller.md advises for a small
    # local planner: allowed four, it fills every task's request up to the schema's 160
    # characters ("17 * 23 * 2 * 2 * ...") until LocalModel's 2048-token context is full, and
    # the cut-off plan does not parse (the fallback runs, visibly).
    import ensemble

    catalog = Catalog(
        [
            card("calculator", "calc-fam"),
            card("translator", "trans-fam"),
            card("geo", "geo-fam"),
            card("old", "old-fam", HIGH_RISK_TAG),
        ]
    )
    ctl = ensemble.Controller(
        catalog=catalog,
        planner=ensemble.LocalModel(),
        similarity="words",
        timeout=120.0,
        limits={"high": _plan.RISK_LIMITS["high"].model_copy(update={"max_tasks": 1})},
    )
    try:
        plan = ctl.plan("What is 17 times 23?", risk="high")
    finally:
        ctl.close()
    assert plan.source == "planner", plan.reason
    assert all("old" in [m.name for m in t.models] for t in plan.tasks)
    assert [t.request for t in plan.tasks] == ["What is 17 times 23?"]  # one task: the request


@pytest.mark.parametrize("risk", ["low", "normal", "high"])
def test_a_ranking_orders_the_alternatives_and_changes_no_validity(risk: _plan.Risk) -> None:
    # The controller lists the cards best match first; the schema's alternatives follow that
    # order (the first is the best card alone, when the risk allows one model) and admit the
    # same sets of models, written in that order.
    lim = _plan.RISK_LIMITS[risk]
    order = ["calc", "trans", "old", "geo2", "geo"]
    by_catalog = _plan.model_sets(CATALOG, lim)
    ranked = _plan.model_sets(CATALOG, lim, order=order)
    assert by_catalog is not None and ranked is not None
    assert {frozenset(s) for s in ranked} == {frozenset(s) for s in by_catalog}
    assert len(ranked) == len(by_catalog)
    assert all(list(s) == sorted(s, key=order.index) for s in ranked)
    if lim.min_families == 1 and not lim.require_tag:
        assert ranked[0] == ("calc",)
    schema = _plan.plan_schema(CATALOG, risk=risk, order=order)["json_schema"]["schema"]
    check = jsonschema.Draft202012Validator(schema)
    for names in ranked:
        models = [{"name": n, "repeats": lim.min_repeats, "reason": ""} for n in names]
        plan = {"tasks": [{"id": "t1", "request": "q", "depends_on": [], "models": models}]}
        assert check.is_valid(plan) and is_valid(plan, risk)


def test_cards_the_order_leaves_out_keep_the_order_the_catalog_was_given() -> None:
    # CATALOG was given geo, geo2, trans, old, calc; it iterates in name order.
    assert [c.name for c in CATALOG.as_given()] == ["geo", "geo2", "trans", "old", "calc"]
    assert NAMES == ["calc", "geo", "geo2", "old", "trans"]

    def ordered(order: list[str]) -> list[str]:
        return [c.name for c in _plan._ordered(CATALOG, order)]

    assert ordered(["trans"]) == ["trans", "geo", "geo2", "old", "calc"]
    assert ordered(["old", "nobody", "geo2", "old"]) == ["old", "geo2", "geo", "trans", "calc"]
    assert ordered([]) == ["geo", "geo2", "trans", "old", "calc"]
    # The planner's prompt and the schema's alternatives show them in that order.
    _system, user = _plan.plan_prompt("q", CATALOG, risk="low", tag="T", order=["trans"])
    shown = sorted(NAMES, key=lambda n: user.index(f'name="{n}"'))
    assert shown == ["trans", "geo", "geo2", "old", "calc"]
    sets = _plan.model_sets(CATALOG, _plan.RISK_LIMITS["low"], order=["trans"])
    assert sets is not None
    assert [s for s in sets if len(s) == 1] == [
        ("trans",),
        ("geo",),
        ("geo2",),
        ("old",),
        ("calc",),
    ]
