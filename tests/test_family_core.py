"""One family notion and the prompt discount in the one engine core, on both drivers.

The candidate choice (``method="select"``) and fusion (``method="fuse"``) count one vote per
family: ``families[model]`` when given, else ``Sample.family`` (or the model's catalog card),
else the model name. Words copied from the prompt are not agreement, sync and async alike.
The completion mode's body is bounded by ``max_response_bytes`` like the chat mode's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from typing import Any

import pytest
from loopback import LoopbackServer, Reply

import ensemble
from ensemble import Sample
from ensemble.errors import ResponseTooLargeError
from ensemble.metrics.vote import VoteMetric
from ensemble.models.base import Request
from ensemble.models.openai import OpenAIModel

TRANSPORTS = ["httpx"] + (["aiohttp"] if importlib.util.find_spec("aiohttp") else [])


def _s(text: str, model: str, family: str | None = None) -> Sample:
    return Sample(text=text, model=model, family=family)


# Three names of one family say Paris; two independent families say Lyon. By name, Paris
# has three of five votes; by family, Lyon has two of three.
BY_FAMILY = [
    _s("Paris", "a-small", "a"),
    _s("Paris", "a-large", "a"),
    _s("Paris", "a-mid", "a"),
    _s("Lyon", "b"),
    _s("Lyon", "c"),
]
NO_FAMILY = [s.model_copy(update={"family": None}) for s in BY_FAMILY]
MAPPING = {"a-small": "a", "a-large": "a", "a-mid": "a"}


def _run(drive: str, samples: list[Sample], **kw: Any) -> ensemble.Consensus:
    if drive == "async":
        return asyncio.run(ensemble.aconsensus(samples, alarm=None, **kw))
    return ensemble.consensus(samples, alarm=None, **kw)


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_candidate_is_chosen_one_vote_per_family_on_both_drivers(drive: str) -> None:
    assert _run(drive, BY_FAMILY, metric="vote").text == "Lyon"
    assert _run(drive, NO_FAMILY, metric="vote").text == "Paris"
    assert _run(drive, NO_FAMILY, metric="vote", families=MAPPING).text == "Lyon"
    # weighting="sample" and explicit weights keep one vote per sample.
    assert _run(drive, BY_FAMILY, metric="vote", weighting="sample").text == "Paris"
    assert _run(drive, BY_FAMILY, metric="vote", weights=[1.0] * 5).text == "Paris"


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_families_mapping_weighs_the_evidence_too(drive: str) -> None:
    samples = [_s("Paris", "a1"), _s("Paris", "a2"), _s("Lyon", "b"), _s("Paris", "a3")]
    # By name: evidence a2 (1), b (0), a3 (1), one vote each.
    assert _run(drive, samples, metric="vote").spans[0].confidence == pytest.approx(2 / 3)
    # By family: a (a2, a3: 1) and b (0), one vote each; the samples are kept as given.
    fam = {"a1": "a", "a2": "a", "a3": "a"}
    r = _run(drive, samples, metric="vote", families=fam)
    assert r.text == "Paris" and r.spans[0].confidence == pytest.approx(1 / 2)
    assert r.samples == tuple(samples)


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_fusion_counts_sample_families_like_the_mapping(drive: str) -> None:
    assert _run(drive, NO_FAMILY, method="fuse").text == "Paris"
    by_family = _run(drive, BY_FAMILY, method="fuse")
    assert by_family.text == "Lyon"
    assert by_family.claims[0].support == pytest.approx(2 / 3)
    mapped = _run(drive, NO_FAMILY, method="fuse", families=MAPPING)
    assert mapped.text == "Lyon"
    assert mapped.claims[0].support == pytest.approx(2 / 3)
    # The mapping wins over a sample's own family.
    split = {"a-small": "x", "a-large": "y", "a-mid": "z"}
    assert _run(drive, BY_FAMILY, method="fuse", families=split).text == "Paris"


Q = "Who wrote the novel Pride and Prejudice?"
ECHOES = [
    "The novel Pride and Prejudice was written by Charles Dickens.",
    "The novel Pride and Prejudice was written by Mark Twain.",
    "The novel Pride and Prejudice was written by Leo Tolstoy.",
    "Jane Austen wrote it.",
    "Jane Austen wrote it, as her second novel.",
]  # no sample adds a number: ngram v3 gives a number no other sample states no support


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_prompt_words_are_not_agreement_on_both_drivers(drive: str) -> None:
    samples = [Sample(text=t) for t in ECHOES]
    assert "Pride and Prejudice" in _run(drive, samples).text
    r = _run(drive, samples, prompt=Q)
    assert r.text.startswith("Jane Austen")
    # Spans are still scored on the samples as written: offsets index the chosen text.
    assert all(r.text[s.start : s.end] == s.text for s in r.spans)


MONA = "Who painted the Mona Lisa?"


@pytest.mark.parametrize("drive", ["sync", "async"])
def test_answer_key_metric_gets_the_prompt_on_both_drivers(drive: str) -> None:
    samples = [
        "The Mona Lisa was painted by Leonardo da Vinci.",
        "Leonardo da Vinci.",
        "It was painted by da Vinci",
        "Michelangelo painted the Mona Lisa.",
    ]
    metric = VoteMetric(key="answer")
    r = _run(drive, [Sample(text=t) for t in samples], metric=metric, prompt=MONA)
    assert "Vinci" in r.text
    assert r.spans[0].confidence == pytest.approx(2 / 3)
    # Without the prompt the key keeps "Mona Lisa" and the groups fall apart.
    plain = _run(drive, [Sample(text=t) for t in samples], metric=metric)
    assert plain.spans[0].confidence < 2 / 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_completion_mode_body_is_size_limited(transport: str) -> None:
    body = json.dumps({"choices": [{"text": "x" * 5000, "finish_reason": "stop"}]}).encode()
    with LoopbackServer() as server:
        server.respond_with(lambda rec: Reply(body=body))
        model = OpenAIModel(
            "m",
            base_url=server.openai_url,
            mode="completion",
            transport=transport,  # type: ignore[arg-type]
            max_response_bytes=1000,
        )
        try:
            with pytest.raises(ResponseTooLargeError):
                await model.agenerate(Request(prompt="x"))
            assert server.requests[-1].path.endswith("/completions")
            assert not server.requests[-1].path.endswith("/chat/completions")
        finally:
            await model.aclose()
