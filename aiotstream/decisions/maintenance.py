"""Planned maintenance: the windows in which an entity's alerts are suppressed, and the process gauge of them.

:class:`MaintenanceSchedule` holds one entity's windows (from the config or from feedback messages, bounded
in length and number); :class:`SuppressionGauge` is the entity's part of the run summary's
``active_suppressions`` gauge. The alert lifecycle (:mod:`aiotstream.decisions.alerts`) and the KPI
accounting (:mod:`aiotstream.kpi`) read the schedule.
"""
from __future__ import annotations

from typing import Any

from aiotstream.records import Problem


class MaintenanceSchedule:
    """Planned maintenance windows of one asset, ``[start, end)`` in event time, by window id.

    >>> m = MaintenanceSchedule()
    >>> m.set("a", 10, 20); m.set("b", 20, 30)
    >>> m.active(9), m.active(10), m.active(29), m.active(30), m.end_of(15)
    (False, True, True, False, 30)
    """

    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}

    def set(self, window_id: str, start_ns: int, end_ns: int) -> None:
        """Add a window, or replace the one with the same id (e.g. to end it early)."""
        self.windows[window_id] = (start_ns, end_ns)

    def active(self, t_ns: int) -> bool:
        return bool(self.windows) and any(a <= t_ns < b for a, b in self.windows.values())

    def end_of(self, t_ns: int) -> int | None:
        """When the maintenance in progress at ``t_ns`` ends (following windows that touch or overlap)."""
        if not self.active(t_ns):
            return None
        end = t_ns
        grew = True
        while grew:
            grew = False
            for a, b in self.windows.values():
                if a <= end < b:
                    end, grew = b, True
        return end

    def prune(self, before_ns: int) -> None:
        """Forget windows that ended before ``before_ns`` (they can no longer matter)."""
        self.windows = {k: v for k, v in self.windows.items() if v[1] >= before_ns}

    def offer(self, window_id: str, start_ns: int, end_ns: int, max_ns: int, max_windows: int,
              forget_before_ns: int | None) -> Problem | None:
        """A window asked for by a message (not the config): set it, or say why not.

        Refused when it lasts longer than ``max_ns`` (a window ending in the far future would silence
        the asset's alerts for good) or when ``max_windows`` are known already and none of them ended
        before ``forget_before_ns`` (what the caller no longer needs); a window with a known id
        replaces it (e.g. to end it early, or to extend it by another message).

        >>> m = MaintenanceSchedule()
        >>> m.offer("a", 0, 10, max_ns=10, max_windows=1, forget_before_ns=None) is None
        True
        >>> m.offer("a", 0, 11, max_ns=10, max_windows=1, forget_before_ns=None).reason
        'maintenance_too_long'
        >>> m.offer("b", 20, 30, max_ns=10, max_windows=1, forget_before_ns=5).reason
        'too_many_windows'
        >>> m.offer("b", 20, 30, max_ns=10, max_windows=1, forget_before_ns=11), sorted(m.windows)
        (None, ['b'])
        """
        if end_ns - start_ns > max_ns:
            return Problem("maintenance_too_long", f"maintenance window {window_id!r} lasts "
                           f"{(end_ns - start_ns) / 1e9:.6g} s, longer than the {max_ns / 1e9:g} s allowed "
                           "(alerts.maintenance_max_s): send a shorter window, and extend it later with "
                           "another message with the same window_id if the work takes longer")
        if window_id not in self.windows and len(self.windows) >= max_windows:
            if forget_before_ns is not None:
                self.prune(forget_before_ns)
            if len(self.windows) >= max_windows:
                return Problem("too_many_windows",
                               f"{len(self.windows)} maintenance windows are planned or in progress already, "
                               "the most allowed (alerts.maintenance_max_windows): reuse a "
                               "window_id to change one")
        self.set(window_id, start_ns, end_ns)
        return None


class SuppressionGauge:
    """What one asset adds to the process-wide gauge ``active_suppressions`` of
    :data:`~aiotstream.runstats.STATS`:
    1 while a maintenance window is in force at the asset's clock (its alerts are suppressed), else 0.

    The asset reports after each batch (:meth:`update`) by adding the difference, so the gauge is the sum
    over the process's assets without a registry of them; :meth:`release` takes the asset's part back when
    its state is discarded. After a resume (unpickled in a new process, whose gauge starts at 0) it has
    added nothing yet, so the next update adds its part again.

    >>> from aiotstream.runstats import RunStats
    >>> stats = RunStats(); a, b = SuppressionGauge(stats), SuppressionGauge(stats)
    >>> a.update(True); b.update(True); a.update(True); b.update(False)
    >>> stats.get("gauges", "active_suppressions")
    1
    >>> a.release(); stats.get("gauges", "active_suppressions")
    0
    """

    KEY = "active_suppressions"
    __slots__ = ("on", "stats")

    def __init__(self, stats: Any = None):
        self.on = False
        self.stats = stats

    def update(self, active: bool) -> None:
        if active != self.on:
            self._stats().add("gauges", self.KEY, 1 if active else -1)
            self.on = active

    def release(self) -> None:
        self.update(False)

    def _stats(self) -> Any:
        if self.stats is not None:
            return self.stats
        from aiotstream.runstats import STATS

        return STATS

    def __getstate__(self) -> dict[str, Any]:
        return {"on": False}  # the process's gauge is not part of a snapshot: a resumed asset reports afresh

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.on = False
        self.stats = None
