"""Reading numbers written in text: the one reader the ``ngram`` and ``vote`` metrics share.

The callers split text into words their own way (``ngram`` into runs of letters and digits,
``vote`` into words that keep their hyphens); this module only reads a sequence of
lower-case words. What it reads:

* **numerals** (:func:`numeral`): ``2000`` = ``2,000``; a comma or full stop followed by
  three digits groups them, repeated (``1,234,567``, ``1.234.567``) or before a final
  decimal point of the other kind (``1,234.5``, ``1.234,5``); a single separator followed by
  anything else than three digits is a decimal point, whichever it is (``3.5`` = ``3,5``;
  ``1.234`` is 1.234, the English reading); a leading minus sign (``-18``, or U+2212) counts;
* **number words** (:func:`read_number`): ``two hundred and six`` = 206, ``twenty-five`` (as
  ``twenty``, ``five``) = 25, ``three thousand five hundred`` = 3500, ``a million`` = 1000000,
  ``minus eighteen`` = -18;
* **scale words** after a numeral or number words multiply it: ``2 million`` = ``two
  million`` = ``2,000,000`` = ``2 millions`` (a plural after a number is the same scale),
  ``1.5 million`` = 1500000, ``2 thousand million`` = 2000000000, ``200万`` = 2000000 (the scale
  character split off by :func:`split_scales`). A
  scale word with no number before it (``millions of people``, ``the Hundred Years' War``)
  is not a number.

Not read as numbers: ordinals (``first``, ``21st``: a rank, not a quantity; :func:`read_ordinal`
reads them as ranks, for the callers that want one), fractions
(``1/2`` is two numbers), ``half``, ``dozen``, ``point`` (``one point five``), and numbers
in Chinese or Japanese characters (``三千``). Two numbers side by side stay two numbers:
``six five-wicket hauls`` is 6 and 5, not 11, ``twelve twenty-win seasons`` 12 and 20, and so
``nineteen eighty four`` is 19 and 84 (a year said in pairs is not told from two counts);
a numeral and number words too (``1820 two``).

Values are :class:`~decimal.Decimal`, exact at any size; :func:`canonical` writes one as the
string both metrics compare (``1500000``, ``3.5``, ``-18``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Final

__all__ = [
    "CJK",
    "CJK_SCALES",
    "ORDINAL_TENS",
    "ORDINAL_UNITS",
    "SCALES",
    "TENS",
    "UNITS",
    "canonical",
    "first_number",
    "is_number_word",
    "minus_before",
    "numeral",
    "ordinal_key",
    "read_number",
    "read_ordinal",
    "split_scales",
]

#: Number words below twenty.
UNITS: Final[dict[str, int]] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
#: Multiples of ten below a hundred.
TENS: Final[dict[str, int]] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
#: Chinese and Japanese scale characters (after digits: ``200万``).
CJK_SCALES: Final[dict[str, int]] = {
    "千": 10**3,
    "万": 10**4,
    "萬": 10**4,
    "亿": 10**8,
    "億": 10**8,
}
_WORD_SCALES: Final[dict[str, int]] = {
    "thousand": 10**3,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
}
#: Words that scale the number before them (``hundred`` scales a group below a thousand; the
#: others scale everything before them). A plural counts after a number: ``2 millions``.
SCALES: Final[dict[str, int]] = {
    "hundred": 100,
    "hundreds": 100,
    **_WORD_SCALES,
    **{f"{w}s": v for w, v in _WORD_SCALES.items()},
    **CJK_SCALES,
}

#: Ordinal words below twenty.
ORDINAL_UNITS: Final[dict[str, int]] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19,
}  # fmt: skip
#: Ordinal words of the multiples of ten and of the scales.
ORDINAL_TENS: Final[dict[str, int]] = {
    "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60,
    "seventieth": 70, "eightieth": 80, "ninetieth": 90, "hundredth": 100, "thousandth": 1000,
    "millionth": 10**6, "billionth": 10**9,
}  # fmt: skip
_DIGIT_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)")

_NUMERAL = re.compile(r"\d+(?:[.,]\d+)*")
#: Scripts written without spaces between words (Han, Hiragana, Katakana).
CJK: Final[str] = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_NUMERAL_CJK = re.compile(rf"(\d+(?:[.,]\d+)*)([{CJK}]+)")
_CJK_RUN = re.compile(rf"[{CJK}]+")
_MINUS = "-\u2212"
#: Words that can open a number (with a numeral or ``minus``; ``a`` only before a scale).
_OPENERS: Final[frozenset[str]] = frozenset({*UNITS, *TENS, "a", "minus"})


def _separated(body: str) -> Decimal | None:
    """The value of digits with ``.``/``,`` separators (see :func:`numeral`)."""
    groups = re.split(r"[.,]", body)
    seps = re.findall(r"[.,]", body)
    if not seps:
        return Decimal(body)
    later = groups[1:]
    if len(set(seps)) == 1:
        if all(len(g) == 3 for g in later) and (seps[0] == "," or len(seps) > 1):
            return Decimal("".join(groups))  # 2,000 / 1,234,567 / 1.234.567
        if len(seps) == 1:
            return Decimal(f"{groups[0]}.{groups[1]}")  # 3.5 / 3,5 / 1.234
        return None  # 1.5.2020, 1,2,3: not one quantity
    # two kinds: the last separator is the decimal point, once, after groups of three
    point = seps[-1]
    if seps.count(point) == 1 and all(len(g) == 3 for g in later[:-1]):
        return Decimal(f"{''.join(groups[:-1])}.{groups[-1]}")  # 1,234.5 / 1.234,5
    return None


def numeral(word: str) -> Decimal | None:
    """The value of a number written in digits, or ``None`` for anything else (an
    ill-formed group such as ``1.5.2020``, a word, ``21st``).

    >>> [str(numeral(w)) for w in ["2,000", "1.234.567", "1,234.5", "1.234,5", "3,5", "1.234"]]
    ['2000', '1234567', '1234.5', '1234.5', '3.5', '1.234']
    >>> numeral("-18"), numeral("1.5.2020"), numeral("21st")
    (Decimal('-18'), None, None)
    >>> canonical(numeral("-1" + "0" * 40 + ".5"))  # exact, however long
    '-10000000000000000000000000000000000000000.5'
    """
    sign, body = 1, word
    if body[:1] and body[0] in _MINUS:
        sign, body = -1, body[1:]
    if not _NUMERAL.fullmatch(body):
        return None
    value = _separated(body)
    if value is None:
        return None
    return value.copy_negate() if sign < 0 else value  # exact, at any length


def minus_before(text: str, start: int) -> bool:
    """Whether the digit at ``text[start]`` has a minus sign: a hyphen or minus sign right
    before it that does not follow a letter, a digit or another dash (``-18`` and ``(-18)``
    are negative; ``1990-1995`` and ``1820--1890`` are ranges).

    >>> minus_before("It was -18 degrees", 8), minus_before("1990-1995", 5)
    (True, False)
    """
    if start == 0 or text[start - 1] not in _MINUS:
        return False
    return start == 1 or not (text[start - 2].isalnum() or text[start - 2] in _MINUS)


def split_scales(words: Sequence[str]) -> list[str]:
    """``words`` with a Chinese or Japanese scale character after a number made a word of its
    own, so that :func:`read_number` reads it (``200万人`` and ``200 万人`` -> ``200``, ``万``,
    ``人``; ``two 万`` -> ``two``, ``万``). Other words are kept as they are.

    >>> split_scales(["200万人", "two", "万人", "人口"])
    ['200', '万', '人', 'two', '万', '人', '人口']
    """
    out: list[str] = []
    for word in words:
        m = _NUMERAL_CJK.fullmatch(word)
        parts = [m[1], m[2]] if m else [word]
        for w in parts:
            if (
                out
                and w[:1] in CJK_SCALES
                and _CJK_RUN.fullmatch(w)
                and (numeral(out[-1]) is not None or is_number_word(out[-1].lower()))
            ):
                out.extend([w[0], w[1:]] if len(w) > 1 else [w])
            else:
                out.append(w)
    return out


def is_number_word(word: str) -> bool:
    """Whether ``word`` (lower-case) can be part of a number written in words."""
    return word in UNITS or word in TENS or word in SCALES or word == "and"


def _group(words: Sequence[str], i: int) -> tuple[int, int] | None:
    """A number below a hundred written at ``words[i]``: a unit (``seven``), a ten
    (``twenty``) or a ten and a unit (``twenty five``): its value and the index after it."""
    w = words[i] if i < len(words) else ""
    if w in UNITS:
        return UNITS[w], i + 1
    if w in TENS:
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if 0 < UNITS.get(nxt, 0) < 10:
            return TENS[w] + UNITS[nxt], i + 2
        return TENS[w], i + 1
    return None


def read_number(
    words: Sequence[str], i: int = 0, *, bare_one: bool = True
) -> tuple[Decimal, int] | None:
    """The number written at ``words[i]`` (lower-case words, a hyphenated ``twenty-five``
    split in two), and the index of the word after it; ``None`` when none starts there.

    ``bare_one=False`` leaves a lone ``one`` a word (it is mostly a pronoun: "one of the
    best"); ``one`` is still a number within others (``twenty one``, ``one hundred``).

    >>> read_number("two hundred and six bones".split())
    (Decimal('206'), 4)
    >>> read_number("it had 1.5 million people".split(), 2)
    (Decimal('1500000.0'), 4)
    >>> read_number("one of them".split(), bare_one=False) is None
    True
    >>> read_number("two thousand three thousand".split())
    (Decimal('2000'), 2)
    >>> [read_number(s.split())[0] for s in ["nineteen eighty four", "minus 18", "a thousand"]]
    [Decimal('19'), Decimal('-18'), Decimal('1000')]
    """
    n = len(words)
    if i >= n:
        return None
    sign, j = 1, i
    if words[j] == "minus":
        sign, j = -1, j + 1
        if j >= n:
            return None
    first = words[j]
    value = numeral(first)
    after = j + 1
    nxt = words[after] if after < n else ""
    if value is not None:
        group: Decimal | None = value
        j = after
    elif first == "a" or (first == "one" and not bare_one):
        if nxt not in SCALES:
            return None
        group, j = Decimal(1), after  # "a million", "one hundred"
    else:
        read = _group(words, j)
        if read is None:
            return None
        small, j = read
        group = Decimal(small)
    total = Decimal(0)
    hundred = False  # the current group has its "hundred"
    last_scale = 0  # the smallest scale applied to `total`
    resume = j  # where the words after the last scale word start
    while j < n:
        w = words[j]
        if w in SCALES and group is not None and group != 0:
            scale = SCALES[w]
            if scale == 100:
                if hundred or group >= 100:
                    break
                group, hundred = group * 100, True
            elif total and scale > last_scale:  # two thousand million
                total, group, last_scale, hundred = (total + group) * scale, None, scale, False
            elif total and scale == last_scale:  # "two thousand three thousand": two numbers
                return (total.copy_negate() if sign < 0 else total), resume
            else:
                total, group, last_scale, hundred = total + group * scale, None, scale, False
            j += 1
            continue
        if w in SCALES and group is None and total and SCALES[w] > last_scale > 0:
            total, last_scale = total * SCALES[w], SCALES[w]  # 2 thousand million
            j += 1
            continue
        # more words after "hundred" or a scale: "two hundred (and) six", "a thousand two"
        k = j + 1 if w == "and" else j
        if group is None or (hundred and group % 100 == 0):
            read = _group(words, k)
            if read is not None and read[0] > 0:
                if group is None:
                    resume = j
                group = (group or Decimal(0)) + read[0]
                j = read[1]
                continue
        break
    # a lone numeral stays exact (Decimal arithmetic rounds to 28 digits)
    result = total if group is None else (total + group if total else group)
    return (result.copy_negate() if sign < 0 else result), j


def first_number(
    words: Sequence[str], *, bare_one: bool = True, skip: Collection[str] = ()
) -> Decimal | None:
    """The first number written in ``words`` (see :func:`read_number`) that is not written
    only in words of ``skip`` (a question's words, say), or ``None``.

    >>> first_number("about 2 millions people".split())
    Decimal('2000000')
    >>> first_number("in one sentence it is one hundred".split(), skip={"one", "sentence"})
    Decimal('100')
    """
    i, n = 0, len(words)
    while i < n:
        w = words[i]
        if w in _OPENERS or w[:1].isdigit() or (w[:1] in _MINUS and w[1:2].isdigit()):
            read = read_number(words, i, bare_one=bare_one)
            if read is not None:
                if not all(v in skip for v in words[i : read[1]]):
                    return read[0]
                i = read[1]
                continue
        i += 1
    return None


def read_ordinal(words: Sequence[str], i: int = 0) -> tuple[int, int] | None:
    """The ordinal written at ``words[i]`` (lower-case words) and the index of the word after
    it, or ``None``: digits with a suffix (``21st``, ``2nd``, ``4th``; the suffix is not
    checked against the number, ``21th`` is 21st), an ordinal word (``first``, ``twelfth``,
    ``twentieth``, ``hundredth``), or a ten and a unit ordinal, hyphenated or not
    (``twenty-first``, ``twenty first``). Whether the word is used as an ordinal there
    (``a second``, ``one third``) is the caller's to judge; plurals (``thirds``) are not
    ordinals.

    >>> read_ordinal(["21st"]), read_ordinal("the twenty first century".split(), 1)
    ((21, 1), (21, 3))
    >>> read_ordinal(["twenty-second"]), read_ordinal(["thirds"]), read_ordinal(["21"])
    ((22, 1), None, None)
    """
    if i >= len(words):
        return None
    w = words[i]
    m = _DIGIT_ORDINAL.fullmatch(w)
    if m:
        return int(m[1]), i + 1
    if w in ORDINAL_UNITS:
        return ORDINAL_UNITS[w], i + 1
    if w in ORDINAL_TENS:
        return ORDINAL_TENS[w], i + 1
    ten, _, unit = w.partition("-")
    if not unit and i + 1 < len(words):
        unit = words[i + 1]
        step = 2
    else:
        step = 1
    if ten in TENS and 0 < ORDINAL_UNITS.get(unit, 0) < 10:
        return TENS[ten] + ORDINAL_UNITS[unit], i + step
    return None


def ordinal_key(rank: int) -> str:
    """An ordinal written the one way it is compared: digits and the English suffix.

    >>> [ordinal_key(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)]
    ['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '101st', '111th']
    """
    suffix = (
        "th" if rank % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    )
    return f"{rank}{suffix}"


def canonical(value: Decimal) -> str:
    """The string a number is compared by: integers in plain digits, other numbers in
    decimal notation without trailing zeros.

    >>> canonical(Decimal("1500000.0")), canonical(Decimal("3.50")), canonical(Decimal("-0"))
    ('1500000', '3.5', '0')
    """
    text = format(value, "f")  # exact (normalize() would round to 28 digits)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
