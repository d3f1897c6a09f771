"""A local NLI cross-encoder as a backend of ``entailment`` (extra ``[nli]``).

Any sequence-classification model trained on MNLI-style data works: a Hugging Face model name
(``"cross-encoder/nli-deberta-v3-small"``, ``"microsoft/deberta-large-mnli"``, ...) or the path
of a directory holding the model and its tokenizer. The premise is the sample, the hypothesis
the span, as in SelfCheckGPT's NLI scorer; pairs longer than ``max_length`` tokens (or than the
model takes) are cut from the sample's end. The three probabilities are the softmax of the
model's logits, and which logit is which is read from the model's own ``config.id2label``:
the labels whose names contain ``entail``, ``neutral`` and ``contradict`` (case ignored). A
model whose labels do not name all three is refused.

Nothing is downloaded unless you say so: by default the model must be a local directory or
already be in the Hugging Face cache (``local_files_only``); ``allow_download=True`` lets
transformers fetch it. A model that is neither raises
:class:`~ensemble.errors.ModelNotAvailableError`, which says which of the two to do.

Install::

    pip install "ensemble-consensus[nli]"   # transformers and torch (install a CPU torch first)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ensemble._validate import check_int
from ensemble.errors import ConfigurationError, MissingDependencyError, ModelNotAvailableError
from ensemble.metrics.base import FloatArray
from ensemble.metrics.entailment import (
    CONTRADICT,
    ENTAIL,
    NEUTRAL,
    BatchedEntailmentBackend,
)
from ensemble.types import SettingValue

__all__ = ["NLIBackend", "label_columns"]

_INSTALL = 'pip install "ensemble-consensus[nli]"'
_KEYS = (("entail", ENTAIL), ("neutral", NEUTRAL), ("contradict", CONTRADICT))


def label_columns(id2label: dict[int, str] | dict[str, str]) -> list[int]:
    """For each output index of the model, the verdict column it feeds (entail, neutral,
    contradict), read from ``id2label`` by name. Raises ``ConfigurationError`` unless the
    labels name each of the three exactly once."""
    columns: list[int] = []
    found: dict[int, str] = {}
    for index in sorted(int(k) for k in id2label):
        label = str(id2label[index] if index in id2label else id2label[str(index)])  # type: ignore[index]
        matches = [col for key, col in _KEYS if key in label.lower()]
        if len(matches) != 1:
            raise ConfigurationError(
                f"the model's label {label!r} (index {index}) does not name exactly one of "
                "entailment, neutral, contradiction; this is not an MNLI-style model"
            )
        if matches[0] in found:
            raise ConfigurationError(
                f"the model's labels {found[matches[0]]!r} and {label!r} name the same verdict"
            )
        found[matches[0]] = label
        columns.append(matches[0])
    if len(found) != 3:
        raise ConfigurationError(
            f"an NLI model needs entailment, neutral and contradiction labels; it has {id2label}"
        )
    return columns


class NLIBackend(BatchedEntailmentBackend):
    """Entailment probabilities from a local NLI cross-encoder (premise = sample, hypothesis =
    span), batched. See the module docstring."""

    name: ClassVar[str] = "nli"
    version: ClassVar[str] = "1"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        allow_download: bool = False,
        revision: str | None = None,
        batch_size: int = 16,
        max_length: int = 512,
        threads: int | None = None,
    ) -> None:
        check_int("batch_size", batch_size, minimum=1)
        check_int("max_length", max_length, minimum=8)
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError("transformers and torch", _INSTALL) from exc
        self.model_name = os.fspath(model)
        self.allow_download = bool(allow_download)
        self.revision = revision
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        local_dir = Path(self.model_name).is_dir()
        options: dict[str, Any] = {"local_files_only": not self.allow_download}
        if revision is not None:
            options["revision"] = revision
        try:
            self._tokenizer: Any = AutoTokenizer.from_pretrained(self.model_name, **options)
            self._model: Any = AutoModelForSequenceClassification.from_pretrained(
                self.model_name, **options
            )
        except (OSError, ValueError) as exc:  # not found, not cached, not loadable
            raise ModelNotAvailableError(
                self.model_name,
                local_dir=local_dir,
                allow_download=self.allow_download,
                reason=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            ) from exc
        self._model.eval()
        self._columns = label_columns(self._model.config.id2label)
        # Never feed more tokens than the model has positions for (nor than its tokenizer says).
        limits = [self.max_length, getattr(self._model.config, "max_position_embeddings", None)]
        limits.append(getattr(self._tokenizer, "model_max_length", None))
        self._max_tokens = min(int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000)
        self._torch: Any = torch

    def settings(self) -> dict[str, SettingValue]:
        return {"model": self.model_name, "revision": self.revision, "max_length": self.max_length}

    def _probabilities(self, premises: Sequence[str], hypotheses: Sequence[str]) -> FloatArray:
        torch = self._torch
        out = np.empty((len(premises), 3), dtype=np.float64)
        # Pairs of similar length share a batch, so little of it is padding.
        order = np.argsort([len(p) + len(h) for p, h in zip(premises, hypotheses, strict=True)])
        threads = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for start in range(0, len(premises), self.batch_size):
                    rows = order[start : start + self.batch_size]
                    batch = self._tokenizer(
                        [premises[i] for i in rows],
                        [hypotheses[i] for i in rows],
                        padding=True,
                        truncation="only_first",
                        max_length=self._max_tokens,
                        return_tensors="pt",
                    )
                    logits = self._model(**batch).logits.float()
                    probs = torch.softmax(logits, dim=-1).cpu().numpy()
                    ordered = np.zeros((probs.shape[0], 3), dtype=np.float64)
                    for index, column in enumerate(self._columns):
                        ordered[:, column] = probs[:, index]
                    out[rows] = ordered
        finally:
            if self.threads is not None:
                torch.set_num_threads(threads)
        return out

    def judge_samples(
        self, spans: Sequence[str], samples: Sequence[str], *, text: str | None = None
    ) -> FloatArray:
        out = np.zeros((len(spans), len(samples), 3), dtype=np.float64)
        pairs = [(k, j) for j, s in enumerate(samples) if s.strip() for k in range(len(spans))]
        for j, s in enumerate(samples):
            if not s.strip():  # a blank sample says nothing about any span
                out[:, j, NEUTRAL] = 1.0
        if pairs:
            probs = self._probabilities(
                [samples[j] for _, j in pairs], [spans[k] for k, _ in pairs]
            )
            for (k, j), p in zip(pairs, probs, strict=True):
                out[k, j] = p
        return out
