"""One registry helper for every name the library resolves: metrics, models, calibrations and
entailment backends.

A :class:`Registry` maps a name to a factory. Factories come from three places, looked up in
this order: names registered at run time (:meth:`Registry.register`), the library's built-in
names (``"module:attr"`` targets imported only when first asked for, or callables), and the
installed entry points of the registry's group (``[project.entry-points."ensemble.metrics"]``).

With ``specs=True`` a name is a spec ``"PREFIX"`` or ``"PREFIX:ARG"`` and the factory is
called with the part after the colon (or ``None``); otherwise it is called with no argument.
An unknown name always raises :class:`~ensemble.errors.UnknownNameError`, which lists every
known name; a factory that returns the wrong kind of object, or an entry point that cannot be
loaded, raises :class:`~ensemble.errors.ConfigurationError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from ensemble.errors import (
    ConfigurationError,
    EnsembleError,
    InvalidInputError,
    UnknownNameError,
)

__all__ = ["Registry", "entry_point_targets", "load_target"]

T = TypeVar("T")


def entry_point_targets(group: str) -> dict[str, str]:
    """``{name: "module:attr"}`` of every installed entry point in ``group``."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def load_target(target: str) -> Callable[..., Any]:
    """Import ``"module:attr.sub"`` and return the callable it names (imported only now).

    A target that cannot be imported, or names something that is not callable, raises
    :class:`~ensemble.errors.ConfigurationError` (an error of the tree, e.g.
    :class:`~ensemble.errors.MissingDependencyError`, passes through).
    """
    module, _, attr = target.partition(":")
    try:
        obj: object = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except EnsembleError:
        raise
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"cannot load {target!r}: {exc}") from exc
    if not callable(obj):
        raise ConfigurationError(f"{target!r} is not callable")
    return obj


class Registry(Generic[T]):
    """Names of one kind (``"metric"``, ``"model"``, ...) and the factories that build them.

    - ``product``: the class every factory must return (checked; may be abstract);
    - ``builtin``: the library's names, as ``"module:attr"`` targets or callables;
    - ``group``: the entry-point group third parties register through (``None``: none);
    - ``specs``: names are ``"PREFIX[:ARG]"`` specs, factories take the ``ARG`` (or ``None``);
    - ``needs_arg``: prefixes that mean nothing without an ``ARG`` (listed as ``PREFIX:ARG``);
    - ``arg_label``: how ``ARG`` is shown in the list of known names (``"MODEL"``);
    - ``hint``: appended to the unknown-name message (e.g. what else may be given).
    """

    def __init__(
        self,
        kind: str,
        *,
        product: type[Any],
        builtin: Mapping[str, str | Callable[..., T]] | None = None,
        group: str | None = None,
        specs: bool = False,
        needs_arg: Collection[str] = (),
        arg_label: str = "NAME",
        hint: str = "",
    ) -> None:
        self.kind = kind
        self.product = product
        self._builtin: dict[str, str | Callable[..., T]] = dict(builtin or {})
        self.group = group
        self.specs = specs
        self.needs_arg = frozenset(needs_arg)
        self.arg_label = arg_label
        self.hint = hint
        self._registered: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T], *, replace: bool = False) -> None:
        """Make ``name`` resolve to ``factory`` (refused for a known name unless ``replace``)."""
        if not isinstance(name, str) or not name.strip() or (self.specs and ":" in name):
            colon = " without ':'" if self.specs else ""
            raise InvalidInputError(
                f"a {self.kind} name must be a non-empty string{colon}, not {name!r}"
            )
        if not callable(factory):
            raise InvalidInputError(
                f"the factory for {self.kind} {name!r} must be callable, not "
                f"{type(factory).__name__}"
            )
        if not replace and (name in self._registered or name in self._builtin):
            raise InvalidInputError(
                f"a {self.kind} named {name!r} is already registered (pass replace=True)"
            )
        self._registered[name] = factory

    def names(self) -> list[str]:
        """Every name (or spec prefix) this registry resolves, sorted."""
        eps = entry_point_targets(self.group) if self.group else {}
        return sorted(set(self._builtin) | set(self._registered) | set(eps))

    def known(self) -> list[str]:
        """:meth:`names`, with ``PREFIX:ARG`` for the prefixes that need an argument."""
        return [f"{n}:{self.arg_label}" if n in self.needs_arg else n for n in self.names()]

    def _factory(self, name: str) -> Callable[..., T] | None:
        found = self._registered.get(name)
        if found is not None:
            return found
        builtin = self._builtin.get(name)
        if builtin is not None:
            return load_target(builtin) if isinstance(builtin, str) else builtin
        if self.group:
            target = entry_point_targets(self.group).get(name)
            if target is not None:
                return load_target(target)
        return None

    def unknown(self, name: object) -> UnknownNameError:
        """The error for a name this registry does not know."""
        return UnknownNameError(self.kind, str(name), self.known(), hint=self.hint)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        prefix = name.strip().partition(":")[0] if self.specs else name.strip()
        return prefix in self.names()

    def resolve(self, name: str) -> T:
        """Build the object ``name`` (or the spec ``name``) stands for."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(
                f"a {self.kind} must be given by a non-empty name, not {str(name)[:80]!r}"
            )
        spec = name.strip()
        prefix, colon, rest = spec.partition(":") if self.specs else (spec, "", "")
        arg = rest.strip() if colon else None
        factory = self._factory(prefix)
        if factory is None:
            raise self.unknown(spec)
        if prefix in self.needs_arg and prefix not in self._registered and not arg:
            raise ConfigurationError(
                f"{self.kind} spec {spec!r} needs a {self.arg_label.lower()}, e.g. "
                f"'{prefix}:{self.arg_label}'"
            )
        made: T = factory(arg) if self.specs else factory()
        if not isinstance(made, self.product):
            raise ConfigurationError(
                f"the factory for {self.kind} {prefix!r} returned {type(made).__name__}, "
                f"not a {self.product.__name__}"
            )
        return made
