"""Write your own metric and register it under a name (no model calls).

A metric returns, for each span of a text and each sample, a support value in [0, 1]; the
library does the rest (candidate choice, confidence, results). Run it with:

    python examples/custom_metric.py
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import ensemble


class NumbersAgree(ensemble.Metric):
    """Support = share of the span's numbers that also appear in the sample (1 if none)."""

    name = "numbers-agree"
    granularity = "sentence"

    def support(
        self, text: str, spans: Sequence[tuple[int, int]], samples: Sequence[str]
    ) -> np.ndarray:
        out = np.ones((len(spans), len(samples)))
        for k, (a, b) in enumerate(spans):
            numbers = [t for t in text[a:b].replace(",", " ").split() if t.strip(".").isdigit()]
            for j, sample in enumerate(samples):
                if numbers:
                    out[k, j] = sum(n.strip(".") in sample for n in numbers) / len(numbers)
        return out


def main() -> None:
    ensemble.register_metric("numbers-agree", NumbersAgree)
    result = ensemble.score(
        text="The Eiffel Tower opened in 1889. It is 330 metres tall.",
        samples=["It opened in 1889 and is 330 m tall.", "Opened 1889; height 324 metres."],
        metric="numbers-agree",
    )
    for span in result.spans:
        print(f"{span.confidence:.2f}  {span.text}")


if __name__ == "__main__":
    main()
