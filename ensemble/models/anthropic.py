"""``AnthropicModel``: the Messages API through the official ``anthropic`` SDK.

One call is one attempt (``max_retries=0``; the runner retries). Redirects are not followed.
The Messages API has no seed parameter, so repeats differ only by sampling.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, ClassVar, Literal

import anthropic
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
from ensemble.types import Usage

__all__ = ["AnthropicModel"]

logger = logging.getLogger("ensemble")

PLACEHOLDER_KEY = "not-needed"

#: The Messages API requires ``max_tokens``; used when neither the request nor the model sets it.
DEFAULT_MAX_TOKENS = 1024


class AnthropicModel(Model):
    """A model behind Anthropic's Messages API.

    The key comes from ``api_key`` or ``ANTHROPIC_API_KEY`` (not read when ``base_url`` points
    elsewhere than ``api.anthropic.com``, as for :class:`~ensemble.OpenAIModel`).
    ``max_tokens`` defaults to 1024 because the API requires a value. ``transport="aiohttp"``
    is the lean path described on :class:`~ensemble.OpenAIModel` (the SDK supplies the base
    URL and headers, the adapter posts the JSON body itself over aiohttp).
    """

    provider: ClassVar[str] = "anthropic"
    supports_seed: ClassVar[bool] = False
    supports_system: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = False
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "ANTHROPIC_API_KEY"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        http_client: Any = None,
        transport: Literal["httpx", "aiohttp"] = "httpx",
        name: str | None = None,
        temperature: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model must be a non-empty string")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError("max_tokens must be a positive integer")
        self.model = model
        self.name = name or f"{self.provider}:{model}"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.base_url = check_base_url(base_url) if base_url is not None else None
        custom = self.base_url is not None and httpx.URL(self.base_url).host != "api.anthropic.com"
        self._api_key = resolve_key(
            api_key, env_var="ANTHROPIC_API_KEY", provider="Anthropic", allow_missing=custom
        )
        self.timeout = timeout
        self._user_client = http_client
        self.transport = check_transport(transport, http_client)
        self._clients = LoopBound()
        self._target: Target | None = None  # where the lean path posts

    @property
    def endpoint(self) -> str:
        return f"{self.provider}@{self.base_url or 'https://api.anthropic.com'}"

    def _make_client(self) -> anthropic.AsyncAnthropic:
        key = self._api_key.get_secret_value() if self._api_key is not None else PLACEHOLDER_KEY
        http_client = self._user_client
        if http_client is None:
            http_client = anthropic.DefaultAsyncHttpxClient(follow_redirects=False)
        kwargs: dict[str, Any] = {}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return anthropic.AsyncAnthropic(
            api_key=key,
            base_url=self.base_url,
            max_retries=0,
            http_client=http_client,
            **kwargs,
        )

    def _params(self, request: Request) -> dict[str, Any]:
        turns, system = request.chat()
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens or self.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in turns],
        }
        if system is not None:
            params["system"] = system
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            # Anthropic accepts [0, 1]; OpenAI-style values above 1 are clipped, not rejected.
            # Recent SDKs no longer type the field, so it travels in the JSON body as is.
            params["extra_body"] = {"temperature": min(temperature, 1.0)}
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        return params

    async def agenerate(self, request: Request) -> Completion:
        params = self._params(request)
        logger.debug("%s: request", self.name)
        if self.transport == "aiohttp":
            return await self._lean(params)
        client = await self._clients.get(self._make_client, owned=self._user_client is None)
        started = time.perf_counter()
        try:
            raw = await client.messages.with_raw_response.create(**params)
            content = await raw.read()
        except anthropic.APIStatusError as exc:
            raise http_error(
                status=exc.status_code,
                headers=exc.response.headers,
                body=_safe_text(exc.response),
                model_name=self.name,
                secret=self._api_key,
            ) from None
        except anthropic.APITimeoutError:
            raise ProviderTimeoutError("the request timed out", model_name=self.name) from None
        except anthropic.APIConnectionError as exc:
            raise ProviderConnectionError(self._why(exc), model_name=self.name) from None
        except anthropic.AnthropicError as exc:
            raise InvalidResponseError(self._why(exc), model_name=self.name) from None
        latency = time.perf_counter() - started
        completion = self._parse(content, raw.headers, latency)
        logger.debug(
            "%s: answered in %.3fs (finish_reason=%s)",
            self.name,
            latency,
            completion.finish_reason,
        )
        return completion

    async def _lean(self, params: dict[str, Any]) -> Completion:
        """``transport="aiohttp"``: the SDK's URL and headers, our own POST (see the class)."""
        if self._target is None:
            self._target = sdk_target(self._make_client(), "v1/messages")
        body = {k: v for k, v in params.items() if k != "extra_body"}
        body.update(params.get("extra_body", {}))
        session = await self._clients.get(lambda: aiohttp_session(self.timeout))
        started = time.perf_counter()
        content, answer = await post_json(
            session, self._target, body, model_name=self.name, secret=self._api_key
        )
        latency = time.perf_counter() - started
        completion = self._parse(content, answer, latency)
        logger.debug(
            "%s: answered in %.3fs (finish_reason=%s)",
            self.name,
            latency,
            completion.finish_reason,
        )
        return completion

    def _why(self, exc: BaseException) -> str:
        cause = exc.__cause__ or exc.__context__
        text = f"{type(exc).__name__}: {exc}"
        if cause is not None and str(cause):
            text += f" ({type(cause).__name__}: {cause})"
        return redact(text, self._api_key)

    def _parse(self, content: bytes, headers: Any, latency: float) -> Completion:
        try:
            data = json.loads(content)
            blocks = data["content"]
            if not isinstance(blocks, list):
                raise TypeError("content is not a list")
            texts = [b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
            if not all(isinstance(t, str) for t in texts):
                raise TypeError("a text block is not a string")
            usage_data = data.get("usage")
            usage = (
                Usage(
                    input_tokens=usage_data.get("input_tokens"),
                    output_tokens=usage_data.get("output_tokens"),
                )
                if isinstance(usage_data, dict)
                else None
            )
            request_id = headers.get("request-id") or headers.get("x-request-id") or data.get("id")
            return Completion(
                text="".join(texts),
                finish_reason=data.get("stop_reason"),
                usage=usage,
                latency=latency,
                request_id=str(request_id) if request_id is not None else None,
                model=str(data.get("model") or self.model),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = redact(content[:120].decode("utf-8", "replace"), self._api_key)
            raise InvalidResponseError(
                f"the 200 answer is not a message ({type(exc).__name__}); "
                f"body starts with {snippet!r}",
                model_name=self.name,
            ) from None

    async def aclose(self) -> None:
        # A caller's http_client is theirs to close: then only our reference is dropped.
        await self._clients.aclose()


def _safe_text(response: Any) -> str | None:
    try:
        return str(response.text)
    except Exception:  # the body could not be read or decoded
        return None
