"""Does combining the offline metrics beat ``ngram`` alone on WikiBio NonFact*? Cross-validated.

Scores every sentence of the 30 annotated passages of ``wikibio_dev.json`` with each offline
metric (``ngram``, ``semantic``, ``entailment`` with its offline default backend) through
``ensemble.score``, then compares, on the SelfCheckGPT figures (NonFact / NonFact* / Factual
AUC-PR):

- each metric alone (nothing fitted);
- fixed equal-weight means (what ``CombinedMetric(parts)`` gives; nothing fitted);
- a weighted mean whose weights are chosen on the training passages (grid, best NonFact*),
  and a logistic combination (``CombinedMetric.fit``, label 1 = accurate) fitted on the
  training passages, both evaluated with 5-fold cross-validation over passages: every
  passage is scored by a combination fitted without it, and the out-of-fold scores are
  pooled into one set of figures. The fold split is repeated for 20 seeds and the median
  and range of NonFact* are printed.

Run from the repository root (needs the ``similarity`` extra for semantic / entailment)::

    python benchmarks/combine.py
    python benchmarks/combine.py --metrics ngram semantic
    python benchmarks/combine.py --cache /tmp/combine.npz   # keep scores between runs

The cache is keyed by each metric's signature: delete it after changing a metric's code
without bumping its version.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

from _wikibio import DEFAULT_DATA, LABELS, confidences, load  # noqa: E402

import ensemble  # noqa: E402
from ensemble.calibration import fit_logistic  # noqa: E402
from ensemble.errors import MissingDependencyError  # noqa: E402
from ensemble.evaluation import SelfCheckFigures, selfcheck_figures  # noqa: E402

# conf[p] has shape (n_sentences of passage p, n_metrics)
Scorer = Callable[
    [list[np.ndarray], list[np.ndarray], list[int]], Callable[[np.ndarray], np.ndarray]
]


def figures(labels: Sequence[np.ndarray], conf: Sequence[np.ndarray]) -> SelfCheckFigures:
    return selfcheck_figures(list(labels), [1.0 - c for c in conf])


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(int(i) for i in order[j::k]) for j in range(k)]


def grid_weights(k: int, step: float = 0.1) -> list[np.ndarray]:
    ticks = np.round(np.arange(0, 1 + 1e-9, step), 10)
    out = [np.array(w) for w in itertools.product(ticks, repeat=k) if abs(sum(w) - 1) < 1e-9]
    return out


def fit_weights(
    conf: list[np.ndarray], labels: list[np.ndarray], train: list[int]
) -> Callable[[np.ndarray], np.ndarray]:
    """The grid weights with the best NonFact* on the training passages."""
    k = conf[0].shape[1]
    tl = [labels[i] for i in train]

    def nonfact_star(w: np.ndarray) -> float:
        return figures(tl, [conf[i] @ w for i in train]).nonfact_star

    best = max(grid_weights(k), key=nonfact_star)
    return lambda c: c @ best


def fit_logistic_combo(
    conf: list[np.ndarray], labels: list[np.ndarray], train: list[int]
) -> Callable[[np.ndarray], np.ndarray]:
    X = np.concatenate([conf[i] for i in train])
    y = np.concatenate([(labels[i] == 0).astype(float) for i in train])
    b, a = fit_logistic(X, y)  # what CombinedMetric.fit does
    return lambda c: 1.0 / (1.0 + np.exp(-(b + c @ a)))


def cross_validated(
    conf: list[np.ndarray], labels: list[np.ndarray], fit: Scorer, k: int, seed: int
) -> SelfCheckFigures:
    out: list[np.ndarray] = [np.zeros(0)] * len(conf)
    for test in folds(len(conf), k, seed):
        train = [i for i in range(len(conf)) if i not in test]
        f = fit(conf, labels, train)
        for i in test:
            out[i] = f(conf[i])
    return figures(labels, out)


def row(name: str, f: SelfCheckFigures, extra: str = "") -> str:
    return f"{name:<44} {f.nonfact:7.1f} {f.nonfact_star:8.1f} {f.factual:7.1f}{extra}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--metrics", nargs="+", default=["ngram", "semantic", "entailment"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--cache", type=Path, help="keep the metrics' confidences in this .npz (re-runs are fast)"
    )
    args = parser.parse_args(argv)

    passages = load(args.data)
    labels = [np.array([LABELS[a] for a in p["annotation"]]) for p in passages]
    per_metric: dict[str, list[np.ndarray]] = {}
    cached: dict[str, np.ndarray] = {}
    if args.cache and args.cache.exists():
        cached = dict(np.load(args.cache))
    for name in args.metrics:
        try:
            metric = ensemble.get_metric(name)
        except (MissingDependencyError, ImportError) as exc:
            print(f"{name}: skipped ({exc})")
            continue
        sig = metric.info.signature
        if sig in cached:
            flat, cuts = cached[sig], np.cumsum([len(y) for y in labels])[:-1]
            per_metric[name] = list(np.split(flat, cuts))
            print(f"{name}: from the cache: {sig}")
            continue
        t0 = time.perf_counter()
        per_metric[name] = confidences(passages, metric)
        cached[sig] = np.concatenate(per_metric[name])
        print(f"scored {name} in {time.perf_counter() - t0:.1f} s: {sig}")
    if args.cache:
        np.savez(args.cache, **cached)
    names = list(per_metric)
    if "ngram" not in names or len(names) < 2:
        sys.exit("need ngram and at least one other metric")

    print(f"\n{'scorer':<44} {'NonFact':>7} {'NonFact*':>8} {'Factual':>7}")
    for name in names:
        print(row(name + " alone", figures(labels, per_metric[name])))
    subsets = [
        s
        for r in range(2, len(names) + 1)
        for s in itertools.combinations(names, r)
        if "ngram" in s
    ]
    base = figures(labels, per_metric["ngram"]).nonfact_star
    for subset in subsets:
        conf = [np.stack([per_metric[m][i] for m in subset], axis=1) for i in range(len(passages))]
        label = "+".join(subset)
        equal = figures(labels, [c.mean(axis=1) for c in conf])
        print(row(f"{label} equal-weight mean (no fit)", equal))
        for how, fit in (
            ("weights chosen on train", fit_weights),
            ("logistic fitted on train", fit_logistic_combo),
        ):
            f0 = cross_validated(conf, labels, fit, args.folds, seed=0)
            stars = [
                cross_validated(conf, labels, fit, args.folds, seed=s).nonfact_star
                for s in range(1, 21)
            ]
            wins = sum(s > base for s in stars)
            print(
                row(
                    f"{label} {how} ({args.folds}-fold CV)",
                    f0,
                    f"   NonFact* over 20 splits: median {statistics.median(stars):.1f}, "
                    f"{min(stars):.1f}-{max(stars):.1f}; beats ngram in {wins}/20",
                )
            )
    print(f"\nngram alone NonFact* = {base:.1f} (nothing fitted; same on every split)")

    # The whole procedure "pick the equal-weight subset with the best NonFact* on the training
    # passages", cross-validated: does picking a combination carry over to unseen passages?
    def pick_subset(
        conf: list[np.ndarray], labels_: list[np.ndarray], train: list[int]
    ) -> Callable[[np.ndarray], np.ndarray]:
        tl = [labels_[i] for i in train]
        cols = [[names.index(m) for m in sub] for sub in [("ngram",), *subsets]]
        best = max(
            cols,
            key=lambda c: figures(tl, [conf[i][:, c].mean(axis=1) for i in train]).nonfact_star,
        )
        return lambda x: x[:, best].mean(axis=1)

    allconf = [np.stack([per_metric[m][i] for m in names], axis=1) for i in range(len(passages))]
    f0 = cross_validated(allconf, labels, pick_subset, args.folds, seed=0)
    stars = [
        cross_validated(allconf, labels, pick_subset, args.folds, seed=s).nonfact_star
        for s in range(1, 21)
    ]
    print(
        row(
            "equal-weight subset picked on train (CV)",
            f0,
            f"   NonFact* over 20 splits: median {statistics.median(stars):.1f}, "
            f"{min(stars):.1f}-{max(stars):.1f}; beats ngram in {sum(s > base for s in stars)}/20",
        )
    )
    print("\nhalves (fixed equal-weight means, nothing fitted):")
    for half, idx in (("0-14", range(15)), ("15-29", range(15, len(passages)))):
        hl = [labels[i] for i in idx]
        print(row(f"  ngram on {half}", figures(hl, [per_metric["ngram"][i] for i in idx])))
        for subset in subsets:
            conf = [np.mean([per_metric[m][i] for m in subset], axis=0) for i in idx]
            print(row(f"  {'+'.join(subset)} on {half}", figures(hl, conf)))


if __name__ == "__main__":
    main()
