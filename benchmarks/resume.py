"""kill -9 a batch, resume it, run it a third time: what the server sees, and the results.

``ensemble batch`` (a child process) runs N prompts x 2 models x 3 repeats with ``--store``
against the loopback server of ``benchmarks/_echo_server.py`` (50 ms latency), which logs every
request as it arrives. The first run is killed with SIGKILL once about 40% of the calls have
been sent; the second run resumes it to the end; the third run should send nothing. A fourth
run on a fresh store, never interrupted, is the reference.

Printed: the calls each run sent, the calls in flight at the kill (sent, not answered), how
many (prompt, model, seed) were asked twice (must not exceed the calls in flight), whether
every (prompt, model, repeat) was asked, whether runs 2 and 3 wrote byte-identical output,
and whether their consensus texts and confidences equal the reference run's.

Run: ``.venv/bin/python benchmarks/resume.py [--prompts 200] [--kill-at 0.4]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = ("openai:a", "openai:b")
REPEATS = 3


def events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line being written
            out.append(json.loads(line))
    return out


def batch(url: str, src: Path, out: Path, db: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "ensemble", "batch", str(src), "-o", str(out)]
    cmd += ["--store", str(db), "--base-url", url, "-n", str(REPEATS), "--concurrency", "16"]
    for m in MODELS:
        cmd += ["-m", m]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(path: Path) -> list[tuple[Any, str, tuple[float, ...]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        (r["id"], r["consensus"]["text"], tuple(s["confidence"] for s in r["consensus"]["spans"]))
        for r in rows
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of calls sent")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    import _echo_server

    calls = args.prompts * len(MODELS) * REPEATS
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        src, db, log = t / "in.jsonl", t / "s.db", t / "server.log"
        src.write_text(
            "".join(
                json.dumps({"id": i, "prompt": f"Question {i}: name a city."}) + "\n"
                for i in range(args.prompts)
            )
        )
        proc, url = _echo_server.start(args.latency, log)
        try:
            first = batch(url, src, t / "out1.jsonl", db)
            while sum(e["event"] == "request" for e in events(log)) < args.kill_at * calls:
                if first.poll() is not None:
                    raise SystemExit("the first run ended before the kill")
                time.sleep(0.005)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            at_kill = events(log)
            sent1 = sum(e["event"] == "request" for e in at_kill)
            answered1 = sum(e["event"] == "answered" for e in at_kill)
            time.sleep(2 * args.latency + 0.2)
            with sqlite3.connect(db) as con:
                committed = int(con.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
            before2 = sum(e["event"] == "request" for e in events(log))

            assert batch(url, src, t / "out2.jsonl", db).wait(600) == 0
            before3 = sum(e["event"] == "request" for e in events(log))
            assert batch(url, src, t / "out3.jsonl", db).wait(600) == 0
            after3 = sum(e["event"] == "request" for e in events(log))
            requests = [e for e in events(log) if e["event"] == "request"]

            ref_log_mark = len(requests)
            assert batch(url, src, t / "ref.jsonl", t / "fresh.db").wait(600) == 0
        finally:
            _echo_server.stop(proc)

        seen = Counter((e["prompt"], e["model"], e["seed"]) for e in requests[:ref_log_mark])
        twice = sum(1 for c in seen.values() if c > 1)
        identical = (t / "out2.jsonl").read_bytes() == (t / "out3.jsonl").read_bytes()
        same_as_ref = summary(t / "out2.jsonl") == summary(t / "ref.jsonl")

    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPU(s), load average {load:.2f}")
    print(
        f"{args.prompts} prompts x {len(MODELS)} models x {REPEATS} repeats = {calls} calls, "
        f"latency {args.latency * 1000:.0f} ms, 16 in flight"
    )
    print(
        f"run 1 (killed): {sent1} sent, {answered1} answered by the server, {committed} "
        f"committed to the store; {sent1 - committed} sent and not committed (in flight)"
    )
    print(f"run 2 (resume): {before3 - before2} sent")
    print(f"run 3:          {after3 - before3} sent")
    print(
        f"distinct (prompt, model, seed) asked: {len(seen)} of {calls}; asked twice: {twice} "
        f"(expected: the {sent1 - committed} in flight at the kill)"
    )
    print(f"runs 2 and 3 wrote identical output: {identical}")
    print(f"consensus texts and confidences equal the uninterrupted reference: {same_as_ref}")
    ok = len(seen) == calls and twice == sent1 - committed and after3 == before3
    return 0 if ok and identical and same_as_ref else 1


if __name__ == "__main__":
    raise SystemExit(main())
