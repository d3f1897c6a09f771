"""Gather the real samples that ``benchmarks/families.py`` replays (issue 12).

For every question of ``benchmarks/data/families_questions.json``: 10 samples of SmolLM2-135M
(``"local:smollm2-135m"``, chat) and 10 of Gemma-3-270M (``"local:gemma3-270m"``, base model
through completions with the few-shot template of its card), temperature 0.8, seeds
``1000 * id + repeat`` (distinct per question and repeat), at most 48 tokens, four slots per
server (one thread). Each question's
samples are appended as one JSON line to ``benchmarks/data/families_samples.jsonl``, so an
interrupted run resumes where it stopped.

    nice -n 10 python benchmarks/families_gather.py            # needs the local and gemma extras

It takes a while on a small machine (one llama.cpp thread per model, both models side by side).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import ensemble

DATA = Path(__file__).with_name("data")
QUESTIONS = DATA / "families_questions.json"
SAMPLES = DATA / "families_samples.jsonl"
MODELS = ("local:smollm2-135m", "local:gemma3-270m")
SUFFIX = " Answer in one short sentence."


def prompt_for(question: str) -> str:
    return question + SUFFIX


async def gather(limit: int | None, repeats: int, max_tokens: int, slots: int) -> None:
    questions = json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    done: set[int] = set()
    if SAMPLES.exists():
        for line in SAMPLES.read_text(encoding="utf-8").splitlines():
            if line.strip():
                done.add(int(json.loads(line)["id"]))
    todo = [q for q in questions if q["id"] not in done][:limit]
    print(f"{len(done)} done, {len(todo)} to gather", flush=True)
    models = [
        ensemble.LocalModel(
            weights=m.split(":")[1], name=m, slots=slots, ctx_size=512, keep_alive=600.0
        )
        for m in MODELS
    ]
    started = time.perf_counter()
    try:
        for k, q in enumerate(todo):
            ens = ensemble.Ensemble(
                models=models,
                repeats=repeats,
                temperature=0.8,
                seed=1000 * int(q["id"]),
                max_tokens=max_tokens,
                timeout=120.0,
                deadline=900.0,
            )
            samples = await ens.asample(prompt_for(q["question"]))
            row = {
                "id": q["id"],
                "prompt": prompt_for(q["question"]),
                "samples": [s.model_dump(mode="json", exclude_none=True) for s in samples],
            }
            with SAMPLES.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            rate = (time.perf_counter() - started) / (k + 1)
            print(f"{k + 1}/{len(todo)} id={q['id']} {rate:.1f}s/question", flush=True)
    finally:
        for m in models:
            m.keep_alive = 0.0
            await m.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="questions to gather at most")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument(
        "--slots", type=int, default=4, help="llama.cpp slots per server (one thread each)"
    )
    args = parser.parse_args(argv)
    asyncio.run(gather(args.limit, args.repeats, args.max_tokens, args.slots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
