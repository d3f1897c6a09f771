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

import numpy as np
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


#: The grid setting the tied scorer below answers for (any but the shipped defaults).
TIED = (2, 3, 0.75)


def test_settings_are_chosen_by_tie_free_average_precision(
    wikibio: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One setting of the grid gives every sentence the same score: AUC-PR credits the ties
    # (about halfway between the positive share and 100), tie-free AP does not (the positive
    # share). Every other setting is weakly informative: little above the positive share on
    # either figure. Chosen by AUC-PR gain, the tied setting won both halves; chosen by AP, it
    # never may.
    rng = np.random.default_rng(0)
    names = ("accurate", "minor_inaccurate", "major_inaccurate")
    data = [
        {"gpt3_sentences": [f"s{k}." for k in range(12)], "annotation": list(rng.choice(names, 12))}
        for _ in range(20)
    ]
    labels = wikibio.labels_of(data)

    def fake_scores(passages: Any, metric: NgramMetric) -> list[np.ndarray]:
        if (metric.n, metric.lowest, metric.context) == TIED:
            return [np.zeros(len(y)) for y in labels]
        noise = np.random.default_rng(int(10 * metric.context) + 7 * metric.lowest + metric.n)
        return [0.15 * y + noise.uniform(size=len(y)) for y in labels]

    monkeypatch.setattr(wikibio, "hallucination_scores", fake_scores)
    wikibio.split_check(data, 0)
    out = capsys.readouterr().out
    tied = "{n: 2, lowest: 3, context: 0.75}"
    chosen = [x.split(": ", 1)[1] for x in out.splitlines() if x.startswith("chosen on ")]
    assert len(chosen) == 2 and tied not in chosen
    # The rows print AP first: the tied setting's AP is the positive share, its AUC-PR far more.
    row = next(x for x in out.splitlines() if x.startswith(tied))
    ap_nonfact, auc_nonfact = float(row.split()[6]), float(row.split()[9])
    positive = 100 * float((np.concatenate(labels) > 0).mean())
    assert ap_nonfact == pytest.approx(positive, abs=0.05) and auc_nonfact > positive + 10
    assert "best mean tie-free AP" in out
