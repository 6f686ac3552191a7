"""Models that score windows: the :class:`Detector` protocol and its implementations.

Submodules not imported here (they import more): ``registry`` (signed artifacts), ``onnx_model`` (ONNX
scoring), ``train`` (needs the ``train`` extra), ``gate`` (validation before promotion).
"""
from __future__ import annotations

from aiotstream.models.detector import Detector, LabelLearner
from aiotstream.models.online import (
           DRIFT_DETECTORS,
           DriftWatch,
           FeatureDrift,
           HalfSpaceTreesDetector,
           ZScoreDetector,
           make_detector,
           make_drift_detector,
)

__all__ = ["DRIFT_DETECTORS", "Detector", "DriftWatch", "FeatureDrift", "HalfSpaceTreesDetector",
           "LabelLearner",
           "ZScoreDetector", "make_detector", "make_drift_detector"]
