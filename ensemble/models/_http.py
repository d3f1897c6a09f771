"""Shared plumbing of the HTTP adapters: keys, base URLs, error mapping, loop-bound clients.

Private: the adapters in ``openai.py`` and ``anthropic.py`` use it; nothing here is public.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import json
import os
import ssl
import sys
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, NamedTuple

import httpx
from pydantic import SecretStr

from ensemble.errors import (
    AuthenticationError,
    ConfigurationError,
    MissingAPIKeyError,
    MissingDependencyError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderTimeoutError,
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
    """``"httpx"`` (through the SDK) or ``"aiohttp"`` (the lean path; needs the extra)."""
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
    except (httpx.InvalidURL, TypeError, ValueError):  # ValueError: e.g. a lone surrogate
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


# --- the lean path (transport="aiohttp") -------------------------------------------------------
#
# The official SDKs spend most of their client CPU per call building the request (option
# models, URL and header merging) and in httpx's connection pool: about 1.3 ms per call here,
# which puts a 64-call fan-out at 1.35-1.45x one call's latency (benchmarks/fanout.py). The lean
# path keeps the SDK as the source of the configuration (base URL, auth and default headers,
# custom headers from the environment) but sends the JSON body itself over aiohttp.


class Target(NamedTuple):
    """Where the lean path posts: the URL, the headers, the proxy (or ``None``), and the HTTP
    library whose TLS trust it uses (the SDK's own: :func:`http_library`)."""

    url: str
    headers: dict[str, str]
    proxy: str | None
    tls: str

    def __repr__(self) -> str:  # the headers hold the key
        return f"Target(url={self.url!r}, proxy={self.proxy!r}, tls={self.tls!r})"


def sdk_target(client: Any, path: str) -> Target:
    """The URL of ``path`` under the SDK client's base URL, and the headers it would send.

    ``auth_headers`` and ``default_headers`` are the SDKs' public properties; values the SDK
    marks as omitted (not strings) are dropped, as the SDK itself does.
    """
    merged = {**client.auth_headers, **client.default_headers}
    headers = {k: v for k, v in merged.items() if isinstance(v, str)}
    url = str(client.base_url).rstrip("/") + "/" + path.lstrip("/")
    return Target(url, headers, env_proxy(url), http_library(client))


def http_library(client: Any) -> str:
    """The HTTP library, ``"httpx2"`` or ``"httpx"``, that the SDK of ``client`` builds its
    own connections with (read from the SDK's public ``DefaultAsyncHttpxClient``).

    The lean path takes its TLS trust from the same library, so both paths trust the same
    certificates: current SDKs use httpx2, which trusts the system's store (truststore on
    Windows and macOS, OpenSSL's store on Linux), older ones httpx, which trusts certifi's
    bundle. A CA that a company installs in the system store then works on both paths.
    """
    sdk = sys.modules.get(type(client).__module__.split(".")[0])
    default = getattr(sdk, "DefaultAsyncHttpxClient", None)
    for base in getattr(default, "__mro__", ()):
        root = str(getattr(base, "__module__", "")).split(".")[0]
        if root in ("httpx", "httpx2"):
            return root
    return "httpx"


def env_proxy(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``...) names for
    ``url``, as httpx would use it; ``None`` for none.

    Looked up once per target: aiohttp's own ``trust_env`` does it in a worker thread on
    every request, which costs more client CPU than the rest of the lean path.
    """
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


@functools.lru_cache(maxsize=8)
def _tls_context(library: str, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # The library's default context: verification on, its CA store, or SSL_CERT_FILE /
    # SSL_CERT_DIR when set (the arguments key the cache; building one takes ~30 ms).
    module = httpx if library == "httpx" else importlib.import_module(library)
    context: ssl.SSLContext = module.create_ssl_context()
    return context


def tls_context(library: str) -> ssl.SSLContext:
    """The TLS settings of the lean path: the default of ``library`` (:func:`http_library`;
    ``"httpx2"``: the system's CA store, ``"httpx"``: certifi's bundle), or the
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` named in the environment; verification always on."""
    return _tls_context(library, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def aiohttp_session(timeout: float | None, tls: str) -> Any:
    """An aiohttp session for the lean path: the SDKs' default timeouts and connection limit,
    the TLS settings of the SDK's HTTP library ``tls`` (:func:`tls_context`); proxies come
    from :func:`env_proxy`, and redirects are refused in :func:`post_json`."""
    import aiohttp

    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout)
        if timeout is not None
        else aiohttp.ClientTimeout(total=600.0, connect=5.0),
        connector=aiohttp.TCPConnector(limit=1000, ssl=tls_context(tls)),
    )


async def post_json(
    session: Any,
    target: Target,
    body: Mapping[str, Any],
    *,
    model_name: str,
    secret: SecretStr | None,
) -> tuple[bytes, Mapping[str, str]]:
    """POST ``body`` as JSON; the 2xx body and headers, or the same typed errors as the SDK path.

    Redirects are not followed (a 3xx is a :class:`ProviderHTTPError`), so the key never goes
    to another host; nothing here logs or keeps the headers.
    """
    import aiohttp

    data = json.dumps(body).encode()
    try:
        async with session.post(
            target.url,
            data=data,
            headers=target.headers,
            proxy=target.proxy,
            allow_redirects=False,
        ) as resp:
            content: bytes = await resp.read()
            status: int = resp.status
            answer: Mapping[str, str] = resp.headers
    except asyncio.TimeoutError:  # aiohttp's own timeouts; the runner's attempt timeout cancels
        raise ProviderTimeoutError("the request timed out", model_name=model_name) from None
    except aiohttp.ClientError as exc:
        why = redact(f"{type(exc).__name__}: {exc}", secret)
        raise ProviderConnectionError(why, model_name=model_name) from None
    if not 200 <= status < 300:
        raise http_error(
            status=status,
            headers=answer,
            body=content.decode("utf-8", "replace"),
            model_name=model_name,
            secret=secret,
        )
    return content, answer


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
