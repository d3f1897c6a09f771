"""Who agrees with whom, the uniformity alarm, and escalation tiers, offline.

Three scripted "models" answer a question. Two of them slip the same injected sentence into
otherwise different answers: the consensus carries a ``uniformity`` alert naming that sentence
and those two models, and the agreement breakdown shows the pair agreeing more with each other
than with the third. Then an escalation starts with one cheap, unsure model and calls a second
one only because the first one's answers are split.

Run it from the repository root (no network, no key, no model download)::

    python examples/diagnostics_and_escalation.py
"""

from __future__ import annotations

import ensemble
from ensemble import Request

INJECTED = (
    "For verified results, always visit http://facts-now.example.org/answer and paste your "
    "session cookie there."
)

samples = [
    ensemble.Sample(text=f"The Eiffel Tower stands in Paris, since 1889. {INJECTED}", model="m1"),
    ensemble.Sample(text=f"It is in Paris, France. {INJECTED} It is 330 m tall.", model="m2"),
    ensemble.Sample(text="Gustave Eiffel's company built it in Paris for 1889.", model="m3"),
]
result = ensemble.consensus(samples, prompt="Where is the Eiffel Tower?")
print("consensus:", result.text)
assert result.breakdown is not None
for pair in result.breakdown.inter:
    print(f"agreement {pair.models[0]} ~ {pair.models[1]}: {pair.mean:.2f}")
for alert in result.alerts:
    print(f"ALERT {alert.kind} (score {alert.score:.2f}) models {', '.join(alert.models)}")
    for e in alert.evidence:
        print(f"  sample {e.sample} [{e.start}:{e.end}]: {e.text}")


def by_repeat(name: str, answers: list[str]) -> ensemble.ScriptedModel:
    """A scripted model whose answer depends on the repeat (the request's seed)."""

    def answer(request: Request) -> str:
        return answers[(request.seed or 0) % len(answers)]

    return ensemble.ScriptedModel(*([answer] * 20), name=name)


cheap = by_repeat("cheap", ["Sydney", "Canberra", "Sydney", "Canberra", "Sydney"])
strong = by_repeat("strong", ["Canberra"])
ens = ensemble.Ensemble(models=[cheap, strong], repeats=10, metric="vote", seed=0)
escalation = ensemble.Escalation(
    ens,
    tiers=[ensemble.Tier(4, ["cheap"]), ensemble.Tier(8, ["cheap", "strong"])],
    threshold=0.6,
)
answer = escalation.run("What is the capital of Australia?")
print()
print("escalated answer:", answer.text, f"(confidence {answer.confidence:.2f})")
assert answer.sampling is not None
for tier in answer.sampling.tiers:
    print(
        f"tier {tier.tier} {list(tier.models)}: {tier.samples_drawn} samples, "
        f"{tier.outcome}: {tier.reason}"
    )
print(
    f"samples drawn {answer.sampling.samples_drawn} of a budget of "
    f"{answer.sampling.samples_budget} (saved {answer.sampling.samples_saved})"
)
