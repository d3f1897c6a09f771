"""Fused consensus (``method="fuse"``): the rules of ``ensemble/fuse.py``, case by case and as
Hypothesis properties."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ensemble
from ensemble.errors import InvalidInputError
from ensemble.fuse import contradicts, fuse
from ensemble.metrics.base import Metric
from ensemble.types import Consensus, Sample, SampleError

PARIS = "The capital of France is Paris."
LYON = "The capital of France is Lyon."
EURO = "The currency of France is the euro."
FRANC = "The currency of France is the dollar."  # ("franc" and "France" share a stem)
FRENCH = "The main language of France is French."


def _s(text: str, model: str | None = None) -> Sample:
    return Sample(text=text, model=model)


def _failed(model: str | None = None) -> Sample:
    return Sample(error=SampleError(type="RateLimitError", message="slow down"), model=model)


# --- the contradiction rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (PARIS, LYON, True),  # a name swapped
        (EURO, FRANC, True),  # a value swapped
        ("He was born in 1950 in London.", "He was born in 1952 in London.", True),
        ("He won the prize.", "He never won the prize.", True),  # one negated
        (PARIS, "Paris is the capital of France.", False),  # the same words
        (PARIS, "The capital of France is Paris, on the Seine.", False),  # elaboration
        (PARIS, EURO, False),  # two different points
        (EURO, FRENCH, False),
    ],
)
def test_contradiction_rule(a: str, b: str, expected: bool) -> None:
    assert contradicts(a, b) is expected
    assert contradicts(b, a) is expected


# --- hand-made cases of each rule ----------------------------------------------------------


def test_majority_kept_minority_and_conflict_dropped() -> None:
    samples = [
        f"{PARIS} {EURO} {FRENCH}",
        f"{PARIS} {EURO} {FRENCH}",
        f"{LYON} {EURO} {FRENCH}",
        f"{PARIS} {FRANC} {FRENCH}",
        f"{PARIS} {EURO} It rains a lot in Brittany.",
    ]
    r = ensemble.consensus(samples, method="fuse")
    assert r.method == "fuse"
    assert r.candidate is None
    assert r.text == f"{PARIS} {EURO} {FRENCH}"
    assert [c.text for c in r.claims] == [PARIS, EURO, FRENCH]
    assert r.claims[0].sources == (0, 1, 3, 4)
    assert r.claims[0].support == pytest.approx(0.8)
    dropped = {d.text: d for d in r.dropped}
    assert dropped[LYON].reason == "minority"
    assert dropped[LYON].conflicts_with == r.claims[0].cluster
    assert dropped[LYON].sources == (2,)
    assert dropped[FRANC].conflicts_with == r.claims[1].cluster
    assert dropped["It rains a lot in Brittany."].reason == "minority"
    assert dropped["It rains a lot in Brittany."].conflicts_with is None
    for span, claim in zip(r.spans, r.claims, strict=True):
        assert span.cluster == claim.cluster
        assert span.sources == claim.sources
        assert r.text[span.start : span.end] == span.text == claim.text


def test_conflict_of_two_majorities_keeps_the_better_supported() -> None:
    # Two samples state both values; each value alone has a majority of the vote.
    samples = [PARIS, PARIS, PARIS, LYON, LYON, f"{PARIS} {LYON}", f"{LYON} {PARIS}"]
    r = ensemble.consensus(samples, method="fuse")
    assert r.text == PARIS
    (lyon,) = [d for d in r.dropped if d.text == LYON]
    assert lyon.reason == "conflict"
    assert lyon.support == pytest.approx(4 / 7)
    assert lyon.conflicts_with == r.claims[0].cluster


def test_one_models_repeats_cannot_outvote_the_others() -> None:
    # Five repeats of model a say Lyon; one sample each of b and c say Paris.
    samples = [_s(LYON, "a") for _ in range(5)] + [_s(PARIS, "b"), _s(PARIS, "c")]
    r = ensemble.consensus(samples, method="fuse")
    assert r.text == PARIS
    assert r.claims[0].support == pytest.approx(2 / 3)
    assert r.claims[0].models == ("b", "c")
    assert r.spans[0].source_models == ("b", "c")
    (lyon,) = r.dropped
    assert (lyon.reason, lyon.support, lyon.models) == ("minority", pytest.approx(1 / 3), ("a",))
    # Without model names every sample votes alike, and the repeats win.
    plain = ensemble.consensus([s.text or "" for s in samples], method="fuse")
    assert plain.text == LYON


def test_families_share_one_vote() -> None:
    samples = [_s(LYON, "a-small"), _s(LYON, "a-large"), _s(PARIS, "b")]
    # As three models, Lyon has two of three votes.
    assert ensemble.consensus(samples, method="fuse").text == LYON
    # As two families (a and b) the vote is tied at one half each: the conflict goes to
    # the claim with more member sentences, then to the text.
    fam = {"a-small": "a", "a-large": "a", "b": "b"}
    r = ensemble.consensus(samples, method="fuse", families=fam)
    assert {c.support for c in r.claims} | {d.support for d in r.dropped} == {0.5}
    assert r.text == LYON
    assert r.dropped[0].reason == "conflict"


def test_order_follows_where_the_samples_put_the_claims() -> None:
    samples = [f"{FRENCH} {PARIS}", f"{FRENCH} {PARIS}", f"{PARIS} {FRENCH}"]
    assert ensemble.consensus(samples, method="fuse").text == f"{FRENCH} {PARIS}"


def test_best_supported_member_states_the_claim() -> None:
    long = "The capital of France is Paris, a city on the Seine."
    river = "The capital of France is Paris, a city on the Seine river."
    samples = [long, long, long, river]
    r = fuse(samples)
    assert len(r.claims) == 1
    assert r.claims[0].members == 4
    assert r.text == long  # supported fully by every other sample; `river` is not


def test_score_agrees_with_the_fused_confidences() -> None:
    samples = [
        _s(f"{PARIS} {EURO} {FRENCH}", "a"),
        _s(f"{PARIS} {FRANC}\n{FRENCH}", "a"),
        _s(f"{FRENCH} {PARIS} {EURO}", "b"),
        _s(f"{LYON} {EURO}", "c"),
        _failed("c"),
    ]
    r = ensemble.consensus(samples, method="fuse")
    s = ensemble.score(text=r.text, samples=samples)
    assert [(x.start, x.end) for x in s.spans] == [(x.start, x.end) for x in r.spans]
    np.testing.assert_allclose(
        [x.confidence for x in r.spans], [x.confidence for x in s.spans], atol=1e-12
    )
    assert [x.supporters for x in r.spans] == [x.supporters for x in s.spans]


def test_line_breaks_join_sentences_a_space_would_merge() -> None:
    a, b = "Paris is the capital", "The euro is the currency"
    r = ensemble.consensus([f"{a}\n{b}"] * 3, method="fuse")
    assert r.text == f"{a}\n{b}"
    assert [x.text for x in r.spans] == [a, b]


def test_single_sample_is_that_sample() -> None:
    r = ensemble.consensus([f"{PARIS} {EURO}"], method="fuse")
    assert r.method == "fuse"
    assert r.text == f"{PARIS} {EURO}"
    assert r.candidate == 0
    assert [a.kind for a in r.alerts] == ["no_evidence"]
    # One voter among failures and empty answers: the same.
    r = ensemble.consensus([_failed(), "", PARIS, "  "], method="fuse")
    assert (r.text, r.candidate) == (PARIS, 2)


def test_all_failed_or_empty_behaves_as_select() -> None:
    with pytest.raises(InvalidInputError, match="every sample failed"):
        ensemble.consensus([_failed(), _failed()], method="fuse")
    select = ensemble.consensus(["", " "], method="select")
    fused = ensemble.consensus(["", " "], method="fuse")
    assert (fused.text, fused.spans) == (select.text, select.spans)


def test_no_majority_gives_an_empty_text_and_an_alert() -> None:
    r = ensemble.consensus([PARIS, EURO, FRENCH], method="fuse")
    assert r.text == ""
    assert r.spans == ()
    assert len(r.dropped) == 3
    assert "no_majority" in [a.kind for a in r.alerts]


def test_several_languages() -> None:
    en = f"{PARIS} {EURO}"
    fr = "La capitale de la France est Paris. La monnaie de la France est l'euro."
    de = "Die Hauptstadt von Frankreich ist Paris. Die Währung ist der Euro."
    r = ensemble.consensus([en, en, en, fr, de], method="fuse")
    assert r.text == en
    assert {d.reason for d in r.dropped} == {"minority"}
    r = ensemble.consensus([fr, fr, de], method="fuse")
    assert r.text == fr
    assert [c.sources for c in r.claims] == [(0, 1), (0, 1)]


def test_a_users_metric() -> None:
    class Words(Metric):
        """Share of a span's words of four letters or more found in the sample."""

        name = "words"

        def support(self, text, spans, samples):  # type: ignore[no-untyped-def]
            out = np.zeros((len(spans), len(samples)))
            for k, (a, b) in enumerate(spans):
                words = set(re.findall(r"\w{4,}", text[a:b].lower()))
                for j, s in enumerate(samples):
                    have = set(re.findall(r"\w{4,}", s.lower()))
                    out[k, j] = len(words & have) / max(len(words), 1)
            return out

    samples = [f"{PARIS} {EURO}", f"{PARIS} {EURO}", f"{LYON} {FRANC}"]
    r = ensemble.consensus(samples, method="fuse", metric=Words())
    assert r.text == f"{PARIS} {EURO}"
    assert r.metric.name == "words"


def test_a_token_metric_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="sentence-level"):
        ensemble.consensus([PARIS, PARIS], method="fuse", metric="prefix")


@pytest.mark.parametrize("option", ["join", "quorum", "overlap"])
def test_bad_thresholds(option: str) -> None:
    with pytest.raises(InvalidInputError, match=option):
        fuse([PARIS, PARIS], **{option: 1.5})  # type: ignore[arg-type]


def test_bad_method_and_families() -> None:
    with pytest.raises(InvalidInputError, match="method"):
        ensemble.consensus([PARIS], method="merge")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="families"):
        ensemble.consensus([_s(PARIS, "a"), _s(PARIS, "b")], method="fuse", families=["a"])  # type: ignore[arg-type]


def test_threshold_and_json_round_trip() -> None:
    samples = [f"{PARIS} {EURO}", f"{PARIS} {EURO}", f"{PARIS} {FRANC}"]
    r = ensemble.consensus(samples, method="fuse")
    assert Consensus.model_validate_json(r.model_dump_json()) == r
    paris, euro = r.spans
    assert euro.confidence < paris.confidence  # the contested claim is the less certain one
    # ngram v4: 0.95 (unanimous) and 0.84 (one sample says "dollar"); v3 gave 0.97 and 0.90.
    cut = ensemble.consensus(samples, method="fuse", threshold=0.9)
    assert [s.text for s in cut.spans] == [PARIS]
    assert cut.text == r.text


def test_old_json_still_validates() -> None:
    r = ensemble.consensus([PARIS, PARIS])
    data = r.model_dump()
    for key in ("method", "claims", "dropped"):
        del data[key]
    for span in data["spans"]:
        for key in ("cluster", "sources", "source_models"):
            del span[key]
    old = Consensus.model_validate(data)
    assert old.method == "select"
    assert old == r


def test_select_stays_the_default() -> None:
    r = ensemble.consensus([PARIS, PARIS, LYON])
    assert (r.method, r.claims, r.dropped, r.candidate) == ("select", (), (), 0)


def test_long_samples() -> None:
    facts = [f"Alpha{k} loves beta{k} and gamma{k}." for k in range(150)]
    samples = [" ".join(facts)] * 3 + [" ".join(facts[::-1])]
    r = ensemble.consensus(samples, method="fuse")
    assert len(r.claims) == 150
    assert r.text.startswith(facts[0])


# --- Hypothesis properties -----------------------------------------------------------------

ATTRS = ["capital", "currency", "anthem", "flower", "river", "mountain", "dish", "poet"]
PLACES = ["Aland", "Borduria", "Carpania", "Dalmora", "Elbonia", "Freedonia", "Genovia"]
VALUES = ["Ostrava", "zorbit", "Quillon", "Ruthenia", "Sylvan", "Tarkus", "Umbria", "Vexil"]


@st.composite
def _distinct_sentences(draw: st.DrawFn, max_size: int = 4) -> list[str]:
    """Sentences that share no content word, so none agrees with or contradicts another."""
    k = draw(st.integers(1, max_size))
    attrs = draw(st.permutations(ATTRS))[:k]
    places = draw(st.permutations(PLACES))[:k]
    values = draw(st.permutations(VALUES))[:k]
    return [f"The {a} of {p} is {v}." for a, p, v in zip(attrs, places, values, strict=True)]


POOL = [
    PARIS,
    LYON,
    EURO,
    FRANC,
    FRENCH,
    "The main language of France is Breton.",
    "France is in Europe.",
    "France is not in Europe.",
    "The capital of France is Paris, on the Seine.",
]

_samples = st.lists(st.lists(st.sampled_from(POOL), min_size=0, max_size=4), min_size=2, max_size=7)
_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(_distinct_sentences(), st.integers(2, 6))
def test_identical_samples_give_that_sample(sentences: list[str], n: int) -> None:
    text = " ".join(sentences)
    r = ensemble.consensus([text] * n, method="fuse")
    assert r.text == text
    assert r.dropped == ()
    assert all(c.support == pytest.approx(1.0) for c in r.claims)


@_settings
@given(_samples, st.randoms(use_true_random=False))
def test_sample_order_does_not_change_the_fused_text(samples: list[list[str]], rnd) -> None:  # type: ignore[no-untyped-def]
    texts = [" ".join(s) for s in samples]
    shuffled = texts[:]
    rnd.shuffle(shuffled)
    a = ensemble.consensus(texts, method="fuse")
    b = ensemble.consensus(shuffled, method="fuse")
    assert a.text == b.text
    assert [c.support for c in a.claims] == [c.support for c in b.claims]


@_settings
@given(_samples)
def test_span_offsets_reproduce_the_text(samples: list[list[str]]) -> None:
    r = ensemble.consensus([" ".join(s) for s in samples], method="fuse")
    for span in r.spans:
        assert r.text[span.start : span.end] == span.text
    if r.claims:
        assert r.text == " ".join(c.text for c in r.claims) or "\n" in r.text


@_settings
@given(_distinct_sentences(), st.integers(3, 8), st.integers(0, 7), st.booleans())
def test_a_claim_of_only_one_of_many_samples_is_never_kept(
    base: list[str], n: int, who: int, models: bool
) -> None:
    lone = "Zanzibar harbours seventeen purple lighthouses."
    texts = [" ".join(base)] * n
    texts[who % n] = f"{texts[who % n]} {lone}"
    samples = [_s(t, f"m{i}" if models else None) for i, t in enumerate(texts)]
    r = ensemble.consensus(samples, method="fuse")
    assert lone not in r.text
    assert any(d.text == lone and d.reason == "minority" for d in r.dropped)


@_settings
@given(_samples, st.lists(st.sampled_from(["a", "b", "c", None]), min_size=7, max_size=7))
def test_two_contradictory_claims_are_never_both_kept(
    samples: list[list[str]], models: list[str | None]
) -> None:
    r = ensemble.consensus(
        [_s(" ".join(s), m) for s, m in zip(samples, models, strict=False)], method="fuse"
    )
    kept = [c.text for c in r.claims]
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            assert not contradicts(a, b)


# --- wiring: Ensemble, Escalation, CLI -----------------------------------------------------


def _scripted(name: str, texts: list[str]) -> ensemble.ScriptedModel:
    return ensemble.ScriptedModel(*texts, name=name)


def _fusing_ensemble() -> ensemble.Ensemble:
    a = _scripted("a", [f"{PARIS} {EURO}", f"{LYON} {EURO}", f"{PARIS} {FRANC}"])
    b = _scripted("b", [f"{EURO} {PARIS}", f"{PARIS} {EURO}", f"{PARIS} {EURO}"])
    return ensemble.Ensemble(models=[a, b], repeats=3, method="fuse")


def test_ensemble_and_escalation_pass_method_through() -> None:
    r = _fusing_ensemble().run("Capital and currency of France?")
    assert r.method == "fuse"
    assert r.text == f"{PARIS} {EURO}"
    assert {d.text for d in r.dropped} == {LYON, FRANC}
    esc = ensemble.Escalation(_fusing_ensemble(), stopping=None)
    r = esc.run("Capital and currency of France?")
    assert (r.method, r.text) == ("fuse", f"{PARIS} {EURO}")
    a = _scripted("a", [PARIS])
    assert ensemble.Ensemble(models=[a], repeats=1).method == "select"
    with pytest.raises(ensemble.errors.ConfigurationError, match="method"):
        ensemble.Ensemble(models=[a], method="merge")  # type: ignore[arg-type]


def test_cli_method_option() -> None:
    from ensemble.cli import build_parser

    args = build_parser().parse_args(["ask", "--method", "fuse", "Hello?"])
    assert args.method == "fuse"
    assert build_parser().parse_args(["ask", "Hello?"]).method == "select"


def test_contain_lets_a_long_sentence_back_its_claims() -> None:
    long = "The capital of France is Paris, the currency is the euro and the language is French."
    short = f"{PARIS} {EURO} {FRENCH}"
    samples = [long, long, long, short, short]
    plain = fuse(samples, contain=None, floor=None)
    assert plain.text == long  # without contain, each short claim has 2 of 5 votes
    assert {d.reason for d in plain.dropped} == {"minority"}
    r = fuse(samples, contain=1.0, floor=None)
    # The long sentence holds every unit of the Paris and euro claims, not of "main language".
    assert r.text == f"{PARIS} {EURO}"
    assert [c.backers for c in r.claims] == [(0, 1, 2, 3, 4)] * 2
    assert [c.sources for c in r.claims] == [(3, 4)] * 2
    dropped = {d.text: d for d in r.dropped}
    assert dropped[long].reason == "redundant"
    assert dropped[long].conflicts_with in {c.cluster for c in r.claims}
    assert dropped[FRENCH].reason == "minority"
    # The lead rule (default floor) keeps the language too: two samples, no rival.
    assert fuse(samples).text == short


def test_contain_never_backs_a_contradiction() -> None:
    negated = "The capital of France is not Paris, whatever they say."
    r = fuse([PARIS, PARIS, negated, negated, negated], contain=1.0)
    assert r.claims[0].backers == (2, 3, 4)
    assert PARIS not in r.text


def test_unwrap_joins_wrapped_lines_only() -> None:
    from ensemble.fuse import unwrap

    assert unwrap("The main language of\nSweden is Swedish.") == (
        "The main language of Sweden is Swedish."
    )
    assert unwrap("It is big\nand old.") == "It is big and old."
    for kept in ("Capital: Paris\nCurrency: euro", "Done.\nNext.", "List:\n- a\n- b"):
        assert unwrap(kept) == kept
    wrapped = "The capital of Sweden is Stockholm. The main language of\nSweden is Swedish."
    r = ensemble.consensus([wrapped] * 3, method="fuse")
    assert r.text == unwrap(wrapped)


def test_lead_rule_keeps_the_leading_claim_of_a_point_others_leave_open() -> None:
    pound = "The currency of Egypt is the pound."
    dollar = "The currency of Egypt is the dollar."
    cairo = "The capital of Egypt is Cairo."
    samples = [f"{cairo} {pound}"] * 3 + [f"{cairo} {dollar}"] + [cairo] * 3
    assert fuse(samples, floor=None).text == cairo  # the pound has 3 of 7 votes
    r = fuse(samples)  # ... but leads the one rival that names a currency
    assert r.text == f"{cairo} {pound}"
    (d,) = r.dropped
    assert (d.text, d.reason) == (dollar, "minority")
    assert d.conflicts_with == next(c.cluster for c in r.claims if c.text == pound)
    # Two against two: neither leads.
    tied = [f"{cairo} {pound}"] * 2 + [f"{cairo} {dollar}"] * 2 + [cairo] * 3
    assert fuse(tied).text == cairo
    # A claim without rivals still needs two samples, and the floor.
    lone = [f"{cairo} {pound}"] + [cairo] * 6
    assert fuse(lone, floor=0.1).text == cairo
    two = [f"{cairo} {pound}"] * 2 + [cairo] * 8
    assert fuse(two, floor=0.3).text == cairo
    assert fuse(two, floor=0.2).text == f"{cairo} {pound}"


def test_lead_rule_never_keeps_a_bare_value() -> None:
    # "Lyon" shares no word with "Paris", so the contradiction rule cannot see that both
    # answer one point: a one-word sentence is kept by the quorum only.
    r = fuse(["Paris."] * 3 + ["Lyon."] * 2)
    assert r.text == "Paris."
    assert [(d.text, d.reason) for d in r.dropped] == [("Lyon.", "minority")]
    assert fuse(["Paris. Lyon."] * 2 + ["Paris."] * 3).text == "Paris."


def test_a_fragment_is_not_backed_by_containment() -> None:
    # A cut-off "The" (no content word) is contained in every sentence; were containment to
    # back it, it would be unanimous and make the real claims redundant.
    samples = [f"{PARIS} {EURO}"] * 4 + [f"{PARIS} {EURO} The"]
    r = fuse(samples)
    assert r.text == f"{PARIS} {EURO}"
    (d,) = r.dropped
    assert (d.text, d.reason, d.backers) == ("The", "minority", (4,))


def _of(model: str, texts: list[str]) -> list[Sample]:
    return [Sample(text=t, model=model) for t in texts]


def test_lead_rule_needs_two_families_and_prefers_the_claim_more_families_make() -> None:
    pound = "The currency of Egypt is the pound."
    dollar = "The currency of Egypt is the dollar."
    cairo = "The capital of Egypt is Cairo."
    # Family a repeats the pound (3 of its 5 samples: 0.3 of the vote); the dollar is named
    # once by each family (0.2 of the vote, but two families): the dollar leads.
    samples = _of("a", [f"{cairo} {pound}"] * 3 + [f"{cairo} {dollar}", cairo]) + _of(
        "b", [f"{cairo} {dollar}"] + [cairo] * 4
    )
    r = fuse(samples)
    assert r.text == f"{cairo} {dollar}"
    dropped = {d.text: d for d in r.dropped}
    assert dropped[pound].reason == "minority"
    assert dropped[pound].conflicts_with is not None
    # Without a rival, one family's repeats below the quorum are still not enough...
    alone = _of("a", [f"{cairo} {pound}"] * 4 + [cairo]) + _of("b", [cairo] * 5)
    assert fuse(alone).text == cairo
    # ... nor once the other family is silent on the point, while two families are.
    both = _of("a", [f"{cairo} {pound}"] * 2 + [cairo] * 3) + _of(
        "b", [f"{cairo} {pound}"] + [cairo] * 4
    )
    assert fuse(both).text == f"{cairo} {pound}"
    # With one family (here by the families mapping) the sources are the samples: four
    # uncontested samples carry the pound that one family's repeats could not above.
    assert fuse(alone, families={"a": "x", "b": "x"}).text == f"{cairo} {pound}"


EGYPT_POUND = "The currency of Egypt is the pound."
EGYPT_CAIRO = "The capital of Egypt is Cairo."
#: Five samples of one family that say different things, three of them the pound.
DIVERSE = [
    f"{EGYPT_CAIRO} {EGYPT_POUND} The Nile floods every summer.",
    f"Egypt has many pyramids near Giza. {EGYPT_POUND}",
    f"{EGYPT_POUND} Alexandria was founded by a Macedonian king.",
    "Tourists visit Luxor and Aswan in winter.",
    "Desert covers most of the land.",
]


def test_witness_rule_keeps_what_independent_samples_of_one_family_repeat() -> None:
    # Family b says nothing about the currency; three of family a's five samples name the
    # pound (0.3 of the vote, one family) and otherwise share little: about 2.3 witnesses.
    samples = _of("a", DIVERSE) + _of("b", [EGYPT_CAIRO] * 5)
    assert fuse(samples, witnesses=None).text == EGYPT_CAIRO
    r = fuse(samples)
    assert r.text == f"{EGYPT_CAIRO} {EGYPT_POUND}"
    pound = next(c for c in r.claims if c.text == EGYPT_POUND)
    assert pound.backers == (0, 1, 2)
    assert pound.support == pytest.approx(0.3)
    # A stricter rule asks for more witnesses than three such samples give.
    assert fuse(samples, witnesses=2.5).text == EGYPT_CAIRO


def test_witness_rule_counts_near_copies_as_one_witness() -> None:
    # The same three pound sentences, but family a's samples are copies of each other:
    # five copies are one witness, however often they repeat the claim.
    copies = [f"{EGYPT_CAIRO} {EGYPT_POUND}"] * 3 + [EGYPT_CAIRO] * 2
    samples = _of("a", copies) + _of("b", [EGYPT_CAIRO] * 5)
    assert fuse(samples).text == EGYPT_CAIRO


def test_witness_rule_never_keeps_a_contradicted_or_lone_claim() -> None:
    dollar = "The currency of Egypt is the dollar."
    # One sample of family b names a rival currency: the pound is no longer uncontested.
    samples = _of("a", DIVERSE) + _of("b", [f"{EGYPT_CAIRO} {dollar}"] + [EGYPT_CAIRO] * 4)
    r = fuse(samples)
    assert r.text == EGYPT_CAIRO
    reasons = {d.text: d.reason for d in r.dropped}
    assert reasons[EGYPT_POUND] == reasons[dollar] == "minority"
    # One sample is one witness: with a single pound sentence nothing changes, at any
    # setting the rule accepts.
    lone = _of("a", [DIVERSE[0], *DIVERSE[3:]]) + _of("b", [EGYPT_CAIRO] * 5)
    assert EGYPT_POUND not in fuse(lone, witnesses=1.000001, floor=0.0).text


async def test_witness_rule_on_the_async_path() -> None:
    from ensemble.fuse import afuse

    samples = _of("a", DIVERSE) + _of("b", [EGYPT_CAIRO] * 5)
    r = await afuse(samples)
    assert r == fuse(samples)
    assert r.text == f"{EGYPT_CAIRO} {EGYPT_POUND}"
    assert (await afuse(samples, witnesses=None)).text == EGYPT_CAIRO


@pytest.mark.parametrize("bad", [1, 0.5, 0, -2, True, float("inf"), "2"])
def test_witnesses_must_exceed_one(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="witnesses"):
        fuse([PARIS, PARIS], witnesses=bad)  # type: ignore[arg-type]


# --- one engine, two drivers: the async path and the vote settings ---------------------------

FACTS = [
    f"{PARIS} {EURO} {FRENCH}",
    f"{PARIS} {EURO}",
    f"{LYON} {EURO} {FRENCH}",
    f"{PARIS} {FRANC} {FRENCH}",
]


class _VerbatimJudge:
    """An async judge: a claim is supported when the evidence contains it word for word."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: str) -> str:
        import json

        self.calls += 1
        (evidence,) = re.findall(r'kind="evidence">\n(.*?)\n</data-', prompt, re.S)
        claims = re.findall(r'kind="claim" id="(c\d+)">\n(.*?)\n</data-', prompt, re.S)
        verdict = {cid: "supported" if text in evidence else "unsupported" for cid, text in claims}
        return json.dumps({"verdicts": verdict})


def _judge(judge: _VerbatimJudge) -> Metric:
    from ensemble.metrics.entailment import EntailmentMetric
    from ensemble.metrics.judge import JudgeBackend

    model = ensemble.FunctionModel(judge, name="judge")
    return EntailmentMetric(backend=JudgeBackend(model, retry=ensemble.RetryPolicy(max_attempts=1)))


async def test_aconsensus_and_afuse_fuse_as_the_sync_path_does() -> None:
    from ensemble.fuse import afuse

    sync = ensemble.consensus(FACTS, method="fuse")
    assert sync.text == f"{PARIS} {EURO} {FRENCH}"
    assert await ensemble.aconsensus(FACTS, method="fuse") == sync
    assert await afuse(FACTS) == sync == fuse(FACTS)
    assert await afuse(FACTS, contain=None) == fuse(FACTS, contain=None)
    vs = ensemble.VoteSettings(method="fuse")
    assert await ensemble.aconsensus(FACTS, settings=vs) == sync
    assert ensemble.consensus(FACTS, settings=vs.replace(method="select")).method == "select"


async def test_fusion_with_an_async_judge_on_the_callers_loop() -> None:
    judge = _VerbatimJudge()
    metric = _judge(judge)
    try:
        r = await ensemble.aconsensus(FACTS, metric=metric, method="fuse", alarm=None)
        again = await ensemble.ascore(text=r.text, samples=FACTS, metric=metric, alarm=None)
    finally:
        await metric.aclose()
    assert judge.calls > 0
    assert (r.method, r.metric.name, r.text) == ("fuse", "entailment", f"{PARIS} {EURO} {FRENCH}")
    assert {d.text for d in r.dropped} == {LYON, FRANC}
    assert [s.confidence for s in again.spans] == [s.confidence for s in r.spans]


def test_sync_fusion_with_an_async_judge_matches_the_async_one() -> None:
    import asyncio

    async def fused() -> Consensus:
        metric = _judge(_VerbatimJudge())
        try:
            return await ensemble.aconsensus(FACTS, metric=metric, method="fuse", alarm=None)
        finally:
            await metric.aclose()

    expected = asyncio.run(fused())
    assert ensemble.consensus(
        FACTS, metric=_judge(_VerbatimJudge()), method="fuse", alarm=None
    ) == (expected)


async def test_ensemble_arun_and_escalation_arun_fuse() -> None:
    ens = _fusing_ensemble()
    async with ens:
        r = await ens.arun("Capital and currency of France?")
    assert (r.method, r.text) == ("fuse", f"{PARIS} {EURO}")
    esc = ensemble.Escalation(_fusing_ensemble(), stopping=None)
    r = await esc.arun("Capital and currency of France?")
    assert (r.method, r.text) == ("fuse", f"{PARIS} {EURO}")


def test_method_is_a_vote_setting() -> None:
    a = _scripted("a", [PARIS])
    vs = ensemble.VoteSettings(method="fuse")
    ens = ensemble.Ensemble(models=[a], settings=vs)
    assert (ens.method, ens.settings.method) == ("fuse", "fuse")
    assert ensemble.Ensemble(models=[a], method="fuse").settings.method == "fuse"
    # method= left at its default defers to the settings; another value clashes with them.
    assert ensemble.Ensemble(models=[a], settings=vs, method="select").method == "fuse"
    with pytest.raises(ensemble.errors.ConfigurationError, match="method"):
        ensemble.Ensemble(models=[a], settings=ensemble.VoteSettings(), method="fuse")
    with pytest.raises(ensemble.errors.ConfigurationError, match="method"):
        ensemble.consensus([PARIS], settings=ensemble.VoteSettings(), method="fuse")
    with pytest.raises(ensemble.errors.ConfigurationError, match="method"):
        ensemble.VoteSettings(method="merge")  # type: ignore[arg-type]
