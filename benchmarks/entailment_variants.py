"""How the offline ``entailment`` backend's choices hold up: formula, cut-offs, cues alone.

Scores the 30 WikiBio dev passages (SelfCheckGPT protocol, ``../shared/data/README.md``) with
the default ``entailment`` metric and with variants of it, and prints NonFact / NonFact* /
Factual as AUC-PR (the protocol's figure) and as average precision (which gives no credit to
tied scores), on all passages and on each half (0-14, 15-29), plus the CPU and wall time of
the default (the variants re-use its embeddings, so only the default is timed).

Run from the repository root (needs the ``similarity`` extra; about a minute of CPU)::

    python benchmarks/entailment_variants.py
    python benchmarks/entailment_variants.py --data /path/to/wikibio_dev.json

With ``--nli MODEL`` (a directory, or a Hugging Face name in the local cache; add
``--allow-download`` to fetch it) it scores the same passages with that NLI cross-encoder
instead, with both support formulas, and times it (needs the ``nli`` extra)::

    python benchmarks/entailment_variants.py --nli /models/deberta-v3-large-mnli
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

import ensemble  # noqa: E402
from ensemble.evaluation import selfcheck_figures  # noqa: E402
from ensemble.metrics.base import Metric  # noqa: E402
from ensemble.metrics.entailment import (  # noqa: E402
    EntailmentMetric,
    NLIBackend,
    SimilarityBackend,
    support_from_verdicts,
)
from ensemble.metrics.semantic import SemanticMetric  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "wikibio_dev.json"
LABELS = {"accurate": 0.0, "minor_inaccurate": 0.5, "major_inaccurate": 1.0}


def hallucination(passages: Sequence[dict[str, Any]], metric: Metric) -> list[np.ndarray]:
    out = []
    for p in passages:
        result = ensemble.score(
            sentences=p["gpt3_sentences"], samples=p["gpt3_text_samples"], metric=metric
        )
        out.append(1.0 - np.array([s.confidence for s in result.spans]))
    return out


def line(name: str, labels: list[np.ndarray], scores: list[np.ndarray]) -> str:
    parts = []
    n = len(labels)
    for sl in (slice(0, n), slice(0, n // 2), slice(n // 2, n)):
        f = selfcheck_figures(labels[sl], scores[sl])
        parts.append(
            f"{f.nonfact:5.1f} {f.nonfact_star:5.1f} {f.factual:5.1f} |"
            f" {f.nonfact_ap:5.1f} {f.nonfact_star_ap:5.1f} {f.factual_ap:5.1f}"
        )
    return f"{name:<34} " + "   ".join(parts)


def variant(base: SimilarityBackend, **settings: Any) -> SimilarityBackend:
    backend = SimilarityBackend(**settings)
    backend._cache = base._cache  # same model, same texts: re-use the vectors, time nothing
    return backend


def nli(passages: Sequence[dict[str, Any]], labels: list[np.ndarray], backend: NLIBackend) -> None:
    """The NLI backend with both formulas; the verdicts are computed once and reused."""
    n = len(passages)
    t0, c0 = time.perf_counter(), time.process_time()
    verdicts = [
        backend.judge_samples(p["gpt3_sentences"], p["gpt3_text_samples"]) for p in passages
    ]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{n} passages; AUC-PR | AP for NonFact NonFact* Factual: all, halves")
    for formula in ("difference", "ratio"):
        scores = [1.0 - support_from_verdicts(v, formula).mean(axis=1) for v in verdicts]
        print(line(f"nli {backend.model_name} ({formula})", labels, scores))
    print(f"\nNLI verdicts for all {n} passages: {cpu:.1f} s CPU, {wall:.1f} s wall")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="wikibio_dev.json")
    parser.add_argument("--nli", metavar="MODEL", help="score with this NLI model instead")
    parser.add_argument("--allow-download", action="store_true", help="let --nli MODEL download")
    args = parser.parse_args(argv)
    with args.data.open(encoding="utf-8") as f:
        passages: list[dict[str, Any]] = json.load(f)
    labels = [np.array([LABELS[a] for a in p["annotation"]]) for p in passages]
    n = len(passages)
    if args.nli:
        nli(passages, labels, NLIBackend(args.nli, allow_download=args.allow_download))
        return

    base = SimilarityBackend()
    default = EntailmentMetric(backend=base)
    ensemble.score(sentences=["Warm-up."], samples=["Warm-up."], metric=default)  # load model
    t0, c0 = time.perf_counter(), time.process_time()
    scores = hallucination(passages, default)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    print(
        f"{n} passages; AUC-PR | AP for NonFact NonFact* Factual: "
        f"all, 0-{n // 2 - 1}, {n // 2}-{n - 1}"
    )
    print(line("entailment (default)", labels, scores))
    rows: list[tuple[str, Metric]] = [
        ("formula='ratio'", EntailmentMetric(backend=variant(base), formula="ratio")),
        ("low=0.2, high=0.8", EntailmentMetric(backend=variant(base, low=0.2, high=0.8))),
        ("low=0.4, high=1.0", EntailmentMetric(backend=variant(base, low=0.4, high=1.0))),
        # t = 1 for every cosine: the number/name/negation cues alone
        (
            "cues alone (low=-2, high=-1)",
            EntailmentMetric(backend=variant(base, low=-2.0, high=-1.0)),
        ),
    ]
    for name, metric in rows:
        print(line(name, labels, hallucination(passages, metric)))
    semantic = SemanticMetric()
    semantic._cache = base._cache
    print(line("semantic", labels, hallucination(passages, semantic)))
    print(f"\nentailment (default), all {n} passages: {cpu:.1f} s CPU, {wall:.1f} s wall")


if __name__ == "__main__":
    main()
