"""Validation gate: a candidate model must reach a metric on held-out labelled windows before promotion.

:func:`aiotstream.pdm.training.labelled_rows` makes the held-out set from the simulator, through the flow's
own feature pipeline (this module imports nothing of the flow). :func:`validate` scores the rows and compares
the metric with the threshold; the :class:`GateResult` says why it passed or not.

Metrics (pure numpy, no scikit-learn at run time):

* ``auc``: ROC AUC (ties count half), the probability that a faulty window outscores a healthy one;
* ``average_precision``: the area under the precision-recall curve (step-wise, as scikit-learn);
* ``recall_at_precision``: the highest recall reachable at a score threshold whose precision is at least
  ``precision`` (default 0.9).

>>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
0.75
>>> recall_at_precision(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), 0.9)
0.5
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aiotstream.errors import ModelError

__all__ = ["METRICS", "GateResult", "auc", "average_precision", "recall_at_precision", "validate"]


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    metric: str
    value: float
    threshold: float
    reason: str
    model: str = ""
    n: int = 0
    n_faulty: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "metric": self.metric, "value": self.value,
                "threshold": self.threshold,
                "reason": self.reason, "model": self.model, "n": self.n, "n_faulty": self.n_faulty}


# ---- metrics ---------------------------------------------------------------------------------------------
def _check(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    y = np.asarray(y).reshape(-1).astype(bool)
    if s.shape != y.shape:
        raise ModelError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    return s, y


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties averaged."""
    s, yb = _check(scores, y)
    n_pos, n_neg = int(yb.sum()), int((~yb).sum())
    if n_pos == 0 or n_neg == 0:
        raise ModelError("AUC needs faulty and healthy windows")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[yb].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _pr_curve(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, yb = _check(scores, y)
    if not yb.any():
        raise ModelError("precision/recall need faulty windows")
    order = np.argsort(-s, kind="mergesort")
    s, yb = s[order], yb[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # one point per distinct threshold
    tp = np.cumsum(yb)[last]
    fp = (last + 1) - tp
    return tp / (tp + fp), tp / yb.sum()


def average_precision(scores: np.ndarray, y: np.ndarray) -> float:
    precision, recall = _pr_curve(scores, y)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def recall_at_precision(scores: np.ndarray, y: np.ndarray, precision: float = 0.9) -> float:
    p, r = _pr_curve(scores, y)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


METRICS = ("auc", "average_precision", "recall_at_precision")


def validate(model: Any, X: np.ndarray, y: np.ndarray, metric: str = "auc", threshold: float = 0.9,
             *, precision: float = 0.9) -> GateResult:
    """Score ``X`` with ``model`` (anything with ``score(rows) -> scores``, e.g. an
    :class:`~aiotstream.models.onnx_model.OnnxModel`) and pass it when ``metric >= threshold``."""
    if metric not in METRICS:
        raise ModelError(f"unknown gate metric {metric!r}: use one of {', '.join(METRICS)}")
    name = f"{getattr(model, 'name', '?')}/{getattr(model, 'version', '?')}"
    yb = np.asarray(y).reshape(-1).astype(bool)
    n, n_pos = int(yb.size), int(yb.sum())
    if n_pos == 0 or n_pos == n:
        return GateResult(False, metric, float("nan"), threshold,
                          f"refused {name}: the held-out set has {n_pos} faulty of {n} windows; the gate "
                          "needs both faulty and healthy windows to judge a model", name, n, n_pos)
    scores = np.asarray(model.score(np.asarray(X)), dtype=np.float64)
    if metric == "auc":
        value, label = auc(scores, yb), "auc"
    elif metric == "average_precision":
        value, label = average_precision(scores, yb), "average precision"
    else:
        value, label = recall_at_precision(scores, yb, precision), f"recall at precision >= {precision:g}"
    where = f"on {n} held-out windows ({n_pos} faulty)"
    if value >= threshold:
        return GateResult(True, metric, value, threshold,
                          f"passed {name}: {label} {value:.4f} >= {threshold:g} {where}", name, n, n_pos)
    return GateResult(False, metric, value, threshold, f"refused {name}: {label} {value:.4f} is below the "
                      f"threshold {threshold:g} {where}", name, n, n_pos)
