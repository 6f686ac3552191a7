"""Interval summaries and the waste rules of the building flow (pure logic, no I/O).

A zone's readings are aggregated per meter into intervals of
``building.interval_s``; :class:`IntervalSummary` is one closed interval.
Each waste rule turns an interval (or a night) into one number that the
alert lifecycle (:class:`~aiotstream.decisions.alerts.AlertBook`) watches with open
and clear thresholds and N consecutive intervals:

* ``hvac_empty_zone``: the HVAC-on fraction of an interval in which nobody was
  counted (0 when anyone was);
* ``simultaneous_heat_cool``: the fraction of the interval in HVAC state 3
  (heating and cooling at once);
* ``baseload_creep``: once per night, the night's mean power over the
  reference (the mean of the first learned nights), minus 1.

>>> s = IntervalSummary("z1", 0, 10 * S, power_n=10, power_sum=20.0, occ_n=10, occupied_n=0, hvac_n=10,
...                     on_n=8)
>>> empty_hvac_value(s), simultaneous_value(s), round(s.kwh(), 6)  # 2 kW for 10 s
(0.8, 0.0, 0.005556)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aiotstream.units import S

HVAC_STATES = {0: "off", 1: "heating", 2: "cooling", 3: "heating+cooling"}


@dataclass(slots=True)
class IntervalSummary:
    """One zone's closed interval ``[start_ns, end_ns)``: counts and sums of its meters' readings.

    ``kwh()`` is the mean power of the interval's power samples times the
    interval length (a missing sample does not remove energy; an interval with
    no power sample has none: ``None``).
    """

    zone: str
    start_ns: int
    end_ns: int
    power_n: int = 0
    power_sum: float = 0.0
    temp_n: int = 0
    temp_sum: float = 0.0
    occ_n: int = 0
    occ_sum: float = 0.0
    occupied_n: int = 0  # occupancy readings > 0
    hvac_n: int = 0
    on_n: int = 0  # HVAC state != 0
    heat_n: int = 0
    cool_n: int = 0
    both_n: int = 0
    outdoor: float = math.nan

    def kwh(self) -> float | None:
        if not self.power_n:
            return None
        return self.power_sum / self.power_n * (self.end_ns - self.start_ns) / (3600 * S)

    def mean(self, which: str) -> float:
        n = getattr(self, f"{which}_n")
        return getattr(self, f"{which}_sum") / n if n else math.nan

    def fraction(self, which: str) -> float:
        """``on``, ``heat``, ``cool`` or ``both`` as a fraction of the HVAC readings (0 without any)."""
        return getattr(self, f"{which}_n") / self.hvac_n if self.hvac_n else 0.0


def empty_hvac_value(s: IntervalSummary) -> float:
    """HVAC-on fraction of an interval in which nobody was counted; 0 if anyone was or occupancy is unknown.

    >>> empty_hvac_value(IntervalSummary("z", 0, 1, occ_n=5, occupied_n=1, hvac_n=5, on_n=5))
    0.0
    """
    if s.hvac_n == 0 or s.occ_n == 0 or s.occupied_n > 0:
        return 0.0
    return s.on_n / s.hvac_n


def simultaneous_value(s: IntervalSummary) -> float:
    """Fraction of the interval with heating and cooling at once (HVAC state 3).

    >>> simultaneous_value(IntervalSummary("z", 0, 1, hvac_n=4, on_n=4, both_n=3))
    0.75
    """
    return s.both_n / s.hvac_n if s.hvac_n else 0.0


def intervals_for(seconds: float, interval_s: float) -> int:
    """Whole intervals that cover ``seconds`` (at least 1).

    >>> intervals_for(900, 60), intervals_for(61, 60), intervals_for(1, 60)
    (15, 2, 1)
    """
    return max(1, math.ceil(seconds / interval_s - 1e-9))


class DayClock:
    """Local time of day for event times; ``day_s`` may be compressed (simulations), ``utc_offset_h`` shifts
    it by a fixed offset, ``timezone`` (an IANA name, real 24-hour days only) follows that zone's daylight
    saving time through :mod:`zoneinfo`.

    >>> c = DayClock(day_s=60, utc_offset_h=0)
    >>> c.hour(15 * S), c.day(61 * S)   # a quarter of a 60 s day is 06:00; 61 s is on day 1
    (6.0, 1)
    >>> berlin = DayClock(timezone="Europe/Berlin")
    >>> winter, summer = 1_767_225_600 * S, 1_782_864_000 * S   # 2026-01-01 and 2026-07-01, 00:00 UTC
    >>> berlin.hour(winter), berlin.hour(summer)                   # CET (UTC+1) and CEST (UTC+2)
    (1.0, 2.0)
    """

    def __init__(self, day_s: float = 86_400.0, utc_offset_h: float = 0.0, timezone: str | None = None):
        self.day_ns = round(day_s * S)
        self.offset_ns = round(utc_offset_h * 3600 / 86_400 * day_s * S)
        if timezone is not None and self.day_ns != 86_400 * S:
            raise ValueError("a time zone needs real 24-hour days (day_s = 86400)")
        self.zone = None if timezone in (None, "UTC") else ZoneInfo(timezone)

    def _offset(self, t_ns: int) -> int:
        """ns to add to UTC for local time at ``t_ns`` (the fixed offset, or the zone's at that instant)."""
        if self.zone is None:
            return self.offset_ns
        off = datetime.fromtimestamp(t_ns // S, self.zone).utcoffset()
        return 0 if off is None else (off.days * 86_400 + off.seconds) * S

    def hour(self, t_ns: int) -> float:
        return ((t_ns + self._offset(t_ns)) % self.day_ns) / self.day_ns * 24.0

    def day(self, t_ns: int) -> int:
        return (t_ns + self._offset(t_ns)) // self.day_ns


class NightBaseload:
    """Night-time baseload of one zone, night by night, against a reference learned from the first nights.

    Feed every closed interval (:meth:`add`); an interval whose start lies in
    ``[start_h, end_h)`` counts for that night. The first interval after a
    night finishes it: ``(night_day, kW, reference_kW or None)``. A night
    covered by less than half its intervals is skipped. The reference is the
    mean kW of the first ``learn_nights`` nights; after that it stays fixed
    (a creep must not teach itself into the reference).

    >>> nb = NightBaseload(DayClock(day_s=24), start_h=0, end_h=2, learn_nights=1)
    >>> H = S  # a compressed day of 24 s: 1 s is an hour
    >>> nb.add(0, H, 1.0 / 3600), nb.add(H, 2 * H, 1.0 / 3600), nb.add(2 * H, 3 * H, 5.0 / 3600)
    (None, None, (0, 1.0, None))
    >>> [nb.add(24 * H + k * H, 25 * H + k * H, 1.5 / 3600) for k in range(3)][-1]  # night 1: 1.5 kW vs 1.0
    (1, 1.5, 1.0)
    """

    def __init__(self, clock: DayClock, start_h: float, end_h: float, learn_nights: int):
        self.clock = clock
        self.start_h = start_h
        self.end_h = end_h
        self.learn_nights = learn_nights
        self.night: int | None = None  # the day index of the night being summed
        self.kwh = 0.0
        self.ns = 0
        self.ref_sum = 0.0
        self.ref_n = 0

    def _finish(self) -> tuple[int, float, float | None] | None:
        night, kwh, ns = self.night, self.kwh, self.ns
        self.night, self.kwh, self.ns = None, 0.0, 0
        window_ns = (self.end_h - self.start_h) / 24.0 * self.clock.day_ns
        if night is None or ns < 0.5 * window_ns:
            return None
        kw = kwh / (ns / (3600 * S))
        if self.ref_n < self.learn_nights:
            self.ref_sum += kw
            self.ref_n += 1
            return night, kw, None
        return night, kw, self.ref_sum / self.ref_n

    @property
    def reference(self) -> float | None:
        return self.ref_sum / self.ref_n if self.ref_n >= self.learn_nights else None

    def add(self, start_ns: int, end_ns: int, kwh: float | None) -> tuple[int, float, float | None] | None:
        h = self.clock.hour(start_ns)
        in_night = self.start_h <= h < self.end_h
        day = self.clock.day(start_ns)
        out = None
        if self.night is not None and (not in_night or day != self.night):
            out = self._finish()
        if in_night and kwh is not None:
            self.night = day
            self.kwh += kwh
            self.ns += end_ns - start_ns
        return out


def creep_value(kw: float, reference: float) -> float:
    """The night's baseload over the reference, minus 1 (0.2 = 20 % higher); 0 for a zero reference.

    >>> creep_value(1.2, 1.0)
    0.19999999999999996
    """
    return kw / reference - 1.0 if reference > 0 else 0.0
