"""Scale-out on Ray: ``ensemble.ray.score_dataset`` with 1 and 2 actors against the loop.

1. Exactness: the 60 WikiBio dev passages scored through ``score_dataset`` (sentences column,
   ngram) give exactly the confidences of the local ``ensemble.score`` loop (max abs difference).
2. Throughput on a synthetic batch of **unique** passages: copy ``k`` of a dev passage has every
   number shifted by ``k``, every capitalised non-stopword (names, places) given a suffix that
   spells ``k``, and its sentences and samples rotated by ``k``; the same rewrite is applied to
   the passage's samples, so their agreement is kept while no two rows are equal and the word
   caches of the ngram metric meet new names and numbers in every copy. Timed run ``r`` of
   every method scores batch ``r`` (disjoint copies), so no method sees a batch it has scored
   before. Per method, medians over ``--runs`` runs of:

   - the single-process loop (``ensemble.score`` per row, in this process);
   - the actor's own code in this process, without Ray (``_Scorer`` on Arrow batches): what
     ``score_dataset`` adds per row before Ray adds anything (lists from Arrow, the Consensus
     JSON, the output table);
   - ``score_dataset`` with 1 and 2 actors on a local ``ray.init(num_cpus=2)``.

   For Ray, **wall** is from the start of execution to the last result on the driver (it includes
   starting the actor pool: each actor imports ensemble and builds its metric), and
   **steady** is the throughput after the first result arrived (rows after the first output
   block / time from its arrival to the last): the actors are up and serving. The pool's
   start-up is also timed alone (a job of one row per actor), and ``ray.init`` once. The
   headline ratio, "2 actors vs loop", uses **steady** throughput; the wall ratio is printed
   next to it. The methods take turns batch by batch, so a change in the machine's load falls
   on all of them alike. CPU per passage (the loop's process time; the actors' summed from
   Ray Data's stats) does not depend on the load: it shows what Ray costs per row.

The load average is printed at the start and the end: the ratios only mean something on idle
cores (another job on the machine takes a core from the actors, not from the loop's baseline
measured at another moment).

Run (from the repository root; needs the ``ray`` extra; about 2 minutes on 2 idle cores)::

    RAY_USAGE_STATS_ENABLED=0 python benchmarks/ray_scale.py [--copies 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing phones home

from _wikibio import DEFAULT_DATA, ROOT, Passage, confidences, load

from ensemble.metrics.ngram import STOPWORDS
from ensemble.ray import _Scorer, score_dataset

_NUMBER = re.compile(r"\d+")
_CAPITAL = re.compile(r"\b[A-Z][a-z]+\b")


def _tag(k: int) -> str:
    """``k >= 1`` in bijective base 26 (a, b, ..., z, aa, ab, ...)."""
    out = ""
    while k:
        k, r = divmod(k - 1, 26)
        out = chr(97 + r) + out
    return out


def _rewrite(text: str, k: int) -> str:
    tag = _tag(k)
    text = _NUMBER.sub(lambda m: str(int(m.group()) + k), text)
    return _CAPITAL.sub(
        lambda m: m.group() if m.group().lower() in STOPWORDS else m.group() + tag, text
    )


def _rotate(items: list[str], k: int) -> list[str]:
    k %= max(1, len(items))
    return items[k:] + items[:k]


def _synthetic(passages: list[Passage], copies: range) -> list[Passage]:
    """Copy ``k`` (``k >= 1``) of every passage, rewritten as described in the module docstring."""
    out = []
    for k in copies:
        for p in passages:
            out.append(
                {
                    "gpt3_sentences": _rotate([_rewrite(s, k) for s in p["gpt3_sentences"]], k),
                    "gpt3_text_samples": _rotate(
                        [_rewrite(s, k) for s in p["gpt3_text_samples"]], k
                    ),
                }
            )
    unique = {tuple(p["gpt3_sentences"]) for p in out}
    if len(unique) != len(out):
        raise SystemExit(f"the synthetic batch repeats rows: {len(out) - len(unique)} duplicates")
    return out


def _rows(passages: list[Passage]) -> list[dict[str, Any]]:
    return [
        {"id": i, "sentences": p["gpt3_sentences"], "samples": p["gpt3_text_samples"]}
        for i, p in enumerate(passages)
    ]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _in_process(table: Any, batch_size: int) -> None:
    scorer = _Scorer("ngram", None, "sentences", "samples", None, None, "model", None)
    for start in range(0, table.num_rows, batch_size):
        scorer(table.slice(start, batch_size))


#: Ray Data's stats line for the scoring operator's CPU time summed over its tasks (Ray 2.x
#: wording; the figure is left out if it changes).
_CPU = re.compile(
    r"MapBatches\(_Scorer\).*?\n\* Remote cpu time: .*? ([0-9.]+)(us|ms|s) total", re.DOTALL
)
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


class _Run(NamedTuple):
    wall: float  # seconds, start of execution to the last result on the driver
    steady: float  # rows per second after the first result arrived
    cpu: float | None  # CPU seconds of the scoring operator, all actors together
    got: dict[int, Any]  # {id: confidences}


def _ray_run(ray: Any, ds: Any, workers: int, batch_size: int) -> _Run:
    """One execution of score_dataset over ``ds``."""
    n = ds.count()
    start = time.perf_counter()
    # Read only the columns needed on the driver: a select_columns() here would be a Ray task
    # that needs a CPU, and with one actor per CPU it would wait for the actors to finish.
    out = score_dataset(
        ds, sentences_column="sentences", concurrency=workers, batch_size=batch_size
    )
    got: dict[int, Any] = {}
    first: tuple[float, int] | None = None
    for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
        errors = [e for e in batch.column("error").to_pylist() if e is not None]
        if errors:
            raise SystemExit(f"{len(errors)} rows failed, e.g. {errors[0]}")
        ids = batch.column("id").to_pylist()
        got.update(zip(ids, batch.column("confidences").to_pylist(), strict=True))
        if first is None:
            first = (time.perf_counter(), len(ids))
    end = time.perf_counter()
    assert first is not None and len(got) == n
    steady = (n - first[1]) / (end - first[0]) if end > first[0] else float("nan")
    found = _CPU.search(out.stats())
    cpu = float(found.group(1)) * _UNIT[found.group(2)] if found else None
    return _Run(end - start, steady, cpu, got)


def _cpu_timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (this process) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _pool_startup(ray: Any, passages: list[Passage], workers: int) -> float:
    """Seconds of a job of one row per actor: starting the pool, next to nothing scored."""
    return _timed(lambda: _ray_run(ray, ray.data.from_items(_rows(passages[:workers])), workers, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--copies", type=int, default=20, help="unique copies per run")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per method (median)")
    parser.add_argument("--batch-size", type=int, default=16, help="score_dataset's batch_size")
    parser.add_argument("--blocks", type=int, default=64, help="input blocks per batch")
    args = parser.parse_args()
    passages = load(args.data)
    print(f"load average at start: {_load()} (1/5/15 min; {os.cpu_count()} cores)")

    import pyarrow as pa
    import ray

    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([path] if path else [])])
    init_s = _timed(
        lambda: ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1"
        )
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-execution INFO lines
    try:
        print(f"ray.init: {init_s:.2f} s (once; in no figure below)")
        # 1. exactness on the 60 dev passages
        local = [list(c) for c in confidences(passages, "ngram")]
        got = _ray_run(ray, ray.data.from_items(_rows(passages)), 2, args.batch_size).got
        diff = max(
            abs(a - b) for i, conf in enumerate(local) for a, b in zip(conf, got[i], strict=True)
        )
        same = all(got[i] == conf for i, conf in enumerate(local))
        n_sent = sum(len(c) for c in local)
        print(
            f"exactness: {len(passages)} passages, {n_sent} sentences; "
            f"max |ray - local| = {diff:.3g}; identical: {same}"
        )

        # 2. throughput: batch r for timed run r of every method
        batches = [
            _synthetic(passages, range(1 + r * args.copies, 1 + (r + 1) * args.copies))
            for r in range(args.runs)
        ]
        n = len(batches[0])
        tables = [pa.Table.from_pylist(_rows(b)) for b in batches]
        datasets = [ray.data.from_arrow(t).repartition(args.blocks).materialize() for t in tables]
        print(
            f"batch: {n} unique passages per run ({args.copies} rewritten copies of "
            f"{len(passages)}), {args.runs} runs per method (medians below), "
            f"batch_size {args.batch_size}, {args.blocks} input blocks"
        )
        # The methods take turns (loop, actor code, 1 actor, 2 actors; then the next batch), so
        # that a change in the machine's load falls on all of them alike.
        startup = {w: _pool_startup(ray, passages, w) for w in (1, 2)}
        loop, inproc, ray_runs = [], [], {1: [], 2: []}
        for batch, table, ds in zip(batches, tables, datasets, strict=True):
            loop.append(_cpu_timed(lambda b=batch: confidences(b, "ngram")))
            inproc.append(_cpu_timed(lambda t=table: _in_process(t, args.batch_size)))
            for workers in (1, 2):
                ray_runs[workers].append(_ray_run(ray, ds, workers, args.batch_size))
        base = statistics.median(w for w, _ in loop)
        base_cpu = statistics.median(c for _, c in loop)
        runs_text = ", ".join(f"{w:.2f}" for w, _ in loop)
        print(
            f"  loop, 1 process:    {base:6.2f} s, {n / base:6.1f} passages/s; "
            f"CPU {1000 * base_cpu / n:.2f} ms/passage (runs {runs_text} s)"
        )
        mid = statistics.median(w for w, _ in inproc)
        mid_cpu = statistics.median(c for _, c in inproc)
        print(
            f"  actor code, no Ray: {mid:6.2f} s, {n / mid:6.1f} passages/s ({base / mid:.2f}x "
            f"the loop); CPU {1000 * mid_cpu / n:.2f} ms/passage"
        )
        steady: dict[int, float] = {}
        wall: dict[int, float] = {}
        for workers, runs in ray_runs.items():
            wall[workers] = w = statistics.median(r.wall for r in runs)
            steady[workers] = v = statistics.median(r.steady for r in runs)
            cpus = [r.cpu for r in runs if r.cpu is not None]
            cpu_text = f"{1000 * statistics.median(cpus) / n:.2f} ms/passage" if cpus else "n/a"
            print(
                f"  ray, {workers} actor(s): wall {w:6.2f} s, {n / w:6.1f} passages/s "
                f"({base / w:.2f}x the loop); steady {v:6.1f} passages/s "
                f"({v * base / n:.2f}x the loop); actors' CPU {cpu_text}; "
                f"pool start-up alone {startup[workers]:.2f} s"
            )
        print(
            f"  2 actors vs the loop: steady {steady[2] * base / n:.2f}x (the headline), "
            f"wall {base / wall[2]:.2f}x"
        )
        print(
            f"  2 actors vs 1 actor:  steady {steady[2] / steady[1]:.2f}x, "
            f"wall {wall[1] / wall[2]:.2f}x"
        )
        print(f"load average at end: {_load()}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
