"""``ScriptedModel``: a test double that answers from a script and records every request.

For your own tests::

    model = ScriptedModel(name="fake")
    model.enqueue("Paris.", "Paris.", RateLimitError("slow down", model_name="fake",
                  status_code=429, retry_after=0.0), "Lyon.")
    result = Ensemble(models=[model], repeats=4, retry=RetryPolicy(base_delay=0)).run("?")
    assert len(model.requests) == 5   # the 429 was retried once
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import ClassVar

from ensemble._validate import check_number
from ensemble.errors import ConfigurationError, ProviderError
from ensemble.models.base import Completion, Model, Request

__all__ = ["ScriptedModel"]

ScriptedAnswer = str | Completion | BaseException | Callable[[Request], str]


class ScriptedModel(Model):
    """Answers each call with the next scripted answer, in order.

    An answer is a ``str`` (the completion text), a :class:`~ensemble.models.Completion`
    (returned as is), an exception instance (raised; give a
    :class:`~ensemble.errors.ProviderError` subclass to simulate a provider failure the runner
    handles), or a callable ``(request) -> str``. When the script is empty the model answers
    ``default`` if one was given, else fails with a ``ProviderError`` saying the script ran out.
    ``delay`` seconds are waited before every answer (cancellable, like a slow provider).
    Every request is appended to ``requests`` before it is answered.
    """

    provider: ClassVar[str] = "scripted"
    supports_seed: ClassVar[bool] = True

    def __init__(
        self,
        *answers: ScriptedAnswer,
        name: str = "scripted",
        default: str | None = None,
        delay: float = 0.0,
        temperature: float | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"ScriptedModel needs a non-empty name, not {name!r}")
        if default is not None and not (
            isinstance(default, (str, Completion, BaseException)) or callable(default)
        ):
            raise ConfigurationError(
                f"default must be a scripted answer (a string, a Completion, an exception or "
                f"a callable) or None, not {default!r}"
            )
        self.name = name
        self.default = default
        self.delay = check_number("delay", delay, low=0.0, high=86400.0)
        self.temperature = (
            None if temperature is None else check_number("temperature", temperature, low=0.0)
        )
        self.requests: list[Request] = []
        self._script: collections.deque[ScriptedAnswer] = collections.deque(answers)

    def enqueue(self, *answers: ScriptedAnswer) -> None:
        """Add answers to the end of the script."""
        self._script.extend(answers)

    @property
    def remaining(self) -> int:
        """How many scripted answers are left."""
        return len(self._script)

    async def agenerate(self, request: Request) -> Completion:
        self.requests.append(request)
        answer: ScriptedAnswer | None = self._script.popleft() if self._script else self.default
        started = time.perf_counter()
        if self.delay:
            await asyncio.sleep(self.delay)
        if answer is None:
            raise ProviderError(
                f"the script ran out after {len(self.requests) - 1} answer(s)",
                model_name=self.name,
            )
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Completion):
            return answer
        text = answer if isinstance(answer, str) else answer(request)
        return Completion(
            text=text,
            finish_reason="stop",
            latency=time.perf_counter() - started,
            request_id=f"scripted-{len(self.requests)}",
            model=self.name,
        )
