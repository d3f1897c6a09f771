"""Score a text written elsewhere against samples, sentence by sentence (no model calls).

Shows `ensemble.score` with `sentences=` and a threshold: the sentence that no sample
repeats is flagged. Run it with:

    python examples/score_text.py
"""

from __future__ import annotations

import ensemble

ANSWER = [
    "Ada Lovelace was an English mathematician.",
    "She wrote about Charles Babbage's Analytical Engine.",
    "She was born in Paris in 1820 and moved to Boston as a child.",
]
SAMPLES = [
    "Ada Lovelace was an English mathematician and writer. She is known for her notes on "
    "Charles Babbage's proposed Analytical Engine. She was born in London in 1815.",
    "Ada Lovelace, an English mathematician, worked with Charles Babbage on the Analytical "
    "Engine. She was the daughter of Lord Byron.",
    "The English mathematician Ada Lovelace wrote the first published algorithm, for "
    "Babbage's Analytical Engine. She was born in 1815 in London.",
]


def main() -> None:
    result = ensemble.score(sentences=ANSWER, samples=SAMPLES, metric="ngram")
    print(f"metric: {result.metric.signature}")
    for span in result.spans:
        flag = "" if span.confidence >= 0.5 else "   <- not supported by the samples"
        print(f"{span.confidence:.2f}  {span.text}{flag}")
    kept = ensemble.score(sentences=ANSWER, samples=SAMPLES, metric="ngram", threshold=0.5)
    print(f"\nkept at 0.5: {kept.supported_text}")


if __name__ == "__main__":
    main()
