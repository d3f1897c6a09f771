"""`ensemble ask`: real adapters against the loopback server, through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from loopback import LoopbackServer, Reply

import ensemble.models as registry
from ensemble import Consensus
from ensemble.cli import build_parser, main
from ensemble.models.openai import OpenAIModel

CANARY = "sk-CANARY-5d1e0c7a93b2f8a64c10"


@pytest.fixture
def loop_prefix(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    """Specs ``loop:NAME`` resolve to OpenAIModel(NAME) at the loopback server."""
    monkeypatch.setattr(registry.MODELS, "_registered", {})
    registry.register_model(
        "loop",
        lambda name: OpenAIModel(name or "x", base_url=server.openai_url, api_key=CANARY),
    )
    return server


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_prints_consensus_confidence_supporters_and_failures(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.set_default("a", Reply(text="Paris is the capital of France."))
    loop_prefix.set_default("b", Reply(text="Paris is the capital of France."))
    loop_prefix.set_default("c", Reply(status=404))
    argv = ["ask", "Capital of France?", "-m", "loop:a", "-m", "loop:b", "-m", "loop:c"]
    code, out, err = run_cli([*argv, "-n", "2", "--metric", "ngram"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Paris is the capital of France."
    span_line = next(line for line in lines if line.strip().startswith("1.00"))
    assert "Paris is the capital of France." in span_line
    assert "[3/3 support: openai:a, openai:b]" in out
    assert "2 failed sample(s):" in out
    assert "openai:c#0: ProviderHTTPError: HTTP 404" in out
    assert "\033[" not in out  # plain when not a terminal
    assert loop_prefix.count() == 6
    assert CANARY not in out + err


def test_ask_json_is_the_consensus(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.default = Reply(text="The answer is 4.")
    code, out, _ = run_cli(
        ["ask", "2+2?", "-m", "loop:a", "-n", "3", "--metric", "vote", "--json"], capsys
    )
    assert code == 0
    result = Consensus.model_validate_json(out)
    assert result.text == "The answer is 4."
    assert result.metric.name == "vote"
    assert [(s.model, s.repeat) for s in result.samples] == [("openai:a", r) for r in range(3)]
    assert json.loads(out)["samples"][0]["usage"] == {"input_tokens": 7, "output_tokens": 4}


def test_calibration_option_maps_confidences_and_checks_the_metric(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ensemble.calibration import Calibrator

    loop_prefix.default = Reply(text="Paris is the capital of France.")
    argv = ["ask", "Capital?", "-m", "loop:a", "-n", "2", "--json"]
    code, out, _ = run_cli([*argv, "--calibration", "ngram-wikibio"], capsys)
    assert code == 0
    result = Consensus.model_validate_json(out)
    assert result.calibration is not None and result.calibration.name == "ngram-wikibio"
    expected = Calibrator.load("ngram-wikibio").apply([1.0])[0]  # full support, calibrated
    assert result.spans[0].confidence == pytest.approx(expected)
    assert result.spans[0].confidence < 1.0
    # a calibration fitted for another metric is refused before any call is made
    before = loop_prefix.count()
    code, _, err = run_cli([*argv, "--metric", "vote", "--calibration", "ngram-wikibio"], capsys)
    assert code == 2 and "ensemble: error:" in err and "ngram" in err
    assert loop_prefix.count() == before
    code, out, _ = run_cli(["demo", "--json", "--calibration", "ngram-wikibio"], capsys)
    assert code == 0
    assert Consensus.model_validate_json(out).calibration is not None


def test_ask_below_quorum_is_an_error_listing_failures(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.default = Reply(status=400)
    code, out, err = run_cli(["ask", "q", "-m", "loop:a", "-n", "2", "--quorum", "2"], capsys)
    assert code == 2
    assert out == ""
    assert "0 successful sample(s), quorum is 2" in err
    assert err.count("HTTP 400") == 2


def test_ask_defaults_to_local(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["ask", "q"])
    assert args.models is None and args.repeats == 5 and args.metric == "ngram"
    seen: list[Any] = []

    class Stop(Exception):
        pass

    def fake_init(self: Any, **kwargs: Any) -> None:
        seen.append(kwargs)
        raise Stop

    monkeypatch.setattr("ensemble.runner.Ensemble.__init__", fake_init)
    with pytest.raises(Stop):
        main(["ask", "q"])
    assert seen[0]["models"] == ["local"]


def test_ask_unknown_spec_lists_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["ask", "q", "-m", "nope:x"], capsys)
    assert code == 2
    assert "openai:MODEL" in err and "local" in err


def test_ask_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    proc = subprocess.run(
        [sys.executable, "-m", "ensemble", "ask", "q", "-m", "openai:gpt-4o-mini"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in __import__("os").environ.items() if k != "OPENAI_API_KEY"},
    )
    assert proc.returncode == 2
    assert "OPENAI_API_KEY" in proc.stderr


def test_ask_is_coloured_on_a_terminal(
    loop_prefix: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    loop_prefix.default = Reply(text="Paris is the capital of France.")
    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["ask", "q", "-m", "loop:a", "-n", "2"]) == 0
    assert "\033[32m" in out.getvalue()  # a well-supported span is green
