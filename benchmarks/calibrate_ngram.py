"""Calibrate a metric's confidence on the WikiBio dev split; measure ECE with cross-validation.

Scores every sentence of the 60 annotated GPT-3 passages of ``wikibio_dev.json`` against its
20 samples through ``ensemble.score(sentences=..., samples=..., metric=...)``, labels a
sentence 1 when annotated ``accurate`` and 0 when ``minor_inaccurate`` or ``major_inaccurate``,
and prints the expected calibration error (10 equal-width bins) of

- the raw confidence, taken as a probability;
- isotonic, centred isotonic and Platt calibration, each fitted on 4 folds of passages and
  applied to the 5th (5-fold cross-validation over passages, so no passage is in both the fit
  and the test).

The headline figure is the ECE of the pooled out-of-fold predictions (all 500 sentences) for
the fold split with seed 0; the same is then repeated for 20 other random fold splits and the
median and range are printed, so a lucky split cannot pass for a result. The "floor" column is
the median ECE that *perfectly* calibrated probabilities would get on this many labels (labels drawn
from the out-of-fold probabilities themselves, 200 draws): with this little data, ECE cannot
be expected to fall much below it.

Then each method is fitted on one half of the passages (0-29 or 30-59) and its ECE reported
on the other half: the figure to expect on passages the map never saw.

With ``--write``, the chosen method is fitted on all 60 passages and written to
``ensemble/data/ngram_wikibio_dev.json`` (the calibration that ships as ``"ngram-wikibio"``).
The data is read from ``../shared/data``; it is never copied into the repository.

Run from the repository root::

    python benchmarks/calibrate_ngram.py                 # figures only
    python benchmarks/calibrate_ngram.py --write         # and refresh the shipped file
    python benchmarks/calibrate_ngram.py --metric semantic
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

from _wikibio import DEFAULT_DATA, Passage, load  # noqa: E402
from _wikibio import confidences as raw_confidences  # noqa: E402

import ensemble  # noqa: E402
from ensemble.calibration import Calibrator, expected_calibration_error  # noqa: E402
from ensemble.types import metric_part  # noqa: E402

OUT = ROOT / "ensemble" / "data" / "ngram_wikibio_dev.json"
DESCRIPTION = (
    "Fitted by benchmarks/calibrate_ngram.py on the dev split of the SelfCheckGPT WikiBio "
    "GPT-3 hallucination set (Manakul, Liusie, Gales 2023; dataset wiki_bio_gpt3_hallucination, "
    "license CC-BY-SA-3.0): 60 passages (indices 0-59 of the dev file), 500 sentences "
    "written by text-davinci-003, each scored against 20 samples of the same prompt at "
    "temperature 1.0. Label 1 = annotated accurate, 0 = minor or major inaccurate. "
    "Method: {method}, each block shrunk toward the base rate by {prior:g} pseudo-labels. "
    "Domain: English Wikipedia-style biographies written by GPT-3; other domains, models, "
    "sample counts or temperatures need their own calibration."
)
METHODS = ("isotonic", "centered-isotonic", "platt")


def accurate_labels(passages: Sequence[Passage]) -> list[np.ndarray]:
    return [np.array([a == "accurate" for a in p["annotation"]], dtype=float) for p in passages]


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(int(i) for i in order[j::k]) for j in range(k)]


Fitter = Callable[[np.ndarray, np.ndarray], Calibrator]


def out_of_fold(
    scores: Sequence[np.ndarray], labels: Sequence[np.ndarray], fit: Fitter, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold calibrated probabilities and their labels, over all passages."""
    probs, ys = [], []
    for test in folds(len(scores), k, seed):
        train = [i for i in range(len(scores)) if i not in test]
        cal = fit(
            np.concatenate([scores[i] for i in train]), np.concatenate([labels[i] for i in train])
        )
        probs.append(cal(np.concatenate([scores[i] for i in test])))
        ys.append(np.concatenate([labels[i] for i in test]))
    return np.concatenate(probs), np.concatenate(ys)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def ece_floor(p: np.ndarray, bins: int, draws: int = 200) -> float:
    """Median ECE of the probabilities ``p`` against labels drawn from ``p`` itself."""
    rng = np.random.default_rng(12345)
    return statistics.median(
        expected_calibration_error(p, (rng.uniform(size=p.size) < p).astype(float), bins)
        for _ in range(draws)
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="wikibio_dev.json")
    parser.add_argument("--metric", default="ngram", help="metric to calibrate (default ngram)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="centered-isotonic",
        help="method written by --write (default centered-isotonic)",
    )
    parser.add_argument(
        "--prior",
        type=float,
        default=2.0,
        help="pseudo-labels at the base rate per isotonic block, for --write (default 2)",
    )
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = parser.parse_args(argv)

    passages = load(args.data)
    metric = ensemble.get_metric(args.metric)
    sig = metric.info.signature
    scores = raw_confidences(passages, metric)
    labels = accurate_labels(passages)
    s_all, y_all = np.concatenate(scores), np.concatenate(labels)
    print(f"metric {sig}")
    print(
        f"{len(passages)} passages, {y_all.size} sentences, {y_all.mean():.3f} accurate; "
        f"mean raw confidence {s_all.mean():.3f}"
    )

    fitters: dict[str, Fitter] = {
        m: (lambda x, y, m=m: Calibrator.fit(x, y, method=m, metric=sig)) for m in METHODS
    }
    for prior in (1.0, 2.0, 4.0):
        fitters[f"centered-isotonic, prior {prior:g}"] = lambda x, y, prior=prior: Calibrator.fit(
            x, y, method="centered-isotonic", metric=sig, prior=prior
        )
    b = args.bins
    print(
        f"\nECE ({b} bins) and Brier score; calibrated = {args.folds}-fold cross-validation "
        "over passages, out-of-fold predictions pooled"
    )
    print(
        f"{'confidence':<46} {'ECE':>7} {'Brier':>7} {'floor':>7}   ECE over 20 other fold splits"
    )
    print(
        f"{'raw (as a probability)':<46} {expected_calibration_error(s_all, y_all, b):7.4f} "
        f"{brier(s_all, y_all):7.4f} {ece_floor(s_all, b):7.4f}"
    )
    for name, fit in fitters.items():
        p, y = out_of_fold(scores, labels, fit, args.folds, seed=0)
        others = [
            expected_calibration_error(*out_of_fold(scores, labels, fit, args.folds, seed=s), b)
            for s in range(1, 21)
        ]
        print(
            f"{name + ' (CV, seed 0)':<46} {expected_calibration_error(p, y, b):7.4f} "
            f"{brier(p, y):7.4f} {ece_floor(p, b):7.4f}   "
            f"median {statistics.median(others):.4f}, "
            f"range {min(others):.4f}-{max(others):.4f}"
        )
    for name, fit in fitters.items():
        cal = fit(s_all, y_all)
        print(
            f"{name + ' (in-sample, all)':<46} "
            f"{expected_calibration_error(cal(s_all), y_all, b):7.4f} "
            f"{brier(cal(s_all), y_all):7.4f}"
        )

    halves = {"0-29": range(0, 30), "30-59": range(30, 60)}
    if len(scores) >= 60:
        print(f"\nECE ({b} bins) on one half of the passages of a map fitted on the other half")
        print(f"{'confidence':<46} {'fit 0-29, test 30-59':>21} {'fit 30-59, test 0-29':>21}")
        cells = []
        for fit_on, test_on in (("0-29", "30-59"), ("30-59", "0-29")):
            y_t = np.concatenate([labels[i] for i in halves[test_on]])
            s_t = np.concatenate([scores[i] for i in halves[test_on]])
            cells.append((s_t, y_t, fit_on))
        print(
            f"{'raw (as a probability)':<46} "
            + " ".join(f"{expected_calibration_error(c[0], c[1], b):21.4f}" for c in cells)
        )
        for name, fit in fitters.items():
            row = []
            for s_t, y_t, fit_on in cells:
                idx = halves[fit_on]
                cal = fit(
                    np.concatenate([scores[i] for i in idx]),
                    np.concatenate([labels[i] for i in idx]),
                )
                row.append(f"{expected_calibration_error(cal(s_t), y_t, b):21.4f}")
            print(f"{name:<46} " + " ".join(row))

    if args.write:
        if args.metric != "ngram":
            sys.exit("--write refreshes the shipped ngram calibration; use --metric ngram")
        cal = Calibrator.fit(
            s_all,
            y_all,
            method=args.method,
            metric=metric_part(sig),  # without the library version: valid across releases
            name="ngram-wikibio",
            description=DESCRIPTION.format(method=args.method, prior=args.prior),
            prior=args.prior if args.method != "platt" else 0.0,
        )
        cal.save(OUT)
        print(
            f"\nwrote {OUT.relative_to(ROOT)} ({args.method}, prior {args.prior:g}, "
            f"fitted on {y_all.size} sentences)"
        )


if __name__ == "__main__":
    main()
