"""The controller's planning step with the real local planner, against the deterministic fallback.

The planner is :class:`ensemble.LocalModel` (SmolLM2-135M-Instruct on llama.cpp), the catalog
holds the two local families (``local``: SmolLM2, ``local:gemma3-270m``: Gemma-3-270M) and
four ``FunctionModel`` specialists with clear descriptions (a calculator, a French-English
translator, a unit converter, a Python coder). The 50 requests of
``benchmarks/data/controller/requests.json`` each mark the cards that are a right choice.
Only planning is measured (no model of the plan is run)::

    # 1. ask the planner (slow: one llama.cpp call per request; writes the raw answers)
    nice -n 10 python benchmarks/controller.py gather                # schema-constrained
    nice -n 10 python benchmarks/controller.py gather --no-schema    # free text, to compare
    # 2. the figures (replays the raw answers through the controller's own parser)
    python benchmarks/controller.py report
    # the figures of other recorded answers, e.g. those of an earlier prompt
    git show 6a67eb5:benchmarks/data/controller/planner_runs.jsonl > /tmp/before.jsonl
    python benchmarks/controller.py report --runs /tmp/before.jsonl

The planning prompt lists the cards best match first (the fallback's word-overlap ranking,
as :class:`ensemble.Controller` does with ``similarity="words"``), and the schema's
alternatives in that order.

``report`` prints, per part (``dev``: requests 1-20, looked at while writing the prompt;
``test``: 21-50, held out; and all 50), for the planner's answers and for the fallback plan
(ranked by word overlap, and by the MiniLM sentence embeddings):

- ``valid``: the share of answers that parse and validate (risk ``normal``, one task per
  plan: :data:`LIMITS`);
- ``hit``: the share of requests whose plan names at least one right card (an invalid plan
  counts as a miss for the planner: the controller would have run the fallback instead);
- ``top-1``: the share of requests whose plan's first card is right (the fallback lists its
  best-ranked card first; with word overlap a request sharing no word with any description
  keeps the catalog's order, here the two local cards first);
- ``precision``: right cards over all cards named, over the valid plans;
- ``controller``: what the controller as a whole picks (the planner's plan when valid, else
  the word-overlap fallback), with the median planning latency;
- ``task requests as written``: how many of the planner's task requests (as it wrote them,
  in every answer holding a plan) copy the planning prompt's own scaffolding (``"TASK"``, a
  field, a card name or a piece of a card's description:
  :func:`ensemble._plan.scaffolding_problem`), and how many are the
  user's request word for word. The planner's wording is not what the models are asked: a
  one-task plan asks the user's request (and in a plan of several tasks a copied task
  request makes the plan invalid: the fallback runs);
- how often the planner's first card is the first card it was shown (the word-overlap
  ranking's best, which is also the fallback's first card);
- the planner's output tokens (median and most) against the planning call's cap
  (:func:`ensemble._plan.plan_token_bound`), to show that no plan came near being cut off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import ensemble
from ensemble import _plan
from ensemble._retry import CallState
from ensemble.catalog import BUILTIN_CARDS, Catalog, ModelCard
from ensemble.controller import _embedder, _Tally

DATA = Path(__file__).with_name("data") / "controller"
REQUESTS = DATA / "requests.json"
RISK: _plan.Risk = "normal"
#: The default limits of normal risk, but one task per plan: a 135M planner writing up to four
#: tasks runs out of its token budget (measured on requests 1-3 while writing this script).
LIMITS = _plan.RISK_LIMITS[RISK].model_copy(update={"max_tasks": 1})

SPECIALISTS = {
    "calculator": "Exact arithmetic calculator: adds, subtracts, multiplies and divides "
    "numbers, and computes percentages, powers and square roots.",
    "translator-fr-en": "Translates French words, phrases and sentences into English.",
    "unit-converter": "Converts measurements between units: miles and kilometres, feet and "
    "centimetres, pounds and kilograms, Fahrenheit and Celsius.",
    "python-coder": "Writes short Python functions and scripts and explains what Python code does.",
}


def catalog() -> Catalog:
    cards = [c for c in BUILTIN_CARDS if c.name in ("local", "local:gemma3-270m")]
    for name, description in SPECIALISTS.items():
        model = ensemble.FunctionModel(lambda _p: "(not run)", name=name)
        cards.append(ModelCard(model, description, family=name, price_in=0.0, price_out=0.0))
    return Catalog(cards)


def load_requests() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(REQUESTS.read_text("utf-8"))["requests"]
    return data


def runs_file(schema: bool) -> Path:
    return DATA / ("planner_runs.jsonl" if schema else "planner_runs_noschema.jsonl")


async def gather(schema: bool, limit: int | None) -> None:
    ctl = ensemble.Controller(
        catalog=catalog(),
        planner=ensemble.LocalModel(ctx_size=2048),
        structured=schema,
        limits={RISK: LIMITS},
        similarity="words",
        deadline=600.0,
        timeout=300.0,
    )
    path = runs_file(schema)
    done = 0
    # One line per answer as it comes, so an interrupted run keeps what it paid for.
    with path.open("w", encoding="utf-8") as out:
        try:
            for item in load_requests()[:limit]:
                started = time.perf_counter()
                # The controller's own planning step, with a tally of the planner's tokens
                # (to see how close a plan comes to the planning call's token cap).
                tally = _Tally()
                plan = await ctl._plan(
                    item["request"], RISK, LIMITS, CallState(deadline_at=None), tally, []
                )
                seconds = time.perf_counter() - started
                row = {
                    "id": item["id"],
                    "raw": plan.raw,
                    "seconds": round(seconds, 2),
                    "output_tokens": tally.planner_out,
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                done += 1
                print(f"{item['id']:3d} {seconds:6.1f}s {plan.source:8s} {plan.reason or ''}"[:160])
                sys.stdout.flush()
        finally:
            await ctl.aclose()
    print(f"wrote {done} answers to {path}")


def _names(plan: _plan.Plan) -> list[str]:
    return [m.name for t in plan.tasks for m in t.models]


def _rates(
    plans: list[_plan.Plan | None], right: list[set[str]]
) -> tuple[float, float, float, float]:
    valid = [p for p in plans if p is not None]
    pairs = list(zip(plans, right, strict=True))
    hit = sum(1 for p, r in pairs if p is not None and r & set(_names(p)))
    top1 = sum(1 for p, r in pairs if p is not None and _names(p)[0] in r)
    named = [(n, r) for p, r in zip(plans, right, strict=True) if p is not None for n in _names(p)]
    precision = sum(1 for n, r in named if n in r) / len(named) if named else float("nan")
    n = len(plans)
    return len(valid) / n, hit / n, top1 / n, precision


def _copied(raw: str | None, request: str, cat: Catalog) -> tuple[int, int, int]:
    """(task requests that copy the prompt's scaffolding, task requests that are the user's
    request word for word, task requests) in one answer, as the planner wrote them."""
    try:
        data = _plan._json_object(raw or "")
    except _plan.PlanInvalid:
        return 0, 0, 0
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list):
        return 0, 0, 0
    texts = [t.get("request") for t in tasks if isinstance(t, dict)]
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    bad = sum(1 for t in texts if _plan.scaffolding_problem(t, request=request, catalog=cat))
    same = sum(1 for t in texts if " ".join(t.split()) == " ".join(request.split()))
    return bad, same, len(texts)


def report(runs_path: Path | None = None) -> None:
    cat = catalog()
    items = load_requests()
    right = {it["id"]: set(it["right"]) for it in items}
    requests = {it["id"]: str(it["request"]) for it in items}
    embed = _embedder()
    fallbacks: dict[str, dict[int, _plan.Plan]] = {"words": {}, "embedding": {}}
    for it in items:
        for kind, fn in (("words", None), ("embedding", embed)):
            if kind == "embedding" and embed is None:
                continue
            fallbacks[kind][it["id"]] = _plan.fallback_plan(
                it["request"],
                catalog=cat,
                risk=RISK,
                reason="benchmark",
                raw=None,
                embed=fn,
                limits=LIMITS,
            )
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    sources = (
        [("planner (given runs)", runs_path)]
        if runs_path is not None
        else [("planner+schema", runs_file(True)), ("planner, no schema", runs_file(False))]
    )
    for label, path in sources:
        if path.exists():
            lines = path.read_text("utf-8").splitlines()
            runs[label] = {r["id"]: r for r in map(json.loads, lines)}
    parts = {
        "dev (1-20)": [i for i in right if i <= 20],
        "test (21-50)": [i for i in right if i > 20],
        "all": list(right),
    }
    cap = max(512, _plan.plan_token_bound(cat, risk=RISK, limits=LIMITS))
    print(f"risk {RISK}; {len(cat)} cards; valid / hit / precision (see the docstring)\n")
    for part, ids in parts.items():
        print(f"== {part}: {len(ids)} requests")
        truth = [right[i] for i in ids]
        for label, rows in runs.items():
            have = [i for i in ids if i in rows]
            if len(have) < len(ids):
                print(f"  {label:22s} only {len(have)} of {len(ids)} gathered")
                continue
            plans: list[_plan.Plan | None] = []
            for i in ids:
                raw = rows[i]["raw"]
                try:
                    plans.append(
                        _plan.parse_plan(
                            raw or "",
                            catalog=cat,
                            risk=RISK,
                            limits=LIMITS,
                            request=requests[i],
                        )
                    )
                except _plan.PlanInvalid:
                    plans.append(None)
            v, h, t, p = _rates(plans, truth)
            copies = [_copied(rows[i]["raw"], requests[i], cat) for i in ids]
            bad, same, total = (sum(c[k] for c in copies) for k in range(3))
            print(f"  {label:22s} valid {v:5.0%}  hit {h:5.0%}  top-1 {t:5.0%}  precision {p:5.0%}")
            print(
                f"  {'':22s} task requests as written: {bad}/{total} copy the prompt's "
                f"scaffolding, {same}/{total} are the user's request word for word"
            )
            # How often the planner's first card is the first card it was shown (the prompt
            # lists the cards in the word-overlap ranking, the fallback's first choice).
            follows = sum(
                1
                for plan, i in zip(plans, ids, strict=True)
                if plan is not None
                and _names(plan)[0] == fallbacks["words"][i].tasks[0].models[0].name
            )
            print(
                f"  {'':22s} first card is the word-overlap ranking's first: {follows}/{len(ids)} "
                "plans (the prompt shows the cards in that order since prompt version 2)"
            )
            combined: list[_plan.Plan | None] = [
                plan if plan is not None else fallbacks["words"][i]
                for plan, i in zip(plans, ids, strict=True)
            ]
            _v, h, t, p = _rates(combined, truth)
            latency = statistics.median(rows[i]["seconds"] for i in ids)
            name = f"  controller ({label})"
            print(
                f"  {name:22s}             hit {h:5.0%}  top-1 {t:5.0%}  precision {p:5.0%}  "
                f"median planning {latency:.1f} s"
            )
            tokens = [rows[i]["output_tokens"] for i in ids if "output_tokens" in rows[i]]
            if tokens:  # how close a plan comes to the planning call's cap (none is cut off)
                print(
                    f"  {'':22s} planner output tokens: median {statistics.median(tokens):.0f}, "
                    f"most {max(tokens)}, cap {cap}"
                )
        for kind, plans_by_id in fallbacks.items():
            if not plans_by_id:
                continue
            fb: list[_plan.Plan | None] = [plans_by_id[i] for i in ids]
            v, h, t, p = _rates(fb, truth)
            name = f"fallback ({kind})"
            print(f"  {name:22s} valid {v:5.0%}  hit {h:5.0%}  top-1 {t:5.0%}  precision {p:5.0%}")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gather", help="ask the local planner (slow)")
    g.add_argument("--no-schema", action="store_true", help="free-text answers")
    g.add_argument("--limit", type=int, default=None, help="only the first N requests")
    r = sub.add_parser("report", help="print the figures from the gathered answers")
    r.add_argument("--runs", type=Path, default=None, help="a planner_runs.jsonl to report")
    args = parser.parse_args()
    if args.command == "gather":
        asyncio.run(gather(not args.no_schema, args.limit))
    else:
        report(args.runs)


if __name__ == "__main__":
    main()
