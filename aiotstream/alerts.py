"""Alert policy: threshold + hysteresis + debounce + cool-down, one alert per fault.

An alert opens when the score is at or above ``open_threshold`` for
``open_windows`` consecutive windows, and clears after ``clear_windows``
consecutive windows below ``clear_threshold``; scores in between keep the
current state (hysteresis). After a clear, no new alert opens for
``cooldown_ns`` of event time. At most one alert per asset and type is open.

>>> p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=2, cooldown_ns=10)
>>> [e.kind for t, s in [(1, .2), (2, .95), (3, .97), (4, .7), (5, .5), (6, .4), (7, .99), (20, .99)]
...  for e in p.update(t, s)]
['opened', 'cleared', 'opened']
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change of an alert's state."""

    kind: str  # "opened" | "cleared"
    alert_seq: int  # per asset and type: 0, 1, 2, ...
    opened_at_ns: int
    at_ns: int
    score: float
    peak_score: float


class AlertPolicy:
    """The open/clear state machine for one asset and alert type."""

    def __init__(self, open_threshold: float, clear_threshold: float, open_windows: int = 1,
                 clear_windows: int = 3, cooldown_ns: int = 0):
        self.open_threshold = open_threshold
        self.clear_threshold = clear_threshold
        self.open_windows = open_windows
        self.clear_windows = clear_windows
        self.cooldown_ns = cooldown_ns
        self.is_open = False
        self.alert_seq = -1
        self.opened_at_ns = 0
        self.peak = 0.0
        self._above = 0
        self._below = 0
        self._cooldown_until = -1

    def update(self, t_ns: int, score: float) -> list[AlertEvent]:
        """Feed one window's score (t_ns = its event time, e.g. the window end)."""
        if self.is_open:
            self.peak = max(self.peak, score)
            self._below = self._below + 1 if score < self.clear_threshold else 0
            if self._below >= self.clear_windows:
                self.is_open = False
                self._below = 0
                self._cooldown_until = t_ns + self.cooldown_ns
                return [AlertEvent("cleared", self.alert_seq, self.opened_at_ns, t_ns, score, self.peak)]
            return []
        self._above = self._above + 1 if score >= self.open_threshold else 0
        if self._above >= self.open_windows and t_ns >= self._cooldown_until:
            self.is_open = True
            self._above = 0
            self.alert_seq += 1
            self.opened_at_ns = t_ns
            self.peak = score
            return [AlertEvent("opened", self.alert_seq, t_ns, t_ns, score, score)]
        return []
