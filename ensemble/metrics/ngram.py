"""``ngram``: support from content words that the samples share with the text.

What the confidence of a span means, exactly
--------------------------------------------

1. **Units.** The text and every sample are lower-cased, accents are stripped, and split into
   words (runs of letters and digits). Numbers are compared as numbers: numerals and number
   words become one canonical number with any scale word after them (``2,000`` = ``2000``,
   ``two million`` = ``2 million`` = ``2000000``, ``two hundred and six`` = ``206``,
   ``3,5`` = ``3.5``, ``-18`` = ``minus 18``; ``2.1 million`` is not ``2 million``, ``1871``
   is not ``1817``), read by the reader :class:`~ensemble.metrics.vote.VoteMetric` uses too
   (:mod:`ensemble.metrics._numbers`; a lone ``one`` is left a word here, as it is mostly a
   pronoun). Runs of Chinese or Japanese characters, written without spaces,
   become their character pairs (``巴黎是`` -> ``巴黎``, ``黎是``).
   Common English function words (:data:`STOPWORDS`) are dropped and the rest are reduced to
   their Porter stem (``studied``/``studies`` meet, ``wrote``/``written`` do not). Negations
   (:data:`NEGATIONS`: ``not``, ``never``, ``no``...) are *not* function words here: "did not
   receive" has the unit ``not`` that "received" lacks, as "didn't" leaves ``didn``. A span's
   *units* are its distinct content stems, plus, with ``n=2``, its pairs of adjacent content
   stems. A span with no content word (``"He was."``) uses all its words (no pairs) instead.
   Its *critical* units are its numbers and, with ``names=True``, its capitalised words after
   the first (:func:`critical_units`): the facts that hallucinate.
2. **Unit support.** The support of a unit is the (weighted) share of samples that contain it
   anywhere.
3. **Span support.** A false sentence is usually false in one or two words (a wrong year, a
   wrong place), so a span is as strong as its weakest units: the span term is the mean of its
   ``lowest`` least-supported units (all of them if it has fewer), each critical unit counted
   ``critical`` times (so with the defaults a number no sample states makes the span term 0).
4. **Text context.** When the samples disagree with the text as a whole, the model that wrote
   it probably did not know the subject, and even its well-supported sentences are doubtful.
   The text term is the mean support of all units of all spans of the text (each once).
5. **Sentence-local evidence.** Facts a sample states *together* count more: for each sample,
   the support of the span by the sample's best-matching sentence (the per-sample support
   below, on that one sentence), raised to the power ``power`` (with the default 3, a
   sentence that states half of the span counts 1/8, one that states all of it counts 1:
   a sample supports a sentence by restating it, not by sharing a few of its words); their
   (weighted) mean replaces ``local`` of the span term, and its mean over all spans replaces
   ``local`` of the text term.
6. **Confidence** ``= (1 - context) * span term + context * text term``, in [0, 1]. It is 1
   exactly when every sample contains every unit of the text in one sentence, and 0 when no
   sample contains any. With no samples every confidence is 0.

Because a unit's support pools all samples before the weakest units are picked, this metric
overrides :meth:`Metric.evaluate`: the confidence is *not* the mean of the per-sample support
matrix. That matrix (``support``) holds, for each span and sample, the share of the span's
units that the sample contains, capped by the share of its critical units the sample contains
(a sample that lacks the span's only number supports it 0), which is what ``Span.support``
reports and what :meth:`NgramMetric.agreement` uses for whole texts.

The defaults (``n=1, lowest=2, context=0.5, critical=2, names=False, local=0.75, power=3``) were
chosen on the WikiBio benchmark by cross-validation over its two halves of passages (both
halves pick ``local=0.75, power=3``); see ``docs/metrics/ngram.md`` for the figures and the
languages supported.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import ClassVar

import numpy as np

from ensemble import segment
from ensemble._validate import check_int, check_number
from ensemble.errors import ConfigurationError
from ensemble.metrics import _numbers
from ensemble.metrics._stem import porter_stemmer
from ensemble.metrics.base import FloatArray, Granularity, Metric, MetricScores, weighted_mean
from ensemble.types import SettingValue

__all__ = ["NEGATIONS", "STOPWORDS", "NgramMetric", "content_units", "critical_units"]

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

#: Scripts written without spaces between words (Han, Hiragana, Katakana): their text is
#: compared by character pairs (bigrams) instead of words.
_CJK = _numbers.CJK
#: A numeral keeps a minus sign that does not follow a letter, a digit or a dash
#: (:func:`ensemble.metrics._numbers.minus_before`: ``-18``, not ``1990-1995``).
_WORD = re.compile(
    rf"[{_CJK}]+"
    r"|[\-\u2212](?<![^\W_][\-\u2212])(?<![\-\u2212][\-\u2212])\d+(?:[.,]\d+)*"
    rf"|\d+(?:[.,]\d+)+|[^\W_{_CJK}]+"
)
_NUMBER = re.compile(r"[\-\u2212]?\d+(?:[.,]\d+)*")
_CJK_RUN = re.compile(rf"[{_CJK}]+")

_STEMMER = porter_stemmer()


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    # The stemmer is pure and slow (~20 µs a word); words repeat a lot across samples.
    return str(_STEMMER.stem(word))


@lru_cache(maxsize=1 << 12)
def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


#: A word of a text: its lower-cased (or canonical) form and its kind: "word", "number",
#: "name" (capitalised, not first) or "cjk" (a character pair).
_Word = tuple[str, str]


# What a raw token is (cached: tokens repeat a lot across samples): a plain word, a run of
# CJK characters, a numeral, or a word that can open a number ("two", "a", "minus").
_PLAIN, _RUN, _NUM, _OPENER = range(4)
_OPENERS = frozenset({*_numbers.UNITS, *_numbers.TENS, "minus", "a"})


@lru_cache(maxsize=1 << 16)
def _token(w: str) -> tuple[str, int]:
    if _CJK_RUN.fullmatch(w):
        return w, _RUN
    low = w.lower()
    if _NUMBER.fullmatch(w):
        return low, _NUM
    return low, _OPENER if low in _OPENERS else _PLAIN


_CJK_SCALE = re.compile(f"[{''.join(_numbers.CJK_SCALES)}]")


def _raw_words(text: str) -> list[str]:
    """The raw words of (folded) ``text``: a numeral keeps a minus sign before it (``-18``),
    and a Chinese or Japanese scale character after a number is a word of its own
    (``200万人`` -> ``200``, ``万``, ``人``)."""
    raw: list[str] = _WORD.findall(text)
    return raw if text.isascii() or not _CJK_SCALE.search(text) else _numbers.split_scales(raw)


def _read(raw: list[str], i: int) -> tuple[Decimal, int] | None:
    """The number written at ``raw[i]`` (:func:`ensemble.metrics._numbers.read_number` on the
    lower-cased words from ``i``, a few at a time: a number is short), and the index after it."""
    size = 8
    while True:
        window = [_token(w)[0] for w in raw[i : i + size]]
        read = _numbers.read_number(window, bare_one=False)
        # the reader looks up to three words past the last one it takes ("and twenty five")
        if read is None or read[1] + 3 < len(window) or i + size >= len(raw):
            return None if read is None else (read[0], i + read[1])
        size *= 4


@lru_cache(maxsize=1 << 14)
def _numeral_unit(w: str) -> str:
    """The unit of a numeral on its own: its canonical value, or the numeral as written when
    it is not one quantity (``1.5.2020``)."""
    value = _numbers.numeral(w)
    return w if value is None else _numbers.canonical(value)


def _words(text: str) -> list[_Word]:
    """The words of ``text``: numerals and number words as canonical numbers
    (:mod:`ensemble.metrics._numbers`), runs of CJK characters as character pairs, capitalised
    words after the first as possible names."""
    folded = text if text.isascii() else _fold(text)
    raw = _raw_words(folded)
    out: list[_Word] = []
    i = 0
    n = len(raw)
    while i < n:
        w = raw[i]
        low, code = _token(w)
        i += 1
        if code == _NUM and (i == n or _token(raw[i])[0] not in _numbers.SCALES):
            out.append((_numeral_unit(low), "number"))  # most numbers: one numeral
            continue
        if code == _NUM or (
            code == _OPENER and (low != "a" or (i < n and _token(raw[i])[0] in _numbers.SCALES))
        ):
            read = _read(raw, i - 1)
            if read is not None:
                out.append((_numbers.canonical(read[0]), "number"))
                i = read[1]
                continue
            if code == _NUM:  # 1.5.2020 million: a number, though not one quantity
                out.append((_numeral_unit(low), "number"))
                continue
        if code == _RUN:
            if len(w) == 1:
                out.append((w, "cjk"))
            else:
                out.extend((w[k : k + 2], "cjk") for k in range(len(w) - 1))
        elif out and w[0].isupper() and low not in STOPWORDS:
            out.append((low, "name"))
        else:
            out.append((low, "word"))
    return out


class _Analyzer:
    """Turns texts into units, with the metric's settings."""

    __slots__ = ("n", "names", "stem", "stopwords")

    def __init__(self, n: int, stem: bool, stopwords: bool, names: bool = True) -> None:
        self.n = n
        self.stem = stem
        self.stopwords = stopwords
        self.names = names

    def _norm(self, w: _Word) -> str:
        return _stem(w[0]) if self.stem and w[1] in ("word", "name") else w[0]

    def _content(self, words: list[_Word]) -> list[_Word]:
        if not self.stopwords:
            return words
        return [w for w in words if w[1] != "word" or w[0] not in STOPWORDS]

    def span_units(self, text: str) -> tuple[list[str], set[str]]:
        """Distinct units of a span, in order of first appearance, and the *critical* ones:
        its numbers and (with ``names``) its capitalised words after the first."""
        words = _words(text)
        filtered = self._content(words)
        content = filtered or words
        stems = [self._norm(w) for w in content]
        units = list(dict.fromkeys(stems))
        critical = {
            u
            for u, w in zip(stems, content, strict=True)
            if w[1] == "number" or (self.names and w[1] == "name")
        }
        if self.n == 2 and filtered:
            units.extend(dict.fromkeys(f"{a} {b}" for a, b in itertools.pairwise(stems)))
        return units, critical

    def evidence(self, text: str, keep: Callable[[str], bool] | None = None) -> set[str]:
        """Every unit a sample can support: all its words (stemmed) and, with ``n=2``, its
        adjacent content pairs. ``keep`` (``n=1`` only) skips words whose stem cannot be one
        of the units looked for (see :func:`_matchable`), which saves stemming them."""
        words = _words(text)
        if self.stem and keep is not None and self.n == 1:
            out = {
                _stem(w) if k in ("word", "name") else w
                for w, k in words
                if k not in ("word", "name") or keep(w)
            }
        elif self.stem:
            out = {_stem(w) if k in ("word", "name") else w for w, k in words}
        else:
            out = {w for w, _ in words}
        if self.n == 2:
            stems = [self._norm(w) for w in self._content(words)]
            out.update(f"{a} {b}" for a, b in itertools.pairwise(stems))
        return out


#: Words whose Porter stem (NLTK's irregular forms) does not start with their first two letters.
_IRREGULAR = frozenset(["dying", "lying", "tying"])


def _matchable(vocab: dict[str, int]) -> Callable[[str], bool]:
    """Whether a word's stem can be one of the units of ``vocab``. Porter's stemmer only
    rewrites the end of a word and keeps at least two letters of a longer word, so the stem
    starts with the word's first two letters (first letter, for a one-letter stem) -- except
    for the irregular forms in :data:`_IRREGULAR`. A word that fails this cannot match."""
    two = frozenset(u[:2] for u in vocab)
    one = frozenset(u for u in vocab if len(u) == 1)
    return lambda w: w[:2] in two or w[:1] in one or w in _IRREGULAR


def content_units(text: str, *, n: int = 1, stem: bool = True, stopwords: bool = True) -> list[str]:
    """The units of ``text`` that :class:`NgramMetric` checks, e.g. for explaining a score.

    >>> content_units("He was born in London in 1820.")
    ['born', 'london', '1820']
    >>> content_units("It has two million people.")
    ['2000000', 'peopl']
    """
    return _Analyzer(n, stem, stopwords).span_units(text)[0]


def critical_units(text: str, *, names: bool = False) -> list[str]:
    """The units of ``text`` that :class:`NgramMetric` treats as critical: its numbers and
    (with ``names``) its capitalised words after the first.

    >>> critical_units("Paris has 2,000 bridges over the Seine.", names=True)
    ['2000', 'sein']
    """
    units, critical = _Analyzer(1, True, True, names).span_units(text)
    return [u for u in units if u in critical]


class NgramMetric(Metric):
    """Share of samples containing a span's least-supported content words (its numbers and
    names counted ``critical`` times), blended with how well the samples support the whole
    text. See the module docstring for the exact rule."""

    name: ClassVar[str] = "ngram"
    granularity: ClassVar[Granularity] = "sentence"
    symmetric: ClassVar[bool] = False
    # 2: negations are content words; 3: numbers compared as numbers, numbers and names
    # critical, CJK character pairs, new sentence splitting; 4: the best-sentence support is
    # raised to `power` (default 3), and `local` is 0.75; 5: numbers read by the reader `vote`
    # shares ("two hundred and six" is 206, "-18" keeps its sign, long numerals exact)
    version: ClassVar[str] = "5"

    def __init__(
        self,
        *,
        n: int = 1,
        lowest: int = 2,
        context: float = 0.5,
        stem: bool = True,
        stopwords: bool = True,
        critical: int = 2,
        names: bool = False,
        local: float = 0.75,
        power: int = 3,
    ) -> None:
        if check_int("n", n) not in (1, 2):
            raise ConfigurationError(f"n must be 1 or 2, not {n!r}")
        self.n = n
        self.lowest = check_int("lowest", lowest, minimum=1)
        self.context = check_number("context", context, low=0.0, high=1.0)
        self.stem = bool(stem)
        self.stopwords = bool(stopwords)
        self.critical = check_int("critical", critical, minimum=1)
        self.names = bool(names)
        self.local = check_number("local", local, low=0.0, high=1.0)
        self.power = check_int("power", power, minimum=1)
        self._analyzer = _Analyzer(n, self.stem, self.stopwords, self.names)

    def settings(self) -> dict[str, SettingValue]:
        return {
            "n": self.n,
            "lowest": self.lowest,
            "context": self.context,
            "stem": self.stem,
            "stopwords": self.stopwords,
            "critical": self.critical,
            "names": self.names,
            "local": self.local,
            "power": self.power,
        }

    # --- the shared computation ------------------------------------------------------------

    def _units_and_presence(
        self,
        texts: Sequence[str],
        samples: Sequence[str],
        evidence: Sequence[set[str]] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, dict[str, int]]:
        """Unit ids per span, critical unit ids per span, a (samples x vocabulary) 0/1 matrix
        of which sample has which unit, and the vocabulary (unit -> id). ``evidence``: the
        samples' evidence units, when already known."""
        ids, crit, vocab = self._span_ids(texts)
        if evidence is None:
            evidence = [self._analyzer.evidence(sample) for sample in samples]
        presence = self._presence(evidence, vocab)
        return ids, crit, presence, vocab

    def _span_ids(
        self, texts: Sequence[str]
    ) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, int]]:
        """Unit ids and critical unit ids per span, and the vocabulary (unit -> id)."""
        vocab: dict[str, int] = {}
        ids: list[np.ndarray] = []
        crit: list[np.ndarray] = []
        for t in texts:
            units, critical = self._analyzer.span_units(t)
            ids.append(np.array([vocab.setdefault(u, len(vocab)) for u in units], dtype=np.intp))
            crit.append(np.array([vocab[u] for u in units if u in critical], dtype=np.intp))
        return ids, crit, vocab

    @staticmethod
    def _presence(evidence: Sequence[set[str]], vocab: dict[str, int]) -> np.ndarray:
        presence = np.zeros((len(evidence), len(vocab)), dtype=np.float64)
        for j, units in enumerate(evidence):
            hit = [vocab[u] for u in units if u in vocab]
            presence[j, hit] = 1.0
        return presence

    def _sentence_evidence(
        self, samples: Sequence[str], keep: Callable[[str], bool] | None = None
    ) -> tuple[list[set[str]], list[int]]:
        """The evidence units of every sentence of every sample, and each sentence's sample."""
        units: list[set[str]] = []
        owner: list[int] = []
        for j, sample in enumerate(samples):
            for a, b in segment.sentences(sample):
                units.append(self._analyzer.evidence(sample[a:b], keep))
                owner.append(j)
        return units, owner

    @staticmethod
    def _share(ids: list[np.ndarray], presence: np.ndarray) -> FloatArray:
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

    def _coverage(
        self, ids: list[np.ndarray], crit: list[np.ndarray], presence: np.ndarray
    ) -> FloatArray:
        """A sample's support of a span: the share of the span's units it contains, but no
        more than the share of the span's critical units (numbers, names) it contains."""
        return np.minimum(self._share(ids, presence), self._share(crit, presence))

    def _best_sentence(
        self,
        ids: list[np.ndarray],
        crit: list[np.ndarray],
        vocab: dict[str, int],
        sentences: tuple[list[set[str]], list[int]],
        n_samples: int,
    ) -> FloatArray:
        """Per span and sample: the support of the span by the sample's best sentence (0 for a
        sample without any)."""
        units, owner = sentences
        out = np.zeros((len(ids), n_samples), dtype=np.float64)
        if not units:
            return out
        cover = self._coverage(ids, crit, self._presence(units, vocab))
        starts = [k for k in range(len(owner)) if k == 0 or owner[k] != owner[k - 1]]
        out[:, [owner[k] for k in starts]] = np.maximum.reduceat(cover, starts, axis=1)
        return out

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        """Per span and sample: the share of the span's units the sample contains, capped by
        the share of its critical units (numbers, names) it contains (1 for a span with none)."""
        ids, crit, presence, _ = self._units_and_presence([text[a:b] for a, b in spans], samples)
        return np.clip(self._coverage(ids, crit, presence), 0.0, 1.0)

    def evaluate(
        self,
        text: str,
        spans: Sequence[tuple[int, int]],
        samples: Sequence[str],
        weights: FloatArray | None = None,
    ) -> MetricScores:
        """Per-sample coverage, and the pooled confidence described in the module docstring."""
        ids, crit, vocab = self._span_ids([text[a:b] for a, b in spans])
        keep = _matchable(vocab)
        sentences = self._sentence_evidence(samples, keep) if self.local > 0.0 else None
        if sentences is not None and self.n == 1:
            # With single units, a sample's evidence is the union of its sentences' (one pass).
            evidence = [set[str]() for _ in samples]
            for units, j in zip(*sentences, strict=True):
                evidence[j] |= units
        else:
            evidence = [self._analyzer.evidence(sample, keep) for sample in samples]
        presence = self._presence(evidence, vocab)
        coverage = np.clip(self._coverage(ids, crit, presence), 0.0, 1.0)
        n_spans = len(ids)
        if len(samples) == 0 or n_spans == 0:
            # No evidence: the base class's rule (all zeros); also validates weights.
            return MetricScores(coverage, weighted_mean(coverage, weights))
        # Unit support: weighted share of samples containing the unit (weights validated by
        # weighted_mean, which computes exactly this on the presence matrix).
        unit = weighted_mean(presence.T, weights)
        # Critical units count `critical` times among a span's units.
        counted = [
            np.concatenate([i, *([c] * (self.critical - 1))]) if c.size else i
            for i, c in zip(ids, crit, strict=True)
        ]
        sizes = np.array([len(i) for i in counted], dtype=np.intp)
        width = max(int(sizes.max()), 1)
        table = np.full((n_spans, width), np.inf)
        rows = np.repeat(np.arange(n_spans), sizes)
        cols = np.concatenate([np.arange(s) for s in sizes]) if sizes.sum() else rows
        flat = unit[np.concatenate(counted)] if sizes.sum() else np.zeros(0)
        table[rows, cols] = flat
        k = min(self.lowest, width)
        low = np.sort(table, axis=1)[:, :k]
        finite = np.isfinite(low)
        count = finite.sum(axis=1)
        span_term = np.where(
            count > 0, np.where(finite, low, 0.0).sum(axis=1) / np.maximum(count, 1), 1.0
        )
        plain = unit[np.concatenate(ids)] if sum(len(i) for i in ids) else np.zeros(0)
        text_term = float(plain.mean()) if plain.size else 1.0
        if sentences is not None:
            # Sentence-local evidence: how well each sample's best-matching sentence covers the
            # span (facts stated together, not merely somewhere in the sample), raised to
            # `power`: a sentence that restates the span counts far more than one sharing a
            # few of its words.
            best = weighted_mean(
                self._best_sentence(ids, crit, vocab, sentences, len(samples)) ** self.power,
                weights,
            )
            span_term = (1.0 - self.local) * span_term + self.local * best
            text_term = (1.0 - self.local) * text_term + self.local * float(best.mean())
        conf = (1.0 - self.context) * span_term + self.context * text_term
        return MetricScores(coverage, np.clip(conf, 0.0, 1.0))

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        """``A[i, j]``: the support of ``texts[i]`` (as one span) by ``texts[j]``: the share of
        its units that ``texts[j]`` has, capped by the share of its critical units it has.

        The diagonal is 1. A text with no words agrees fully with another such text and not at
        all with anything else. Each text is analysed once, so this is cheap for many samples.
        """
        ids, crit, presence, _ = self._units_and_presence(texts, texts)
        out = self._coverage(ids, crit, presence)
        empty = np.array([len(i) == 0 for i in ids])
        out[np.ix_(empty, ~empty)] = 0.0
        np.fill_diagonal(out, 1.0)
        return np.clip(out, 0.0, 1.0)
