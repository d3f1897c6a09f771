"""The calibrations that ship with the package: a name -> file registry over ``ensemble/data``
(read with :mod:`importlib.resources`, so the files' place does not depend on this module's).


A calibration fitted on the SelfCheckGPT WikiBio dev split ships with the package as
``"ngram-wikibio"``: ``Calibrator.load("ngram-wikibio")``. See ``docs/calibration.md`` for the
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ensemble._registry import Registry
from ensemble.calibration._calibrator import Calibrator
from ensemble.errors import InvalidInputError

#: Calibrations that ship with the package: name -> file in ``ensemble/data``.
_PACKAGED: dict[str, str] = {"ngram-wikibio": "ngram_wikibio_dev.json"}


def _packaged(filename: str) -> Callable[[], Calibrator]:
    def load() -> Calibrator:
        ref = resources.files("ensemble") / "data" / filename
        return Calibrator.from_json(ref.read_text(encoding="utf-8"))

    return load


#: Calibrations that ship with the package (files in ``ensemble/data``).
CALIBRATIONS: Registry[Calibrator] = Registry(
    "calibration",
    product=Calibrator,
    builtin={name: _packaged(file) for name, file in _PACKAGED.items()},
    hint="or give the path of a calibration JSON file (no such file exists)",
)


def packaged_calibrations() -> list[str]:
    """Names of the calibrations that ship with the package."""
    return CALIBRATIONS.names()


def load_calibration(calibration: Calibrator | str | Path | None) -> Calibrator | None:
    """Resolve what users pass as ``calibration=``: a calibrator, a packaged name or a path."""
    if calibration is None or isinstance(calibration, Calibrator):
        return calibration
    if isinstance(calibration, (str, Path)):
        return Calibrator.load(calibration)
    raise InvalidInputError(
        "calibration must be a Calibrator, the name of a packaged calibration or a path to a "
        f"calibration JSON file, not {type(calibration).__name__}"
    )
