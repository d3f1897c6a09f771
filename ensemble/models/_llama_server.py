"""Child process that serves one GGUF model with llama.cpp's HTTP server (from ``xllamacpp``).

:class:`ensemble.models.local.LocalModel` runs this file with the current Python interpreter
so that the server lives in its own process: a crash or a hang in llama.cpp cannot take the
user's process down, and the parent can always end it with a signal.

Protocol with the parent:

* the server binds ``127.0.0.1`` on a port the operating system picks (port 0);
* the API key the server demands is read from the environment variable ``ENSEMBLE_LLAMA_API_KEY``
  (never from the command line, which other local users can read);
* once the model is loaded and the server listens, one line ``ENSEMBLE-LLAMA-READY <url>`` is
  written to stdout; a start-up failure writes ``ENSEMBLE-LLAMA-FAILED <reason>`` and exits 2;
* the server stops when stdin reaches end of file (the parent closed it, or the parent died) or on
  SIGTERM / SIGINT. llama.cpp's own log goes to stderr.
"""

from __future__ import annotations

import os
import sys

# The parent runs this file by path (not ``-m``) so the child does not pay for importing the
# ``ensemble`` package. Python then puts this directory first on sys.path, where sibling modules
# such as ``openai.py`` would shadow real packages: take it off before importing anything else.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
from types import FrameType  # noqa: E402

READY = "ENSEMBLE-LLAMA-READY"
FAILED = "ENSEMBLE-LLAMA-FAILED"
API_KEY_ENV = "ENSEMBLE_LLAMA_API_KEY"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ensemble.models._llama_server")
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--slots", type=int, default=1, help="parallel sequences (n_parallel)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for llama.cpp")
    parser.add_argument("--ctx-size", type=int, default=2048, help="context tokens per slot")
    parser.add_argument("--alias", default="local", help="model name the server reports")
    return parser.parse_args(argv)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        import xllamacpp
    except ImportError as exc:  # the parent checks first; this is the last line of defence
        _say(f"{FAILED} xllamacpp cannot be imported: {exc}")
        return 2

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; the server reports it in listening_address
    params.n_parallel = args.slots
    # llama.cpp splits n_ctx among the slots; the caller speaks of tokens per slot.
    params.n_ctx = args.ctx_size * args.slots
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.ui = False
    params.offline = True  # never reach a model hub
    key = os.environ.get(API_KEY_ENV)
    if key:
        params.api_keys = [key]

    try:
        server = xllamacpp.Server(params)
    except Exception as exc:  # xllamacpp raises RuntimeError("Failed to init server ...")
        _say(f"{FAILED} {type(exc).__name__}: {exc}")
        return 2

    def watch_stdin() -> None:
        # read() returns when the parent closes our stdin or dies.
        try:
            sys.stdin.buffer.read()
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    _say(f"{READY} {server.listening_address}")
    while not stop.wait(0.5):
        pass
    del server  # its destructor stops the HTTP listener and the main loop
    return 0


if __name__ == "__main__":
    sys.exit(main())
