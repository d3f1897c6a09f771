"""``Ensemble``: ask several models several times each, concurrently, and vote.

All I/O of a run lives here and in ``ensemble/models``. A run is

1. :meth:`Ensemble.asample`: one call per (model, repeat), concurrently, bounded overall
   (``max_concurrency``) and per endpoint (``max_per_provider``), each through the single
   retry loop in :mod:`ensemble._retry`, all under the run's ``deadline``; every call becomes
   a :class:`~ensemble.Sample` (its text, or the error that prevented it);
2. :meth:`Ensemble.vote`: below ``quorum`` successful samples a
   :class:`~ensemble.errors.QuorumError` (listing every failure, keeping every sample), else
   :func:`ensemble.consensus` over the samples (failures are kept but never vote).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ensemble._budget import Budget, Pricing
from ensemble._durable import CallPath, annotate
from ensemble._limits import RateLimit, rate_limit_from
from ensemble._retry import CallOutcome, CallState, RetryPolicy
from ensemble.calibration import Calibrator, load_calibration
from ensemble.engine import consensus
from ensemble.errors import (
    ConfigurationError,
    DeadlineExceededError,
    ProviderError,
    ProviderHTTPError,
    QuorumError,
)
from ensemble.metrics.base import Metric, get_metric
from ensemble.models import get_model
from ensemble.models.base import Model, Request, _require_no_running_loop
from ensemble.types import Consensus, Sample, SampleError

if TYPE_CHECKING:
    from ensemble.errors import RunError
    from ensemble.store import Store

__all__ = ["Ensemble"]

logger = logging.getLogger("ensemble")

#: Seeds are drawn below this bound (some providers reject seeds that do not fit 32 bits).
_SEED_BOUND = 2**31 - 1


def _positive(name: str, value: object, *, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(f"{name} must be a positive number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a positive number, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be a positive number, not {value!r}")
    return float(value)


def _count(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def _temperature(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number >= 0, not {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigurationError(f"{name} must be a number >= 0, not {value!r}")
    return float(value)


class Ensemble:
    """Ask ``models`` ``repeats`` times each and build a consensus of the answers.

    Parameters (keyword-only, validated here, all at once):

    - ``models``: :class:`~ensemble.models.Model` objects or specs (``"openai:gpt-4o-mini"``,
      ``"local"``); names must be distinct.
    - ``repeats``: calls per model.
    - ``metric``: name or :class:`~ensemble.Metric` used to vote.
    - ``timeout``: seconds for one attempt of one call (``None``: no limit of ours).
    - ``deadline``: seconds for the whole run (``None``: none). Calls still running then are
      cancelled (their connections closed) and become samples with a
      :class:`~ensemble.errors.DeadlineExceededError`; the run votes on what came back.
    - ``quorum``: fewest successful samples to vote on; fewer raises
      :class:`~ensemble.errors.QuorumError`. Default ``None`` means **1**: any answer is voted
      on, and the confidences (and the ``no_evidence`` alert of a single sample) say how little
      a thin vote is worth. Set it to e.g. a majority of the calls to make a thin run an error.
    - ``temperature``: one number for every model, or a mapping from model name to number
      (models not in it keep their own); ``None`` leaves each model's own
      (``model.temperature``, else the provider's default).
    - ``max_concurrency`` / ``max_per_provider``: attempts in flight overall / per endpoint
      (one provider's base URL).
    - ``retry``: the :class:`RetryPolicy` of the single retry loop.
    - ``seed``: base seed. Repeat ``r`` of a model that takes seeds gets ``seed + r``, so repeats
      are distinct samples and a run can be reproduced; ``None`` draws a fresh base per run
      (recorded on every sample).
    - ``max_tokens`` / ``system``: passed to every request.
    - ``calibration``: a :class:`~ensemble.calibration.Calibrator`, the name of a packaged one
      (``"ngram-wikibio"``) or a calibration file, applied to the vote's confidences (checked
      against ``metric`` here, at construction; see ``docs/calibration.md``).
    - ``store``: an :class:`~ensemble.Store` that caches every sample and journals batches (a
      rerun sends only what never came back); with a store and no ``seed``, seeds derive
      from the prompt so a rerun asks for the same samples. See ``docs/durable.md``.
    - ``prices``: model name to ``(input, output)`` USD per million tokens (or a model card);
      every sample then carries its cost and every result a :class:`~ensemble.CostReport`.
    - ``budget``: a cap in USD on what this ensemble spends; needs ``max_tokens`` and a price
      for every model. Calls that would cross it are not sent; the vote says so.
    - ``rate_limit``: requests per second per endpoint, or an :class:`~ensemble.RateLimit`
      (also tokens per minute), shared with every run in the process on that endpoint.
    """

    def __init__(
        self,
        *,
        models: Sequence[Model | str],
        repeats: int = 5,
        metric: str | Metric = "ngram",
        timeout: float | None = 30.0,
        deadline: float | None = 120.0,
        quorum: int | None = None,
        temperature: float | Mapping[str, float] | None = None,
        max_concurrency: int = 16,
        max_per_provider: int = 8,
        retry: RetryPolicy | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        system: str | None = None,
        calibration: Calibrator | str | Path | None = None,
        store: Store | None = None,
        prices: Mapping[str, Any] | None = None,
        budget: float | None = None,
        rate_limit: float | RateLimit | None = None,
    ) -> None:
        if isinstance(models, (str, Model)) or not isinstance(models, Sequence):
            raise ConfigurationError("models must be a list of models or model specs")
        if not models:
            raise ConfigurationError("models must name at least one model")
        resolved = tuple(get_model(m) for m in models)
        names = [m.name for m in resolved]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(
                f"model names must be distinct; repeated: {', '.join(duplicates)} "
                "(give each a name=...)"
            )
        self.models: tuple[Model, ...] = resolved
        self.repeats = _count("repeats", repeats)
        self.metric: str | Metric = metric
        self._metric = get_metric(metric)  # an unknown name raises UnknownNameError here
        self.timeout = _positive("timeout", timeout, allow_none=True)
        self.deadline = _positive("deadline", deadline, allow_none=True)
        if quorum is not None:
            _count("quorum", quorum)
            if quorum > len(resolved) * self.repeats:
                raise ConfigurationError(
                    f"quorum {quorum} is more than the {len(resolved) * self.repeats} calls "
                    f"of a run ({len(resolved)} model(s) x {self.repeats} repeat(s))"
                )
        self.quorum: int = 1 if quorum is None else quorum
        if isinstance(temperature, Mapping):
            unknown = sorted(set(temperature) - set(names))
            if unknown:
                raise ConfigurationError(
                    f"temperature given for unknown model(s) {', '.join(unknown)}; "
                    f"the models are {', '.join(names)}"
                )
            self.temperature: float | Mapping[str, float] | None = {
                k: _temperature(f"temperature[{k!r}]", v) for k, v in temperature.items()
            }
        elif temperature is not None:
            self.temperature = _temperature("temperature", temperature)
        else:
            self.temperature = None
        self.max_concurrency = _count("max_concurrency", max_concurrency)
        self.max_per_provider = _count("max_per_provider", max_per_provider)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be an ensemble.RetryPolicy")
        self.retry = retry if retry is not None else RetryPolicy()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigurationError(f"seed must be an integer, not {seed!r}")
        self.seed = seed
        if max_tokens is not None:
            _count("max_tokens", max_tokens)
        self.max_tokens = max_tokens
        if system is not None and not isinstance(system, str):
            raise ConfigurationError("system must be a string")
        self.system = system
        self.calibration = load_calibration(calibration)
        if self.calibration is not None:
            self.calibration.check(self._metric.info)
        self._durable = _call_path(
            self, store=store, prices=prices, budget=budget, rate_limit=rate_limit
        )
        self.store = store
        self.budget = self._durable.budget
        self.rate_limit = self._durable.rate_limit

    def __repr__(self) -> str:
        names = ", ".join(m.name for m in self.models)
        return f"Ensemble(models=[{names}], repeats={self.repeats}, metric={self._metric.name!r})"

    # --- running -----------------------------------------------------------------------------

    def run(self, prompt: str) -> Consensus:
        """Synchronous :meth:`arun`, for code without an event loop.

        Runs in a fresh event loop and releases the models' connections when it ends. From
        inside a running event loop (Jupyter, async frameworks) use ``await ens.arun(...)``.
        """
        _require_no_running_loop("Ensemble.run()", "`await ensemble.arun(prompt)` instead")

        async def run_and_release() -> Consensus:
            try:
                return await self.arun(prompt)
            finally:
                await self.aclose()

        return asyncio.run(run_and_release())

    async def arun(self, prompt: str) -> Consensus:
        """Ask every model ``repeats`` times and vote. See the class docstring."""
        return self.vote(await self.asample(prompt), prompt=prompt)

    def vote(
        self, samples: Sequence[Sample], *, check_quorum: bool = True, prompt: str | None = None
    ) -> Consensus:
        """The consensus of ``samples`` by this ensemble's metric.

        Raises :class:`~ensemble.errors.QuorumError` (keeping every sample) when fewer than
        ``quorum`` samples succeeded, unless ``check_quorum`` is false; with no successful
        sample at all it always raises. ``prompt`` (when known) keeps text copied from the
        prompt out of the uniformity alarm's evidence (``docs/diagnostics.md``).
        """
        samples = tuple(samples)
        ok = sum(1 for s in samples if s.ok)
        if (check_quorum and ok < self.quorum) or ok == 0:
            raise QuorumError(quorum=self.quorum if check_quorum else 1, samples=samples)
        result = consensus(
            samples, metric=self._metric, calibration=self.calibration, prompt=prompt
        )
        return annotate(result, samples, self._durable.pricing)

    # --- batches (ensemble.batch) --------------------------------------------------------------

    def map(
        self, prompts: Iterable[str], *, max_prompts: int | None = None, run: str | None = None
    ) -> list[Consensus | RunError]:
        """Synchronous :meth:`amap`."""
        from ensemble.batch import run_map

        return run_map(self, prompts, max_prompts=max_prompts, run=run)

    async def amap(
        self, prompts: Iterable[str], *, max_prompts: int | None = None, run: str | None = None
    ) -> list[Consensus | RunError]:
        """Run every prompt; results in prompt order, a failed prompt as a
        :class:`~ensemble.errors.RunError` in its place. See :mod:`ensemble.batch`."""
        from ensemble.batch import amap

        return await amap(self, prompts, max_prompts=max_prompts, run=run)

    def astream(
        self, prompts: Iterable[str], *, max_prompts: int | None = None, run: str | None = None
    ) -> AsyncIterator[tuple[int, Consensus | RunError]]:
        """``async for i, result in ens.astream(prompts)``: results as they finish."""
        from ensemble.batch import astream

        return astream(self, prompts, max_prompts=max_prompts, run=run)

    def _temperature_for(self, model: Model) -> float | None:
        if isinstance(self.temperature, Mapping):
            value = self.temperature.get(model.name)
            return value if value is not None else model.temperature
        if self.temperature is not None:
            return self.temperature
        return model.temperature

    def _repeats_for(self, model: Model, repeats: int | Mapping[str, int] | None) -> int:
        if repeats is None:
            return self.repeats
        if isinstance(repeats, Mapping):
            return _count(f"repeats[{model.name!r}]", repeats.get(model.name, 0), minimum=0)
        return _count("repeats", repeats, minimum=0)

    async def asample(
        self,
        prompt: str,
        *,
        repeats: int | Mapping[str, int] | None = None,
        start_repeat: int = 0,
        models: Sequence[Model | str] | None = None,
    ) -> tuple[Sample, ...]:
        """Gather samples without voting: the building block of :meth:`arun`.

        ``repeats`` overrides the count per model (a mapping by model name; models missing
        from it get none). Repeat indices (and so seeds) start at ``start_repeat``, so that
        rounds of sampling can continue where the last one ended. ``models`` restricts the
        call to some of the ensemble's models (or adds others). The deadline, limits, retries
        and the "a 401 stops the endpoint" rule apply to this one call. Samples come back in
        request order (model by model, repeat by repeat).
        """
        if not isinstance(prompt, str):
            raise ConfigurationError(f"prompt must be a string, not {type(prompt).__name__}")
        _count("start_repeat", start_repeat, minimum=0)
        chosen = self.models if models is None else tuple(get_model(m) for m in models)
        if isinstance(repeats, Mapping):
            unknown = sorted(set(repeats) - {m.name for m in chosen})
            if unknown:
                raise ConfigurationError(f"repeats given for unknown model(s) {unknown}")
        base_seed = self.seed if self.seed is not None else self._durable.base_seed(prompt)
        jobs: list[tuple[Model, int, Request, float | None]] = []
        for model in chosen:
            temperature = self._temperature_for(model)
            for r in range(start_repeat, start_repeat + self._repeats_for(model, repeats)):
                seed = (base_seed + r) % _SEED_BOUND if model.supports_seed else None
                request = Request(
                    prompt=prompt,
                    system=self.system,
                    temperature=temperature,
                    max_tokens=self.max_tokens,
                    seed=seed,
                )
                jobs.append((model, r, request, temperature))
        if not jobs:
            return ()
        state = CallState(
            max_concurrency=self.max_concurrency,
            max_per_endpoint=self.max_per_provider,
            deadline_at=None if self.deadline is None else time.monotonic() + self.deadline,
            hooks=self._durable,
        )
        outcomes = [CallOutcome() for _ in jobs]
        tasks = [
            asyncio.ensure_future(
                self._durable.call(
                    model,
                    r,
                    request,
                    _t,
                    policy=self.retry,
                    timeout=self.timeout,
                    state=state,
                    outcome=outcome,
                    label=f"{model.name}#{r}",
                )
            )
            for (model, r, request, _t), outcome in zip(jobs, outcomes, strict=True)
        ]
        logger.debug(
            "run: %d call(s) to %d model(s), deadline %s s",
            len(tasks),
            len(chosen),
            self.deadline,
        )
        cancelled: set[int] = set()
        try:
            _done, pending = await asyncio.wait(tasks, timeout=self.deadline)
            if pending:
                logger.debug("run: deadline passed; cancelling %d straggler(s)", len(pending))
                for i, t in enumerate(tasks):
                    if t in pending:
                        cancelled.add(i)
                        t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            leftover = [t for t in tasks if not t.done()]
            for t in leftover:
                t.cancel()
            if leftover:  # the caller cancelled the run itself: let the calls wind down
                await asyncio.gather(*leftover, return_exceptions=True)
        samples: list[Sample] = []
        for i, ((model, r, request, temperature), outcome) in enumerate(
            zip(jobs, outcomes, strict=True)
        ):
            task = tasks[i]
            if outcome.sample is not None:  # it came back (or was stored): never lost
                samples.append(outcome.sample)
                continue
            if i in cancelled or task.cancelled():
                error: BaseException | None = DeadlineExceededError(
                    f"cancelled at the run deadline of {self.deadline:g} s",
                    model_name=model.name,
                )
                completion = None
            else:
                exc = task.exception()
                if exc is not None:  # call_with_retries does not raise; be safe anyway
                    error, completion = exc, None
                else:
                    error, completion = outcome.error, outcome.completion
            latency = None
            if outcome.started is not None and outcome.finished is not None:
                latency = max(0.0, outcome.finished - outcome.started)
            if completion is not None:
                samples.append(
                    Sample(
                        text=completion.text,
                        model=model.name,
                        repeat=r,
                        seed=request.seed,
                        temperature=temperature,
                        latency=latency,
                        usage=completion.usage,
                        finish_reason=completion.finish_reason,
                        request_id=completion.request_id,
                    )
                )
            else:
                samples.append(
                    Sample(
                        model=model.name,
                        repeat=r,
                        seed=request.seed,
                        temperature=temperature,
                        latency=latency,
                        error=_sample_error(error, model, outcome.attempts),
                    )
                )
        ok = sum(1 for s in samples if s.ok)
        logger.debug("run: %d of %d call(s) succeeded", ok, len(samples))
        return tuple(samples)

    # --- closing -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release every model's connections (the models stay usable)."""
        await asyncio.gather(*(m.aclose() for m in self.models))

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        _require_no_running_loop("Ensemble.close()", "`await ensemble.aclose()`")
        asyncio.run(self.aclose())

    async def __aenter__(self) -> Ensemble:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _call_path(
    ens: Ensemble,
    *,
    store: Store | None,
    prices: Mapping[str, Any] | None,
    budget: float | None,
    rate_limit: float | RateLimit | None,
) -> CallPath:
    """Validate ``store``, ``prices``, ``budget`` and ``rate_limit`` (see docs/durable.md)."""
    from ensemble.store import Store

    if store is not None and not isinstance(store, Store):
        raise ConfigurationError("store must be an ensemble.Store")
    pricing = Pricing(prices)
    cap = _positive("budget", budget, allow_none=True)
    if cap is not None:
        if ens.max_tokens is None:
            raise ConfigurationError(
                "budget needs max_tokens: the worst case of a call is its prompt plus max_tokens"
            )
        unpriced = [m.name for m in ens.models if pricing.price(m) is None]
        if unpriced:
            raise ConfigurationError(
                f"budget needs a price for every model; none for {', '.join(unpriced)} "
                "(pass prices={name: (input, output)} in USD per million tokens)"
            )
    return CallPath(
        store=store,
        pricing=pricing,
        budget=None if cap is None else Budget(cap),
        rate_limit=rate_limit_from(rate_limit),
    )


def _sample_error(error: BaseException | None, model: Model, attempts: int) -> SampleError:
    if error is None:  # cannot happen: an outcome without completion has an error
        error = ProviderError("no answer and no error", model_name=model.name)
    status: Any = error.status_code if isinstance(error, ProviderHTTPError) else None
    message = str(error)
    prefix = f"{model.name}: "
    if isinstance(error, ProviderError) and message.startswith(prefix):
        message = message[len(prefix) :]
    return SampleError(
        type=type(error).__name__, message=message, status_code=status, attempts=attempts
    )
