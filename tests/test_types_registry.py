"""Result types, the metric registry (incl. entry points), the error tree, the demo command."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

import ensemble
from ensemble import errors
from ensemble.cli import main
from ensemble.types import metric_part


def test_sample_has_text_or_error_not_both() -> None:
    with pytest.raises(ValidationError):
        ensemble.Sample()
    with pytest.raises(ValidationError):
        ensemble.Sample(text="a", error=ensemble.SampleError(type="X", message="y"))
    assert ensemble.Sample(text="").ok
    assert ensemble.Sample(text=" \n").empty and not ensemble.Sample(text=" a ").empty
    assert not ensemble.Sample(error=ensemble.SampleError(type="X", message="y")).empty


def test_span_offsets_must_match_text() -> None:
    with pytest.raises(ValidationError):
        ensemble.Span(text="abc", start=0, end=2, confidence=0.5)
    with pytest.raises(ValidationError):
        ensemble.Span(text="abc", start=0, end=3, confidence=1.5)
    with pytest.raises(ValidationError):
        ensemble.Span(text="abc", start=0, end=3, confidence=0.5, support=(2.0,))


def test_results_are_frozen() -> None:
    result = ensemble.consensus(["a b.", "a b."], metric="vote")
    with pytest.raises(ValidationError):
        result.text = "changed"  # type: ignore[misc]


def test_signature_lists_settings_in_order() -> None:
    info = ensemble.MetricInfo(name="m", settings={"n": 2, "case": True, "a": "x"}, version="3")
    assert info.signature == "m|a:x|case:yes|n:2|version:3"


def test_signature_names_the_library_version() -> None:
    """Segmentation and the consensus are shared by every metric: a change of the library
    changes every signature, while the metric part stays what identifies the metric."""
    sig = ensemble.get_metric("prefix").info.signature
    metric = ensemble.get_metric("prefix")
    assert sig == f"prefix|version:{metric.version}|ensemble:{ensemble.__version__}"
    assert metric_part(sig) == f"prefix|version:{metric.version}"
    assert metric_part("m|version:3") == "m|version:3"
    info = ensemble.MetricInfo(name="m", version="3", ensemble="9.9")
    assert info.signature == "m|version:3|ensemble:9.9"
    assert ensemble.MetricInfo.model_validate_json(info.model_dump_json()) == info
    older = ensemble.MetricInfo.model_validate_json('{"name": "m", "version": "3"}')
    assert older.ensemble is None and older.signature == "m|version:3"


def test_register_metric_and_reject_duplicates() -> None:
    class Always(ensemble.Metric):
        name = "always-test"

        def support(self, text, spans, samples):  # type: ignore[no-untyped-def]
            import numpy as np

            return np.ones((len(spans), len(samples)))

    ensemble.register_metric("always-test", Always)
    try:
        assert "always-test" in ensemble.available_metrics()
        assert (
            ensemble.score(text="x.", samples=["y"], metric="always-test").spans[0].confidence == 1
        )
        with pytest.raises(errors.InvalidInputError, match="already registered"):
            ensemble.register_metric("always-test", Always)
        with pytest.raises(errors.InvalidInputError, match="already registered"):
            ensemble.register_metric("ngram", Always)
    finally:
        from ensemble.metrics import base

        base.METRICS._registered.pop("always-test", None)


def test_third_party_metric_through_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "thirdparty_metric.py"
    pkg.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from ensemble import Metric

            class Half(Metric):
                name = "half"

                def support(self, text, spans, samples):
                    return np.full((len(spans), len(samples)), 0.5)
            """
        )
    )
    dist = tmp_path / "thirdparty_metric-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-metric\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ensemble.metrics]\nhalf = thirdparty_metric:Half\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "half" in ensemble.available_metrics()
    result = ensemble.score(text="Anything.", samples=["a", "b"], metric="half")
    assert result.spans[0].confidence == 0.5
    assert result.metric.name == "half"
    monkeypatch.delitem(sys.modules, "thirdparty_metric", raising=False)


def test_error_tree() -> None:
    assert issubclass(errors.UsageError, ValueError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.RateLimitError, errors.ProviderHTTPError)
    assert issubclass(errors.QuorumError, errors.RunError)
    assert not issubclass(errors.ProviderError, errors.UsageError)
    e = errors.ProviderHTTPError("boom", model_name="m", status_code=503)
    assert e.retryable
    assert not errors.ProviderHTTPError("bad", model_name="m", status_code=400).retryable
    key = errors.MissingAPIKeyError("openai", "OPENAI_API_KEY")
    assert "OPENAI_API_KEY" in str(key)


def test_quorum_error_lists_failures_and_keeps_samples() -> None:
    samples = [
        ensemble.Sample(text="ok", model="a", repeat=0),
        ensemble.Sample(
            model="b", repeat=0, error=ensemble.SampleError(type="RateLimitError", message="429")
        ),
    ]
    err = errors.QuorumError(quorum=2, samples=samples)
    assert "1 successful sample(s), quorum is 2" in str(err)
    assert "b#0: RateLimitError: 429" in str(err)
    assert err.samples == tuple(samples)
    assert err.failures == (samples[1],)


def test_demo_prints_consensus_with_confidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Marie Curie" in out
    lines = [ln for ln in out.splitlines() if "other samples]" in ln]
    assert len(lines) >= 3
    confidences = [float(ln.split()[0]) for ln in lines]
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert len(set(confidences)) > 1  # the demo shows where the samples part
    assert "\033[" not in out  # plain when not a terminal


def test_demo_json_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    out = capsys.readouterr().out
    payload = out[out.index("{") :]
    result = ensemble.Consensus.model_validate_json(payload)
    assert result.spans and result.candidate is not None


def test_cli_reports_library_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--metric", "nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
