"""Agreement diagnostics: who agrees with whom, and an alarm for suspicious uniformity.

Everything here is pure computation on samples and an agreement matrix; the consensus engine
calls it so that every :class:`~ensemble.Consensus` carries the results. The one exception is
:class:`BaselineStore`, which reads a JSON file when it is created and writes it in
:meth:`BaselineStore.save`; the engine only ever *reads* a baseline.

Three ideas (``docs/diagnostics.md`` has the long version), one private file each:

* ``_breakdown.py``: the agreement breakdown (within and between models and families) and the
  independent weighting of families;
* ``_alarm.py``: :class:`UniformityAlarm`, the rare strings and the checks it runs;
* ``_baseline.py``: :class:`AgreementBaseline` and :class:`BaselineStore` (the file I/O).
"""

from __future__ import annotations

from ensemble.diagnostics._alarm import DEFAULT_ALARM as DEFAULT_ALARM
from ensemble.diagnostics._alarm import UniformityAlarm
from ensemble.diagnostics._alarm import rare_strings as rare_strings
from ensemble.diagnostics._baseline import AgreementBaseline, BaselineStore
from ensemble.diagnostics._breakdown import INTRA_FAMILY_WEIGHT as INTRA_FAMILY_WEIGHT
from ensemble.diagnostics._breakdown import UNNAMED as UNNAMED
from ensemble.diagnostics._breakdown import PairAgreement as PairAgreement
from ensemble.diagnostics._breakdown import agreement_breakdown as agreement_breakdown
from ensemble.diagnostics._breakdown import family_key as family_key
from ensemble.diagnostics._breakdown import family_mean_agreement as family_mean_agreement
from ensemble.diagnostics._breakdown import independence_weights as independence_weights
from ensemble.diagnostics._breakdown import model_support as model_support

__all__ = ["AgreementBaseline", "BaselineStore", "UniformityAlarm"]
