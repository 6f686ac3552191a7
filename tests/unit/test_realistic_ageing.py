"""``RealisticSpec.drift_until_s``: ageing that settles. The drifting channel's gain follows the linear drift up
to ``drift_until_s`` and holds that value after it; without it (the default) the drift goes on, as before."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.sim.realistic import RealisticPlantSimulator, RealisticSpec

QUIET = {"diurnal_amp": 0.0, "weekly_amp": 0.0, "regimes": (1.0,), "bursts_per_hour": 0.0, "dropouts_per_hour": 0.0,
         "maintenance_fraction": 0.0, "drift_fraction": 1.0, "drift_gain_per_day": (500.0, 600.0)}


def sim(until: float | None) -> RealisticPlantSimulator:
    return RealisticPlantSimulator(2, duration_s=60.0, n_faults=0, seed=4, frame_samples=2_500,
                                   spec=RealisticSpec(**QUIET, drift_until_s=until))


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 60.0))
def test_the_gain_follows_the_drift_until_drift_until_s_then_holds(until: float) -> None:
    held, free = sim(until), sim(None)
    t = np.linspace(0.0, 60.0, 241)
    for aid in ("asset-000", "asset-001"):
        g_held, g_free = held.vibration_gain(aid, t), free.vibration_gain(aid, t)
        before = t <= until
        np.testing.assert_allclose(g_held[:, before], g_free[:, before])  # the same drift up to the end
        at_end = held.vibration_gain(aid, np.array([until]))[:, 0]
        np.testing.assert_allclose(g_held[:, ~before], np.repeat(at_end[:, None], (~before).sum(), axis=1))
        later = t >= until + 1.0  # while the free drift goes on (a sample just after until has hardly moved)
        if later.any():
            assert not np.allclose(g_free[:, later], g_held[:, later])
    ev = [e for e in held.events if e.kind == "sensor_drift"]
    assert len(ev) == 2 and all(e.end_ns == held.start_ns + round(until * 1e9) for e in ev)
    assert all(e.end_ns is None for e in free.events if e.kind == "sensor_drift")


def test_a_negative_drift_until_s_or_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="drift_until_s must be >= 0"):
        RealisticSpec(drift_until_s=-1.0)
    with pytest.raises(ValueError, match="drift_offset_s must be >= 0"):
        RealisticSpec(drift_offset_s=float("nan"))


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 200.0), st.one_of(st.none(), st.floats(0.0, 150.0)))
def test_a_run_can_start_into_the_drift(offset: float, until: float | None) -> None:
    """``drift_offset_s``: the gain at run time t is the drift's gain at t + offset (held after until)."""
    aged = RealisticPlantSimulator(2, duration_s=60.0, n_faults=0, seed=4, frame_samples=2_500,
                                   spec=RealisticSpec(**QUIET, drift_until_s=until, drift_offset_s=offset))
    free = sim(None)
    t = np.linspace(0.0, 60.0, 61)
    shifted = t + offset if until is None else np.minimum(t + offset, until)
    for aid in ("asset-000", "asset-001"):
        np.testing.assert_allclose(aged.vibration_gain(aid, t), free.vibration_gain(aid, shifted))
    ev = [e for e in aged.events if e.kind == "sensor_drift"]
    assert all(e.onset_ns == aged.start_ns - round(offset * 1e9) for e in ev)
