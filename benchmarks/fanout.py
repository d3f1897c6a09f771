"""Fan-out benchmark: 64 calls (8 models x 8 repeats) against a loopback server.

The server runs in a child process (so its CPU is not counted as the client's), speaks OpenAI
Chat Completions on 127.0.0.1 on a free port, and answers every request after an injected
latency (200 ms by default). The client is the real stack: ``ensemble.Ensemble`` with eight
``OpenAIModel`` adapters going through the official ``openai`` SDK.

Printed figures (medians over ``--runs`` runs after one warm-up run):

- one call: wall time of a single ``model.agenerate`` (the latency the fan-out is compared to);
- fan-out: wall time of ``Ensemble.asample`` for all 64 calls, and its ratio to one call
  (target <= 1.25x) and to the injected latency;
- client CPU seconds per call (``time.process_time`` of this process / 64);
- run with vote: ``Ensemble.arun`` (fan-out + ngram consensus over the 64 samples).

Run: ``.venv/bin/python benchmarks/fanout.py [--latency 0.2] [--runs 7]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = 8
REPEATS = 8

_ANSWERS = [
    "Paris is the capital of France.",
    "The capital of France is Paris.",
    "Paris is the capital city of France.",
]


# --- the server (child process) ----------------------------------------------------------------


async def _serve(latency: float) -> None:
    counter = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                counter += 1
                n = counter
                await asyncio.sleep(latency)
                text = _ANSWERS[n % len(_ANSWERS)]
                payload = json.dumps(
                    {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "m"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 7},
                    }
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"x-request-id: req-{n}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    server.close()


# --- the client ----------------------------------------------------------------------------


async def _measure(url: str, runs: int) -> dict[str, float]:
    from ensemble import Ensemble, OpenAIModel, Request

    models = [OpenAIModel(f"m{i}", base_url=url, api_key="bench") for i in range(MODELS)]
    ens = Ensemble(
        models=models,
        repeats=REPEATS,
        max_concurrency=MODELS * REPEATS,
        max_per_provider=MODELS * REPEATS,
        timeout=30.0,
        deadline=60.0,
        seed=0,
    )
    async with ens:
        await ens.asample("warm-up")  # clients, connection pools, lazy imports
        singles = []
        for _ in range(max(runs, 5)):
            started = time.perf_counter()
            await models[0].agenerate(Request(prompt="one call"))
            singles.append(time.perf_counter() - started)
        walls, cpus, votes = [], [], []
        for _ in range(runs):
            cpu = time.process_time()
            started = time.perf_counter()
            samples = await ens.asample("What is the capital of France?")
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            assert len(samples) == MODELS * REPEATS and all(s.ok for s in samples)
        for _ in range(max(1, runs // 2)):
            started = time.perf_counter()
            result = await ens.arun("What is the capital of France?")
            votes.append(time.perf_counter() - started)
            assert result.text in _ANSWERS
    return {
        "single": statistics.median(singles),
        "fanout": statistics.median(walls),
        "fanout_min": min(walls),
        "fanout_max": max(walls),
        "cpu_per_call": statistics.median(cpus) / (MODELS * REPEATS),
        "with_vote": statistics.median(votes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="injected seconds per call")
    parser.add_argument("--runs", type=int, default=7, help="measured runs (median reported)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.latency))
        return 0
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency", str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        figures = asyncio.run(_measure(f"http://127.0.0.1:{port}/v1", args.runs))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
    calls = MODELS * REPEATS
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPU(s), load average {load:.2f} (other work skews the wall)")
    print(
        f"fan-out: {calls} calls ({MODELS} models x {REPEATS} repeats), injected latency "
        f"{args.latency * 1000:.0f} ms, {args.runs} runs (medians)"
    )
    print(f"  one call                 {figures['single'] * 1000:8.1f} ms")
    print(
        f"  fan-out (asample)        {figures['fanout'] * 1000:8.1f} ms "
        f"(min {figures['fanout_min'] * 1000:.1f}, max {figures['fanout_max'] * 1000:.1f})"
    )
    ratio = figures["fanout"] / figures["single"]
    print(f"  ratio to one call        {ratio:8.2f} x  (target <= 1.25)")
    print(f"  ratio to the latency     {figures['fanout'] / args.latency:8.2f} x")
    print(f"  client CPU per call      {figures['cpu_per_call'] * 1000:8.2f} ms")
    print(f"  run with ngram vote      {figures['with_vote'] * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
