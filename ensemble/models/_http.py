"""Shared plumbing of the HTTP adapters: keys, base URLs, error mapping, loop-bound clients.

Private: the adapters in ``openai.py`` and ``anthropic.py`` use it; nothing here is public.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import ipaddress
import json
import os
import ssl
import sys
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
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
    ResponseTooLargeError,
)
from ensemble.models.base import parse_retry_after

#: How much of an error body is kept on the exception (enough to read, not a whole page).
MAX_BODY_CHARS = 500
#: How much of an error body the lean path reads at most (the rest is never read).
MAX_ERROR_BODY_BYTES = 64 * 1024
#: The default ``max_response_bytes`` of the HTTP adapters: 4 MiB of (decoded) body, about
#: eight times the JSON of the longest answer current models can give (~128k tokens).
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
#: Set to ``1`` to allow cloud-metadata base URLs (the ``allow_metadata_hosts=True`` of every
#: adapter, for the whole process).
ALLOW_METADATA_ENV_VAR = "ENSEMBLE_ALLOW_METADATA_HOSTS"


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


def check_base_url(base_url: str, *, allow_metadata: bool = False, what: str = "base_url") -> str:
    """Accept only absolute http(s) URLs without credentials in them, and no cloud-metadata
    host (:func:`metadata_host`) unless ``allow_metadata`` or ``ENSEMBLE_ALLOW_METADATA_HOSTS=1``.

    ``what`` names the setting in messages (``"base_url"``, or the environment variable the
    URL came from). Nothing is resolved or connected to.
    """
    if not isinstance(base_url, str):
        raise ConfigurationError(f"{what} must be a string URL, not {type(base_url).__name__}")
    allowed = allow_metadata or os.environ.get(ALLOW_METADATA_ENV_VAR, "") in ("1", "true", "yes")
    if not allowed:
        try:
            host = urllib.parse.urlsplit(base_url.strip()).hostname
        except ValueError:
            host = None
        if host and metadata_host(host):
            raise ConfigurationError(
                f"{what} {base_url!r} points at a cloud-metadata service ({host}), which hands "
                "out the machine's credentials; pass allow_metadata_hosts=True (or set "
                f"{ALLOW_METADATA_ENV_VAR}=1) if you really mean it"
            )
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError, ValueError):  # ValueError: e.g. a lone surrogate
        raise ConfigurationError(f"{what} {base_url!r} is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"{what} must be an absolute http:// or https:// URL, not {base_url!r}"
        )
    if url.userinfo:
        raise ConfigurationError(
            f"{what} must not contain credentials; pass the key as api_key instead"
        )
    return str(url)


#: Cloud-metadata services: AWS, Azure, GCP, Oracle... (link-local), AWS over IPv6, Alibaba.
_METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def metadata_host(host: str) -> bool:
    """Whether ``host`` (a URL's host, brackets removed) names a cloud-metadata service.

    IP literals are matched in every spelling a resolver or an HTTP library may accept:
    dotted, integer (``2852039166``), hexadecimal (``0xa9fea9fe``), octal (``0251.0376.0.1``),
    short forms (``169.254.43518``), percent-encoded, and IPv6 forms that embed an IPv4
    address (``::ffff:169.254.169.254``, ``::a9fe:a9fe``, NAT64, 6to4). A name that is not an
    IP literal is compared with the known metadata names and never resolved.
    """
    name = urllib.parse.unquote(host).strip().strip("[]").rstrip(".").lower()
    if name in _METADATA_NAMES:
        return True
    address = _ip_literal(name)
    if address is None:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            candidates.append(address.sixtofour)
        if address in _NAT64 or int(address) >> 32 == 0:  # NAT64 / IPv4-compatible
            candidates.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return any(a in net for a in candidates for net in _METADATA_NETWORKS)


def _ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``name`` as an IP address, reading IPv4 the way ``inet_aton`` does (1 to 4 parts, each
    decimal, ``0x`` hexadecimal or ``0`` octal, the last part filling the remaining bytes)."""
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    parts = name.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        try:
            if part[:2] in ("0x", "0X"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10) if part.isdigit() else -1)
        except ValueError:
            return None
        if values[-1] < 0:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def should_retry(headers: Mapping[str, str] | None) -> bool | None:
    """The server's own retry verdict, the ``x-should-retry`` header (``true`` / ``false``)
    that the official SDKs obey over the status code; ``None`` when absent or unreadable."""
    if not headers:
        return None
    value = {k.lower(): v for k, v in headers.items()}.get("x-should-retry")
    verdict = value.strip().lower() if isinstance(value, str) else None
    return {"true": True, "false": False}.get(verdict or "")


def too_large(model_name: str, limit: int, detail: str) -> ResponseTooLargeError:
    """The error for an answer longer than ``limit`` bytes (``detail``: how we know)."""
    return ResponseTooLargeError(
        f"the answer is larger than max_response_bytes={limit} ({detail}); the rest was not "
        "read (raise max_response_bytes, or pass None for no limit)",
        model_name=model_name,
        limit=limit,
    )


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The ``Content-Length`` the server announced, if it is a number."""
    raw = headers.get("content-length") or headers.get("Content-Length")
    return int(raw) if isinstance(raw, str) and raw.strip().isdigit() else None


@functools.lru_cache(maxsize=1)
def stream_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """The timeout and the transport exception classes of httpx and (when installed) httpx2:
    what reading a streamed SDK response may raise outside the SDK's own error mapping."""
    timeouts: list[type[BaseException]] = [httpx.TimeoutException]
    transport: list[type[BaseException]] = [httpx.HTTPError, httpx.StreamError]
    if importlib.util.find_spec("httpx2") is not None:
        module = importlib.import_module("httpx2")
        timeouts.append(module.TimeoutException)
        transport += [module.HTTPError, module.StreamError]
    return tuple(timeouts), tuple(transport)


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
    verdict = should_retry(headers)
    cls: type[ProviderHTTPError]
    if status in (401, 403):
        cls = AuthenticationError
        message += "; check the API key (this run stops calling the provider)"
        verdict = None  # a refused key is never retried, whatever the header says
    elif status == 429:
        cls = RateLimitError
    else:
        cls = ProviderHTTPError
    if verdict is not None:
        message += f" (x-should-retry: {str(verdict).lower()})"
    return cls(
        message,
        model_name=model_name,
        status_code=status,
        body=shown,
        retry_after=retry_after,
        should_retry=verdict,
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
    return library_of(getattr(sdk, "DefaultAsyncHttpxClient", None))


def library_of(client_class: Any) -> str:
    """``"httpx2"`` or ``"httpx"``: the library an HTTP client class derives from."""
    for base in getattr(client_class, "__mro__", ()):
        root = str(getattr(base, "__module__", "")).split(".")[0]
        if root in ("httpx", "httpx2"):
            return root
    return "httpx"


def error_body_cap(library: str) -> Callable[[Any], Awaitable[None]]:
    """A ``response`` event hook for an httpx / httpx2 client that lets at most
    :data:`MAX_ERROR_BODY_BYTES` of a non-2xx body be read (the SDK reads error bodies in
    full itself); the connection of a cut body is closed, not reused."""
    return _error_body_cap(library)


@functools.lru_cache(maxsize=2)
def _error_body_cap(library: str) -> Callable[[Any], Awaitable[None]]:
    module = importlib.import_module(library)

    class Capped(module.AsyncByteStream):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any, cap: int) -> None:
            self._inner = inner
            self._cap = cap

        async def __aiter__(self) -> AsyncIterator[bytes]:
            left = self._cap
            async for chunk in self._inner:
                yield chunk[:left]
                left -= len(chunk)
                if left <= 0:
                    break

        async def aclose(self) -> None:
            await self._inner.aclose()

    async def hook(response: Any) -> None:
        if not 200 <= response.status_code < 300:
            response.stream = Capped(response.stream, MAX_ERROR_BODY_BYTES)

    return hook


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
    max_bytes: int | None = None,
) -> tuple[bytes, Mapping[str, str]]:
    """POST ``body`` as JSON; the 2xx body and headers, or the same typed errors as the SDK path.

    Redirects are not followed (a 3xx is a :class:`ProviderHTTPError`), so the key never goes
    to another host; nothing here logs or keeps the headers. A 2xx body longer than
    ``max_bytes`` (decoded) raises :class:`ResponseTooLargeError` as soon as that is known
    (from ``Content-Length``, or after ``max_bytes`` were read); of an error body at most
    :data:`MAX_ERROR_BODY_BYTES` are read. The exceptions raised carry no ``__context__``.
    """
    import aiohttp

    data = json.dumps(body).encode()
    failure: BaseException | None = None
    try:
        async with session.post(
            target.url,
            data=data,
            headers=target.headers,
            proxy=target.proxy,
            allow_redirects=False,
        ) as resp:
            status: int = resp.status
            answer: Mapping[str, str] = resp.headers
            ok = 200 <= status < 300
            cap = max_bytes if ok else MAX_ERROR_BODY_BYTES
            declared = declared_length(answer)
            if ok and cap is not None and declared is not None and declared > cap:
                resp.close()  # drop the connection: the body is never read
                failure = too_large(model_name, cap, f"Content-Length is {declared}")
                content = b""
            else:
                content, complete = await _read_capped(resp.content, cap)
                if not complete:
                    resp.close()
                    if ok:
                        assert cap is not None
                        failure = too_large(model_name, cap, f"more than {cap} bytes arrived")
    except asyncio.TimeoutError:  # aiohttp's own timeouts; the runner's attempt timeout cancels
        failure = ProviderTimeoutError("the request timed out", model_name=model_name)
    except aiohttp.ClientError as exc:
        why = redact(f"{type(exc).__name__}: {exc}", secret)
        failure = ProviderConnectionError(why, model_name=model_name)
    if failure is not None:
        raise failure  # outside the except clauses: no __context__ to the library's exception
    if not ok:
        raise http_error(
            status=status,
            headers=answer,
            body=content.decode("utf-8", "replace"),
            model_name=model_name,
            secret=secret,
        )
    return content, answer


async def _read_capped(stream: Any, cap: int | None) -> tuple[bytes, bool]:
    """Read an aiohttp body, at most ``cap`` bytes (``None``: all of it): ``(bytes, complete)``."""
    if cap is None:
        return bytes(await stream.read()), True
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = await stream.read(min(256 * 1024, cap + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:cap], False


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
