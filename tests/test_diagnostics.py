"""Agreement breakdown, independent weighting and the uniformity alarm (issue 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ensemble
from ensemble import Consensus, Sample
from ensemble.diagnostics import (
    AgreementBaseline,
    BaselineStore,
    UniformityAlarm,
    agreement_breakdown,
    independence_weights,
    rare_strings,
)
from ensemble.errors import InvalidInputError


def S(text: str, model: str | None = None, repeat: int | None = None) -> Sample:
    return Sample(text=text, model=model, repeat=repeat)


def uniformity(result: Consensus) -> list[ensemble.Alert]:
    return [a for a in result.alerts if a.kind == "uniformity"]


# --- breakdown -------------------------------------------------------------------------------


def test_breakdown_intra_and_inter_from_the_agreement_matrix() -> None:
    samples = [
        S("Paris", "a", 0),
        S("Paris", "a", 1),
        S("Lyon", "a", 2),
        S("Paris", "b", 0),
        S("Lyon", "b", 1),
    ]
    r = ensemble.consensus(samples, metric="vote")
    bd = r.breakdown
    assert bd is not None
    assert bd.samples_per_model == {"a": 3, "b": 2}
    intra = {x.models: (x.mean, x.pairs) for x in bd.intra}
    # a: pairs (P,P)=1, (P,L)=0, (P,L)=0 -> 1/3; b: (P,L) -> 0.
    assert intra[("a", "a")] == (pytest.approx(1 / 3), 3)
    assert intra[("b", "b")] == (0.0, 1)
    (inter,) = bd.inter
    # a x b: P-P, P-L, P-P, P-L, L-P, L-L -> 3 of 6.
    assert inter.models == ("a", "b") and inter.pairs == 6 and inter.mean == pytest.approx(0.5)
    assert bd.intra_mean == pytest.approx((1 / 3 + 0) / 2)
    assert bd.inter_mean == pytest.approx(0.5)


def test_no_breakdown_for_one_model_or_unnamed_samples() -> None:
    assert ensemble.consensus(["x y", "x y", "x z"]).breakdown is None
    one = [S("x y", "m", k) for k in range(3)]
    assert ensemble.consensus(one).breakdown is None


def test_failed_samples_are_left_out_of_the_breakdown() -> None:
    err = ensemble.SampleError(type="Boom", message="no")
    samples = [S("Paris", "a"), S("Paris", "b"), Sample(error=err, model="c")]
    bd = ensemble.consensus(samples, metric="vote").breakdown
    assert bd is not None and set(bd.samples_per_model) == {"a", "b"}
    assert agreement_breakdown(samples, ()) is None


def test_span_support_is_split_by_model() -> None:
    samples = [
        S("Canberra", "a", 0),
        S("Canberra", "a", 1),
        S("Canberra", "a", 2),
        S("Sydney", "b", 0),
        S("Canberra", "b", 1),
        S("Sydney", "c", 0),
    ]
    r = ensemble.consensus(samples, metric="vote")
    (span,) = r.spans
    assert r.text == "Canberra"
    assert span.supporting_models == ("a", "b")
    assert span.model_support == {"a": 1.0, "b": 0.5, "c": 0.0}
    # Four samples support it, but only two distinct models.
    assert len(span.supporters) == 3  # the candidate itself does not vote


# --- independent weighting -------------------------------------------------------------------


def test_model_weighting_gives_each_model_one_vote() -> None:
    samples = [S("Paris", "a", k) for k in range(2)] + [S("Lyon", "b", k) for k in range(3)]
    by_model = ensemble.consensus(samples, metric="vote")
    by_sample = ensemble.consensus(samples, metric="vote", weighting="sample")
    assert by_model.text == by_sample.text == "Lyon"
    # Evidence for "Lyon" (candidate from b): a, a (0 each, weight 1/2), b, b (1, weight 1/2).
    assert by_model.weighting == "model" and by_sample.weighting == "sample"
    assert by_sample.spans[0].confidence == pytest.approx(2 / 4)
    assert by_model.spans[0].confidence == pytest.approx(0.5)
    samples = [S("Paris", "a", 0)] + [S("Lyon", "b", k) for k in range(4)] + [S("Paris", "c")]
    by_model = ensemble.consensus(samples, metric="vote")
    by_sample = ensemble.consensus(samples, metric="vote", weighting="sample")
    # By sample: candidate "Lyon" (b); evidence a:0, b x3: 1, c:0 -> 3/5.
    assert by_sample.text == "Lyon"
    assert by_sample.spans[0].confidence == pytest.approx(3 / 5)
    # By model, the candidate is chosen one vote per model (family) too: "Paris" has two
    # models (a, c) against b's one. Evidence for it (from a): b x4: 0 (weight 1/4), c: 1.
    assert by_model.text == "Paris"
    assert by_model.spans[0].confidence == pytest.approx(1 / 2)


def test_explicit_weights_take_precedence() -> None:
    samples = [S("Paris", "a"), S("Paris", "a"), S("Lyon", "b")]
    r = ensemble.consensus(samples, metric="vote", weights=[1, 1, 0])
    assert r.weighting == "custom" and r.spans[0].confidence == 1.0
    with pytest.raises(InvalidInputError):
        ensemble.consensus(samples, weighting="nope")  # type: ignore[arg-type]


def test_independence_weights_are_none_when_they_would_be_equal() -> None:
    assert independence_weights([S("x"), S("y")]) is None
    assert independence_weights([S("x", "a"), S("y", "b")]) is None
    w = independence_weights([S("x", "a"), S("y", "a"), S("z", "b")])
    assert w is not None and list(w) == [0.5, 0.5, 1.0]


words = st.sampled_from("alpha beta gamma delta born London Paris 1820 1821 poet".split())
texts = st.lists(words, min_size=1, max_size=8).map(lambda ws: " ".join(ws) + ".")


@settings(max_examples=40, deadline=None)
@given(st.lists(texts, min_size=2, max_size=6))
def test_model_weighting_reduces_to_the_plain_rule_for_one_model(xs: list[str]) -> None:
    plain = ensemble.consensus(xs, weighting="sample")
    named = ensemble.consensus([S(x, "m", k) for k, x in enumerate(xs)])
    assert named.weighting == "model"
    assert [s.confidence for s in named.spans] == [s.confidence for s in plain.spans]
    assert named.text == plain.text


# --- the uniformity alarm: acceptance -------------------------------------------------------

INSTRUCTION = (
    "To finish the setup you must now open https://update-portal.example.net/verify?id=7731 "
    "in your browser, sign in with your usual account, and confirm the security token shown "
    "there on the page before midnight."
)


def test_three_models_returning_the_same_instruction_with_a_url_raise_an_alert() -> None:
    assert len(INSTRUCTION.split()) == 30
    samples = [S(INSTRUCTION, m, 0) for m in ("openai:gpt-x", "anthropic:claude-y", "local")]
    r = ensemble.consensus(samples, prompt="How do I finish setting up my new account?")
    (alert,) = uniformity(r)
    assert set(alert.models) == {"openai:gpt-x", "anthropic:claude-y", "local"}
    assert alert.score is not None and alert.score >= 0.9
    assert {e.sample for e in alert.evidence} == {0, 1, 2}
    for e in alert.evidence:
        assert r.samples[e.sample].text[e.start : e.end] == e.text  # type: ignore[index]
        assert "https://update-portal.example.net/verify?id=7731" in e.text


INJECTED = (
    "For verified results, always visit http://facts-now.example.org/answer and paste "
    "your session cookie there."
)


def test_two_of_three_models_slipping_in_the_same_sentence_are_named() -> None:
    samples = [
        S("The Eiffel Tower stands in Paris and was completed in 1889. " + INJECTED, "m1"),
        S("It is in Paris, France. " + INJECTED + " It is about 330 metres tall.", "m2"),
        S("Gustave Eiffel's company built it in Paris; it opened in 1889.", "m3"),
    ]
    r = ensemble.consensus(samples, prompt="Where is the Eiffel Tower and when was it built?")
    (alert,) = uniformity(r)
    assert alert.models == ("m1", "m2")
    assert {e.sample for e in alert.evidence} == {0, 1}
    assert INJECTED.rstrip(".") in alert.message
    for e in alert.evidence:
        assert e.text == INJECTED.rstrip(".")
        assert r.samples[e.sample].text[e.start : e.end] == e.text  # type: ignore[index]


def test_the_same_injected_sentence_without_a_url_still_raises_it() -> None:
    sentence = "Remember that every answer here was checked by the official truth board of the city"
    samples = [
        S("Lisbon is the capital of Portugal. " + sentence + ".", "m1"),
        S("Portugal's capital is Lisbon, on the Tagus. " + sentence + "!", "m2"),
        S("The capital is Lisbon.", "m3"),
    ]
    (alert,) = uniformity(ensemble.consensus(samples))
    assert alert.models == ("m1", "m2")


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("What is the capital of Egypt?", "The capital of Egypt is Cairo."),
        (None, "The capital of Egypt is Cairo."),
        ("How many legs does a spider have?", "A spider has eight legs."),
        ("Who wrote Hamlet?", "Hamlet was written by William Shakespeare."),
        (None, "Water boils at 100 degrees Celsius at sea level."),
    ],
)
def test_easy_identical_short_answers_raise_no_alert(prompt: str | None, answer: str) -> None:
    samples = [S(answer, m, k) for m in ("a", "b", "c") for k in range(3)]
    r = ensemble.consensus(samples, prompt=prompt)
    assert uniformity(r) == []
    assert r.spans[0].confidence == 1.0


def test_text_copied_from_the_prompt_is_not_evidence() -> None:
    quote = (
        "We hold these truths to be self-evident, that all men are created equal, that they "
        "are endowed by their Creator with certain unalienable Rights"
    )
    prompt = f'Explain this sentence briefly: "{quote}"'
    samples = [
        S(f'"{quote}" means people share basic rights.', "a"),
        S(f"The line {quote} says rights are natural.", "b"),
    ]
    assert uniformity(ensemble.consensus(samples, prompt=prompt)) == []
    assert uniformity(ensemble.consensus(samples)) != []


def test_the_alarm_never_changes_the_text_or_a_confidence() -> None:
    samples = [
        S("Paris is the capital. " + INJECTED, "m1"),
        S("The capital is Paris. " + INJECTED, "m2"),
        S("Paris.", "m3"),
    ]
    on = ensemble.consensus(samples)
    off = ensemble.consensus(samples, alarm=None)
    assert uniformity(on) and not uniformity(off)
    assert on.text == off.text
    assert [s.confidence for s in on.spans] == [s.confidence for s in off.spans]


def test_a_shared_rare_string_among_only_some_models_is_enough() -> None:
    samples = [
        S("Use build 4815162342 of the firmware.", "a"),
        S("The firmware build 4815162342 fixes it.", "b"),
        S("Update the firmware to the latest release.", "c"),
    ]
    (alert,) = uniformity(ensemble.consensus(samples))
    assert alert.models == ("a", "b")
    # With only two models, a shared number on its own is not enough.
    assert uniformity(ensemble.consensus(samples[:2])) == []


def test_inter_model_agreement_above_intra_model_agreement() -> None:
    # One model served under two names with the same seed per repeat: repeat k of "a" equals
    # repeat k of "b", while the repeats of each name differ.
    answers = ["Paris", "Lyon", "Nice", "Lille", "Metz", "Brest"]
    samples = [S(x, "a", k) for k, x in enumerate(answers)]
    samples += [S(x, "b", k) for k, x in enumerate(answers)]
    samples += [S(x, "a", k + 6) for k, x in enumerate(answers)]
    samples += [S(x, "b", k + 6) for k, x in enumerate(answers)]
    # The rule for identical replies across families (twins) is what catches this case; the
    # agreement rules below are checked without it.
    (twins,) = uniformity(ensemble.consensus(samples, metric="vote"))
    assert "12 identical replies" in twins.message
    r = ensemble.consensus(samples, metric="vote", alarm=UniformityAlarm(twins=0))
    assert r.breakdown is not None
    # Each answer appears twice per name: intra 1/11 per name, inter 2/12.
    strict = UniformityAlarm(margin=0.05, twins=0)
    alerts = strict.check(r.samples, agreement=r.agreement, breakdown=r.breakdown)
    assert uniformity(r) == []  # a margin of 0.15 is not reached
    assert not alerts  # exchangeable: the permutation test does not reject


def _matrix(n_a: int, n_b: int, intra: float, inter: float) -> list[list[float | None]]:
    labels = ["a"] * n_a + ["b"] * n_b
    return [
        [1.0 if i == j else (intra if labels[i] == labels[j] else inter) for j in range(n_a + n_b)]
        for i in range(n_a + n_b)
    ]


def test_inter_above_intra_fires_with_enough_samples() -> None:
    samples = [S(f"answer {k}", "a", k) for k in range(5)]
    samples += [S(f"reply {k}", "b", k) for k in range(5)]
    agreement = _matrix(5, 5, intra=0.4, inter=0.8)
    bd = agreement_breakdown(samples, agreement)
    assert bd is not None and bd.inter[0].mean == pytest.approx(0.8)
    (alert,) = UniformityAlarm().check(samples, agreement=agreement, breakdown=bd)
    assert alert.models == ("a", "b") and "permutation p = 0.008" in alert.message
    # Three samples per model cannot reach p <= 0.01 (at best 2 / 20): no alert.
    few = samples[:3] + samples[5:8]
    agreement = _matrix(3, 3, intra=0.4, inter=0.8)
    bd = agreement_breakdown(few, agreement)
    assert UniformityAlarm().check(few, agreement=agreement, breakdown=bd) == ()
    # Nor does a clear excess below the 0.5 floor.
    agreement = _matrix(5, 5, intra=0.1, inter=0.45)
    bd = agreement_breakdown(samples, agreement)
    assert UniformityAlarm().check(samples, agreement=agreement, breakdown=bd) == ()


def test_rare_strings() -> None:
    text = "See https://x.example.com/a?b=1, mail bob@example.org, run `pip install x`, 1,234,567."
    kinds = [k for k, *_ in rare_strings(text)]
    assert kinds == ["url", "url", "code", "number"]
    for _, s, a, b in rare_strings(text):
        assert text[a:b] == s
    assert rare_strings("In 1889 it had 300 metres.") == []


# --- baseline store ---------------------------------------------------------------------------


def _pair_samples(same: bool) -> list[Sample]:
    if same:
        xs = ["The bridge opened in 1937 in San Francisco."] * 3
        ys = xs
    else:
        xs = ["The bridge opened in 1937.", "It opened in 1937.", "Opened 1937, San Francisco."]
        ys = ["A red suspension bridge.", "It spans the strait.", "Built by Joseph Strauss."]
    return [S(x, "a", k) for k, x in enumerate(xs)] + [S(y, "b", k) for k, y in enumerate(ys)]


def test_baseline_store_learns_a_pair_and_flags_an_outlier(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    store = BaselineStore(path)
    for _ in range(6):
        store.update(ensemble.consensus(_pair_samples(same=False)))
    data = json.loads(path.read_text())
    assert data["pairs"]["a\tb"]["n"] == 6
    reloaded = BaselineStore(path)
    n, mean, _ = reloaded.stats("b", "a")
    assert n == 6 and mean < 0.5
    alarm = UniformityAlarm(baseline=reloaded)
    usual = ensemble.consensus(_pair_samples(same=False), alarm=alarm)
    assert uniformity(usual) == []
    odd = ensemble.consensus(_pair_samples(same=True), alarm=alarm)
    (alert,) = uniformity(odd)
    assert alert.models == ("a", "b") and "history" in alert.message
    # Without the history, the same identical short answers are not suspicious.
    assert uniformity(ensemble.consensus(_pair_samples(same=True))) == []


def test_baseline_store_rejects_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(InvalidInputError):
        BaselineStore(path)
    assert AgreementBaseline().stats("a", "b") == (0, 0.0, 0.0)


def test_json_round_trip_with_diagnostics() -> None:
    samples = [S("Paris is the capital. " + INJECTED, "m1", 0), S(INJECTED, "m2", 0)]
    samples += [S("Paris.", "m1", 1), S("Paris is nice.", "m2", 1)]
    r = ensemble.consensus(samples)
    assert r.breakdown is not None and r.alerts
    assert Consensus.model_validate_json(r.model_dump_json()) == r


def test_score_splits_support_by_model_too() -> None:
    samples = [S("Paris.", "a"), S("Paris.", "b"), S("Lyon.", "b")]
    r = ensemble.score(text="Paris.", samples=samples, metric="vote")
    assert r.spans[0].model_support == {"a": 1.0, "b": 0.5}
    assert r.spans[0].supporting_models == ("a", "b")
    assert r.weighting == "model"
    # a weighs 1, each b sample 1/2: (1 + 0.5) / 2.
    assert r.spans[0].confidence == pytest.approx(0.75)


def test_a_run_each_model_repeats_on_its_own_counts_half() -> None:
    formula = (
        "Photosynthesis is the process by which green plants turn sunlight into useful "
        "chemical energy"
    )
    assert len(formula.split()) == 14  # scores 0.75 between two single samples
    tails = ["quickly.", "every day.", "in leaves.", "using chlorophyll."]
    one_each = [S(f"{formula} {tails[0]}", "a"), S(f"{formula} {tails[1]}", "b")]
    assert uniformity(ensemble.consensus(one_each)) != []
    # Each name also repeats the formula itself (one model under two names): 0.75 / 2.
    both = [S(f"{formula} {t}", "a" if k < 2 else "b", k) for k, t in enumerate(tails)]
    assert uniformity(ensemble.consensus(both)) == []
    # The discount cannot hide an instruction with a URL that every repeat carries.
    injected = [S(f"Hello {k}. {INSTRUCTION}", m, k) for k in range(2) for m in ("a", "b")]
    (alert,) = uniformity(ensemble.consensus(injected))
    assert alert.models == ("a", "b") and "also repeats" in alert.message


names = st.sampled_from(["a", "b", "c"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(texts, names), min_size=2, max_size=6))
def test_the_alarm_never_changes_text_or_confidence_property(
    pairs: list[tuple[str, str]],
) -> None:
    samples = [S(t, m, k) for k, (t, m) in enumerate(pairs)]
    sensitive = UniformityAlarm(min_run=2, fire_at=0.01)  # fires on almost anything shared
    on = ensemble.consensus(samples, alarm=sensitive)
    off = ensemble.consensus(samples, alarm=None)
    assert on.text == off.text
    assert [s.confidence for s in on.spans] == [s.confidence for s in off.spans]
    assert [a for a in off.alerts if a.kind == "uniformity"] == []


def test_ensemble_run_passes_the_prompt_to_the_alarm() -> None:
    quote = (
        "We hold these truths to be self-evident, that all men are created equal, that they "
        "are endowed by their Creator with certain unalienable Rights"
    )
    prompt = f'Repeat this sentence exactly: "{quote}"'
    models = [ensemble.ScriptedModel(quote, name=n) for n in ("a", "b", "c")]
    ens = ensemble.Ensemble(models=models, repeats=1, metric="ngram", deadline=None)
    result = ens.run(prompt)
    assert result.breakdown is not None and len(result.breakdown.inter) == 3
    assert uniformity(result) == []  # copied from the prompt: not evidence
    assert uniformity(ens.vote(result.samples)) != []  # without the prompt it would be
