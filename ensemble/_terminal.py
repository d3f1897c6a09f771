"""Terminal output of the command line: coloured results and progress on standard error.

Everything goes through ``rich``. Colour is used only when the stream is a terminal, ``NO_COLOR``
is unset and ``TERM`` is not ``dumb``; progress (a spinner, a bar of answered calls) is drawn
only when standard error is a terminal that can move its cursor, so a piped or redirected run
prints its results and nothing else. On a ``TERM=dumb`` terminal each phase is one plain line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import SpinnerColumn as _Spinner

__all__ = ["Calls", "Reporter", "console_for", "use_colour"]


def _dumb() -> bool:
    return os.environ.get("TERM", "").lower() in ("dumb", "unknown")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def use_colour(stream: TextIO) -> bool:
    """Whether to colour what goes to ``stream``: a terminal, no ``NO_COLOR``, not ``dumb``."""
    return _isatty(stream) and not os.environ.get("NO_COLOR") and not _dumb()


def console_for(stream: TextIO, *, colour: bool | None = None) -> Console:
    """A console writing to ``stream`` that never wraps, highlights or reads markup."""
    colour = use_colour(stream) if colour is None else colour
    return Console(
        file=stream,
        force_terminal=colour,
        color_system="standard" if colour else None,
        no_color=not colour,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
    )


class Calls:
    """Counts the attempts of a run as they end, for the progress bar."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress = progress
        self._task = task
        self.answered = 0
        self.failed = 0

    def answer(self) -> None:
        self.answered += 1
        self._update()

    def failure(self) -> None:
        self.failed += 1
        self._update()

    def _update(self) -> None:
        if self._progress is None or self._task is None:
            return
        note = f", {self.failed} failed attempt(s)" if self.failed else ""
        self._progress.update(self._task, completed=self.answered, note=note)


class Reporter:
    """Progress on ``stream`` (standard error by default) while the command line works.

    ``enabled=None`` decides from the stream: drawn on a terminal, silent otherwise.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        self.animated = self.enabled and not _dumb()
        self._console = Console(
            file=self.stream,
            force_terminal=self.animated,
            force_interactive=self.animated,
            highlight=False,
            markup=False,
            emoji=False,
        )

    @contextmanager
    def phase(self, description: str) -> Iterator[None]:
        """A spinner with ``description`` until the block ends."""
        if not self.enabled:
            yield
            return
        if not self.animated:
            self._console.print(f"ensemble: {description}")
            yield
            return
        with self._console.status(description, spinner="dots"):
            yield

    @contextmanager
    def calls(self, description: str, total: int) -> Iterator[Calls]:
        """A bar of answered calls out of ``total``, with failed attempts and elapsed time."""
        if not self.enabled:
            yield Calls()
            return
        if not self.animated:
            self._console.print(f"ensemble: {description} ({total} call(s))")
            yield Calls()
            return
        progress = Progress(
            _Spinner("dots"),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("answered{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        with progress:
            task = progress.add_task(description, total=total, note="")
            yield Calls(progress, task)
