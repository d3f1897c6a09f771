"""``FunctionModel``: any sync or async callable ``(prompt) -> str`` as a model."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar

from ensemble._validate import check_number
from ensemble.errors import ConfigurationError, InvalidResponseError, ProviderError
from ensemble.models.base import Completion, Model, Request

__all__ = ["FunctionModel"]

logger = logging.getLogger("ensemble")

PromptFn = Callable[[str], str] | Callable[[str], Awaitable[str]]


class FunctionModel(Model):
    """Wrap ``fn(prompt) -> str`` (sync or ``async``) as a model.

    A sync function runs in a worker thread so it never blocks the event loop (a thread cannot
    be interrupted: after a timeout or the deadline its answer is simply ignored). A request
    given as messages reaches ``fn`` as its last user message; with ``pass_request=True``
    ``fn`` receives the whole :class:`~ensemble.models.Request` instead.

    Exceptions: a :class:`~ensemble.errors.ProviderError` raised by ``fn`` passes through (so a
    function can signal a rate limit or a timeout that the runner retries); any other exception
    becomes a non-retryable ``ProviderError`` naming its type; a non-string answer becomes an
    :class:`~ensemble.errors.InvalidResponseError`.
    """

    provider: ClassVar[str] = "function"

    def __init__(
        self,
        fn: Callable[..., object],
        *,
        name: str,
        temperature: float | None = None,
        pass_request: bool = False,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError("FunctionModel needs a callable")
        if not isinstance(name, str) or not name:
            raise ConfigurationError("FunctionModel needs a non-empty name")
        if not isinstance(pass_request, bool):
            raise ConfigurationError(f"pass_request must be True or False, not {pass_request!r}")
        self.fn = fn
        self.name = name
        self.temperature = (
            None if temperature is None else check_number("temperature", temperature, low=0.0)
        )
        self.pass_request = pass_request
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async __call__ on an object
        )

    def _argument(self, request: Request) -> object:
        if self.pass_request:
            return request
        if request.prompt is not None:
            return request.prompt
        turns, _system = request.chat()
        users = [m.content for m in turns if m.role == "user"]
        return users[-1] if users else turns[-1].content

    async def agenerate(self, request: Request) -> Completion:
        arg = self._argument(request)
        started = time.perf_counter()
        try:
            if self._is_async:
                result = await self.fn(arg)  # type: ignore[misc]
            else:
                result = await asyncio.to_thread(self.fn, arg)
                if inspect.isawaitable(result):
                    result = await result
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(
                f"the function raised {type(exc).__name__}: {exc}", model_name=self.name
            ) from exc
        latency = time.perf_counter() - started
        if not isinstance(result, str):
            raise InvalidResponseError(
                f"the function returned {type(result).__name__}, not str", model_name=self.name
            )
        logger.debug("%s: answered in %.3fs", self.name, latency)
        return Completion(text=result, finish_reason="stop", latency=latency, model=self.name)
