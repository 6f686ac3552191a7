"""The lineage's event-time text (``window.start``/``end``, KPI periods) formatted without strftime where it
can be (``_iso_whole_us``) is ``iso_ns``'s, character for character, for any time: whole microseconds (the
fast way: within one second, across seconds, at a second's last microsecond, up to where ``iso_ns``'s float
stops rounding to the exact microsecond, 2**32 s) and not (iso_ns itself), before 1970 and far ahead."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.lineage import _iso_whole_us, iso_ns

S = 1_000_000_000
LAST = (1 << 32) * S - 1000  # the last whole microsecond formatted the fast way
whole_us = st.integers(0, 1 << 32).flatmap(lambda s: st.integers(0, 999_999).map(lambda us: s * S + us * 1000))
edges = st.sampled_from([0, 999_999_000, S - 1000, 1_767_225_599_999_999_000, LAST, LAST + 1000, LAST + 2000,
                         4_294_967_296_041_122_000, 1 << 61, (1 << 61) + 1000 * 1023, 1_767_225_599_999_999_500,
                         -1000, -S, 1_767_225_600_000_000_001])
any_time = st.integers(-62_135_596_800 * S, 253_402_300_799 * S)  # (years 1-9999: what datetime takes)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(whole_us, edges, any_time), min_size=1, max_size=8))
def test_the_fast_text_is_iso_ns(times: list[int]) -> None:
    for t in times:  # (several a call: the second kept from the call before is reused or replaced)
        assert _iso_whole_us(t) == iso_ns(t), t


def test_the_seconds_text_is_replaced_when_the_second_changes() -> None:
    a, b = 1_767_225_599_999_999_000, 1_767_225_600_000_001_000
    assert [_iso_whole_us(t) for t in (a, b, a)] == \
        ["2025-12-31T23:59:59.999999Z", "2026-01-01T00:00:00.000001Z", "2025-12-31T23:59:59.999999Z"]


def test_the_remembered_texts_stay_bounded_and_right() -> None:
    """A staggered site makes a new bound nearly every window: the remembered texts are emptied at 16,384, and
    every text, remembered or made again, is iso_ns's."""
    from aiotstream import lineage

    base = 1_767_225_600 * S
    times = [base + i * 1_499_000 for i in range(20_000)]
    for t in times + times[:100]:
        assert lineage._iso_event(t) == iso_ns(t)
        assert len(lineage._event_texts) <= 16_384
    assert lineage.window_block(times[0], times[1])["end"] == iso_ns(times[1])
