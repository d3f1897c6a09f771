"""``Store``: a SQLite file that caches every sample and journals runs, so nothing paid for is
lost or bought twice.

One row per successful sample, written and committed the moment the sample comes back (before
any vote), keyed by everything that makes the request what it is::

    (model name, endpoint with its base URL, temperature, max_tokens, stop, seed,
     system and messages, repeat index)

So the repeats of one prompt stay distinct (N repeats are N rows: N calls the first time, none
on a rerun); errors are never stored (the next run tries again); identical requests in flight
at once share one call. Rows are JSON (``Sample.model_dump_json``), never pickle, and nothing
in them is a key: the endpoint is stored without user info or query string.

Durability: WAL journal, ``synchronous=NORMAL``. Every commit is in the WAL before
``put`` returns, so a ``kill -9`` loses nothing that came back; a power cut may lose the last
few commits (never corrupt the file). ``FULL`` (``Store(path, synchronous="FULL")``) adds an
fsync per sample, a few ms on most disks, for power-cut durability. A torn WAL tail is
discarded by SQLite on open; a row whose JSON does not parse is treated as absent (and
re-sent), with a warning.

Runs: :meth:`Store.begin_run` binds a run name to a hash of the run's settings; a later run
of that name with other settings raises :class:`~ensemble.errors.ResumeMismatchError`.

The file is created with mode 0600 (SQLite gives its ``-wal`` and ``-shm`` files the same).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from ensemble._validate import as_path
from ensemble.errors import ConfigurationError, ResumeMismatchError
from ensemble.models.base import Model, Request
from ensemble.types import Sample

__all__ = ["Store", "request_key"]

logger = logging.getLogger("ensemble")

_SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    sample TEXT NOT NULL,
    run TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    settings_hash TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def _safe_endpoint(endpoint: str) -> str:
    """The endpoint without user info, query or fragment (where keys could hide)."""
    provider, sep, url = endpoint.partition("@")
    if not sep:
        return endpoint
    try:
        parts = urlsplit(url)
    except ValueError:
        return provider
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{provider}@{urlunsplit((parts.scheme, host, parts.path, '', ''))}"


def request_key(model: Model, request: Request, repeat: int) -> tuple[str, str]:
    """``(key, document)``: the SHA-256 of the canonical JSON document that identifies one call."""
    messages, system = request.chat()
    doc = {
        "v": 1,
        "model": model.name,
        "endpoint": _safe_endpoint(model.endpoint),
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop) if request.stop is not None else None,
        "seed": request.seed,
        "system": system,
        "messages": [[m.role, m.content] for m in messages],
        "repeat": repeat,
    }
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), text


def settings_hash(settings: Mapping[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Store:
    """A sample cache and run journal in one SQLite file (see the module docstring).

    ``Ensemble(..., store=Store("runs.db"))`` uses it for every call of every run; one store
    may be shared by several ensembles and threads. Close it with :meth:`close` (or ``with``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigurationError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        self.path = as_path("store path", path)
        self.synchronous = synchronous
        if self.path.is_dir():
            raise ConfigurationError(f"store path {self.path} is a directory")
        try:
            # create the file ourselves so that it is private from the first byte
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(f"cannot open the store {self.path}: {exc}") from exc
        os.close(fd)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)",
                    (_SCHEMA_VERSION,),
                )
            elif row[0] != _SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the store {self.path} has schema version {row[0]}; "
                    f"this version of ensemble reads {_SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"{self.path} is not an ensemble store (SQLite said: {exc})"
            ) from exc
        self._inflight: dict[str, asyncio.Future[Sample | None]] = {}
        self.hits = 0
        """Samples served from the store by this object."""
        self.writes = 0
        """Samples written by this object."""

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --- samples -----------------------------------------------------------------------------

    def get(self, key: str) -> Sample | None:
        """The stored sample for ``key``, or ``None`` (absent, or unreadable: then re-sent)."""
        with self._lock:
            row = self._db.execute("SELECT sample FROM samples WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            sample = Sample.model_validate_json(row[0])
        except ValidationError:
            logger.warning("store %s: unreadable row %s ignored (it will be re-sent)", self, key)
            return None
        if not sample.ok:  # never written, but a hand-edited file must not replay a failure
            return None
        self.hits += 1
        return sample

    def put(self, key: str, document: str, sample: Sample, *, run: str | None = None) -> None:
        """Write and commit one successful sample (a failure is never stored)."""
        if not sample.ok:
            return
        if sample.endpoint is not None:  # no user info or query (where keys could hide)
            sample = sample.model_copy(update={"endpoint": _safe_endpoint(sample.endpoint)})
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO samples (key, request, sample, run, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, document, sample.model_dump_json(), run, time.time()),
            )
            self.writes += 1

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()
        return int(row[0])

    # --- runs --------------------------------------------------------------------------------

    def begin_run(self, name: str, settings: Mapping[str, Any]) -> bool:
        """Bind ``name`` to ``settings``; ``True`` when the run is new, ``False`` on a resume.

        Raises :class:`~ensemble.errors.ResumeMismatchError` when the run exists with other
        settings.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a run name must be a non-empty string, not {name!r}")
        digest = settings_hash(settings)
        text = json.dumps(settings, sort_keys=True, ensure_ascii=False)
        with self._lock:
            row = self._db.execute(
                "SELECT settings_hash, settings FROM runs WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO runs (name, settings_hash, settings, created) VALUES (?, ?, ?, ?)",
                    (name, digest, text, time.time()),
                )
                return True
        if row[0] == digest:
            return False
        try:
            stored = json.loads(row[1])
        except ValueError:
            stored = {}
        keys = sorted(set(stored) | set(settings))
        differences = {
            k: (stored.get(k), settings.get(k)) for k in keys if stored.get(k) != settings.get(k)
        }
        raise ResumeMismatchError(run=name, path=str(self.path), differences=differences)

    # --- sharing identical calls in flight -----------------------------------------------------

    def claim(self, key: str) -> asyncio.Future[Sample | None] | None:
        """The future of an identical call already in flight on this loop, or ``None`` after
        registering the caller as the one that makes it (it must :meth:`release` the key)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            fut = self._inflight.get(key)
            if fut is not None and fut.get_loop() is loop and not fut.done():
                return fut
            self._inflight[key] = loop.create_future()
            return None

    def release(self, key: str, sample: Sample | None) -> None:
        """End the call registered by :meth:`claim`, handing ``sample`` to its followers."""
        with self._lock:
            fut = self._inflight.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(sample)

    # --- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
