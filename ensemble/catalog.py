"""Who the models are: :class:`ModelCard` (one model) and :class:`Catalog` (many).

A card says what a model is (a description a person or a controller can read), which
**family** of weights it belongs to, when it was released, what it costs (USD per million
input and output tokens) and how to talk to it (``mode="completion"`` for base models). The
library uses cards for:

* independence weighting: under ``weighting="model"`` each *family* has one vote, so two names
  served by the same weights (``"local"`` and ``"local:smollm2-135m"``) are one witness;
* the uniformity alarm: lock-step agreement is suspicious *across* families, expected within;
* escalation: :meth:`ensemble.Tier.from_catalog` draws a tier's models from a catalog by
  age, family and price;
* :class:`~ensemble.LocalModel`, which reads the prompt mode and stop sequences of its
  built-in weights from their card.

The default catalog (:func:`default_catalog`) holds the built-in cards of the local models,
every card that installed packages publish through the entry-point group
``ensemble.catalog`` (each entry point names a callable returning an iterable of
:class:`ModelCard`), and the cards added with :func:`register_card`. A catalog file is TOML or
JSON (``docs/catalog.md``); a bad one raises :class:`~ensemble.errors.CatalogError` naming
the file, the line and the field.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ensemble._registry import entry_point_targets, load_target
from ensemble._validate import as_path, check_number
from ensemble.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from ensemble.models.base import Model

__all__ = [
    "Catalog",
    "CatalogError",
    "ModelCard",
    "default_catalog",
    "family_of",
    "register_card",
]

_ENTRY_POINT_GROUP = "ensemble.catalog"
_FIELDS = (
    "model",
    "description",
    "family",
    "released",
    "price_in",
    "price_out",
    "tags",
    "mode",
    "stop",
    "prompt_template",
)


class CatalogError(InvalidInputError):
    """A catalog file or entry that cannot be read; the message names the line and field."""


def _release_date(value: object, what: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigurationError(f"{what}: released must be a date (YYYY-MM-DD), not {value!r}")


def _price(value: object, name: str, what: str) -> float | None:
    if value is None:
        return None
    try:  # check_number also refuses a huge int (on which math.isfinite raises OverflowError)
        return check_number(name, value, low=0.0)
    except ConfigurationError:
        raise ConfigurationError(
            f"{what}: {name} must be a number >= 0 (USD per million tokens), not {value!r}"
        ) from None


def _strings(value: object, name: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(f"{what}: {name} must be a list of strings, not {value!r}")
    out = tuple(value)
    if not all(isinstance(x, str) and x for x in out):
        raise ConfigurationError(f"{what}: {name} must be a list of non-empty strings")
    return out


@dataclass(frozen=True, init=False)
class ModelCard:
    """What the library knows about one model.

    ``model`` is a :class:`~ensemble.models.Model` or a model spec such as
    ``"openai:gpt-4o-mini"`` (resolved only by :meth:`resolve`); ``name`` is the model's
    name (``model.name``, or the spec itself), the key under which samples find their card.
    ``family`` names the weights' lineage (default: the name itself, i.e. a family of one);
    ``released`` is a date; ``price_in`` / ``price_out`` are USD per million input / output
    tokens; ``tags`` are free labels (``"base"``, ``"local"``, ``"cheap"``). ``mode``,
    ``stop`` and ``prompt_template`` say how to prompt it (``"completion"`` for base models;
    see :class:`~ensemble.OpenAIModel`).
    """

    model: Model | str
    description: str
    family: str
    released: dt.date | None
    price_in: float | None
    price_out: float | None
    tags: tuple[str, ...]
    mode: Literal["chat", "completion"]
    stop: tuple[str, ...]
    prompt_template: str | None
    name: str = field(compare=True)

    def __init__(
        self,
        model: Model | str,
        description: str,
        *,
        family: str | None = None,
        released: dt.date | str | None = None,
        price_in: float | None = None,
        price_out: float | None = None,
        tags: Iterable[str] = (),
        mode: Literal["chat", "completion"] = "chat",
        stop: Iterable[str] = (),
        prompt_template: str | None = None,
    ) -> None:
        from ensemble.models.base import Model

        if isinstance(model, Model):
            name = model.name
        elif isinstance(model, str) and model.strip():
            name = model.strip()
        else:
            raise ConfigurationError(
                f"ModelCard: model must be a Model or a model spec string, not {model!r}"
            )
        what = f"ModelCard {name!r}"
        if not isinstance(description, str) or not description.strip():
            raise ConfigurationError(f"{what}: description must be a non-empty string")
        if family is not None and (not isinstance(family, str) or not family.strip()):
            raise ConfigurationError(f"{what}: family must be a non-empty string or None")
        if mode not in ("chat", "completion"):
            raise ConfigurationError(f"{what}: mode must be 'chat' or 'completion', not {mode!r}")
        if prompt_template is not None and (
            not isinstance(prompt_template, str) or "{prompt}" not in prompt_template
        ):
            raise ConfigurationError(f"{what}: prompt_template must contain '{{prompt}}'")
        values = {
            "model": model if isinstance(model, Model) else name,
            "description": description.strip(),
            "family": family.strip() if family is not None else name,
            "released": _release_date(released, what),
            "price_in": _price(price_in, "price_in", what),
            "price_out": _price(price_out, "price_out", what),
            "tags": _strings(tags, "tags", what),
            "mode": mode,
            "stop": _strings(stop, "stop", what),
            "prompt_template": prompt_template,
            "name": name,
        }
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def resolve(self) -> Model:
        """The model itself (a spec is resolved with :func:`ensemble.get_model`)."""
        from ensemble.models import get_model

        return get_model(self.model)

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        """USD for that many tokens, or ``None`` when a needed price is unknown."""
        total = 0.0
        for tokens, price in ((input_tokens, self.price_in), (output_tokens, self.price_out)):
            if tokens:
                if price is None:
                    return None
                total += tokens * price / 1e6
        return total

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data (the model as its name), as read by
        :meth:`Catalog.from_dict`."""
        out: dict[str, Any] = {"model": self.name, "description": self.description}
        if self.family != self.name:
            out["family"] = self.family
        if self.released is not None:
            out["released"] = self.released.isoformat()
        for key in ("price_in", "price_out"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.tags:
            out["tags"] = list(self.tags)
        if self.mode != "chat":
            out["mode"] = self.mode
        if self.stop:
            out["stop"] = list(self.stop)
        if self.prompt_template is not None:
            out["prompt_template"] = self.prompt_template
        return out

    def __repr__(self) -> str:
        return f"ModelCard({self.name!r}, family={self.family!r}, released={self.released})"


SortKey = Literal["released", "price", "name"]


class Catalog:
    """A set of :class:`ModelCard` objects, one per model name.

    ``Catalog([...cards])``; :meth:`from_file` reads TOML or JSON. Look up with
    ``catalog["name"]``, :meth:`get`, ``"name" in catalog``; iterate in name order.
    :meth:`family` maps a model name to its family (an unknown name is its own family);
    :meth:`select` filters by family, tags, age and price.
    """

    def __init__(self, cards: Iterable[ModelCard] = ()) -> None:
        self._cards: dict[str, ModelCard] = {}
        self._lock = threading.Lock()
        for card in cards:
            self.add(card)

    # --- building ----------------------------------------------------------------------------

    def add(self, card: ModelCard, *, replace: bool = False) -> None:
        """Add ``card`` (a second card for the same name needs ``replace=True``)."""
        if not isinstance(card, ModelCard):
            raise ConfigurationError(f"a Catalog holds ModelCard objects, not {card!r}")
        with self._lock:
            if not replace and card.name in self._cards:
                raise ConfigurationError(f"the catalog already has a card for {card.name!r}")
            self._cards[card.name] = card

    def merged(self, other: Iterable[ModelCard]) -> Catalog:
        """A new catalog with this one's cards and ``other``'s (``other`` wins on a name)."""
        out = Catalog(self.as_given())
        for card in other:
            out.add(card, replace=True)
        return out

    @classmethod
    def from_dict(cls, data: object, *, source: str = "<data>") -> Catalog:
        """A catalog from ``{"model": [card, ...]}`` (or ``"models"``, or a bare list)."""
        return cls(_cards_from_data(data, source, None))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Catalog:
        """Read a ``.toml`` or ``.json`` catalog file (see ``docs/catalog.md``).

        Raises :class:`CatalogError` naming the file, line and field of what is wrong.
        """
        try:
            p = as_path("catalog file", path)
        except ConfigurationError as exc:
            raise CatalogError(str(exc)) from None
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"cannot read the catalog file {str(p)!r}: {exc}") from None
        suffix = p.suffix.lower()
        if suffix == ".toml":
            data = _load_toml(text, str(p))
        elif suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CatalogError(
                    f"{p}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
                ) from None
        else:
            raise CatalogError(f"{p}: a catalog file ends in .toml or .json")
        return cls(_cards_from_data(data, str(p), _Locator(text, suffix)))

    def to_dict(self) -> dict[str, Any]:
        return {"model": [card.to_dict() for card in self]}

    # --- reading -----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[ModelCard]:
        with self._lock:
            cards = sorted(self._cards.values(), key=lambda c: c.name)
        return iter(cards)

    def as_given(self) -> tuple[ModelCard, ...]:
        """The cards in the order they were given: the order of ``Catalog([...])`` and of
        :meth:`add` calls, a file's order; a replaced card keeps its place. (Iterating goes in
        name order.) The controller's ranking keeps this order among cards that tie."""
        with self._lock:
            return tuple(self._cards.values())

    def __len__(self) -> int:
        return len(self._cards)

    def __contains__(self, name: object) -> bool:
        return name in self._cards

    def __getitem__(self, name: str) -> ModelCard:
        try:
            return self._cards[name]
        except KeyError:
            from ensemble.errors import UnknownNameError

            raise UnknownNameError("model card", name, sorted(self._cards)) from None

    def get(self, name: str | None) -> ModelCard | None:
        return None if name is None else self._cards.get(name)

    def family(self, name: str) -> str:
        """The family of the model called ``name`` (its own name when it has no card)."""
        card = self._cards.get(name)
        return card.family if card is not None else name

    def families(self) -> dict[str, tuple[str, ...]]:
        """``{family: (model names...)}`` over the catalog."""
        out: dict[str, list[str]] = {}
        for card in self:
            out.setdefault(card.family, []).append(card.name)
        return {f: tuple(names) for f, names in sorted(out.items())}

    def select(
        self,
        *,
        family: str | Sequence[str] | None = None,
        exclude_family: str | Sequence[str] = (),
        tags: Sequence[str] = (),
        released_before: dt.date | str | None = None,
        released_after: dt.date | str | None = None,
        max_price: float | None = None,
        sort: SortKey = "released",
        one_per_family: bool = False,
        limit: int | None = None,
    ) -> list[ModelCard]:
        """The cards that match every filter given, in ``sort`` order.

        ``family``: one family or several; ``exclude_family``: families to leave out;
        ``tags``: cards carrying all of them; ``released_before`` / ``released_after``:
        release dates strictly before / after (cards without a date never match these);
        ``max_price``: ``price_in + price_out`` at most this (unknown prices never match;
        the local models are free: 0). ``sort``: ``"released"`` (oldest first, undated last),
        ``"price"`` (cheapest first, unknown last) or ``"name"``. ``one_per_family`` keeps the
        first card of each family in that order; ``limit`` keeps the first ``limit``.
        """
        fams = {family} if isinstance(family, str) else set(family or ())
        excl = {exclude_family} if isinstance(exclude_family, str) else set(exclude_family)
        before = _release_date(released_before, "select")
        after = _release_date(released_after, "select")
        if sort not in ("released", "price", "name"):
            raise ConfigurationError(f"sort must be 'released', 'price' or 'name', not {sort!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigurationError("limit must be an integer or None")
        out = []
        for card in self:
            if fams and card.family not in fams:
                continue
            if card.family in excl:
                continue
            if not set(tags) <= set(card.tags):
                continue
            if before is not None and (card.released is None or card.released >= before):
                continue
            if after is not None and (card.released is None or card.released <= after):
                continue
            if max_price is not None:
                price = _total_price(card)
                if price is None or price > max_price:
                    continue
            out.append(card)
        if sort == "released":
            out.sort(key=lambda c: (c.released is None, c.released or dt.date.min, c.name))
        elif sort == "price":
            out.sort(key=lambda c: (_total_price(c) is None, _total_price(c) or 0.0, c.name))
        if one_per_family:
            seen: set[str] = set()
            kept = []
            for card in out:
                if card.family not in seen:
                    seen.add(card.family)
                    kept.append(card)
            out = kept
        return out if limit is None else out[:limit]

    def __repr__(self) -> str:
        return f"Catalog({len(self)} cards: {', '.join(c.name for c in self)})"


def _total_price(card: ModelCard) -> float | None:
    if card.price_in is None or card.price_out is None:
        return None
    return card.price_in + card.price_out


# --- files -----------------------------------------------------------------------------------


def _load_toml(text: str, source: str) -> object:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            raise CatalogError(
                f"{source}: reading TOML on Python 3.10 needs 'tomli' (pip install tomli); "
                "or write the catalog as JSON"
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends in "(at line L, column C)".
        raise CatalogError(f"{source}: not valid TOML: {exc}") from None


class _Locator:
    """Best-effort line numbers of each card and its fields in a catalog file's text."""

    def __init__(self, text: str, suffix: str) -> None:
        self.lines = text.splitlines()
        self.starts: list[int] = []
        if suffix == ".toml":
            header = re.compile(r"^\s*\[\[\s*(?:model|models)\s*\]\]")
            self.starts = [i for i, line in enumerate(self.lines) if header.match(line)]
        else:
            self.starts = _json_object_lines(text)
        self.toml = suffix == ".toml"

    def line(self, index: int, key: str | None) -> int | None:
        if index >= len(self.starts):
            return None
        start = self.starts[index]
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.lines)
        if key is not None:
            pat = (
                re.compile(rf"^\s*{re.escape(key)}\s*=")
                if self.toml
                else re.compile(rf'"{re.escape(key)}"\s*:')
            )
            for i in range(start, end):
                if pat.search(self.lines[i]):
                    return i + 1
        return start + 1


def _json_object_lines(text: str) -> list[int]:
    """0-based lines where each card object opens (depth 1 in a list, 2 under a key)."""
    out: list[int] = []
    depth, line, in_str, esc = 0, 0, False, False
    target: int | None = None
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if ch == "[" and target is None:
                target = depth + 1
            elif ch == "{" and depth == target:
                out.append(line)
        elif ch in "]}":
            depth -= 1
    return out


def _cards_from_data(data: object, source: str, where: _Locator | None) -> list[ModelCard]:
    if isinstance(data, Mapping):
        keys = [k for k in ("model", "models") if k in data]
        if len(keys) != 1 or set(data) - {"model", "models", "version"}:
            raise CatalogError(
                f"{source}: a catalog has one list of cards under 'model' "
                f"(TOML: [[model]] tables), found keys {sorted(data)}"
            )
        entries = data[keys[0]]
    else:
        entries = data
    if not isinstance(entries, list):
        raise CatalogError(f"{source}: the cards must be a list, not {type(entries).__name__}")
    cards: list[ModelCard] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):

        def fail(key: str | None, why: str, index: int = index) -> CatalogError:
            line = where.line(index, key) if where is not None else None
            at = f"line {line}, " if line is not None else ""
            fld = f"field {key!r}" if key is not None else "the card"
            return CatalogError(f"{source}: {at}card {index + 1}, {fld}: {why}")

        if not isinstance(entry, Mapping):
            raise fail(None, f"a card is a table of fields, not {type(entry).__name__}")
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise fail(unknown[0], f"unknown field (known: {', '.join(_FIELDS)})")
        for key in ("model", "description"):
            if key not in entry:
                raise fail(None, f"the field {key!r} is missing")
        kwargs = dict(entry)
        try:
            card = ModelCard(kwargs.pop("model"), kwargs.pop("description"), **kwargs)
        except ConfigurationError as exc:
            # The message starts with the card's name, which may contain a field's name too:
            # look for the field only in what follows it.
            why = str(exc).split(": ", 1)[-1]
            bad = next((k for k in _FIELDS if re.search(rf"\b{k}\b", why)), None)
            raise fail(bad, why) from None
        except TypeError as exc:
            raise fail(None, str(exc)) from None
        if card.name in names:
            raise fail("model", f"a second card for {card.name!r}")
        names.add(card.name)
        cards.append(card)
    return cards


# --- the built-in cards and the default catalog ----------------------------------------------

#: Stop at the end of the answer's line: the base model otherwise invents the next question.
GEMMA_STOP = ("\n",)


def _smollm2_card(name: str, more: str) -> ModelCard:
    """A card of the SmolLM2-135M weights the local adapter serves: ``"local"`` and
    ``"local:smollm2-135m"`` are two names of one model (one family, one witness), so
    their cards differ only in the end of the description, ``more``."""
    return ModelCard(
        name,
        "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), Q4_1 GGUF, on llama.cpp on this "
        f"machine{more}",
        family="smollm2-135m",
        released="2024-11-01",
        price_in=0.0,
        price_out=0.0,
        tags=("local", "instruct", "small"),
    )


BUILTIN_CARDS: tuple[ModelCard, ...] = (
    _smollm2_card("local", ": tiny, fast, often wrong on facts; the default local model."),
    _smollm2_card("local:smollm2-135m", " (the same weights as 'local')."),
    ModelCard(
        "local:gemma3-270m",
        "Gemma-3-270M base model (Google, Gemma terms of use), Q4_K_M GGUF, on llama.cpp on "
        "this machine, prompted through completions with a few-shot template: small, a "
        "different family from SmolLM2, making different mistakes.",
        family="gemma3-270m",
        released="2025-08-14",
        price_in=0.0,
        price_out=0.0,
        tags=("local", "base", "small"),
        mode="completion",
        stop=GEMMA_STOP,
    ),
)

_default: Catalog | None = None
_default_lock = threading.Lock()


def _entry_point_cards() -> list[ModelCard]:
    cards: list[ModelCard] = []
    for name, target in sorted(entry_point_targets(_ENTRY_POINT_GROUP).items()):
        try:
            produced = load_target(target)()
            got = list(produced)
        except Exception as exc:
            raise CatalogError(
                f"the {_ENTRY_POINT_GROUP} entry point {name!r} ({target}) failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for card in got:
            if not isinstance(card, ModelCard):
                raise CatalogError(
                    f"the {_ENTRY_POINT_GROUP} entry point {name!r} returned {card!r}, "
                    "not a ModelCard"
                )
            cards.append(card)
    return cards


def default_catalog() -> Catalog:
    """The process-wide catalog: built-in cards, entry-point cards, registered cards (later
    ones win on a name). Built once, on first use; :func:`register_card` adds to it."""
    global _default
    with _default_lock:
        if _default is None:
            catalog = Catalog(BUILTIN_CARDS)
            for card in _entry_point_cards():
                catalog.add(card, replace=True)
            _default = catalog
        return _default


def register_card(card: ModelCard, *, replace: bool = False) -> None:
    """Add ``card`` to the default catalog (``replace=True`` to override a card)."""
    default_catalog().add(card, replace=replace)


def family_of(model: Model) -> str | None:
    """The family of ``model``: its own ``family`` attribute when it has one (a
    :class:`~ensemble.LocalModel` knows its weights), else its card's in the default catalog,
    else ``None`` (then the model's name stands for its family)."""
    own = getattr(model, "family", None)
    if isinstance(own, str) and own:
        return own
    card = default_catalog().get(model.name)
    return card.family if card is not None else None
