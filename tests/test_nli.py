"""The local NLI cross-encoder backend, on a tiny random BERT built and saved by the test.

No weights ship here, so each test saves a three-label ``BertForSequenceClassification`` with a
shuffled ``id2label`` and a tiny WordPiece vocabulary to a temp dir, then loads it through the
same code path users use (``EntailmentMetric(backend="nli:PATH")``), offline.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import ensemble
from ensemble.errors import ConfigurationError, MissingDependencyError, ModelNotAvailableError
from ensemble.metrics._nli import label_columns
from ensemble.metrics.entailment import CONTRADICT, ENTAIL, NEUTRAL, EntailmentMetric

_MISSING = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
needs_nli = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the [nli] extra is not installed (missing: {', '.join(_MISSING)})",
)

#: Deliberately not MNLI's usual order, and in mixed case.
ID2LABEL = {0: "CONTRADICTION", 1: "Neutral", 2: "entailment"}
WORDS = "he she was born in london paris the a painter poet 1820 1902 and is not".split()


def build_model(
    path: Path, *, favour: str | None = None, id2label: dict[int, str] = ID2LABEL
) -> Path:
    """Save a tiny random BERT NLI model (and its tokenizer) to ``path``.

    ``favour``: a label name whose output gets a large bias, so the model always says it.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    model = BertForSequenceClassification(config)
    if favour is not None:
        index = next(k for k, v in id2label.items() if v == favour)
        with torch.no_grad():
            model.classifier.bias.zero_()
            model.classifier.bias[index] = 20.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@needs_nli
def test_label_order_is_read_from_the_model(tmp_path: Path) -> None:
    for favour, column in (
        ("entailment", ENTAIL),
        ("Neutral", NEUTRAL),
        ("CONTRADICTION", CONTRADICT),
    ):
        path = build_model(tmp_path / favour, favour=favour)
        metric = EntailmentMetric(backend=f"nli:{path}")
        v = metric.verdicts("he was born in london", [(0, 21)], ["he was born in paris"])
        assert v.shape == (1, 1, 3)
        assert v[0, 0, column] > 0.99, (favour, v)


@needs_nli
def test_support_follows_the_verdict(tmp_path: Path) -> None:
    yes = build_model(tmp_path / "yes", favour="entailment")
    no = build_model(tmp_path / "no", favour="CONTRADICTION")
    text = "he was born in london. he was a painter."
    samples = ["he was born in london", "she was a poet"]
    supported = ensemble.score(
        text=text, samples=samples, metric=EntailmentMetric(backend=f"nli:{yes}")
    )
    refuted = ensemble.score(
        text=text, samples=samples, metric=EntailmentMetric(backend=f"nli:{no}")
    )
    assert [s.confidence for s in supported.spans] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert [s.confidence for s in refuted.spans] == [0.0, 0.0]
    assert "backend:nli" in supported.metric.signature


@needs_nli
def test_random_model_gives_probabilities_matching_a_direct_forward_pass(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ensemble.metrics.entailment import NLIBackend

    path = build_model(tmp_path / "random")
    spans = ["he was born in london", "she is a poet", "the painter was not born in 1902"]
    samples = ["he was born in paris in 1820", "she is a painter and a poet"]
    small = NLIBackend(path, batch_size=2).judge_samples(spans, samples)
    large = NLIBackend(path, batch_size=64).judge_samples(spans, samples)
    np.testing.assert_allclose(small, large, atol=1e-5)  # batching changes nothing
    np.testing.assert_allclose(small.sum(axis=2), 1.0, atol=1e-6)

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).eval()
    with torch.no_grad():
        logits = model(**tok(samples[1], spans[2], return_tensors="pt")).logits
    p = torch.softmax(logits, dim=-1)[0].numpy()
    expected = [p[2], p[1], p[0]]  # entailment, neutral, contradiction in ID2LABEL's indices
    np.testing.assert_allclose(small[2, 1], expected, atol=1e-5)


@needs_nli
def test_blank_sample_is_neutral_and_not_sent_to_the_model(tmp_path: Path) -> None:
    from ensemble.metrics.entailment import NLIBackend

    backend = NLIBackend(build_model(tmp_path / "m", favour="entailment"))
    v = backend.judge_samples(["he was born in london"], ["  ", "he was born"])
    np.testing.assert_allclose(v[0, 0], [0.0, 1.0, 0.0])
    assert v[0, 1, ENTAIL] > 0.99


@needs_nli
def test_a_sample_longer_than_the_model_takes_is_cut(tmp_path: Path) -> None:
    from ensemble.metrics.entailment import NLIBackend

    backend = NLIBackend(build_model(tmp_path / "m", favour="entailment"))  # 64 positions
    long_sample = " ".join(["he was born in london"] * 40)  # 200 tokens
    v = backend.judge_samples(["he was born in london", "she is a poet"], [long_sample])
    assert v[:, 0, ENTAIL].min() > 0.99


@needs_nli
def test_a_model_that_is_not_nli_is_refused(tmp_path: Path) -> None:
    path = build_model(tmp_path / "sentiment", id2label={0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ConfigurationError, match="not an MNLI-style model"):
        EntailmentMetric(backend=f"nli:{path}")


def test_label_columns() -> None:
    assert label_columns({0: "CONTRADICTION", 1: "Neutral", 2: "entailment"}) == [2, 1, 0]
    assert label_columns({"0": "entailment", "1": "neutral", "2": "contradiction"}) == [0, 1, 2]
    with pytest.raises(ConfigurationError, match="name the same verdict"):
        label_columns({0: "entailment", 1: "entailed", 2: "contradiction"})
    with pytest.raises(ConfigurationError, match="needs entailment, neutral and contradiction"):
        label_columns({0: "entailment", 1: "contradiction"})


@needs_nli
def test_a_named_model_that_is_not_cached_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline by construction: local_files_only, and an empty cache of our own.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotAvailableError, match="allow_download=True") as info:
        EntailmentMetric(backend="nli:ensemble-tests/no-such-nli-model")
    assert info.value.model == "ensemble-tests/no-such-nli-model"


@needs_nli
def test_an_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotAvailableError, match="does not hold a loadable model"):
        EntailmentMetric(backend=f"nli:{empty}")


def test_missing_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ensemble.metrics.entailment import NLIBackend

    monkeypatch.setitem(sys.modules, "transformers", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"ensemble-consensus\[nli\]"):
        NLIBackend("anything")
