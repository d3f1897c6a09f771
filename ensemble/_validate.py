"""Validation in one place: the base class of every settings object and the shared checks.

:class:`Settings` is the base of the library's small configuration value objects
(:class:`~ensemble.RetryPolicy`, :class:`~ensemble.SequentialStopping`, :class:`~ensemble.Tier`,
:class:`~ensemble.UniformityAlarm`, :class:`~ensemble.Calibrator`): frozen pydantic models,
keyword-only, validated once when they are built. A pydantic ``ValidationError`` never
reaches the user: :class:`Settings` turns it into a
:class:`~ensemble.errors.ConfigurationError` (or the class named by ``_error``) whose message
names the class, every bad field and the value it was given.

The checks that code outside a pydantic model needs (an integer that is not a ``bool``, a
finite number in a range, a file path) are :func:`check_int`, :func:`check_number` and
:func:`as_path`.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Strict, ValidationError

from ensemble.errors import ConfigurationError, UsageError

__all__ = [
    "Flag",
    "Int",
    "Number",
    "Settings",
    "as_path",
    "check_int",
    "check_number",
    "describe_validation_error",
]

#: An ``int`` that is not a ``bool`` and not a float (``3.0`` is refused).
Int = Annotated[int, Strict()]
#: A finite ``float`` (an ``int`` is accepted, a ``bool`` or a string is not).
Number = Annotated[float, Strict()]
#: ``True`` or ``False`` only (``1`` and ``"yes"`` are refused).
Flag = Annotated[bool, Strict()]

_MAX_SHOWN = 80


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def describe_validation_error(owner: str, exc: ValidationError) -> str:
    """One line per bad field: ``owner.field=value: what is wrong``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        where = f"{owner}.{loc}" if loc else owner
        if err.get("type") == "missing":
            lines.append(f"{where} is required")
        elif loc:
            lines.append(f"{where}={_shown(err.get('input'))}: {msg}")
        else:
            lines.append(f"{where}: {msg}")
    return "; ".join(lines) or f"{owner}: invalid settings"


_S = TypeVar("_S", bound="Settings")


class Settings(BaseModel):
    """Base of the frozen, keyword-only settings objects; see the module docstring."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        arbitrary_types_allowed=True,
        validate_default=False,
    )

    #: The error raised for invalid settings (a subclass of UsageError).
    _error: ClassVar[type[UsageError]] = ConfigurationError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._error(describe_validation_error(type(self).__name__, exc)) from None

    @classmethod
    def model_validate(cls: type[_S], obj: Any, *args: Any, **kwargs: Any) -> _S:
        """As pydantic's, with the library's error instead of a ``ValidationError``."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise cls._error(describe_validation_error(cls.__name__, exc)) from None

    @classmethod
    def model_validate_json(
        cls: type[_S], json_data: str | bytes | bytearray, *args: Any, **kwargs: Any
    ) -> _S:
        """As pydantic's, with the library's error instead of a ``ValidationError``."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            raise cls._error(describe_validation_error(cls.__name__, exc)) from None

    def model_copy(self: _S, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> _S:
        """A copy; with ``update``, a new object validated like any other (never unchecked)."""
        if not update:
            return super().model_copy(deep=deep)
        values: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            values[info.alias or name] = getattr(self, name)
        for key, value in update.items():
            field = type(self).model_fields.get(key)
            values[(field.alias or key) if field is not None else key] = value
        made = type(self)(**values)
        return copy.deepcopy(made) if deep else made

    def __setattr__(self, name: str, value: Any) -> None:
        raise ConfigurationError(
            f"{type(self).__name__} is immutable: build a new one instead of setting {name!r}"
        )

    def __delattr__(self, name: str) -> None:
        raise ConfigurationError(f"{type(self).__name__} is immutable: cannot delete {name!r}")


def check_int(
    name: str,
    value: object,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[UsageError] = ConfigurationError,
) -> int:
    """``value`` if it is an integer (not a ``bool``) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be an integer, not {_shown(value)}")
    if minimum is not None and value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, not {value!r}")
    if maximum is not None and value > maximum:
        raise error(f"{name} must be an integer <= {maximum}, not {_shown(value)}")
    return value


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite real number (not a ``bool``) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, not {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigurationError(f"{name} must be a finite number, not {_shown(value)}")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low and low == 0.0 and low_open and high is None:
        raise ConfigurationError(f"{name} must be a positive number, not {value!r}")
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ConfigurationError(f"{name} must lie in {left}{lo}, {hi}{right}, not {value!r}")
    return number


def as_path(name: str, value: object) -> Path:
    """``value`` as a :class:`~pathlib.Path` with ``~`` expanded, if it is a non-blank path."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"{name} must be a file path, not {_shown(value)}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise ConfigurationError(f"{name} must be a file path, not {_shown(value)}")
    try:
        os.fsencode(text)  # a lone surrogate cannot name a file: the OS call would raise
    except UnicodeEncodeError as exc:
        shown = _shown(value)
        raise ConfigurationError(f"{name} must be a file path, not {shown}: {exc}") from None
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:  # "~user" with no such user, or no home directory
        raise ConfigurationError(f"{name}: cannot expand {text!r}: {exc}") from exc
