"""``vote``: exact-answer voting for short answers, after normalisation.

The whole answer is one span. A sample supports it when both normalise to the same string, so
the confidence is the share of the other samples that give the same answer, and the consensus
is the most common answer (ties to the lexicographically smallest).

Normalisation (:func:`normalize_answer`): Unicode compatibility form without accents, case
folded, framing such as "The answer is ...", "Answer:" or "Final answer -" removed,
thousands separators dropped, punctuation and markup turned into spaces, the articles "a",
"an" and "the" removed, white space collapsed. "The answer is: Paris." and "paris" vote
together; "Paris, France" does not vote with "Paris".

``VoteMetric(key="answer")`` votes on **the answer a short reply gives, whatever sentence wraps
it** (:func:`answer_key`): "The capital of Australia is Canberra.", "Canberra." and "It is
Canberra, a planned city" all vote for ``canberra``; "Eight legs." and "A spider has 8 legs"
for ``8``; "Yes, it is." and "yes" for ``yes``; "1990-1995" and "from 1990 until 1995" for
one range (not for ``1990``); "first" and "1st" for one rank (not for ``1``). When the
prompt is known (the engine passes it through :meth:`VoteMetric.with_prompt`), words of the
prompt are not taken for the answer.
"""

from __future__ import annotations

import copy
import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ensemble.errors import ConfigurationError
from ensemble.metrics._numbers import (
    SCALES,
    canonical,
    first_number,
    is_number_word,
    minus_before,
    numeral,
    ordinal_key,
    read_ordinal,
    split_scales,
)
from ensemble.metrics.base import FloatArray, Granularity, Metric
from ensemble.types import SettingValue

__all__ = ["VoteMetric"]

_FRAMING = re.compile(
    r"^\s*(?:(?:so|thus|therefore|hence|okay|ok|well)\b[\s,]*)?"
    r"(?:(?:the|my|final|correct|short|best)\s+)*"
    r"(?:answer|response|result)\s*(?:is|would\s+be|:|=|-)\s*:?\s*"
)
_IT_IS = re.compile(r"^\s*(?:it\s+is|it's|its)\s+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_SPACE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Normalise a short answer for voting (see the module docstring)."""
    s = unicodedata.normalize("NFKD", text)
    s = "".join(c for c in s if not unicodedata.combining(c)).casefold()
    for _ in range(3):  # "Final answer: the answer is X" style stacks
        stripped = _IT_IS.sub("", _FRAMING.sub("", s))
        if stripped == s:
            break
        s = stripped
    s = _THOUSANDS.sub("", s)
    s = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in s)
    s = _ARTICLES.sub(" ", s)
    return _SPACE.sub(" ", s).strip()


# --- the answer key -------------------------------------------------------------------------

#: Digit groups first ("1,000", "2,500,000", "3.5" are one word each), then words.
_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:['\u2019.-][^\W_]+)*", re.UNICODE)
_POSSESSIVE = re.compile(r"['\u2019]s$")
_YES = frozenset({"yes", "yeah", "yep", "correct", "true", "indeed"})
_NO = frozenset({"no", "nope", "false", "incorrect", "not"})
_YES_NO_QUESTION = re.compile(
    r"^\s*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|shall|may)\b",
    re.IGNORECASE,
)
_NUMBER_QUESTION = re.compile(
    r"\b(?:how\s+(?:many|much|old|long|far|tall|high|deep|big)|(?:what|which)\s+year|"
    r"in\s+(?:what|which)\s+year|what\s+(?:number|percentage|temperature)|when)\b",
    re.IGNORECASE,
)
#: A question for a year: a reply's first number of three or four digits is its answer
#: ("The Apollo 11 mission in 1969" answers 1969, not 11).
_YEAR_QUESTION = re.compile(r"\b(?:(?:what|which)\s+year|when)\b", re.IGNORECASE)
_YEAR = re.compile(r"-?\d{3,4}|\d{3,4}\u2013\d{3,4}")
#: A range's key joins its two ends with an en dash, which no word of a reply contains.
_RANGE = "\u2013"
_PLAIN = re.compile(r"\d+(?:[.,]\d+)*")
_HYPHEN_RANGE = re.compile(r"(\d+(?:[.,]\d+)*)-(\d+(?:[.,]\d+)*)")
_DASH_SEP = re.compile(r"\s*[-\u2010-\u2015\u2212]{1,2}\s*")
_RANGE_WORDS = frozenset({"to", "until", "till", "through", "thru"})
#: An ordinal word after these (or after a number) is a fraction or a unit: "a third", "one
#: second", "two fifths"; "second" is an ordinal only after a determiner or a possessive.
_NOT_ORDINAL_AFTER = frozenset({"a", "an", "per"})
_DETERMINERS = frozenset({"the", "his", "her", "its", "their", "our", "my", "your", "whose"})
#: Verbs of a rank: "second" after them is the ordinal ("she finished second").
_RANK_VERBS = frozenset({"finished", "finishes", "came", "comes", "placed", "ranked", "ranks"})
_ORDINAL_KEY = re.compile(r"\d+(?:st|nd|rd|th)")
#: A question for a rank: a reply's first ordinal is its answer ("She finished first").
_RANK_QUESTION = re.compile(
    r"\b(?:(?:what|which)\s+(?:place|position|rank|century)|in\s+what\s+order|"
    r"how\s+did\s+(?:\w+\s+){1,3}(?:finish|place|rank))\b",
    re.IGNORECASE,
)
#: Words that never name the answer: function words and the verbs that wrap one.
_FILLER = frozenset(
    """a an the of in on at to for by from with and or but as is are was were be been being
    it its it's this that these those there their his her he she they them we you i my our
    your which who whom whose what when where why how answer called named known also
    approximately about around roughly exactly just only very most more some any each every
    has have had do does did can could will would should may might must so then than
    written wrote painted composed created made invented discovered located found used
    oh ah aw hmm mmm um uh okay ok well sure actually""".split()
)
#: Titles before a name: not part of it ("Dr. Louis Brandeis" is "Louis Brandeis").
_TITLES = frozenset(
    """dr mr mrs ms miss sir dame lord lady saint st prof professor president king queen
    prince princess emperor empress general captain pope""".split()
)
#: Trailing words of a name that only say what kind of place it is.
_GENERIC = frozenset(
    "ocean sea river lake city mountains mountain mount desert falls trench island islands "
    "empire wall".split()
)
_DEMONYM = re.compile(r"(?:ese|ian|an|ish|ic|i|ss)$|^(?:french|dutch|greek|welsh|czech)$")
#: Lower-case words that join the parts of a name ("Leonardo da Vinci", "Rio de Janeiro").
_CONNECTORS = frozenset({"da", "de", "del", "der", "di", "du", "la", "le", "van", "von", "y"})


def _fold(text: str) -> str:
    s = unicodedata.normalize("NFKD", text)
    return "".join(c for c in s if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True)
class _Token:
    raw: str
    word: str  # folded, without a possessive "'s"; a number keeps a leading minus
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    out = []
    for m in _WORD.finditer(text):
        raw, start = m.group(), m.start()
        word = _POSSESSIVE.sub("", _fold(raw))
        if raw[0].isdigit() and minus_before(text, start):
            word = "-" + word  # "-18 degrees", not "18"
        out.append(_Token(raw, word, start, m.end()))
    return out


def _range_key(a: str, b: str) -> str | None:
    """The key of the range from numeral ``a`` to numeral ``b`` (``1990``, ``1995`` -> the two
    joined by an en dash; ``1990``, ``95`` -> the same), or ``None`` when ``a`` is not below
    ``b`` (``3-2`` is a score, not a range)."""
    if a.isdigit() and b.isdigit() and len(b) < len(a):
        b = a[: len(a) - len(b)] + b  # 1914-18
    low, high = numeral(a), numeral(b)
    if low is None or high is None or not low < high:
        return None
    return f"{canonical(low)}{_RANGE}{canonical(high)}"


def _ranges(text: str, toks: list[_Token]) -> list[_Token]:
    """``toks`` with each range of numerals made one token whose word is its key (the two ends
    joined by an en dash, U+2013): ``1990-1995``, the same with an en or em dash, ``1990 -
    1995``, ``1990 to 1995`` (or ``until``, ``till``, ``through``), ``between 1990 and 1995``,
    ``1990-95``. Not a range: ends that are not ascending, a
    negative end, or a scale word after the second end (``2-3 million``)."""
    out: list[_Token] = []
    i, n = 0, len(toks)
    while i < n:
        t = toks[i]
        key, end = None, i + 1
        m = _HYPHEN_RANGE.fullmatch(t.word)
        if m:
            key = _range_key(m[1], m[2])
        elif _PLAIN.fullmatch(t.word) and i + 1 < n:
            nxt = toks[i + 1]
            sep = text[t.end : nxt.start]
            if _DASH_SEP.fullmatch(sep) and _PLAIN.fullmatch(nxt.word):
                key, end = _range_key(t.word, nxt.word), i + 2
            elif (
                i + 2 < n
                and not sep.strip()
                and not text[nxt.end : toks[i + 2].start].strip()
                and _PLAIN.fullmatch(toks[i + 2].word)
                and (
                    nxt.word in _RANGE_WORDS
                    or (nxt.word == "and" and i > 0 and toks[i - 1].word == "between")
                )
            ):
                key, end = _range_key(t.word, toks[i + 2].word), i + 3
        if key is None or (end < n and toks[end].word in SCALES):
            out.append(t)
            i += 1
            continue
        last = toks[end - 1]
        out.append(_Token(text[t.start : last.end], key, t.start, last.end))
        i = end
    return out


def _ordinals(text: str, toks: list[_Token]) -> list[_Token]:
    """``toks`` with each ordinal made one token whose word is its key (``1st``, ``21st``):
    digits with a suffix always (``21st``, ``2ND``); an ordinal word (``first``, ``twelfth``,
    ``twenty-first``, ``twenty first``) unless it follows ``a``, ``an``, ``per`` or a number
    (``a third``, ``one tenth``: fractions; ``a second``, ``30 second``: the unit of time);
    ``second`` (also ``twenty-second``) only after ``the``, a possessive determiner, a
    possessive (``Poland's second``) or a verb of rank (``finished second``), before
    ``place``/``position``, or as the whole reply, since it is otherwise as likely the unit
    or the verb ("wait a second", "I second that")."""
    words = [t.word for t in toks]
    out: list[_Token] = []
    i, n = 0, len(toks)
    while i < n:
        read = read_ordinal(words, i)
        if read is not None and read[1] == i + 2 and text[toks[i].end : toks[i + 1].start].strip():
            read = None  # "twenty, first": not one word
        if read is None or not _is_ordinal(toks, words, i, read[1]):
            out.append(toks[i])
            i += 1
            continue
        rank, end = read
        t, last = toks[i], toks[end - 1]
        out.append(_Token(text[t.start : last.end], ordinal_key(rank), t.start, last.end))
        i = end
    return out


def _is_ordinal(toks: Sequence[_Token], words: Sequence[str], i: int, end: int) -> bool:
    """Whether the ordinal read at ``words[i:end]`` is used as one (see :func:`_ordinals`)."""
    if words[i][:1].isdigit():
        return True
    prev = words[i - 1] if i else ""
    if prev != "and" and (  # "and" is a number word only inside a number
        prev in _NOT_ORDINAL_AFTER or numeral(prev) is not None or is_number_word(prev)
    ):
        return False
    if not words[end - 1].endswith("second"):
        return True
    return (
        prev in _DETERMINERS
        or prev in _RANK_VERBS
        or (i > 0 and bool(_POSSESSIVE.search(_fold(toks[i - 1].raw))))
        or (end < len(words) and words[end] in ("place", "position"))
        or (i == 0 and end == len(words))
    )


def _read(text: str) -> list[_Token]:
    """The words of ``text`` (:func:`_tokens`), ranges and ordinals made one word each."""
    return _ordinals(text, _ranges(text, _tokens(text)))


def _split(words: Iterable[str]) -> list[str]:
    """Words with number compounds split (``twenty-five`` -> ``twenty``, ``five``) and a CJK
    scale character after a number split off (``200万`` -> ``200``, ``万``)."""
    return split_scales(
        [
            p
            for w in words
            for p in (
                w.split("-") if "-" in w[1:] and all(map(is_number_word, w.split("-"))) else [w]
            )
        ]
    )


def _number(words: Sequence[str], prompt: frozenset[str]) -> str | None:
    """The first number written in ``words`` (:func:`ensemble.metrics._numbers.read_number`:
    digits or number words, "two hundred and six" is 206, "2 million", "two million" and
    "2,000,000" are 2000000, "3,5" is 3.5) that is not written only in words of the prompt,
    in canonical digits."""
    skip = frozenset(_split(prompt)) if prompt else frozenset()
    split = _split(words)
    r = next((k for k, w in enumerate(split) if _RANGE in w and w not in skip), len(split))
    value = first_number(split[:r], skip=skip)
    if value is not None:
        return canonical(value)
    return split[r] if r < len(split) else None


@dataclass(frozen=True)
class _Question:
    """What the answer key needs of a prompt, computed once per vote: its words (folded,
    possessives dropped) and whether it asks yes/no, for a number, for a year or for a rank."""

    words: frozenset[str]
    yes_no: bool
    number: bool
    year: bool = False
    rank: bool = False

    @classmethod
    def of(cls, prompt: str | None) -> _Question:
        if prompt is None:
            return cls(frozenset(), True, False)
        words = frozenset(t.word for t in _read(prompt))
        return cls(
            words,
            bool(_YES_NO_QUESTION.match(prompt)),
            bool(_NUMBER_QUESTION.search(prompt)),
            bool(_YEAR_QUESTION.search(prompt)),
            bool(_RANK_QUESTION.search(prompt)),
        )


def _joins(text: str, prev: _Token, nxt: _Token) -> bool:
    """Whether the text between two capitalised words keeps them in one name: white space,
    or the full stop after an initial or a title ("John F. Kennedy", "J.M.W. Turner")."""
    sep = text[prev.end : nxt.start]
    if not sep.strip():
        return True
    initial = all(len(p) == 1 for p in prev.raw.split("."))
    return sep.strip() == "." and (initial or prev.word in _TITLES)


def _is_unit(text: str, toks: Sequence[_Token], i: int) -> bool:
    """A one- or two-letter capitalised word right after a number is its unit ("0°F", "5 km")."""
    if len(toks[i].raw) > 2 or i == 0:
        return False
    prev = toks[i - 1]
    return prev.raw[0].isdigit() and not text[prev.end : toks[i].start].strip(" \u00b0")


@functools.lru_cache(maxsize=4096)
def _answer(text: str, q: _Question) -> tuple[str, tuple[str, ...]]:
    """``(kind, words)`` of the answer ``text`` gives: kind ``"name"`` (its words may drop
    first names: :func:`_same`) or ``"word"``. Cached: a vote reads each sample twice (its
    agreement, then the candidate's support)."""
    toks = _read(text)
    words = [t.word for t in toks]
    if not words:
        return "word", ()
    pset = q.words
    if q.yes_no:
        if words[0] in _YES:
            return "word", ("yes",)
        if words[0] in _NO and not (len(words) > 1 and words[1] in _NO - {"no"}):
            return "word", ("no",)
    fresh = [w for w in words if w not in pset]
    if q.rank:
        rank = next((w for w in fresh if _ORDINAL_KEY.fullmatch(w)), None)
        if rank is not None:
            return "word", (rank,)
    if q.year:
        year = next((w for w in fresh if _YEAR.fullmatch(w)), None)
        if year is not None:
            return "word", (year,)
    if q.number:
        n = _number(words, pset)
        if n is not None:
            return "word", (n,)

    def name_word(i: int) -> bool:
        t = toks[i]
        return (
            t.raw[:1].isupper()
            and t.word not in pset
            and t.word not in _FILLER
            and t.word not in _TITLES
            and not _is_unit(text, toks, i)
        )

    skipped: set[str] = set()
    i = 0
    while i < len(toks):
        if not name_word(i):
            i += 1
            continue
        run, j = [toks[i].word], i
        while j + 1 < len(toks):
            k = j + 1
            while k < len(toks) and toks[k].word in _CONNECTORS and not toks[k].raw[0].isupper():
                k += 1  # "da", "van": kept when a capitalised word follows
            linked = all(_joins(text, toks[m], toks[m + 1]) for m in range(j, k))
            place = k < len(toks) and toks[k].raw[:1].isupper() and toks[k].word in _GENERIC
            if k < len(toks) and (name_word(k) or place) and linked:
                run.extend(t.word for t in toks[j + 1 : k + 1])
                j = k
            else:
                break
        while len(run) > 1 and run[-1] in _GENERIC:
            run.pop()  # "Pacific Ocean" is "pacific", "Vatican City" is "vatican"
        nxt = toks[j + 1] if j + 1 < len(toks) and _joins(text, toks[j], toks[j + 1]) else None
        if len(run) == 1 and _DEMONYM.search(run[0]) and nxt is not None:
            if nxt.word in pset and nxt.word not in _FILLER:  # "the Brazilian currency",
                skipped.add(run[0])  # "Kenyan English": not the answer
                i = j + 1
                continue
            after = j + 2
            if (
                nxt.raw[:1].islower()
                and after < len(toks)
                and name_word(after)
                and _joins(text, nxt, toks[after])
            ):  # "Norwegian filmmaker Henrik Storm": the name is the answer
                skipped.add(run[0])
                i = after
                continue
            if nxt.word not in _FILLER:
                return "word", (nxt.word,)  # "Japanese yen", "Swiss franc": the noun is the answer
        return "name", tuple(run)
    n = _number(words, pset)
    if n is not None:
        return "word", (n,)
    return "word", tuple(w for w in fresh if w not in _FILLER and w not in skipped)


def answer_key(text: str, prompt: str | None = None) -> str:
    """The answer a short reply gives, as a vote key (``""`` when it gives none).

    In order, the first that applies:

    1. a yes/no question (the prompt starts with "is", "does", "can"...; without a prompt,
       any reply) answered with a first word of yes or no: ``"yes"`` / ``"no"``;
    2. a question asking for a rank ("which place", "what position", "which century", "how
       did she finish"): the first ordinal in the reply not in the prompt (see below);
    3. a question asking for a number ("how many", "which year", "when"...): the first
       number in the reply not written only in the prompt's words, in digits, read as
       :class:`~ensemble.metrics.ngram.NgramMetric` reads it
       (:mod:`ensemble.metrics._numbers`): "eight" is ``"8"``, "two hundred and six"
       ``"206"``, "2 million", "two million", "2 millions" and "2,000,000" are
       ``"2000000"``, "3,5" and "3.5" are ``"3.5"``, "-18" and "minus 18" keep their sign;
       a range of numerals is one answer, its two ends joined by an en dash: "1990-1995",
       "1990-95", the same with an en or em dash, "1990 to 1995", "from 1990 until 1995"
       and "between 1990 and 1995" give one key, which is not the key of "1990" (a period
       is not its start, and a vote cannot know which end a question wants: "When did the
       war end?" answered "1939-1945" must not support "1939"). Not ranges: descending
       ends ("3-2", a score), a negative end, three parts ("1990-05-12"), a scale word
       after the second end ("between 2 and 3 million" is ``"2"`` as before), ranges in
       number words;
       for "which year" / "when" the first number or range of numbers that can be a year;
    4. the first name in the reply: a run of capitalised words (joined by "da", "van"...;
       a comma or other punctuation ends it, the full stop after an initial does not) that
       are not words of the prompt, not sentence-opening filler words, not titles ("Dr.",
       "Sir") and not a unit after a number ("0°F"); place words at its end are dropped
       ("Pacific Ocean" is ``"pacific"``). A lone adjective of nationality names the noun
       after it ("Japanese yen" is ``"yen"``) unless that noun is a word of the prompt ("the
       Brazilian currency is the real" is ``"real"``). The key is the whole name:
       ``"william shakespeare"``; the vote (:func:`_same`) lets ``"shakespeare"`` vote with it;
    5. the first number, as in 3;
    6. the reply's remaining words (not in the prompt, not filler), joined by spaces
       ("carbon dioxide").

    An ordinal is a rank, never the cardinal (for "how many", "first" is not ``"1"``), and
    has one key however it is written: "1st", "first", "1ST" and "1th" are ``"1st"``,
    "twenty-first", "twenty first" and "21st" ``"21st"``. Digits with a suffix are always
    an ordinal; an ordinal word only where it is a rank: not after "a", "an", "per" or a
    number ("a third", "one tenth": fractions; "a second", "30 second": the unit), and
    "second" only after "the", a possessive ("its", "Poland's"), a verb of rank
    ("finished"), before "place" or "position", or as the whole reply ("I second that" and
    "wait a second" keep the word).

    Accents, case, possessives and punctuation do not count ("São Paulo's" is
    ``"sao paulo"``).
    """
    return " ".join(_answer(text, _Question.of(prompt))[1])


_Key = tuple[str, tuple[str, ...]]


def _same(a: _Key, b: _Key) -> bool:
    """Whether two answers (:func:`_answer`) are the same: equal words, or a name and the same
    name without its first words ("shakespeare" and "william shakespeare", "real" and
    "brazilian real"; not "julius caesar" and "augustus caesar"). An empty answer is none."""
    if not a[1] or not b[1]:
        return False
    if a[1] == b[1]:
        return True
    short, long = sorted((a, b), key=lambda k: len(k[1]))
    return long[0] == "name" and long[1][len(long[1]) - len(short[1]) :] == short[1]


class VoteMetric(Metric):
    """Share of samples whose answer equals the candidate's.

    ``key="exact"`` (the default) compares :func:`normalize_answer` of the whole reply;
    ``key="answer"`` compares :func:`answer_key`, the answer the reply gives whatever wraps
    it, with the words of ``prompt`` (set by the engine through :meth:`with_prompt`) not
    taken for the answer (the prompt is read once per vote, not once per sample). A name
    votes with the same name without its first words ("Shakespeare" with "William
    Shakespeare", not "Augustus Caesar" with "Julius Caesar"). A reply whose key is empty
    supports nothing.

    ``VoteMetric.normalize(text)`` is the exact key's normalisation (:func:`normalize_answer`).
    """

    normalize = staticmethod(normalize_answer)

    name: ClassVar[str] = "vote"
    granularity: ClassVar[Granularity] = "text"
    symmetric: ClassVar[bool] = True
    #: 2: the answer key reads whole names, scaled and signed numbers, years, and ends a name
    #: at punctuation (``key="exact"`` gives the same numbers as in version 1).
    #: 3: the answer key reads numbers with the reader ``ngram`` uses (``3,5`` is 3.5, not 35;
    #: ``2 millions`` is 2000000; ``two and three`` is 2, not 5; ``a million``, ``200万``,
    #: ``minus 18``); ``key="exact"`` is unchanged.
    #: 4: the answer key reads a range as one answer (``1990-1995``, the same with an en dash,
    #: ``1990 to 1995``, ``between 1990 and 1995`` are one key, not ``1990``) and an ordinal as a
    #: rank (``1st`` = ``first``, ``21st`` = ``twenty-first``; never the cardinal ``1``);
    #: ``key="exact"`` is unchanged.
    version: ClassVar[str] = "4"

    def __init__(self, *, key: Literal["exact", "answer"] = "exact", prompt: str | None = None):
        if key not in ("exact", "answer"):
            raise ConfigurationError(f"vote: key must be 'exact' or 'answer', not {key!r}")
        if prompt is not None and not isinstance(prompt, str):
            raise ConfigurationError("vote: prompt must be a string or None")
        self.mode = key
        self.prompt = prompt

    def settings(self) -> dict[str, SettingValue]:
        return {} if self.mode == "exact" else {"key": self.mode}

    def with_prompt(self, prompt: str | None) -> VoteMetric:
        """This metric for answers to ``prompt`` (the engine's prompt hook): with
        ``key="answer"`` the prompt's words are not taken for the answer; ``key="exact"``
        ignores the prompt (it compares whole replies)."""
        bound = copy.copy(self)  # keeps a subclass's own keys
        bound.prompt = prompt
        return bound

    def _question(self) -> _Question:
        """The prompt's words and kind, computed once per prompt (not once per sample)."""
        cached = getattr(self, "_cached", None)
        if cached is None or cached[0] != self.prompt:
            cached = (self.prompt, _Question.of(self.prompt))
            self._cached = cached
        return cached[1]

    def _same_matrix(self, a: Sequence[str], b: Sequence[str]) -> FloatArray:
        """1 where the reply ``a[i]`` gives the same answer as ``b[j]``, else 0."""
        if self.mode == "exact":
            na = np.array([normalize_answer(t) for t in a], dtype=object)
            nb = np.array([normalize_answer(t) for t in b], dtype=object)
            same: FloatArray = (na[:, None] == nb[None, :]).astype(np.float64)
            return same
        q = self._question()
        ka = [_answer(t, q) for t in a]
        kb = ka if a is b else [_answer(t, q) for t in b]
        out = np.zeros((len(ka), len(kb)), dtype=np.float64)
        for i, x in enumerate(ka):
            for j, y in enumerate(kb):
                out[i, j] = 1.0 if _same(x, y) else 0.0
        return out

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        return self._same_matrix([text[a:b] for a, b in spans], samples)

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        return self._same_matrix(texts, texts)
