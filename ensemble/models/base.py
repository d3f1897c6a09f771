"""The adapter interface: :class:`Request` in, :class:`Completion` out, one async method.

Every adapter subclasses :class:`Model` and implements exactly one method,
:meth:`Model.agenerate`, which makes **one attempt** at one completion: no retries inside (the
vendor SDKs are created with ``max_retries=0``; the runner owns the single retry loop), and every
failure is raised as a :class:`~ensemble.errors.ProviderError` subclass. Everything else (the
sync wrapper, closing, ``async with``) lives here, once.

Capabilities are class attributes, so callers never probe at run time::

    class EchoModel(Model):
        provider = "echo"
        supports_seed = True

        async def agenerate(self, request: Request) -> Completion:
            return Completion(text=request.prompt or "", latency=0.0, model=self.name)

An adapter's SDK client belongs to the event loop it was first used on. ``generate`` (sync)
runs each call in its own event loop and releases the connections afterwards; in async code use
``async with model:`` or ``await model.aclose()`` before the loop ends.
"""

from __future__ import annotations

import abc
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ensemble._closing import AsyncClosing
from ensemble._sync import run_sync
from ensemble.types import Usage

__all__ = ["Completion", "Message", "Model", "Request"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class Request(_Frozen):
    """What to ask: exactly one of ``prompt`` and ``messages``, plus sampling settings.

    ``None`` means "the provider's default" for every setting.
    """

    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    system: str | None = None
    temperature: float | None = Field(default=None, ge=0.0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    response_format: dict[str, Any] | None = None
    """A structured-output request in the OpenAI form (``{"type": "json_schema",
    "json_schema": {...}}``): sent by :class:`~ensemble.OpenAIModel` in chat mode (OpenAI,
    vLLM and llama.cpp's server, so :class:`~ensemble.LocalModel`, constrain the answer to
    the schema); adapters without such an option ignore it."""

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> Request:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a Request has exactly one of `prompt` and `messages`")
        if self.messages is not None and len(self.messages) == 0:
            raise ValueError("`messages` must not be empty")
        return self

    def chat(self) -> tuple[tuple[Message, ...], str | None]:
        """The conversation as ``(messages without system ones, system text or None)``.

        ``system`` and any ``role="system"`` messages are joined (in that order) with blank
        lines, so adapters for APIs that take the system prompt apart (Anthropic) and those that
        take it as a message (OpenAI) see the same thing.
        """
        systems: list[str] = [self.system] if self.system else []
        if self.prompt is not None:
            turns: tuple[Message, ...] = (Message(role="user", content=self.prompt),)
        else:
            assert self.messages is not None
            systems += [m.content for m in self.messages if m.role == "system"]
            turns = tuple(m for m in self.messages if m.role != "system")
        return turns, ("\n\n".join(systems) if systems else None)


class Completion(_Frozen):
    """One answer from one attempt."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    latency: float = Field(default=0.0, ge=0.0)
    """Seconds the attempt took (measured by the adapter)."""
    request_id: str | None = None
    """The provider's id for the request (e.g. the ``x-request-id`` header), when it gave one."""
    model: str = ""
    """The model name as the provider reported it (or the adapter's name when it did not)."""
    prompt_sent: str | None = None
    """The raw prompt text sent, when the adapter rendered the request into one (completion
    mode of :class:`~ensemble.OpenAIModel`); ``None`` when the request was sent as given."""

    @property
    def empty(self) -> bool:
        """True when the answer has no text (blank, or the provider sent none: OpenAI's
        ``content: null``, an Anthropic answer without a text block). The HTTP adapters return
        such an answer as an empty completion, never as an error; it must not vote."""
        return not self.text.strip()


class Model(AsyncClosing, abc.ABC):
    """Base class of every model adapter.

    Subclasses set ``provider`` and the capability flags, set ``self.name`` (e.g.
    ``"openai:gpt-4o-mini"``) and implement :meth:`agenerate`. They may override
    :meth:`aclose` to release connections (it must leave the model usable again: the next call
    reopens what it needs).
    """

    provider: ClassVar[str]
    """Short provider name; the runner's per-provider concurrency limit and the
    "stop calling a provider after 401" rule group models by it."""
    supports_seed: ClassVar[bool] = False
    supports_system: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = False
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None

    name: str
    temperature: float | None = None
    """This model's default temperature, used when neither the request nor the runner sets one."""
    family: str | None = None
    """The weights' family, when the adapter knows it (else its card's in the catalog)."""

    @property
    def endpoint(self) -> str:
        """What shares one rate limit and one key: calls to the same endpoint share the
        runner's per-provider concurrency limit, and a 401/403 from it stops the others.
        Defaults to ``provider``; HTTP adapters add their base URL."""
        return self.provider

    def temperature_for(self, request: Request) -> float | None:
        """The temperature a call uses, decided here only: the request's, else this model's
        default, else ``None`` (the provider's default)."""
        return request.temperature if request.temperature is not None else self.temperature

    @abc.abstractmethod
    async def agenerate(self, request: Request) -> Completion:
        """Make exactly one attempt; raise only :class:`~ensemble.errors.ProviderError`."""

    def generate(self, request: Request) -> Completion:
        """Synchronous :meth:`agenerate`: runs one call in a fresh event loop.

        Follows the one sync-over-async rule (:func:`ensemble._sync.run_sync`): the model's
        connections are released after the call, whether it succeeded or not, and from
        inside a running event loop it raises :class:`~ensemble.errors.SyncInAsyncError` (a
        :class:`~ensemble.errors.UsageError`; use ``await model.agenerate(...)`` there).
        """
        return run_sync(
            "model.generate()",
            "await model.agenerate(...)",
            lambda: self.agenerate(request),
            release=self.aclose,
        )

    async def aclose(self) -> None:
        """Release connections; the model stays usable (the next call reopens them)."""

    def close(self) -> None:
        """Synchronous :meth:`aclose` (same rule as :meth:`generate`)."""
        run_sync("model.close()", "await model.aclose()", self.aclose)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


#: The lowest value ever reported as ``retry_after`` (a hint of 0 still means "wait a moment").
_MIN_RETRY_AFTER = 0.0


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    ``retry-after-ms`` wins when both are present (it is more precise). Returns ``None`` when
    neither header is present or parseable. Header names are matched case-insensitively.
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return max(ms / 1000.0, _MIN_RETRY_AFTER)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(seconds, _MIN_RETRY_AFTER)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
