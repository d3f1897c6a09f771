"""Where do samples part? Token-level consensus with the `prefix` metric (no model calls).

Ten continuations of "23, 24, 25": half go on together, the rest scatter. The consensus is
the shared continuation, and each token's confidence is the share of the other samples that
still agree up to it. Run it with:

    python examples/counting.py
"""

from __future__ import annotations

import ensemble

SAMPLES = [
    ", 26, 27, 28, 29, 30",
    ", 26, 27, 28, 29, 30",
    ", 26, 27, 28, 29, 30, 31",
    ", 26, 27, 28, 29",
    ", 26, 27, 28, 29, 30",
    ", 27, 29, 31",
    " and then 26",
    ", 26, 28, 30, 32",
    ", 25, 25, 25",
    ", 100, 200",
]


def main() -> None:
    result = ensemble.consensus(SAMPLES, metric="prefix")
    print(f"consensus: {result.text!r}")
    for span in result.spans:
        bar = "#" * round(span.confidence * 20)
        print(f"{span.text:>4}  {span.confidence:4.2f}  {bar}")


if __name__ == "__main__":
    main()
