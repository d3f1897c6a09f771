"""``Ensemble``: ask several models several times each, concurrently, and vote.

All I/O of a run lives here and in ``ensemble/models``. A run is

1. :meth:`Ensemble.asample`: one call per (model, repeat), concurrently, bounded overall
   (``max_concurrency``) and per endpoint (``max_per_provider``), each through the single
   retry loop in :mod:`ensemble._retry`, all under the run's ``deadline``; every call becomes
   a :class:`~ensemble.Sample` (its text, or the error that prevented it);
2. :meth:`Ensemble.avote`: below ``quorum`` successful non-empty samples a
   :class:`~ensemble.errors.QuorumError` (listing every failure, keeping every sample), else
   :func:`ensemble.aconsensus` over the samples (failures are kept but never vote), awaited on
   the run's loop, so a metric that calls a model (an LLM judge) never blocks it.

The sync methods (:meth:`Ensemble.run`, :meth:`Ensemble.vote`, :meth:`Ensemble.close`) are
thin wrappers that follow the one sync-over-async rule of :mod:`ensemble._sync`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensemble._budget import Budget, Pricing
from ensemble._closing import AsyncClosing
from ensemble._durable import CallPath, annotate
from ensemble._fanout import Call, Returned, fan_out
from ensemble._limits import RateLimit
from ensemble._retry import RetryPolicy
from ensemble._sync import run_sync
from ensemble._validate import check_int, check_number
from ensemble.calibration import Calibrator
from ensemble.catalog import family_of
from ensemble.engine import aconsensus, consensus
from ensemble.errors import (
    ConfigurationError,
    ProviderError,
    ProviderHTTPError,
    QuorumError,
    RunError,
)
from ensemble.metrics.base import Metric
from ensemble.models import get_model
from ensemble.models.base import Model, Request
from ensemble.settings import Limits, Method, VoteSettings
from ensemble.types import Consensus, Sample, SampleError

if TYPE_CHECKING:
    from ensemble.store import Store

__all__ = ["Ensemble"]

logger = logging.getLogger("ensemble")

#: Seeds are drawn below this bound (some providers reject seeds that do not fit 32 bits).
_SEED_BOUND = 2**31 - 1


def _count(name: str, value: object, *, minimum: int = 1) -> int:
    return check_int(name, value, minimum=minimum)


def _temperature(name: str, value: object) -> float:
    return check_number(name, value, low=0.0)


class Ensemble(AsyncClosing):
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
    - ``quorum``: fewest successful non-empty samples to vote on; fewer raises
      :class:`~ensemble.errors.QuorumError`. An empty (white-space-only) answer abstains, so
      it is kept but never counts. Default ``None`` means **1**: any answer is voted
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
    - ``settings``: an :class:`~ensemble.VoteSettings` (metric, weighting, threshold, alarm,
      calibration, method at once); ``metric``, ``calibration`` and ``method`` are shorthand
      for it, and setting one of them to another value as well is a
      :class:`~ensemble.errors.ConfigurationError`.
    - ``method``: ``"select"`` (one sample, the default) or ``"fuse"`` (the sentences most
      models state; see ``docs/fuse.md``): :attr:`~ensemble.VoteSettings.method`.
    - ``limits``: an :class:`~ensemble.Limits` (``timeout``, ``deadline``,
      ``max_concurrency``, ``max_per_provider`` at once; the keywords are shorthand for it,
      with the same rule).
    - ``store``: an :class:`~ensemble.Store` that caches every sample and journals batches (a
      rerun sends only what never came back); with a store and no ``seed``, seeds derive
      from the prompt so a rerun asks for the same samples. See ``docs/durable.md``.
    - ``prices``: model name to ``(input, output)`` USD per million tokens (or a model card);
      every sample then carries its cost and every result a :class:`~ensemble.CostReport`.
    - ``budget``: a cap in USD on what this ensemble spends; needs ``max_tokens`` and a price
      for every model. Calls that would cross it are not sent; the vote says so. Another
      ensemble's :attr:`budget` object instead shares that one cap (the controller gives one
      to all the tasks of a run).
    - ``rate_limit``: requests per second per endpoint, or an :class:`~ensemble.RateLimit`
      (also tokens per minute), shared with every run in the process on that endpoint;
      shorthand for :attr:`~ensemble.Limits.rate_limit` (same rule as the other limits).
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
        settings: VoteSettings | None = None,
        limits: Limits | None = None,
        method: Method = "select",
        store: Store | None = None,
        prices: Mapping[str, Any] | None = None,
        budget: float | Budget | None = None,
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
        # The vote's settings, resolved once (an unknown metric name raises UnknownNameError
        # and a calibration fitted for another metric CalibrationMismatchError, here).
        self.settings = VoteSettings.resolve(
            settings, metric=metric, calibration=calibration, method=method
        )
        self.metric: str | Metric = metric if settings is None else self.settings.metric
        self._metric = self.settings.metric
        self.limits = Limits.resolve(
            limits,
            timeout=timeout,
            deadline=deadline,
            max_concurrency=max_concurrency,
            max_per_provider=max_per_provider,
            rate_limit=rate_limit,
        )
        self.timeout = self.limits.timeout
        self.deadline = self.limits.deadline
        self.max_concurrency = self.limits.max_concurrency
        self.max_per_provider = self.limits.max_per_provider
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
        self.calibration: Calibrator | None = self.settings.calibration
        self.method: Method = self.settings.method
        self._durable = _call_path(self, store=store, prices=prices, budget=budget)
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
        return run_sync(
            "Ensemble.run()",
            "`await ensemble.arun(prompt)`",
            lambda: self.arun(prompt),
            release=self.aclose,
        )

    async def arun(self, prompt: str) -> Consensus:
        """Ask every model ``repeats`` times and vote. See the class docstring.

        A vote that fails keeps the samples it was given (they are paid for): below quorum
        the :class:`~ensemble.errors.QuorumError` itself; any other error (a metric that
        failed on the samples) is raised as a :class:`~ensemble.errors.RunError` whose
        message is that error's type and message, whose ``__cause__`` is that error, and
        whose ``samples`` are every sample of the run. A prompt refused before any call
        raises its own error (``ConfigurationError``).
        """
        samples = await self.asample(prompt)
        try:
            return await self.avote(samples, prompt=prompt)
        except Exception as exc:
            if isinstance(exc, RunError) and exc.samples:
                raise
            raise RunError(f"{type(exc).__name__}: {exc}", samples=samples) from exc

    async def avote(
        self,
        samples: Sequence[Sample],
        *,
        check_quorum: bool = True,
        prompt: str | None = None,
        settings: VoteSettings | None = None,
    ) -> Consensus:
        """The consensus of ``samples`` by this ensemble's vote settings.

        Raises :class:`~ensemble.errors.QuorumError` (keeping every sample) when fewer than
        ``quorum`` samples succeeded with text (an empty answer abstains), unless
        ``check_quorum`` is false; with no successful sample at all it always raises.
        ``prompt`` (when known) keeps text copied from the prompt out of the uniformity
        alarm's evidence (``docs/diagnostics.md``). ``settings`` replaces the ensemble's
        :class:`~ensemble.VoteSettings` for this vote.
        """
        samples = self.require_quorum(samples, check_quorum=check_quorum)
        result = await aconsensus(samples, settings=settings or self.settings, prompt=prompt)
        return annotate(result, samples, self._durable.pricing)

    def vote(
        self,
        samples: Sequence[Sample],
        *,
        check_quorum: bool = True,
        prompt: str | None = None,
        settings: VoteSettings | None = None,
    ) -> Consensus:
        """Synchronous :meth:`avote` (with a metric that calls a model, not from inside a
        running event loop)."""
        samples = self.require_quorum(samples, check_quorum=check_quorum)
        result = consensus(samples, settings=settings or self.settings, prompt=prompt)
        return annotate(result, samples, self._durable.pricing)

    def require_quorum(
        self, samples: Sequence[Sample], *, check_quorum: bool = True
    ) -> tuple[Sample, ...]:
        """``samples`` as a tuple, or :class:`~ensemble.errors.QuorumError` (keeping every
        sample) when fewer than ``quorum`` can vote (when none succeeded, even without
        ``check_quorum``): the rule :meth:`avote` applies. An empty (white-space-only) answer
        is kept but never votes, so it does not count toward the quorum."""
        samples = tuple(samples)
        voters = sum(1 for s in samples if s.votes)
        if (check_quorum and voters < self.quorum) or not any(s.ok for s in samples):
            raise QuorumError(quorum=self.quorum if check_quorum else 1, samples=samples)
        return samples

    # --- batches (ensemble._batch) --------------------------------------------------------------

    def map(
        self, prompts: Iterable[str], *, max_prompts: int | None = None, run: str | None = None
    ) -> list[Consensus | RunError]:
        """Synchronous :meth:`amap`."""
        from ensemble._batch import run_map

        return run_map(self, prompts, max_prompts=max_prompts, run=run)

    async def amap(
        self, prompts: Iterable[str], *, max_prompts: int | None = None, run: str | None = None
    ) -> list[Consensus | RunError]:
        """Run every prompt; results in prompt order, a failed prompt as a
        :class:`~ensemble.errors.RunError` in its place. See :mod:`ensemble._batch`."""
        from ensemble._batch import amap

        return await amap(self, prompts, max_prompts=max_prompts, run=run)

    def astream(
        self, prompts: Iterable[str], *, max_prompts: int | None = None, run: str | None = None
    ) -> AsyncIterator[tuple[int, Consensus | RunError]]:
        """``async for i, result in ens.astream(prompts)``: results as they finish."""
        from ensemble._batch import astream

        return astream(self, prompts, max_prompts=max_prompts, run=run)

    def _temperature_for(self, model: Model) -> float | None:
        """This ensemble's temperature for ``model`` (``None``: the model decides, see
        :meth:`~ensemble.models.Model.temperature_for`)."""
        if isinstance(self.temperature, Mapping):
            return self.temperature.get(model.name)
        return self.temperature

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
        base_seed = self.seed if self.seed is not None else self._durable.base_seed(prompt)
        calls: list[Call] = []
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
                calls.append(Call(model, request, f"{model.name}#{r}", repeat=r))
        returned = await fan_out(
            calls, limits=self.limits, retry=self.retry, durable=self._durable, build=_sample
        )
        samples = tuple(_sample(c, out) for c, out in zip(calls, returned, strict=True))
        logger.debug(
            "run: %d of %d call(s) to %d model(s) succeeded",
            sum(1 for s in samples if s.ok),
            len(samples),
            len(chosen),
        )
        return samples

    # --- closing -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release every model's connections, and the metric's (e.g. a judge's); everything
        stays usable."""
        await asyncio.gather(*(m.aclose() for m in self.models), self._metric.aclose())

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        run_sync("Ensemble.close()", "`await ensemble.aclose()`", self.aclose)


def _sample(call: Call, out: Returned) -> Sample:
    """The sample one call became: its text and provenance, or the error that prevented it
    (the durable layer's sample when it built one: stored, shared or priced and committed)."""
    if out.sample is not None:
        return out.sample
    request = call.request
    provenance: dict[str, Any] = {
        "model": call.model.name,
        "repeat": call.repeat,
        "seed": request.seed,
        "temperature": call.model.temperature_for(request),
        "latency": out.latency,
        "endpoint": call.model.endpoint,
        "family": family_of(call.model),
    }
    if out.completion is not None:
        c = out.completion
        return Sample(
            text=c.text,
            usage=c.usage,
            finish_reason=c.finish_reason,
            request_id=c.request_id,
            prompt_sent=c.prompt_sent,
            **provenance,
        )
    return Sample(error=_sample_error(out.error, call.model, out.attempts), **provenance)


def _call_path(
    ens: Ensemble,
    *,
    store: Store | None,
    prices: Mapping[str, Any] | None,
    budget: float | Budget | None,
) -> CallPath:
    """Validate ``store``, ``prices`` and ``budget`` (see docs/durable.md); the rate limit
    comes from :attr:`Ensemble.limits`."""
    from ensemble.store import Store

    if store is not None and not isinstance(store, Store):
        raise ConfigurationError("store must be an ensemble.Store")
    pricing = Pricing(prices)
    shared = budget if isinstance(budget, Budget) else None
    if shared is not None:
        cap: float | None = shared.cap
    else:
        cap = None if budget is None else check_number("budget", budget, low=0.0, low_open=True)
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
        budget=shared if shared is not None else (None if cap is None else Budget(cap)),
        rate_limit=ens.limits.rate_limit,
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
