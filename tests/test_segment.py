"""Sentence and token segmentation: offsets, tricky abbreviations, every character kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ensemble.segment import sentences, tokens


def split(text: str) -> list[str]:
    return [text[a:b] for a, b in sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith lives on Baker St. in London. He is 3.5 m tall.",
            ["Dr. Smith lives on Baker St. in London.", "He is 3.5 m tall."],
        ),
        (
            "J. R. R. Tolkien was born on Jan. 3, 1892. He wrote books.",
            ["J. R. R. Tolkien was born on Jan. 3, 1892.", "He wrote books."],
        ),
        (
            "Mr. Brown met Mrs. Green in the U.S. capital. They talked, e.g. about tea.",
            ["Mr. Brown met Mrs. Green in the U.S. capital.", "They talked, e.g. about tea."],
        ),
        ("Is it? Yes! It is.", ["Is it?", "Yes!", "It is."]),
        (
            "She won in 1820. The next year she lost.",
            ["She won in 1820.", "The next year she lost."],
        ),
        ("No final period", ["No final period"]),
        ("- first item\n- second item", ["- first item", "- second item"]),
        ("", []),
        ("   \n\t ", []),
    ],
)
def test_sentence_cases(text: str, expected: list[str]) -> None:
    assert split(text) == expected


def test_tokens_keep_decimals_and_contractions() -> None:
    text = "It costs 3.5 dollars, 1,000 times; don't panic."
    toks = [text[a:b] for a, b in tokens(text)]
    assert toks == [
        "It",
        "costs",
        "3.5",
        "dollars",
        ",",
        "1,000",
        "times",
        ";",
        "don't",
        "panic",
        ".",
    ]


def _check_partition(text: str, offsets: list[tuple[int, int]]) -> None:
    pos = 0
    for a, b in offsets:
        assert pos <= a < b <= len(text)
        assert text[pos:a].strip() == ""  # only white space between pieces
        assert not text[a].isspace() and not text[b - 1].isspace()
        pos = b
    assert text[pos:].strip() == ""


texts = st.lists(
    st.sampled_from([*list("abcXYZ .!?\n\t,;'-0123456789"), "Dr. ", "U.S. ", "e.g. ", "3.5"]),
    max_size=80,
).map("".join)


@given(texts)
def test_sentences_keep_every_character(text: str) -> None:
    _check_partition(text, sentences(text))


@given(st.text(max_size=300))
def test_sentences_keep_every_character_any_unicode(text: str) -> None:
    _check_partition(text, sentences(text))


@given(st.text(max_size=300))
def test_tokens_keep_every_character(text: str) -> None:
    _check_partition(text, tokens(text))
