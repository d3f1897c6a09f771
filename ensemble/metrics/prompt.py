"""Agreement about the answer, not the question: discount words copied from the prompt.

Samples that repeat the question ("The novel Pride and Prejudice was written by ...") agree on
the echoed words whatever they answer. When the prompt is known (always in a run;
``consensus(..., prompt=...)`` otherwise) the engine therefore computes the agreement matrix,
which chooses the consensus candidate, on each sample **with the words copied from the
prompt taken out** (:func:`discount_prompt`): a word is copied when it lies in a run of at
least ``min_run`` consecutive words (case-folded) that also occurs, in that order, in the
prompt. Span confidences are still scored on the samples as written, so the consensus text
and its offsets are unchanged.

A metric takes part in one of two ways:

* by default, as above (the engine calls :func:`discount_prompt` before
  ``metric.agreement``);
* a metric with a method ``with_prompt(prompt) -> Metric`` handles the prompt itself: the
  engine uses the metric it returns, for the agreement and the spans alike, and does not mask
  (the ``vote`` metric's answer key does this: ``VoteMetric(key="answer")``);
* a metric with the class attribute ``discounts_prompt = False`` opts out.

Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ensemble.metrics.base import Metric

__all__ = ["discount_prompt"]

#: Runs of this many words shared with the prompt are taken as copied from it.
DEFAULT_MIN_RUN = 2

_WORD = re.compile(r"[^\W_]+(?:['\u2019.-][^\W_]+)*", re.UNICODE)


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _grams(prompt: str, min_run: int) -> frozenset[tuple[str, ...]]:
    """The runs of ``min_run`` consecutive words of ``prompt`` (read once per vote)."""
    if min_run < 1:
        raise ValueError("min_run must be >= 1")
    pwords = [w for w, _, _ in _words(prompt)]
    return frozenset(tuple(pwords[p : p + min_run]) for p in range(len(pwords) - min_run + 1))


def _covered(words: Sequence[str], grams: frozenset[tuple[str, ...]], min_run: int) -> list[bool]:
    covered = [False] * len(words)
    for p in range(len(words) - min_run + 1):
        if tuple(words[p : p + min_run]) in grams:
            for q in range(p, p + min_run):
                covered[q] = True
    return covered


def copied_words(text: str, prompt: str, *, min_run: int = DEFAULT_MIN_RUN) -> list[bool]:
    """For each word of ``text`` (as :func:`strip_prompt` splits it): whether it lies in a
    run of at least ``min_run`` consecutive words that also occurs in ``prompt``."""
    grams = _grams(prompt, min_run)
    return _covered([w for w, _, _ in _words(text)], grams, min_run)


def _strip(text: str, grams: frozenset[tuple[str, ...]], min_run: int) -> str:
    toks = _words(text)
    covered = _covered([w for w, _, _ in toks], grams, min_run)
    return " ".join(text[a:b] for (_, a, b), c in zip(toks, covered, strict=True) if not c)


def strip_prompt(text: str, prompt: str, *, min_run: int = DEFAULT_MIN_RUN) -> str:
    """``text`` without the words copied from ``prompt``: the other words, in order, joined
    by single spaces (``""`` when every word was copied). Case and punctuation inside words
    are kept; punctuation between words is dropped."""
    return _strip(text, _grams(prompt, min_run), min_run)


def discount_prompt(
    texts: Sequence[str], prompt: str | None, *, min_run: int = DEFAULT_MIN_RUN
) -> list[str]:
    """The texts the agreement matrix is computed on when the prompt is known.

    Each text loses its copied words (:func:`strip_prompt`; the prompt is read once for all
    the texts). Texts that only echo the prompt become empty (they agree with nothing). When
    *every* text would be empty, or there is no prompt, the texts are returned as they are.
    """
    if not prompt or not prompt.strip():
        return list(texts)
    grams = _grams(prompt, min_run)
    out = [_strip(t, grams, min_run) for t in texts]
    if not any(t.strip() for t in out):
        return list(texts)
    return out


def bind_prompt(metric: Metric, prompt: str | None) -> tuple[Metric, bool]:
    """The engine's prompt hook: ``(metric to use, whether to mask the agreement texts)``.

    A metric with ``with_prompt`` gets the prompt and handles it (no masking); one with
    ``discounts_prompt = False`` is left alone; any other is used as is, with the agreement
    texts masked by :func:`discount_prompt`.
    """
    if not prompt:
        return metric, False
    hook = getattr(metric, "with_prompt", None)
    if callable(hook):
        bound = hook(prompt)
        if not isinstance(bound, Metric):
            raise TypeError(f"{type(metric).__name__}.with_prompt did not return a Metric")
        return bound, False
    return metric, bool(getattr(metric, "discounts_prompt", True))
