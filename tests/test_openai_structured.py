"""The plan schema through ``OpenAIModel``: the exact ``response_format`` body it sends.

An OpenAI-compatible server (llama.cpp, vLLM, the loopback server here) gets the controller's
plan schema exactly as built: ``"strict": true``, name ``"plan"``, the schema unchanged, with
its ``prefixItems`` tuples and ``anyOf`` of allowed model sets. OpenAI's own API refuses
``prefixItems`` in a strict schema, so there the same schema goes with ``"strict": false``
(an in-process ``httpx.MockTransport`` stands in for ``api.openai.com``: no network).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from loopback import LoopbackServer, Reply

from ensemble import _plan
from ensemble.catalog import Catalog, ModelCard
from ensemble.controller import HIGH_RISK_TAG, Controller
from ensemble.models.base import Request
from ensemble.models.function import FunctionModel
from ensemble.models.openai import OpenAIModel

KEY = "sk-test-structured-0123456789"
PARIS = "The capital of France is Paris."


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ENSEMBLE_ALLOW_METADATA_HOSTS"):
        monkeypatch.delenv(var, raising=False)


def catalog() -> Catalog:
    def card(name: str, description: str, family: str, **kw: Any) -> ModelCard:
        return ModelCard(
            FunctionModel(lambda _p: PARIS, name=name), description, family=family, **kw
        )

    return Catalog(
        [
            card("geo", "Geography expert: capitals, countries, rivers.", "geo-fam"),
            card("geo2", "Second geography model: capitals of the world.", "geo-fam"),
            card("trans", "Translates French sentences into English.", "trans-fam"),
            card("old", "An older general model.", "old-fam", tags=(HIGH_RISK_TAG,)),
        ]
    )


def plan_format(risk: _plan.Risk = "normal") -> dict[str, Any]:
    fmt = _plan.plan_schema(catalog(), risk=risk)
    assert '"prefixItems"' in json.dumps(fmt)  # the case under test: tuples, strict
    assert fmt["json_schema"]["schema"]["$defs"]["models"]["anyOf"]
    return fmt


def transports() -> list[str]:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return ["httpx"]
    return ["httpx", "aiohttp"]


@pytest.mark.parametrize("transport", transports())
@pytest.mark.parametrize("risk", ["low", "normal", "high"])
async def test_a_compatible_server_gets_the_plan_schema_exactly(
    server: LoopbackServer, transport: str, risk: _plan.Risk
) -> None:
    fmt = plan_format(risk)
    before = copy.deepcopy(fmt)
    model = OpenAIModel("m", base_url=server.openai_url, api_key=KEY, transport=transport)
    async with model:
        await model.agenerate(Request(prompt="plan this", response_format=fmt))
    (rec,) = server.requests
    assert rec.body is not None
    assert rec.body["response_format"] == before
    sent = rec.body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "plan" and sent["json_schema"]["strict"] is True
    assert set(sent["json_schema"]) == {"name", "strict", "schema"}
    assert fmt == before  # the caller's dict is not changed


async def test_the_controller_sends_its_schema_through_an_openai_planner(
    server: LoopbackServer,
) -> None:
    plan = {
        "tasks": [
            {
                "id": "t1",
                "request": "What is the capital of France?",
                "depends_on": [],
                "models": [
                    {"name": "geo", "repeats": 2, "reason": "capitals"},
                    {"name": "trans", "repeats": 1, "reason": "another family"},
                ],
            }
        ]
    }
    server.script("planner", Reply(text=json.dumps(plan)), Reply(text=PARIS))
    planner = OpenAIModel("planner", base_url=server.openai_url, api_key=KEY)
    cat = catalog()
    ctl = Controller(catalog=cat, planner=planner, similarity="words")
    result = await ctl.arun("What is the capital of France?")
    assert result.plan.source == "planner"
    first = server.requests[0].body
    assert first is not None
    expected = _plan.plan_schema(cat, risk="normal", order=result.plan.ranking)
    assert first["response_format"] == expected
    assert "response_format" not in (server.requests[1].body or {})  # the answer: free text


# --- OpenAI's own API ----------------------------------------------------------------------------


class FakeOpenAI:
    """An ``httpx.MockTransport`` answering as ``api.openai.com`` would, recording bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.hosts: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        self.bodies.append(json.loads(request.content))
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "{}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
        return httpx.Response(200, json=body)


async def send_to_openai(fmt: dict[str, Any]) -> tuple[dict[str, Any], FakeOpenAI]:
    fake = FakeOpenAI()
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    try:
        model = OpenAIModel("gpt-4o-mini", api_key=KEY, http_client=client)
        assert httpx.URL(model.base_url).host == "api.openai.com"
        async with model:
            await model.agenerate(Request(prompt="plan this", response_format=fmt))
    finally:
        await client.aclose()
    assert fake.hosts == ["api.openai.com"]
    return fake.bodies[0]["response_format"], fake


async def test_openai_gets_the_tuple_schema_without_strict() -> None:
    fmt = plan_format()
    before = copy.deepcopy(fmt)
    sent, _ = await send_to_openai(fmt)
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "plan"
    assert sent["json_schema"]["strict"] is False
    assert sent["json_schema"]["schema"] == before["json_schema"]["schema"]  # unchanged
    assert fmt == before


async def test_openai_keeps_strict_for_a_schema_in_its_subset() -> None:
    # The plan schema of a catalog too big to list its model sets has no tuple.
    plain = _plan._enum_schema(catalog(), _plan.RISK_LIMITS["normal"])
    assert '"prefixItems"' not in json.dumps(plain)
    sent, _ = await send_to_openai(plain)
    assert sent == plain and sent["json_schema"]["strict"] is True
    # A property, a const or an enum value that happens to read "prefixItems" is data.
    data = {
        "type": "json_schema",
        "json_schema": {
            "name": "x",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "prefixItems": {"type": "string", "enum": ["prefixItems"]},
                    "k": {"const": {"prefixItems": []}},
                },
                "required": ["prefixItems", "k"],
                "additionalProperties": False,
            },
        },
    }
    sent, _ = await send_to_openai(data)
    assert sent == data


async def test_openai_gets_a_non_strict_or_other_format_as_it_is() -> None:
    loose = plan_format()
    loose["json_schema"]["strict"] = False
    sent, _ = await send_to_openai(loose)
    assert sent == loose
    sent, _ = await send_to_openai({"type": "json_object"})
    assert sent == {"type": "json_object"}


def test_the_lean_path_sends_the_same_body_to_openai() -> None:
    pytest.importorskip("aiohttp")
    model = OpenAIModel("gpt-4o-mini", api_key=KEY, transport="aiohttp")
    params = model._params(Request(prompt="x", response_format=plan_format()))
    assert params["response_format"]["json_schema"]["strict"] is False
