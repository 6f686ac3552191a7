"""Per-zone energy baseline: River online linear regression of an interval's mean power, drift watch on the
residual.

The target is the interval's mean power in kW (better scaled for SGD than
kWh); the baseline kWh of an interval is that times the interval length.

The features of an interval are the outdoor temperature (and its heating and
cooling degrees against 18 / 24 degC), the zone temperature, the time of day
(sine and cosine), the mean occupancy and the occupied fraction; they are
standardised online (``preprocessing.StandardScaler``) before an SGD linear
regression (``linear_model.LinearRegression``). The model predicts first,
then learns, so a prediction never saw its own interval. It counts as a
baseline once it has learned ``warmup_intervals`` intervals; the zone does not
let it learn intervals in which a waste alert is open (the baseline is what
the zone uses when it runs well). A River drift detector (ADWIN by default)
watches the residual ``actual - baseline``.

>>> b = Baseline(warmup=5, learning_rate=0.05)
>>> x = {"outdoor": 10.0, "hdd": 8.0, "cdd": 0.0, "zone_temp": 21.0, "tod_sin": 0.0, "tod_cos": 1.0,
...      "occupancy": 0.0, "occupied": 0.0}
>>> b.predict(x) is None  # warming up
True
>>> for _ in range(300):
...     b.learn(x, 2.5)
>>> round(b.predict(x), 2)  # warm now; a constant target is learned
2.5
"""
from __future__ import annotations

import math

from aiotstream.energy.waste import IntervalSummary
from aiotstream.models.online import DriftWatch

FEATURES = ("outdoor", "hdd", "cdd", "zone_temp", "tod_sin", "tod_cos", "occupancy", "occupied")


def features(s: IntervalSummary, hour: float, last: dict[str, float] | None = None) -> dict[str, float]:
    """The model's inputs for one interval; a meter without readings in it keeps its last value (or 0).

    >>> f = features(IntervalSummary("z", 0, 1, temp_n=1, temp_sum=20.0, outdoor=30.0), hour=6.0)
    >>> f["cdd"], f["zone_temp"], round(f["tod_sin"], 6)
    (6.0, 20.0, 1.0)
    """
    last = last or {}
    out = s.outdoor if not math.isnan(s.outdoor) else last.get("outdoor", 0.0)
    temp = s.mean("temp")
    temp = temp if not math.isnan(temp) else last.get("zone_temp", 0.0)
    occ = s.mean("occ")
    occ = occ if not math.isnan(occ) else last.get("occupancy", 0.0)
    occupied = s.occupied_n / s.occ_n if s.occ_n else last.get("occupied", 0.0)
    a = 2 * math.pi * hour / 24.0
    return {"outdoor": out, "hdd": max(0.0, 18.0 - out), "cdd": max(0.0, out - 24.0), "zone_temp": temp,
            "tod_sin": math.sin(a), "tod_cos": math.cos(a), "occupancy": occ, "occupied": occupied}


class Baseline:
    """Expected mean power (kW) per interval for one zone (see the module docstring)."""

    def __init__(self, warmup: int = 48, learning_rate: float = 0.02, drift: str = "adwin",
                 drift_delta: float = 0.002):
        from river import linear_model, optim, preprocessing

        self.model = preprocessing.StandardScaler() | linear_model.LinearRegression(
            optimizer=optim.SGD(learning_rate), intercept_lr=learning_rate, l2=0.0)
        self.warmup = warmup
        self.learned = 0
        self.drift = DriftWatch(drift, drift_delta) if drift != "none" else None

    @property
    def warm(self) -> bool:
        return self.learned >= self.warmup

    def predict(self, x: dict[str, float]) -> float | None:
        """Expected mean kW (never below 0), or None while warming up."""
        if not self.warm:
            return None
        return max(0.0, float(self.model.predict_one(x)))

    def learn(self, x: dict[str, float], kw: float) -> None:
        self.model.learn_one(x, kw)
        self.learned += 1

    def residual(self, actual: float, expected: float) -> bool:
        """Feed ``actual - expected`` to the drift detector; True when it signals drift."""
        return bool(self.drift.update(actual - expected)) if self.drift is not None else False
