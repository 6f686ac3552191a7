"""KSWIN and per-feature drift on simulator features; the [model] drift settings' validation."""
from __future__ import annotations

import numpy as np
import pytest

from aiotstream.config import default_site
from aiotstream.errors import ConfigError, ModelError
from aiotstream.models.online import DriftWatch, FeatureDrift, make_drift_detector
from aiotstream.models.train import WindowRows
from aiotstream.pdm.training import training_config, window_rows
from aiotstream.sim.plant import Fault, PlantSimulator

S = 1_000_000_000
ONSET_S = 150
CFG = training_config(default_site(1))


def rows(seed: int, shifted: bool) -> WindowRows:
    """300 one-second windows of one asset; with ``shifted`` an imbalance from 150 s (x/y rms about double,
    the axial z channel unchanged)."""
    probe = PlantSimulator(CFG.all_assets(), duration_s=1.0, n_faults=0, seed=seed)
    faults = [Fault("asset-000", "imbalance", probe.start_ns + ONSET_S * S, None, None)] if shifted else []
    return window_rows(CFG, PlantSimulator(CFG.all_assets(), duration_s=300.0, seed=seed, faults=faults))


def fired(r: WindowRows, watched: list[str], kind: str = "kswin", delta: float = 1e-4) -> list[tuple[int, str]]:
    fd = FeatureDrift(r.columns, watched, kind, delta=delta, seed=7)
    return [(i, f) for i, row in enumerate(r.X) for f in fd.update(row)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kswin_fires_on_a_shifted_feature_only_and_not_on_a_stationary_stream(seed: int) -> None:
    watched = ["x.rms", "z.rms"]
    assert fired(rows(seed, shifted=False), watched) == []
    events = fired(rows(seed, shifted=True), watched)
    assert [f for _, f in events] == ["x.rms"]  # z (axial) does not see an imbalance
    (at, _), = events
    assert ONSET_S <= at <= ONSET_S + 30  # KSWIN tests the last 30 windows: it fires within them


def test_feature_drift_rejects_unknown_columns_and_skips_missing_values() -> None:
    with pytest.raises(ModelError, match=r"\['x.rmss'\] are not feature columns"):
        FeatureDrift(["x.rms"], ["x.rmss"], "kswin")
    fd = FeatureDrift(["a"], ["a"], "adwin", delta=0.002)
    assert [fd.update(np.array([np.nan])) for _ in range(500)] == [[]] * 500
    assert fd.detectors[0].n_detections == 0 and fd.detectors[0].width == 0  # NaN never reached the detector


def test_drift_watch_on_the_score_takes_kswin_and_names_the_choices() -> None:
    w = DriftWatch("kswin", delta=1e-4, seed=3)
    rng = np.random.default_rng(5)
    flags = [w.update(v) for v in rng.uniform(0.0, 0.3, 300)] + [w.update(v) for v in rng.uniform(0.5, 0.9, 60)]
    assert not any(flags[:300]) and any(flags[300:])
    with pytest.raises(ModelError, match="adwin, page_hinkley, kswin"):
        make_drift_detector("ddm")
    with pytest.raises(ModelError, match="stat_size"):
        make_drift_detector("kswin", stat_size=100, window_size=100)


def test_model_drift_config_is_validated_with_field_paths() -> None:
    ok = default_site(2, model={"drift_detector": "kswin", "drift_delta": 1e-4,
                                "drift_features": ["x.rms", "temperature.mean"]})
    assert ok.model.drift_features == ["x.rms", "temperature.mean"] and ok.model.drift_window_size == 100
    cases = {
        "model.drift_features[1]": {"drift_features": ["x.rms", "x.rmss"]},
        "model.drift_features": {"drift_features": ["x.rms"], "drift_detector": "none"},
        "model.drift_stat_size": {"drift_stat_size": 200},
        "model.drift_detector": {"drift_detector": "kswim"},
        "model.drift_window_size": {"drift_window_size": 5},
    }
    for path, model in cases.items():
        with pytest.raises(ConfigError) as e:
            default_site(2, model=model)
        assert [p for p, _ in e.value.problems] == [path], (path, e.value.problems)
    with pytest.raises(ConfigError, match="did you mean 'x.rms'"):
        default_site(2, model={"drift_features": ["x.rmss"]})
    with pytest.raises(ConfigError, match="listed more than once"):
        default_site(2, model={"drift_features": ["x.rms", "x.rms"]})
    spectral = default_site(1, features={"set": "vibration-spectral", "bands": [[0, 100], [100, 1000]]},
                            model={"drift_features": ["y.band_100_1000", "x.e1x"]})
    assert spectral.model.drift_features == ["y.band_100_1000", "x.e1x"]
