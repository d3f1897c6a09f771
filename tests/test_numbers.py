"""The number reader that ``ngram`` and ``vote`` share (``ensemble.metrics._numbers``), and
that the two metrics now read numbers alike."""

from __future__ import annotations

import doctest
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ensemble.metrics import _numbers
from ensemble.metrics._numbers import (
    canonical,
    first_number,
    numeral,
    read_number,
    split_scales,
)
from ensemble.metrics.ngram import content_units, critical_units
from ensemble.metrics.vote import VoteMetric, answer_key

HOW_MANY = "How many are there?"


def test_the_module_examples_hold() -> None:
    result = doctest.testmod(_numbers)
    assert result.attempted > 10
    assert result.failed == 0


def read(text: str) -> str | None:
    """The reader on its own: the first number in ``text`` split at spaces and at hyphens
    between letters, CJK scales split off."""
    words = split_scales(re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text.lower()).split())
    value = first_number(words)
    return None if value is None else canonical(value)


def ngram_numbers(text: str) -> list[str]:
    """The numbers ngram reads in ``text``, in order (its critical units, without names)."""
    return critical_units(text)


def vote_number(text: str) -> str:
    """The number vote's answer key reads in ``text`` for a "how many" question."""
    return answer_key(text, HOW_MANY)


# --- the agreed readings --------------------------------------------------------------------

AGREED = [
    ("two hundred and six", "206"),
    ("two hundred six", "206"),
    ("2 million", "2000000"),
    ("two million", "2000000"),
    ("2,000,000", "2000000"),
    ("2 millions", "2000000"),  # a plural after a number is the same scale
    ("two millions", "2000000"),
    ("1.5 million", "1500000"),
    ("1,5 million", "1500000"),  # a decimal comma
    ("3,5", "3.5"),  # not 35: a thousands separator groups three digits
    ("3.5", "3.5"),
    ("12,34", "12.34"),
    ("1,234.5", "1234.5"),
    ("1.234,5", "1234.5"),
    ("1.234.567", "1234567"),  # a repeated full stop groups digits; it is no decimal point
    ("1,234,567", "1234567"),
    ("-18", "-18"),
    ("minus 18", "-18"),
    ("minus eighteen", "-18"),
    ("\u221218", "-18"),  # the minus sign
    ("-3.5", "-3.5"),
    ("three thousand five hundred", "3500"),
    ("two thousand and five", "2005"),
    ("two thousand million", "2000000000"),
    ("2 thousand million", "2000000000"),
    ("one million two thousand", "1002000"),
    ("a million", "1000000"),
    ("a hundred and fifty", "150"),
    ("one hundred", "100"),
    ("twenty-one", "21"),
    ("twenty one", "21"),
    ("2 trillion", "2000000000000"),
    ("9780306406157", "9780306406157"),  # exact: no float rounding
    ("3.50", "3.5"),
    ("200万", "2000000"),
    ("200 万", "2000000"),
    ("5亿", "500000000"),
]


@pytest.mark.parametrize(("text", "value"), AGREED)
def test_vote_and_ngram_read_a_number_alike(text: str, value: str) -> None:
    assert read(text) == value
    assert ngram_numbers(f"It has {text} people.") == [value]
    assert vote_number(f"It has {text} people.") == value


@pytest.mark.parametrize(
    "texts",
    [
        ["2 million", "two million", "2,000,000", "2000000", "2 millions", "2.0 million"],
        ["two hundred and six", "206", "two hundred six"],
        ["3,5", "3.5", "3.50"],
        ["-18", "minus 18", "minus eighteen", "\u221218"],
        ["a thousand", "one thousand", "1,000", "1000"],
    ],
)
def test_ways_of_writing_one_number_support_each_other_in_both_metrics(texts: list[str]) -> None:
    sentences = [f"It has {t} people." for t in texts]
    assert len({tuple(content_units(s)) for s in sentences}) == 1
    vote = VoteMetric(key="answer").with_prompt(HOW_MANY)
    assert (vote.agreement(sentences) == 1.0).all()


@pytest.mark.parametrize(
    ("text", "numbers", "key"),
    [
        # Two numbers side by side stay two numbers (vote reads the first).
        ("two and three", ["2", "3"], "2"),
        ("six five-wicket hauls", ["6", "5"], "6"),
        ("twelve twenty-win seasons", ["12", "20"], "12"),
        ("nineteen eighty four", ["19", "84"], "19"),
        ("fifty-fifty", ["50"], "50"),  # one unit in ngram: the same number twice
        # A range is not a negative number: ngram reads its two ends, vote's answer key the
        # range (version 4), however it is written.
        ("1990-1995", ["1990", "1995"], "1990\u20131995"),
        ("1820--1890", ["1820", "1890"], "1820\u20131890"),
        ("(-18)", ["-18"], "-18"),
        # Not one quantity: kept as written.
        ("1.5.2020", ["1.5.2020"], "1.5.2020"),
    ],
)
def test_what_is_not_one_number(text: str, numbers: list[str], key: str) -> None:
    assert ngram_numbers(text) == numbers
    assert vote_number(text) == key


@pytest.mark.parametrize(
    "text", ["millions of people", "hundreds", "the Hundred Years' War", "first", "21st", "2nd"]
)
def test_scale_words_alone_and_ordinals_are_no_numbers(text: str) -> None:
    assert ngram_numbers(text) == []
    assert read(text) is None
    assert not vote_number(text).isdigit()


def test_a_lone_one_is_a_number_for_vote_only() -> None:
    # The one deliberate difference: for ngram "one" is mostly a pronoun ("one of the best");
    # an answer "one" to "how many" is the number 1. Within a number it is a number for both.
    assert ngram_numbers("one of the best") == []
    assert "one" in content_units("one of the best")
    assert vote_number("Just one.") == "1"
    assert read_number(["one"], bare_one=False) is None
    assert read_number(["one", "hundred"], bare_one=False) == (Decimal(100), 2)


def test_prompt_words_inside_a_number_do_not_hide_it() -> None:
    prompt = "How many people live in the city? Answer in one short sentence."
    assert answer_key("one hundred thousand", prompt) == "100000"
    # a number written only in words of the prompt is not the answer
    assert answer_key("In one sentence: eight.", prompt) == "8"


def test_numeral_rejects_what_is_not_digits() -> None:
    assert numeral("21st") is None
    assert numeral("1,2,3") is None
    assert numeral("-") is None
    assert numeral("") is None
    assert read_number([]) is None
    assert read_number(["minus"]) is None
    assert read_number(["a", "dog"]) is None


# --- properties -----------------------------------------------------------------------------

_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen".split()
_UNITS += "fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _below_thousand(n: int, *, and_: bool) -> list[str]:
    out: list[str] = []
    if n >= 100:
        out += [_UNITS[n // 100], "hundred"]
        n %= 100
        if n and and_:
            out.append("and")
    if n >= 20:
        out.append(_TENS[n // 10 - 2])
        if n % 10:
            out.append(_UNITS[n % 10])
    elif n or not out:
        out.append(_UNITS[n])
    return out


def spell(n: int, *, and_: bool = False) -> str:
    """``n`` (0 <= n < 10**12) in English words: a reference independent of the reader."""
    if n == 0:
        return "zero"
    words: list[str] = []
    for scale, name in ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"), (1, "")):
        part, n = divmod(n, scale)
        if part:
            words += _below_thousand(part, and_=and_) + ([name] if name else [])
    return " ".join(words)


@given(st.integers(min_value=0, max_value=10**12 - 1), st.booleans())
def test_spelled_out_integers_read_back(n: int, and_: bool) -> None:
    text = spell(n, and_=and_)
    assert read_number(text.split()) == (Decimal(n), len(text.split()))
    assert vote_number(f"There are {text}.") == str(n)
    if n != 1:  # a lone "one" is a word for ngram
        assert ngram_numbers(f"There are {text} of them.") == [str(n)]


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_integers_with_thousands_separators_read_back(n: int) -> None:
    for text in (f"{n:,}", f"{n:_}".replace("_", "."), str(n)):
        if "." in text and text.count(".") == 1:
            continue  # 1.234 is one and a bit (the English reading), not 1234
        assert numeral(text) == n
        assert ngram_numbers(f"There are {text} of them.") == [str(n)]
        assert vote_number(f"There are {text}.") == str(n)


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False))
def test_decimals_read_back_with_either_decimal_mark(d: Decimal) -> None:
    english = f"{d:,.2f}"
    european = english.replace(",", "_").replace(".", ",").replace("_", ".")
    expected = canonical(d)
    for text in (english, european):
        value = numeral(text)
        assert value is not None and canonical(value) == expected
        assert ngram_numbers(f"It is {text} metres.") == [expected]
        assert vote_number(f"It is {text} metres.") == expected
