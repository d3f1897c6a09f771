"""The consensus engine: candidate choice, span support, inputs, properties for every metric."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ensemble
from ensemble.errors import InvalidInputError, UnknownNameError, UsageError
from ensemble.metrics.base import FloatArray, Metric

CORE_METRICS = ["ngram", "prefix", "vote"]

words = st.sampled_from(
    ["Paris", "London", "is", "the", "capital", "of", "France", "born", "in", "1871", "."]
)
sentence = st.lists(words, min_size=1, max_size=8).map(lambda ws: " ".join(ws) + ".")
answer = st.lists(sentence, min_size=1, max_size=3).map(" ".join)
samples_st = st.lists(answer, min_size=1, max_size=6)


class LengthRatio(Metric):
    """A toy metric for engine tests: support = shorter length / longer length."""

    name = "length-ratio"

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        out = np.zeros((len(spans), len(samples)))
        for k, (a, b) in enumerate(spans):
            for j, s in enumerate(samples):
                la, lb = b - a, len(s)
                out[k, j] = min(la, lb) / max(la, lb) if max(la, lb) else 1.0
        return out


@pytest.mark.parametrize("metric", CORE_METRICS)
@settings(max_examples=40, deadline=None)
@given(text=answer, n=st.integers(min_value=2, max_value=5))
def test_identical_samples_give_confidence_one(metric: str, text: str, n: int) -> None:
    result = ensemble.consensus([text] * n, metric=metric)
    assert result.text == text
    assert result.spans
    assert all(s.confidence == pytest.approx(1.0) for s in result.spans)
    scored = ensemble.score(text=text, samples=[text] * n, metric=metric)
    assert all(s.confidence == pytest.approx(1.0) for s in scored.spans)


@pytest.mark.parametrize("metric", CORE_METRICS)
@settings(max_examples=40, deadline=None)
@given(samples=samples_st, data=st.data())
def test_confidence_bounded_offsets_exact_and_order_free(
    metric: str, samples: list[str], data: st.DataObject
) -> None:
    result = ensemble.consensus(samples, metric=metric)
    for span in result.spans:
        assert 0.0 <= span.confidence <= 1.0
        assert result.text[span.start : span.end] == span.text
    shuffled = data.draw(st.permutations(samples))
    again = ensemble.consensus(shuffled, metric=metric)
    assert again.text == result.text
    assert [s.confidence for s in again.spans] == pytest.approx(
        [s.confidence for s in result.spans]
    )


@pytest.mark.parametrize("metric", CORE_METRICS)
@settings(max_examples=30, deadline=None)
@given(text=answer, samples=samples_st, data=st.data())
def test_score_order_free_and_bounded(
    metric: str, text: str, samples: list[str], data: st.DataObject
) -> None:
    a = ensemble.score(text=text, samples=samples, metric=metric)
    b = ensemble.score(text=text, samples=data.draw(st.permutations(samples)), metric=metric)
    conf_a = [s.confidence for s in a.spans]
    assert conf_a == pytest.approx([s.confidence for s in b.spans])
    assert all(0.0 <= c <= 1.0 for c in conf_a)


def test_candidate_is_the_one_the_others_agree_with() -> None:
    samples = [
        "The capital of France is Paris.",
        "Paris is the capital of France.",
        "The capital of France is Paris.",
        "Bananas are yellow and grow in bunches.",
    ]
    result = ensemble.consensus(samples, metric="ngram")
    assert "Paris" in result.text
    assert result.candidate in (0, 1, 2)
    # the outlier supports the candidate less than the others do
    support = result.spans[0].support
    agreeing = next(i for i in (0, 1, 2) if i != result.candidate)
    assert support[3] is not None and support[agreeing] is not None
    assert support[3] < support[agreeing]
    assert support[result.candidate] is None  # the candidate does not vote for itself


def test_score_with_sentences_keeps_them_as_spans() -> None:
    sents = ["Paris is the capital of France.", "It has ninety million inhabitants."]
    result = ensemble.score(
        sentences=sents,
        samples=["Paris is the capital of France.", "France's capital is Paris."],
        metric="ngram",
    )
    assert [s.text for s in result.spans] == sents
    assert result.text == " ".join(sents)
    assert result.candidate is None
    assert result.spans[0].confidence > result.spans[1].confidence


def test_threshold_keeps_only_supported_spans() -> None:
    sents = ["Paris is the capital of France.", "Its mayor is a purple giraffe."]
    samples = ["Paris is the capital of France."] * 3
    full = ensemble.score(sentences=sents, samples=samples, metric="ngram")
    high, low = (s.confidence for s in full.spans)
    assert high > low
    cut = ensemble.score(sentences=sents, samples=samples, metric="ngram", threshold=high)
    assert [s.text for s in cut.spans] == [sents[0]]
    assert cut.threshold == high
    assert cut.supported_text == sents[0]


def test_failed_samples_never_vote_but_are_kept() -> None:
    failed = ensemble.Sample(
        model="m", repeat=1, error=ensemble.SampleError(type="RateLimitError", message="429")
    )
    ok = [ensemble.Sample(text="Paris.", model="m", repeat=i) for i in (0, 2)]
    result = ensemble.consensus([ok[0], failed, ok[1]], metric="vote")
    assert len(result.samples) == 3
    assert result.spans[0].support[1] is None
    assert result.agreement[1] == (None, None, None)
    assert result.spans[0].confidence == 1.0


def test_single_sample_has_no_evidence() -> None:
    result = ensemble.consensus(["Paris is the capital."], metric="ngram")
    assert result.text == "Paris is the capital."
    assert all(s.confidence == 0.0 for s in result.spans)
    assert [a.kind for a in result.alerts] == ["no_evidence"]


def test_empty_strings_are_handled() -> None:
    result = ensemble.consensus(["", "", ""], metric="ngram")
    assert result.text == ""
    assert result.spans == ()
    scored = ensemble.score(text="", samples=["something"], metric="ngram")
    assert scored.spans == ()


def test_weights_change_the_mean() -> None:
    samples = ["Paris.", "Paris.", "Lyon."]
    plain = ensemble.score(text="Paris.", samples=samples, metric="vote")
    weighted = ensemble.score(text="Paris.", samples=samples, metric="vote", weights=[1, 1, 2])
    assert plain.spans[0].confidence == pytest.approx(2 / 3)
    assert weighted.spans[0].confidence == pytest.approx(0.5)


def test_custom_metric_instance_is_accepted() -> None:
    result = ensemble.score(text="abcd", samples=["ab", "abcd"], metric=LengthRatio())
    assert result.metric.name == "length-ratio"
    assert result.spans[0].confidence == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ensemble.consensus([]), "no samples"),
        (lambda: ensemble.consensus("just a string"), "list of strings"),
        (lambda: ensemble.consensus(["ok", 3]), "sample 1 is a int"),
        (lambda: ensemble.score(samples=["a"]), "exactly one of"),
        (lambda: ensemble.score(text="a", sentences=["a"], samples=["a"]), "exactly one of"),
        (lambda: ensemble.score(sentences=["a", None], samples=["a"]), "sentence 1"),
        (lambda: ensemble.score(text=5, samples=["a"]), "text must be a string"),
        (lambda: ensemble.consensus(["a"], threshold=1.5), "threshold"),
        (lambda: ensemble.consensus(["a", "b"], weights=[1.0]), "weights"),
    ],
)
def test_bad_input_raises_library_errors(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()  # type: ignore[operator]


def test_unknown_metric_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        ensemble.consensus(["a"], metric="nope")
    assert isinstance(info.value, UsageError)
    for name in CORE_METRICS:
        assert repr(name) in str(info.value)


def test_every_sample_failed_is_an_error() -> None:
    failed = ensemble.Sample(error=ensemble.SampleError(type="X", message="boom"))
    with pytest.raises(InvalidInputError, match="every sample failed"):
        ensemble.consensus([failed])


def test_json_round_trip() -> None:
    result = ensemble.consensus(
        ["Paris is the capital. It is big.", "Paris is the capital.", "Lyon is a city."]
    )
    again = ensemble.Consensus.model_validate_json(result.model_dump_json())
    assert again == result
    assert again.metric.signature == result.metric.signature


class AbstainsOnQuestions(Metric):
    """Toy metric: a sample ending in '?' abstains (NaN); otherwise support 1 if equal."""

    name = "abstains-on-questions"
    granularity = "text"

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        row = [np.nan if s.endswith("?") else float(s == text) for s in samples]
        return np.array([row] * len(spans), dtype=np.float64)


def test_any_metric_can_abstain_with_nan_and_abstentions_never_vote() -> None:
    result = ensemble.score(
        text="Paris", samples=["Paris", "Lyon", "who knows?"], metric=AbstainsOnQuestions()
    )
    (span,) = result.spans
    assert span.confidence == pytest.approx(0.5)  # 1 of the 2 samples that gave a verdict
    assert span.support == (1.0, 0.0, None)
    assert "abstention" in [a.kind for a in result.alerts]
    everyone_abstains = ensemble.consensus(["a?", "b?", "c?"], metric=AbstainsOnQuestions())
    assert everyone_abstains.spans[0].confidence == 0.0
    # a pair with nothing but abstentions agrees 0 (nothing supports it), never NaN or 0.5
    assert everyone_abstains.agreement[0][1] == 0.0
