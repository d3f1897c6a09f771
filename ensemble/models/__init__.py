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

from ensemble._registry import Registry
from ensemble.errors import InvalidInputError
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

MODELS: Registry[Model] = Registry(
    "model",
    product=Model,
    builtin={
        "anthropic": "ensemble.models.anthropic:AnthropicModel",
        "local": "ensemble.models.local:from_spec",
        "openai": "ensemble.models.openai:OpenAIModel",
    },
    group="ensemble.models",
    specs=True,
    needs_arg=("anthropic", "openai"),  # "openai" alone names no model
    arg_label="MODEL",
)


def register_model(prefix: str, factory: ModelFactory, *, replace: bool = False) -> None:
    """Make ``get_model("PREFIX:REST")`` return ``factory("REST")`` (``factory(None)`` for
    a bare ``"PREFIX"``)."""
    MODELS.register(prefix, factory, replace=replace)


def available_model_prefixes() -> list[str]:
    """Every prefix :func:`get_model` resolves (built-in, registered, entry points)."""
    return MODELS.names()


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
    return MODELS.resolve(spec)
