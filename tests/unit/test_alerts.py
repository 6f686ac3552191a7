"""AlertPolicy: threshold, hysteresis, debounce, clear counting, cool-down, sequence numbers, peak."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.decisions.alerts import AlertEvent, AlertPolicy


def run(policy: AlertPolicy, scores: list[float], t0: int = 1, step: int = 1) -> list[tuple[int, AlertEvent]]:
    """Feed scores at t0, t0+step, ...; return (index, event) for every event."""
    out = []
    for i, s in enumerate(scores):
        for e in policy.update(t0 + i * step, s):
            out.append((i, e))
    return out


def kinds(events: list[tuple[int, AlertEvent]]) -> list[tuple[int, str]]:
    return [(i, e.kind) for i, e in events]


def test_opens_at_threshold_inclusive() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=1)
    assert p.update(10, 0.8999) == []
    assert not p.is_open
    (e,) = p.update(20, 0.9)  # exactly the threshold opens (>=)
    assert (e.kind, e.alert_seq, e.opened_at_ns, e.at_ns, e.score, e.peak_score) == ("opened", 0, 20, 20, 0.9, 0.9)
    assert p.is_open


def test_hysteresis_in_between_scores_keep_open_and_do_not_reopen() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=1)
    # 0.95 opens; 0.6 .. 0.89 are not below clear_threshold (0.6 is not < 0.6) so it stays open;
    # 0.59 clears (clear_windows=1); then 0.7 / 0.89 are below open_threshold: no reopen.
    events = run(p, [0.95, 0.7, 0.6, 0.89, 0.61, 0.59, 0.7, 0.89, 0.8])
    assert kinds(events) == [(0, "opened"), (5, "cleared")]
    assert not p.is_open


def test_debounce_needs_consecutive_windows() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=3, clear_windows=1)
    # two highs then a dip (resets the count), then three highs in a row: opens on the third (index 5)
    events = run(p, [0.95, 0.95, 0.85, 0.95, 0.91, 0.9, 0.99])
    assert kinds(events) == [(5, "opened")]
    assert events[0][1].score == 0.9 and events[0][1].opened_at_ns == 6  # t = 1 + 5


def test_debounce_count_is_reset_by_opening() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=2, clear_windows=1)
    # opens at index 1, clears at index 2; the run of highs before the open does not carry over:
    # index 3 is one high (no open), index 4 the second -> reopen
    events = run(p, [0.95, 0.95, 0.1, 0.95, 0.95])
    assert kinds(events) == [(1, "opened"), (2, "cleared"), (4, "opened")]


def test_clear_needs_consecutive_low_windows_and_count_resets_on_high_score() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=3)
    # open at 0; lows at 1, 2 (count 2); 0.65 (>= clear) resets; lows at 4, 5, 6 -> clear at 6
    events = run(p, [0.95, 0.1, 0.2, 0.65, 0.1, 0.1, 0.1])
    assert kinds(events) == [(0, "opened"), (6, "cleared")]
    # a score above open_threshold while open also resets the count and opens nothing new
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=2)
    events = run(p, [0.95, 0.1, 0.97, 0.1, 0.1])
    assert kinds(events) == [(0, "opened"), (4, "cleared")]


def test_cleared_event_fields_and_peak() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=2)
    events = run(p, [0.91, 0.99, 0.95, 0.3, 0.2], t0=100, step=10)
    (_, opened), (_, cleared) = events
    assert (opened.kind, opened.peak_score, opened.opened_at_ns) == ("opened", 0.91, 100)
    # peak = max(0.91, 0.99, 0.95, 0.3, 0.2) = 0.99; cleared at t = 100 + 4*10 = 140 with the last score
    assert (cleared.kind, cleared.alert_seq, cleared.opened_at_ns, cleared.at_ns, cleared.score,
            cleared.peak_score) == ("cleared", 0, 100, 140, 0.2, 0.99)


def test_peak_restarts_for_each_alert() -> None:
    p = AlertPolicy(open_threshold=0.5, clear_threshold=0.2, open_windows=1, clear_windows=1)
    events = run(p, [0.99, 0.1, 0.6, 0.7, 0.1])
    assert [(e.kind, e.alert_seq, e.peak_score) for _, e in events] == [
        ("opened", 0, 0.99), ("cleared", 0, 0.99), ("opened", 1, 0.6), ("cleared", 1, 0.7)]


def test_cooldown_blocks_reopening_until_cleared_at_plus_cooldown() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=1, cooldown_ns=100)
    assert [e.kind for e in p.update(1_000, 0.95)] == ["opened"]
    assert [e.kind for e in p.update(1_010, 0.1)] == ["cleared"]  # cooldown until 1_010 + 100 = 1_110
    assert p.update(1_020, 0.99) == []
    assert p.update(1_109, 0.99) == []  # one ns before the end of the cool-down
    (e,) = p.update(1_110, 0.99)  # t >= cleared_at + cooldown
    assert (e.kind, e.alert_seq, e.opened_at_ns) == ("opened", 1, 1_110)


def test_cooldown_zero_allows_immediate_reopen() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=1, cooldown_ns=0)
    p.update(1, 0.95)
    p.update(2, 0.1)
    assert [e.kind for e in p.update(2, 0.95)] == ["opened"]


def test_alert_seq_increments() -> None:
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=1)
    events = run(p, [0.95, 0.1, 0.95, 0.1, 0.95])
    assert [(e.kind, e.alert_seq) for _, e in events] == [
        ("opened", 0), ("cleared", 0), ("opened", 1), ("cleared", 1), ("opened", 2)]
    assert p.alert_seq == 2


def test_docstring_scenario_by_hand() -> None:
    # open 0.9 / clear 0.6, clear_windows 2, cooldown 10:
    # t2 0.95 opens; t3 0.97 stays; t4 0.7 in between; t5 0.5, t6 0.4 -> cleared at 6, cooldown to 16;
    # t7 0.99 blocked; t20 0.99 opens (seq 1)
    p = AlertPolicy(open_threshold=0.9, clear_threshold=0.6, open_windows=1, clear_windows=2, cooldown_ns=10)
    evs = [(t, e.kind, e.alert_seq) for t, s in [(1, .2), (2, .95), (3, .97), (4, .7), (5, .5), (6, .4), (7, .99),
                                                  (20, .99)] for e in p.update(t, s)]
    assert evs == [(2, "opened", 0), (6, "cleared", 0), (20, "opened", 1)]


@settings(max_examples=200, deadline=None)
@given(
    open_threshold=st.floats(0.05, 1.0),
    gap=st.floats(0.01, 0.9),
    open_windows=st.integers(1, 4),
    clear_windows=st.integers(1, 4),
    cooldown=st.integers(0, 5),
    steps=st.lists(st.tuples(st.integers(1, 3), st.floats(0.0, 1.0)), max_size=80),
)
def test_events_alternate_and_open_only_at_threshold(open_threshold: float, gap: float, open_windows: int,
                                                     clear_windows: int, cooldown: int,
                                                     steps: list[tuple[int, float]]) -> None:
    clear_threshold = max(0.0, open_threshold - gap)
    p = AlertPolicy(open_threshold, clear_threshold, open_windows, clear_windows, cooldown)
    t = 0
    events: list[AlertEvent] = []
    last_clear: int | None = None
    for dt, score in steps:
        t += dt
        new = p.update(t, score)
        assert len(new) <= 1
        for e in new:
            assert e.at_ns == t and e.score == score
            if e.kind == "opened":
                assert score >= open_threshold
                assert last_clear is None or t >= last_clear + cooldown
            else:
                assert score < clear_threshold
                last_clear = t
        events += new
    expected = ["opened", "cleared"] * len(events)
    assert [e.kind for e in events] == expected[: len(events)]
    assert p.is_open == (len(events) % 2 == 1)
    # sequence numbers: 0,0,1,1,2,2,... and a clear names the alert it closes
    assert [e.alert_seq for e in events] == [i // 2 for i in range(len(events))]
    for i in range(1, len(events), 2):
        assert events[i].opened_at_ns == events[i - 1].opened_at_ns
        assert events[i].peak_score >= events[i - 1].score


def _n_of_m(open_threshold: float, clear_threshold: float, n_open: int, m_open: int, n_clear: int,
            m_clear: int, cooldown: int, sign: float, steps: list[tuple[int, float]]) -> list[tuple[int, str]]:
    """The debounce as the docs state it: opens when n_open of the last m_open values reach the open threshold
    (the cool-down over), clears when n_clear of the last m_clear fall below the clear one; each count starts
    afresh when the alert opens or clears."""
    is_open, hits, lows, until, out = False, [], [], -1, []
    for t, v in steps:
        if is_open:
            lows = (lows + [sign * v < sign * clear_threshold])[-m_clear:]
            if sum(lows) >= n_clear:
                is_open, hits, lows, until = False, [], [], t + cooldown
                out.append((t, "cleared"))
        else:
            hits = (hits + [sign * v >= sign * open_threshold])[-m_open:]
            if sum(hits) >= n_open and t >= until:
                is_open, hits = True, []
                out.append((t, "opened"))
    return out


@settings(max_examples=300, deadline=None)
@given(n_open=st.integers(1, 4), extra_open=st.integers(0, 3), n_clear=st.integers(1, 4),
       extra_clear=st.integers(0, 3), cooldown=st.integers(0, 4), below=st.booleans(),
       values=st.lists(st.sampled_from([0.1, 0.5, 0.59, 0.6, 0.61, 0.89, 0.9, 0.95]), max_size=60))
def test_n_of_m_debounce_counts_the_last_m_windows_in_lists_and_in_an_old_snapshots_deques(
        n_open: int, extra_open: int, n_clear: int, extra_clear: int, cooldown: int, below: bool,
        values: list[float]) -> None:
    # the windows' comparisons are kept in lists trimmed to M (a bounded deque, as policies pickled before
    # kept them, costs 760 B however short): both must count exactly the last M
    from collections import deque

    open_t, clear_t = (0.6, 0.9) if below else (0.9, 0.6)
    m_open, m_clear = n_open + extra_open, n_clear + extra_clear
    steps = [(2 * i, v) for i, v in enumerate(values)]
    want = _n_of_m(open_t, clear_t, n_open, m_open, n_clear, m_clear, cooldown, -1.0 if below else 1.0, steps)

    def policy() -> AlertPolicy:
        return AlertPolicy(open_t, clear_t, n_open, n_clear, cooldown, open_of=m_open, clear_of=m_clear,
                           direction="below" if below else "above")

    lists, old = policy(), policy()
    old._hits, old._lows = deque(maxlen=m_open), deque(maxlen=m_clear)
    for p in (lists, old):
        got = [(t, e.kind) for t, v in steps for e in p.update(t, v)]
        assert got == want
    assert len(lists._hits) <= m_open and len(lists._lows) <= m_clear
