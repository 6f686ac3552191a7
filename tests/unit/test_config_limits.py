"""Issue 15 items 9-11: no number in a site config can disable a limit or overflow at run, and formats are named
truthfully. A walk over the whole config schema tries NaN, +-inf, 1e308, 0 and negative values on every numeric
field: each is refused with a ConfigError naming that field's path, or accepted only where the value means
something (and then the flow's runtime builds from it)."""
from __future__ import annotations

import copy
import math
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from aiotstream.config import SiteConfig
from aiotstream.energy.runtime import BuildingRuntime
from aiotstream.energy.zone import ZoneState
from aiotstream.errors import ConfigError
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.runtime import SiteRuntime

# A plant site with every optional table present (so every numeric field of the schema is reachable).
FULL_PLANT: dict[str, Any] = {
    "site": {"id": "p", "flow": "predictive-maintenance"},
    "assets": [{"id": "a1", "line": "l1", "sample_rate_hz": 10_000, "rpm": 1800, "ideal_cycle_time_s": 2.0}],
    "asset_groups": [{"prefix": "g-", "count": 1, "width": 2, "line": "l2", "sample_rate_hz": 10_000, "rpm": 1500,
                      "ideal_cycle_time_s": 2.0}],
    "inputs": {
        "kind": "kafka", "poll_batch": 1000,
        "mqtt": {"port": 1883, "qos": 1, "keepalive_s": 30, "reconnect_min_s": 1, "reconnect_max_s": 30,
                 "session_expiry_s": 3600, "receive_maximum": 100, "queue_size": 1000,
                 "subscriptions": [{"filter": "p/+/+", "asset": "{1}", "metric": "{2}", "format": "json"}]},
        "opcua": {"endpoint": "opc.tcp://127.0.0.1:4840", "sampling_interval_ms": 100, "publishing_interval_ms": 500,
                  "timeout_s": 4, "reconnect_max_s": 30, "queue_size": 1000,
                  "nodes": [{"node_id": "ns=2;i=1", "asset": "a1", "metric": "temperature"}]},
        "files": {"paths": ["x.csv"], "speed": 1.0},
    },
    "window": {"length_s": 1.0, "hop_s": 1.0, "allowed_lateness_s": 0.5, "max_future_s": 300, "idle_close_s": 5,
               "state_ttl_s": 3600},
    "features": {"set": "vibration-spectral", "bands": [[0.0, 200.0], [200.0, 1000.0]]},
    "model": {"kind": "zscore", "warmup_windows": 20, "n_trees": 5, "height": 4, "window_size": 50, "seed": 1,
              "drift_detector": "kswin", "drift_delta": 0.01, "drift_window_size": 100, "drift_stat_size": 30,
              "onnx": {"registry": "reg", "max_batch": 64, "max_delay_ms": 50, "threads": 1, "canary": "2",
                       "canary_fraction": 0.5,
                       "gate": {"threshold": 0.8, "assets": 2, "duration_s": 240, "faults": 2, "seed": 3}}},
    "alerts": {"open_threshold": 0.9, "clear_threshold": 0.6, "open_windows": 2, "open_of": 3, "clear_windows": 2,
               "clear_of": 3, "cooldown_s": 30, "critical_threshold": 0.99, "escalate_after_s": 900,
               "max_escalations": 2, "explain_top": 3, "history": 100, "maintenance_max_s": 86_400,
               "maintenance_max_windows": 16,
               "rules": [{"type": "hot", "signal": "temperature.max", "open_threshold": 80.0, "clear_threshold": 75.0,
                          "critical_threshold": 90.0, "open_windows": 1, "open_of": 2, "clear_windows": 1,
                          "clear_of": 2, "cooldown_s": 10}]},
    "kpi": {"periods_s": [10.0, 60.0], "shifts": [{"name": "A", "start": "06:00", "hours": 8.0}],
            "energy_max_gap_s": 300, "rollup_wait_s": 60},
    "maintenance": [{"start": "2026-01-01T06:00:00Z", "end": "2026-01-01T07:00:00Z", "line": "l1"}],
    "control": {
        "actuators": [{"name": "speed", "initial": 1800.0, "min": 600.0, "max": 1800.0, "max_step": 300.0,
                       "max_rate_per_s": 50.0, "min_interval_s": 5.0, "ack_timeout_s": 30.0, "max_retries": 2,
                       "interlocks": [{"name": "hot", "metric": "temperature", "above": 90.0, "below": -20.0}]}],
        "rules": [{"name": "slow", "actuator": "speed", "mode": "approval", "approval_timeout_s": 300,
                   "when": {"kpi": "oee", "kpi_period_s": 10.0, "above": 0.9, "below": 0.1},
                   "action": {"set": 1200.0}, "revert": {"delta": 100.0}},
                  {"name": "scale", "actuator": "speed", "when": {"signal": "score", "above": 0.5},
                   "action": {"scale": 0.9}}]},
    "outputs": {"partitions": 3, "mqtt": {"port": 1883, "qos": 1, "publish_timeout_s": 60},
                "parquet": {"directory": "pq", "max_rows_per_file": 1000}},
}

FULL_BUILDING: dict[str, Any] = {
    "site": {"id": "b", "flow": "energy-optimization"},
    "kpi": {"periods_s": [60.0]},
    "building": {"interval_s": 60, "day_s": 86_400, "utc_offset_h": 1.0,
                 "zones": [{"id": "z1", "floor": "f1"}],
                 "zone_groups": [{"prefix": "zg-", "count": 2, "width": 2, "floor": "f2"}],
                 "baseline": {"warmup_intervals": 10, "learning_rate": 0.02, "drift_delta": 0.002},
                 "waste": {"empty_hvac_after_s": 900, "empty_hvac_fraction": 0.5, "simultaneous_after_s": 600,
                           "simultaneous_fraction": 0.5, "clear_intervals": 2, "night_start_h": 1.0,
                           "night_end_h": 5.0, "baseload_learn_nights": 7, "baseload_creep": 0.15,
                           "baseload_nights": 2, "cooldown_s": 60}},
}

# Where 0 means something (documented: off, never, at once, none, the first hour of the day, ...).
ZERO_MEANS_SOMETHING = {
    "allowed_lateness_s", "state_ttl_s", "cooldown_s", "escalate_after_s", "max_escalations", "explain_top",
    "min_interval_s", "ack_timeout_s", "max_retries", "sampling_interval_ms", "max_delay_ms", "session_expiry_s",
    "speed", "clear_threshold", "threshold", "canary_fraction", "night_start_h", "utc_offset_h", "seed", "qos",
    "bands",  # a band may start at 0 Hz
    "max_deadletter_payload_bytes",  # 0: every dead letter keeps only the prefix, length and sha256
    "seq_wrap",  # 0: the sequence number never wraps
}
# Values in a physical unit (thresholds, setpoints, bounds, offsets): 0 and negative values are meaningful.
SIGNED = {"open_threshold", "clear_threshold", "critical_threshold", "initial", "min", "max", "above", "below", "set", "delta",
          "scale", "utc_offset_h"}
SIGNED_PATHS_EXCLUDED = {"alerts.open_threshold", "alerts.critical_threshold"}  # the detector score: in (0, 1]
BAD = (math.nan, math.inf, -math.inf, 1e308, 0, -1, -1e308)


def _numeric(tp: Any) -> bool:
    args = typing.get_args(tp)
    if tp in (int, float):
        return True
    return bool(args) and any(_numeric(a) for a in args if a is not type(None))


def _models(tp: Any) -> list[type[BaseModel]]:
    args = typing.get_args(tp) or (tp,)
    out = []
    for a in args:
        if isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
        elif typing.get_origin(a) in (list, types.UnionType, typing.Union):
            out += _models(a)
    return out


def numeric_fields(model: type[BaseModel], data: dict, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every numeric field reachable in ``data`` (the model's tables present there): (path, annotation)."""
    out: list[tuple[tuple, Any]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        sub = _models(ann)
        value = data.get(name)
        if sub:
            if isinstance(value, dict):
                out += numeric_fields(sub[0], value, path + (name,))
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                out += numeric_fields(sub[0], value[0], path + (name, 0))
        elif _numeric(ann) and ann is not bool:
            out.append((path + (name,), ann))
    return out


def path_str(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (("." if i else "") + p) for i, p in enumerate(path))


def with_value(data: dict, path: tuple, value: Any, ann: Any) -> dict:
    d = copy.deepcopy(data)
    node = d
    for p in path[:-1]:
        node = node[p]
    name = path[-1]
    if typing.get_origin(typing.get_args(ann)[0] if typing.get_args(ann) else ann) is list or \
            typing.get_origin(ann) is list:
        current = node.get(name) or [1.0]
        first = current[0]
        node[name] = [[value, first[1]] if isinstance(first, list) else value] + current[1:]
    else:
        node[name] = value
    return d


def runs(cfg: SiteConfig) -> None:
    """What `run` builds first from a config (and what raised OverflowError on an inf duration)."""
    if cfg.building is not None:
        rt = BuildingRuntime(cfg)
        ZoneState(rt, cfg.building.all_zones()[0].id)
        return
    rt = SiteRuntime(cfg)
    for a in cfg.all_assets():
        AssetAnalyzer(rt, a.id)


CASES = [(base, path, ann) for base in (FULL_PLANT, FULL_BUILDING)
         for path, ann in numeric_fields(SiteConfig, base)]


def test_the_full_configs_load_and_run_and_the_walk_reaches_every_table() -> None:
    for base in (FULL_PLANT, FULL_BUILDING):
        runs(SiteConfig.from_dict(base))
    reached = {path_str(p) for _, p, _ in CASES}
    for where in ("control.actuators[0].min", "control.actuators[0].interlocks[0].above", "alerts.rules[0].cooldown_s",
                  "inputs.opcua.sampling_interval_ms", "model.onnx.gate.seed", "kpi.periods_s", "features.bands",
                  "building.waste.night_start_h", "outputs.mqtt.publish_timeout_s", "control.rules[0].revert.delta"):
        assert where in reached, where
    assert len(CASES) > 120


@pytest.mark.parametrize(("base", "path", "ann"), CASES, ids=[path_str(p) for _, p, _ in CASES])
def test_every_numeric_field_refuses_what_is_meaningless(base: dict, path: tuple, ann: Any) -> None:
    where, name = path_str(path), str(path[-1])
    parent = path_str(path[:-1]) or "<root>"
    for value in BAD:
        meaningful = (value == 0 and (name in ZERO_MEANS_SOMETHING or name in SIGNED)) or (
            value == -1 and name in SIGNED)
        meaningful = meaningful and where not in SIGNED_PATHS_EXCLUDED
        try:
            cfg = SiteConfig.from_dict(with_value(base, path, value, ann))
        except ConfigError as e:
            named = [(p, m) for p, m in e.problems
                     if p == where or p.startswith(where + "[") or (p == parent and name in m)]
            assert named, f"{where} = {value!r}: refused, but not naming the field: {e.problems}"
            continue
        assert meaningful, f"{where} = {value!r} was accepted"
        runs(cfg)  # accepted: it must run


def test_actuator_bounds_of_nan_are_refused() -> None:
    """Issue 15 item 9: min/max = nan passed validation and the envelope then never blocked."""
    for key in ("min", "max", "initial", "max_step", "max_rate_per_s"):
        data = with_value(FULL_PLANT, ("control", "actuators", 0, key), math.nan, float)
        with pytest.raises(ConfigError) as e:
            SiteConfig.from_dict(data)
        assert e.value.problems == [(f"control.actuators[0].{key}", "must be a finite number (got nan)")]


@pytest.mark.parametrize("value", [math.inf, 1e308, 1e20])
@pytest.mark.parametrize("where", [("window", "length_s"), ("window", "max_future_s"), ("window", "state_ttl_s"),
                                   ("alerts", "escalate_after_s"), ("alerts", "cooldown_s"),
                                   ("kpi", "energy_max_gap_s"), ("kpi", "rollup_wait_s")])
def test_inf_or_huge_durations_are_refused_at_load_not_overflowing_at_run(where: tuple, value: float) -> None:
    """Issue 15 item 10: inf or 1e308 durations passed validation and raised OverflowError at run."""
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict(with_value(FULL_PLANT, where, value, float))
    assert [p for p, _ in e.value.problems] == [".".join(where)]


def test_loading_a_file_names_the_formats_truthfully(tmp_path: Path) -> None:
    """Issue 15 item 11: ``conf.yaml`` was parsed as TOML and the error said "not valid yaml"."""
    yaml_text = "site:\n  id: y1\nassets:\n  - id: a1\n    line: l1\nwindow:\n  length_s: 2.0\n  hop_s: 1.0\n"
    for suffix in (".yaml", ".yml"):
        f = tmp_path / f"conf{suffix}"
        f.write_text(yaml_text)
        cfg = SiteConfig.load(f)
        assert (cfg.site.id, cfg.window.length_s, [a.id for a in cfg.all_assets()]) == ("y1", 2.0, ["a1"])
    toml = tmp_path / "conf.toml"
    toml.write_text('[site]\nid = "y1"\n[[assets]]\nid = "a1"\nline = "l1"\n[window]\nlength_s = 2.0\n')
    assert SiteConfig.load(toml).config_hash == SiteConfig.load(tmp_path / "conf.yaml").config_hash
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        SiteConfig.load(bad)
    assert e.value.problems[0][0] == "<file>" and e.value.problems[0][1].startswith("not valid YAML")
    other = tmp_path / "conf.ini"
    other.write_text("[site]\nid=x\n")
    with pytest.raises(ConfigError) as e:
        SiteConfig.load(other)
    assert "supported formats: .toml, .yaml/.yml, .json" in e.value.problems[0][1]


@pytest.mark.parametrize(("text", "words"), [
    ("a: &x [1, 2]\nb: *x\n", "anchors and aliases are not supported"),
    ("- just a list\n", "the top level must be a table"),
    ("site: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("site:\n  id: 5\n" + "x: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML"),
    ("2026-01-01: x\n", "Keys should be strings"),
    ("site:\n  id: s\nassets: [{id: a}]\ninputs: {mqtt: {port: on}}\n", "inputs.mqtt"),
])
def test_yaml_never_executes_and_refuses_what_toml_cannot_say(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        SiteConfig.load(f)
    assert words in str(e.value)


@pytest.mark.parametrize(("change", "where"), [
    ({"inputs": 5.0}, "inputs"),  # a table that is not a table raised TypeError (found by the config fuzzer)
    ({"outputs": [1, 2]}, "outputs"),
    ({"inputs": "kafka"}, "inputs"),
])
def test_a_table_given_as_a_scalar_is_a_config_error(change: dict, where: str) -> None:
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict({**FULL_PLANT, **change})
    assert where in [p for p, _ in e.value.problems]


@pytest.mark.parametrize(("path", "value", "words"), [
    (("building", "interval_s"), 5e-324, "building.interval_s"),  # day_s / interval_s overflowed (fuzzer)
    (("building", "interval_s"), 0.5, "building.interval_s"),
    (("window", "hop_s"), 1e-9, "at least 1 us"),
    (("window", "allowed_lateness_s"), 5e-324, "at least 1 us"),
    (("inputs", "opcua", "sampling_interval_ms"), 1e-9, "at least 1 us"),
    (("kpi", "periods_s"), 0.5, "[1, 604800]"),
])
def test_durations_too_short_to_mean_anything_are_refused(path: tuple, value: float, words: str) -> None:
    base = FULL_BUILDING if path[0] == "building" else FULL_PLANT
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict(with_value(base, path, value, list[float] if path[-1] == "periods_s" else float))
    assert words in str(e.value)


def test_sliding_windows_per_input_are_bounded() -> None:
    """A 3600 s window hopping by 1 ms put every input into 3.6 million windows."""
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict({**FULL_PLANT, "window": {"length_s": 3600, "hop_s": 0.001}})
    assert e.value.problems[0][0] == "window" and "length_s / hop_s" in e.value.problems[0][1]
    assert SiteConfig.from_dict({**FULL_PLANT, "window": {"length_s": 10, "hop_s": 0.01}}).window.hop_s == 0.01
