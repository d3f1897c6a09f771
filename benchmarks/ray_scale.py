"""``ensemble.ray.score_dataset`` against the single-process loop, with 1 and 2 workers.

The batch is the 60 WikiBio dev passages (``../shared/data/wikibio_dev.json``, read-only) with
their 20 samples each, repeated ``--copies`` times (a synthetic batch of a few seconds of work
or more), scored by sentence with the ``ngram`` metric:

- local: ``ensemble.score`` in a loop in this process;
- Ray: ``score_dataset(..., workers=W)`` on a local Ray (``ray.init(num_cpus=2)``), for
  W = 1 and 2, timed from the dataset's creation to the last row (actor start-up included).

Printed: wall time of each, rows per second, the speed-up over the local loop, and whether every
row's confidences equal the local ones.

Run: ``.venv/bin/python benchmarks/ray_scale.py [--copies 4] [--batch-size 8] [--data PATH]``
(``--data`` when the repository is not next to ``shared/``, e.g. in a worktree).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikibio_dev.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import ray

    import ensemble
    from ensemble.ray import score_dataset

    passages = json.loads(args.data.read_text())
    rows = [
        {
            "id": k * len(passages) + i,
            "sentences": p["gpt3_sentences"],
            "samples": p["gpt3_text_samples"],
        }
        for k in range(args.copies)
        for i, p in enumerate(passages)
    ]
    t0 = time.perf_counter()
    local = [
        [s.confidence for s in ensemble.score(sentences=r["sentences"], samples=r["samples"]).spans]
        for r in rows
    ]
    wall_local = time.perf_counter() - t0

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    figures: dict[int, tuple[float, bool]] = {}
    try:
        for workers in (1, 2):
            t0 = time.perf_counter()
            # a few large blocks: per-block scheduling costs more than the scoring of a row
            ds = ray.data.from_items(rows, override_num_blocks=4 * workers)
            out = score_dataset(
                ds, sentences_column="sentences", workers=workers, batch_size=args.batch_size
            ).take_all()
            wall = time.perf_counter() - t0
            got = {r["id"]: list(r["confidences"]) for r in out}
            same = all(got[r["id"]] == c for r, c in zip(rows, local, strict=True))
            figures[workers] = (wall, same)
    finally:
        ray.shutdown()

    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
    print(f"{len(rows)} rows ({len(passages)} WikiBio passages x {args.copies}), metric ngram")
    print(f"  local loop:      {wall_local:7.2f} s  {len(rows) / wall_local:6.1f} rows/s")
    for workers, (wall, same) in figures.items():
        print(
            f"  Ray, {workers} worker(s): {wall:7.2f} s  {len(rows) / wall:6.1f} rows/s  "
            f"x{wall_local / wall:.2f} vs local; equal to local: {same}"
        )
    return 0 if all(same for _w, same in figures.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
