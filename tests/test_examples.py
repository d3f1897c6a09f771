"""Every offline example runs and prints what its docstring promises."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_starts_with_a_docstring_saying_how_to_run_it(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{path.name} has no module docstring"
    assert f"examples/{path.name}" in doc


def test_score_text_flags_the_unsupported_sentence() -> None:
    out = run("score_text.py")
    lines = [ln for ln in out.splitlines() if ln[:4].replace(".", "").isdigit()]
    assert len(lines) == 3
    assert "not supported" in lines[2] and "Paris" in lines[2]
    assert "not supported" not in lines[0]


def test_counting_shows_agreement_then_divergence() -> None:
    out = run("counting.py")
    assert "consensus: ', 26, 27, 28, 29, 30'" in out
    confidences = [float(ln.split()[1]) for ln in out.splitlines()[1:]]
    assert confidences[0] > confidences[-1]
    assert confidences == sorted(confidences, reverse=True)


def test_custom_metric_example() -> None:
    out = run("custom_metric.py")
    first, second = (float(ln.split()[0]) for ln in out.splitlines())
    assert first == 1.0 and second == 0.5
