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
for ``8``; "Yes, it is." and "yes" for ``yes``. When the prompt is known (the engine passes it
through :meth:`VoteMetric.with_prompt`), words of the prompt are not taken for the answer.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from ensemble.errors import ConfigurationError
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
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
#: Words that never name the answer: function words and the verbs that wrap one.
_FILLER = frozenset(
    """a an the of in on at to for by from with and or but as is are was were be been being
    it its it's this that these those there their his her he she they them we you i my our
    your which who whom whose what when where why how answer called named known also
    approximately about around roughly exactly just only very most more some any each every
    has have had do does did can could will would should may might must so then than
    written wrote painted composed created made invented discovered located found used""".split()
)
#: Trailing words of a name that only say what kind of place it is.
_GENERIC = frozenset(
    "ocean sea river lake city mountains mountain mount desert falls trench island islands "
    "empire wall".split()
)
_DEMONYM = re.compile(r"(?:ese|ian|an|ish|ic|i|ss)$")
#: Lower-case words that join the parts of a name ("Leonardo da Vinci", "Rio de Janeiro").
_CONNECTORS = frozenset({"da", "de", "del", "der", "di", "du", "la", "le", "van", "von", "y"})


def _fold(text: str) -> str:
    s = unicodedata.normalize("NFKD", text)
    return "".join(c for c in s if not unicodedata.combining(c)).casefold()


def _number(words: Sequence[str]) -> str | None:
    """The first number written in ``words`` (digits, or number words up to the
    hundreds: "two hundred and six" is 206), as a string of digits."""
    i = 0
    while i < len(words):
        w = words[i].replace(",", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", w):
            return w
        total, seen = 0, False
        while i < len(words):
            parts = words[i].split("-")
            if all(p in _UNITS or p in _TENS for p in parts):
                total += sum(_UNITS.get(p, _TENS.get(p, 0)) for p in parts)
                seen = True
            elif words[i] == "hundred" and seen:
                total *= 100
            elif words[i] == "hundred" and not seen:
                total, seen = 100, True
            elif words[i] == "and" and seen:
                pass
            else:
                break
            i += 1
        if seen:
            return str(total)
        i += 1
    return None


def answer_key(text: str, prompt: str | None = None) -> str:
    """The answer a short reply gives, as a vote key (``""`` when it gives none).

    In order, the first that applies:

    1. a yes/no question (the prompt starts with "is", "does", "can"...; without a prompt,
       any reply) answered with a first word of yes or no: ``"yes"`` / ``"no"``;
    2. a question asking for a number ("how many", "which year", "when"...): the first
       number in the reply outside the prompt's words, in digits ("eight" is ``"8"``);
    3. the first name in the reply (a run of capitalised words, joined by "da", "van"...)
       that is not a word of the prompt and not a sentence-opening filler word: its last
       word ("William Shakespeare" and "Shakespeare" are ``"shakespeare"``);
    4. the first number, as in 2;
    5. the reply's remaining words (not in the prompt, not filler), joined by spaces
       ("carbon dioxide").

    Accents, case and punctuation do not count ("São Paulo" is ``"paulo"``).
    """
    toks = [(m.group(), _fold(m.group())) for m in _WORD.finditer(text)]
    words = [f for _, f in toks]
    if not words:
        return ""
    pset = {_fold(m.group()) for m in _WORD.finditer(prompt or "")}
    if prompt is None or _YES_NO_QUESTION.match(prompt):
        if words[0] in _YES:
            return "yes"
        if words[0] in _NO and not (len(words) > 1 and words[1] in _NO - {"no"}):
            return "no"
    fresh = [w for w in words if w not in pset]
    if prompt is not None and _NUMBER_QUESTION.search(prompt):
        n = _number(fresh)
        if n is not None:
            return n
    # Names: capitalised words not in the prompt.
    run: list[str] = []
    after = ""
    for raw, folded in toks:
        capital = raw[:1].isupper()
        if capital and folded not in pset and folded not in _FILLER:
            run.append(folded)
        elif run and folded in _CONNECTORS:
            continue
        elif run:
            after = folded if folded not in pset else ""
            break
    if run:
        while len(run) > 1 and run[-1] in _GENERIC:
            run.pop()  # "Pacific Ocean" is "pacific", "Vatican City" is "vatican"
        if len(run) == 1 and _DEMONYM.search(run[0]) and after and after not in _FILLER:
            return after  # "Japanese yen", "Swiss franc": the noun is the answer
        return run[-1]
    n = _number(fresh)
    if n is not None:
        return n
    rest = [w for w in fresh if w not in _FILLER]
    return " ".join(rest)


class VoteMetric(Metric):
    """Share of samples whose answer equals the candidate's.

    ``key="exact"`` (the default) compares :func:`normalize_answer` of the whole reply;
    ``key="answer"`` compares :func:`answer_key`, the answer the reply gives whatever wraps
    it, with the words of ``prompt`` (set by the engine through :meth:`with_prompt`) not
    taken for the answer. A reply whose key is empty supports nothing.

    ``VoteMetric.normalize(text)`` is the exact key's normalisation (:func:`normalize_answer`).
    """

    normalize = staticmethod(normalize_answer)

    name: ClassVar[str] = "vote"
    granularity: ClassVar[Granularity] = "text"
    symmetric: ClassVar[bool] = True

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

    def _key(self, text: str) -> str:
        if self.mode == "answer":
            return answer_key(text, self.prompt)
        return normalize_answer(text)

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        keys = [self._key(s) for s in samples]
        out = np.zeros((len(spans), len(samples)), dtype=np.float64)
        for k, (a, b) in enumerate(spans):
            mine = self._key(text[a:b])
            out[k] = [1.0 if key == mine and (key or self.mode == "exact") else 0.0 for key in keys]
        return out

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        keys = np.array([self._key(t) for t in texts], dtype=object)
        out: FloatArray = (keys[:, None] == keys[None, :]).astype(np.float64)
        if self.mode == "answer":
            empty = keys == ""
            out[empty, :] = 0.0
            out[:, empty] = 0.0
        return out
