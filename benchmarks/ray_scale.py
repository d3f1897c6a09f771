"""Scale-out on Ray: ``ensemble.ray.score_dataset`` against the single-process loop.

1. Exactness: the 60 WikiBio dev passages scored through ``score_dataset`` (sentences column,
   ngram) give exactly the confidences of the local ``ensemble.score`` loop (max abs difference).
2. Throughput: the passages repeated ``--copies`` times, scored by the single-process loop and
   by ``score_dataset`` with 1 and 2 actors on a local Ray (``ray.init(num_cpus=2)``). Ray's wall
   time includes starting the actor pool (each actor imports ensemble and builds its metric),
   which is also measured on its own (one row per actor), and Ray Data's own time for the
   scoring operator (first task to last output, pool start-up left out) is printed too. The
   loop runs warm (the exactness pass filled its word caches; each actor fills its own). The
   load average is printed, since the ratio only means something on idle cores.

Run (from the repository root; needs the ``ray`` extra)::

    RAY_USAGE_STATS_ENABLED=0 python benchmarks/ray_scale.py [--data PATH] [--copies 64]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing phones home

from _wikibio import DEFAULT_DATA, ROOT, Passage, confidences, load

from ensemble.ray import score_dataset


def _rows(passages: list[Passage], copies: int) -> list[dict[str, Any]]:
    return [
        {
            "id": c * len(passages) + i,
            "sentences": p["gpt3_sentences"],
            "samples": p["gpt3_text_samples"],
        }
        for c in range(copies)
        for i, p in enumerate(passages)
    ]


#: Ray Data's stats line for the scoring operator: its time from first task to last output,
#: which leaves out starting the actor pool (Ray 2.x wording; "n/a" if it changes).
_OPERATOR = re.compile(r"MapBatches\(_Scorer\): .*? produced in ([0-9.]+)\s*s")


def _ray_scores(
    ray: Any, rows: list[dict[str, Any]], workers: int
) -> tuple[float, float | None, dict[int, Any]]:
    """Wall seconds, the scoring operator's seconds and ``{id: confidences}`` of one
    score_dataset execution."""
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 8 * workers)))
    start = time.perf_counter()
    out = score_dataset(ds, sentences_column="sentences", concurrency=workers, batch_size=8)
    out = out.materialize()
    got = {r["id"]: r for r in out.take_all()}
    wall = time.perf_counter() - start
    bad = [r["error"] for r in got.values() if r["error"] is not None]
    if bad:
        raise SystemExit(f"{len(bad)} rows failed, e.g. {bad[0]}")
    found = _OPERATOR.search(out.stats())
    operator = float(found.group(1)) if found else None
    return wall, operator, {i: list(r["confidences"]) for i, r in got.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--copies", type=int, default=64, help="copies of the 60 passages")
    parser.add_argument("--runs", type=int, default=1, help="timed runs per setting (median)")
    args = parser.parse_args()
    passages = load(args.data)

    import ray

    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([path] if path else [])])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)")
        # 1. exactness on the 60 dev passages
        local = [list(c) for c in confidences(passages, "ngram")]
        _, _, got = _ray_scores(ray, _rows(passages, 1), 2)
        diff = max(
            abs(a - b) for i, conf in enumerate(local) for a, b in zip(conf, got[i], strict=True)
        )
        same = all(got[i] == conf for i, conf in enumerate(local))
        n_sent = sum(len(c) for c in local)
        print(
            f"exactness: {len(passages)} passages, {n_sent} sentences; "
            f"max |ray - local| = {diff:.3g}; identical: {same}"
        )

        # 2. throughput on a larger batch
        rows = _rows(passages, args.copies)
        many = passages * args.copies
        loop_s = []
        for _ in range(args.runs):
            start = time.perf_counter()
            confidences(many, "ngram")
            loop_s.append(time.perf_counter() - start)
        base = statistics.median(loop_s)
        print(f"batch: {len(rows)} passages ({args.copies} copies of {len(passages)})")
        print(f"  single-process loop: {base:.2f} s, {len(rows) / base:.1f} passages/s")
        ray_wall: dict[int, float] = {}
        ray_op: dict[int, float | None] = {}
        for workers in (1, 2):
            startup = _ray_scores(ray, rows[:workers], workers)[0]
            runs = [_ray_scores(ray, rows, workers) for _ in range(args.runs)]
            wall = ray_wall[workers] = statistics.median(r[0] for r in runs)
            ops = [r[1] for r in runs if r[1] is not None]
            op = ray_op[workers] = statistics.median(ops) if ops else None
            op_text = f"{op:.2f} s" if op is not None else "n/a"
            print(
                f"  ray, {workers} worker(s): {wall:.2f} s, {len(rows) / wall:.1f} passages/s, "
                f"{base / wall:.2f}x the loop; scoring operator alone {op_text} "
                f"(pool start-up alone: {startup:.2f} s)"
            )
        print(f"  2 workers / 1 worker, wall: {ray_wall[1] / ray_wall[2]:.2f}x")
        op1, op2 = ray_op[1], ray_op[2]
        if op1 is not None and op2 is not None:
            print(f"  2 workers / 1 worker, scoring operator: {op1 / op2:.2f}x")
        print(f"load average at end: {os.getloadavg()[0]:.2f} (2 cores)")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
