"""``AnthropicModel``: the Messages API through the official ``anthropic`` SDK.

One call is one attempt (``max_retries=0``; the runner retries). Redirects are not followed.
The Messages API has no seed parameter, so repeats differ only by sampling.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import anthropic
from pydantic import SecretStr

from ensemble.errors import ConfigurationError
from ensemble.models._http import DEFAULT_MAX_RESPONSE_BYTES
from ensemble.models._sdk import SDKModel
from ensemble.models.base import Completion, Request
from ensemble.types import Usage

__all__ = ["AnthropicModel"]

#: The Messages API requires ``max_tokens``; used when neither the request nor the model sets it.
DEFAULT_MAX_TOKENS = 1024


class AnthropicModel(SDKModel):
    """A model behind Anthropic's Messages API.

    The base URL is ``base_url``, else ``ANTHROPIC_BASE_URL``, else the official one. The key
    comes from ``api_key`` or ``ANTHROPIC_API_KEY`` (the latter read only for
    ``api.anthropic.com`` or a base URL from ``ANTHROPIC_BASE_URL``, as for
    :class:`~ensemble.OpenAIModel`, which also describes ``timeout``, ``max_response_bytes``
    and ``allow_metadata_hosts``).
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
    official_host: ClassVar[str] = "api.anthropic.com"
    official_base_url: ClassVar[str] = "https://api.anthropic.com"
    base_url_env_var: ClassVar[str] = "ANTHROPIC_BASE_URL"
    label: ClassVar[str] = "Anthropic"
    api_path: ClassVar[str] = "v1/messages"
    sdk_errors = (
        anthropic.APIStatusError,
        anthropic.APITimeoutError,
        anthropic.APIConnectionError,
        anthropic.AnthropicError,
    )

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
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        allow_metadata_hosts: bool = False,
    ) -> None:
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError("max_tokens must be a positive integer")
        self._setup(
            model,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            http_client=http_client,
            transport=transport,
            name=name,
            temperature=temperature,
            max_response_bytes=max_response_bytes,
            allow_metadata_hosts=allow_metadata_hosts,
        )
        self.max_tokens = max_tokens

    def _make_client(self) -> anthropic.AsyncAnthropic:
        http_client = self._user_client
        if http_client is None:
            http_client = self._default_http_client(anthropic.DefaultAsyncHttpxClient)
        kwargs: dict[str, Any] = {}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return anthropic.AsyncAnthropic(
            api_key=self._key(),
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
        temperature = self.temperature_for(request)
        if temperature is not None:
            # Anthropic accepts [0, 1]; OpenAI-style values above 1 are clipped, not rejected.
            # Recent SDKs no longer type the field, so it travels in the JSON body as is.
            params["extra_body"] = {"temperature": min(temperature, 1.0)}
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        return params

    async def _call_sdk(self, client: Any, params: dict[str, Any]) -> tuple[bytes, Any]:
        # Streamed, so that max_response_bytes bounds what is read.
        async with client.messages.with_streaming_response.create(**params) as raw:
            return await self._read_body(raw.http_response), raw.headers

    def _parse(self, content: bytes, headers: Any, latency: float) -> Completion:
        try:
            data = json.loads(content)
            blocks = data["content"]
            if blocks is None:  # as OpenAI's ``content: null``: an empty (abstaining) completion
                blocks = []
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
            raise self._invalid(content, "a message", exc) from None
