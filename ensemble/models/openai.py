"""``OpenAIModel``: Chat Completions through the official ``openai`` SDK.

Works with OpenAI itself and with any OpenAI-compatible server (vLLM, llama.cpp, Ollama,
LM Studio) through ``base_url``. One call is one attempt: the SDK is created with
``max_retries=0`` and the runner retries. Redirects are not followed, so the key is never sent
to a host it was not meant for.

``mode="completion"`` talks to ``/v1/completions`` instead (base models, which have no chat
template): the request is rendered into one prompt string by a template (few-shot by default,
see :data:`DEFAULT_COMPLETION_TEMPLATE`) and generation stops at the template's stop sequences.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import httpx
import openai
from pydantic import SecretStr

from ensemble.errors import ConfigurationError
from ensemble.models._http import DEFAULT_MAX_RESPONSE_BYTES
from ensemble.models._sdk import SDKModel
from ensemble.models.base import Completion, Request
from ensemble.types import Usage

__all__ = ["DEFAULT_COMPLETION_TEMPLATE", "OpenAIModel"]

logger = logging.getLogger("ensemble")

#: The few-shot template of ``mode="completion"``: ``{prompt}`` is replaced by the question
#: (plain text replacement, so braces in a question need no escaping).
DEFAULT_COMPLETION_TEMPLATE = (
    "Question: What is the capital of Italy?\n"
    "Answer: The capital of Italy is Rome.\n"
    "\n"
    "Question: Who wrote the play Hamlet?\n"
    "Answer: Hamlet was written by William Shakespeare.\n"
    "\n"
    "Question: {prompt}\n"
    "Answer:"
)
#: Where ``mode="completion"`` stops by default: the end of the answer's paragraph, or the
#: next few-shot question the base model starts to invent.
DEFAULT_COMPLETION_STOP: tuple[str, ...] = ("\n\n", "\nQuestion:")


#: JSON Schema keywords that OpenAI's own API refuses in a strict ``json_schema`` (its
#: Structured Outputs accept a subset of JSON Schema): ``prefixItems`` (a tuple), which
#: :func:`ensemble._plan.plan_schema` uses and llama.cpp's server and vLLM honour.
_STRICT_REFUSED_KEYWORDS = frozenset({"prefixItems"})
#: The keywords whose values are data or names, not schemas (never searched for keywords).
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples", "description", "title"})
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def _refused_keywords(schema: Any) -> set[str]:
    """The keywords of :data:`_STRICT_REFUSED_KEYWORDS` that ``schema`` uses anywhere."""
    found: set[str] = set()
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo += node
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in _DATA_KEYWORDS:
                    continue
                if key in _NAMED_SCHEMAS and isinstance(value, dict):
                    todo += list(value.values())
                    continue
                if key in _STRICT_REFUSED_KEYWORDS:
                    found.add(key)
                todo.append(value)
    return found


def render_completion_prompt(request: Request, template: str) -> str:
    """The one prompt string ``mode="completion"`` sends for ``request``.

    The question is ``request.prompt``, or for ``messages`` the turns written as
    ``"User: ..."`` / ``"Assistant: ..."`` lines; the system text, if any, comes first,
    followed by a blank line.
    """
    turns, system = request.chat()
    if request.prompt is not None:
        question = request.prompt
    else:
        question = "\n".join(f"{m.role.capitalize()}: {m.content}" for m in turns)
    text = template.replace("{prompt}", question)
    return f"{system}\n\n{text}" if system else text


class OpenAIModel(SDKModel):
    """A model behind the OpenAI Chat Completions API.

    The base URL is ``base_url``, else ``OPENAI_BASE_URL``, else the official one; it is what
    :attr:`base_url` and :attr:`endpoint` report. The key comes from ``api_key`` or
    ``OPENAI_API_KEY``; the environment's key is read only for ``api.openai.com`` or a base
    URL from ``OPENAI_BASE_URL`` (never for a ``base_url`` argument on another host, which
    gets a placeholder unless ``api_key`` is given). Cloud-metadata hosts are refused unless
    ``allow_metadata_hosts=True``. ``http_client`` (an ``httpx`` async client) is used as
    given and never closed by the model; ``timeout`` bounds the whole attempt, and a body
    over ``max_response_bytes`` raises :class:`~ensemble.errors.ResponseTooLargeError`.
    ``transport="aiohttp"`` (with the ``aiohttp`` extra) is the lean path for large
    fan-outs: the SDK client still supplies the base URL and the headers, but the adapter posts
    the JSON body itself over aiohttp, skipping the SDK's per-call request pipeline, which
    costs several times less client CPU per call (see ``docs/runner.md``). To run the full SDK
    over aiohttp instead, pass ``http_client=openai.DefaultAioHttpClient()``.

    ``mode="completion"`` posts to ``/v1/completions`` (for base models): ``prompt_template``
    (a string containing ``{prompt}``; default :data:`DEFAULT_COMPLETION_TEMPLATE`) renders
    the request into one prompt, ``stop`` (default :data:`DEFAULT_COMPLETION_STOP`) are the
    stop sequences, to which a request's own ``stop`` is added. The answer is stripped of
    surrounding white space, and the rendered prompt is kept on the completion
    (``Completion.prompt_sent``) and so on the sample.
    """

    provider: ClassVar[str] = "openai"
    supports_seed: ClassVar[bool] = True
    supports_system: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = True
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "OPENAI_API_KEY"
    official_host: ClassVar[str] = "api.openai.com"
    official_base_url: ClassVar[str] = "https://api.openai.com/v1"
    base_url_env_var: ClassVar[str] = "OPENAI_BASE_URL"
    label: ClassVar[str] = "OpenAI"
    api_path: ClassVar[str] = "chat/completions"
    sdk_errors = (
        openai.APIStatusError,
        openai.APITimeoutError,
        openai.APIConnectionError,
        openai.OpenAIError,
    )

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
        mode: Literal["chat", "completion"] = "chat",
        prompt_template: str | None = None,
        stop: Sequence[str] | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        allow_metadata_hosts: bool = False,
    ) -> None:
        if mode not in ("chat", "completion"):
            raise ConfigurationError(f"mode must be 'chat' or 'completion', not {mode!r}")
        if mode == "chat" and (prompt_template is not None or stop is not None):
            raise ConfigurationError("prompt_template and stop need mode='completion'")
        template = DEFAULT_COMPLETION_TEMPLATE if prompt_template is None else prompt_template
        if not isinstance(template, str) or "{prompt}" not in template:
            raise ConfigurationError("prompt_template must be a string containing '{prompt}'")
        stops = DEFAULT_COMPLETION_STOP if stop is None else stop
        if isinstance(stops, str) or not all(isinstance(x, str) and x for x in stops):
            raise ConfigurationError("stop must be a list of non-empty strings")
        self.mode = mode
        self.prompt_template = template if mode == "completion" else None
        self.stop = tuple(stops) if mode == "completion" else ()
        if mode == "completion":
            self.api_path = "completions"  # type: ignore[misc]
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
        self.organization = organization

    def _make_client(self) -> openai.AsyncOpenAI:
        http_client = self._user_client
        if http_client is None:
            http_client = self._default_http_client(openai.DefaultAsyncHttpxClient)
        kwargs: dict[str, Any] = {}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return openai.AsyncOpenAI(
            api_key=self._key(),
            base_url=self.base_url,
            organization=self.organization,
            max_retries=0,
            http_client=http_client,
            **kwargs,
        )

    def _params(self, request: Request) -> dict[str, Any]:
        if self.mode == "completion":
            return self._completion_params(request)
        turns, system = request.chat()
        messages: list[dict[str, str]] = []
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages += [{"role": m.role, "content": m.content} for m in turns]
        params: dict[str, Any] = {"model": self.model, "messages": messages}
        temperature = self.temperature_for(request)
        if temperature is not None:
            params["temperature"] = temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if request.response_format is not None:
            params["response_format"] = self._response_format(request.response_format)
        return params

    def _response_format(self, fmt: dict[str, Any]) -> dict[str, Any]:
        """``fmt`` as this endpoint accepts it. OpenAI's own API (``api.openai.com``) refuses a
        strict ``json_schema`` that uses a keyword outside its subset
        (:data:`_STRICT_REFUSED_KEYWORDS`, e.g. the controller's plan schema with its
        ``prefixItems`` tuples): that one is sent with ``"strict": false``, the schema
        unchanged, so the model is guided by it but not held to it (the controller validates
        the plan as always). Any other endpoint gets ``fmt`` as it is."""
        spec = fmt.get("json_schema")
        if (
            httpx.URL(self.base_url).host != self.official_host
            or fmt.get("type") != "json_schema"
            or not isinstance(spec, dict)
            or spec.get("strict") is not True
        ):
            return fmt
        refused = _refused_keywords(spec.get("schema"))
        if not refused:
            return fmt
        logger.debug(
            "%s: the schema uses %s, which OpenAI's strict mode refuses; sent with strict false",
            self.name,
            ", ".join(sorted(refused)),
        )
        return {**fmt, "json_schema": {**spec, "strict": False}}

    def _completion_params(self, request: Request) -> dict[str, Any]:
        assert self.prompt_template is not None
        params: dict[str, Any] = {
            "model": self.model,
            "prompt": render_completion_prompt(request, self.prompt_template),
        }
        temperature = self.temperature_for(request)
        if temperature is not None:
            params["temperature"] = temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.seed is not None:
            params["seed"] = request.seed
        stops = list(dict.fromkeys([*self.stop, *(request.stop or ())]))
        if stops:
            params["stop"] = stops
        return params

    def _sent(self, completion: Completion, params: dict[str, Any]) -> Completion:
        if self.mode != "completion":
            return completion
        # the prompt rendered once, by _completion_params, is the one recorded
        return completion.model_copy(update={"prompt_sent": params["prompt"]})

    async def _call_sdk(self, client: Any, params: dict[str, Any]) -> tuple[bytes, Any]:
        # The SDK's documented raw route (auth, headers, error types, no retries) without its
        # per-call parameter transform, which costs ~3 ms of CPU per call: the body is plain
        # JSON we built ourselves, and we validate the answer ourselves. Both modes (chat and
        # completion) take this path, so both bodies are bounded by max_response_bytes.
        raw = await client.post(
            f"/{self.api_path}", body=params, cast_to=httpx.Response, stream=True
        )
        try:  # streamed, so that max_response_bytes bounds what is read
            return await self._read_body(raw), raw.headers
        finally:
            await raw.aclose()

    def _parse(self, content: bytes, headers: httpx.Headers | Any, latency: float) -> Completion:
        try:
            data = json.loads(content)
            choice = data["choices"][0]
            if self.mode == "completion":
                text = choice["text"]
                if not isinstance(text, str):
                    raise TypeError("choices[0].text is not a string")
                text = text.strip()
            else:
                message = choice["message"]
                text = message.get("content")
                if text is None:  # e.g. a refusal or tool calls: an empty (abstaining) completion
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
            what = "a text completion" if self.mode == "completion" else "a chat completion"
            raise self._invalid(content, what, exc) from None
