"""The KPI tracker's per-window fast paths (``readings_window``, ``advance_close``, ``add_window`` with a
tumbling scheme inline, ``_account`` of a stretch within one period) and the totals helpers (``merge_all``,
``public_totals``, ``new_totals``) give exactly what the generic code gives: the same periods, totals (and
their key order) and spans, emitted at the same calls."""
from __future__ import annotations

import math
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.decisions.maintenance import MaintenanceSchedule
from aiotstream.kpi import KpiTracker, Shifts, Tumbling, merge, new_totals, public_totals
from aiotstream.kpi.totals import FLOAT_TOTALS, TIME_TOTALS, TOTALS, merge_all
from aiotstream.units import S


class _Generic:
    """A tumbling scheme the fast paths do not recognise (``type(...) is not Tumbling``): the generic
    ``period_of`` / ``segments`` code runs for it."""

    def __init__(self, length_ns: int):
        self._t = Tumbling(length_ns)
        self.name, self.length_ns = self._t.name, self._t.length_ns

    def period_of(self, t_ns: int) -> tuple[int, int, str]:
        return self._t.period_of(t_ns)

    def segments(self, a_ns: int, b_ns: int) -> Iterator[tuple[int, int, int, int, str]]:
        return self._t.segments(a_ns, b_ns)


class _Reference(KpiTracker):
    """The tracker's time accounting and close as they were before the fast paths."""

    def _account(self, a: int, b: int, maint: bool) -> None:
        state, failed = self.state, self.in_failure()
        keys = ["observed_s"]
        if maint:
            keys.append("maintenance_s")
        if state in ("running", "idle", "down"):
            keys.append("planned_s")
            keys.append({"running": "run_s", "idle": "idle_s", "down": "down_s"}[state])
        if failed:
            keys.append("failure_s")
        elif not maint and state in (None, "running"):
            keys.append("operating_s")
        for i, scheme in enumerate(self.schemes):
            for s, e, lo, hi, label in scheme.segments(a, b):
                tot = self._period(i, s, e, label).totals
                for k in keys:
                    tot[k] += hi - lo

    def close(self, clock_ns: int) -> list:
        acc = self.accounted_ns
        if acc is None:
            return []
        power = self.last_power
        done = [p for p in self.periods.values()
                if p.end <= acc and p.end + self.emit_delay_ns <= clock_ns
                and not (power and self._energy_pending(p.end, clock_ns))]
        return self._emit(done)


def _reference_window(k: KpiTracker, spans: tuple, start: int, end: int, m: MaintenanceSchedule) -> list:
    """The calls the fast paths stand for, as the analyzer made them before."""
    k.begin(start)
    k.add_spans(spans, start)
    k.add_many({"windows": 1}, {}, start, exact_time=True)
    k.advance(end, m)
    return k.close(end)


def _state(k: KpiTracker) -> list:
    return sorted((key, p.start, p.end, p.label, list(p.totals.items()), sorted(p.spans.items()))
                  for key, p in k.periods.items())


steps = st.lists(st.tuples(
    st.integers(0, 3),  # gap before the window, in windows
    st.sampled_from([None, "running", "idle", "down", "planned_stop"]),  # machine state from this window on
    st.booleans(),  # a failure alert open
    st.integers(0, 2),  # how: 0 readings_window, 1 add_window + advance_close, 2 add_window + advance + close
    st.integers(0, 50),  # the window's first offset
), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps=steps, period_w=st.integers(1, 7), window_s=st.sampled_from([1, 2, 3]),
       hop_s=st.sampled_from([1, 2, 3]), shifts=st.booleans(), maint=st.booleans(),
       max_gap_w=st.integers(2, 20), start=st.integers(0, 10**6),
       failures=st.sampled_from(["alerts", "state", "both"]))
def test_fast_paths_match_the_generic_code(steps: list, period_w: int, window_s: int, hop_s: int,
                                           shifts: bool, maint: bool, max_gap_w: int, start: int,
                                           failures: str) -> None:
    hop_s = min(hop_s, window_s)
    length, hop = window_s * S, hop_s * S
    t0 = 1_767_225_600 * S + start * S
    period = period_w * S
    sh = [("A", 6 * 60, 8), ("B", 14 * 60, 8)]  # with a gap between shifts
    mine = [Tumbling(period)] + ([Shifts(sh, "Europe/Berlin")] if shifts else [])
    theirs = [_Generic(period)] + ([Shifts(sh, "Europe/Berlin")] if shifts else [])
    kw = {"emit_delay_ns": length - hop, "max_gap_ns": max_gap_w * S, "failures": failures}
    fast, ref = KpiTracker("a", "l", mine, **kw), _Reference("a", "l", theirs, **kw)
    m = MaintenanceSchedule()
    if maint:
        m.set("w1", t0 + 3 * S, t0 + 9 * S)
    t = t0
    for gap, state, failed, how, off in steps:
        t += gap * hop
        s, e = t, t + length
        spans = (("file:x", -1, off, off + 7),)
        for k in (fast, ref):
            if state is not None and k.state != state:
                k.state = state
            (k.alert_failures.add if failed else k.alert_failures.discard)("failure")
        want = _reference_window(ref, spans, s, e, m)
        fast.begin(s)  # (the analyzer's first step for every window)
        if how == 0:
            got = fast.readings_window(spans, s, e, m)
        else:
            fast.add_window(spans, {"windows": 1}, s)
            if how == 1:
                got = fast.advance_close(e, m)
            else:
                fast.advance(e, m)
                got = fast.close(e)
        assert got == want
        assert fast.accounted_ns == ref.accounted_ns
        assert _state(fast) == _state(ref)
        t += hop
    assert fast.flush() == ref.flush()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(sorted(TOTALS)),
                                st.one_of(st.integers(-10**12, 10**12), st.just(0), st.just(-0.0),
                                          st.integers(-10**9, 10**9).map(lambda q: q * S),  # whole seconds
                                          st.integers(-2**70, 2**70), st.booleans(),
                                          st.floats(allow_nan=False, allow_infinity=False, width=64),
                                          st.sampled_from([math.nan, math.inf, -math.inf, 0.0]))),
                min_size=0, max_size=30),
       st.sampled_from([1, 2, 3, 7, 1024]))
def test_merge_all_and_public_totals_match(parts: list[dict], chunk: int) -> None:
    """merge_all folds ``chunk`` parts at a time: the same values as the fold part by part whatever the
    chunks (a float first in a later chunk after ints, a NaN or an infinity in any of them)."""
    full = [{**new_totals(), **p} for p in parts]
    want = new_totals()
    for p in full:
        want = merge(want, p)
    got = merge_all(full, chunk)
    assert repr(list(got.items())) == repr(list(want.items()))  # (types, -0.0 and order too)
    assert repr(list(merge_all(iter(full), chunk).items())) == repr(list(want.items()))  # (any iterable)
    old_public = {k: (round(v / S, 9) if k in TIME_TOTALS else v) for k, v in want.items()}
    assert repr(list(public_totals(want).items())) == repr(list(old_public.items()))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(-10**13, 10**13).map(lambda q: q * S), st.integers(-2**80, 2**80),
                 st.integers(-10**12, 10**12)))
def test_public_totals_of_whole_seconds_is_what_round_gives(v: int) -> None:
    """The whole-second shortcut (``float(v // S)``) against ``round(v / S, 9)``, bit for bit."""
    got = public_totals({**new_totals(), "observed_s": v})["observed_s"]
    assert repr(got) == repr(round(v / S, 9)) and type(got) is float


def test_public_totals_of_zeros() -> None:
    t = {**new_totals(), "run_s": -0.0, "idle_s": 0, "down_s": 0.0, "observed_s": 1_500_000_001}
    assert repr([public_totals(t)[k] for k in ("run_s", "idle_s", "down_s", "observed_s", "windows")]) == \
        "[-0.0, 0.0, 0.0, 1.500000001, 0]"


def test_new_totals_is_fresh_and_typed() -> None:
    a, b = new_totals(), new_totals()
    a["windows"] += 1
    assert b["windows"] == 0 and list(b) == list(TOTALS)
    assert all(isinstance(v, float) == (k in FLOAT_TOTALS) for k, v in b.items())


def test_merge_keeps_maxima_and_key_order() -> None:
    a = {"frames": 2, "max_score": 0.5, "windows": 1}
    b = {"frames": 3, "max_score": 0.25, "windows": 4}
    assert list(merge(a, b).items()) == [("frames", 5), ("max_score", 0.5), ("windows", 5)]
