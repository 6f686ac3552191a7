"""Models that score windows: the :class:`Detector` protocol and its implementations."""
from __future__ import annotations

from aiotstream.models.online import (
    Detector,
    DriftWatch,
    HalfSpaceTreesDetector,
    LabelLearner,
    ZScoreDetector,
    make_detector,
)

__all__ = ["Detector", "DriftWatch", "HalfSpaceTreesDetector", "LabelLearner", "ZScoreDetector", "make_detector"]
