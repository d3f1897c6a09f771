"""Agreement about the answer, not the question: prompt discounting and the vote answer key."""

from __future__ import annotations

import pytest

import ensemble
from ensemble.metrics.prompt import bind_prompt, copied_words, discount_prompt, strip_prompt
from ensemble.metrics.vote import VoteMetric, answer_key

Q = "Who wrote the novel Pride and Prejudice? Answer in one short sentence."


def test_strip_prompt_removes_runs_copied_from_the_prompt() -> None:
    text = "The novel Pride and Prejudice was written by Jane Austen."
    assert strip_prompt(text, Q) == "was written by Jane Austen"
    assert copied_words("Pride is good", Q) == [False, False, False]  # one word is no run
    assert strip_prompt("Pride and Prejudice", Q) == ""
    assert strip_prompt("Jane Austen", Q, min_run=1) == "Jane Austen"
    with pytest.raises(ValueError):
        copied_words("x", "y", min_run=0)


def test_discount_prompt_keeps_texts_when_nothing_would_be_left() -> None:
    texts = ["Pride and Prejudice", "the novel Pride and Prejudice"]
    assert discount_prompt(texts, Q) == texts  # all would be empty
    assert discount_prompt(texts, None) == texts
    assert discount_prompt([*texts, "Jane Austen"], Q) == ["", "", "Jane Austen"]


def test_echoed_question_words_do_not_elect_the_candidate() -> None:
    # Three samples echo the question at length with different (wrong) authors; two answer
    # briefly and alike. Counting the echoed words, an echo wins; discounting them, the
    # answer the samples agree on wins. (No sample adds a number: ngram v3 gives a sentence
    # with a number no other sample states no support, which is a different rule.)
    samples = [
        "The novel Pride and Prejudice was written by Charles Dickens.",
        "The novel Pride and Prejudice was written by Mark Twain.",
        "The novel Pride and Prejudice was written by Leo Tolstoy.",
        "Jane Austen wrote it.",
        "Jane Austen wrote it, as her second novel.",
    ]
    without = ensemble.consensus(samples, alarm=None)
    assert "Pride and Prejudice" in without.text
    with_prompt = ensemble.consensus(samples, prompt=Q, alarm=None)
    assert with_prompt.text.startswith("Jane Austen")


@pytest.mark.parametrize(
    ("text", "prompt", "key"),
    [
        ("The novel was written by Jane Austen.", Q, "austen"),
        ("Jane Austen was the author of the novel.", Q, "austen"),
        ("Austen", Q, "austen"),
        ("A spider has eight legs.", "How many legs does a spider have?", "8"),
        ("Spiders have 8 legs", "How many legs does a spider have?", "8"),
        ("It has two hundred and six bones.", "How many bones does a body have?", "206"),
        ("The Titanic sank in 1912.", "In which year did the Titanic sink?", "1912"),
        ("About 1,000 people live there.", "How many people live there?", "1000"),
        ("About 1,500 people live there.", "How many people live there?", "1500"),
        ("2,500,000", "How many people live there?", "2500000"),
        ("The currency of Japan is the yen.", "What is the currency of Japan?", "yen"),
        ("The Japanese yen", "What is the currency of Japan?", "yen"),
        ("It is the Pacific Ocean.", "What is the largest ocean?", "pacific"),
        ("The capital of Australia is Canberra.", "What is the capital of Australia?", "canberra"),
        ("São Paulo", "Which city?", "paulo"),
        ("Plants absorb carbon dioxide.", "Which gas do plants absorb?", "carbon dioxide"),
        ("Yes, it is.", "Is Paris in France?", "yes"),
        ("No.", "Is Lyon the capital of France?", "no"),
        ("", "Anything?", ""),
    ],
)
def test_answer_key_groups_replies_by_the_answer_they_give(
    text: str, prompt: str, key: str
) -> None:
    assert answer_key(text, prompt) == key


def test_vote_with_the_answer_key_through_the_engine_prompt_hook() -> None:
    metric = VoteMetric(key="answer")
    assert metric.info.settings == {"key": "answer"}
    assert VoteMetric().info.settings == {}  # the exact key keeps its old identity
    bound, mask = bind_prompt(metric, "Who painted it?")
    assert isinstance(bound, VoteMetric) and bound.prompt == "Who painted it?" and not mask
    assert metric.prompt is None  # the original is untouched
    _, mask = bind_prompt(ensemble.get_metric("ngram"), "Who painted it?")
    assert mask
    samples = [
        "The Mona Lisa was painted by Leonardo da Vinci.",
        "Leonardo da Vinci.",
        "It was painted by da Vinci",
        "Michelangelo painted the Mona Lisa.",
    ]
    r = ensemble.consensus(samples, metric=metric, prompt="Who painted the Mona Lisa?")
    assert "Vinci" in r.text
    assert r.spans[0].confidence == pytest.approx(2 / 3)
    # The exact key does not group them.
    exact = ensemble.consensus(samples, metric="vote", prompt="Who painted the Mona Lisa?")
    assert exact.spans[0].confidence == 0.0
    # An empty key supports nothing.
    assert VoteMetric(key="answer").agreement(["", ""]).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_bad_vote_key_is_a_configuration_error() -> None:
    with pytest.raises(ensemble.errors.ConfigurationError, match="key must be"):
        VoteMetric(key="fuzzy")  # type: ignore[arg-type]
