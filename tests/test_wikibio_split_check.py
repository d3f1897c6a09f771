"""``benchmarks/wikibio.py --split-check`` compares with the defaults the metric ships.

The "defaults" rows used to be a setting written into the script (``n=1, lowest=2,
context=0.5``): right today, silently wrong once ``NgramMetric``'s defaults change. They are
read from ``NgramMetric()`` now; a metric whose defaults differ moves the mark (a made-up
data file of the benchmark's shape, not the real data).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ensemble.metrics.ngram import NgramMetric

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def wikibio(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("wikibio")
    yield module
    sys.modules.pop("wikibio", None)


def passages(tmp_path: Path, wikibio: ModuleType) -> Any:
    facts = ["Ada was born in London.", "She wrote notes on engines.", "She liked tea."]
    wrong = ["Ada was born in Paris.", "She built ships.", "She hated music."]
    samples = [" ".join(facts)] * 3 + ["Ada was born in London. She wrote about engines."]
    data = [
        {
            "gpt3_sentences": facts[:2] + wrong[i % 3 : i % 3 + 1],
            "annotation": ["accurate", "minor_inaccurate", "major_inaccurate"],
            "gpt3_text_samples": samples,
        }
        for i in range(4)
    ]
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return wikibio.load(path)


def run(wikibio: ModuleType, data: Any, capsys: pytest.CaptureFixture[str]) -> str:
    wikibio.split_check(data, 0)
    return capsys.readouterr().out


def test_the_defaults_row_is_the_shipped_metric(
    tmp_path: Path, wikibio: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(wikibio, passages(tmp_path, wikibio), capsys)
    shipped = NgramMetric()
    assert out.count("<- defaults") == 1
    line = next(x for x in out.splitlines() if x.endswith("<- defaults"))
    assert f"{{n: {shipped.n}, lowest: {shipped.lowest}, context: {shipped.context}}}" in line
    assert "ngram settings grid (24 settings)" in out  # the shipped setting is on the grid
    assert f"local={shipped.local}, power={shipped.power}" in out


@pytest.mark.parametrize(("lowest", "context", "size"), [(3, 0.25, 24), (2, 0.6, 25)])
def test_other_defaults_move_the_mark(
    tmp_path: Path,
    wikibio: ModuleType,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    lowest: int,
    context: float,
    size: int,
) -> None:
    class Shipped(NgramMetric):
        def __init__(self, **kw: Any) -> None:
            kw.setdefault("lowest", lowest)
            kw.setdefault("context", context)
            super().__init__(**kw)

    monkeypatch.setattr(wikibio, "NgramMetric", Shipped)
    out = run(wikibio, passages(tmp_path, wikibio), capsys)
    assert f"ngram settings grid ({size} settings)" in out  # off the grid: added to it
    line = next(x for x in out.splitlines() if x.endswith("<- defaults"))
    assert f"{{n: 1, lowest: {lowest}, context: {context}}}" in line
    assert out.count("<- defaults") == 1
