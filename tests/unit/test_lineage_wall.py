"""``produced_at`` (aiotstream.lineage.wall_iso): the text of the wall-clock second is kept from one call to
the next and only the microseconds are formatted; the strings are strftime's '%Y-%m-%dT%H:%M:%S.%fZ'."""
from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.lineage import FlowContext, iso_ns, wall_iso

FMT = "%Y-%m-%dT%H:%M:%S.%fZ"
LO, HI = 946_684_800 * 10**9, 4_102_444_800 * 10**9  # 2000 .. 2100


def _strftime(t_ns: int) -> str:
    """The instant truncated to the microsecond, formatted by datetime (integers only: no float rounding)."""
    us = t_ns // 1000
    return datetime.fromtimestamp(us // 10**6, tz=UTC).replace(microsecond=us % 10**6).strftime(FMT)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(LO, HI), min_size=1, max_size=30), st.integers(0, 3),
       st.lists(st.integers(0, 10**9 - 1), max_size=10))
def test_wall_iso_is_strftimes_text_of_the_microsecond_whatever_the_order(times: list[int], spread: int,
                                                                         offsets: list[int]) -> None:
    """Times in any order, many in one second (the kept text reused), some in the next or an earlier one."""
    base = times[0] - times[0] % 10**9
    seq = times + [base + o + k * spread * 10**9 for k, o in enumerate(offsets)]
    for t in seq:
        assert wall_iso(t) == _strftime(t)


@settings(max_examples=300, deadline=None)
@given(st.integers(LO // 1000, HI // 1000))
def test_wall_iso_of_a_whole_microsecond_is_iso_ns(us: int) -> None:
    """On a whole microsecond (iso_ns' float rounding exact there) it is iso_ns' text."""
    assert wall_iso(us * 1000) == iso_ns(us * 1000)


def test_produced_at_is_wall_iso_of_now() -> None:
    import time

    t0 = time.time_ns()
    got = FlowContext("s", "f", "1", "h").block(inputs=[], window=None, features=None, model=None)["produced_at"]
    t1 = time.time_ns()
    assert _strftime(t0) <= got <= _strftime(t1) and len(got) == len(_strftime(t0))
