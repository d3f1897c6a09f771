"""Hand-made cases for the prefix and vote metrics."""

from __future__ import annotations

import itertools

import pytest

import ensemble
from ensemble.metrics.vote import normalize_answer


def test_prefix_counting_continuation() -> None:
    together = [", 26, 27, 28, 29, 30"] * 5
    scattered = [", 27, 30, 31", ", 25, 26", " and so on", ", 26, 28, 30, 32", ", 100"]
    result = ensemble.consensus(together + scattered, metric="prefix")
    assert result.text == ", 26, 27, 28, 29, 30"
    conf = [s.confidence for s in result.spans]
    assert [s.text for s in result.spans][:4] == [",", "26", ",", "27"]
    # never rises along the text
    assert all(a >= b for a, b in itertools.pairwise(conf))
    # 9 other samples: ", 26" is shared by 4 others + ", 26, 28..." and ", 25, 26" differs
    assert conf[0] == pytest.approx(8 / 9)  # all but " and so on" start with ","
    assert conf[1] == pytest.approx(5 / 9)  # "26": four identical others + ", 26, 28, ..."
    assert conf[3] == pytest.approx(4 / 9)  # "27": only the four identical others
    assert conf[-1] == pytest.approx(4 / 9)


def test_prefix_with_sentences_requires_the_whole_prefix() -> None:
    result = ensemble.score(
        sentences=["One two.", "Three four."],
        samples=["One two. Three four.", "One two. Three five.", "Zero."],
        metric="prefix",
    )
    assert [s.confidence for s in result.spans] == pytest.approx([2 / 3, 1 / 3])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The answer is Paris.", "paris"),
        ("  PARIS  ", "paris"),
        ("Final answer: the Eiffel Tower!", "eiffel tower"),
        ("It's Zürich", "zurich"),
        ("Answer: 1,000", "1000"),
        ("**Paris**", "paris"),
        ("An apple", "apple"),
        ("Paris, France", "paris france"),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_vote_picks_the_plurality_and_reports_its_share() -> None:
    samples = ["The answer is Paris.", "paris", "Lyon", "It is Paris!", "Marseille"]
    result = ensemble.consensus(samples, metric="vote")
    assert normalize_answer(result.text) == "paris"
    (span,) = result.spans
    assert span.confidence == pytest.approx(2 / 4)
    supporters = {normalize_answer(samples[i]) for i in span.supporters}
    assert supporters == {"paris"}


def test_prefix_a_sample_that_stopped_early_does_not_win() -> None:
    samples = ["23, 24, 25,"] + ["23, 24, 25, 26, 27, 28"] * 3 + ["23, 24, 25, 30", "23, 24, 9"]
    result = ensemble.consensus(samples, metric="prefix")
    assert result.text == "23, 24, 25, 26, 27, 28"
    conf = [s.confidence for s in result.spans]
    assert conf[0] == 1.0 and conf[-1] == pytest.approx(2 / 5)
