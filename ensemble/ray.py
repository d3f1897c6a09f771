"""Scale-out on Ray: score a ``ray.data.Dataset`` over a pool of actors.

Needs the ``ray`` extra (``pip install "ensemble-consensus[ray]"``). Each row holds a text (or
its sentences) and the samples to score it against; :func:`score_dataset` runs
:func:`ensemble.score` on every row with ``map_batches`` over an actor pool, where each actor
builds its metric once (metrics that load a model pay for it once per actor, not per row), and
returns the dataset with two more columns:

- ``confidences``: one confidence per span, in order (a list of floats);
- ``consensus``: the :class:`~ensemble.Consensus` as JSON
  (``Consensus.model_validate_json`` reads it back).

Scoring is pure (no I/O), so a row scored on a worker equals the row scored locally, to the
bit. See ``docs/scale.md`` for clusters and large datasets.
"""

from __future__ import annotations

from typing import Any

from ensemble.errors import ConfigurationError, MissingDependencyError
from ensemble.metrics.base import Metric, get_metric

__all__ = ["score_dataset"]


def _require_ray() -> Any:
    try:
        import ray.data
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise MissingDependencyError("ray", 'pip install "ensemble-consensus[ray]"') from exc
    return ray


class _Scorer:
    """One actor: the metric is built in ``__init__``, once; ``__call__`` scores a batch."""

    def __init__(
        self,
        metric: str | Metric,
        text_column: str,
        samples_column: str,
        sentences_column: str | None,
    ) -> None:
        self.metric = get_metric(metric)
        self.text_column = text_column
        self.samples_column = samples_column
        self.sentences_column = sentences_column

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from ensemble.engine import score

        confidences: list[list[float]] = []
        documents: list[str] = []
        column = self.sentences_column or self.text_column
        for value, samples in zip(batch[column], batch[self.samples_column], strict=True):
            kwargs: dict[str, Any] = {"samples": [str(s) for s in samples], "metric": self.metric}
            if self.sentences_column is not None:
                kwargs["sentences"] = [str(s) for s in value]
            else:
                kwargs["text"] = str(value)
            result = score(**kwargs)
            confidences.append([s.confidence for s in result.spans])
            documents.append(result.model_dump_json())
        out = dict(batch)
        column_of_lists = np.empty(len(confidences), dtype=object)
        for i, c in enumerate(confidences):  # one list per row, never a 2-D array
            column_of_lists[i] = c
        out["confidences"] = column_of_lists
        out["consensus"] = np.array(documents, dtype=object)
        return out


def score_dataset(
    ds: Any,
    *,
    metric: str | Metric = "ngram",
    text_column: str = "text",
    samples_column: str = "samples",
    sentences_column: str | None = None,
    workers: int = 2,
    batch_size: int = 16,
) -> Any:
    """``ds`` with ``confidences`` and ``consensus`` columns (see the module docstring).

    ``sentences_column`` (instead of ``text_column``) scores exactly those spans per row.
    ``workers`` actors each take ``batch_size`` rows at a time. The result is lazy, like every
    Ray dataset: ``.take_all()``, ``.write_parquet(path)``, ... run it.
    """
    ray = _require_ray()
    if not isinstance(ds, ray.data.Dataset):
        raise ConfigurationError("score_dataset takes a ray.data.Dataset")
    for name, value in (("workers", workers), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be an integer >= 1, not {value!r}")
    get_metric(metric)  # an unknown name fails here, not on a worker
    return ds.map_batches(
        _Scorer,
        fn_constructor_kwargs={
            "metric": metric,
            "text_column": text_column,
            "samples_column": samples_column,
            "sentences_column": sentences_column,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
    )
