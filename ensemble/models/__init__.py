"""Model adapters and the registry that resolves model specs.

A spec is ``"PREFIX"`` or ``"PREFIX:MODEL"``: ``"openai:gpt-4o-mini"``,
``"anthropic:claude-3-5-haiku-latest"``, ``"local"``. Adapters are imported only when a spec
needs them. Third-party packages add prefixes through the entry-point group ``ensemble.models``;
the entry point names a callable taking the part after the colon (or ``None``)::

    [project.entry-points."ensemble.models"]
    mistral = "mypkg.models:from_spec"     # get_model("mistral:small") -> from_spec("small")
"""

from __future__ import annotations

from collections.abc import Callable

from ensemble._plugins import entry_point_targets, load_target
from ensemble.errors import ConfigurationError, InvalidInputError, UnknownNameError
from ensemble.models.base import Completion, Message, Model, Request

__all__ = [
    "Completion",
    "Message",
    "Model",
    "Request",
    "available_model_prefixes",
    "get_model",
    "register_model",
]

ModelFactory = Callable[[str | None], Model]

_BUILTIN: dict[str, str] = {
    "anthropic": "ensemble.models.anthropic:AnthropicModel",
    "local": "ensemble.models.local:from_spec",
    "openai": "ensemble.models.openai:OpenAIModel",
}
#: Prefixes whose spec must name a model (``"openai"`` alone means nothing).
_NEEDS_MODEL = {"anthropic", "openai"}
_REGISTERED: dict[str, ModelFactory] = {}
_ENTRY_POINT_GROUP = "ensemble.models"


def register_model(prefix: str, factory: ModelFactory, *, replace: bool = False) -> None:
    """Make ``get_model("PREFIX:REST")`` return ``factory("REST")`` (``factory(None)`` for
    a bare ``"PREFIX"``)."""
    if not prefix or not isinstance(prefix, str) or ":" in prefix:
        raise InvalidInputError("a model prefix must be a non-empty string without ':'")
    if not replace and (prefix in _REGISTERED or prefix in _BUILTIN):
        raise InvalidInputError(f"a model prefix {prefix!r} is already registered")
    _REGISTERED[prefix] = factory


def available_model_prefixes() -> list[str]:
    """Every prefix :func:`get_model` resolves (built-in, registered, entry points)."""
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(entry_point_targets(_ENTRY_POINT_GROUP)))


def _known_specs() -> list[str]:
    return [f"{p}:MODEL" if p in _NEEDS_MODEL else p for p in available_model_prefixes()]


def get_model(spec: str | Model) -> Model:
    """Resolve a spec such as ``"openai:gpt-4o-mini"`` (a :class:`Model` passes through).

    Raises :class:`~ensemble.errors.UnknownNameError` listing the known prefixes for an
    unknown one.
    """
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInputError(
            f"a model must be a Model or a spec string like 'openai:gpt-4o-mini', not {spec!r}"
        )
    prefix, colon, rest = spec.strip().partition(":")
    arg = rest if colon else None
    factory: Callable[..., Model] | None = _REGISTERED.get(prefix)
    if factory is None and prefix in _BUILTIN:
        if prefix in _NEEDS_MODEL and not arg:
            raise ConfigurationError(
                f"model spec {spec!r} needs a model name, e.g. '{prefix}:MODEL'"
            )
        factory = load_target(_BUILTIN[prefix])
    if factory is None:
        eps = entry_point_targets(_ENTRY_POINT_GROUP)
        if prefix in eps:
            factory = load_target(eps[prefix])
    if factory is None:
        raise UnknownNameError("model", spec, _known_specs())
    model = factory(arg)
    if not isinstance(model, Model):
        raise InvalidInputError(f"the factory for model prefix {prefix!r} did not return a Model")
    return model
