"""Batch throughput with and without the store: N prompts x 3 repeats against a loopback server.

The server (``benchmarks/_echo_server.py``) runs in a child process with an injected latency
(50 ms by default); each configuration runs in a fresh client process, so its CPU time and
peak memory are its own:

- ``no store``: ``Ensemble.map`` over the prompts, one ``OpenAIModel``, ``repeats=3``;
- ``store``: the same with ``store=Store(fresh file)`` (every sample committed as it comes
  back);
- ``rerun``: the same store again (every sample replayed, no call sent).

Printed: wall time, client CPU per call (``time.process_time`` / calls, the vote included),
peak RSS and its growth over the run, then the store's overhead per sample (CPU with store
minus without, per call; medians over ``--runs``), and a micro-benchmark of ``Store.put`` and
``Store.get`` alone.

Run: ``.venv/bin/python benchmarks/throughput.py [--prompts 1000] [--runs 3] [--latency 0.05]
[--concurrency 64] [--transport httpx|aiohttp]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPEATS = 3


def child(args: argparse.Namespace) -> None:
    from ensemble import Consensus, Ensemble, RetryPolicy, Store
    from ensemble.models.openai import OpenAIModel

    store = Store(args.store) if args.store else None
    model = OpenAIModel("m", base_url=args.url, api_key="sk-bench", transport=args.transport)
    ens = Ensemble(
        models=[model],
        repeats=REPEATS,
        store=store,
        max_concurrency=args.concurrency,
        max_per_provider=args.concurrency,
        retry=RetryPolicy(max_attempts=2),
        deadline=None,
    )
    prompts = [f"prompt number {i}" for i in range(args.prompts)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = ens.map(prompts)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ok = sum(isinstance(r, Consensus) for r in results)
    out = {
        "wall": wall,
        "cpu": cpu,
        "calls": len(prompts) * REPEATS,
        "sent": ens._durable.drawn,
        "replayed": ens._durable.replayed,
        "ok": ok,
        "rss_mb": rss / 1024,
        "rss_growth_mb": (rss - rss0) / 1024,
    }
    print(json.dumps(out))


def run_child(url: str, args: argparse.Namespace, store: Path | None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--url",
        url,
        "--prompts",
        str(args.prompts),
        "--concurrency",
        str(args.concurrency),
        "--transport",
        args.transport,
    ]
    if store is not None:
        cmd += ["--store", str(store)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def micro(n: int = 3000) -> tuple[float, float]:
    """Seconds per ``Store.put`` (with its commit) and per ``Store.get`` hit."""
    from ensemble import Sample, Store, Usage

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "m.db")
        sample = Sample(
            text="Answer to prompt number 123.",
            model="openai:m",
            repeat=1,
            seed=12345,
            latency=0.05,
            usage=Usage(input_tokens=9, output_tokens=4),
            finish_reason="stop",
            request_id="req-1",
        )
        doc = json.dumps({"model": "openai:m", "messages": [["user", "prompt number 123"]]})
        t0 = time.perf_counter()
        for i in range(n):
            store.put(f"{i:064x}", doc, sample)
        put = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for i in range(n):
            store.get(f"{i:064x}")
        get = (time.perf_counter() - t0) / n
        store.close()
    return put, get


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], default="httpx")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    import _echo_server

    proc, url = _echo_server.start(args.latency)
    rows: dict[str, list[dict[str, Any]]] = {"no store": [], "store": [], "rerun": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.runs):
                db = Path(tmp) / f"run{k}.db"
                rows["no store"].append(run_child(url, args, None))
                rows["store"].append(run_child(url, args, db))
                rows["rerun"].append(run_child(url, args, db))
                wal = Path(f"{db}-wal")
                size = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    finally:
        _echo_server.stop(proc)
    put, get = micro()

    calls = args.prompts * REPEATS
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPU(s), load average {load:.2f}")
    print(
        f"{args.prompts} prompts x {REPEATS} repeats = {calls} calls, latency "
        f"{args.latency * 1000:.0f} ms, {args.concurrency} in flight, transport "
        f"{args.transport}, {args.runs} run(s) (medians)"
    )
    print(
        f"  {'':10s} {'wall s':>8s} {'calls/s':>8s} {'CPU ms/call':>12s} {'sent':>6s} "
        f"{'replayed':>8s} {'peak RSS MB':>12s} {'growth MB':>10s}"
    )
    med: dict[str, dict[str, float]] = {}
    for name, runs in rows.items():
        m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        med[name] = m
        assert all(r["ok"] == args.prompts for r in runs), f"{name}: failed prompts"
        print(
            f"  {name:10s} {m['wall']:8.2f} {calls / m['wall']:8.0f} "
            f"{m['cpu'] / calls * 1000:12.3f} {m['sent']:6.0f} {m['replayed']:8.0f} "
            f"{m['rss_mb']:12.1f} {m['rss_growth_mb']:10.1f}"
        )
    overhead = (med["store"]["cpu"] - med["no store"]["cpu"]) / calls
    ratio = med["store"]["wall"] / med["no store"]["wall"]
    print(
        f"store overhead: {overhead * 1000:+.3f} ms CPU per sample (store minus no store), "
        f"wall ratio {ratio:.2f}x; store file {size / 1e6:.1f} MB for {calls} samples"
    )
    print(f"Store.put (with commit): {put * 1e6:.0f} us; Store.get (hit): {get * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
