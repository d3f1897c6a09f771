"""``ngram``: support from content words that the samples share with the text.

What the confidence of a span means, exactly
--------------------------------------------

1. **Units.** The text and every sample are lower-cased, accents are stripped, and split into
   words (runs of letters and digits; a number such as ``3.5`` or ``1,000`` is one word).
   Common English function words (:data:`STOPWORDS`) are dropped and the rest are reduced to
   their Porter stem (``studied``/``studies`` meet, ``wrote``/``written`` do not). Negations
   (:data:`NEGATIONS`: ``not``, ``never``, ``no``...) are *not* function words here: "did not
   receive" has the unit ``not`` that "received" lacks, as "didn't" leaves ``didn``. A span's
   *units* are its distinct content stems, plus, with ``n=2``, its pairs of adjacent content
   stems. A span with no content word (``"He was."``) uses all its words (no pairs) instead.
2. **Unit support.** The support of a unit is the (weighted) share of samples that contain it
   anywhere.
3. **Span support.** A false sentence is usually false in one or two words (a wrong year, a
   wrong place), so a span is as strong as its weakest units: the span term is the mean of its
   ``lowest`` least-supported units (all of them if it has fewer).
4. **Text context.** When the samples disagree with the text as a whole, the model that wrote
   it probably did not know the subject, and even its well-supported sentences are doubtful.
   The text term is the mean support of all units of all spans of the text.
5. **Confidence** ``= (1 - context) * span term + context * text term``, in [0, 1]. It is 1
   exactly when every sample contains every unit of the text, and 0 when no sample contains
   any. With no samples every confidence is 0.

Because a unit's support pools all samples before the weakest units are picked, this metric
overrides :meth:`Metric.evaluate`: the confidence is *not* the mean of the per-sample support
matrix. That matrix (``support``) holds, for each span and sample, the share of the span's
units that the sample contains, which is what ``Span.support`` reports and what
:meth:`NgramMetric.agreement` uses for whole texts.

The defaults (``n=1, lowest=2, context=0.5``) were chosen on the WikiBio benchmark with
half-splits of the passages; see ``docs/metrics/ngram.md`` for the figures.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np
from nltk.stem.porter import PorterStemmer

from ensemble._validate import check_int, check_number
from ensemble.errors import ConfigurationError
from ensemble.metrics.base import FloatArray, Granularity, Metric, MetricScores, weighted_mean
from ensemble.types import SettingValue

__all__ = ["NEGATIONS", "STOPWORDS", "NgramMetric", "content_units"]

#: English function words that carry no fact on their own (our own list; no NLTK data needed).
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above across after afterwards again against all almost along already also although
    always am among an and another any anyhow anyone anything anyway anywhere are around as at
    be became because become becomes been before beforehand being below beside besides between
    beyond both but by can could did do does doing done down during each either else
    elsewhere enough etc even ever every everyone everything everywhere except few for former
    formerly from further had has have having he hence her here hereafter hereby herein hers
    herself him himself his how however i if in indeed into is it its itself just least less
    may me meanwhile might more moreover most mostly much must my myself namely
    nevertheless next now of off often on once only
    onto or other others otherwise our ours ourselves out over own per perhaps rather same
    seem seemed seeming seems several she should since so some somehow someone something
    sometime sometimes somewhere still such than that the their theirs them themselves then
    thence there thereafter thereby therefore therein thereupon these they this those though
    through throughout thru thus to together too toward towards under until unto up upon us
    very via was we were what whatever when whence whenever where whereafter whereas whereby
    wherein whereupon wherever whether which while whither who whoever whole whom whose why
    will with within would yet you your yours yourself yourselves
    s t d ll m re ve
    """.split()
)

#: Words that turn a claim into its opposite: content words for this metric, never stopwords
#: (version 1 of the metric dropped them, so "did not receive" was fully supported by
#: "received").
NEGATIONS: frozenset[str] = frozenset(
    "cannot neither never no nobody none noone nor not nothing nowhere without".split()
)

_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")
_STEMMER = PorterStemmer()


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    # The stemmer is pure and slow (~20 µs a word); words repeat a lot across samples.
    return str(_STEMMER.stem(word))


@lru_cache(maxsize=1 << 12)
def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> list[str]:
    folded = _fold(text) if not text.isascii() else text.lower()
    return _WORD.findall(folded)


class _Analyzer:
    """Turns texts into units, with the metric's settings."""

    __slots__ = ("n", "stem", "stopwords")

    def __init__(self, n: int, stem: bool, stopwords: bool) -> None:
        self.n = n
        self.stem = stem
        self.stopwords = stopwords

    def _norm(self, words: list[str]) -> list[str]:
        return [_stem(w) for w in words] if self.stem else words

    def _content(self, words: list[str]) -> list[str]:
        if not self.stopwords:
            return words
        return [w for w in words if w not in STOPWORDS]

    def span_units(self, text: str) -> list[str]:
        """Distinct units of a span, in order of first appearance."""
        words = _words(text)
        content = self._content(words)
        stems = self._norm(content or words)
        units = list(dict.fromkeys(stems))
        if self.n == 2 and content:
            units.extend(dict.fromkeys(f"{a} {b}" for a, b in itertools.pairwise(stems)))
        return units

    def evidence(self, text: str) -> set[str]:
        """Every unit a sample can support: all its words (stemmed) and, with ``n=2``, its
        adjacent content pairs."""
        words = _words(text)
        out = set(self._norm(list(set(words))))
        if self.n == 2:
            stems = self._norm(self._content(words))
            out.update(f"{a} {b}" for a, b in itertools.pairwise(stems))
        return out


def content_units(text: str, *, n: int = 1, stem: bool = True, stopwords: bool = True) -> list[str]:
    """The units of ``text`` that :class:`NgramMetric` checks, e.g. for explaining a score.

    >>> content_units("He was born in London in 1820.")
    ['born', 'london', '1820']
    """
    return _Analyzer(n, stem, stopwords).span_units(text)


class NgramMetric(Metric):
    """Share of samples containing a span's least-supported content words, blended with how
    well the samples support the whole text. See the module docstring for the exact rule."""

    name: ClassVar[str] = "ngram"
    granularity: ClassVar[Granularity] = "sentence"
    symmetric: ClassVar[bool] = False
    version: ClassVar[str] = "2"  # 2: negations are content words

    def __init__(
        self,
        *,
        n: int = 1,
        lowest: int = 2,
        context: float = 0.5,
        stem: bool = True,
        stopwords: bool = True,
    ) -> None:
        if check_int("n", n) not in (1, 2):
            raise ConfigurationError(f"n must be 1 or 2, not {n!r}")
        self.n = n
        self.lowest = check_int("lowest", lowest, minimum=1)
        self.context = check_number("context", context, low=0.0, high=1.0)
        self.stem = bool(stem)
        self.stopwords = bool(stopwords)
        self._analyzer = _Analyzer(n, self.stem, self.stopwords)

    def settings(self) -> dict[str, SettingValue]:
        return {
            "n": self.n,
            "lowest": self.lowest,
            "context": self.context,
            "stem": self.stem,
            "stopwords": self.stopwords,
        }

    # --- the shared computation ------------------------------------------------------------

    def _units_and_presence(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Unit ids per span, and a (samples x vocabulary) 0/1 matrix of which sample has which."""
        vocab: dict[str, int] = {}
        ids = [
            np.array(
                [vocab.setdefault(u, len(vocab)) for u in self._analyzer.span_units(text[a:b])],
                dtype=np.intp,
            )
            for a, b in spans
        ]
        presence = np.zeros((len(samples), len(vocab)), dtype=np.float64)
        for j, sample in enumerate(samples):
            hit = [vocab[u] for u in self._analyzer.evidence(sample) if u in vocab]
            presence[j, hit] = 1.0
        return ids, presence

    @staticmethod
    def _coverage(ids: list[np.ndarray], presence: np.ndarray) -> FloatArray:
        """Share of each span's units found in each sample; 1 for a span with no units."""
        n_spans, n_samples = len(ids), presence.shape[0]
        incidence = np.zeros((n_spans, presence.shape[1]), dtype=np.float64)
        sizes = np.array([len(i) for i in ids], dtype=np.float64)
        for k, i in enumerate(ids):
            incidence[k, i] = 1.0
        hits = incidence @ presence.T if n_samples else np.zeros((n_spans, 0))
        out = np.ones((n_spans, n_samples), dtype=np.float64)
        has = sizes > 0
        out[has] = hits[has] / sizes[has, None]
        return out

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        """Share of each span's units that each sample contains (1 for a span with none)."""
        ids, presence = self._units_and_presence(text, spans, samples)
        return np.clip(self._coverage(ids, presence), 0.0, 1.0)

    def evaluate(
        self,
        text: str,
        spans: Sequence[tuple[int, int]],
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> MetricScores:
        """Per-sample coverage, and the pooled confidence described in the module docstring."""
        ids, presence = self._units_and_presence(text, spans, samples)
        coverage = np.clip(self._coverage(ids, presence), 0.0, 1.0)
        n_spans = len(ids)
        if len(samples) == 0 or n_spans == 0:
            # No evidence: the base class's rule (all zeros); also validates weights.
            return MetricScores(coverage, weighted_mean(coverage, weights))
        # Unit support: weighted share of samples containing the unit (weights validated by
        # weighted_mean, which computes exactly this on the presence matrix).
        unit = weighted_mean(presence.T, weights)
        sizes = np.array([len(i) for i in ids], dtype=np.intp)
        width = max(int(sizes.max()), 1)
        table = np.full((n_spans, width), np.inf)
        rows = np.repeat(np.arange(n_spans), sizes)
        cols = np.concatenate([np.arange(s) for s in sizes]) if sizes.sum() else rows
        flat = unit[np.concatenate(ids)] if sizes.sum() else np.zeros(0)
        table[rows, cols] = flat
        k = min(self.lowest, width)
        low = np.sort(table, axis=1)[:, :k]
        finite = np.isfinite(low)
        count = finite.sum(axis=1)
        span_term = np.where(
            count > 0, np.where(finite, low, 0.0).sum(axis=1) / np.maximum(count, 1), 1.0
        )
        text_term = float(flat.mean()) if flat.size else 1.0
        conf = (1.0 - self.context) * span_term + self.context * text_term
        return MetricScores(coverage, np.clip(conf, 0.0, 1.0))

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        """``A[i, j]``: share of the units of ``texts[i]`` (as one span) that ``texts[j]`` has.

        The diagonal is 1. A text with no words agrees fully with another such text and not at
        all with anything else. Each text is analysed once, so this is cheap for many samples.
        """
        n = len(texts)
        vocab: dict[str, int] = {}
        ids = [
            np.array(
                [vocab.setdefault(u, len(vocab)) for u in self._analyzer.span_units(t)],
                dtype=np.intp,
            )
            for t in texts
        ]
        presence = np.zeros((n, len(vocab)), dtype=np.float64)
        for j, t in enumerate(texts):
            hit = [vocab[u] for u in self._analyzer.evidence(t) if u in vocab]
            presence[j, hit] = 1.0
        out = self._coverage(ids, presence)
        empty = np.array([len(i) == 0 for i in ids])
        out[np.ix_(empty, ~empty)] = 0.0
        np.fill_diagonal(out, 1.0)
        return np.clip(out, 0.0, 1.0)
