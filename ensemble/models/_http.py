"""Shared plumbing of the HTTP adapters: keys, base URLs, error mapping, loop-bound clients.

Private: the adapters in ``openai.py`` and ``anthropic.py`` use it; nothing here is public.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from ensemble.errors import (
    AuthenticationError,
    ConfigurationError,
    MissingAPIKeyError,
    MissingDependencyError,
    ProviderHTTPError,
    RateLimitError,
)
from ensemble.models.base import parse_retry_after

#: How much of an error body is kept on the exception (enough to read, not a whole page).
MAX_BODY_CHARS = 500


def resolve_key(
    api_key: str | SecretStr | None, *, env_var: str, provider: str, allow_missing: bool
) -> SecretStr | None:
    """The key from the argument, else the environment; ``None`` only if ``allow_missing``."""
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    if api_key:
        return SecretStr(api_key)
    if allow_missing:
        return None
    from_env = os.environ.get(env_var)
    if from_env:
        return SecretStr(from_env)
    raise MissingAPIKeyError(provider, env_var)


def check_transport(transport: str, http_client: Any) -> str:
    """``"httpx"`` (the SDKs' default) or ``"aiohttp"`` (needs the ``aiohttp`` extra)."""
    if transport not in ("httpx", "aiohttp"):
        raise ConfigurationError(f"transport must be 'httpx' or 'aiohttp', not {transport!r}")
    if transport == "aiohttp":
        if http_client is not None:
            raise ConfigurationError("give either transport='aiohttp' or http_client, not both")
        if importlib.util.find_spec("aiohttp") is None:
            raise MissingDependencyError(
                "aiohttp (transport='aiohttp')", 'pip install "ensemble-consensus[aiohttp]"'
            )
    return transport


def check_base_url(base_url: str) -> str:
    """Accept only absolute http(s) URLs without credentials in them."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigurationError(f"base_url {base_url!r} is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"base_url must be an absolute http:// or https:// URL, not {base_url!r}"
        )
    if url.userinfo:
        raise ConfigurationError(
            "base_url must not contain credentials; pass the key as api_key instead"
        )
    return str(url)


def redact(text: str, secret: SecretStr | None) -> str:
    """``text`` with every occurrence of the secret (and of its last 8 characters) masked."""
    if secret is None:
        return text
    value = secret.get_secret_value()
    if value:
        text = text.replace(value, "***")
        if len(value) >= 16:
            text = text.replace(value[-8:], "***")
    return text


def http_error(
    *,
    status: int,
    headers: Mapping[str, str] | None,
    body: str | None,
    model_name: str,
    secret: SecretStr | None,
) -> ProviderHTTPError:
    """The typed error for a non-2xx answer, with ``retry_after`` from the headers."""
    shown = redact(body, secret)[:MAX_BODY_CHARS] if body else None
    retry_after = parse_retry_after(headers)
    message = _error_message(shown) or "no error message in the body"
    cls: type[ProviderHTTPError]
    if status in (401, 403):
        cls = AuthenticationError
        message += "; check the API key (this run stops calling the provider)"
    elif status == 429:
        cls = RateLimitError
    else:
        cls = ProviderHTTPError
    return cls(
        message,
        model_name=model_name,
        status_code=status,
        body=shown,
        retry_after=retry_after,
    )


def _error_message(body: str | None) -> str | None:
    if not body:
        return None
    import json

    try:
        data: Any = json.loads(body)
    except ValueError:
        return body[:200]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:200]
        if isinstance(err, str):
            return err[:200]
    return body[:200]


class LoopBound:
    """Holds one SDK client per event loop: the client's connections belong to that loop.

    When a call comes from a different loop than the client was made on, a fresh client is
    made (the old loop's connections cannot be reused there). A client we own is closed by
    :meth:`aclose`, or, if nobody calls it, when its loop shuts down: a suspended async
    generator holds it, and ``asyncio.run`` (like every ``asyncio.Runner``) closes the async
    generators of a loop before closing the loop, which runs the generator's ``finally``.
    """

    def __init__(self) -> None:
        self.client: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._keeper: AsyncGenerator[None, None] | None = None

    async def get(self, factory: Callable[[], Any], *, owned: bool = True) -> Any:
        loop = asyncio.get_running_loop()
        if self.client is None or self.loop is not loop:
            self.client = factory()
            self.loop = loop
            self._keeper = None
            if owned:
                self._keeper = _close_at_shutdown(self.client)
                await self._keeper.__anext__()
        return self.client

    async def aclose(self) -> None:
        keeper, loop = self._keeper, self.loop
        self.client, self.loop, self._keeper = None, None, None
        if keeper is not None and loop is asyncio.get_running_loop():
            await keeper.aclose()  # runs its finally: closes the client


async def _close_at_shutdown(client: Any) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.close()
