"""``RunStats.windows_closed`` keeps its histogram's list: what it adds is what ``histograms`` shows, after a
``reset`` too, and the same list as ``observe`` of the histogram by name (one histogram, not two); a latency
above the top bound (a replay's) goes to the count above it without a search, one on a bound to that bound's
bucket."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiotstream.runstats import BUCKETS, RunStats

S = 1_000_000_000
KEY = ("window_close_latency_seconds", ())


def _ref(ops: list[tuple[str, list[int]]], now: float) -> list[float]:
    """The histogram by its definition (the observations since the last reset, by bucket, and their sum)."""
    bounds = BUCKETS[KEY[0]]
    h: list[float] = [0] * (len(bounds) + 1) + [0.0]
    for op, ends in ops:
        if op == "reset":
            h = [0] * (len(bounds) + 1) + [0.0]
            continue
        for e in ends:
            v = now - e / S
            h[sum(1 for b in bounds if b < v)] += 1
            h[-1] += v
    return h


@settings(max_examples=200, deadline=None)
# latencies on the buckets' bounds (the top one: 3600 s) and just above the top, alone and with others
@example(ops=[("closed", [400 * S]), ("closed", [400 * S - 1, 3999 * S, 3990 * S]), ("observe", [400 * S])])
@given(ops=st.lists(st.one_of(
    st.tuples(st.just("closed"), st.lists(st.integers(0, 4000 * S), min_size=1, max_size=3)),
    st.tuples(st.just("observe"), st.lists(st.integers(0, 4000 * S), min_size=1, max_size=1)),
    st.tuples(st.just("reset"), st.just([]))), max_size=12))
def test_windows_closed_adds_to_the_histogram_histograms_shows(ops) -> None:
    s, now = RunStats(), 4000.0
    for op, ends in ops:
        if op == "closed":
            s.windows_closed("a", now, ends)
        elif op == "observe":
            s.observe(KEY[0], now - ends[0] / S)
        else:
            s.reset()
    want = _ref(ops, now)
    got = s.histograms().get(KEY)
    if got is None:
        assert want[:-1] == [0] * (len(want) - 1)
    else:
        assert got[:-1] == want[:-1] and abs(got[-1] - want[-1]) <= 1e-6 * max(1.0, abs(want[-1]))
