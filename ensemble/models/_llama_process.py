"""Start, share and stop llama.cpp server processes (the machinery behind ``LocalModel``).

One server process runs per :class:`ServerConfig` (GGUF path, slots, threads, context size) and
is shared by every :class:`~ensemble.models.local.LocalModel` of this Python process that uses
the same configuration. Each user holds a reference; the server stops when the last reference is
released (after an optional keep-alive, so back-to-back uses do not pay the start-up again), and
at interpreter exit at the latest (``atexit``). The server runs in a child process
(``_llama_server.py``), bound to 127.0.0.1 on a port the OS picks, and demands a random API key,
so other local users cannot borrow it. If the child dies, the next :func:`acquire` starts a new
one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from ensemble.errors import LocalServerError

__all__ = ["ServerConfig", "ServerHandle", "acquire", "active_servers", "release", "stop_all"]

_SCRIPT = Path(__file__).with_name("_llama_server.py")
_READY = "ENSEMBLE-LLAMA-READY"
_FAILED = "ENSEMBLE-LLAMA-FAILED"
_API_KEY_ENV = "ENSEMBLE_LLAMA_API_KEY"
_LOG_TAIL = 2000  # characters of the child's stderr quoted in a start-up error


@dataclass(frozen=True)
class ServerConfig:
    """Everything that makes two servers different; equal configs share one server."""

    model_path: str
    slots: int = 1
    threads: int = 1
    ctx_size: int = 2048
    alias: str = "local"


@dataclass(eq=False)
class ServerHandle:
    """A running server: its address, its key, and the child process behind it."""

    config: ServerConfig
    base_url: str
    """``http://127.0.0.1:PORT`` (no trailing ``/v1``)."""
    api_key: str = field(repr=False)
    process: subprocess.Popen[bytes] = field(repr=False)
    startup_seconds: float
    _log: IO[bytes] = field(repr=False)
    refs: int = 0
    _linger: threading.Timer | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, limit: int = _LOG_TAIL) -> str:
        """The end of the server's own log (llama.cpp's stderr)."""
        try:
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - limit))
            return self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):  # closed
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the server to stop (close its stdin), then terminate, then kill. Idempotent."""
        _stop_process(self.process, timeout)
        with contextlib.suppress(OSError):
            self._log.close()


def _stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the child's signal to shut down cleanly
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()


def _read_lines(stream: IO[bytes], out: queue.Queue[str | None]) -> None:
    try:
        for raw in stream:
            out.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)


def start(
    config: ServerConfig, *, startup_timeout: float, model_name: str = "local"
) -> ServerHandle:
    """Start one server process and wait until it answers ``/health`` (not shared)."""
    started = time.perf_counter()
    api_key = secrets.token_urlsafe(24)
    env = dict(os.environ)
    env[_API_KEY_ENV] = api_key
    # Kept open for the server's lifetime (closed in ServerHandle.stop), so no `with` here.
    log = tempfile.TemporaryFile(prefix="ensemble-llama-", suffix=".log")  # noqa: SIM115
    cmd = [
        sys.executable,
        str(_SCRIPT),
        "--model",
        config.model_path,
        "--slots",
        str(config.slots),
        "--threads",
        str(config.threads),
        "--ctx-size",
        str(config.ctx_size),
        "--alias",
        config.alias,
    ]
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            # Own session: a Ctrl-C at the terminal reaches the user's process, which then
            # stops the server in order, instead of killing it under a running request.
            start_new_session=(os.name == "posix"),
        )
    except OSError as exc:
        log.close()
        raise LocalServerError(
            f"could not start the llama.cpp server: {exc}", model_name=model_name
        ) from exc

    handle: ServerHandle | None = None
    try:
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(
            target=_read_lines, args=(proc.stdout, lines), name="llama-stdout", daemon=True
        ).start()
        deadline = started + startup_timeout
        base_url = _wait_ready(proc, lines, deadline, config)
        handle = ServerHandle(
            config=config,
            base_url=base_url,
            api_key=api_key,
            process=proc,
            startup_seconds=0.0,
            _log=log,
        )
        _wait_healthy(handle, deadline)
        handle.startup_seconds = time.perf_counter() - started
        return handle
    except _StartupFailure as exc:
        _stop_process(proc, 2.0)  # first, so that llama.cpp's asynchronous log is complete
        excerpt = _log_excerpt(log)
        log.close()
        message = str(exc)
        if excerpt:
            message += f"\n--- llama.cpp log ---\n{excerpt}"
        raise LocalServerError(message, model_name=model_name) from None
    except BaseException:
        _stop_process(proc, 2.0)
        log.close()
        raise


class _StartupFailure(Exception):
    pass


def _log_excerpt(log: IO[bytes]) -> str:
    """llama.cpp's error lines (`` E ``), or else the end of its log."""
    try:
        log.flush()
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    errors = [line for line in text.splitlines() if " E " in line[:20]]
    excerpt = "\n".join(errors) if errors else text.strip()
    return excerpt[-_LOG_TAIL:]


def _wait_ready(
    proc: subprocess.Popen[bytes],
    lines: queue.Queue[str | None],
    deadline: float,
    config: ServerConfig,
) -> str:
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise _StartupFailure(
                f"the llama.cpp server for {config.model_path!r} did not start within the "
                "start-up timeout; raise startup_timeout= if the machine is slow"
            )
        try:
            line = lines.get(timeout=min(remaining, 0.25))
        except queue.Empty:
            continue
        if line is None:  # stdout closed: the child ended
            code = proc.wait(5.0)
            raise _StartupFailure(f"the llama.cpp server exited during start-up (exit code {code})")
        if line.startswith(_READY):
            url = line[len(_READY) :].strip()
            if not url.startswith("http://127.0.0.1:"):
                raise _StartupFailure(
                    f"the llama.cpp server reported an unexpected address {url!r}"
                )
            return url
        if line.startswith(_FAILED):
            reason = line[len(_FAILED) :].strip()
            raise _StartupFailure(
                f"the llama.cpp server could not load {config.model_path!r}: {reason}"
            )


def _wait_healthy(handle: ServerHandle, deadline: float) -> None:
    # The child reports ready once the model is loaded, so this normally succeeds at once; it
    # guards against a listener that is up but still loading (llama.cpp answers 503 then).
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            try:
                if client.get(f"{handle.base_url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not handle.alive:
                raise _StartupFailure("the llama.cpp server exited during start-up")
            if time.perf_counter() >= deadline:
                raise _StartupFailure("the llama.cpp server did not become healthy in time")
            time.sleep(0.05)


# --- the shared registry --------------------------------------------------------------------

_lock = threading.Lock()
_servers: dict[ServerConfig, ServerHandle] = {}


def acquire(
    config: ServerConfig, *, startup_timeout: float, model_name: str = "local"
) -> ServerHandle:
    """Return the running server for ``config`` (starting it if needed) and take a reference."""
    with _lock:
        handle = _servers.get(config)
        if handle is not None and not handle.alive:
            # It crashed: reap it and start a fresh one. Holders of the dead handle release it
            # on their own (release() of a handle no longer registered only stops it again).
            del _servers[config]
            handle.stop()
            handle = None
        if handle is None:
            handle = start(config, startup_timeout=startup_timeout, model_name=model_name)
            _servers[config] = handle
        handle.refs += 1
        if handle._linger is not None:  # it was about to stop: keep it
            handle._linger.cancel()
            handle._linger = None
        return handle


def release(handle: ServerHandle, *, keep_alive: float = 0.0) -> None:
    """Drop one reference. After the last one the server stops, ``keep_alive`` seconds later
    (at once for 0) unless someone acquires it again in the meantime."""
    with _lock:
        handle.refs -= 1
        if handle.refs > 0:
            return
        if _servers.get(handle.config) is handle:
            if keep_alive > 0:
                timer = threading.Timer(keep_alive, _expire, args=(handle,))
                timer.daemon = True
                timer.name = "llama-keep-alive"
                handle._linger = timer
                timer.start()
                return
            del _servers[handle.config]
    handle.stop()


def _expire(handle: ServerHandle) -> None:
    with _lock:
        if handle.refs > 0 or _servers.get(handle.config) is not handle:
            return
        del _servers[handle.config]
        handle._linger = None
    handle.stop()


def active_servers() -> tuple[ServerHandle, ...]:
    """The servers this process is running now (for diagnostics and tests)."""
    with _lock:
        return tuple(_servers.values())


def stop_all() -> None:
    """Stop every server this process started (registered with ``atexit``)."""
    with _lock:
        handles = list(_servers.values())
        _servers.clear()
        for handle in handles:
            if handle._linger is not None:
                handle._linger.cancel()
                handle._linger = None
    for handle in handles:
        handle.stop()


def _forget_after_fork() -> None:
    """In a forked child: the parent's servers are the parent's to stop. Close our copies of
    their stdin pipes (else a server would not see its parent's end-of-file while the child
    lives) and start with an empty registry."""
    global _lock
    _lock = threading.Lock()
    for handle in _servers.values():
        stdin = handle.process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
    _servers.clear()


atexit.register(stop_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
