"""Calibration: turn a metric's raw confidence into the probability that a span is accurate.

A metric's confidence orders spans (higher = better supported) but its value is not a
probability: an ``ngram`` confidence of 0.6 does not mean that six spans in ten with that
score are right. A :class:`Calibrator` is a monotone map, fitted on labelled spans, from raw
confidence to P(span accurate)::

    cal = Calibrator.fit(raw_confidences, labels, method="isotonic", metric=metric.info)
    cal.save("my_calibration.json")
    result = ensemble.score(text=..., samples=..., metric="ngram", calibration=cal)

One private file per idea:

* ``_fit.py``: the fits (:func:`pav`, :func:`isotonic_reference`, :func:`fit_logistic`);
* ``_calibrator.py``: :class:`Calibrator` and :func:`expected_calibration_error`;
* ``_packaged.py``: the calibrations that ship with the package (:func:`packaged_calibrations`,
  :func:`load_calibration`).
"""

from __future__ import annotations

from ensemble.calibration._calibrator import CalibrationMethod as CalibrationMethod
from ensemble.calibration._calibrator import Calibrator, expected_calibration_error
from ensemble.calibration._fit import FloatArray as FloatArray
from ensemble.calibration._fit import fit_logistic as fit_logistic
from ensemble.calibration._fit import isotonic_reference as isotonic_reference
from ensemble.calibration._fit import pav as pav
from ensemble.calibration._packaged import CALIBRATIONS as CALIBRATIONS
from ensemble.calibration._packaged import load_calibration as load_calibration
from ensemble.calibration._packaged import packaged_calibrations

__all__ = ["Calibrator", "expected_calibration_error", "packaged_calibrations"]
