"""``OpenAIModel``: Chat Completions through the official ``openai`` SDK.

Works with OpenAI itself and with any OpenAI-compatible server (vLLM, llama.cpp, Ollama,
LM Studio) through ``base_url``. One call is one attempt: the SDK is created with
``max_retries=0`` and the runner retries. Redirects are not followed, so the key is never sent
to a host it was not meant for.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, ClassVar, Literal

import httpx
import openai
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

__all__ = ["OpenAIModel"]

logger = logging.getLogger("ensemble")

#: Sent as the key to servers at a custom ``base_url`` that need none (llama.cpp, Ollama...).
PLACEHOLDER_KEY = "not-needed"


class OpenAIModel(Model):
    """A model behind the OpenAI Chat Completions API.

    The key comes from ``api_key`` or the environment variable ``OPENAI_API_KEY``. With a
    custom ``base_url`` the environment variable is **not** read (so an OpenAI key is never
    sent to another server by accident): pass ``api_key`` for servers that need one; servers
    that need none get a placeholder. ``http_client`` (an ``httpx`` async client) is used as
    given and never closed by the model; ``timeout`` is the SDK's per-request timeout.
    ``transport="aiohttp"`` (with the ``aiohttp`` extra) is the lean path for large
    fan-outs: the SDK client still supplies the base URL and the headers, but the adapter posts
    the JSON body itself over aiohttp, skipping the SDK's per-call request pipeline, which
    costs several times less client CPU per call (see ``docs/runner.md``). To run the full SDK
    over aiohttp instead, pass ``http_client=openai.DefaultAioHttpClient()``.
    """

    provider: ClassVar[str] = "openai"
    supports_seed: ClassVar[bool] = True
    supports_system: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = True
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "OPENAI_API_KEY"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        timeout: float | None = None,
        http_client: Any = None,
        transport: Literal["httpx", "aiohttp"] = "httpx",
        name: str | None = None,
        temperature: float | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("model must be a non-empty string")
        self.model = model
        self.name = name or f"{self.provider}:{model}"
        self.temperature = temperature
        self.base_url = check_base_url(base_url) if base_url is not None else None
        custom = self.base_url is not None and httpx.URL(self.base_url).host != "api.openai.com"
        self._api_key = resolve_key(
            api_key, env_var="OPENAI_API_KEY", provider="OpenAI", allow_missing=custom
        )
        self.organization = organization
        self.timeout = timeout
        self._user_client = http_client
        self.transport = check_transport(transport, http_client)
        self._clients = LoopBound()
        self._target: Target | None = None  # where the lean path posts

    @property
    def endpoint(self) -> str:
        return f"{self.provider}@{self.base_url or 'https://api.openai.com/v1'}"

    def _make_client(self) -> openai.AsyncOpenAI:
        key = self._api_key.get_secret_value() if self._api_key is not None else PLACEHOLDER_KEY
        http_client = self._user_client
        if http_client is None:
            http_client = openai.DefaultAsyncHttpxClient(follow_redirects=False)
        kwargs: dict[str, Any] = {}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return openai.AsyncOpenAI(
            api_key=key,
            base_url=self.base_url,
            organization=self.organization,
            max_retries=0,
            http_client=http_client,
            **kwargs,
        )

    def _params(self, request: Request) -> dict[str, Any]:
        turns, system = request.chat()
        messages: list[dict[str, str]] = []
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages += [{"role": m.role, "content": m.content} for m in turns]
        params: dict[str, Any] = {"model": self.model, "messages": messages}
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            params["temperature"] = temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        return params

    async def agenerate(self, request: Request) -> Completion:
        params = self._params(request)
        logger.debug("%s: request (seed=%s)", self.name, request.seed)
        if self.transport == "aiohttp":
            return await self._lean(params)
        client = await self._clients.get(self._make_client, owned=self._user_client is None)
        started = time.perf_counter()
        try:
            # The SDK's documented raw route (auth, headers, error types, no retries) without
            # its per-call parameter transform, which costs ~3 ms of CPU per call: the body is
            # plain JSON we built ourselves, and we validate the answer ourselves.
            raw = await client.post("/chat/completions", body=params, cast_to=httpx.Response)
            content = raw.content
        except openai.APIStatusError as exc:
            raise http_error(
                status=exc.status_code,
                headers=exc.response.headers,
                body=_safe_text(exc.response),
                model_name=self.name,
                secret=self._api_key,
            ) from None
        except openai.APITimeoutError:
            raise ProviderTimeoutError("the request timed out", model_name=self.name) from None
        except openai.APIConnectionError as exc:
            raise ProviderConnectionError(self._why(exc), model_name=self.name) from None
        except openai.OpenAIError as exc:
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
            self._target = sdk_target(self._make_client(), "chat/completions")
        session = await self._clients.get(lambda: aiohttp_session(self.timeout))
        started = time.perf_counter()
        content, answer = await post_json(
            session, self._target, params, model_name=self.name, secret=self._api_key
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

    def _parse(self, content: bytes, headers: httpx.Headers | Any, latency: float) -> Completion:
        try:
            data = json.loads(content)
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content")
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise TypeError("message.content is not a string")
            usage_data = data.get("usage") or None
            usage = (
                Usage(
                    input_tokens=usage_data.get("prompt_tokens"),
                    output_tokens=usage_data.get("completion_tokens"),
                )
                if isinstance(usage_data, dict)
                else None
            )
            request_id = headers.get("x-request-id") or data.get("id")
            return Completion(
                text=text,
                finish_reason=choice.get("finish_reason"),
                usage=usage,
                latency=latency,
                request_id=str(request_id) if request_id is not None else None,
                model=str(data.get("model") or self.model),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = redact(content[:120].decode("utf-8", "replace"), self._api_key)
            raise InvalidResponseError(
                f"the 200 answer is not a chat completion ({type(exc).__name__}); "
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
