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
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ensemble._retry import CallOutcome, CallState, RetryPolicy, call_with_retries
from ensemble._validate import check_int, check_number
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

__all__ = ["Ensemble"]

logger = logging.getLogger("ensemble")

#: Seeds are drawn below this bound (some providers reject seeds that do not fit 32 bits).
_SEED_BOUND = 2**31 - 1


def _positive(name: str, value: object, *, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(f"{name} must be a positive number")
    return check_number(name, value, low=0.0, low_open=True)


def _count(name: str, value: object, *, minimum: int = 1) -> int:
    return check_int(name, value, minimum=minimum)


def _temperature(name: str, value: object) -> float:
    return check_number(name, value, low=0.0)


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
        return consensus(samples, metric=self._metric, calibration=self.calibration, prompt=prompt)

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
        if not prompt.strip():
            raise ConfigurationError("the prompt is empty: give the models something to answer")
        _count("start_repeat", start_repeat, minimum=0)
        chosen = self.models if models is None else tuple(get_model(m) for m in models)
        if isinstance(repeats, Mapping):
            unknown = sorted(set(repeats) - {m.name for m in chosen})
            if unknown:
                raise ConfigurationError(f"repeats given for unknown model(s) {unknown}")
        base_seed = self.seed if self.seed is not None else random.randrange(_SEED_BOUND)
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
        )
        outcomes = [CallOutcome() for _ in jobs]
        tasks = [
            asyncio.ensure_future(
                call_with_retries(
                    model,
                    request,
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
