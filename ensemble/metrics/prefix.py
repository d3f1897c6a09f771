"""``prefix``: exact-token prefix agreement.

A sample supports a token of the candidate when the sample's tokens equal the candidate's
tokens up to and including that token. A token's confidence is therefore the share of the
samples that have not yet parted from the candidate, and it never rises along the text: the
first token where it drops is where the samples disagree. Tokens are those of
:func:`ensemble.segment.tokens` (white space is ignored, case and punctuation are not).

Ask "23, 24, 25" ten times: if half the samples continue ", 26, 27, 28" and the rest scatter,
the consensus continues with ", 26, 27, 28" and the confidence falls from 0.5-ish to the share
of samples that went on together.

For the choice of the consensus candidate, two samples agree by the length of their shared
token prefix over the length of the *longer* one. A sample that stopped early is a prefix of
the others, but it does not agree fully with them, so it does not win the choice just by being
short.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ensemble import segment
from ensemble.metrics.base import FloatArray, Granularity, Metric

__all__ = ["PrefixMetric"]


def _tokens(text: str) -> list[str]:
    return [text[a:b] for a, b in segment.tokens(text)]


def common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    """Number of leading items that ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixMetric(Metric):
    """Share of samples whose tokens match the candidate's up to and including each token."""

    name: ClassVar[str] = "prefix"
    granularity: ClassVar[Granularity] = "token"
    symmetric: ClassVar[bool] = True
    version: ClassVar[str] = "2"  # 2: agreement over the longer text (was: over the first)

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        offsets = segment.tokens(text)
        toks = [text[a:b] for a, b in offsets]
        ends = np.array([b for _, b in offsets], dtype=np.int64)
        # Tokens a span needs: every token of the text that ends at or before the span's end.
        needed = np.array(
            [int(np.searchsorted(ends, b, side="right")) for _, b in spans], dtype=np.int64
        )
        shared = np.array([common_prefix(toks, _tokens(s)) for s in samples], dtype=np.int64)
        if len(spans) == 0 or len(samples) == 0:
            return np.zeros((len(spans), len(samples)), dtype=np.float64)
        return (shared[None, :] >= needed[:, None]).astype(np.float64)

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        """Shared token prefix over the longer of the two texts (two empty texts agree)."""
        toks = [_tokens(t) for t in texts]
        n = len(texts)
        out = np.eye(n, dtype=np.float64)
        for i in range(n):
            for j in range(i + 1, n):
                longer = max(len(toks[i]), len(toks[j]))
                value = 1.0 if longer == 0 else common_prefix(toks[i], toks[j]) / longer
                out[i, j] = out[j, i] = value
        return out
