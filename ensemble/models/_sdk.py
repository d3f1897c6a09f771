"""What the two SDK adapters share: settings, the call flow, the two paths, error mapping.

Private: :class:`~ensemble.OpenAIModel` and :class:`~ensemble.AnthropicModel` subclass
:class:`SDKModel` and supply only what differs per API (the SDK client, the request body, the
SDK call, the answer's shape).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from ensemble._validate import check_int, check_number
from ensemble.errors import (
    ConfigurationError,
    InvalidResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from ensemble.models._http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    LoopBound,
    Target,
    aiohttp_session,
    check_base_url,
    check_transport,
    declared_length,
    error_body_cap,
    http_error,
    library_of,
    post_json,
    redact,
    resolve_key,
    sdk_target,
    stream_errors,
    too_large,
)
from ensemble.models.base import Completion, Model, Request

logger = logging.getLogger("ensemble")

#: Sent as the key to servers at a custom ``base_url`` that need none (llama.cpp, Ollama...).
PLACEHOLDER_KEY = "not-needed"


class SDKModel(Model):
    """An adapter over an official SDK, with the lean ``transport="aiohttp"`` path beside it.

    Subclasses set the class attributes below and implement :meth:`_make_client`,
    :meth:`_params`, :meth:`_call_sdk` and :meth:`_parse`.
    """

    #: The provider's own host: only there is the key read from the environment.
    official_host: ClassVar[str]
    #: The base URL the SDK uses when none is given (for :attr:`endpoint`).
    official_base_url: ClassVar[str]
    #: The environment variable the SDK reads the base URL from when none is given.
    base_url_env_var: ClassVar[str]
    #: The provider's name in messages ("OpenAI").
    label: ClassVar[str]
    #: The API path under the base URL, for the lean path.
    api_path: ClassVar[str]
    #: The SDK's exception classes: status, timeout, connection, and its base error.
    sdk_errors: ClassVar[tuple[type[Exception], type[Exception], type[Exception], type[Exception]]]

    def _setup(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None,
        base_url: str | None,
        timeout: float | None,
        http_client: Any,
        transport: str,
        name: str | None,
        temperature: float | None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        allow_metadata_hosts: bool = False,
    ) -> None:
        """The settings both adapters validate the same way (called by their ``__init__``).

        The base URL is resolved here, once, as the SDK would resolve it (the argument, else
        the SDK's environment variable, e.g. ``OPENAI_BASE_URL``, else the official URL), and
        then always handed to the SDK explicitly: :attr:`base_url` and :attr:`endpoint` are
        where the requests go. The key is read from the environment only for the official
        host or for a base URL that also came from the environment.
        """
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model must be a non-empty string")
        if not isinstance(allow_metadata_hosts, bool):
            raise ConfigurationError("allow_metadata_hosts must be True or False")
        owner = type(self).__name__
        self.max_response_bytes = (
            None
            if max_response_bytes is None
            else check_int(f"{owner}: max_response_bytes", max_response_bytes, minimum=1)
        )
        checked_timeout = (
            None
            if timeout is None
            else check_number(f"{owner}: timeout", timeout, low=0.0, low_open=True)
        )
        self.temperature = (
            None
            if temperature is None
            else check_number(f"{owner}: temperature", temperature, low=0.0)
        )
        self.model = model
        self.name = name or f"{self.provider}:{model}"
        from_env = os.environ.get(self.base_url_env_var, "").strip() if base_url is None else ""
        if base_url is not None:
            self.base_url_source = "argument"
            resolved = check_base_url(base_url, allow_metadata=allow_metadata_hosts)
        elif from_env:
            self.base_url_source = self.base_url_env_var
            resolved = check_base_url(
                from_env, allow_metadata=allow_metadata_hosts, what=self.base_url_env_var
            )
        else:
            self.base_url_source = "default"
            resolved = self.official_base_url
        self.base_url: str = resolved
        """Where the requests go: the ``base_url`` argument, else the SDK's environment
        variable, else the official URL (:attr:`base_url_source` says which)."""
        custom = (
            self.base_url_source == "argument"
            and httpx.URL(self.base_url).host != self.official_host
        )
        assert self.key_env_var is not None
        self._api_key: SecretStr | None = resolve_key(
            api_key, env_var=self.key_env_var, provider=self.label, allow_missing=custom
        )
        self.timeout = checked_timeout
        self._user_client = http_client
        self.transport = check_transport(transport, http_client)
        self._clients = LoopBound()
        self._target: Target | None = None  # where the lean path posts
        self._shown_url: tuple[str, str] | None = None  # (base_url, it without its query)

    @property
    def endpoint(self) -> str:
        # Without query and fragment: the endpoint lands in every Sample (and so in stores and
        # files), and a query string may carry a key (``?api-key=...``).
        shown = self._shown_url
        if shown is None or shown[0] != self.base_url:
            url = httpx.URL(self.base_url).copy_with(query=None, fragment=None)
            shown = self._shown_url = (self.base_url, str(url))
        return f"{self.provider}@{shown[1]}"

    def _default_http_client(self, factory: Any) -> Any:
        """The SDK's default async client class ``factory``, with redirects off and error
        bodies capped (:func:`~ensemble.models._http.error_body_cap`)."""
        hook = error_body_cap(library_of(factory))
        return factory(follow_redirects=False, event_hooks={"response": [hook]})

    def _key(self) -> str:
        return self._api_key.get_secret_value() if self._api_key is not None else PLACEHOLDER_KEY

    # --- per API -----------------------------------------------------------------------------

    def _make_client(self) -> Any:
        """The SDK client (``max_retries=0``, redirects off) for the current event loop."""
        raise NotImplementedError

    def _params(self, request: Request) -> dict[str, Any]:
        """The request body (SDK keyword arguments; ``extra_body`` is merged on the lean path)."""
        raise NotImplementedError

    async def _call_sdk(self, client: Any, params: dict[str, Any]) -> tuple[bytes, Any]:
        """One raw SDK call: the answer's body and headers."""
        raise NotImplementedError

    def _parse(self, content: bytes, headers: Any, latency: float) -> Completion:
        """The completion in a 2xx body, or :class:`InvalidResponseError`."""
        raise NotImplementedError

    def _sent(self, completion: Completion, params: dict[str, Any]) -> Completion:
        """``completion`` with what it needs from the body that was sent (by default,
        nothing: completion mode records the rendered prompt)."""
        return completion

    # --- the call ----------------------------------------------------------------------------

    async def agenerate(self, request: Request) -> Completion:
        params = self._params(request)
        logger.debug("%s: request (seed=%s)", self.name, request.seed)
        post = self._post_lean if self.transport == "aiohttp" else self._post_sdk
        if self.timeout is None:
            content, headers, latency = await post(params)
        else:  # ``timeout`` bounds the whole attempt (connect, wait, every byte of the body)
            try:
                content, headers, latency = await asyncio.wait_for(post(params), self.timeout)
            except asyncio.TimeoutError:
                late = True
            else:
                late = False
            if late:  # raised outside the except clause: no __context__
                raise ProviderTimeoutError(
                    f"no complete answer within timeout={self.timeout:g} s", model_name=self.name
                )
        completion = self._sent(self._parse(content, headers, latency), params)
        logger.debug(
            "%s: answered in %.3fs (finish_reason=%s)",
            self.name,
            latency,
            completion.finish_reason,
        )
        return completion

    async def _post_sdk(self, params: dict[str, Any]) -> tuple[bytes, Any, float]:
        client = await self._clients.get(self._make_client, owned=self._user_client is None)
        status_error, timeout_error, connection_error, base_error = self.sdk_errors
        started = time.perf_counter()
        failure: ProviderError
        # Every error is built inside its except clause but raised after it, so the SDK's
        # exception (whose body or request may hold the key) is neither the ``__cause__`` nor
        # the ``__context__`` of what we raise: nothing keeps a reference to it.
        try:
            content, headers = await self._call_sdk(client, params)
        except status_error as exc:
            response: Any = getattr(exc, "response", None)
            failure = http_error(
                status=int(getattr(exc, "status_code", 0)),
                headers=getattr(response, "headers", None),
                body=_safe_text(response),
                model_name=self.name,
                secret=self._api_key,
            )
            del response
        except timeout_error:
            failure = ProviderTimeoutError("the request timed out", model_name=self.name)
        except connection_error as exc:
            failure = ProviderConnectionError(self._why(exc), model_name=self.name)
        except base_error as exc:
            failure = InvalidResponseError(self._why(exc), model_name=self.name)
        else:
            return content, headers, time.perf_counter() - started
        raise failure

    async def _read_body(self, response: Any) -> bytes:
        """The decoded body of a streamed SDK response, at most ``max_response_bytes``.

        Raises :class:`~ensemble.errors.ResponseTooLargeError` without reading further (from
        ``Content-Length`` before any byte, or once the limit is passed), and maps the HTTP
        library's errors while the body streams in to the adapter's typed errors.
        """
        limit = self.max_response_bytes
        declared = declared_length(response.headers)
        if limit is not None and declared is not None and declared > limit:
            raise too_large(self.name, limit, f"Content-Length is {declared}")
        timeouts, transport_errors = stream_errors()
        chunks: list[bytes] = []
        size = 0
        failure: ProviderError | None = None
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if limit is not None and size > limit:
                    failure = too_large(self.name, limit, f"more than {limit} bytes arrived")
                    break
                chunks.append(chunk)
        except timeouts:
            failure = ProviderTimeoutError("the answer timed out", model_name=self.name)
        except transport_errors as exc:
            failure = ProviderConnectionError(self._why(exc), model_name=self.name)
        if failure is not None:
            raise failure
        return b"".join(chunks)

    async def _post_lean(self, params: dict[str, Any]) -> tuple[bytes, Mapping[str, str], float]:
        """``transport="aiohttp"``: the SDK's URL and headers, our own POST."""
        if self._target is None:
            self._target = sdk_target(self._make_client(), self.api_path)
        target = self._target
        body = {k: v for k, v in params.items() if k != "extra_body"}
        body.update(params.get("extra_body", {}))
        session = await self._clients.get(lambda: aiohttp_session(self.timeout, target.tls))
        started = time.perf_counter()
        content, headers = await post_json(
            session,
            target,
            body,
            model_name=self.name,
            secret=self._api_key,
            max_bytes=self.max_response_bytes,
        )
        return content, headers, time.perf_counter() - started

    def _why(self, exc: BaseException) -> str:
        cause = exc.__cause__ or exc.__context__
        text = f"{type(exc).__name__}: {exc}"
        if cause is not None and str(cause):
            text += f" ({type(cause).__name__}: {cause})"
        return redact(text, self._api_key)

    def _invalid(self, content: bytes, what: str, exc: BaseException) -> InvalidResponseError:
        """The error for a 2xx body that is not ``what`` (with a redacted snippet of it)."""
        snippet = redact(content[:120].decode("utf-8", "replace"), self._api_key)
        return InvalidResponseError(
            f"the 200 answer is not {what} ({type(exc).__name__}); body starts with {snippet!r}",
            model_name=self.name,
        )

    async def aclose(self) -> None:
        # A caller's http_client is theirs to close: then only our reference is dropped.
        await self._clients.aclose()


def _safe_text(response: Any) -> str | None:
    try:
        return str(response.text)
    except Exception:  # the body could not be read or decoded
        return None
