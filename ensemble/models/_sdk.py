"""What the two SDK adapters share: settings, the call flow, the two paths, error mapping.

Private: :class:`~ensemble.OpenAIModel` and :class:`~ensemble.AnthropicModel` subclass
:class:`SDKModel` and supply only what differs per API (the SDK client, the request body, the
SDK call, the answer's shape).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from ensemble.errors import (
    ConfigurationError,
    InvalidResponseError,
    ProviderConnectionError,
    ProviderTimeoutError,
)
from ensemble.models._http import (
    LoopBound,
    Target,
    aiohttp_session,
    check_base_url,
    check_transport,
    http_error,
    post_json,
    redact,
    resolve_key,
    sdk_target,
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
    ) -> None:
        """The settings both adapters validate the same way (called by their ``__init__``)."""
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model must be a non-empty string")
        self.model = model
        self.name = name or f"{self.provider}:{model}"
        self.temperature = temperature
        self.base_url = check_base_url(base_url) if base_url is not None else None
        custom = self.base_url is not None and httpx.URL(self.base_url).host != self.official_host
        assert self.key_env_var is not None
        self._api_key: SecretStr | None = resolve_key(
            api_key, env_var=self.key_env_var, provider=self.label, allow_missing=custom
        )
        self.timeout = timeout
        self._user_client = http_client
        self.transport = check_transport(transport, http_client)
        self._clients = LoopBound()
        self._target: Target | None = None  # where the lean path posts

    @property
    def endpoint(self) -> str:
        return f"{self.provider}@{self.base_url or self.official_base_url}"

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

    # --- the call ----------------------------------------------------------------------------

    async def agenerate(self, request: Request) -> Completion:
        params = self._params(request)
        logger.debug("%s: request (seed=%s)", self.name, request.seed)
        if self.transport == "aiohttp":
            content, headers, latency = await self._post_lean(params)
        else:
            content, headers, latency = await self._post_sdk(params)
        completion = self._parse(content, headers, latency)
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
        try:
            content, headers = await self._call_sdk(client, params)
        except status_error as exc:
            response: Any = getattr(exc, "response", None)
            raise http_error(
                status=int(getattr(exc, "status_code", 0)),
                headers=getattr(response, "headers", None),
                body=_safe_text(response),
                model_name=self.name,
                secret=self._api_key,
            ) from None
        except timeout_error:
            raise ProviderTimeoutError("the request timed out", model_name=self.name) from None
        except connection_error as exc:
            raise ProviderConnectionError(self._why(exc), model_name=self.name) from None
        except base_error as exc:
            raise InvalidResponseError(self._why(exc), model_name=self.name) from None
        return content, headers, time.perf_counter() - started

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
            session, target, body, model_name=self.name, secret=self._api_key
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
