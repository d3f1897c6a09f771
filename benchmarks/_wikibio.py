"""Shared by the WikiBio benchmark scripts: where the data is, how to read it, how to score it.

The data stays in ``../shared/data`` (read-only, never copied into the repository); the
scripts take ``--data PATH`` for another location.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout, installed or not
    sys.path.insert(0, str(ROOT))

import ensemble  # noqa: E402

#: ``../shared/data`` next to the repository (or one level up, for a worktree in a subfolder).
DEFAULT_DATA = next(
    (
        p / "shared" / "data" / "wikibio_dev.json"
        for p in (ROOT.parent, ROOT.parent.parent)
        if (p / "shared" / "data" / "wikibio_dev.json").exists()
    ),
    ROOT.parent / "shared" / "data" / "wikibio_dev.json",
)
#: The SelfCheckGPT label mapping (hallucination labels: higher = worse).
LABELS = {"accurate": 0.0, "minor_inaccurate": 0.5, "major_inaccurate": 1.0}
Passage = dict[str, Any]


def load(path: Path) -> list[Passage]:
    """The passages of a WikiBio file; exits with a clear message when it is missing."""
    if not path.exists():
        sys.exit(f"benchmark data not found at {path}; pass --data PATH")
    with path.open(encoding="utf-8") as f:
        data: list[Passage] = json.load(f)
    return data


def labels_of(passages: Sequence[Passage]) -> list[np.ndarray]:
    """Per passage, the hallucination label of each sentence (0, 0.5 or 1)."""
    return [np.array([LABELS[a] for a in p["annotation"]]) for p in passages]


def confidences(
    passages: Sequence[Passage], metric: str | ensemble.Metric, **options: Any
) -> list[np.ndarray]:
    """Per passage, each annotated sentence's confidence from the public ``ensemble.score``."""
    out = []
    for p in passages:
        result = ensemble.score(
            sentences=p["gpt3_sentences"], samples=p["gpt3_text_samples"], metric=metric, **options
        )
        out.append(np.array([s.confidence for s in result.spans]))
    return out
