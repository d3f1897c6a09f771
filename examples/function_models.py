"""Run an ensemble offline: three "models" that are plain Python functions.

Shows `ensemble.Ensemble` with `FunctionModel`: repeats run concurrently, a rate-limited
model is retried by the runner's single retry loop, a model that fails keeps its failure in
the result (it never votes), and the consensus comes with per-sentence confidence and the
models that support each sentence.

Run it with:  .venv/bin/python examples/function_models.py
"""

from __future__ import annotations

import asyncio
import itertools

import ensemble
from ensemble.errors import ProviderHTTPError, RateLimitError

ANSWERS = itertools.cycle(
    [
        "Canberra is the capital of Australia. It was chosen as a compromise.",
        "The capital of Australia is Canberra. Sydney is the largest city.",
        "Canberra is the capital of Australia. It was chosen as a compromise.",
    ]
)


def careful(prompt: str) -> str:
    """A sync function: runs in a worker thread."""
    return next(ANSWERS)


calls = {"n": 0}


async def rate_limited(prompt: str) -> str:
    """An async function that is rate-limited on its first call."""
    calls["n"] += 1
    if calls["n"] == 1:
        raise RateLimitError("slow down", model_name="busy", status_code=429, retry_after=0.05)
    await asyncio.sleep(0.01)
    return "Canberra is the capital of Australia. It was chosen as a compromise."


def broken(prompt: str) -> str:
    raise ProviderHTTPError("model not found", model_name="broken", status_code=404)


def main() -> None:
    ens = ensemble.Ensemble(
        models=[
            ensemble.FunctionModel(careful, name="careful"),
            ensemble.FunctionModel(rate_limited, name="busy"),
            ensemble.FunctionModel(broken, name="broken"),
        ],
        repeats=3,
        metric="ngram",
        quorum=4,
        retry=ensemble.RetryPolicy(base_delay=0.01, max_delay=0.1),
    )
    result = ens.run("What is the capital of Australia?")
    print(f"consensus: {result.text}")
    for span in result.spans:
        models = sorted({result.samples[i].model or "?" for i in span.supporters})
        print(f"{span.confidence:.2f}  {span.text}  <- {', '.join(models)}")
    ok = [s for s in result.samples if s.ok]
    print(f"{len(ok)} of {len(result.samples)} samples came back")
    print(f"'busy' was called {calls['n']} times (one 429, retried)")
    for s in result.samples:
        if s.error is not None:
            print(f"failed: {s.model}#{s.repeat}: {s.error.type} (HTTP {s.error.status_code})")


if __name__ == "__main__":
    main()
