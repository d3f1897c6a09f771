"""examples/diagnostics_and_escalation.py runs offline and shows what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "diagnostics_and_escalation.py"


def test_the_example_raises_the_alarm_and_escalates() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "ALERT uniformity" in out and "models m1, m2" in out
    assert "http://facts-now.example.org/answer" in out
    assert "tier 0 ['cheap']: 4 samples, escalated: confidence" in out
    assert "tier 1 ['cheap', 'strong']" in out and "accepted" in out
    assert "escalated answer: Canberra" in out
