"""Exact roll-ups of entity KPI periods per line (floor) and per site."""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

from aiotstream.kpi.record import RollupResult, merge_spans
from aiotstream.kpi.totals import merge_all
from aiotstream.kpi.tracker import PeriodResult
from aiotstream.lineage import FlowContext
from aiotstream.records import Output

_start = itemgetter(1)  # a pending period's key (scheme, start) -> start

# ---- roll-ups ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Pending:
    first: PeriodResult
    parts: dict[str, PeriodResult]
    first_seen_s: float
    revision: int = -1  # last emitted revision (-1: not emitted)
    missing: set[str] | None = None  # expected assets that have neither reported it nor passed its end


class RollupBook:
    """Adds the asset periods of one scope (a line or the site) into scope periods, exactly.

    An asset emits its periods in time order, so once an asset has reported a
    period that ends at or after a scope period's end, it will not report that
    scope period any more. A scope period is therefore final, and emitted, once
    every expected asset has reported it or moved past it; ``complete`` says
    whether every expected asset contributed. An asset that never reports
    (no data at all) would hold a period forever, so when tailing, a period
    is also emitted (incomplete) after ``wait_s`` of wall-clock time, and at
    the end of input everything left is emitted. An asset that reports after
    such an early emission triggers a new ``revision`` carrying everything so
    far: consumers keep the highest revision of a period. A repeated report of
    the same asset and period (a replay) replaces the earlier one, so replays
    do not double count.
    """

    def __init__(self, scope: str, scope_id: str, expected: set[str], keep_periods: int = 256):
        self.scope = scope
        self.scope_id = scope_id
        self.expected = frozenset(expected)
        self.keep_periods = keep_periods
        self.pending: dict[tuple[str, int], _Pending] = {}
        self.progress: dict[tuple[str, str], int] = {}  # (scheme, asset) -> end of its newest reported period
        self.done: OrderedDict[tuple[str, int], None] = OrderedDict()  # final periods (replays are ignored)
        self.newest: dict[str, int] = {}  # scheme -> end of the newest period any asset reported

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "newest" not in state:  # a snapshot from before ``newest`` was kept
            self.newest = {}
            for (scheme, _), end in self.progress.items():
                self.newest[scheme] = max(self.newest.get(scheme, end), end)

    def add(self, r: PeriodResult, now_s: float = 0.0) -> list[RollupResult]:
        """Take one asset's period. Cost: the scope's pending periods, not its assets (a period's
        ``missing`` set is made once, then shrinks as assets report or pass its end)."""
        # (once per asset period and scope: the book's dicts and the period's fields read once, _missing and
        # _final inline where the set is made already, no _forget call while no period was emitted early)
        scheme, asset, r_end = r.scheme, r.asset, r.end_ns
        key = (scheme, r.start_ns)
        progress, newest, pending = self.progress, self.newest, self.pending
        prog = (scheme, asset)
        end = max(progress.get(prog, r_end), r_end)
        progress[prog] = end
        newest[scheme] = max(newest.get(scheme, end), end)
        for k, q in pending.items():  # this asset has now passed these periods' ends
            if k[0] == scheme and q.first.end_ns <= end:
                m = q.missing
                (self._missing(k) if m is None else m).discard(asset)
        if key in self.done:
            return []  # a replayed report of a period that is final already
        p = pending.get(key)
        if p is None:
            p = pending[key] = _Pending(r, {}, now_s)
        p.parts[asset] = r
        m = p.missing
        (self._missing(key) if m is None else m).discard(asset)
        out = []
        if p.revision >= 0:  # a late asset after an early (wall-clock) emission: a new revision
            out.append(self._emit(key, final=self._final(key)))
        keys = [k for k in pending if k[0] == scheme]
        if len(keys) > 1:
            keys.sort(key=_start)
        for k in keys:
            q = pending[k]
            if q.revision < 0 and not (self._missing(k) if q.missing is None else q.missing):
                out.append(self._emit(k, final=True))
        for q in pending.values():
            if q.revision >= 0:  # an early-emitted period is pending: it may be far behind the newest now
                self._forget()
                break
        return out

    def _missing(self, key: tuple[str, int]) -> set[str]:
        p = self.pending[key]
        if p.missing is None:  # once per period (or after a resume from a snapshot that did not keep it)
            p.missing = {a for a in self.expected
                         if a not in p.parts and self.progress.get((key[0], a), -1) < p.first.end_ns}
        return p.missing

    def _final(self, key: tuple[str, int]) -> bool:
        return not self._missing(key)

    def expire(self, now_s: float, wait_s: float) -> list[RollupResult]:
        """Emit (maybe incomplete) the periods first seen more than ``wait_s`` ago (wall clock), not emitted
        yet."""
        due = [k for k, p in self.pending.items() if p.revision < 0 and now_s - p.first_seen_s >= wait_s]
        return [self._emit(k, final=False) for k in sorted(due, key=lambda k: k[1])]

    def next_expiry_s(self, wait_s: float) -> float | None:
        times = [p.first_seen_s + wait_s for p in self.pending.values() if p.revision < 0]
        return min(times) if times else None

    def flush(self) -> list[RollupResult]:
        """End of input: emit every period not emitted yet."""
        keys = sorted((k for k, p in self.pending.items() if p.revision < 0), key=lambda k: k[1])
        return [self._emit(k, final=True) for k in keys]

    def _emit(self, key: tuple[str, int], final: bool) -> RollupResult:
        p = self.pending[key]
        p.revision += 1
        totals = merge_all(part.totals for part in p.parts.values())
        f = p.first
        res = RollupResult(f.scheme, f.length_ns, f.start_ns, f.end_ns, f.label, None,
                           self.scope_id if self.scope == "line" else None, totals,
                           merge_spans(s for part in p.parts.values() for s in part.spans),
                           tuple(sorted(p.parts)), len(self.expected), set(p.parts) >= self.expected,
                           p.revision)
        if final:
            del self.pending[key]
            self.done[key] = None
            while len(self.done) > self.keep_periods * 8:
                self.done.popitem(last=False)
        return res

    def _forget(self) -> None:
        """Drop early-emitted periods far behind the newest (a very late asset then gets no revision)."""
        newest = self.newest
        for key in [k for k, p in self.pending.items() if p.revision >= 0]:
            p = self.pending[key]
            length = p.first.end_ns - p.first.start_ns
            if newest.get(key[0], 0) - p.first.end_ns > self.keep_periods * length:
                del self.pending[key]
                self.done[key] = None


class RollupSite(Protocol):
    """What a line/site roll-up reads of its flow's runtime (the plant's SiteRuntime, the building's
    BuildingRuntime): the entities (assets or zones) per line (or floor) and the lineage blocks."""

    @property
    def ctx(self) -> FlowContext: ...
    @property
    def assets(self) -> Mapping[str, Any]: ...
    @property
    def lines(self) -> Mapping[str, set[str]]: ...
    @property
    def config(self) -> Any: ...
    @property
    def model_block(self) -> dict[str, Any]: ...
    @property
    def features_block(self) -> dict[str, Any] | None: ...


def rollup_inputs(o: Output) -> list[tuple[str, tuple[str, PeriodResult]]]:
    """The ``(scope key, (scope key, period))`` items an output feeds to the roll-ups (none but for an
    entity's KPI period)."""
    r = o.partial
    return [] if r is None else [(k, (k, r)) for k in rollup_keys(r)]


def rollup_keys(r: PeriodResult, enabled: bool = True) -> list[str]:
    """The roll-up scopes an asset period feeds: its line and the site.

    >>> rollup_keys(PeriodResult("10s", 10, 0, 10, "", "a", "line-1", {}, ()))
    ['line:line-1', 'site']
    """
    return [f"line:{r.line}", "site"] if enabled else []


def math_is_close(a: float | None, b: float | None, rel: float = 1e-12) -> bool:
    """Equality for derived KPIs in tests and checks (None only equals None).

    >>> math_is_close(0.1 + 0.2, 0.3), math_is_close(None, None), math_is_close(None, 0.0)
    (True, True, False)
    """
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
