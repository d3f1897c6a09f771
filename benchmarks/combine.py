"""Does combining the offline metrics beat ``ngram`` alone on WikiBio NonFact*? Cross-validated.

Scores every sentence of the 60 annotated passages of ``wikibio_dev.json`` with each offline
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
    python benchmarks/combine.py --halves --cache /tmp/combine.npz --draws 1000

``--halves`` is the check behind the default weights of ``combined``: on passages 0-29 and
30-59 separately, the ``ngram`` weight of ``ngram`` + ``entailment`` (weighted mean, steps of
0.05; ``entailment`` with ``power=2``) with the best mean tie-free AP on one half, reported on
the other, next to the shipped default (``CombinedMetric()``); then two variants that were
tried and not kept, chosen the same way: the plain ``entailment`` (``power=1``, support not
squared) and a rank average (each part's confidences replaced by their rank among all
sentences).

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

from _wikibio import DEFAULT_DATA, LABELS, Passage, confidences, labels_of, load  # noqa: E402

import ensemble  # noqa: E402
from ensemble.calibration import fit_logistic  # noqa: E402
from ensemble.errors import MissingDependencyError  # noqa: E402
from ensemble.evaluation import SelfCheckFigures, selfcheck_figures  # noqa: E402
from ensemble.metrics.combined import CombinedMetric  # noqa: E402

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
    parser.add_argument("--halves", action="store_true", help="weights chosen on one half")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap resamples (--halves)")
    args = parser.parse_args(argv)
    if args.halves:
        halves_check(args)
        return

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
    for half, idx in (("0-29", range(30)), ("30-59", range(30, len(passages)))):
        hl = [labels[i] for i in idx]
        print(row(f"  ngram on {half}", figures(hl, [per_metric["ngram"][i] for i in idx])))
        for subset in subsets:
            conf = [np.mean([per_metric[m][i] for m in subset], axis=0) for i in idx]
            print(row(f"  {'+'.join(subset)} on {half}", figures(hl, conf)))


def _entailment_scores(passages: Sequence[Passage]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per passage, ``entailment``'s confidence and the mean of its squared per-sample support."""
    metric = ensemble.get_metric("entailment")
    conf, squared = [], []
    for p in passages:
        result = ensemble.score(
            sentences=p["gpt3_sentences"], samples=p["gpt3_text_samples"], metric=metric
        )
        conf.append(np.array([s.confidence for s in result.spans]))
        sup = [np.array([np.nan if v is None else v for v in s.support]) for s in result.spans]
        squared.append(np.array([float(np.nanmean(v**2)) if v.size else 0.0 for v in sup]))
    return conf, squared


def _ranks(conf: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each confidence replaced by its rank among all sentences, scaled to (0, 1]."""
    flat = np.concatenate(conf)
    order = np.argsort(np.argsort(flat, kind="stable"), kind="stable")
    r = (order + 1) / flat.size
    return list(np.split(r, np.cumsum([len(c) for c in conf])[:-1]))


def halves_check(args: argparse.Namespace) -> None:
    """The ngram weight of ngram + entailment chosen on one half, reported on the other."""
    from wikibio import HALF_HEADER, HALVES, ap3, half_report  # the same per-half protocol

    passages = load(args.data)
    labels = labels_of(passages)
    cuts = np.cumsum([len(y) for y in labels])[:-1]
    cached: dict[str, np.ndarray] = {}
    if args.cache and args.cache.exists():
        cached = dict(np.load(args.cache))
    default = CombinedMetric()
    ngram_m = default.parts[0]
    ent_sig = ensemble.get_metric("entailment").info.signature  # power 1; squared below
    if ngram_m.info.signature not in cached:
        cached[ngram_m.info.signature] = np.concatenate(confidences(passages, ngram_m))
    if ent_sig not in cached or ent_sig + "|support^2" not in cached:
        t0 = time.process_time()
        conf, squared = _entailment_scores(passages)
        print(f"scored entailment in {time.process_time() - t0:.1f} s of CPU")
        cached[ent_sig], cached[ent_sig + "|support^2"] = map(np.concatenate, (conf, squared))
    if args.cache:
        np.savez(args.cache, **cached)
    ngram = list(np.split(cached[ngram_m.info.signature], cuts))
    ent = list(np.split(cached[ent_sig], cuts))
    ent2 = list(np.split(cached[ent_sig + "|support^2"], cuts))
    w_default = default.weights[0]
    # The default is w * ngram + (1 - w) * entailment(power=2): check the shortcut against the
    # metric itself on a few passages.
    few = passages[:3]
    direct = np.concatenate(confidences(few, default))
    n_few = sum(len(y) for y in labels[:3])
    shortcut = w_default * cached[ngram_m.info.signature][:n_few]
    shortcut += (1 - w_default) * cached[ent_sig + "|support^2"][:n_few]
    assert np.allclose(direct, shortcut), "the default combined is not what this script assumes"
    grid = [round(w, 2) for w in np.arange(0.5, 1.0001, 0.05)]

    def mixed(a: list[np.ndarray], b: list[np.ndarray], w: float) -> list[np.ndarray]:
        return [w * x + (1 - w) * y for x, y in zip(a, b, strict=True)]

    def hall(conf: list[np.ndarray]) -> list[np.ndarray]:
        return [1.0 - c for c in conf]

    print(f"\n{len(passages)} passages; ngram weight w of w * ngram + (1 - w) * entailment")
    print(HALF_HEADER)
    half_report("ngram alone", labels, hall(ngram), args.draws)
    half_report("entailment alone", labels, hall(ent), args.draws)
    half_report(
        f"combined (default, w={w_default:g})",
        labels,
        hall(mixed(ngram, ent2, w_default)),
        args.draws,
    )
    variants = {
        "weighted mean, entailment power=2 (the default)": (ngram, ent2),
        "weighted mean, entailment power=1": (ngram, ent),
        "rank average (entailment power=1)": (_ranks(ngram), _ranks(ent)),
    }
    for name, (a, b) in variants.items():
        print(f"\n{name}: w chosen on one half (best mean AP), reported on the other")
        for pick, held in (("0-29", "30-59"), ("30-59", "0-29")):
            idx = HALVES[pick]

            def mean_ap(
                w: float, a: list[np.ndarray] = a, b: list[np.ndarray] = b, idx: range = idx
            ) -> float:
                c = mixed(a, b, w)
                return float(np.nanmean(ap3([labels[i] for i in idx], [1 - c[i] for i in idx])))

            best = max(grid, key=mean_ap)
            print(f"chosen on {pick}: w = {best:g} (mean AP {mean_ap(best):.1f})")
            half_report(
                f"  held out, w={best:g}", labels, hall(mixed(a, b, best)), args.draws, only=held
            )


if __name__ == "__main__":
    main()
