"""KPI period schemes: tumbling periods of a fixed length and shifts in a time zone."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from aiotstream.units import S


# ---- periods ---------------------------------------------------------------------------------------
class PeriodScheme(Protocol):
    """How event time is cut into KPI periods."""

    name: str
    length_ns: int | None  # None: periods of varying length (shifts)

    def period_of(self, t_ns: int) -> tuple[int, int, str] | None:
        """The period ``(start, end, label)`` containing ``t_ns`` (None: no period covers it)."""
        ...

    def segments(self, a_ns: int, b_ns: int) -> Iterator[tuple[int, int, int, int, str]]:
        """``(period_start, period_end, a, b, label)`` for each period overlapping ``[a, b)``, clipped."""
        ...


class Tumbling:
    """Periods ``[k L, (k + 1) L)`` of a fixed length L.

    >>> list(Tumbling(10).segments(5, 25))
    [(0, 10, 5, 10, ''), (10, 20, 10, 20, ''), (20, 30, 20, 25, '')]
    """

    def __init__(self, length_ns: int, name: str | None = None):
        if length_ns <= 0:
            raise ValueError(f"period length must be > 0, got {length_ns}")
        self.length_ns = length_ns
        self.name = name or f"{length_ns / S:g}s"

    def period_of(self, t_ns: int) -> tuple[int, int, str]:
        start = (t_ns // self.length_ns) * self.length_ns
        return start, start + self.length_ns, ""

    def segments(self, a_ns: int, b_ns: int) -> Iterator[tuple[int, int, int, int, str]]:
        t = a_ns
        while t < b_ns:
            s, e, _ = self.period_of(t)
            yield s, e, t, min(e, b_ns), ""
            t = e


class Shifts:
    """Daily shifts in a time zone: ``(name, start minute of the local day, hours)``.

    A shift keeps its length in hours across a daylight-saving change, and ends
    at the latest when the next shift starts; time between shifts is in no shift.

    >>> sh = Shifts([("A", 6 * 60, 8), ("B", 14 * 60, 8), ("C", 22 * 60, 8)], "UTC")
    >>> s, e, name = sh.period_of(1_767_225_600 * S)  # 2026-01-01T00:00Z: in the night shift
    >>> name, (e - s) // 3600 // S, (1_767_225_600 * S - s) // 3600 // S
    ('C', 8, 2)
    """

    name = "shift"
    length_ns = None

    def __init__(self, shifts: list[tuple[str, int, float]], timezone: str = "UTC"):
        if not shifts:
            raise ValueError("no shifts")
        self.shifts = sorted(shifts, key=lambda s: s[1])
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._hit: tuple[int, int, tuple[int, int, str] | None] = (0, 0, None)

    def _instances(self, t_ns: int) -> list[tuple[int, int, str]]:
        """Shift instances of the local days around ``t_ns`` (clipped so they do not overlap), in order."""
        day = datetime.fromtimestamp(t_ns // S, tz=self._tz).date()
        out: list[tuple[int, int, str]] = []
        for d in (day - timedelta(days=2), day - timedelta(days=1), day, day + timedelta(days=1)):
            midnight = datetime(d.year, d.month, d.day, tzinfo=self._tz)
            for name, minute, hours in self.shifts:
                start = midnight + timedelta(minutes=minute)
                # the wall-clock start in the zone (fold-aware), then a length in absolute hours
                start_ns = int(start.timestamp()) * S
                out.append((start_ns, start_ns + round(hours * 3600 * S), name))
        out.sort()
        # a shift ends at the latest when the next one starts
        return [(s, min(e, out[i + 1][0]) if i + 1 < len(out) else e, n) for i, (s, e, n) in enumerate(out)
                if (min(e, out[i + 1][0]) if i + 1 < len(out) else e) > s]

    def period_of(self, t_ns: int) -> tuple[int, int, str] | None:
        lo, hi, hit = self._hit
        if lo <= t_ns < hi:  # nearly every call asks about the same shift (or gap) as the one before
            return hit
        inst = self._instances(t_ns)
        prev_end = None
        for s, e, n in inst:
            if s <= t_ns < e:
                self._hit = (s, e, (s, e, n))
                return s, e, n
            if e <= t_ns:
                prev_end = e
            elif prev_end is not None:  # t falls between two shifts: remember the gap
                self._hit = (prev_end, s, None)
                return None
        return None

    def segments(self, a_ns: int, b_ns: int) -> Iterator[tuple[int, int, int, int, str]]:
        t = a_ns
        while t < b_ns:
            pr = self.period_of(t)
            if pr is None:  # in a gap between shifts: period_of remembered where it ends
                lo, hi, _ = self._hit
                if not lo <= t < hi:
                    return
                t = hi
                continue
            s, e, n = pr
            yield s, e, t, min(e, b_ns), n
            t = e


def make_schemes(periods_s: list[float], shifts: list[tuple[str, int, float]],
                 timezone: str) -> list[PeriodScheme]:
    """The period schemes of a KPI config: one tumbling scheme per period length, plus shifts if any."""
    schemes: list[PeriodScheme] = [Tumbling(round(p * S)) for p in periods_s]
    if shifts:
        schemes.append(Shifts(shifts, timezone))
    return schemes
