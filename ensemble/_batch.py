"""Many prompts through one :class:`~ensemble.Ensemble`: ``map``, ``amap`` and ``astream``.

* Bounded: at most ``max_prompts`` prompts are in flight (by default enough to keep the
  ensemble's ``max_concurrency`` busy, twice over), and their attempts share one bound of
  ``max_concurrency`` over the whole batch, on top of the per-endpoint limits that every run in
  the process shares (:mod:`ensemble._limits`). Prompts are read lazily, so a generator of a
  million prompts is fine.
* Ordered: ``amap`` returns one result per prompt, in prompt order; ``astream`` yields
  ``(index, result)`` as prompts finish.
* Isolated: a prompt that fails (below quorum, a bad prompt, a budget that ran out) is a
  :class:`~ensemble.errors.RunError` in its place, with its place as ``index``; the rest of
  the batch goes on. Below quorum it is the :class:`~ensemble.errors.QuorumError` itself; any
  other error (a bad prompt, a metric that failed on the samples) is a plain ``RunError``
  whose message is that error's type and message, whose ``__cause__`` is that error, and that
  keeps the samples that came back (they are paid for). Each prompt is one
  :meth:`Ensemble.arun <ensemble.Ensemble.arun>` (so a subclass's ``arun`` is the one used),
  which keeps the samples of a failed vote itself; ``ens.run(prompt)`` raises the same error.
* Durable: with a :class:`~ensemble.Store` each sample is committed as it comes back; ``run=``
  names the batch in the store, so that resuming it with other settings is refused.

Each prompt's ``deadline`` starts when the prompt does.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from ensemble._durable import run_settings
from ensemble._limits import set_batch_slots
from ensemble._sync import run_sync
from ensemble._validate import check_int
from ensemble.errors import ConfigurationError, RunError
from ensemble.types import Consensus

if TYPE_CHECKING:
    from ensemble.runner import Ensemble

__all__ = ["amap", "astream", "read_rows", "run_jsonl", "run_map"]

Result = Consensus | RunError


def _workers(ens: Ensemble, max_prompts: int | None) -> int:
    if max_prompts is not None:
        return check_int("max_prompts", max_prompts, minimum=1)
    calls = max(1, len(ens.models) * ens.repeats)
    return 2 * max(1, math.ceil(ens.max_concurrency / calls))


def begin(ens: Ensemble, run: str | None) -> None:
    """Bind the batch named ``run`` to the ensemble's settings in its store."""
    if run is None:
        return
    if ens.store is None:
        raise ConfigurationError("run= names a batch in a store; give the Ensemble a store=")
    ens.store.begin_run(run, run_settings(ens))
    ens._durable.run_name = run


async def _one(ens: Ensemble, index: int, prompt: str) -> Result:
    """``ens.arun(prompt)`` (a subclass's own ``arun`` too), any failure a result in its
    place, not a crashed batch. ``arun`` already keeps the samples of a vote that failed; an
    error raised before any call (a bad prompt) becomes a ``RunError`` here, with no
    samples."""
    try:
        return await ens.arun(prompt)
    except RunError as exc:
        exc.index = index
        return exc
    except Exception as exc:
        error = RunError(f"{type(exc).__name__}: {exc}", index=index)
        error.__cause__ = exc
        return error


async def astream(
    ens: Ensemble,
    prompts: Iterable[str],
    *,
    max_prompts: int | None = None,
    run: str | None = None,
) -> AsyncIterator[tuple[int, Result]]:
    """Yield ``(index, result)`` for every prompt as it finishes (see the module docstring).

    Leaving the loop early cancels the prompts still in flight (what came back is stored).
    """
    if isinstance(prompts, str):
        raise ConfigurationError("prompts must be an iterable of strings, not one string")
    n = _workers(ens, max_prompts)
    begin(ens, run)
    items: Iterator[tuple[int, str]] = enumerate(prompts)
    slots = asyncio.Semaphore(ens.max_concurrency)
    queue: asyncio.Queue[tuple[int, Result] | BaseException | None] = asyncio.Queue(maxsize=n)

    async def worker() -> None:
        set_batch_slots(slots)  # this task's context (and its calls') only
        try:
            for i, prompt in items:
                await queue.put((i, await _one(ens, i, prompt)))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the prompts iterable itself failed
            await queue.put(exc)
            return
        await queue.put(None)

    tasks = [asyncio.create_task(worker()) for _ in range(n)]
    finished = 0
    try:
        while finished < n:
            item = await queue.get()
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def amap(
    ens: Ensemble,
    prompts: Iterable[str],
    *,
    max_prompts: int | None = None,
    run: str | None = None,
) -> list[Result]:
    """Every prompt's result, in prompt order."""
    results: dict[int, Result] = {}
    async for i, result in astream(ens, prompts, max_prompts=max_prompts, run=run):
        results[i] = result
    return [results[i] for i in range(len(results))]


def run_map(
    ens: Ensemble,
    prompts: Iterable[str],
    *,
    max_prompts: int | None = None,
    run: str | None = None,
) -> list[Result]:
    """Synchronous :func:`amap` in a fresh event loop; releases the connections after (the
    rule of :func:`ensemble._sync.run_sync`)."""
    return run_sync(
        "Ensemble.map()",
        "`await ensemble.amap(prompts)`",
        lambda: amap(ens, prompts, max_prompts=max_prompts, run=run),
        release=ens.aclose,
    )


# --- JSONL files (the `ensemble batch` command) ------------------------------------------------


def _row_error(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, RunError) and exc.samples:
        out["samples"] = [s.model_dump(mode="json") for s in exc.samples]
    return out


def read_rows(lines: Iterable[str]) -> list[tuple[Any, str | None, str | None]]:
    """``(id, prompt, problem)`` per non-blank line of a JSONL input: a row is
    ``{"id": ..., "prompt": "..."}``; a bad row is kept with its problem (and a null prompt)."""
    rows: list[tuple[Any, str | None, str | None]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            rows.append((None, None, f"line {n} is not JSON ({exc})"))
            continue
        if not isinstance(row, dict):
            rows.append((None, None, f"line {n} is not a JSON object"))
            continue
        row_id = row.get("id", n)
        prompt = row.get("prompt")
        if not isinstance(prompt, str):
            rows.append((row_id, None, f"line {n} has no string 'prompt'"))
            continue
        rows.append((row_id, prompt, None))
    return rows


async def run_jsonl(
    ens: Ensemble,
    rows: list[tuple[Any, str | None, str | None]],
    out: TextIO,
    *,
    run: str | None = None,
    max_prompts: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[int, int]:
    """Write one JSON line per row, in input order: ``{"id", "consensus"}`` or ``{"id",
    "error"}``. ``progress(done, failed, spent_usd)`` is called as rows finish. Returns
    ``(done, failed)``."""
    valid = [i for i, (_id, prompt, _p) in enumerate(rows) if prompt is not None]
    finished: dict[int, dict[str, Any]] = {}
    for i, (row_id, prompt, problem) in enumerate(rows):
        if prompt is None:
            finished[i] = {"id": row_id, "error": {"type": "InvalidInputError", "message": problem}}
    done = failed = 0
    next_out = 0

    def flush() -> None:
        nonlocal next_out
        while next_out in finished:
            out.write(json.dumps(finished.pop(next_out), ensure_ascii=False) + "\n")
            next_out += 1

    failed = len(finished)
    done = failed
    flush()
    prompts = [rows[i][1] or "" for i in valid]
    async for k, result in astream(ens, prompts, max_prompts=max_prompts, run=run):
        i = valid[k]
        row_id = rows[i][0]
        if isinstance(result, Consensus):
            finished[i] = {"id": row_id, "consensus": result.model_dump(mode="json")}
        else:
            finished[i] = {"id": row_id, "error": _row_error(result)}
            failed += 1
        done += 1
        flush()
        if progress is not None:
            progress(done, failed, ens._durable.spent)
    flush()
    return done, failed
