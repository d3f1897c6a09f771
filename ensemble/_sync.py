"""The one rule for calling async code from sync code, used by every sync wrapper.

``ensemble`` is async at its core (``Ensemble.arun``, ``aconsensus``, ``Model.agenerate``, an
LLM judge's ``ajudge_samples``); each sync method is a thin wrapper that follows this rule:

* outside an event loop it runs the coroutine to completion on a fresh loop
  (:func:`asyncio.run`) and lets ``release`` free what that loop opened (connections belong
  to the loop that opened them);
* inside a running event loop (Jupyter, an async web framework) it refuses with
  :class:`~ensemble.errors.SyncInAsyncError`, which names the ``a``-twin to await instead.
  It never starts a second event loop in a worker thread: that would block the caller's loop
  for the whole call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ensemble.errors import SyncInAsyncError

__all__ = ["require_no_running_loop", "run_sync"]

_T = TypeVar("_T")


def require_no_running_loop(what: str, instead: str) -> None:
    """Raise :class:`~ensemble.errors.SyncInAsyncError` inside a running event loop.

    ``what`` names the sync call (``"ensemble.consensus()"``), ``instead`` what to write
    instead (``"await ensemble.aconsensus(...)"``).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise SyncInAsyncError(
        f"{what} cannot be called from a running event loop (it would block it); "
        f"use {instead} instead"
    )


def run_sync(
    what: str,
    instead: str,
    coro: Callable[[], Coroutine[Any, Any, _T]],
    *,
    release: Callable[[], Awaitable[object]] | None = None,
) -> _T:
    """Run ``coro()`` to completion on a fresh event loop, then await ``release()``.

    Refuses (see :func:`require_no_running_loop`) before ``coro`` is even created, so no
    coroutine is left un-awaited.
    """
    require_no_running_loop(what, instead)

    async def main() -> _T:
        try:
            return await coro()
        finally:
            if release is not None:
                await release()

    return asyncio.run(main())
