"""The offline default backend of ``entailment``: similarity plus contradiction cues.

**This is an approximation of entailment, not an NLI model.** It needs no download and no key:
the packaged all-MiniLM-L6-v2 embeddings (extra ``[similarity]``) say whether a sample talks
about what a span says, and three surface cues catch what a similarity model misses, because
"born in 1820" and "born in 1902" embed almost alike:

- **values**: the span's numbers (``1,820`` = ``1820``; ``3.5`` stays whole) and names
  (capitalised words that are not common function words, e.g. ``London``, ``March``,
  ``Oxford``), each looked for anywhere in the sample (case and accents ignored);
- **a competing value**: the sample's sentence closest to the span holds a number (for a missing
  number) or a name (for a missing name) that the span does not;
- **negation**: exactly one of the span and that closest sentence is negated (``not``,
  ``never``, ``no``, ``n't``, ...).

The verdict for a span and a sample, with ``s`` the highest cosine similarity between the span
and a sentence of the sample, ``t = clip((s - 0.3) / 0.6, 0, 1)`` (0 for unrelated sentences,
which MiniLM scores below about 0.3; 1 for restatements, about 0.9 and above), and ``f`` the
share of the span's values (numbers and names) found in the sample (1 when it has none):

=============================================  =========  ==============  ===============
case                                           P(entail)  P(contradict)   P(neutral)
=============================================  =========  ==============  ===============
no competing value, no negation mismatch       t * f      0               the rest
a value missing, and a competing value         t * f      t * (1 - f)     the rest
every value found, negation mismatch           0          t               the rest
=============================================  =========  ==============  ===============

Under the metric's ``max(0, P(e) - P(c))`` the support is ``t * f`` when nothing competes (a
sample that restates the span but holds only half of its values gives half the support),
``t * (2f - 1)`` clipped at 0 when the closest sentence offers
another value instead, and 0 on a negation mismatch. Known blind spots: numbers written as
words, wrong common nouns ("actor" for "singer"), wrong relations between right names, and
paraphrased negation ("failed to"). The constants (0.3 and 0.9) are round; the rule has no
fitted weights. It was checked on both halves of the WikiBio dev passages; see
``docs/metrics/entailment.md`` for the figures.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np

from ensemble.errors import ConfigurationError
from ensemble.metrics._embed import MODEL_ID, EmbeddingCache, check_available
from ensemble.metrics.base import FloatArray
from ensemble.metrics.entailment import (
    CONTRADICT,
    ENTAIL,
    NEUTRAL,
    BatchedEntailmentBackend,
)
from ensemble.metrics.ngram import STOPWORDS
from ensemble.metrics.semantic import sentence_similarities
from ensemble.types import SettingValue

__all__ = ["SimilarityBackend", "Values", "values"]

#: Default cosines at or below which a sentence is unrelated, and at or above which it restates.
LOW, HIGH = 0.3, 0.9

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W_]+")
_NEGATION = re.compile(
    r"\b(?:not|no|never|neither|nor|none|nobody|nothing|nowhere|without|cannot)\b|n['\u2019]t\b",
    re.IGNORECASE,
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Values:
    """The checkable content of a text: numbers, names, all words, and whether it negates."""

    __slots__ = ("names", "negated", "numbers", "words")

    def __init__(self, text: str) -> None:
        folded = _fold(text)
        self.numbers = frozenset(n.replace(",", "") for n in _NUMBER.findall(folded))
        words = _WORD.findall(folded)
        self.words = frozenset(w.lower() for w in words)
        self.names = frozenset(
            w.lower()
            for w in words
            if w[0].isupper() and not w[0].isdigit() and w.lower() not in STOPWORDS
        )
        self.negated = _NEGATION.search(folded) is not None


@lru_cache(maxsize=1 << 14)
def values(text: str) -> Values:
    """:class:`Values` of ``text`` (cached: samples and spans repeat across calls)."""
    return Values(text)


def verdict(
    span: Values,
    sample: Values,
    closest: Values | None,
    similarity: float,
    low: float = LOW,
    high: float = HIGH,
) -> tuple[float, float, float]:
    """``(P(entail), P(neutral), P(contradict))`` by the table in the module docstring."""
    if closest is None:  # a blank sample says nothing
        return (0.0, 1.0, 0.0)
    t = min(max((similarity - low) / (high - low), 0.0), 1.0)
    missing_numbers = span.numbers - sample.numbers
    missing_names = span.names - sample.words
    n_values = len(span.numbers) + len(span.names)
    if missing_numbers or missing_names:
        found = 1.0 - (len(missing_numbers) + len(missing_names)) / n_values
        competing = bool(missing_numbers and closest.numbers - span.numbers) or bool(
            missing_names and closest.names - span.names
        )
        entail = t * found
        contradict = t * (1.0 - found) if competing else 0.0
        return (entail, 1.0 - entail - contradict, contradict)
    if span.negated != closest.negated:
        return (0.0, 1.0 - t, t)
    return (t, 1.0 - t, 0.0)


class SimilarityBackend(BatchedEntailmentBackend):
    """Approximate entailment from MiniLM similarity and contradiction cues (offline).

    See the module docstring for the exact rule; ``low`` and ``high`` are the cosines that map
    to ``t = 0`` and ``t = 1``. All samples of one call go through one batched embedding pass.
    """

    name: ClassVar[str] = "similarity"
    # 2: support scales with the share of the span's numbers and names found (was: all or 0).
    version: ClassVar[str] = "2"

    def __init__(self, *, low: float = LOW, high: float = HIGH) -> None:
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
            raise ConfigurationError(f"need numbers low < high, not low={low!r}, high={high!r}")
        check_available()  # a missing extra fails here, naming the install command
        self.low = float(low)
        self.high = float(high)
        self._cache = EmbeddingCache()

    def settings(self) -> dict[str, SettingValue]:
        return {"model": MODEL_ID, "low": self.low, "high": self.high}

    def judge_samples(
        self, spans: Sequence[str], samples: Sequence[str], *, text: str | None = None
    ) -> FloatArray:
        out = np.zeros((len(spans), len(samples), 3), dtype=np.float64)
        if not spans or not samples:
            return out
        sentences, sims = sentence_similarities(spans, samples, cache=self._cache)
        span_values = [values(s) for s in spans]
        for j, sample in enumerate(samples):
            sample_values = values(sample)
            sim = sims[j]
            for k, sv in enumerate(span_values):
                if sim.shape[1] == 0:
                    closest, s = None, 0.0
                else:
                    best = int(sim[k].argmax())
                    closest, s = values(sentences[j][best]), float(sim[k, best])
                p = verdict(sv, sample_values, closest, s, self.low, self.high)
                out[k, j, ENTAIL], out[k, j, NEUTRAL], out[k, j, CONTRADICT] = p
        return out
