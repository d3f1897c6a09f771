"""Scale-out on Ray: score or run a ``ray.data.Dataset`` over a pool of actors.

Two functions, both lazy (they return a new dataset; nothing runs until it is consumed, e.g. by
``ds.write_parquet(path)``, ``ds.iter_rows()`` or ``ds.take_all()``):

- :func:`score_dataset` scores rows that already hold a text (or its sentences) and its
  samples, like :func:`ensemble.score` on each row;
- :func:`run_dataset` runs an :class:`~ensemble.Ensemble` on the prompt of each row, like
  :meth:`ensemble.Ensemble.run`.

Each actor of the pool builds its metric (or its ``Ensemble``) once, in its constructor, and
then serves many batches. Every output row gets three columns: ``confidences`` (one float per
span), ``consensus`` (the :class:`~ensemble.Consensus` as JSON, ``Consensus.model_validate_json``
reads it back) and ``error`` (``None``, or ``"ErrorType: message"`` when that row failed; then
the other two are ``None``). A failing row never fails the job. :func:`run_dataset` rows also
say which ``worker`` ran them and what it had spent (``worker_spent``); its store, budget and
rate limit are shared across the workers: one SQLite file per machine, per-worker shares of
the budget and the rate (:func:`spent_per_worker` adds up the spend). Batches travel as Arrow
tables: the output columns are appended to the batch's table, without a pandas round trip.

Ray is an optional extra (``pip install "ensemble-consensus[ray]"``) and is imported only when
one of these functions is called: ``import ensemble`` never imports it. See ``docs/scale.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ensemble._limits import RateLimit, rate_limit_from
from ensemble._validate import check_int, check_number
from ensemble.calibration import Calibrator, load_calibration
from ensemble.engine import score
from ensemble.errors import (
    ConfigurationError,
    InvalidInputError,
    MissingDependencyError,
)
from ensemble.metrics.base import Metric, get_metric
from ensemble.models.base import Model
from ensemble.runner import Ensemble
from ensemble.types import Consensus

__all__ = ["run_dataset", "score_dataset", "spent_per_worker"]

INSTALL = 'pip install "ensemble-consensus[ray]"'
#: The columns every output row gets.
OUTPUT_COLUMNS = ("confidences", "consensus", "error")
#: The further columns of :func:`run_dataset`: which worker ran the row, and what that worker
#: had spent under its budget share when the row's batch ended (``None`` without a budget).
RUN_COLUMNS = (*OUTPUT_COLUMNS, "worker", "worker_spent")

Weighting = Literal["sample", "model"]  # as in ensemble.score
MetricSpec = str | Metric | Callable[[], Metric]
ModelsSpec = Sequence[Model | str] | Callable[[], Sequence[Model | str]]


def _ray() -> Any:
    """The ``ray`` module with ``ray.data`` loaded, or a MissingDependencyError naming the extra."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError("Ray (package ray[data])", INSTALL) from exc
    return ray


# --- validation (all in one place, before anything is shipped to a worker) -----------------


def _column_name(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{name} must be a non-empty column name, not {value!r}")
    return value


def _check_columns(ds: Any, needed: Sequence[str], outputs: Sequence[str] = OUTPUT_COLUMNS) -> None:
    """Raise InvalidInputError naming the first needed column the dataset does not have.

    ``outputs`` already present would be overwritten, which is refused too.
    """
    ray = _ray()
    if not isinstance(ds, ray.data.Dataset):
        raise InvalidInputError(f"expected a ray.data.Dataset, not {type(ds).__name__}")
    schema = ds.schema()
    if schema is None:  # an empty dataset: nothing to check, nothing to score
        return
    have = list(schema.names)
    for column in needed:
        if column not in have:
            raise InvalidInputError(
                f"the dataset has no column {column!r}; its columns are {', '.join(have)}"
            )
    clash = [c for c in outputs if c in have]
    if clash:
        raise InvalidInputError(
            f"the dataset already has the output column(s) {', '.join(clash)}; "
            "drop or rename them first (ds.drop_columns([...]))"
        )


def _compute(ray: Any, concurrency: int | tuple[int, int] | None) -> Any:
    """The actor pool: ``n`` actors, ``(min, max)`` autoscaling, or ``None`` (1 .. as many as
    the cluster's CPUs allow)."""
    strategy = ray.data.ActorPoolStrategy
    if concurrency is None:
        return strategy(min_size=1)
    if isinstance(concurrency, bool):
        raise ConfigurationError(f"concurrency must be an int or (min, max), not {concurrency!r}")
    if isinstance(concurrency, int):
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, not {concurrency}")
        return strategy(size=concurrency)
    if (
        isinstance(concurrency, tuple)
        and len(concurrency) == 2
        and all(isinstance(c, int) and not isinstance(c, bool) for c in concurrency)
        and 1 <= concurrency[0] <= concurrency[1]
    ):
        return strategy(min_size=concurrency[0], max_size=concurrency[1])
    raise ConfigurationError(
        f"concurrency must be an int >= 1 or a (min, max) pair with 1 <= min <= max, "
        f"not {concurrency!r}"
    )


def _build_metric(metric: MetricSpec) -> Metric:
    if isinstance(metric, (str, Metric)):
        return get_metric(metric)
    if callable(metric):
        built = metric()
        if not isinstance(built, Metric):
            raise InvalidInputError(
                f"the metric factory returned a {type(built).__name__}, not a Metric"
            )
        return built
    raise InvalidInputError(
        f"metric must be a name, a Metric or a zero-argument factory, not {type(metric).__name__}"
    )


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _strings(value: object, what: str) -> list[str]:
    """A list of strings from a list<string> cell (``to_pylist`` gives a list, or ``None``)."""
    if value is None or isinstance(value, (str, bytes)):
        raise InvalidInputError(f"{what} must be a list of strings, not {value!r}")
    try:
        items: list[object] = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(
            f"{what} must be a list of strings, not {type(value).__name__}"
        ) from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInputError(f"{what}[{i}] is a {type(item).__name__}, not a string")
    return [str(item) for item in items]


def _column(batch: Any, name: str) -> list[Any]:
    """One column of a batch (an Arrow table) as Python values, without going through pandas."""
    values: list[Any] = batch.column(name).to_pylist()
    return values


def _with_results(batch: Any, results: Sequence[Consensus | BaseException]) -> Any:
    """The batch (an Arrow table, its columns kept as they are: no copy) with the three output
    columns appended, typed explicitly so that a batch without errors (or without successes)
    has the same schema."""
    import pyarrow as pa

    confidences: list[list[float] | None] = []
    consensus: list[str | None] = []
    errors: list[str | None] = []
    for result in results:
        if isinstance(result, BaseException):
            confidences.append(None)
            consensus.append(None)
            errors.append(_error_text(result))
        else:
            confidences.append([s.confidence for s in result.spans])
            consensus.append(result.model_dump_json())
            errors.append(None)
    table = batch.append_column("confidences", pa.array(confidences, type=pa.list_(pa.float64())))
    table = table.append_column("consensus", pa.array(consensus, type=pa.string()))
    return table.append_column("error", pa.array(errors, type=pa.string()))


# --- score_dataset ---------------------------------------------------------------------------


class _Scorer:
    """One actor of :func:`score_dataset`'s pool: builds the metric once, scores many batches."""

    def __init__(
        self,
        metric: MetricSpec,
        text_column: str | None,
        sentences_column: str | None,
        samples_column: str,
        prompt_column: str | None,
        threshold: float | None,
        weighting: Weighting,
        calibration: Calibrator | str | Path | None,
    ) -> None:
        self.metric = _build_metric(metric)
        self.text_column = text_column
        self.sentences_column = sentences_column
        self.samples_column = samples_column
        self.prompt_column = prompt_column
        self.threshold = threshold
        self.weighting = weighting
        self.calibration = calibration

    def _one(self, spans: object, samples: object, prompt: object) -> Consensus:
        common: dict[str, Any] = {
            "samples": _strings(samples, f"column {self.samples_column!r}"),
            "metric": self.metric,
            "threshold": self.threshold,
            "weighting": self.weighting,
            "calibration": self.calibration,
            "prompt": prompt,
        }
        if self.sentences_column is not None:
            sentences = _strings(spans, f"column {self.sentences_column!r}")
            return score(sentences=sentences, **common)
        if not isinstance(spans, str):
            raise InvalidInputError(
                f"column {self.text_column!r} must hold strings, not {type(spans).__name__}"
            )
        return score(spans, **common)

    def __call__(self, batch: Any) -> Any:
        spans_column = self.sentences_column or self.text_column
        assert spans_column is not None
        spans = _column(batch, spans_column)
        samples = _column(batch, self.samples_column)
        prompts = _column(batch, self.prompt_column) if self.prompt_column else [None] * len(spans)
        results: list[Consensus | BaseException] = []
        for row_spans, row_samples, prompt in zip(spans, samples, prompts, strict=True):
            try:
                results.append(self._one(row_spans, row_samples, prompt))
            except Exception as exc:  # one bad row is one error value, never a crashed job
                results.append(exc)
        return _with_results(batch, results)


def score_dataset(
    ds: Any,
    *,
    metric: MetricSpec = "ngram",
    text_column: str = "text",
    sentences_column: str | None = None,
    samples_column: str = "samples",
    prompt_column: str | None = None,
    threshold: float | None = None,
    weighting: Weighting = "model",
    calibration: Calibrator | str | Path | None = None,
    concurrency: int | tuple[int, int] | None = None,
    batch_size: int = 16,
    num_cpus: float = 1.0,
) -> Any:
    """Score every row of the ``ray.data.Dataset`` ``ds`` as :func:`ensemble.score` would.

    Each row holds a text in ``text_column`` (split into the metric's spans) and its samples
    (a list of strings) in ``samples_column``. With ``sentences_column`` (a list of strings per
    row) exactly those spans are scored, like ``ensemble.score(sentences=...)``, and
    ``text_column`` is not read. ``prompt_column`` (optional) gives each row's prompt to the
    uniformity alarm. ``metric`` is a name, a picklable :class:`~ensemble.Metric` or a
    zero-argument factory returning one; each actor builds it once. ``threshold``,
    ``weighting`` and ``calibration`` are as in :func:`ensemble.score`.

    ``concurrency`` is the actor pool: an int (that many actors), a ``(min, max)`` pair
    (autoscaling), or ``None`` (1 up to what the cluster's CPUs allow). ``batch_size`` rows go to
    an actor at a time; each actor reserves ``num_cpus`` CPUs.

    Returns the lazy dataset with the columns ``confidences`` (list of floats, one per span),
    ``consensus`` (the Consensus as JSON) and ``error`` (``None``, or ``"Type: message"`` for a
    row whose scoring failed; then the other two are ``None``).

    Raises :class:`~ensemble.errors.MissingDependencyError` without Ray and
    :class:`~ensemble.errors.InvalidInputError` naming a column the dataset lacks.
    """
    ray = _ray()
    samples_column = _column_name("samples_column", samples_column)
    if sentences_column is not None:
        spans_column = _column_name("sentences_column", sentences_column)
        text: str | None = None
    else:
        spans_column = text = _column_name("text_column", text_column)
    needed = [spans_column, samples_column]
    if prompt_column is not None:
        needed.append(_column_name("prompt_column", prompt_column))
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0.0 <= threshold <= 1.0
    ):
        raise InvalidInputError(f"threshold must be between 0 and 1, not {threshold!r}")
    if weighting not in ("sample", "model"):
        raise InvalidInputError(f"weighting must be 'sample' or 'model', not {weighting!r}")
    if isinstance(metric, str):
        get_metric(metric)  # an unknown name fails here, not on every worker
    # A name or path is read here, once, and the Calibrator shipped: workers need not see the file.
    calibration = load_calibration(calibration)
    compute = _compute(ray, concurrency)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    _check_columns(ds, needed)
    return ds.map_batches(
        _Scorer,
        fn_constructor_args=(
            metric,
            text,
            sentences_column,
            samples_column,
            prompt_column,
            threshold,
            weighting,
            calibration,
        ),
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=compute,
        num_cpus=num_cpus,
    )


# --- run_dataset -----------------------------------------------------------------------------


def _build_models(models: ModelsSpec) -> Sequence[Model | str]:
    built = models() if callable(models) else models
    if isinstance(built, (str, Model)) or not isinstance(built, Sequence):
        raise ConfigurationError(
            "models must be a list of models or model specs, or a zero-argument factory "
            "returning one"
        )
    return built


def _build_ensemble(models: ModelsSpec, settings: Mapping[str, Any]) -> Ensemble:
    metric = settings["metric"]
    if not isinstance(metric, (str, Metric)):
        metric = _build_metric(metric)
    return Ensemble(models=_build_models(models), **{**settings, "metric": metric})


def _worker_share(rate_limit: RateLimit, workers: int) -> RateLimit:
    """Each of ``workers`` actors gets an equal share of the requests per second and of the
    tokens per minute."""
    rps, tpm = rate_limit.requests_per_second, rate_limit.tokens_per_minute
    return RateLimit(
        requests_per_second=None if rps is None else rps / workers,
        tokens_per_minute=None if tpm is None else tpm / workers,
    )


class _Runner:
    """One actor of :func:`run_dataset`'s pool: builds its Ensemble once, runs many batches.

    It keeps one event loop for its whole life, so the models' connections (bound to a loop)
    are reused from batch to batch.
    """

    def __init__(
        self,
        models: ModelsSpec,
        settings: Mapping[str, Any],
        prompt_column: str,
        prompts_in_flight: int,
        store: str | None = None,
        run: str | None = None,
    ) -> None:
        from ensemble._batch import begin
        from ensemble.store import Store

        # One SQLite file shared by every actor of the node (WAL, busy timeout): see run_dataset.
        self.store = Store(store) if store is not None else None
        # settings["rate_limit"] is this worker's share: the Ensemble's endpoint limiter paces
        # every request (every attempt) with it, in this actor's one event loop.
        self.ensemble = _build_ensemble(models, {**settings, "store": self.store})
        begin(self.ensemble, run)  # the driver bound the run first: here it is a resume check
        budget = self.ensemble.budget
        if budget is not None and _restarted():
            # Ray restarted this actor after it died; what the dead one spent of this share is
            # unknown, so the share counts as spent: its rows fail with a budget error (and are
            # rerun later, from the store) rather than the job crossing its cap.
            budget.spend_rest()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.prompt_column = prompt_column
        self.prompts_in_flight = prompts_in_flight
        self.loop = asyncio.new_event_loop()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        prompts = _column(batch, self.prompt_column)
        results = self.loop.run_until_complete(self._run_prompts(prompts))
        table = _with_results(batch, results)
        budget = self.ensemble.budget
        spent = None if budget is None else budget.spent
        table = table.append_column("worker", pa.array([self.worker] * len(prompts), pa.string()))
        return table.append_column(
            "worker_spent", pa.array([spent] * len(prompts), type=pa.float64())
        )

    async def _run_prompts(self, prompts: Sequence[object]) -> list[Consensus | BaseException]:
        """One result (or error) per prompt, in order: the batch's string prompts go through
        one :meth:`Ensemble.amap <ensemble.Ensemble.amap>` (``prompts_in_flight`` prompts at
        once, their attempts bounded by ``max_concurrency`` over the whole batch); any other
        cell is an InvalidInputError row without a call."""
        results: list[Consensus | BaseException | None] = [None] * len(prompts)
        valid: list[int] = []
        for i, prompt in enumerate(prompts):
            if isinstance(prompt, str):
                valid.append(i)
            else:
                results[i] = InvalidInputError(
                    f"column {self.prompt_column!r} must hold strings, not {type(prompt).__name__}"
                )
        if valid:
            texts = [str(prompts[i]) for i in valid]
            done = await self.ensemble.amap(texts, max_prompts=self.prompts_in_flight)
            for i, result in zip(valid, done, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def __del__(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):  # the process is going away
                loop.run_until_complete(self.ensemble.aclose())
            loop.close()
        store = getattr(self, "store", None)
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()


def _pool_size(name: str, concurrency: object) -> int:
    """The fixed number of actors a job-wide limit is split over."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise ConfigurationError(
            f"{name} needs a fixed actor pool (concurrency=<int>) so that each worker's "
            f"share of the {name} is known"
        )
    return concurrency


def _share(name: str, total: float | None, concurrency: object) -> float | None:
    """``total / concurrency``: one worker's share of a job-wide limit (``None``: no limit)."""
    if total is None:
        return None
    value = check_number(name, total, low=0.0, low_open=True)
    return value / _pool_size(name, concurrency)


def _rate_share(rate_limit: object, concurrency: object) -> RateLimit | None:
    """One worker's share of the job's ``rate_limit`` (a number of requests per second or a
    :class:`~ensemble.RateLimit`), ``None`` without one."""
    total = rate_limit_from(rate_limit)
    if total is None:
        return None
    return _worker_share(total, _pool_size("rate_limit", concurrency))


def _restarted() -> bool:
    """Whether this process is a Ray actor that Ray restarted after it died."""
    import ray

    if not ray.is_initialized():
        return False
    context = ray.get_runtime_context()
    if context.get_actor_id() is None:  # the driver or a task, not an actor
        return False
    return bool(context.was_current_actor_reconstructed)


def _one_node(ray: Any) -> None:
    """Refuse a store on a Ray cluster of several nodes (SQLite is shared by processes on one
    machine, not across machines). A Ray not yet started will be a local one: fine."""
    if not ray.is_initialized():
        return
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1:
        raise ConfigurationError(
            f"store= is one SQLite file shared by the workers of one machine, and this Ray "
            f"cluster has {len(nodes)} nodes; SQLite is not safe across machines or on a network "
            "file system. Run the job without a store, or split it into shards run on one node "
            "each (docs/scale.md)"
        )


def run_dataset(
    ds: Any,
    *,
    models: ModelsSpec,
    repeats: int = 5,
    metric: MetricSpec = "ngram",
    prompt_column: str = "prompt",
    timeout: float | None = 30.0,
    deadline: float | None = 120.0,
    quorum: int | None = None,
    temperature: float | Mapping[str, float] | None = None,
    seed: int | None = None,
    max_tokens: int | None = None,
    system: str | None = None,
    calibration: Calibrator | str | Path | None = None,
    rate_limit: float | RateLimit | None = None,
    budget: float | None = None,
    prices: Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    run: str | None = None,
    prompts_in_flight: int = 4,
    concurrency: int | tuple[int, int] | None = None,
    batch_size: int = 8,
    num_cpus: float = 1.0,
) -> Any:
    """Run an :class:`~ensemble.Ensemble` on the prompt of every row of ``ds``.

    ``models`` is a list of model specs / picklable :class:`~ensemble.Model` objects, or a
    zero-argument factory returning one (called once on the driver to validate the settings,
    then once per actor). ``repeats``, ``metric``, ``timeout``, ``deadline``, ``quorum``,
    ``temperature``, ``seed``, ``max_tokens``, ``system``, ``calibration`` and ``prices`` are
    as in :class:`~ensemble.Ensemble`; each actor builds its Ensemble once.

    Each actor runs the prompts of a batch through one :meth:`Ensemble.amap
    <ensemble.Ensemble.amap>`: up to ``prompts_in_flight`` prompts at once, order kept, a
    failed prompt one error row. The job-wide limits are split into **per-worker shares** and
    need a fixed pool (``concurrency`` an int, ``N`` actors):

    - ``rate_limit`` (requests per second for the whole job, or a :class:`~ensemble.RateLimit`
      with tokens per minute as well): each actor's Ensemble gets ``Ensemble(rate_limit=...)``
      with ``1/N`` of each, so every request (every attempt, retries included) is paced by the
      library's endpoint limiter, not whole prompts. A worker sends one request every
      ``1.03 N / rate_limit`` seconds, so with ``rate_limit / N`` a whole number no window of
      one second sees more than ``rate_limit`` requests from the job; with a fractional share
      a worker can send ``ceil(share)`` in a second (e.g. 3/s over 2 workers: up to 4 in a
      second, 3/s on average). A share is not lent to an idle worker. Pacing is at
      admission: a model whose first call spends time building its client can reach the
      server together with the next request, once per actor (``docs/scale.md``).
    - ``budget`` (USD, for the whole job; needs ``max_tokens`` and ``prices``): each actor's
      Ensemble gets ``Ensemble(budget=budget / N)``, so the job spends at most ``budget``. A
      share is not lent to another worker. An actor that Ray restarts after it died counts its
      share as spent (what the dead one spent is unknown): its rows fail with a budget error
      rather than the job crossing its cap; with a store, a rerun pays only for what never
      came back.

    ``store`` is the path of one SQLite file (:class:`~ensemble.Store`) that **every actor
    opens**: WAL and a 30 s busy timeout let the processes of one machine share it, so a rerun
    finds every sample whichever actor drew it. A Ray cluster of several nodes is refused
    (SQLite is not safe across machines). ``run`` names the batch in the store; the driver
    binds it to the run's settings first, so a rerun with other settings raises
    :class:`~ensemble.errors.ResumeMismatchError` before anything is sent.

    ``concurrency``, ``batch_size`` and ``num_cpus`` are as in :func:`score_dataset`. Returns
    the lazy dataset with ``confidences``, ``consensus`` and ``error`` columns (a failed run,
    e.g. a :class:`~ensemble.errors.QuorumError`, is an error row), plus ``worker`` (the
    actor's ``host:pid``) and ``worker_spent`` (USD that worker had spent under its budget
    share when the row's batch ended; ``None`` without a budget): :func:`spent_per_worker`
    sums them up. See ``docs/scale.md``.
    """
    ray = _ray()
    from ensemble._batch import begin
    from ensemble.store import Store

    prompt_column = _column_name("prompt_column", prompt_column)
    if run is not None and store is None:
        raise ConfigurationError("run= names a batch in a store; give run_dataset a store=")
    rate_share = _rate_share(rate_limit, concurrency)
    budget_share = _share("budget", budget, concurrency)
    settings: dict[str, Any] = {
        "repeats": repeats,
        "metric": metric,
        "timeout": timeout,
        "deadline": deadline,
        "quorum": quorum,
        "temperature": temperature,
        "seed": seed,
        "max_tokens": max_tokens,
        "system": system,
        "calibration": load_calibration(calibration),  # read once here, shipped as an object
        "prices": prices,
        "budget": budget_share,
        "rate_limit": rate_share,
    }
    store_path: str | None = None
    if store is None:
        _build_ensemble(models, settings)  # validates every setting here, not on every worker
    else:
        _one_node(ray)
        store_path = os.path.abspath(os.fspath(store))  # the actors' working directory may differ
        # Created here (mode 0600, schema) before any worker opens it; the run is bound here
        # so that the workers only read the binding (no race between two first inserts).
        with Store(store_path) as opened:
            begin(_build_ensemble(models, {**settings, "store": opened}), run)
    compute = _compute(ray, concurrency)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    prompts_in_flight = check_int("prompts_in_flight", prompts_in_flight, minimum=1)
    _check_columns(ds, [prompt_column], RUN_COLUMNS)
    return ds.map_batches(
        _Runner,
        fn_constructor_args=(
            models,
            settings,
            prompt_column,
            prompts_in_flight,
            store_path,
            run,
        ),
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=compute,
        num_cpus=num_cpus,
    )


def spent_per_worker(rows: Any) -> dict[str, float]:
    """USD each worker of a :func:`run_dataset` job spent under its budget share.

    ``rows`` is the job's output: a (preferably materialized, or read back from Parquet)
    ``ray.data.Dataset``, a ``pyarrow.Table`` or an iterable of row mappings. A worker's
    ``worker_spent`` only grows, so its spend is its largest value; the job's total is the sum
    of the values. Rows without a budget (``worker_spent`` null) are left out.
    """
    ray = _ray()
    if isinstance(rows, ray.data.Dataset):
        rows = rows.select_columns(["worker", "worker_spent"]).iter_rows()
    elif hasattr(rows, "to_pylist"):
        rows = rows.select(["worker", "worker_spent"]).to_pylist()
    out: dict[str, float] = {}
    for row in rows:
        spent = row["worker_spent"]
        if spent is not None:
            out[row["worker"]] = max(out.get(row["worker"], 0.0), float(spent))
    return out
