"""Event-time windows: assignment, watermark, allowed lateness, late data, readings, flush, lineage spans."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.records import Frame, Position, Reading
from aiotstream.windows import ClosedWindow, WindowAssembler

S = 1_000_000_000  # ns per second
MS = 1_000_000
B = 1_000 * S  # a base event time well past zero, so no window starts before the epoch


def frame(seq: int, t0: int, *, offset: int = 0, partition: int = 0, topic: str = "wf", n: int = 100,
          rate: float = 1000.0, channels: int = 1) -> Frame:
    """A windowing-ready frame. With the defaults it lasts n / rate = 100 / 1000 Hz = 0.1 s.

    partials[:, 0] is the sample count (Frame.end_ns uses it); partials[:, 1] carries ``seq`` as a
    marker so a test can tell which frames ended up in which window.
    """
    m = np.zeros((channels, 11))
    m[:, 0] = n
    m[:, 1] = seq
    return Frame("a", seq, t0, rate, None, Position(topic, partition, offset), m)


def reading(ts: int, value: float, metric: str = "temperature", *, offset: int = 0, partition: int = 0,
            topic: str = "rd") -> Reading:
    return Reading("a", ts, metric, value, Position(topic, partition, offset))


def markers(w: ClosedWindow) -> list[int]:
    return [int(m[0, 1]) for m in w.partials]


def spans(ws: list[ClosedWindow]) -> list[tuple[int, int]]:
    return [(w.start_ns, w.end_ns) for w in ws]


# ---------------------------------------------------------------------------------------------
def test_frame_end_uses_moment_count() -> None:
    f = frame(0, B, n=250, rate=1000.0)
    assert f.n_samples == 250
    assert f.end_ns == B + 250 * MS  # 250 samples at 1 kHz = 0.25 s


def test_constructor_rejects_bad_hop() -> None:
    with pytest.raises(ValueError):
        WindowAssembler(length_ns=S, hop_ns=2 * S, lateness_ns=0)
    with pytest.raises(ValueError):
        WindowAssembler(length_ns=S, hop_ns=0, lateness_ns=0)
    with pytest.raises(ValueError):
        WindowAssembler(length_ns=0, hop_ns=0, lateness_ns=0)


def test_tumbling_assignment_by_t0() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=10 * S, asset="a")
    # t0 = B+0.95 s: its data runs to B+1.05 s but it belongs to [B, B+1) by its first sample.
    # t0 = B+1.0 s exactly belongs to [B+1, B+2) (start <= t0 < end).
    closed, late = w.add([frame(1, B), frame(2, B + 500 * MS), frame(3, B + 950 * MS), frame(4, B + S),
                          frame(5, B + 1_999 * MS)])
    assert closed == [] and late == []  # lateness 10 s: nothing closes yet
    out = w.flush()
    assert spans(out) == [(B, B + S), (B + S, B + 2 * S)]
    assert [markers(c) for c in out] == [[1, 2, 3], [4, 5]]
    assert all(c.asset == "a" for c in out)
    assert [c.n_frames for c in out] == [3, 2]


def test_sliding_windows_put_a_frame_in_every_window_containing_t0() -> None:
    w = WindowAssembler(length_ns=2 * S, hop_ns=S, lateness_ns=10 * S)
    # windows start at multiples of 1 s and last 2 s:
    #   t0 = B+1.5 -> [B, B+2) and [B+1, B+3)
    #   t0 = B+2.0 -> [B+1, B+3) and [B+2, B+4)
    #   t0 = B+0.2 -> [B-1, B+1) and [B, B+2)
    w.add([frame(1, B + 1_500 * MS), frame(2, B + 2 * S), frame(3, B + 200 * MS)])
    out = w.flush()
    assert spans(out) == [(B - S, B + S), (B, B + 2 * S), (B + S, B + 3 * S), (B + 2 * S, B + 4 * S)]
    assert [sorted(markers(c)) for c in out] == [[3], [1, 3], [1, 2], [2]]


def test_sliding_windows_with_hop_not_dividing_length() -> None:
    w = WindowAssembler(length_ns=1000, hop_ns=300, lateness_ns=0)
    # windows containing t=950 start at a multiple of 300 in (950 - 1000, 950] = (-50, 950]: 0, 300, 600, 900
    w.add([reading(950, 1.0)])
    assert [c.start_ns for c in w.flush()] == [0, 300, 600, 900]
    w2 = WindowAssembler(length_ns=1000, hop_ns=300, lateness_ns=0)
    # t=1000: starts in (0, 1000] -> 300, 600, 900 (window [0, 1000) does not contain 1000)
    w2.add([reading(1000, 1.0)])
    assert [c.start_ns for c in w2.flush()] == [300, 600, 900]


def test_windows_close_in_order_when_watermark_passes_end() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=500 * MS)
    assert w.watermark_ns is None
    # One batch, scrambled: newest end is B+3.1 s, so the watermark is B+3.1 - 0.5 = B+2.6 s.
    # [B, B+1) and [B+1, B+2) end at or before it and close, in event-time order; [B+2, B+3) stays.
    closed, late = w.add([frame(4, B + 3 * S), frame(2, B + S), frame(3, B + 2 * S), frame(1, B)])
    assert late == []
    assert w.watermark_ns == B + 2_600 * MS
    assert spans(closed) == [(B, B + S), (B + S, B + 2 * S)]
    assert [markers(c) for c in closed] == [[1], [2]]
    # a frame ending at B+3.6 moves the watermark to B+3.1, past the end of [B+2, B+3)
    closed, late = w.add([frame(5, B + 3_500 * MS)])
    assert spans(closed) == [(B + 2 * S, B + 3 * S)] and markers(closed[0]) == [3]
    assert list(w.open) == [B + 3 * S]  # [B+3, B+4) holds frames 4 and 5


def test_window_closes_exactly_when_watermark_reaches_its_end() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    closed, _ = w.add([reading(B + 10, 1.0)])
    assert closed == []
    closed, _ = w.add([reading(B + S - 1, 2.0)])  # watermark one ns before the end: still open
    assert closed == []
    closed, _ = w.add([reading(B + S, 3.0)])  # watermark == end: closed
    assert spans(closed) == [(B, B + S)]
    assert closed[0].readings == {"temperature": (1.0, 2.0)}


def test_watermark_uses_frame_end_not_start() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    # t0 = B+0.95, 100 samples at 1 kHz -> end B+1.05: the watermark passes B+1 and [B, B+1) closes
    closed, _ = w.add([frame(1, B + 950 * MS)])
    assert w.watermark_ns == B + 1_050 * MS
    assert spans(closed) == [(B, B + S)] and markers(closed[0]) == [1]


def test_allowed_lateness_keeps_window_open_for_slightly_late_frame() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=500 * MS)
    w.add([frame(1, B + 200 * MS)])
    closed, _ = w.add([frame(2, B + 1_200 * MS)])  # end B+1.3 -> watermark B+0.8 < B+1
    assert closed == []
    closed, late = w.add([frame(3, B + 900 * MS)])  # out of order, but within the 0.5 s lateness
    assert closed == [] and late == []
    closed, late = w.add([frame(4, B + 1_600 * MS)])  # end B+1.7 -> watermark B+1.2 >= B+1
    assert late == []
    assert spans(closed) == [(B, B + S)]
    assert markers(closed[0]) == [1, 3]


def test_without_lateness_the_same_frame_is_late() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    w.add([frame(1, B + 200 * MS)])
    closed, _ = w.add([frame(2, B + 1_200 * MS)])  # watermark B+1.3 closes [B, B+1)
    assert spans(closed) == [(B, B + S)]
    late_frame = frame(3, B + 900 * MS)
    closed, late = w.add([late_frame])
    assert closed == [] and late == [late_frame]
    assert w.watermark_ns == B + 1_300 * MS  # a late item does not move the watermark
    out = w.flush()
    assert [markers(c) for c in out] == [[2]]  # not added anywhere


def test_late_when_earliest_sliding_window_closed_even_if_a_later_one_is_open() -> None:
    w = WindowAssembler(length_ns=2 * S, hop_ns=S, lateness_ns=0)
    w.add([frame(1, B + 1_500 * MS)])  # -> [B, B+2) and [B+1, B+3)
    closed, _ = w.add([frame(2, B + 2_500 * MS)])  # end B+2.6 closes [B, B+2) only
    assert spans(closed) == [(B, B + 2 * S)]
    late_frame = frame(3, B + 1_700 * MS)  # earliest window [B, B+2) is closed
    closed, late = w.add([late_frame])
    assert late == [late_frame] and closed == []
    out = w.flush()
    assert spans(out) == [(B + S, B + 3 * S), (B + 2 * S, B + 4 * S)]
    assert [markers(c) for c in out] == [[1, 2], [2]]  # frame 3 is in neither


def test_late_reading_is_returned() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    w.add([reading(B + 100, 1.0), reading(B + 2 * S, 2.0)])  # closes [B, B+1)
    r = reading(B + 500 * MS, 3.0)
    closed, late = w.add([r])
    assert late == [r] and closed == []


def test_readings_go_into_windows_by_metric() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=10 * S)
    w.add([
        frame(1, B + 100 * MS),
        reading(B + 100 * MS, 40.0),
        reading(B + 300 * MS, 3.5, "current"),
        reading(B + 500 * MS, 41.0),
        reading(B + 1_200 * MS, 50.0),
    ])
    first, second = w.flush()
    assert first.readings == {"temperature": (40.0, 41.0), "current": (3.5,)}
    assert first.n_frames == 1
    assert second.readings == {"temperature": (50.0,)}
    assert second.n_frames == 0 and second.partials == ()


def test_readings_in_sliding_windows() -> None:
    w = WindowAssembler(length_ns=2 * S, hop_ns=S, lateness_ns=10 * S)
    w.add([reading(B + 1_500 * MS, 7.0)])
    out = w.flush()
    assert spans(out) == [(B, B + 2 * S), (B + S, B + 3 * S)]
    assert [c.readings for c in out] == [{"temperature": (7.0,)}, {"temperature": (7.0,)}]


def test_flush_closes_all_in_order_and_later_items_in_them_are_late() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=100 * S)
    w.add([frame(3, B + 5 * S), frame(1, B), frame(2, B + 2 * S)])
    out = w.flush()
    assert spans(out) == [(B, B + S), (B + 2 * S, B + 3 * S), (B + 5 * S, B + 6 * S)]
    assert w.open == {}
    assert w.flush() == []
    f = frame(4, B + 5 * S + 10)
    closed, late = w.add([f])
    assert late == [f] and closed == []


def test_input_spans_and_seq_range_across_two_partitions() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=10 * S)
    w.add([
        frame(12, B + 100 * MS, offset=10, partition=0),
        frame(11, B + 200 * MS, offset=3, partition=1),
        frame(9, B + 300 * MS, offset=8, partition=0),
        frame(15, B + 400 * MS, offset=12, partition=0),
        frame(10, B + 500 * MS, offset=4, partition=1),
        reading(B + 600 * MS, 1.0, offset=100, partition=2),
        frame(30, B + 1_100 * MS, offset=13, partition=0),  # next window
    ])
    first, second = w.flush()
    # per (topic, partition): min and max offset seen; sorted by topic then partition
    assert first.inputs == (("rd", 2, 100, 100), ("wf", 0, 8, 12), ("wf", 1, 3, 4))
    assert (first.first_seq, first.last_seq) == (9, 15)
    assert second.inputs == (("wf", 0, 13, 13),)
    assert (second.first_seq, second.last_seq) == (30, 30)


def test_each_window_keeps_its_own_offsets_when_sliding() -> None:
    w = WindowAssembler(length_ns=2 * S, hop_ns=S, lateness_ns=10 * S)
    w.add([frame(1, B + 500 * MS, offset=1), frame(2, B + 1_500 * MS, offset=2), frame(3, B + 2_500 * MS, offset=3)])
    out = w.flush()
    # [B-1, B+1): 1   [B, B+2): 1, 2   [B+1, B+3): 2, 3   [B+2, B+4): 3
    assert [c.inputs for c in out] == [(("wf", 0, 1, 1),), (("wf", 0, 1, 2),), (("wf", 0, 2, 3),), (("wf", 0, 3, 3),)]
    assert [(c.first_seq, c.last_seq) for c in out] == [(1, 1), (1, 2), (2, 3), (3, 3)]


# ---------------------------------------------------------------------------------------------
# property: against a brute-force model of the documented rules, one item per add() call
# ---------------------------------------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(
    hop=st.integers(1, 5),
    extra=st.integers(0, 6),
    lateness=st.integers(0, 8),
    times=st.lists(st.integers(100, 160), min_size=1, max_size=30),
)
def test_windows_match_a_brute_force_model(hop: int, extra: int, lateness: int, times: list[int]) -> None:
    length = hop + extra
    w = WindowAssembler(length_ns=length, hop_ns=hop, lateness_ns=lateness)
    emitted: list[ClosedWindow] = []
    late_idx: set[int] = set()
    max_event: int | None = None
    for i, t in enumerate(times):
        # windows containing t: starts that are multiples of hop with start <= t < start + length
        expected = [s for s in range(t + 1) if s % hop == 0 and s <= t < s + length]
        closed_end = max((c.end_ns for c in emitted), default=None)
        should_be_late = closed_end is not None and expected[0] + length <= closed_end
        closed, late = w.add([reading(t, float(i))])
        assert (late != []) == should_be_late
        if should_be_late:
            late_idx.add(i)
        else:
            max_event = t if max_event is None else max(max_event, t)
        assert w.watermark_ns == max_event - lateness if max_event is not None else w.watermark_ns is None
        wm = w.watermark_ns
        assert all(c.end_ns <= wm for c in closed)
        assert all(s + length > wm for s in w.open)  # nothing closable is left open
        emitted += closed
    emitted += w.flush()
    starts = [c.start_ns for c in emitted]
    assert starts == sorted(set(starts))  # each window once, in event-time order
    assert all(c.end_ns - c.start_ns == length and c.start_ns % hop == 0 for c in emitted)
    got = {c.start_ns: sorted(c.readings.get("temperature", ())) for c in emitted}
    for i, t in enumerate(times):
        holding = sorted(s for s, vals in got.items() if float(i) in vals)
        if i in late_idx:
            assert holding == []
        else:
            assert holding == [s for s in range(t + 1) if s % hop == 0 and s <= t < s + length]


def test_frames_are_handed_over_in_event_time_order() -> None:
    """Out-of-order arrival: the closed window lists its frames by (t0, seq), so merges see time order."""
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0, asset="a")
    w.add([frame(3, B + 300 * MS), frame(1, B + 100 * MS), frame(2, B + 200 * MS)])
    done, late = w.add([frame(9, B + S + 10 * MS)])
    assert late == [] and len(done) == 1
    closed = done[0]
    assert markers(closed) == [1, 2, 3]
    assert len(closed.spectral) == closed.n_frames and closed.spectral[0] is None


def test_a_pause_of_every_stream_does_not_make_the_first_one_back_outrun_the_others() -> None:
    """After all streams were silent (a gateway reconnect), the stream that resumes first must not close
    windows past the other's data: idleness counts only while some other stream is delivering."""
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0, idle_s=5.0, expected=("frames", "readings"))
    w.add([frame(0, B), reading(B, 40.0)], now_s=0.0)
    # 100 s of wall-clock silence on both streams, then the readings come back first, 20 s ahead in event time
    closed, late = w.add([reading(B + 20 * S, 41.0)], now_s=100.0)
    assert late == [] and [c.end_ns for c in closed] == []  # the frames stream (at B + 0.1 s) still holds it
    closed, late = w.add([frame(1, B + S)], now_s=100.5)  # ... and its frames are not late
    assert late == [] and [c.end_ns for c in closed] == [B + S]
    # a stream that stays silent while the other delivers for more than idle_s does stop holding it back
    closed, _ = w.add([reading(B + 21 * S, 41.0)], now_s=103.0)
    assert closed == []  # frames silent for 2.5 s only
    closed, late = w.add([reading(B + 22 * S, 41.0)], now_s=106.0)  # frames silent 5.5 s while readings came
    assert late == [] and closed[-1].end_ns == B + 22 * S


# ---- the expected-stream wait ------------------------------------------------------------------------
def test_a_replay_waits_for_an_expected_stream_until_it_comes() -> None:
    """Without a wall clock (a bounded replay), frames alone close nothing while readings are expected:
    however far ahead the frames run, the watermark stays unset until the first reading arrives."""
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0, expected=("frames", "readings"))
    closed, _ = w.add([frame(k, B + k * S) for k in range(30)])
    assert closed == [] and w.watermark_ns is None and len(w.open) == 30
    closed, late = w.add([reading(B + 10 * S + 500 * MS, 1.0)])  # readings at B+10.5: the slower stream
    assert late == []
    assert w.watermark_ns == B + 10 * S + 500 * MS
    assert spans(closed) == [(B + k * S, B + (k + 1) * S) for k in range(10)]


def test_a_stream_that_is_not_expected_is_not_waited_for() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0, expected=("frames",))
    closed, _ = w.add([frame(0, B), frame(1, B + 2 * S)])
    assert spans(closed) == [(B, B + S)]


def test_tailing_waits_for_an_expected_stream_for_idle_s_after_the_first_input_and_not_a_moment_longer() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0, idle_s=5.0, expected=("frames", "readings"))
    closed, _ = w.add([frame(0, B)], now_s=100.0)
    assert closed == [] and w.first_arrival == 100.0
    closed, _ = w.add([frame(1, B + 3 * S)], now_s=103.0)
    assert closed == [] and w.first_arrival == 100.0  # the wait counts from the asset's first input
    closed, _ = w.add([frame(2, B + 4 * S)], now_s=105.0)  # exactly idle_s: still waiting
    assert closed == [] and w.watermark_ns is None
    closed, _ = w.add([frame(3, B + 5 * S)], now_s=105.001)  # past it: the readings stream is given up on
    assert spans(closed) == [(B + k * S, B + (k + 1) * S) for k in (0, 3, 4)]  # the windows that hold data


def test_an_expected_stream_that_arrived_is_never_waited_for_again() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0, idle_s=5.0, expected=("frames", "readings"))
    w.add([frame(0, B), reading(B + 5 * S, 1.0)], now_s=0.0)
    closed, _ = w.add([frame(1, B + 2 * S)], now_s=1.0)  # within idle_s, both streams known: no wait
    assert spans(closed) == [(B, B + S)] and w.watermark_ns == B + 2 * S + 100 * MS


def test_a_silent_stream_stops_holding_the_watermark_only_while_another_delivers() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0, idle_s=2.0, expected=("frames", "readings"))
    w.add([frame(0, B), reading(B, 1.0)], now_s=0.0)
    closed, _ = w.add([frame(1, B + 3 * S)], now_s=2.0)  # readings silent 2.0 s: not more than idle_s
    assert closed == [] and w.watermark_ns == B
    closed, _ = w.add([frame(2, B + 4 * S)], now_s=2.5)  # 2.5 s: readings no longer count
    assert w.watermark_ns == B + 4 * S + 100 * MS and spans(closed)[-1] == (B + 3 * S, B + 4 * S)


# ---- sequence order against time order ------------------------------------------------------------------
def test_frames_whose_seq_runs_against_time_are_handed_over_by_time_and_the_seq_range_spans_them() -> None:
    """A device that numbers frames backwards, or sends them out of order: the window hands them over by t0
    (the merge needs time order), and seq_range is (lowest, highest), whatever order they came in."""
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    w.add([frame(30, B + 100 * MS), frame(10, B + 300 * MS), frame(20, B + 200 * MS), frame(5, B + 400 * MS)])
    (c,) = w.add([frame(99, B + S)])[0]
    assert markers(c) == [30, 20, 10, 5]  # by t0, not by seq
    assert (c.first_seq, c.last_seq) == (5, 30)


def test_frames_with_the_same_t0_are_ordered_by_seq() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    w.add([frame(7, B + 100 * MS), frame(3, B + 100 * MS), frame(5, B)])
    (c,) = w.flush()
    assert markers(c) == [5, 3, 7]


def test_a_sequence_restart_inside_a_window_keeps_every_frame_in_time_order() -> None:
    """seq 0..2, the device restarts, seq 0..2 again at later times: six frames (the dedupe keys on (seq, t0),
    so none of them is a retransmit), ordered by time; seq_range covers both runs."""
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    first = [frame(k, B + k * 100 * MS, offset=k) for k in range(3)]
    again = [frame(k, B + (5 + k) * 100 * MS, offset=10 + k) for k in range(3)]
    w.add(again + first)
    (c,) = w.flush()
    assert c.n_frames == 6 and markers(c) == [0, 1, 2, 0, 1, 2]
    assert (c.first_seq, c.last_seq) == (0, 2)
    assert c.inputs == (("wf", 0, 0, 12),)


def test_seq_range_of_a_window_with_one_frame_and_of_a_readings_only_window() -> None:
    w = WindowAssembler(length_ns=S, hop_ns=S, lateness_ns=0)
    w.add([frame(2**64 - 1, B), reading(B + S + 1, 1.0)])
    a, b = w.flush()
    assert (a.first_seq, a.last_seq) == (2**64 - 1, 2**64 - 1)
    assert (b.first_seq, b.last_seq, b.n_frames) == (-1, -1, 0)
