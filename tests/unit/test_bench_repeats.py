"""The statistics of a repeated, interleaved e2e benchmark (``benchmarks/repeats.py``, issue 21): medians,
spread and its flag, the median of the per-round ratios, and how ``benchmarks.e2e`` judges the goals on them.
Hand-computed values first, then properties."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import e2e, repeats


def test_spread_hand_computed() -> None:
    # (15 - 8) / 10, over the median (the mean, 11, would give 0.636)
    assert repeats.spread([8.0, 10.0, 15.0]) == pytest.approx(0.7)
    # even count: median (10 + 11) / 2 = 10.5; (12 - 9) / 10.5
    assert repeats.spread([9.0, 10.0, 11.0, 12.0]) == pytest.approx(3 / 10.5)
    assert repeats.spread([5.0]) is None  # one run: no spread to tell
    assert repeats.spread([]) is None


def test_figure_flags_spread_above_twenty_percent_only() -> None:
    ok = repeats.figure([100_000, 110_000, 90_000])  # (110 - 90) / 100 = 0.20: at the limit, not above
    assert (ok["median"], ok["min"], ok["max"], ok["n"]) == (100_000, 90_000, 110_000, 3)
    assert ok["spread"] == pytest.approx(0.2) and ok["noisy"] is False
    noisy = repeats.figure([100_000, 111_000, 90_000])  # 21 / 100 = 0.21
    assert noisy["spread"] == pytest.approx(0.21) and noisy["noisy"] is True
    one = repeats.figure([123_456])
    assert one["median"] == 123_456 and one["spread"] is None and one["noisy"] is None


def test_figure_leaves_failed_runs_out() -> None:
    f = repeats.figure([10.0, None, 14.0, 12.0])
    assert f["runs"] == [10.0, None, 14.0, 12.0] and f["n"] == 3
    assert (f["median"], f["min"], f["max"]) == (12.0, 10.0, 14.0)
    assert f["spread"] == pytest.approx(4 / 12, abs=1e-4)  # 4 decimals in the JSON
    assert repeats.figure([None, None])["median"] is None


def test_median_of_pairwise_ratios_is_not_ratio_of_medians() -> None:
    ours = [100.0, 200.0, 300.0]
    peer = [10.0, 40.0, 10.0]
    # per-round ratios 10, 5, 30 -> median 10; the ratio of the medians would be 200 / 10 = 20
    assert repeats.pairwise_ratios(ours, peer) == [10.0, 5.0, 30.0]
    r = repeats.ratio(ours, peer)
    assert (r["median"], r["min"], r["max"]) == (10.0, 5.0, 30.0)
    assert r["spread"] == pytest.approx(2.5) and r["noisy"] is True
    # even number of rounds: ratios 2, 4, 5, 10 -> median 4.5
    assert repeats.ratio([2.0, 8.0, 5.0, 30.0], [1.0, 2.0, 1.0, 3.0])["median"] == 4.5


def test_pairwise_ratios_pair_by_round() -> None:
    # a failed run leaves its round's ratio out; it never pairs with another round's run
    assert repeats.pairwise_ratios([4.0, None, 9.0], [2.0, 3.0, None]) == [2.0, None, None]
    with pytest.raises(ValueError):
        repeats.pairwise_ratios([1.0, 2.0], [1.0])


def test_median_index_picks_the_median_run() -> None:
    assert repeats.median_index([30.0, 10.0, 20.0]) == 2
    assert repeats.median_index([40.0, 10.0, 30.0, 20.0]) == 3  # lower middle of 10, 20, 30, 40
    assert repeats.median_index([None, 7.0]) == 1
    assert repeats.median_index([None]) is None


def test_e2e_goals_are_judged_on_medians_of_pairwise_ratios() -> None:
    values = {"ours_1p": [20e6, 30e6, 25e6], "bytewax_items": [1e6, 2e6, 1e6], "scalar": [250e3, 240e3, 260e3]}
    res = {"repeats": {"n": 3, **e2e.repeat_stats(values)}, "latency": {"runs": []}}
    s = e2e.summarise(res)
    # ratios 20, 15, 25 -> 20 (the ratio of the medians would be 25 / 1 = 25)
    assert s["ratios"]["ours_vs_bytewax_items"] == 20.0
    t = s["targets"]["ratio_vs_bytewax_items"]
    assert t["measured"] == 20.0 and t["met"] is True and t["runs"] == 3
    assert t["spread"] == pytest.approx(0.5) and t["noisy"] is True
    w = s["targets"]["waveform_samples_per_s_per_worker"]
    assert w["measured"] == 25_000_000 and w["met"] is True and w["noisy"] is True  # (30 - 20) / 25 = 0.4
    sc = s["targets"]["scalar_events_per_s_per_worker"]
    assert sc["measured"] == 250_000 and sc["met"] is True and sc["noisy"] is False  # 20 / 250 = 0.08
    assert s["targets"]["ratio_vs_quix"]["measured"] is None and s["targets"]["ratio_vs_quix"]["met"] is None


def test_e2e_latency_goal_uses_the_tuned_configs_median_p99() -> None:
    values = {"latency_0_p99_ms": [900.0, 950.0], "latency_1_p99_ms": [100.0, 300.0, 200.0]}
    runs = [{"config": 0, "score": {"n": 0}, "epoch_s": 0.05, "fetch_wait_max_ms": 10},
            {"config": 1, "score": {"n": 5}, "epoch_s": 1.0, "fetch_wait_max_ms": None}]
    s = e2e.summarise({"repeats": e2e.repeat_stats(values), "latency": {"runs": runs}})
    lat = s["targets"]["latency_p99_ms"]
    assert lat["measured"] == 200.0 and lat["met"] is True and lat["at"] == {"epoch_s": 1.0, "fetch_wait_max_ms": None}


def test_ratios_keep_three_significant_digits_figures_their_own() -> None:
    # as the single-run report gave them: a ratio in 3 significant digits, a figure as recorded
    assert repeats.ratio([1.0], [3.0])["median"] == 0.333
    assert repeats.ratio([123_456.0], [10.0])["median"] == 12_300.0
    assert repeats.figure([2191.3])["median"] == 2191.3


rates = st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(rates, rates), min_size=1, max_size=15))
def test_median_of_ratios_lies_between_min_and_max_ratio(pairs: list[tuple[float, float]]) -> None:
    ours, peer = [a for a, _ in pairs], [b for _, b in pairs]
    r = repeats.ratio(ours, peer)
    ratios = [a / b for a, b in pairs]
    assert r["n"] == len(pairs)
    assert r["min"] <= r["median"] <= r["max"]
    assert min(ratios) * (1 - 1e-2) <= r["median"] <= max(ratios) * (1 + 1e-2)  # 3 significant digits
    assert r["spread"] is None if len(pairs) == 1 else r["spread"] >= 0


@given(rates, st.integers(min_value=2, max_value=12))
def test_equal_runs_have_zero_spread_and_no_flag(x: float, n: int) -> None:
    f = repeats.figure([x] * n)
    assert f["spread"] == 0 and f["noisy"] is False
    assert f["min"] == f["median"] == f["max"]
    assert repeats.ratio([x] * n, [x] * n)["median"] == 1.0


@given(st.lists(rates, min_size=2, max_size=12), st.floats(min_value=1e-3, max_value=1e3))
def test_spread_does_not_depend_on_the_unit(values: list[float], scale: float) -> None:
    a, b = repeats.spread(values), repeats.spread([v * scale for v in values])
    assert a == pytest.approx(b, rel=1e-9, abs=1e-12)

