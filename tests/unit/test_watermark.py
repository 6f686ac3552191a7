"""``WindowAssembler.watermark_ns`` against its earlier, plainer code, over every state it can be asked in.

The watermark is asked once per batch of every asset (each live frame): it has a shortcut for one stream
(whether idle or not, it is the slowest active stream or, with none active, the slowest stream). Whatever
the streams' progress and arrivals, the wall clock or none, the expected streams, the idle time, a resumption
after a silence and the lateness, it must answer what the plain code answers.
"""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.windows import WindowAssembler

S = 1_000_000_000
STREAMS = ("frames", "readings", "other")


def plain(w: WindowAssembler) -> int | None:
    """The watermark as it was written before the one-stream shortcut (2026-12-06)."""
    if not w.progress:
        return None
    now = w.now_s
    if now is None:
        for s in w.expected:
            if s not in w.progress:
                return None
        return min(w.progress.values()) - w.lateness_ns
    waiting = now is None or (w.first_arrival is not None and now - w.first_arrival <= w.idle_s)
    if waiting and any(s not in w.progress for s in w.expected):
        return None
    resumed = getattr(w, "resumed_at", None)
    active = [t for s, t in w.progress.items()
              if now is None or now - max(w.last_arrival[s], resumed if resumed is not None else -math.inf)
              <= w.idle_s]
    return min(active or w.progress.values()) - w.lateness_ns


CLOCK = st.sampled_from((0.0, 1.0, 1.999, 2.0, 2.001, 5.0, 100.0))


@st.composite
def _state(draw: st.DrawFn) -> WindowAssembler:
    w = WindowAssembler(S, S, draw(st.sampled_from((0, S // 4, S))), asset="a",
                        idle_s=draw(st.sampled_from((0.0, 2.0, 5.0))),
                        expected=draw(st.sampled_from(((), ("frames",), ("readings",), ("frames", "readings")))))
    streams = draw(st.lists(st.sampled_from(STREAMS), unique=True, max_size=3))
    w.progress = {s: draw(st.integers(0, 20)) * S // 4 for s in streams}
    w.now_s = draw(st.none() | CLOCK)
    if w.now_s is not None:
        w.last_arrival = {s: draw(CLOCK) for s in streams}
        w.first_arrival = draw(st.none() | CLOCK)
        w.resumed_at = draw(st.none() | CLOCK)
        if draw(st.booleans()):  # a snapshot from before resumptions were kept
            del w.resumed_at
    return w


@settings(max_examples=2000, deadline=None)
@given(_state())
def test_the_watermark_is_the_plain_codes(w: WindowAssembler) -> None:
    assert w.watermark_ns == plain(w)


def test_one_stream_counts_idle_or_not_and_two_streams_skip_the_idle_one() -> None:
    w = WindowAssembler(S, S, 0, asset="a", idle_s=2.0)
    w.now_s, w.first_arrival = 10.0, 0.0
    w.progress, w.last_arrival = {"frames": 7 * S}, {"frames": 1.0}  # silent for 9 s
    assert w.watermark_ns == 7 * S
    w.progress, w.last_arrival = {"frames": 7 * S, "readings": 3 * S}, {"frames": 9.5, "readings": 1.0}
    assert w.watermark_ns == 7 * S  # the silent readings do not hold the frames back
    w.last_arrival["readings"] = 8.0
    assert w.watermark_ns == 3 * S  # within idle_s: they do
    w.resumed_at = 9.0  # every stream was silent until 9.0: silence counts from then
    w.last_arrival["readings"] = 1.0
    assert w.watermark_ns == 3 * S


def test_an_expected_stream_is_waited_for_only_within_idle_s_of_the_first_input() -> None:
    w = WindowAssembler(S, S, S // 4, asset="a", idle_s=2.0, expected=("frames", "readings"))
    w.progress, w.last_arrival, w.first_arrival = {"frames": 5 * S}, {"frames": 4.0}, 2.0
    w.now_s = 4.0
    assert w.watermark_ns is None  # exactly idle_s after the first input: still waiting
    w.now_s = 4.001
    assert w.watermark_ns == 5 * S - S // 4
    w.now_s = None  # a bounded replay waits until the input ends
    assert w.watermark_ns is None
