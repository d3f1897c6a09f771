"""``async with`` for every object that holds connections: one mixin, so that ``Model``,
``Ensemble`` and ``Escalation`` close the same way (``__aexit__`` awaits ``aclose``)."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["AsyncClosing"]

_C = TypeVar("_C", bound="AsyncClosing")


class AsyncClosing:
    """``async with obj:`` returns ``obj`` and awaits ``obj.aclose()`` on the way out, also
    when the body raised; the subclass defines :meth:`aclose`."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
