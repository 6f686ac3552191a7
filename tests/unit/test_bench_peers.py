"""The benchmark peers compute the same window features as aiotstream's numpy twin, and the harness's
pure helpers (latency planning, percentiles, report) do what they say."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotstream.codecs import encode_frame
from aiotstream.features.reference import moment_features as reference_features
from benchmarks.latency import percentiles, plan
from benchmarks.peers import common as peer
from benchmarks.peers.numpy_batch import decode, window_features

pytestmark = pytest.mark.filterwarnings("error")


def _signal(rng: np.random.Generator, channels: int = 3, n: int = 10 * 1024) -> np.ndarray:
    t = np.arange(n) / 10_000
    base = 0.2 * np.sin(2 * np.pi * 30 * t) + rng.normal(0.1, 0.3, (channels, n))
    base[1] += rng.standard_t(3, n) * 0.2  # heavy tails: kurtosis well away from 3
    return base.astype(np.float32)


def test_peer_features_from_samples_match_the_reference_twin() -> None:
    x = _signal(np.random.default_rng(1))
    got = peer.features_from_samples(x)
    want = reference_features(x.astype(np.float64))  # (3, 9)
    assert list(got) == [f"{c}.{f}" for c in peer.CHANNELS for f in peer.FEATURES]
    np.testing.assert_allclose(np.array(list(got.values())).reshape(3, 9), want, rtol=1e-9, atol=1e-12)


def test_merged_power_sums_give_the_same_features_as_the_whole_window() -> None:
    x = _signal(np.random.default_rng(2))
    sums = peer.power_sums(x[:, :1024])
    for k in range(1, 10):
        sums = peer.merge_power_sums(sums, peer.power_sums(x[:, k * 1024:(k + 1) * 1024]))
    got = np.array(list(peer.features_from_power_sums(sums).values())).reshape(3, 9)
    np.testing.assert_allclose(got, reference_features(x.astype(np.float64)), rtol=1e-6, atol=1e-9)


def test_peer_frame_decoder_reads_aiotstream_frames() -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    asset, t0, rate, samples = peer.decode_frame(encode_frame("pump-7", 4, 123, 10_000.0, x))
    assert (asset, t0, rate) == ("pump-7", 123, 10_000.0)
    np.testing.assert_array_equal(samples, x)
    with pytest.raises(ValueError, match="not a frame"):
        peer.decode_frame(b"XXXX" + bytes(60))


def test_numpy_batch_windows_match_the_reference_per_asset_and_window() -> None:
    rng = np.random.default_rng(3)
    t0s = [round(k * 1024 / 10_000 * 1e9) for k in range(20)]  # 2.05 s: windows of 10 and 10 frames
    frames = {a: [_signal(rng, n=1024) for _ in t0s] for a in ("a-1", "a-2")}
    values = [encode_frame(a, k, t0, 10_000.0, frames[a][k]) for k, t0 in enumerate(t0s) for a in frames]
    samples, asset, starts = decode(values)
    for chunk in (1, 3, 7):  # decoded a few frames at a time: the same arrays (the last chunk a short one)
        for got, want in zip(decode(values, chunk=chunk), (samples, asset, starts)):
            np.testing.assert_array_equal(got, want)
    feats = window_features(samples, asset, starts)
    assert feats.shape == (4, 3, 9)  # 2 assets x 2 windows, sorted by asset then window
    i = 0
    for a in ("a-1", "a-2"):
        for w in (0, 1):
            members = [f for f, t in zip(frames[a], t0s) if t // 1_000_000_000 == w]
            want = reference_features(np.concatenate(members, axis=1).astype(np.float64))
            np.testing.assert_allclose(feats[i], want, rtol=1e-6, atol=1e-9)
            i += 1


def test_latency_plan_and_percentiles() -> None:
    assert plan(3_000_000, 400) == (100, 1.0)
    assets, speed = plan(30_000_000, 400)
    assert assets == 400 and speed == pytest.approx(2.5)
    assert plan(1, 400) == (1, 1.0)  # under one asset's load: one asset in real time (event time = wall time)
    assert plan(2_000_000, 400) == (67, 1.0)  # rounds up to whole real-time assets (2.01 M samples/s)
    assert plan(12_030_000, 400) == (400, pytest.approx(1.0025))  # capped: faster than real time
    p = percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert (p["n"], p["p50_ms"], p["max_ms"]) == (100, 50.5, 100.0)
    assert p["p99_ms"] == pytest.approx(99.0, abs=0.05)  # numpy linear interpolation, rounded to 0.1 ms
    assert percentiles([]) == {"n": 0}


@given(st.lists(st.floats(0.0, 5.0), min_size=1, max_size=300), st.sampled_from([0.5, 0.9, 0.99]))
def test_histogram_quantile_lands_in_the_bucket_of_the_exact_quantile(values: list[float], q: float) -> None:
    """Prometheus' histogram_quantile over the flow's buckets: the result lies in the bucket that holds the
    exact (lower) q-quantile of the observations, as the interpolation promises, and never above the top."""
    from bisect import bisect_left

    from aiotstream.runstats import BUCKETS
    from benchmarks.latency import histogram_delta, histogram_quantile

    bounds = BUCKETS["output_latency_seconds"]
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[bisect_left(bounds, v)] += 1
    cum, total = [], 0
    for le, n in zip((*bounds, float("inf")), counts):
        total += n
        cum.append((float(le), float(total)))
    got = histogram_quantile(q, cum)
    rank = q * len(values)
    exact = sorted(values)[max(0, math.ceil(rank) - 1)]  # the observation at that rank
    i = bisect_left(bounds, exact)
    lo = 0.0 if i == 0 else bounds[i - 1]
    hi = bounds[i] if i < len(bounds) else bounds[-1]
    assert lo - 1e-12 <= got <= hi + 1e-12, (got, exact, lo, hi)
    assert histogram_delta([(le, 0.0) for le, _ in cum], cum) == cum


def test_update_readme_replaces_only_the_results_block(tmp_path) -> None:
    from benchmarks.report import BEGIN, END, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# B\nhand-written\n{BEGIN}\nold run\n{END}\ntail\n")
    update_readme(readme, "new run\n")
    assert readme.read_text() == f"# B\nhand-written\n{BEGIN}\nnew run\n{END}\ntail\n"
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="no <!-- results:begin -->"):
        update_readme(tmp_path / "plain.md", "x")


@pytest.mark.parametrize("flow", ["pm-readings", "pm-readings-nodetect"])
def test_the_readings_only_benchmark_sites_close_windows_on_the_readings_own_progress(flow: str) -> None:
    """The e2e scalar workload sends readings only; its assets must not wait for a frames stream, which a
    bounded replay waits for until the input ends (every window held to the end: 7.1 GB for 3 M readings)."""
    from aiotstream.config import SiteConfig
    from aiotstream.pdm.asset import _expected_streams
    from benchmarks.scalar import SCALAR_FLOWS
    from benchmarks.workload import ScalarData

    data = ScalarData("bench.scalar", 10, 10.0, 5.0, 500, 0.1)
    cfg = SiteConfig.from_dict(SCALAR_FLOWS[flow].site("s", data))
    assert _expected_streams(cfg) == ("readings",)
    assert cfg.scalar.enabled is (flow == "pm-readings")
