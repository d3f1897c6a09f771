"""Fan-out benchmark: 64 calls (8 models x 8 repeats) against a loopback server.

The server runs in a child process (so its CPU is not counted as the client's), speaks OpenAI
Chat Completions on 127.0.0.1 on a free port, and answers every request after an injected
latency (200 ms by default). The client is the real stack: ``ensemble.Ensemble`` with eight
``OpenAIModel`` adapters, measured once per transport:

- ``httpx`` (the default): every call goes through the official ``openai`` SDK's request
  pipeline and httpx;
- ``aiohttp`` (the ``aiohttp`` extra): the lean path, where the SDK supplies the URL and headers
  and the adapter posts the JSON body itself over aiohttp.

Printed figures, per transport (medians over ``--runs`` runs after one warm-up run):

- one call: wall time of a single ``model.agenerate`` (the latency the fan-out is compared to);
- fan-out: wall time of ``Ensemble.asample`` for all 64 calls, and its ratio to one call
  (target <= 1.25x) and to the injected latency;
- client CPU per call (``time.process_time`` of this process / 64);
- run with vote: ``Ensemble.arun`` (fan-out + ngram consensus over the 64 samples);

and the client CPU per call of each layer, one call at a time: plain ``httpx``, plain
``aiohttp``, the ``openai`` SDK, and ``OpenAIModel`` on each transport. All 64 requests share
one event loop on one core, so a fan-out cannot take less than the latency plus about 64 times
the CPU of sending one request: these layers set the floor of the ratio.

Run: ``.venv/bin/python benchmarks/fanout.py [--latency 0.2] [--runs 7] [--transport both]``
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
from collections.abc import Awaitable, Callable
from typing import Any

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


async def _measure(url: str, runs: int, transport: str) -> dict[str, float]:
    from ensemble import Ensemble, OpenAIModel, Request

    models = [
        OpenAIModel(f"m{i}", base_url=url, api_key="bench", transport=transport)
        for i in range(MODELS)
    ]
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


async def _measure_bare(url: str, runs: int) -> dict[str, float]:
    """The same fan-out with no SDK and no ensemble: eight of the SDK's own httpx clients
    (``openai.DefaultAsyncHttpxClient``) posting a prebuilt body: the floor of the default path."""
    import openai

    body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "q"}], "seed": 1}
    ).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    clients = [openai.DefaultAsyncHttpxClient() for _ in range(MODELS)]

    async def one(client: Any) -> None:
        response = await client.post(url + "/chat/completions", content=body, headers=headers)
        json.loads(response.content)

    async def fan() -> None:
        await asyncio.gather(*(one(c) for c in clients for _ in range(REPEATS)))

    try:
        await fan()
        singles, walls = [], []
        for _ in range(max(runs, 5)):
            started = time.perf_counter()
            await one(clients[0])
            singles.append(time.perf_counter() - started)
        for _ in range(runs):
            started = time.perf_counter()
            await fan()
            walls.append(time.perf_counter() - started)
    finally:
        for c in clients:
            await c.aclose()
    return {"single": statistics.median(singles), "fanout": statistics.median(walls)}


async def _layers(url: str, transports: list[str], calls: int = 200) -> dict[str, float]:
    """Client CPU per sequential call of each layer: where the fan-out's CPU goes."""
    import httpx
    import openai

    from ensemble import OpenAIModel, Request

    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "seed": 1}
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    plain = httpx.AsyncClient(follow_redirects=False)
    sdk = openai.AsyncOpenAI(api_key="bench", base_url=url, max_retries=0)
    models = {t: OpenAIModel("m", base_url=url, api_key="bench", transport=t) for t in transports}

    async def httpx_call() -> None:
        response = await plain.post(url + "/chat/completions", content=raw, headers=headers)
        json.loads(response.content)

    async def sdk_call() -> None:
        await sdk.post("/chat/completions", body=body, cast_to=httpx.Response)

    layers: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("cpu_httpx", httpx_call),
        ("cpu_sdk", sdk_call),
    ]
    for t, model in models.items():

        async def adapter(model: OpenAIModel = model) -> None:
            await model.agenerate(Request(prompt="q", seed=1))

        layers.append((f"cpu_adapter_{t}", adapter))
    session = None
    if "aiohttp" in transports:
        import aiohttp

        session = aiohttp.ClientSession()

        async def aiohttp_call() -> None:
            assert session is not None
            async with session.post(url + "/chat/completions", data=raw, headers=headers) as r:
                json.loads(await r.read())

        layers.insert(1, ("cpu_aiohttp", aiohttp_call))
    out: dict[str, float] = {}
    try:
        for name, fn in layers:
            for _ in range(10):
                await fn()
            cpu = time.process_time()
            for _ in range(calls):
                await fn()
            out[name] = (time.process_time() - cpu) / calls
    finally:
        await plain.aclose()
        await sdk.close()
        for model in models.values():
            await model.aclose()
        if session is not None:
            await session.close()
    return out


def _start_server(latency: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="injected seconds per call")
    parser.add_argument("--runs", type=int, default=7, help="measured runs (median reported)")
    parser.add_argument(
        "--transport",
        choices=["httpx", "aiohttp", "both"],
        default="both",
        help="OpenAIModel's transport (aiohttp needs the 'aiohttp' extra)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.latency))
        return 0
    transports = ["httpx", "aiohttp"] if args.transport == "both" else [args.transport]
    servers = [_start_server(args.latency), _start_server(0.0)]  # the second for the layers
    try:
        url, layers_url = (f"http://127.0.0.1:{port}/v1" for _proc, port in servers)
        figures = {t: asyncio.run(_measure(url, args.runs, t)) for t in transports}
        bare = asyncio.run(_measure_bare(url, args.runs)) if "httpx" in transports else None
        layers = asyncio.run(_layers(layers_url, transports))
    finally:
        for proc, _port in servers:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.close()
            proc.wait(10)
            proc.stdout.close()
    calls = MODELS * REPEATS
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPU(s), load average {load:.2f} (other work skews the wall)")
    print(
        f"fan-out: {calls} calls ({MODELS} models x {REPEATS} repeats), injected latency "
        f"{args.latency * 1000:.0f} ms, {args.runs} runs (medians)"
    )
    print(f"  {'transport':24s} " + " ".join(f"{t:>9s}" for t in transports))

    def row(label: str, values: list[float], fmt: str) -> None:
        print(f"  {label:24s} " + " ".join(format(v, fmt) for v in values))

    f = [figures[t] for t in transports]
    row("one call (ms)", [x["single"] * 1000 for x in f], "9.1f")
    row("fan-out (ms)", [x["fanout"] * 1000 for x in f], "9.1f")
    row("  min (ms)", [x["fanout_min"] * 1000 for x in f], "9.1f")
    row("  max (ms)", [x["fanout_max"] * 1000 for x in f], "9.1f")
    row("ratio to one call (x)", [x["fanout"] / x["single"] for x in f], "9.2f")
    row("ratio to the latency (x)", [x["fanout"] / args.latency for x in f], "9.2f")
    row("client CPU per call (ms)", [x["cpu_per_call"] * 1000 for x in f], "9.2f")
    row("run with ngram vote (ms)", [x["with_vote"] * 1000 for x in f], "9.1f")
    print("  target: fan-out <= 1.25 x one call")
    if bare is not None:
        print(
            f"  floor of the httpx path: the SDK's httpx client alone, no SDK, no ensemble: "
            f"{bare['fanout'] * 1000:.1f} ms, {bare['fanout'] / bare['single']:.2f} x"
        )
    print("client CPU per call, one call at a time, by layer (server without latency):")
    names = {
        "cpu_httpx": "httpx alone",
        "cpu_aiohttp": "aiohttp alone",
        "cpu_sdk": "openai SDK (client.post)",
        **{f"cpu_adapter_{t}": f"OpenAIModel ({t})" for t in transports},
    }
    for key, label in names.items():
        if key in layers:
            print(f"  {label:24s} {layers[key] * 1000:9.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
