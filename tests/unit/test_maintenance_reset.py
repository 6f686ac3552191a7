"""Maintenance resets (issue 17 item 3): a maintenance feedback message with ``reset: true`` says the work
reset the machine, so the level after the window is a new normal: the asset's window detector and scalar
streaming detector re-baseline there (a new warm-up, a change event) instead of alerting on the shift.
The same shift without the message still alerts."""
from __future__ import annotations

import pickle

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.codecs import decode_feedback
from aiotstream.config import ScalarConfig, default_site
from aiotstream.errors import DecodeError
from aiotstream.evaluation.simulated import score_run
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.pdm.scalar import ScalarScorer
from aiotstream.records import Output, Position, SourceMessage
from aiotstream.sim.realistic import RealisticPlantSimulator, RealisticSpec

S = 1_000_000_000
T = 1_767_225_600 * S
POS = Position("s.feedback", 0, 1)


def _msg(**fields: object) -> bytes:
    return orjson.dumps({"schema": "aiotstream.feedback/1", "type": "maintenance", "ts": T, "asset": "p1",
                         "start": T, "end": T + 10, **fields})


# ---- the message ----------------------------------------------------------------------------------------
def test_reset_is_a_strict_flag_of_maintenance_feedback() -> None:
    assert decode_feedback(_msg(), POS).reset is False  # default: a window only suppresses alerts
    assert decode_feedback(_msg(reset=True), POS).reset is True
    for bad in (1, "true", None, [True]):
        with pytest.raises(DecodeError, match="'reset' must be true or false") as exc:
            decode_feedback(_msg(reset=bad), POS)
        assert exc.value.reason == "bad_feedback"
    with pytest.raises(DecodeError, match="unknown field"):  # only maintenance feedback has it
        decode_feedback(orjson.dumps({"schema": "aiotstream.feedback/1", "type": "ack", "ts": T, "asset": "p1",
                                      "alert_type": "anomaly", "reset": True}), POS)


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(reset=_json, extra=st.dictionaries(st.sampled_from(["start", "end", "line", "window_id"]), _json,
                                          max_size=2))
def test_fuzz_reset_decodes_or_is_refused_with_a_reason(reset: object, extra: dict) -> None:
    raw = _msg(**{**extra, "reset": reset})
    try:
        fb = decode_feedback(raw, POS)
    except DecodeError as exc:
        assert exc.reason in ("bad_feedback", "bad_timestamp") and str(exc)
        assert not (isinstance(reset, bool) and not extra), "a true/false reset of a valid window is refused"
        assert isinstance(reset, bool) or "'reset' must be true or false" in str(exc)
        return
    assert isinstance(fb.reset, bool) and fb.reset is orjson.loads(raw)["reset"]


# ---- the scalar streaming detector ---------------------------------------------------------------------
def _rows(shift_at: int = 600, n: int = 900, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated channels at 1 Hz; from ``shift_at`` on both move by 8 of their sd, for good."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1))
    x = np.hstack([60 + 0.5 * (base + 0.3 * rng.normal(size=(n, 1))), 12 + 0.2 * (base + 0.3 * rng.normal(size=(n, 1)))])
    x[shift_at:] += [8 * 0.5, 8 * 0.2]
    return T + np.arange(n, dtype=np.int64) * S, x


def _scalar_run(reset: bool, resume: bool = False) -> tuple[list, ScalarScorer]:
    sc = ScalarScorer(ScalarConfig(block_s=0))
    ts, x = _rows()
    blocks = []
    for lo in range(0, len(ts), 50):
        if reset and lo == 550:  # the message arrives before the maintenance ends (at row 600)
            sc.rebaseline(int(ts[600]))
            if resume:  # a recovery snapshot between the message and the rows after the reset
                sc = pickle.loads(pickle.dumps(sc))
        for t, row in zip(ts[lo:lo + 50], x[lo:lo + 50]):
            sc.add(int(t), "a", float(row[0]))
            sc.add(int(t), "b", float(row[1]))
        blocks += sc.step(int(ts[min(lo + 50, len(ts) - 1)]) + 1)
    return blocks, sc


@pytest.mark.parametrize("resume", [False, True])
def test_scalar_detector_rebaselines_at_a_reset_and_learns_the_new_level(resume: bool) -> None:
    blocks, sc = _scalar_run(reset=True, resume=resume)
    after = [b for b in blocks if b.ts[0] >= T + 600 * S]
    assert after and not any(b.result.alert.any() for b in after)  # the shift raises nothing
    # the block that reaches the reset starts afresh there and says so, for every channel
    first = after[0]
    assert first.ts[0] == T + 600 * S and first.rows_before == 0
    assert sorted(e.channel for e in first.resets) == [0, 1]
    for e in first.resets:
        assert e.new_level - e.old_level == pytest.approx([8 * 0.5, 8 * 0.2][e.channel], rel=0.2)
    # the detector re-learnt: its baseline sits on the new level, its config is the same
    assert sc.detector is not None and sc.detector.baseline.level == pytest.approx([64.0, 13.6], abs=0.3)
    assert sc.detector.cfg == sc.detector_config and sc.rebaseline_ns is None


def test_the_same_shift_without_the_reset_alerts() -> None:
    blocks, _ = _scalar_run(reset=False)
    assert any(b.result.alert.any() for b in blocks if b.ts[0] >= T + 600 * S)
    assert not any(b.resets for b in blocks)


# ---- one asset through its analyzer: window detector, scalar detector, alert book --------------------------
def _sim() -> RealisticPlantSimulator:
    """One asset, maintenance and nothing else (no faults, bursts, dropouts, drift or regime changes); its
    reset moves the vibration gain by x1.4 and the temperature by 2.5 C."""
    spec = RealisticSpec(regimes=(1.0,), diurnal_amp=0.0, weekly_amp=0.0, drift_fraction=0.0,
                         bursts_per_hour=0.0, dropouts_per_hour=0.0, maintenance_fraction=1.0,
                         maintenance_s=(20.0, 20.0), reset_gain=(1.4, 1.4), reset_temp_c=(2.5, 2.5))
    return RealisticPlantSimulator(1, duration_s=240.0, n_faults=0, seed=2, spec=spec, frame_samples=2_000)


def _analyze(with_feedback: bool, resume: bool = False,
             kind: str = "calibrated") -> tuple[list[Output], AssetAnalyzer, int, int]:
    sim = _sim()
    cfg = default_site(1, inputs={"tail": False}, assets=[{"id": sim.assets[0].id}], model={"kind": kind})
    rt = SiteRuntime(cfg)
    ingest = Ingestor(rt, now_ns=lambda: sim.start_ns + 10**13)
    topic = {"waveform": "demo-plant.waveforms", "reading": "demo-plant.readings",
             "feedback": "demo-plant.feedback"}
    msgs = [SourceMessage(topic[m.stream], 0, i, m.payload) for i, m in enumerate(sim.messages())
            if with_feedback or m.stream != "feedback"]
    items = [it for _, it in (x for x in ingest.decode_batch(msgs) if isinstance(x, tuple))]
    a = AssetAnalyzer(rt, sim.assets[0].id)
    outs: list[Output] = []
    resumed = False
    for lo in range(0, len(items), 5):
        outs += a.on_items(items[lo:lo + 5], 0.0)
        if resume and not resumed and a.rebaseline_ns is not None:  # the message is in, its end is not
            assert a.scalar is not None and a.scalar.rebaseline_ns == a.rebaseline_ns
            a, resumed = pickle.loads(pickle.dumps(a)).attach(rt), True
    assert resumed == resume
    outs += a.flush()
    (reset,) = [e for e in sim.events if e.kind == "maintenance_reset"]
    assert reset.end_ns is not None
    # counted as `aiotstream evaluate --simulate` counts: fault alerts from the maintenance to 600 s after it
    r = score_run(sim.truth_dict(), [o.record for o in outs if o.kind == "alert"])
    assert r["maintenance_resets"]["resets"] == 1
    return outs, a, reset.end_ns, r["maintenance_resets"]["with_fault_alert"]


@pytest.mark.parametrize("resume", [False, True])
def test_a_maintenance_reset_through_the_analyzer_raises_no_alert(resume: bool) -> None:
    outs, a, end, with_alert = _analyze(with_feedback=True, resume=resume)
    assert with_alert == 0
    # both detectors started afresh after the reset and learnt the new normal (warm again)
    scores = [o.record for o in outs if o.kind == "score"]
    first_after = next(r for r in scores if r["window"]["end_ns"] > end)
    assert first_after["warm"] is False and scores[-1]["warm"] is True
    assert a.rebaseline_ns is None and a.scalar is not None and a.scalar.rebaseline_ns is None
    changes = [c for o in outs if o.kind == "scalar" for c in o.record["changes"]]
    assert any(c["ts_ns"] >= end for c in changes)
    kpi = sum(o.record["totals"].get("baseline_changes", 0) for o in outs if o.kind == "kpi")
    assert kpi >= 1


def test_a_refused_reset_window_rebaselines_nothing() -> None:
    cfg = default_site(1, inputs={"tail": False}, assets=[{"id": "p1"}])
    a = AssetAnalyzer(SiteRuntime(cfg), "p1")
    day = 86_400 * S
    for end, refused in ((T + 8 * day, True), (T + day, False)):  # at most 7 days (alerts.maintenance_max_s)
        fb = decode_feedback(_msg(end=end, reset=True, window_id=f"w{end}"), POS)
        a.on_items([fb], 0.0)
        outs = a.flush()
        assert [o.record["reason"] for o in outs if o.kind == "deadletter"] == (["maintenance_too_long"]
                                                                                 if refused else [])
        assert a.rebaseline_ns == (None if refused else end)


def test_the_same_reset_without_the_message_alerts_with_the_zscore_window_detector() -> None:
    _, _, _, with_alert = _analyze(with_feedback=False, kind="zscore")
    assert with_alert == 1


def test_without_the_message_the_calibrated_detector_takes_the_gain_change_for_the_load() -> None:
    """The reset multiplies every channel's vibration by 1.4 (and moves the temperature): the calibrated
    window detector's load factor takes that for a change of operating condition (a change event, the
    temperatures re-baselined, the scalar detector held), so even without the message no alert opens."""
    outs, _, _, with_alert = _analyze(with_feedback=False)
    assert with_alert == 0
    assert any("condition_change" in o.record for o in outs if o.kind == "score")
