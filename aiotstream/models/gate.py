"""Validation gate: a candidate model must reach a metric on held-out labelled windows before promotion.

:func:`labelled_rows` makes the held-out set from the simulator: faults are injected on some assets, the
windows go through the flow's own feature pipeline (:func:`aiotstream.models.train.window_rows`) and a
window is labelled faulty (1) when it overlaps an injected fault after its onset. :func:`validate` scores
the rows and compares the metric with the threshold; the :class:`GateResult` says why it passed or not.

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiotstream.config import SiteConfig
from aiotstream.errors import ModelError

__all__ = ["METRICS", "GateResult", "auc", "average_precision", "labelled_rows", "recall_at_precision", "validate"]


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
        return {"passed": self.passed, "metric": self.metric, "value": self.value, "threshold": self.threshold,
                "reason": self.reason, "model": self.model, "n": self.n, "n_faulty": self.n_faulty}


def labelled_rows(cfg: SiteConfig, *, assets: int | None = None, duration_s: float = 60.0,
                  faults: int | Sequence[Any] = 3, seed: int = 1, warmup_s: float | None = None,
                  fault_kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Held-out labelled windows ``(X, y)`` from the simulator: ``X`` (n, k) feature rows in the flow's column
    order (NaN where a feature is missing), ``y`` (n,) 1 for windows that overlap an injected fault after its
    onset. ``faults`` is a count (placed by the simulator on distinct assets, onsets after ``warmup_s``) or
    a list of :class:`~aiotstream.simulator.Fault`. Use a ``seed`` other than the training one."""
    from aiotstream.models.train import training_config, window_rows
    from aiotstream.simulator import FAULT_KINDS, PlantSimulator

    tcfg = training_config(cfg, assets)
    kw: dict[str, Any] = {"duration_s": duration_s, "seed": seed}
    if warmup_s is None:
        warmup_s = min(20.0, max(0.0, duration_s - 20.0))
    kw["warmup_s"] = warmup_s
    if isinstance(faults, int):
        kw["n_faults"] = faults
        kw["fault_kinds"] = tuple(fault_kinds or FAULT_KINDS)
    else:
        kw["faults"] = list(faults)
    sim = PlantSimulator(tcfg.all_assets(), **kw)
    rows = window_rows(tcfg, sim)
    y = np.zeros(len(rows.assets), dtype=np.int8)
    asset_arr = np.asarray(rows.assets)
    for f in sim.faults:
        end = np.iinfo(np.int64).max if f.end_ns is None else f.end_ns
        y[(asset_arr == f.asset) & (rows.end_ns > f.onset_ns) & (rows.start_ns < end)] = 1
    return rows.X, y


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
                          f"refused {name}: the held-out set has {n_pos} faulty of {n} windows; the gate needs both "
                          "faulty and healthy windows to judge a model", name, n, n_pos)
    scores = np.asarray(model.score(np.asarray(X)), dtype=np.float64)
    if metric == "auc":
        value, label = auc(scores, yb), "auc"
    elif metric == "average_precision":
        value, label = average_precision(scores, yb), "average precision"
    else:
        value, label = recall_at_precision(scores, yb, precision), f"recall at precision >= {precision:g}"
    where = f"on {n} held-out windows ({n_pos} faulty)"
    if value >= threshold:
        return GateResult(True, metric, value, threshold, f"passed {name}: {label} {value:.4f} >= {threshold:g} "
                          f"{where}", name, n, n_pos)
    return GateResult(False, metric, value, threshold, f"refused {name}: {label} {value:.4f} is below the "
                      f"threshold {threshold:g} {where}", name, n, n_pos)
