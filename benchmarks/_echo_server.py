"""An OpenAI-compatible loopback server in a child process, for the durable-run benchmarks.

It answers every ``/chat/completions`` request after ``--latency`` seconds with a text that
depends only on the request (``Answer to <prompt>.``), reports usage (9 prompt tokens, 4
completion tokens), and, with ``--log FILE``, appends one JSON line per request as it arrives
(``{"event": "request", "prompt", "model", "seed"}``) and one when it is answered (``"answered"``),
flushed at once, so a parent can count calls even after killing the client.

Run as ``python benchmarks/_echo_server.py --latency 0.05 [--log FILE]``: prints the port,
serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any


async def serve(latency: float, log: IO[str] | None) -> None:
    counter = 0

    def note(event: str, body: dict[str, Any]) -> None:
        if log is not None:
            messages = body.get("messages") or [{}]
            row = {
                "event": event,
                "prompt": messages[-1].get("content"),
                "model": body.get("model"),
                "seed": body.get("seed"),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()

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
                note("request", body)
                await asyncio.sleep(latency)
                prompt = (body.get("messages") or [{}])[-1].get("content", "")
                payload = json.dumps(
                    {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "m"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": f"Answer to {prompt}."},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
                    }
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"x-request-id: req-{n}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                note("answered", body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()


def start(latency: float, log: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start the server; ``(process, base_url)``. Stop it with :func:`stop`."""
    cmd = [sys.executable, __file__, "--latency", str(latency)]
    if log is not None:
        cmd += ["--log", str(log)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--log", default=None)
    args = parser.parse_args()
    sink = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    try:
        asyncio.run(serve(args.latency, sink))
    finally:
        if sink is not None:
            sink.close()
