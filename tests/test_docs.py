"""The documentation builds without a warning (links, nav, the API reference's docstrings)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_MISSING = [m for m in ("mkdocs", "material", "mkdocstrings") if not importlib.util.find_spec(m)]


@pytest.mark.slow
@pytest.mark.skipif(bool(_MISSING), reason=f"the dev extra's docs tools are missing: {_MISSING}")
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    api = (tmp_path / "api" / "index.html").read_text("utf-8")
    assert 'id="ensemble.Ensemble"' in api and 'id="ensemble.consensus"' in api
