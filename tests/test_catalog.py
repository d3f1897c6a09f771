"""Model cards and catalogs: building, files (TOML, JSON), errors, entry points, selection,
and their use in family weighting, the uniformity alarm, the breakdown and escalation."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import ensemble
from ensemble import catalog as catalog_mod
from ensemble.adaptive import Tier
from ensemble.catalog import Catalog, CatalogError, ModelCard, default_catalog, register_card
from ensemble.diagnostics import family_key, family_mean_agreement, independence_weights
from ensemble.errors import ConfigurationError, InvalidInputError, UnknownNameError
from ensemble.types import Sample

GOOD_TOML = """\
# two OpenAI models are one family; the local one is free
[[model]]
model = "openai:gpt-4o-mini"
description = "Small, cheap OpenAI chat model."
family = "gpt-4o"
released = 2024-07-18
price_in = 0.15
price_out = 0.6
tags = ["cheap", "chat"]

[[model]]
model = "openai:gpt-4o"
description = "OpenAI's flagship of 2024."
family = "gpt-4o"
released = "2024-05-13"
price_in = 2.5
price_out = 10

[[model]]
model = "anthropic:claude-3-haiku"
description = "An older Anthropic model, kept for high-risk calls."
released = 2024-03-07
price_in = 0.25
price_out = 1.25
tags = ["cheap"]
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_model_card_fields_and_validation() -> None:
    model = ensemble.ScriptedModel(["x"], name="scripted-a")
    card = ModelCard(model, "A test double.", family="doubles", released="2025-01-02",
                     price_in=1, price_out=2.5, tags=["test"])  # fmt: skip
    assert card.name == model.name == "scripted-a" and card.model is model
    assert card.released == dt.date(2025, 1, 2) and card.price_in == 1.0
    assert card.tags == ("test",) and card.family == "doubles"
    assert card.cost(1_000_000, 2_000_000) == pytest.approx(6.0)
    assert card.resolve() is model
    spec = ModelCard("openai:gpt-4o-mini", "A spec, resolved only when asked.")
    assert spec.name == "openai:gpt-4o-mini" and spec.family == spec.name  # a family of one
    assert spec.cost(10, 0) is None  # unknown price
    for kwargs, match in [
        ({"price_in": -1}, "price_in must be a number >= 0"),
        ({"price_out": "cheap"}, "price_out must be a number"),
        ({"released": "last year"}, "released must be a date"),
        ({"tags": "a"}, "tags must be a list"),
        ({"mode": "edit"}, "mode must be"),
        ({"family": ""}, "family must be"),
    ]:
        with pytest.raises(ConfigurationError, match=match):
            ModelCard("m", "d", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="description"):
        ModelCard("m", "  ")
    with pytest.raises(ConfigurationError, match="Model or a model spec"):
        ModelCard(42, "d")  # type: ignore[arg-type]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TOML needs tomllib or tomli")
def test_good_toml_file_loads_and_selects(tmp_path: Path) -> None:
    cat = Catalog.from_file(_write(tmp_path, "models.toml", GOOD_TOML))
    assert len(cat) == 3 and "openai:gpt-4o" in cat
    assert cat["openai:gpt-4o-mini"].released == dt.date(2024, 7, 18)
    assert cat.family("openai:gpt-4o") == cat.family("openai:gpt-4o-mini") == "gpt-4o"
    assert cat.family("unknown:model") == "unknown:model"
    assert cat.families()["gpt-4o"] == ("openai:gpt-4o", "openai:gpt-4o-mini")
    names = lambda cards: [c.name for c in cards]  # noqa: E731
    assert names(cat.select()) == [
        "anthropic:claude-3-haiku", "openai:gpt-4o", "openai:gpt-4o-mini"
    ]  # oldest first  # fmt: skip
    assert names(cat.select(released_before="2024-05-01")) == ["anthropic:claude-3-haiku"]
    assert names(cat.select(max_price=2.0, sort="price")) == [
        "openai:gpt-4o-mini", "anthropic:claude-3-haiku"
    ]  # fmt: skip
    assert names(cat.select(tags=["cheap", "chat"])) == ["openai:gpt-4o-mini"]
    assert names(cat.select(exclude_family="gpt-4o")) == ["anthropic:claude-3-haiku"]
    assert names(cat.select(one_per_family=True, sort="price")) == [
        "openai:gpt-4o-mini", "anthropic:claude-3-haiku"
    ]  # fmt: skip
    with pytest.raises(UnknownNameError):
        cat["nope"]
    # JSON round trip of the same catalog.
    again = Catalog.from_file(_write(tmp_path, "models.json", json.dumps(cat.to_dict())))
    assert [c.to_dict() for c in again] == [c.to_dict() for c in cat]


@pytest.mark.parametrize(
    ("name", "text", "needles"),
    [
        (
            "bad.toml",
            GOOD_TOML.replace("price_out = 10", 'price_out = "ten"'),
            ["line 17", "card 2", "field 'price_out'", "price_out must be a number"],
        ),
        (
            "bad.toml",
            GOOD_TOML.replace('tags = ["cheap"]\n', 'colour = "red"\n'),
            ["line 25", "card 3", "field 'colour'", "unknown field"],
        ),
        (
            "bad.toml",
            GOOD_TOML.replace('description = "OpenAI\'s flagship of 2024."\n', ""),
            ["card 2", "'description' is missing"],
        ),
        ("bad.toml", "[[model]]\nmodel = 'x'\ndescription = \n", ["line 3", "not valid TOML"]),
        (
            "bad.json",
            '{"model": [\n  {"model": "a", "description": "d"},\n'
            '  {"model": "b",\n   "description": "d",\n   "released": "yesterday"}\n]}\n',
            ["line 5", "card 2", "field 'released'", "released must be a date"],
        ),
        ("bad.json", '{"model": [\n  {"model": "a",, }\n]}', ["line 2", "not valid JSON"]),
        (
            "bad.json",
            '[{"model": "a", "description": "d"}, {"model": "a", "description": "e"}]',
            ["card 2", "field 'model'", "a second card for 'a'"],
        ),
        ("bad.yaml", "model: []", ["ends in .toml or .json"]),
    ],
)
def test_bad_files_name_the_line_and_field(
    tmp_path: Path, name: str, text: str, needles: list[str]
) -> None:
    if name.endswith(".toml") and sys.version_info < (3, 11):
        pytest.skip("TOML needs tomllib")
    path = _write(tmp_path, name, text)
    with pytest.raises(CatalogError) as info:
        Catalog.from_file(path)
    assert isinstance(info.value, InvalidInputError)  # from the library's own tree
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message, message


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.from_file(tmp_path / "none.json")


def test_the_smollm2_cards_are_the_ones_written_out_in_full() -> None:
    # The built-in cards as they were spelled out before they shared a helper.
    local = ModelCard(
        "local",
        "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), Q4_1 GGUF, on llama.cpp on this "
        "machine: tiny, fast, often wrong on facts; the default local model.",
        family="smollm2-135m",
        released="2024-11-01",
        price_in=0.0,
        price_out=0.0,
        tags=("local", "instruct", "small"),
    )
    named = ModelCard(
        "local:smollm2-135m",
        "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), Q4_1 GGUF, on llama.cpp on this "
        "machine (the same weights as 'local').",
        family="smollm2-135m",
        released="2024-11-01",
        price_in=0.0,
        price_out=0.0,
        tags=("local", "instruct", "small"),
    )
    assert catalog_mod.BUILTIN_CARDS[:2] == (local, named)
    assert [c.name for c in catalog_mod.BUILTIN_CARDS] == [
        "local",
        "local:smollm2-135m",
        "local:gemma3-270m",
    ]


def test_builtin_cards_and_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    default = default_catalog()
    assert default["local"].family == default["local:smollm2-135m"].family == "smollm2-135m"
    gemma = default["local:gemma3-270m"]
    assert gemma.family == "gemma3-270m" and gemma.mode == "completion" and gemma.stop == ("\n",)
    assert "Gemma terms of use" in gemma.description
    # A package extends the catalog through the entry-point group "ensemble.catalog".
    monkeypatch.setattr(catalog_mod, "_default", None)
    monkeypatch.setattr(
        catalog_mod,
        "entry_point_targets",
        lambda group: {"acme": "tests_catalog_plugin:cards"} if group == "ensemble.catalog" else {},
    )
    plugin = type(sys)("tests_catalog_plugin")
    plugin.cards = lambda: [ModelCard("acme:big", "Acme's model.", family="acme")]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_catalog_plugin", plugin)
    fresh = default_catalog()
    assert fresh["acme:big"].family == "acme" and "local" in fresh
    plugin.cards = lambda: ["not a card"]  # type: ignore[attr-defined]
    monkeypatch.setattr(catalog_mod, "_default", None)
    with pytest.raises(CatalogError, match="not a ModelCard"):
        default_catalog()
    monkeypatch.setattr(catalog_mod, "_default", None)  # rebuilt without the plugin afterwards


def test_register_card_adds_to_the_default_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_mod, "_default", None)
    register_card(ModelCard("openai:gpt-a", "A", family="gpt"))
    register_card(ModelCard("openai:gpt-b", "B", family="gpt"))
    with pytest.raises(ConfigurationError, match="already has a card"):
        register_card(ModelCard("openai:gpt-a", "again"))
    assert family_key(Sample(text="x", model="openai:gpt-b")) == "gpt"
    monkeypatch.setattr(catalog_mod, "_default", None)


# --- family weighting ----------------------------------------------------------------------


def S(text: str, model: str, family: str | None = None) -> Sample:
    return Sample(text=text, model=model, family=family)


def test_two_names_of_the_same_weights_are_one_vote() -> None:
    # "local" and "local:smollm2-135m" are the same weights (built-in cards): one family.
    samples = [S("Paris", "local"), S("Paris", "local:smollm2-135m"), S("Lyon", "other")]
    w = independence_weights(samples)
    assert w is not None and list(w) == [0.5, 0.5, 1.0]
    # Without cards they would be three models with a vote each (equal weights: None).
    assert independence_weights([S("a", "m1"), S("b", "m2"), S("c", "m3")]) is None
    # The family on the sample (set by the runner) wins over the name.
    assert family_key(S("x", "renamed", family="smollm2-135m")) == "smollm2-135m"
    r = ensemble.consensus(
        [S("Lyon", "local"), S("Lyon", "local:smollm2-135m"), S("Paris", "a"), S("Paris", "b")],
        metric="vote",
    )
    # Paris: two independent families; Lyon: one family under two names.
    assert r.text == "Paris"
    # Evidence for "Paris" (from a): family b says yes, family smollm2 (two names) says no.
    assert r.spans[0].confidence == pytest.approx(1 / 2)
    assert r.breakdown is not None
    assert [f.family for f in r.breakdown.families] == ["a", "b", "smollm2-135m"]
    smol = r.breakdown.families[2]
    assert smol.models == ("local", "local:smollm2-135m") and smol.intra == 1.0
    assert smol.inter == 0.0


def test_family_mean_agreement_gives_each_family_one_vote() -> None:
    sym = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
    fams = ["a", "a", "a", "b"]
    # Sample 0: own family (2 others, mean 1) and family b (mean 0): (1 + 0) / 2.
    out = family_mean_agreement(sym, fams, 1.0)
    assert list(out) == [0.5, 0.5, 0.5, 0.0]
    # Own family discounted to 0: only other families count.
    assert list(family_mean_agreement(sym, fams, 0.0)) == [0.0, 0.0, 0.0, 0.0]


def test_alarm_compares_families_not_names() -> None:
    replies = ["It is Paris, of course.", "Paris is the capital.", "The answer: Paris!"]
    same_family = [S(t, "local") for t in replies] + [S(t, "local:smollm2-135m") for t in replies]
    r = ensemble.consensus(same_family, metric="vote")
    assert not [a for a in r.alerts if a.kind == "uniformity"]  # one family: expected
    two_families = [S(t, "local") for t in replies] + [S(t, "local:gemma3-270m") for t in replies]
    r = ensemble.consensus(two_families, metric="vote")
    (alert,) = [a for a in r.alerts if a.kind == "uniformity"]
    assert alert.models == ("local", "local:gemma3-270m")
    assert "identical replies" in alert.message and "families" in alert.message


def test_tier_from_catalog_draws_models_by_age_family_and_price(tmp_path: Path) -> None:
    cat = Catalog(
        [
            ModelCard(
                "local", "SmolLM2", family="smollm2", released="2024-11-01", price_in=0, price_out=0
            ),
            ModelCard(
                "local:gemma3-270m",
                "Gemma",
                family="gemma3",
                released="2025-08-14",
                price_in=0,
                price_out=0,
            ),
            ModelCard(
                "openai:gpt-4o",
                "GPT-4o",
                family="gpt-4o",
                released="2024-05-13",
                price_in=2.5,
                price_out=10,
            ),
        ]
    )
    assert Tier.from_catalog(cat, 5, family="smollm2") == Tier(5, ["local"])
    assert tuple(Tier.from_catalog(cat, 3, max_price=0).models) == ("local", "local:gemma3-270m")
    old = Tier.from_catalog(cat, 2, released_before="2024-12-01", sort="released")
    assert tuple(old.models) == ("openai:gpt-4o", "local")
    with pytest.raises(ConfigurationError, match="no model matching"):
        Tier.from_catalog(cat, 2, family="llama")
    assert tuple(Tier.from_catalog(None, 4, family="gemma3-270m").models) == ("local:gemma3-270m",)


@pytest.mark.parametrize("bad", ["\ud800.json", "cards\x00.json", "   "])
def test_a_catalog_path_no_file_can_have_is_a_catalog_error(bad: str) -> None:
    # A lone surrogate cannot be encoded for the OS (pathlib raised UnicodeEncodeError), a
    # NUL byte ends a C string (ValueError): both are bad input, in the library's own tree.
    with pytest.raises(CatalogError, match="catalog file must be a file path"):
        Catalog.from_file(bad)
