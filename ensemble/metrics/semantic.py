"""``semantic``: support from sentence-embedding similarity (all-MiniLM-L6-v2, packaged ONNX).

What the support of a span by a sample means
--------------------------------------------

The span and every sentence of the sample are embedded with the packaged all-MiniLM-L6-v2
model (:mod:`ensemble.metrics._embed`: mean pooling, unit length). The support is the
**highest cosine similarity between the span and any one sentence of the sample**, with
negative cosines read as 0::

    support(span, sample) = max(0, max over sentences s of the sample of cos(span, s))

It is 1 when the sample contains the span's sentence word for word (and for near-identical
wordings), about 0.7 to 0.9 for a paraphrase, and about 0 to 0.3 for a sentence on another
subject. It measures *topical closeness*, not truth: "He was born in 1820." and "He was born
in 1902." are very close (about 0.9), so this metric cannot see a wrong date or name. The
``entailment`` metric adds those cues. The confidence of a span is the mean support over the
samples.

Every distinct text is embedded once per call, and each metric instance keeps a bounded cache
of vectors, so :meth:`Metric.agreement` over many samples embeds each sample once. Needs the
``similarity`` extra: ``pip install "ensemble-consensus[similarity]"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ensemble import segment
from ensemble.metrics._embed import (
    MODEL_ID,
    EmbeddingCache,
    Float32Array,
    check_available,
    get_embedder,
)
from ensemble.metrics.base import FloatArray, Granularity, Metric
from ensemble.types import SettingValue

__all__ = ["SemanticMetric"]


def _sentences(sample: str) -> list[str]:
    return [sample[a:b] for a, b in segment.sentences(sample)]


def sentence_similarities(
    spans: Sequence[str], samples: Sequence[str], *, cache: EmbeddingCache | None = None
) -> tuple[list[list[str]], list[Float32Array]]:
    """Embed spans and the sentences of each sample in one batched call (through ``cache``).

    Returns each sample's sentences and, for each sample, the cosine matrix
    ``(len(spans), n_sentences)`` between the spans and that sample's sentences.
    """
    sents = [_sentences(s) for s in samples]
    flat = list(spans) + [t for group in sents for t in group]
    vectors = get_embedder().encode(flat, cache=cache)
    span_vecs = vectors[: len(spans)]
    sims: list[Float32Array] = []
    pos = len(spans)
    for group in sents:
        sims.append(span_vecs @ vectors[pos : pos + len(group)].T)
        pos += len(group)
    return sents, sims


class SemanticMetric(Metric):
    """Max cosine similarity between a span and the sentences of a sample, negatives as 0."""

    name: ClassVar[str] = "semantic"
    granularity: ClassVar[Granularity] = "sentence"
    symmetric: ClassVar[bool] = False
    version: ClassVar[str] = "1"

    def __init__(self) -> None:
        check_available()  # a missing extra fails here, naming the install command
        self._cache = EmbeddingCache()

    def settings(self) -> dict[str, SettingValue]:
        return {"model": MODEL_ID}

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        out = np.zeros((len(spans), len(samples)), dtype=np.float64)
        if not spans or not samples:
            return out
        _, sims = sentence_similarities([text[a:b] for a, b in spans], samples, cache=self._cache)
        for j, sim in enumerate(sims):
            if sim.shape[1]:  # a blank sample has no sentence and supports nothing
                out[:, j] = sim.max(axis=1)
        return np.clip(out, 0.0, 1.0)
