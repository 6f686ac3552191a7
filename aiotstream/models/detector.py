"""The protocols every model that scores windows follows, online or offline.

:class:`Detector` is what the flow asks of a window scorer: score a feature row in [0, 1], say whether it
is warm, explain a score. The online detectors (:mod:`aiotstream.models.online`: z-score, River's
HalfSpaceTrees) learn as they score; an ONNX model (:class:`aiotstream.models.onnx_model.OnnxModel`) is
trained offline, so it is always warm, never learns from what it scores and explains nothing (the
flow's z-score baseline explains its alerts). :class:`BatchDetector` adds scoring many rows in one call,
which the flow's :class:`~aiotstream.models.scoring.ScoreBatcher` uses for ONNX models.
:class:`LabelLearner` is the optional part for detectors that learn from an operator's label.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    """What a window scorer offers to the flow."""

    name: str
    version: str

    @property
    def warm(self) -> bool: ...

    def score_learn(self, x: np.ndarray) -> float:
        """Score one feature row in [0, 1] (0 while warming up), then learn from it if it looks normal."""
        ...

    def explain(self, x: np.ndarray, k: int = 3) -> list[dict]:
        """The k features that deviate most from the baseline, with values and baseline ranges."""
        ...


@runtime_checkable
class LabelLearner(Protocol):
    """A detector that can learn from an operator's label of an alert (optional, next to :class:`Detector`).

    ``x`` is the feature row of the window that opened the alert. A
    ``false_alarm`` label (``is_fault`` False) teaches the detector that the
    row is normal; what a ``true_fault`` label does is up to the detector.
    Returns whether the model changed.
    """

    def learn_label(self, x: np.ndarray, is_fault: bool) -> bool: ...


@runtime_checkable
class BatchDetector(Detector, Protocol):
    """A detector that also scores a batch: ``(n, k)`` rows -> ``(n,)`` scores in [0, 1], without learning."""

    def score(self, rows: np.ndarray) -> np.ndarray: ...
