"""Each model pair's usual inter-model agreement: :class:`AgreementBaseline` in memory and
:class:`BaselineStore`, the one file I/O of the diagnostics (it reads a JSON file when it is
created and writes it in :meth:`BaselineStore.save`; the engine only ever *reads* a baseline).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from ensemble._validate import as_path
from ensemble.errors import ConfigurationError, InvalidInputError
from ensemble.types import Consensus


@dataclass
class _PairStat:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


def _pair_key(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{x}\t{y}"


class AgreementBaseline:
    """Each model pair's usual inter-model agreement (running mean and variance, Welford).

    Held in memory; :class:`BaselineStore` keeps one in a JSON file. The alarm compares a run's
    agreement with this history as a z-score once a pair has ``min_history`` observations.
    """

    def __init__(self, pairs: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self._pairs: dict[str, _PairStat] = {}
        for key, st in (pairs or {}).items():
            self._pairs[key] = _PairStat(int(st["n"]), float(st["mean"]), float(st["m2"]))

    def observe(self, result: Consensus) -> None:
        """Add each model pair's inter-model agreement of ``result`` to the history."""
        if result.breakdown is None:
            return
        for pair in result.breakdown.inter:
            self._pairs.setdefault(_pair_key(*pair.models), _PairStat()).add(pair.mean)

    def stats(self, a: str, b: str) -> tuple[int, float, float]:
        """``(observations, mean, standard deviation)`` of the pair's agreement so far."""
        st = self._pairs.get(_pair_key(a, b))
        return (0, 0.0, 0.0) if st is None else (st.n, st.mean, st.std)

    def to_dict(self) -> dict[str, object]:
        return {
            "version": 1,
            "pairs": {
                k: {"n": v.n, "mean": v.mean, "m2": v.m2} for k, v in sorted(self._pairs.items())
            },
        }


class BaselineStore(AgreementBaseline):
    """An :class:`AgreementBaseline` kept in a small JSON file that the user names.

    The file is read when the store is created (a missing file is an empty history) and
    written atomically by :meth:`save`. :meth:`update` observes a result and saves.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = as_path("BaselineStore path", path)
        if self.path.is_dir():
            raise ConfigurationError(f"BaselineStore path {str(self.path)!r} is a directory")
        pairs: Mapping[str, Mapping[str, float]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                pairs = data["pairs"]
                super().__init__(pairs)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InvalidInputError(
                    f"{self.path} is not an ensemble agreement baseline: {exc}"
                ) from exc
        else:
            super().__init__()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".baseline-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1)
        os.replace(tmp, self.path)

    def update(self, result: Consensus) -> None:
        self.observe(result)
        self.save()
