"""Tests for the seeded plant simulator (aiotstream.sim.plant)."""
from __future__ import annotations

import json
import math
import struct
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.codecs import decode_any, decode_frame, decode_reading
from aiotstream.errors import DecodeError
from aiotstream.records import Position
from aiotstream.sim.plant import (
    FAULT_KINDS,
    MALFORMED_CATEGORIES,
    AssetSpec,
    Fault,
    PlantSimulator,
    SimMessage,
    malformed_messages,
    read_waveform_file,
)

START = 1_767_225_600_000_000_000
POS = Position("test", 0, 0)
YEAR_2100_NS = 4_102_444_800_000_000_000


# ---- helpers ---------------------------------------------------------------------
def kurtosis(v: np.ndarray) -> float:
    """Pearson kurtosis (3 for a Gaussian)."""
    d = v - v.mean()
    return float((d**4).mean() / (d**2).mean() ** 2)


def rms(v: np.ndarray) -> float:
    return float(np.sqrt((v**2).mean()))


def single_fault_sim(kind: str, seed: int = 0, duration_s: float = 36.0) -> PlantSimulator:
    """One asset, one fault of ``kind``, onset in [20 s, duration - 15 s]."""
    return PlantSimulator(1, duration_s=duration_s, n_faults=1, fault_kinds=(kind,), seed=seed)


def signal(sim: PlantSimulator, asset: str) -> np.ndarray:
    """All of one asset's frames concatenated into (channels, samples) float64."""
    return np.concatenate([x for _a, _s, _t, x in sim.frames(asset)], axis=1).astype(np.float64)


def window(x: np.ndarray, sim: PlantSimulator, t0_s: float, t1_s: float) -> np.ndarray:
    fs = sim.assets[0].sample_rate_hz
    return x[:, round(t0_s * fs):round(t1_s * fs)]


def onset_s(sim: PlantSimulator, f: Fault) -> float:
    return (f.onset_ns - sim.start_ns) / 1e9


# ---- construction, counts, determinism ------------------------------------------------
def test_int_assets_defaults_and_counts() -> None:
    sim = PlantSimulator(3, duration_s=10.0, n_faults=0)
    assert [a.id for a in sim.assets] == ["asset-000", "asset-001", "asset-002"]
    assert sim.assets[0] == AssetSpec("asset-000")
    assert sim.assets[0].channels == ("x", "y", "z")
    assert sim.n_frames == 3 * math.floor(10.0 * 10_000 / 1024)
    assert sim.n_readings == 3 * 10
    msgs = list(sim.messages())
    kinds = Counter(m.stream for m in msgs)
    assert kinds == {"waveform": sim.n_frames, "reading": sim.n_readings}
    assert all(m.valid and m.label == "" for m in msgs)
    assert sum(1 for _ in sim.frames()) == sim.n_frames
    assert sum(1 for _ in sim.readings()) == sim.n_readings


def test_messages_decode_and_match_frames() -> None:
    sim = PlantSimulator(2, duration_s=3.0, n_faults=0, frame_samples=512, seed=4)
    frames = list(sim.frames())
    wave = [m for m in sim.messages() if m.stream == "waveform"]
    assert len(wave) == len(frames)
    for msg, (aid, seq, t0, x) in zip(wave, frames):
        f = decode_frame(msg.payload, POS)
        assert (f.asset, f.seq, f.t0_ns, f.sample_rate_hz) == (aid, seq, t0, 10_000.0)
        assert msg.asset == aid and msg.t_ns == t0
        assert x.dtype == np.float32 and x.shape == (3, 512)
        np.testing.assert_array_equal(f.samples, x)
    for msg in sim.messages():
        if msg.stream == "reading":
            r = decode_reading(msg.payload, POS)
            assert (r.asset, r.ts_ns, r.metric) == (msg.asset, msg.t_ns, "temperature")
            assert 39.0 < r.value < 56.5


def test_same_seed_identical_different_seed_different() -> None:
    kw: dict[str, Any] = {"duration_s": 36.0, "n_faults": 2, "seed": 11}
    a = [(m.stream, m.asset, m.t_ns, m.payload) for m in PlantSimulator(3, **kw).messages()]
    sim_b = PlantSimulator(3, **kw)
    b = [(m.stream, m.asset, m.t_ns, m.payload) for m in sim_b.messages()]
    assert a == b
    # iterating the same simulator again gives the same bytes
    assert [(m.stream, m.asset, m.t_ns, m.payload) for m in sim_b.messages()] == a
    kw["seed"] = 12
    sim_c = PlantSimulator(3, **kw)
    c = [(m.stream, m.asset, m.t_ns, m.payload) for m in sim_c.messages()]
    assert len(c) == len(a)
    assert [x[:3] for x in c] == [x[:3] for x in a]  # same schedule ...
    assert sum(x[3] != y[3] for x, y in zip(a, c)) == len(a)  # ... different data
    assert sim_c.faults != sim_b.faults


def test_frame_timestamps_and_seq() -> None:
    sim = PlantSimulator(1, duration_s=2.0, n_faults=0, frame_samples=300, sample_rate_hz=7_000.0)
    frames = list(sim.frames())
    assert [s for _a, s, _t, _x in frames] == list(range(len(frames)))
    for _a, k, t0, _x in frames:
        assert t0 == START + round(k * 300 / 7_000.0 * 1e9)
    assert sim.assets[0].sample_rate_hz == 7_000.0
    assert len(frames) == math.floor(2.0 * 7_000 / 300)


def test_phase_continuous_across_frames() -> None:
    """No healthy-signal jump at frame boundaries: boundary differences look like inner ones."""
    sim = PlantSimulator(1, duration_s=4.0, n_faults=0, frame_samples=256, seed=2)
    x = signal(sim, "asset-000")
    d = np.diff(x, axis=1)
    boundary = d[:, 255::256]
    assert np.abs(boundary).max() < 6 * d.std()


def test_event_time_order_with_mixed_rates_and_duck_typed_assets() -> None:
    assets = [
        SimpleNamespace(id="pump-b", line="l2", channels=["x", "y"], sample_rate_hz=8_000.0, rpm=1_500.0),
        AssetSpec("pump-a", sample_rate_hz=10_000.0, rpm=3_000.0),
        SimpleNamespace(id="fan-c", line="l1", channels=["x", "y", "z"], sample_rate_hz=5_120.0, rpm=900.0),
    ]
    sim = PlantSimulator(assets, duration_s=4.0, n_faults=0, frame_samples=512, temperature_interval_s=0.5)
    assert sim.assets[0] == AssetSpec("pump-b", "l2", ("x", "y"), 8_000.0, 1_500.0)
    msgs = list(sim.messages())
    assert len(msgs) == sim.n_frames + sim.n_readings
    keys = [(m.t_ns, m.asset, m.stream) for m in msgs]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    # at t = start every asset has both a reading and a frame: ordered by asset, reading first
    assert keys[:6] == [(START, a, s) for a in ("fan-c", "pump-a", "pump-b") for s in ("reading", "waveform")]
    per_asset = Counter((m.asset, m.stream) for m in msgs)
    assert per_asset[("pump-b", "waveform")] == math.floor(4.0 * 8_000 / 512)
    assert per_asset[("fan-c", "reading")] == 8
    shapes = {a: x.shape for a, _s, _t, x in sim.frames()}
    assert shapes == {"pump-b": (2, 512), "pump-a": (3, 512), "fan-c": (3, 512)}
    assert [t for _a, t, _m, _v in sim.readings()] == sorted(t for _a, t, _m, _v in sim.readings())


def test_frame_count_for_a_minute() -> None:
    # 60 s at 10 kHz in whole 1024-sample frames: floor(600_000 / 1024) = 585 per asset
    sim = PlantSimulator(5, duration_s=60.0, seed=0)
    assert sum(1 for _ in sim.frames()) == sim.n_frames == 5 * 585


# ---- ground truth ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_ground_truth_rules(seed: int) -> None:
    sim = PlantSimulator(6, duration_s=60.0, n_faults=5, seed=seed)
    assert len(sim.faults) == 5
    assert len({f.asset for f in sim.faults}) == 5
    assert {f.kind for f in sim.faults} == set(FAULT_KINDS)
    lo, hi = START + 20 * 10**9, START + 45 * 10**9
    channels = {a.id: a.channels for a in sim.assets}
    for f in sim.faults:
        assert lo <= f.onset_ns <= hi
        if f.kind == "sensor_stuck":
            assert 8e9 <= f.end_ns - f.onset_ns <= 15e9
            assert f.channel in channels[f.asset]
        elif f.kind == "spike_burst":
            assert 3e9 <= f.end_ns - f.onset_ns <= 6e9
            assert f.channel in channels[f.asset]
        else:
            assert f.end_ns is None and f.channel is None
    assert [f.onset_ns for f in sim.faults] == sorted(f.onset_ns for f in sim.faults)


@settings(max_examples=60, deadline=None)
@given(n_assets=st.integers(1, 12), data=st.data(), seed=st.integers(0, 2**32 - 1),
       warmup=st.floats(0.0, 30.0), extra=st.floats(0.0, 60.0))
def test_ground_truth_properties(n_assets: int, data: st.DataObject, seed: int, warmup: float, extra: float) -> None:
    n_faults = data.draw(st.integers(0, n_assets))
    kinds = data.draw(st.lists(st.sampled_from(FAULT_KINDS), min_size=1, max_size=5, unique=True))
    duration = warmup + 15.0 + extra
    sim = PlantSimulator(n_assets, duration_s=duration, n_faults=n_faults, fault_kinds=kinds,
                         warmup_s=warmup, seed=seed)
    assert len(sim.faults) == n_faults
    assert len({f.asset for f in sim.faults}) == n_faults
    assert {f.kind for f in sim.faults} <= set(kinds)
    if n_faults >= len(kinds):
        assert {f.kind for f in sim.faults} == set(kinds)
    lo = START + round(warmup * 1e9)
    hi = START + round((duration - 15.0) * 1e9)
    assert all(lo <= f.onset_ns <= hi for f in sim.faults)
    assert all(f.end_ns is None or f.end_ns <= sim.end_ns for f in sim.faults)
    same = PlantSimulator(n_assets, duration_s=duration, n_faults=n_faults, fault_kinds=kinds,
                          warmup_s=warmup, seed=seed)
    assert same.faults == sim.faults


def test_value_errors() -> None:
    with pytest.raises(ValueError, match="only 2 assets"):
        PlantSimulator(2, n_faults=3)
    with pytest.raises(ValueError, match="too short"):
        PlantSimulator(3, duration_s=30.0, warmup_s=20.0, n_faults=1)
    with pytest.raises(ValueError, match="unknown fault kind"):
        PlantSimulator(3, fault_kinds=("bearing_wear", "gremlins"))
    with pytest.raises(ValueError, match="unique"):
        PlantSimulator([AssetSpec("a"), AssetSpec("a")], n_faults=0)
    with pytest.raises(ValueError):
        PlantSimulator(0)
    with pytest.raises(ValueError):
        PlantSimulator(2, duration_s=0.0)
    # a short run is fine without faults
    assert PlantSimulator(2, duration_s=5.0, n_faults=0).faults == []


def test_fault_dict_round_trip() -> None:
    sim = PlantSimulator(5, n_faults=5, seed=3)
    for f in sim.faults:
        d = json.loads(json.dumps(f.to_dict()))
        assert Fault.from_dict(d) == f
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault.from_dict({"asset": "a", "kind": "nope", "onset_ns": 1, "end_ns": None, "channel": None})
    f = Fault("a", "spike_burst", 10, 20, "x")
    assert f.active_at(10) and f.active_at(19) and not f.active_at(20) and not f.active_at(9)


def test_truth_dict_and_write_truth(tmp_path: Path) -> None:
    sim = PlantSimulator(4, n_faults=3, seed=9, duration_s=40.0)
    p = sim.write_truth(tmp_path / "sub" / "truth.json")
    truth = json.loads(p.read_text())
    assert truth == json.loads(json.dumps(sim.truth_dict()))
    assert truth["seed"] == 9 and truth["start_ns"] == START and truth["duration_s"] == 40.0
    assert [a["id"] for a in truth["assets"]] == [a.id for a in sim.assets]
    assert [Fault.from_dict(d) for d in truth["faults"]] == sim.faults
    assert truth["counts"]["frames"] == sim.n_frames and truth["counts"]["readings"] == sim.n_readings


# ---- fault signatures ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bearing_wear_raises_kurtosis_and_rms(seed: int) -> None:
    sim = single_fault_sim("bearing_wear", seed)
    f = sim.faults[0]
    x = signal(sim, f.asset)
    on = onset_s(sim, f)
    pre = window(x, sim, on - 4.0, on - 1.0)
    post = window(x, sim, on + 3.0, on + 4.0)
    for c in (0, 1):  # radial channels
        assert 2.6 < kurtosis(pre[c]) < 3.3
        assert kurtosis(post[c]) > 6.0
        assert rms(post[c]) > 1.3 * rms(pre[c])
    # the axial channel sees it too, less
    assert rms(pre[2]) < rms(post[2]) < rms(post[0])
    # frame-sized windows after the ramp are impulsive too
    frames = post[:, : 9 * 1024].reshape(3, 9, 1024)
    assert np.median([kurtosis(frames[0, i]) for i in range(9)]) > 6.0
    # ramp: within the first 0.5 s the impacts are still small
    early = window(x, sim, on, on + 0.5)
    assert kurtosis(early[0]) < kurtosis(post[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_imbalance_raises_radial_rms(seed: int) -> None:
    sim = single_fault_sim("imbalance", seed)
    f = sim.faults[0]
    x = signal(sim, f.asset)
    on = onset_s(sim, f)
    pre = window(x, sim, on - 3.0, on - 1.0)
    post = window(x, sim, on + 1.5, on + 3.5)
    assert rms(post[0]) > 1.8 * rms(pre[0])
    assert rms(post[1]) > 1.8 * rms(pre[1])
    assert rms(post[2]) == pytest.approx(rms(pre[2]), rel=0.1)  # axial unchanged
    # the growth is at 1x running speed
    fs = 10_000
    spec_pre = np.abs(np.fft.rfft(pre[0]))
    spec_post = np.abs(np.fft.rfft(post[0]))
    freqs = np.fft.rfftfreq(pre.shape[1], 1 / fs)
    b1 = int(np.argmin(np.abs(freqs - sim.assets[0].rpm / 60)))
    assert spec_post[b1] > 4.0 * spec_pre[b1]
    assert int(np.argmax(spec_post)) == b1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sensor_stuck_holds_last_value(seed: int) -> None:
    sim = single_fault_sim("sensor_stuck", seed)
    f = sim.faults[0]
    assert f.channel is not None and f.end_ns is not None
    ci = sim.assets[0].channels.index(f.channel)
    x_all = {}
    for _a, _seq, t0, x in sim.frames(f.asset):
        x_all[t0] = x
    fs = sim.assets[0].sample_rate_hz
    x = np.concatenate(list(x_all.values()), axis=1)  # float32
    n_on = math.ceil((f.onset_ns - sim.start_ns) / 1e9 * fs - 1e-6)
    n_end = math.ceil((f.end_ns - sim.start_ns) / 1e9 * fs - 1e-6)
    stuck = x[ci, n_on:n_end]
    assert np.ptp(stuck) == 0.0 and stuck.astype(np.float64).std() < 1e-9
    assert np.all(stuck == x[ci, n_on - 1])
    assert x[ci, n_on - 1] != x[ci, n_on - 2]
    # whole frames inside the fault have std exactly 0 on that channel, others keep moving
    for t0, fr in x_all.items():
        if t0 >= f.onset_ns and t0 + round(1024 / fs * 1e9) <= f.end_ns:
            assert np.ptp(fr[ci]) == 0.0 and float(fr[ci].std()) < 1e-6
            assert all(float(fr[c].std()) > 0.1 for c in range(3) if c != ci)
    # alive again afterwards
    assert x[ci, n_end:n_end + 1000].std() > 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spike_burst_raises_crest_factor(seed: int) -> None:
    sim = single_fault_sim("spike_burst", seed)
    f = sim.faults[0]
    assert f.channel is not None and f.end_ns is not None
    ci = sim.assets[0].channels.index(f.channel)
    x = signal(sim, f.asset)
    on = onset_s(sim, f)
    end = (f.end_ns - sim.start_ns) / 1e9
    pre = window(x, sim, on - 3.0, on)
    during = window(x, sim, on, end)
    after = window(x, sim, end, end + 2.0)

    def crest(v: np.ndarray) -> float:
        return float(np.abs(v).max() / rms(v))

    assert crest(pre[ci]) < 6.0
    assert crest(during[ci]) > 8.0
    assert crest(after[ci]) < 6.0
    assert kurtosis(during[ci]) > 6.0
    # roughly 50 spikes/s above 7 sigma of the healthy signal
    n_big = int(np.count_nonzero(np.abs(during[ci]) > 7 * pre[ci].std()))
    assert 25 * (end - on) < n_big < 75 * (end - on)
    others = [c for c in range(3) if c != ci]
    for c in others:
        assert crest(during[c]) < 6.5


def test_temperature_drift_slope() -> None:
    sim = single_fault_sim("temperature_drift", seed=5, duration_s=50.0)
    f = sim.faults[0]
    r = list(sim.readings())
    ts = np.array([t for _a, t, _m, _v in r])
    v = np.array([val for _a, _t, _m, val in r])
    pre, post = ts < f.onset_ns, ts >= f.onset_ns
    slope_post = np.polyfit((ts[post] - f.onset_ns) / 1e9, v[post], 1)[0]
    slope_pre = np.polyfit((ts[pre] - START) / 1e9, v[pre], 1)[0]
    assert slope_post == pytest.approx(0.3, abs=0.02)
    assert abs(slope_pre) < 0.02
    assert v[-1] - v[pre].mean() > 0.3 * ((ts[-1] - f.onset_ns) / 1e9) - 0.5
    assert v[pre].std() < 0.2
    # the waveform is untouched by a temperature fault
    x = signal(sim, f.asset)
    on = onset_s(sim, f)
    assert rms(window(x, sim, on + 2, on + 4)[0]) == pytest.approx(rms(window(x, sim, on - 4, on - 2)[0]), rel=0.1)


def test_healthy_assets_stay_healthy() -> None:
    sim = PlantSimulator(4, duration_s=36.0, n_faults=1, seed=7)
    faulty = {f.asset for f in sim.faults}
    healthy = next(a.id for a in sim.assets if a.id not in faulty)
    x = signal(sim, healthy)
    for c in range(3):
        early, late = x[c, :100_000], x[c, -100_000:]
        assert rms(late) == pytest.approx(rms(early), rel=0.05)
        assert 2.5 < kurtosis(late) < 3.5


# ---- malformed inputs ---------------------------------------------------------------------
def test_malformed_categories_and_counts() -> None:
    msgs = malformed_messages(70, assets=["asset-000", "asset-001"], start_ns=START, seed=5)
    assert len(msgs) == 70
    assert all(isinstance(m, SimMessage) and not m.valid for m in msgs)
    assert Counter(m.label for m in msgs) == {c: 10 for c in MALFORMED_CATEGORIES}
    few = malformed_messages(10, assets=["a"], start_ns=START, seed=1)
    counts = Counter(m.label for m in few)
    assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == 7
    assert malformed_messages(0, assets=["a"], start_ns=START, seed=1) == []


def test_malformed_messages_fail_or_are_detectable() -> None:
    assets = ["asset-000", "asset-001"]
    msgs = malformed_messages(140, assets=assets, start_ns=START, seed=8)
    reasons: dict[str, set[str]] = {c: set() for c in MALFORMED_CATEGORIES}
    for m in msgs:
        if m.label == "random_bytes":
            assert m.stream == "waveform" and 0 <= len(m.payload) <= 200
        if m.label == "malformed_json":
            assert m.stream == "reading"
        try:
            rec = decode_any(m.payload, POS)
        except DecodeError as e:
            reasons[m.label].add(e.reason)
            continue
        # the ones that decode are wrong in what they say
        if m.label == "unknown_asset":
            assert rec.asset not in assets and rec.asset == m.asset
        elif m.label == "future_timestamp":
            assert rec.t0_ns >= YEAR_2100_NS and m.t_ns == rec.t0_ns and rec.asset in assets
        else:
            pytest.fail(f"{m.label} message decoded: {m.payload[:60]!r}")
    assert reasons["wrong_length"] == {"length_mismatch"}
    assert reasons["non_finite_samples"] == {"non_finite"}
    assert reasons["truncated_frame"] == {"truncated_header", "length_mismatch"}
    assert reasons["malformed_json"] >= {"bad_json", "bad_reading"}
    assert reasons["random_bytes"] <= {"empty", "unknown_format", "bad_json"}
    assert reasons["unknown_asset"] == reasons["future_timestamp"] == set()


def test_malformed_json_variants() -> None:
    msgs = [m for m in malformed_messages(56, assets=["a"], start_ns=START, seed=3) if m.label == "malformed_json"]
    assert len(msgs) == 8
    seen = Counter()
    for m in msgs:
        try:
            obj = orjson.loads(m.payload)
        except orjson.JSONDecodeError:
            seen["broken"] += 1
            continue
        if set(obj) != {"asset", "ts", "metric", "value"}:
            seen["missing"] += 1
        elif obj["value"] == "NaN":
            seen["nan_string"] += 1
        else:
            assert isinstance(obj["value"], str)
            seen["non_numeric"] += 1
    assert seen == {"broken": 2, "missing": 2, "nan_string": 2, "non_numeric": 2}


def test_malformed_deterministic_and_wrong_length_both_ways() -> None:
    a = malformed_messages(35, assets=["a", "b"], start_ns=START, seed=4)
    assert a == malformed_messages(35, assets=["a", "b"], start_ns=START, seed=4)
    assert a != malformed_messages(35, assets=["a", "b"], start_ns=START, seed=5)
    more = fewer = 0
    for m in malformed_messages(280, assets=["a"], start_ns=START, seed=2):
        if m.label == "wrong_length":
            declared = struct.unpack_from("<I", m.payload, 8)[0]
            present = (len(m.payload) - 38 - 1) // (3 * 4)
            more += declared > present
            fewer += declared < present
    assert more > 0 and fewer > 0


# ---- files ------------------------------------------------------------------------------------
def test_write_files_round_trip(tmp_path: Path) -> None:
    sim = PlantSimulator(3, duration_s=36.0, n_faults=2, seed=21, frame_samples=2048)
    counts = sim.write_files(tmp_path / "out")
    assert counts["frames"] == sim.n_frames and counts["readings"] == sim.n_readings
    assert counts["faults"] == 2
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"waveforms.bin", "readings.jsonl", "truth.json"}
    # parse the length prefixes by hand
    data = (out / "waveforms.bin").read_bytes()
    assert len(data) == counts["waveform_bytes"]
    off, raws = 0, []
    while off < len(data):
        (size,) = struct.unpack_from("<I", data, off)
        raws.append(data[off + 4: off + 4 + size])
        off += 4 + size
    assert off == len(data) and len(raws) == sim.n_frames
    assert raws == list(read_waveform_file(out / "waveforms.bin"))
    expected = [m.payload for m in sim.messages() if m.stream == "waveform"]
    assert raws == expected
    decoded = [decode_frame(r, POS) for r in raws]
    assert [(f.t0_ns, f.asset) for f in decoded] == sorted((f.t0_ns, f.asset) for f in decoded)
    lines = (out / "readings.jsonl").read_bytes().splitlines()
    assert len(lines) == sim.n_readings
    assert all(decode_reading(line, POS).metric == "temperature" for line in lines)
    truth = json.loads((out / "truth.json").read_text())
    assert [Fault.from_dict(d) for d in truth["faults"]] == sim.faults
    assert truth["counts"]["frames"] == sim.n_frames


def test_read_waveform_file_rejects_truncation(tmp_path: Path) -> None:
    p = tmp_path / "w.bin"
    p.write_bytes(struct.pack("<I", 100) + b"x" * 10)
    with pytest.raises(ValueError, match="declares 100 bytes"):
        list(read_waveform_file(p))


def test_simulate_cli_names_a_run_too_short_for_its_faults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aiotstream.cli import main

    assert main(["simulate", "--assets", "4", "--duration", "5", "--out-dir", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aiotstream: simulate: run too short for faults") and "Traceback" not in err
    assert main(["simulate", "--assets", "2", "--duration", "5", "--faults", "0", "--out-dir", str(tmp_path / "y"),
                 "--file-partitions", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == [
        "readings-part00.jsonl", "readings-part01.jsonl", "truth.json", "waveforms-part00.bin", "waveforms-part01.bin"]
