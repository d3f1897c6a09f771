"""Long-form fusion on WikiBio: what ``method="fuse"`` keeps of 20 GPT-3 biographies, and what
it costs.

For each passage of ``wikibio_dev.json`` (0-29 and 30-59 reported apart) the 20 samples are
fused with the ``ngram`` metric (library defaults unless told). Printed per half:

* **kept**: fused sentences per passage (mean) and passages with an empty fused text;
* **support / confidence**: the mean vote share (``Claim.support``) and the mean
  ``Span.confidence`` of the kept sentences;
* **proxy accuracy**: the labels belong to the *main* passage, not to the samples, so a fused
  sentence is checked only where it matches a labelled sentence of the main passage: the one
  with the highest mutual ``ngram`` agreement ``min(A[f, m], A[m, f])``, if that is at least
  ``--match`` (0.5). Printed: the share of fused sentences that match, and among the matches
  the share labelled ``accurate`` and the mean label (accurate 0, minor 0.5, major 1). The same
  is printed for the sentences of the *selected* sample (``method="select"``), matched the same
  way, and the base rate of the main passage's own sentences.
* **cost**: median wall time (and CPU time of the process, all threads) to fuse the 20
  samples of a passage (after one warm-up call), next to ``select``; and, for the scaling,
  the time to fuse 20 samples made ``k`` times longer (each sample repeated ``k`` times with
  its sentences numbered, so they stay distinct).

Run from the repository root::

    python benchmarks/fuse_wikibio.py
    python benchmarks/fuse_wikibio.py --join 0.3 --quorum 0.3 --no-contain --no-scaling
    python benchmarks/fuse_wikibio.py --no-lead --no-scaling   # the quorum alone
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

from _wikibio import DEFAULT_DATA, LABELS, Passage, load  # noqa: E402

import ensemble  # noqa: E402
from ensemble.fuse import (  # noqa: E402
    DEFAULT_CONTAIN,
    DEFAULT_FLOOR,
    DEFAULT_JOIN,
    DEFAULT_QUORUM,
    DEFAULT_WITNESSES,
    fuse,
)
from ensemble.metrics.ngram import NgramMetric  # noqa: E402

METRIC = NgramMetric()


def matched_labels(sentences: Sequence[str], passage: Passage, threshold: float) -> list[float]:
    """The main passage's label of each sentence that matches one of its sentences."""
    if not sentences:
        return []
    main = list(passage["gpt3_sentences"])
    a = METRIC.agreement([*sentences, *main])
    n = len(sentences)
    mutual = np.minimum(a[:n, n:], a[n:, :n].T)
    out = []
    for k in range(n):
        j = int(np.argmax(mutual[k]))
        if mutual[k, j] >= threshold:
            out.append(LABELS[passage["annotation"][j]])
    return out


def _half(passages: Sequence[Passage], args: argparse.Namespace) -> dict[str, Any]:
    kept, empty, support, conf = [], 0, [], []
    fused_labels: list[float] = []
    select_labels: list[float] = []
    fused_n = select_n = 0
    t_fuse, t_select, cpu_fuse = [], [], []
    for p in passages:
        samples = p["gpt3_text_samples"]
        t0, c0 = time.perf_counter(), time.process_time()
        r = fuse(
            samples,
            metric=METRIC,
            join=args.join,
            quorum=args.quorum,
            contain=args.contain,
            floor=args.floor,
            witnesses=args.witnesses,
        )
        t_fuse.append(time.perf_counter() - t0)
        cpu_fuse.append(time.process_time() - c0)
        t0 = time.perf_counter()
        s = ensemble.consensus(samples, metric=METRIC)
        t_select.append(time.perf_counter() - t0)
        kept.append(len(r.claims))
        empty += not r.claims
        support.extend(c.support for c in r.claims)
        conf.extend(x.confidence for x in r.spans)
        fused_n += len(r.spans)
        fused_labels += matched_labels([x.text for x in r.spans], p, args.match)
        select_n += len(s.spans)
        select_labels += matched_labels([x.text for x in s.spans], p, args.match)
    return {
        "kept": statistics.fmean(kept),
        "empty": empty,
        "support": statistics.fmean(support) if support else float("nan"),
        "confidence": statistics.fmean(conf) if conf else float("nan"),
        "fused": (fused_n, fused_labels),
        "select": (select_n, select_labels),
        "t_fuse": statistics.median(t_fuse),
        "t_select": statistics.median(t_select),
        "cpu_fuse": statistics.median(cpu_fuse),
        "base": [LABELS[a] for p in passages for a in p["annotation"]],
    }


def _proxy(name: str, n: int, labels: Sequence[float]) -> str:
    if not labels:
        return f"    {name:<8} {n:4d} sentences, none matches the main passage"
    acc = sum(x == 0.0 for x in labels) / len(labels)
    return (
        f"    {name:<8} {n:4d} sentences, {len(labels):4d} match ({len(labels) / max(n, 1):.0%})"
        f": {acc:.1%} accurate, mean label {statistics.fmean(labels):.3f}"
    )


def _scaling(passage: Passage, ks: Sequence[int]) -> None:
    print("scaling (passage 0, 20 samples, each k times longer):")
    for k in ks:
        samples = []
        for text in passage["gpt3_text_samples"]:
            offsets = METRIC.segment(text)
            parts = [
                f"Part {r} item {i}: {text[a:b]}"
                for r in range(k)
                for i, (a, b) in enumerate(offsets)
            ]
            samples.append(" ".join(parts))
        n = sum(len(METRIC.segment(t)) for t in samples)
        t0 = time.perf_counter()
        fuse(samples, metric=METRIC)
        dt = time.perf_counter() - t0
        print(f"  k={k:<2} {n:5d} sentences: {dt:7.2f} s ({dt / n * 1000:.2f} ms per sentence)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--join", type=float, default=DEFAULT_JOIN)
    parser.add_argument("--quorum", type=float, default=DEFAULT_QUORUM)
    parser.add_argument("--contain", type=float, default=DEFAULT_CONTAIN)
    parser.add_argument("--no-contain", dest="contain", action="store_const", const=None)
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR)
    parser.add_argument("--no-lead", dest="floor", action="store_const", const=None)
    parser.add_argument("--witnesses", type=float, default=DEFAULT_WITNESSES)
    parser.add_argument("--no-witness", dest="witnesses", action="store_const", const=None)
    parser.add_argument("--match", type=float, default=0.5)
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()
    data = load(args.data)
    fuse(data[0]["gpt3_text_samples"], metric=METRIC)  # warm-up: imports, stemmer cache
    print(
        f"ngram, join {args.join}, quorum {args.quorum}, contain {args.contain}, "
        f"floor {args.floor}, witnesses {args.witnesses}, "
        f"match >= {args.match}"
    )
    for name, lo, hi in (("passages 0-29", 0, 30), ("passages 30-59", 30, 60)):
        res = _half(data[lo:hi], args)
        print(
            f"{name}: kept {res['kept']:.2f} sentences per passage ({res['empty']} passages "
            f"empty), mean support {res['support']:.3f}, mean confidence {res['confidence']:.3f}"
        )
        print(_proxy("fuse", *res["fused"]))
        print(_proxy("select", *res["select"]))
        print(_proxy("main", len(res["base"]), res["base"]))
        print(
            f"    median time per passage: fuse {res['t_fuse'] * 1000:.0f} ms, "
            f"select {res['t_select'] * 1000:.0f} ms; "
            f"fuse CPU time {res['cpu_fuse'] * 1000:.0f} ms"
        )
    if not args.no_scaling:
        _scaling(data[0], (1, 2, 4, 8))


if __name__ == "__main__":
    main()
