"""``vote``: exact-answer voting for short answers, after normalisation.

The whole answer is one span. A sample supports it when both normalise to the same string, so
the confidence is the share of the other samples that give the same answer, and the consensus
is the most common answer (ties to the lexicographically smallest).

Normalisation (:func:`normalize_answer`): Unicode compatibility form without accents, case
folded, framing such as "The answer is ...", "Answer:" or "Final answer -" removed,
thousands separators dropped, punctuation and markup turned into spaces, the articles "a",
"an" and "the" removed, white space collapsed. "The answer is: Paris." and "paris" vote
together; "Paris, France" does not vote with "Paris".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ensemble.metrics.base import FloatArray, Granularity, Metric

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


class VoteMetric(Metric):
    """Share of samples whose normalised answer equals the candidate's.

    ``VoteMetric.normalize(text)`` is the normalisation it votes on (:func:`normalize_answer`).
    """

    normalize = staticmethod(normalize_answer)

    name: ClassVar[str] = "vote"
    granularity: ClassVar[Granularity] = "text"
    symmetric: ClassVar[bool] = True

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        keys = [normalize_answer(s) for s in samples]
        out = np.zeros((len(spans), len(samples)), dtype=np.float64)
        for k, (a, b) in enumerate(spans):
            mine = normalize_answer(text[a:b])
            out[k] = [1.0 if key == mine else 0.0 for key in keys]
        return out

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        keys = np.array([normalize_answer(t) for t in texts], dtype=object)
        out: FloatArray = (keys[:, None] == keys[None, :]).astype(np.float64)
        return out
