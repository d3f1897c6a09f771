"""The exception tree of ``ensemble``.

Every error the library raises on purpose derives from :class:`EnsembleError`. A mistake in
how the library is called (:class:`UsageError`) is kept apart from a failure of a provider
(:class:`ProviderError`), and a run that could not gather enough samples raises a
:class:`RunError` that still carries every sample that came back::

    EnsembleError
    ├── UsageError                     your mistake; also a ValueError
    │   ├── InvalidInputError          bad samples / text / sentences / weights / calibration data
    │   │   └── MetricOutputError      a metric returned a wrong shape / out-of-range values
    │   ├── ConfigurationError         invalid settings: names the field and the bad value
    │   │   ├── UnknownNameError       unknown metric, model spec, calibration or entailment
    │   │   │                          backend; lists the known names (also a LookupError)
    │   │   ├── CalibrationMismatchError   a calibrator fitted for another metric's confidences
    │   │   └── ResumeMismatchError    a stored run resumed with other settings; names them
    │   ├── MissingAPIKeyError         no key given; names the environment variable to set
    │   ├── MissingDependencyError     an optional extra is not installed; also an ImportError
    │   ├── ModelNotAvailableError     a named model (e.g. NLI weights) is not on disk or cached
    │   └── SyncInAsyncError           a sync method called inside a running event loop
    ├── ProviderError                  the provider's failure (model_name on every instance)
    │   ├── ProviderConnectionError    could not connect, or the connection broke
    │   ├── ProviderTimeoutError       one attempt exceeded its timeout
    │   │   └── DeadlineExceededError  the run's deadline passed first; the call was cancelled
    │   ├── ProviderHTTPError          a non-2xx answer (status_code, body, should_retry)
    │   │   ├── AuthenticationError    401 / 403: the run stops calling that provider
    │   │   └── RateLimitError         429 (retry_after when the provider said it)
    │   ├── InvalidResponseError       a 2xx answer whose body is not what the API promises
    │   │   └── ResponseTooLargeError  an answer longer than the adapter's max_response_bytes
    │   └── LocalServerError           the embedded llama.cpp server (LocalModel) failed to start
    ├── BudgetExceededError            a call not sent: it would have crossed the budget cap
    └── RunError                       a run failed as a whole; keeps .samples (partial results)
        └── QuorumError                fewer voting samples than the quorum (an empty answer
                                       abstains); lists failures and empty answers

No other exception escapes on purpose: a pydantic ``ValidationError`` becomes a
:class:`ConfigurationError` (or :class:`InvalidInputError`) whose message names the field and
the value; a builtin ``TypeError`` / ``ValueError`` from a bad argument is a bug (a property
test in ``tests/test_errors_property.py`` feeds bad values to every public entry point).

Messages never contain API keys.

Every error survives pickling (Ray and multiprocessing pickle an exception to bring it back
from a worker): ``pickle.loads(pickle.dumps(error))`` has the same type, message, ``args`` and
attributes, e.g. a :class:`RunError`'s ``samples`` and ``index``. An error holds nothing the
message may not show, so a pickled one carries no API key either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ensemble.types import Sample

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "CalibrationMismatchError",
    "ConfigurationError",
    "DeadlineExceededError",
    "EnsembleError",
    "InvalidInputError",
    "InvalidResponseError",
    "LocalServerError",
    "MetricOutputError",
    "MissingAPIKeyError",
    "MissingDependencyError",
    "ModelNotAvailableError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderTimeoutError",
    "QuorumError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ResumeMismatchError",
    "RunError",
    "SyncInAsyncError",
    "UnknownNameError",
    "UsageError",
]


class EnsembleError(Exception):
    """Base class of every error raised on purpose by ``ensemble``."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default (``cls(*args)`` then the ``__dict__``) calls ``__init__`` again with the
        # final message as its only argument, which fails for every class whose constructor
        # takes other or keyword-only arguments (``ProviderError(message, model_name=...)``,
        # ``QuorumError(quorum=..., samples=...)``) and would add the model-name prefix twice
        # where it did not. Rebuilt without ``__init__`` instead: the same ``args`` (also when
        # the retry loop amended the message) and the same attributes.
        return (_rebuild, (type(self), self.args, dict(vars(self))))


def _rebuild(
    cls: type[EnsembleError], args: tuple[Any, ...], state: dict[str, Any]
) -> EnsembleError:
    """The unpickled error: ``args`` and attributes as they were, ``__init__`` not called."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


# --- your mistake -------------------------------------------------------------------------


class UsageError(EnsembleError, ValueError):
    """The library was called in a way it cannot honour."""


class InvalidInputError(UsageError):
    """Samples, text, sentences or another argument has the wrong type or value."""


class MetricOutputError(InvalidInputError):
    """A metric (typically a custom one) returned support or confidences the library cannot
    use: a wrong shape, values outside [0, 1] or infinite, or an unknown granularity. The
    message names the metric. (NaN support is not an error: it is an abstention.)"""


class ConfigurationError(UsageError):
    """Settings that are invalid on their own or together (e.g. quorum above the sample count)."""


class UnknownNameError(ConfigurationError, LookupError):
    """A name (metric, model spec, calibration, entailment backend) that no registry knows.

    ``kind`` is what was looked up, ``name`` the name given and ``known`` every name the
    registry knows; the message lists them (and ``hint``, when the registry has one).
    """

    def __init__(self, kind: str, name: str, known: Iterable[str], *, hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        listed = ", ".join(repr(k) for k in self.known) or "(none)"
        extra = f"; {hint}" if hint else ""
        super().__init__(f"unknown {kind} {name!r}; known {kind}s: {listed}{extra}")

    def __str__(self) -> str:  # LookupError would add quotes around the message
        return str(self.args[0])


class CalibrationMismatchError(ConfigurationError):
    """A calibrator was applied to the confidences of a metric it was not fitted for.

    ``expected`` is the signature it was fitted for, ``got`` the signature it was given.
    """

    def __init__(self, *, expected: str, got: str, name: str | None = None) -> None:
        self.expected = expected
        self.got = got
        label = f"calibration {name!r}" if name else "this calibration"
        super().__init__(
            f"{label} was fitted for the metric {expected!r} but is applied to {got!r}; "
            "its probabilities would be meaningless. Fit one for this metric, or force it "
            "with calibrator.apply(..., force=True) / calibration=calibrator.forced()"
        )


class ResumeMismatchError(ConfigurationError):
    """A run named in a store was started with other settings than the ones resuming it.

    ``run`` is the run's name; ``differences`` maps each differing setting to
    ``(stored, given)``.
    """

    def __init__(
        self, *, run: str, path: str, differences: dict[str, tuple[object, object]]
    ) -> None:
        self.run = run
        self.differences = differences
        shown = "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in differences.items())
        super().__init__(
            f"run {run!r} in the store {path} was started with other settings ({shown}); "
            "resume it with the same settings, or give the run another name"
        )


class MissingAPIKeyError(UsageError):
    """No API key was given and the provider's environment variable is not set."""

    def __init__(self, provider: str, env_var: str) -> None:
        self.provider = provider
        self.env_var = env_var
        super().__init__(
            f"no API key for {provider}: pass api_key=... or set the environment variable {env_var}"
        )


class MissingDependencyError(UsageError, ImportError):
    """An optional dependency is missing; the message gives the command that installs it."""

    def __init__(self, what: str, install: str) -> None:
        self.what = what
        self.install = install
        super().__init__(f"{what} is not installed; install it with: {install}")


class SyncInAsyncError(UsageError):
    """A synchronous method was called from inside a running event loop, which it would block;
    the message names the ``a``-twin to await instead (see ``ensemble/_sync.py``)."""


class ModelNotAvailableError(UsageError):
    """A model named by the user (e.g. NLI weights) is neither a local directory nor in the local
    cache, and downloading was not allowed or failed. The message says how to fix it."""

    def __init__(
        self, model: str, *, local_dir: bool, allow_download: bool, reason: str = ""
    ) -> None:
        self.model = model
        if local_dir:
            fix = "the directory exists but does not hold a loadable model and tokenizer"
        elif allow_download:
            fix = "it could not be downloaded either (check the name and the network)"
        else:
            fix = (
                "give the path of a directory that holds the model, put it in the Hugging Face "
                "cache, or pass allow_download=True to let transformers fetch it"
            )
        detail = f" ({reason})" if reason else ""
        super().__init__(f"model {model!r} is not available locally: {fix}{detail}")


# --- their failure ------------------------------------------------------------------------


class ProviderError(EnsembleError):
    """A model provider failed to produce a completion."""

    #: Whether trying the same request again may succeed.
    retryable: bool = False
    #: Why the retry loop did not retry this retryable error, when that is not the usual
    #: giving up (the provider asked to wait longer than ``max_retry_after``); it is also
    #: appended to the message (``"...; not retried: Retry-After 120 s exceeds ..."``).
    #: (An instance attribute, not a class default: Ray's wrapper of a remote error reads a
    #: class attribute of the error's class before the error's own.)
    not_retried: str | None

    def __init__(self, message: str, *, model_name: str) -> None:
        self.model_name = model_name
        self.not_retried = None
        super().__init__(f"{model_name}: {message}")


class ProviderConnectionError(ProviderError):
    """The connection could not be made or broke before an answer arrived."""

    retryable = True


class ProviderTimeoutError(ProviderError):
    """One attempt took longer than its timeout."""

    retryable = True


class DeadlineExceededError(ProviderTimeoutError):
    """The run's deadline passed before this call answered; the call was cancelled."""

    retryable = False


class ProviderHTTPError(ProviderError):
    """The provider answered with a non-success HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        model_name: str,
        status_code: int,
        body: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after
        self.should_retry = should_retry
        """The provider's own verdict (the ``x-should-retry`` header), when it gave one."""
        super().__init__(f"HTTP {status_code}: {message}", model_name=model_name)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        if self.should_retry is not None:  # the server said so: obey, as the official SDKs do
            return self.should_retry
        return self.status_code in (408, 409, 429) or self.status_code >= 500


class AuthenticationError(ProviderHTTPError):
    """401 or 403: the key was refused. A run stops calling that provider."""


class RateLimitError(ProviderHTTPError):
    """429: too many requests; ``retry_after`` holds the provider's hint in seconds, if any."""


class InvalidResponseError(ProviderError):
    """A success status whose body is not a valid completion."""


class ResponseTooLargeError(InvalidResponseError):
    """An answer (or error body) longer than the adapter's ``max_response_bytes``; the rest of
    it was not read. ``limit`` is the limit in bytes."""

    def __init__(self, message: str, *, model_name: str, limit: int) -> None:
        self.limit = limit
        super().__init__(message, model_name=model_name)


class LocalServerError(ProviderError):
    """The embedded llama.cpp server behind ``LocalModel`` failed to start or died.

    The message ends with llama.cpp's own error lines when there are any. A server that died
    during a call is ``retryable`` (the next call starts a new one); one that cannot start is
    not.
    """

    def __init__(self, message: str, *, model_name: str = "local", retryable: bool = False) -> None:
        self._retryable = bool(retryable)
        super().__init__(message, model_name=model_name)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        # A property over the instance's value, not an instance attribute that shadows the
        # class default: Ray's wrapper of a remote error reads the class attribute first.
        return self._retryable


class BudgetExceededError(EnsembleError):
    """A call was not sent because its worst-case cost would have crossed the budget cap.

    It becomes the error of that call's sample; the run votes on what came back.
    """

    def __init__(self, message: str, *, model_name: str) -> None:
        self.model_name = model_name
        super().__init__(message)


# --- a run as a whole -----------------------------------------------------------------------


class RunError(EnsembleError):
    """A run failed as a whole. ``samples`` keeps every sample, successful or not.

    A vote that fails after the samples came back (a metric that failed on them) makes
    ``Ensemble.run`` / ``arun`` raise a plain ``RunError`` whose ``__cause__`` is the metric's
    error, with every sample. In a batch (``Ensemble.map`` / ``amap`` / ``astream``) a failed
    prompt's error is in its place and ``index`` is that place (``None`` outside a batch); a
    prompt refused before any call (an empty prompt) is such a ``RunError`` with no samples."""

    #: The prompt's place in its batch; ``None`` outside a batch. (Set on the instance only:
    #: Ray's wrapper of a remote error would read a class default before the error's own.)
    index: int | None

    def __init__(
        self, message: str, *, samples: Sequence[Sample] = (), index: int | None = None
    ) -> None:
        self.samples: tuple[Sample, ...] = tuple(samples)
        self.index = index
        super().__init__(message)


class QuorumError(RunError):
    """Fewer voting samples than the quorum. The message lists every failure and every empty
    answer: an empty (white-space-only) answer is successful but abstains, so it never counts
    toward the quorum. ``voters`` and ``empty`` count them; ``summary`` is the first line
    without its list."""

    def __init__(self, *, quorum: int, samples: Sequence[Sample]) -> None:
        self.quorum = quorum
        self.empty = sum(1 for s in samples if s.empty)
        self.voters = sum(1 for s in samples if s.votes)
        if self.empty:
            self.summary = (
                f"{self.voters} voting sample(s), quorum is {quorum} "
                f"({self.voters + self.empty} successful, {self.empty} of them empty: "
                "an empty answer abstains)"
            )
        else:
            self.summary = f"{self.voters} successful sample(s), quorum is {quorum}"
        listed = "failures and empty answers" if self.empty else "failures"
        lines = [f"{self.summary}; {listed}:"]
        for s in samples:
            where = f"{s.model or '?'}#{s.repeat if s.repeat is not None else '?'}"
            if s.error is not None:
                lines.append(f"  - {where}: {s.error.type}: {s.error.message}")
            elif s.empty:
                lines.append(f"  - {where}: empty answer (abstains)")
        super().__init__("\n".join(lines), samples=samples)

    @property
    def failures(self) -> tuple[Sample, ...]:
        return tuple(s for s in self.samples if s.error is not None)
