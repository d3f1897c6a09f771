"""Empty or white-space-only answers abstain: they are kept, reported, and never vote."""

from __future__ import annotations

import pytest

import ensemble
from ensemble.types import Sample, SampleError

SAMPLES = ["", "  \n ", "Paris is the capital.", "Paris is the capital of France."]


@pytest.mark.parametrize("metric", ["ngram", "vote", "prefix"])
def test_empty_answers_are_not_the_consensus(metric: str) -> None:
    result = ensemble.consensus(SAMPLES, metric=metric)
    assert result.text.strip()
    assert result.candidate in (2, 3)
    assert len(result.samples) == 4  # kept
    alert = next(a for a in result.alerts if a.kind == "empty_samples")
    assert "[0, 1]" in alert.message
    for span in result.spans:  # the empty samples are no evidence either
        assert span.support[0] is None and span.support[1] is None
        assert 0 not in span.supporters and 1 not in span.supporters


def test_two_empty_answers_do_not_outvote_one_real_one() -> None:
    result = ensemble.consensus(["", "", "Paris is the capital."])
    assert result.text == "Paris is the capital."
    assert [a.kind for a in result.alerts][:2] == ["empty_samples", "no_evidence"]


def test_score_leaves_empty_samples_out_of_the_evidence() -> None:
    text = "Paris is the capital."
    with_empty = ensemble.score(text=text, samples=["", text, " "])
    without = ensemble.score(text=text, samples=[text])
    assert with_empty.spans[0].confidence == pytest.approx(without.spans[0].confidence)
    assert with_empty.spans[0].support == (None, 1.0, None)
    assert any(a.kind == "empty_samples" for a in with_empty.alerts)


@pytest.mark.parametrize("samples", [["", " "], ["\n\t", Sample(text="")]])
def test_all_empty_run_says_so(samples: list[str | Sample]) -> None:
    result = ensemble.consensus(samples)
    assert result.text == ""
    assert result.spans == ()
    assert result.candidate is None
    kinds = [a.kind for a in result.alerts]
    assert kinds[0] == "all_empty"
    assert result.alerts[0].severity == "critical"
    scored = ensemble.score(text="Paris is the capital.", samples=samples)
    assert scored.spans[0].confidence == 0.0
    assert scored.alerts[0].kind == "all_empty"


def test_failures_plus_empty_answers_are_all_empty_not_an_error() -> None:
    failed = Sample(error=SampleError(type="ProviderError", message="boom"))
    result = ensemble.consensus([failed, Sample(text="")])
    assert result.alerts[0].kind == "all_empty"
    assert result.samples[0].error is not None


async def test_the_async_path_leaves_empty_answers_out_alike() -> None:
    sync = ensemble.consensus(SAMPLES)
    result = await ensemble.aconsensus(SAMPLES)
    assert result == sync
    assert result.candidate in (2, 3)
    assert result.alerts[0].kind == "empty_samples"
    text = "Paris is the capital."
    scored = await ensemble.ascore(text=text, samples=["", text, " "])
    assert scored == ensemble.score(text=text, samples=["", text, " "])
    assert scored.spans[0].support == (None, 1.0, None)
    every = await ensemble.aconsensus(["", " "])
    assert every.text == "" and every.alerts[0].kind == "all_empty"


PARIS = "The capital of France is Paris."
EURO = "The currency of France is the euro."


@pytest.mark.parametrize("method", ["select", "fuse"])
def test_empty_answers_are_no_evidence_in_a_fused_consensus_either(method: str) -> None:
    answers = [f"{PARIS} {EURO}", f"{PARIS} {EURO}", f"{PARIS} {EURO}"]
    with_empty = ensemble.consensus([*answers, "", "  "], method=method)  # type: ignore[arg-type]
    without = ensemble.consensus(answers, method=method)  # type: ignore[arg-type]
    assert with_empty.text == without.text
    assert [s.confidence for s in with_empty.spans] == [s.confidence for s in without.spans]
    for span in with_empty.spans:
        assert span.support[3:] == (None, None)  # neither voter nor evidence
        assert 3 not in span.supporters and 4 not in span.supporters
    assert with_empty.alerts[0].kind == "empty_samples"


async def test_a_fused_consensus_of_empty_answers_says_so_on_both_paths() -> None:
    sync = ensemble.consensus(["", " \n"], method="fuse")
    result = await ensemble.aconsensus(["", " \n"], method="fuse")
    assert result == sync
    assert result.text == "" and result.method == "fuse"
    assert result.alerts[0].kind == "all_empty"
