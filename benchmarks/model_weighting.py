"""Does weighing each model as one vote (``weighting="model"``) hurt the WikiBio figures?

On ``wikibio_dev.json`` every sample comes from one model (GPT-3), so the rule must reduce to
the plain one: this script scores every passage both ways through the public
``ensemble.score`` and checks that every confidence is *identical* (not merely close), then
prints the SelfCheckGPT figures of both.

It also shows what the rule costs when it has no real independence to exploit: the 20 samples
of a passage are split under two made-up model names (15 + 5 samples, and 10 + 10), so the
model rule weighs the five "model B" samples three times as much as the fifteen of "model A",
although all twenty come from the same model.

Run from the repository root (add ``--data PATH`` if the data is elsewhere)::

    python benchmarks/model_weighting.py
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ensemble  # noqa: E402
from ensemble.evaluation import selfcheck_figures  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "wikibio_dev.json"
LABELS = {"accurate": 0.0, "minor_inaccurate": 0.5, "major_inaccurate": 1.0}


def scores(
    passages: Sequence[dict[str, Any]], names: Sequence[str] | None, weighting: str
) -> list[np.ndarray]:
    out = []
    for p in passages:
        texts = p["gpt3_text_samples"]
        samples: list[Any] = (
            list(texts)
            if names is None
            else [ensemble.Sample(text=t, model=names[k % len(names)]) for k, t in enumerate(texts)]
        )
        r = ensemble.score(
            sentences=p["gpt3_sentences"],
            samples=samples,
            metric="ngram",
            weighting=weighting,  # type: ignore[arg-type]
        )
        out.append(1.0 - np.array([s.confidence for s in r.spans]))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args(argv)
    passages = json.loads(args.data.read_text(encoding="utf-8"))
    labels = [np.array([LABELS[a] for a in p["annotation"]]) for p in passages]

    plain = scores(passages, None, "sample")
    one_model = scores(passages, ["gpt-3"], "model")
    identical = all(np.array_equal(a, b) for a, b in zip(plain, one_model, strict=True))
    n = sum(len(x) for x in plain)
    print(f"{len(passages)} passages, {n} sentences, ngram metric")
    print(f"one model, weighting='model' vs 'sample': identical confidences: {identical}")
    print()
    print(f"{'rule':<44} {'NonFact':>7} {'NonFact*':>8} {'Factual':>7} {'Pearson':>7}")
    rows = [
        ("plain (weighting='sample')", plain),
        ("one model, weighting='model'", one_model),
        # 15 + 5: "b" is every fourth sample.
        ("fake split 15+5, weighting='model'", scores(passages, ["a", "a", "a", "b"], "model")),
        ("fake split 10+10, weighting='model'", scores(passages, ["a", "b"], "model")),
    ]
    for name, sc in rows:
        f = selfcheck_figures(labels, sc)
        print(
            f"{name:<44} {f.nonfact:7.1f} {f.nonfact_star:8.1f} {f.factual:7.1f} {f.pearson:7.1f}"
        )
    if not identical:
        sys.exit("the model rule did not reduce to the plain rule for one model")


if __name__ == "__main__":
    main()
