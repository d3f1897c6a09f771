"""A real HTTP server on 127.0.0.1 that speaks just enough OpenAI and Anthropic for the tests.

It listens on a free port (the OS picks it), serves each request in its own thread, records
every request, and answers from a script: per model name (the ``model`` field of the JSON body)
a queue of :class:`Reply` objects, then a default reply. Faults are replies too: any status
with any headers, a non-JSON body, a delay, a request that is never answered (``hang``), or a
connection closed without an answer (``drop``).

    with LoopbackServer() as server:
        server.script("gpt-a", Reply(status=429, headers={"Retry-After": "1"}), Reply(text="ok"))
        model = OpenAIModel("gpt-a", base_url=server.openai_url, api_key="sk-test")

``stop()`` wakes every delayed or hanging handler so the process ends with no thread left.
"""

from __future__ import annotations

import collections
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``text`` fills a success body in the dialect of the path."""

    text: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    """Raw body sent as is (overrides ``text`` and the error body)."""
    delay: float = 0.0
    """Seconds to wait before answering (woken early by ``stop()``)."""
    hang: bool = False
    """Never answer (until the server stops)."""
    drop: bool = False
    """Close the connection without answering."""
    finish_reason: str = "stop"
    drip: float = 0.0
    """Send the body one byte at a time, this many seconds apart (after the headers)."""
    stream_bytes: int = 0
    """Send a body of this many filler bytes (the start of a JSON answer that never ends) in
    64 KiB writes, stopping when the client goes away; see ``body_bytes_sent``."""
    chunked: bool = False
    """With ``stream_bytes``: no ``Content-Length``, chunked transfer encoding instead."""


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    time: float

    @property
    def model(self) -> str | None:
        return None if self.body is None else self.body.get("model")


class LoopbackServer:
    def __init__(self, *, default: Reply | None = None, tls: tuple[str, str] | None = None) -> None:
        """``tls``: ``(certfile, keyfile)`` to serve HTTPS instead of HTTP."""
        self.default = default or Reply()
        self.requests: list[Recorded] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.client_gone = 0
        """Delayed or hanging requests whose client closed the connection while waiting."""
        self.body_bytes_sent = 0
        """Body bytes of ``stream_bytes`` and ``drip`` replies that the socket accepted."""
        self._scripts: dict[str | None, collections.deque[Reply]] = collections.defaultdict(
            collections.deque
        )
        self._defaults: dict[str, Reply] = {}
        self._responder: Callable[[Recorded], Reply | None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = 0
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    # --- life cycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd.join_handlers(5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ---------------------------------------------------------------------------

    def script(self, model: str | None, *replies: Reply) -> None:
        """Queue replies for requests naming ``model`` (``None``: any model without a queue)."""
        with self._lock:
            self._scripts[model].extend(replies)

    def set_default(self, model: str, reply: Reply) -> None:
        """The reply for ``model`` once its queue is empty."""
        with self._lock:
            self._defaults[model] = reply

    def respond_with(self, fn: Callable[[Recorded], Reply | None] | None) -> None:
        """A function that picks the reply (``None`` falls back to the script)."""
        self._responder = fn

    def count(self, model: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (model is None or r.model == model) and (path is None or r.path == path)
            )

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _sent(self, n: int) -> None:
        with self._lock:
            self.body_bytes_sent += n

    def _client_left(self) -> None:
        with self._lock:
            self.client_gone += 1

    def _next(self, rec: Recorded) -> tuple[Reply, int]:
        with self._lock:
            self.requests.append(rec)
            self._counter += 1
            n = self._counter
            responder = self._responder
        if responder is not None:
            chosen = responder(rec)
            if chosen is not None:
                return chosen, n
        with self._lock:
            for key in (rec.model, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft(), n
            if rec.model is not None and rec.model in self._defaults:
                return self._defaults[rec.model], n
            return self.default, n


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256  # the fan-out opens many connections at once
    owner: LoopbackServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handler_threads: list[threading.Thread] = []

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner.connections += 1
        t = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self._handler_threads.append(t)
        t.start()

    def join_handlers(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for t in self._handler_threads:
            t.join(max(0.0, end - time.monotonic()))


def _openai_body(reply: Reply, model: str, n: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": max(1, len(reply.text.split())),
            "total_tokens": 7 + max(1, len(reply.text.split())),
        },
    }


def _anthropic_body(reply: Reply, model: str, n: int) -> dict[str, Any]:
    finish = {"stop": "end_turn", "length": "max_tokens"}.get(
        reply.finish_reason, reply.finish_reason
    )
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": finish,
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": max(1, len(reply.text.split()))},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def setup(self) -> None:
        super().setup()
        # Answer in one segment without Nagle's delay (which would add ~40 ms per answer).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = Recorded(
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            time=time.monotonic(),
        )
        reply, n = owner._next(rec)
        owner._enter()
        self._left = False
        try:
            self._answer(owner, reply, body, n)
        finally:
            self._leave_once(owner)

    def _leave_once(self, owner: LoopbackServer) -> None:
        # A request stops being in flight when the server starts to answer it: the client may
        # release its slot and send the next request before this thread returns from the
        # write, which would otherwise count one request too many.
        if not self._left:
            self._left = True
            owner._leave()

    def _wait(self, owner: LoopbackServer, seconds: float | None) -> bool:
        """Wait ``seconds`` (``None``: until stop); False if the server stops or the client
        goes away first (then counted in ``client_gone``)."""
        end = None if seconds is None else time.monotonic() + seconds
        while not owner._stop.is_set():
            left = 0.05 if end is None else min(0.05, end - time.monotonic())
            if left <= 0:
                return True
            readable, _, _ = select.select([self.connection], [], [], left)
            if readable:
                try:
                    peek = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    peek = b""
                if peek == b"":
                    owner._client_left()
                    return False
                time.sleep(left)  # pipelined bytes: not a disconnect
        return False

    def _answer(self, owner: LoopbackServer, reply: Reply, body: Any, n: int) -> None:
        if reply.hang:
            self._wait(owner, None)
            self.close_connection = True
            return
        if reply.delay and not self._wait(owner, reply.delay):
            self.close_connection = True
            return
        if reply.drop:
            self.close_connection = True
            return
        if reply.stream_bytes:
            self._stream(owner, reply)
            return
        model = (body or {}).get("model", "unknown")
        if reply.body is not None:
            payload = reply.body
        elif reply.status >= 300:
            payload = json.dumps(
                {"error": {"message": f"scripted {reply.status}", "type": "scripted"}}
            ).encode()
        elif self.path.endswith("/chat/completions"):
            payload = json.dumps(_openai_body(reply, model, n)).encode()
        elif self.path.endswith("/messages"):
            payload = json.dumps(_anthropic_body(reply, model, n)).encode()
        else:
            payload = b'{"error": "not found"}'
            reply = Reply(status=404)
        try:
            self._leave_once(owner)
            self.send_response(reply.status)
            content_type = "application/json" if reply.body is None else "text/html"
            headers = {"Content-Type": content_type, "x-request-id": f"req-{n}"}
            headers.update(reply.headers)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            if reply.drip:
                self.end_headers()
                for i in range(len(payload)):
                    if not self._wait(owner, reply.drip):
                        break
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    owner._sent(1)
                self.close_connection = True
                return
            self._headers_buffer.append(b"\r\n" + payload)  # headers and body in one write
            self.flush_headers()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream(self, owner: LoopbackServer, reply: Reply) -> None:
        prefix = b'{"choices": [{"message": {"role": "assistant", "content": "'
        total = max(reply.stream_bytes, len(prefix))
        piece = 64 * 1024
        self.close_connection = True
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            for k, v in reply.headers.items():
                self.send_header(k, v)
            if reply.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(total))
            self.end_headers()
            sent = 0
            while sent < total and not owner._stop.is_set():
                size = min(piece, total - sent)
                data = (prefix + b"a" * size)[:size] if sent == 0 else b"a" * size
                if reply.chunked:
                    data = f"{size:x}\r\n".encode() + data + b"\r\n"
                self.wfile.write(data)
                sent += size
                owner._sent(size)
            if reply.chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away: that is what the tests look for
            owner._client_left()
