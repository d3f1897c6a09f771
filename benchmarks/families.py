"""Two model families beat either alone: replay real samples of SmolLM2-135M and Gemma-3-270M.

Replays ``benchmarks/data/families_samples.jsonl`` (gathered by ``families_gather.py``: per
question 10 samples of each model at temperature 0.8) over the 250 questions of
``benchmarks/data/families_questions.json`` (10 categories; a reply is right when it names
the answer or an alias, whole words, case and accents ignored). No model is needed::

    python benchmarks/families.py                 # every table, all questions and the splits
    python benchmarks/families.py --split odd     # the held-out half only

It prints, per category and overall (issue 12):

1. accuracy: one sample of each model (mean), each model's consensus over 5 and 10 samples,
   the mixed consensus over 5 + 5 (the same budget as 10 of one) and 10 + 10, and the
   any-sample ceilings, for the library's default consensus (``ngram``, prompt given: words
   copied from the prompt are not agreement), the same without the prompt, and the ``vote``
   metric with ``key="answer"``;
2. the uniformity alarm: false alarms on the honest mixed runs, and detections when one
   family's samples are replaced by the other family's replies (lock-step copies);
3. escalation: SmolLM2 alone first, Gemma added only when the answer is unsettled,
   accuracy against samples drawn;
4. intra- vs inter-family agreement.

Settings are chosen on even question ids and reported on odd ones where the script says so
(``--split``); the escalation's threshold is chosen on the even ids by this script itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ensemble
from ensemble import diagnostics
from ensemble.adaptive import Escalation, SequentialStopping, Tier
from ensemble.metrics.vote import VoteMetric
from ensemble.models.base import Completion, Model, Request

DATA = Path(__file__).with_name("data")
QUESTIONS = DATA / "families_questions.json"
SAMPLES = DATA / "families_samples.jsonl"
SMOL, GEMMA = "local:smollm2-135m", "local:gemma3-270m"


def _fold(text: str) -> str:
    s = unicodedata.normalize("NFKD", text)
    s = "".join(c for c in s if not unicodedata.combining(c)).casefold()
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    return " " + re.sub(r"[^\w]+", " ", s).strip() + " "


def is_right(text: str | None, q: dict[str, Any]) -> bool:
    """Whether ``text`` names the answer or one of its aliases (whole words)."""
    if not text:
        return False
    t = _fold(text)
    return any(_fold(a) in t for a in [q["answer"], *q["aliases"]] if _fold(a).strip())


@dataclass
class Item:
    q: dict[str, Any]
    prompt: str
    smol: list[ensemble.Sample]
    gemma: list[ensemble.Sample]


def load() -> list[Item]:
    questions = {q["id"]: q for q in json.loads(QUESTIONS.read_text("utf-8"))["questions"]}
    items = []
    for line in SAMPLES.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        samples = [ensemble.Sample.model_validate(s) for s in row["samples"]]
        by = {m: sorted((s for s in samples if s.model == m), key=lambda s: s.repeat or 0)
              for m in (SMOL, GEMMA)}  # fmt: skip
        items.append(Item(questions[row["id"]], row["prompt"], by[SMOL], by[GEMMA]))
    return sorted(items, key=lambda it: it.q["id"])


Method = Callable[[Sequence[ensemble.Sample], str], str]


def method(metric: Any, with_prompt: bool) -> Method:
    def run(samples: Sequence[ensemble.Sample], prompt: str) -> str:
        r = ensemble.consensus(
            list(samples), metric=metric, prompt=prompt if with_prompt else None, alarm=None
        )
        return r.text

    return run


METHODS: dict[str, Method] = {
    "ngram+prompt (default)": method("ngram", True),
    "ngram, no prompt": method("ngram", False),
    "vote key=answer": method(VoteMetric(key="answer"), True),
}

COLUMNS = ("S@1", "G@1", "S@5", "S@10", "G@5", "G@10", "S5+G5", "S10+G10", "ceil5+5", "ceil10+10")


def accuracy_row(items: Sequence[Item], run: Method) -> dict[str, float]:
    acc: dict[str, list[float]] = {c: [] for c in COLUMNS}
    for it in items:
        q = it.q
        ok = [s for s in it.smol if s.ok]
        og = [s for s in it.gemma if s.ok]
        acc["S@1"].append(statistics.mean(is_right(s.text, q) for s in ok) if ok else 0.0)
        acc["G@1"].append(statistics.mean(is_right(s.text, q) for s in og) if og else 0.0)
        for label, samples in (
            ("S@5", it.smol[:5]),
            ("S@10", it.smol),
            ("G@5", it.gemma[:5]),
            ("G@10", it.gemma),
            ("S5+G5", it.smol[:5] + it.gemma[:5]),
            ("S10+G10", it.smol + it.gemma),
        ):
            good = any(s.ok for s in samples)
            acc[label].append(float(good and is_right(run(samples, it.prompt), q)))
        acc["ceil5+5"].append(
            float(any(is_right(s.text, q) for s in it.smol[:5] + it.gemma[:5] if s.ok))
        )
        acc["ceil10+10"].append(float(any(is_right(s.text, q) for s in it.smol + it.gemma)))
    return {c: 100.0 * statistics.mean(v) for c, v in acc.items()}


def print_accuracy(items: Sequence[Item], label: str) -> dict[str, dict[str, float]]:
    cats = sorted({it.q["category"] for it in items})
    out = {}
    for name, run in METHODS.items():
        print(f"\n### accuracy (%), {name}, {label}: {len(items)} questions")
        print("| category | n | " + " | ".join(COLUMNS) + " |")
        print("|---|---|" + "---|" * len(COLUMNS))
        for cat in [*cats, "overall"]:
            sub = [it for it in items if cat == "overall" or it.q["category"] == cat]
            row = accuracy_row(sub, run)
            cells = " | ".join(f"{row[c]:.1f}" for c in COLUMNS)
            print(f"| {'**overall**' if cat == 'overall' else cat} | {len(sub)} | {cells} |")
            if cat == "overall":
                out[name] = row
        o = out[name]
        best = max(o["S@10"], o["G@10"])
        print(
            f"mixed 5+5 {o['S5+G5']:.1f} vs best single 10-sample {best:.1f}: "
            f"{o['S5+G5'] - best:+.1f} points (need >= +5); "
            f"{o['S5+G5'] / o['ceil5+5']:.1%} of the 5+5 ceiling {o['ceil5+5']:.1f} (need >= 90%)"
        )
    return out


# --- the uniformity alarm ----------------------------------------------------------------------


def _copy(into: Sequence[ensemble.Sample], source: Sequence[ensemble.Sample]) -> list[Any]:
    """``into``'s samples with the replies of ``source`` (same repeat order): lock-step."""
    return [
        s.model_copy(update={"text": src.text, "error": None}) if src.ok else s
        for s, src in zip(into, source, strict=True)
    ]


def alarm_rates(items: Sequence[Item], k: int, alarm: ensemble.UniformityAlarm) -> dict[str, float]:
    honest = copied_g = copied_s = 0
    for it in items:
        s, g = it.smol[:k], it.gemma[:k]
        runs = {
            "honest": s + g,
            "gemma copies smollm2": s + _copy(g, s),
            "smollm2 copies gemma": _copy(s, g) + g,
        }
        fired = {}
        for name, samples in runs.items():
            r = ensemble.consensus(samples, prompt=it.prompt, alarm=alarm)
            fired[name] = any(a.kind == "uniformity" for a in r.alerts)
        honest += fired["honest"]
        copied_g += fired["gemma copies smollm2"]
        copied_s += fired["smollm2 copies gemma"]
    n = len(items)
    return {
        "false alarms": 100.0 * honest / n,
        "detected (Gemma copies SmolLM2)": 100.0 * copied_g / n,
        "detected (SmolLM2 copies Gemma)": 100.0 * copied_s / n,
    }


# --- escalation --------------------------------------------------------------------------------


class Replay(Model):
    """Answers with the saved sample for the request's seed (a family's real replies)."""

    provider = "replay"
    supports_seed = True

    def __init__(self, name: str, by_seed: dict[int, str]) -> None:
        self.name = name
        self.by_seed = by_seed

    async def agenerate(self, request: Request) -> Completion:
        assert request.seed is not None
        return Completion(text=self.by_seed[request.seed], model=self.name)


async def escalate(it: Item, threshold: float | None) -> tuple[bool, int, bool]:
    """(right, samples drawn, escalated) for SmolLM2 first, Gemma added when unsettled."""
    base = 1000 * int(it.q["id"])
    models = [
        Replay(SMOL, {base + (s.repeat or 0): s.text or "" for s in it.smol if s.ok}),
        Replay(GEMMA, {base + (s.repeat or 0): s.text or "" for s in it.gemma if s.ok}),
    ]
    ens = ensemble.Ensemble(models=models, repeats=10, seed=base, metric=VoteMetric(key="answer"))
    esc = Escalation(
        ens,
        tiers=[Tier(10, [SMOL]), Tier(10, [SMOL, GEMMA])],
        threshold=threshold,
        stopping=SequentialStopping(futility=0.05),
    )
    r = await esc.arun(it.prompt)
    assert r.sampling is not None
    escalated = len(r.sampling.tiers) > 1
    return is_right(r.text, it.q), r.sampling.samples_drawn, escalated


def escalation(items: Sequence[Item], threshold: float | None) -> tuple[float, float, float]:
    async def all_items() -> list[tuple[bool, int, bool]]:
        return [await escalate(it, threshold) for it in items]

    got = asyncio.run(all_items())
    return (
        100.0 * statistics.mean(r for r, _, _ in got),
        statistics.mean(n for _, n, _ in got),
        100.0 * statistics.mean(e for _, _, e in got),
    )


# --- agreement --------------------------------------------------------------------------------


def agreement_table(items: Sequence[Item]) -> None:
    acc: dict[tuple[str, str], list[float]] = {}
    for it in items:
        r = ensemble.consensus(it.smol + it.gemma, prompt=it.prompt, alarm=None)
        assert r.breakdown is not None
        for f in r.breakdown.families:
            for kind, v in (("intra", f.intra), ("inter", f.inter)):
                if v is not None:
                    acc.setdefault((f.family, kind), []).append(v)
    print("\n### agreement (ngram, prompt discounted), 10 + 10 samples, mean over questions")
    print("| family | intra-family | inter-family | intra - inter |")
    print("|---|---|---|---|")
    for fam in sorted({f for f, _ in acc}):
        a, b = statistics.mean(acc[(fam, "intra")]), statistics.mean(acc[(fam, "inter")])
        print(f"| {fam} | {a:.3f} | {b:.3f} | {a - b:+.3f} |")


#: Question ids below this were replayed while the benchmark was being written (the figures of
#: the first 42 questions were seen before any setting was chosen): "fresh" leaves them out.
SEEN_WHILE_WRITING = 42


def split(items: Sequence[Item], which: str) -> list[Item]:
    if which == "all":
        return list(items)
    if which == "fresh-odd":
        return [it for it in items if int(it.q["id"]) % 2 == 1 and it.q["id"] >= SEEN_WHILE_WRITING]
    parity = 0 if which == "even" else 1
    return [it for it in items if int(it.q["id"]) % 2 == parity]


def choose_settings(items: Sequence[Item]) -> None:
    """The settings this benchmark chose on the even ids (printed, so the choice can be
    checked): the own-family weight of the candidate choice, and the twin rule's settings."""
    even = split(items, "even")
    print(f"\n### choices on the {len(even)} even ids")
    print("own-family weight in the candidate choice (library default "
          f"{diagnostics.INTRA_FAMILY_WEIGHT}); accuracy %")  # fmt: skip
    print("| intra weight | ngram+prompt 5+5 | ngram+prompt 10+10 | vote 5+5 | vote 10+10 |")
    print("|---|---|---|---|---|")
    saved = diagnostics.INTRA_FAMILY_WEIGHT
    best: tuple[float, float] | None = None
    try:
        for w in (1.0, 0.5, 0.25, 0.0):
            diagnostics.INTRA_FAMILY_WEIGHT = w
            a = accuracy_row(even, METHODS["ngram+prompt (default)"])
            b = accuracy_row(even, METHODS["vote key=answer"])
            print(f"| {w} | {a['S5+G5']:.1f} | {a['S10+G10']:.1f} | "
                  f"{b['S5+G5']:.1f} | {b['S10+G10']:.1f} |")  # fmt: skip
            score = (a["S5+G5"] + a["S10+G10"]) / 2
            if best is None or score > best[1] + 1e-9:
                best = (w, score)
    finally:
        diagnostics.INTRA_FAMILY_WEIGHT = saved
    assert best is not None
    print(f"chosen on even ids: intra weight {best[0]} (mean of the two ngram+prompt columns)")
    print("\ntwin rule of the alarm on even ids, 5 + 5 samples: false alarms / detections %")
    print("| twins | twin_share | false alarms | Gemma copies | SmolLM2 copies |")
    print("|---|---|---|---|---|")
    for twins in (2, 3):
        for share in (0.6, 0.8):
            r = alarm_rates(even, 5, ensemble.UniformityAlarm(twins=twins, twin_share=share))
            cells = " | ".join(f"{v:.1f}" for v in r.values())
            print(f"| {twins} | {share} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--split", choices=("all", "even", "odd", "fresh-odd", "each"), default="each"
    )
    parser.add_argument("--skip-escalation", action="store_true")
    parser.add_argument(
        "--choose-only", action="store_true", help="only the choices made on the even ids"
    )
    args = parser.parse_args(argv)
    items = [it for it in load() if len(it.smol) == 10 and len(it.gemma) == 10]
    print(f"{len(items)} questions with 10 + 10 samples")
    if args.split == "each" or args.choose_only:
        choose_settings(items)
    if args.choose_only:
        return 0
    splits = ["all", "odd", "fresh-odd"] if args.split == "each" else [args.split]
    for which in splits:
        print_accuracy(split(items, which), f"{which} ids")

    print("\n### uniformity alarm (default settings), % of questions with an alert")
    print("| split | samples | false alarms | detected (Gemma copies SmolLM2) | "
          "detected (SmolLM2 copies Gemma) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for which in splits:
        for k in (5, 10):
            rates = alarm_rates(split(items, which), k, ensemble.UniformityAlarm())
            cells = " | ".join(f"{v:.1f}" for v in rates.values())
            print(f"| {which} | {k} + {k} | {cells} |")

    if not args.skip_escalation:
        print("\n### escalation: SmolLM2 (up to 10) first, Gemma (up to 10 more) when unsettled")
        print("vote key=answer, SequentialStopping(futility=0.05); escalate also when the")
        print("confidence is below the threshold, chosen on the even ids (best accuracy per")
        print("sample within 1 point of the best accuracy), reported on the odd ids")
        even, odd = split(items, "even"), split(items, "odd")
        choices = (None, 0.5, 0.6, 0.7, 0.8)
        scored = {t: escalation(even, t) for t in choices}
        print("| threshold | even: accuracy | even: samples | even: escalated % |")
        print("|---|---|---|---|")
        for t, (a, n, e) in scored.items():
            print(f"| {t} | {a:.1f} | {n:.2f} | {e:.1f} |")
        best_acc = max(a for a, _, _ in scored.values())
        chosen = min(
            (t for t, (a, _, _) in scored.items() if a >= best_acc - 1.0),
            key=lambda t: scored[t][1],
        )
        a, n, e = escalation(odd, chosen)
        fixed = accuracy_row(odd, METHODS["vote key=answer"])
        print(
            f"\nodd ids, threshold {chosen}: accuracy {a:.1f} with {n:.2f} samples per question "
            f"({e:.1f}% escalated); fixed budgets on the same ids (vote key=answer): "
            f"SmolLM2 10 -> {fixed['S@10']:.1f}, 5 + 5 -> {fixed['S5+G5']:.1f}, "
            f"10 + 10 -> {fixed['S10+G10']:.1f}"
        )

    agreement_table(items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
