"""Config of alerts, maintenance, KPIs and control: defaults, every bad field reported with its path."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiotstream.config import KPI_NAMES, SiteConfig
from aiotstream.errors import ConfigError
from aiotstream.kpi import derive, new_totals
from aiotstream.pdm.runtime import SiteRuntime

BASE: dict[str, Any] = {"site": {"id": "s"}, "assets": [{"id": "a", "line": "l1"}, {"id": "b", "line": "l2"}]}
ACT = {"name": "speed", "initial": 1800, "min": 600, "max": 1800}
RULE = {"name": "slow", "actuator": "speed", "when": {"alert_type": "anomaly"}, "action": {"set": 1200}}


def cfg(**sections: Any) -> SiteConfig:
    return SiteConfig.from_dict({**BASE, **sections})


def problems(**sections: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as ei:
        cfg(**sections)
    return ei.value.problems


def test_defaults() -> None:
    c = cfg()
    assert c.inputs.feedback_topics == ["s.feedback", "s.acks"] and c.outputs.commands == "s.commands"
    assert c.kpi.periods_s == [10.0] and c.kpi.failures == "both" and c.kpi.rollup
    assert (c.alerts.escalate_after_s, c.alerts.max_escalations, c.alerts.open_of) == (900.0, 1, None)
    assert c.control.rules == [] and c.maintenance == []
    assert c.alerts.alert_types() == ["anomaly", "command_failed", "drift", "scalar_anomaly"]


def test_period_s_is_a_shorthand() -> None:
    assert cfg(kpi={"period_s": 5}).kpi.periods_s == [5.0]
    assert cfg(kpi={"period_s": 5}).config_hash == cfg(kpi={"periods_s": [5]}).config_hash
    assert problems(kpi={"period_s": 5, "periods_s": [5]})[0][0] == "kpi"


@pytest.mark.parametrize(("sections", "path", "words"), [
    ({"kpi": {"periods_s": [10, 10]}}, "kpi.periods_s", "unique"),
    ({"kpi": {"periods_s": [0]}}, "kpi.periods_s", "[1, 604800]"),
    ({"kpi": {"timezone": "Mars/Olympus"}}, "kpi.timezone", "IANA"),
    ({"kpi": {"shifts": [{"name": "A", "start": "6:00", "hours": 8}]}}, "kpi.shifts[0].start", "HH:MM"),
    ({"kpi": {"failure_alert_types": ["nope"]}}, "kpi.failure_alert_types", "unknown alert type 'nope'"),
    ({"alerts": {"open_windows": 3, "open_of": 2}}, "alerts", "N of M"),
    ({"alerts": {"rules": [{"type": "anomaly", "signal": "x.rms", "open_threshold": 1, "clear_threshold": 0}]}},
     "alerts", "reserved"),
    ({"alerts": {"rules": [{"type": "cold", "signal": "temperature.max", "direction": "below",
                            "open_threshold": 5, "clear_threshold": 2}]}}, "alerts.rules[0]", "above open_threshold"),
    ({"alerts": {"rules": [{"type": "hot", "signal": "temperature.max", "open_threshold": 80,
                            "clear_threshold": 75, "assets": ["zz"]}]}}, "alerts.rules[0].assets",
     "unknown asset(s) 'zz'"),
    ({"maintenance": [{"start": "2026-01-01T06:00:00", "end": "2026-01-01T07:00:00Z"}]}, "maintenance[0]",
     "time zone"),
    ({"maintenance": [{"start": "2026-01-01T07:00:00Z", "end": "2026-01-01T06:00:00Z"}]}, "maintenance[0]",
     "must be after start"),
    ({"maintenance": [{"start": "2026-01-01T06:00:00Z", "end": "2026-01-01T07:00:00Z", "line": "l9"}]},
     "maintenance[0].line", "not a line"),
    ({"maintenance": [{"start": "2026-01-01T06:00:00Z", "end": "9999-12-31T23:59:59Z"}]}, "maintenance[0].end",
     "longer than alerts.maintenance_max_s"),
    ({"maintenance": [{"start": "2026-01-01T06:00:00Z", "end": "2026-01-01T07:00:01Z"}],
      "alerts": {"maintenance_max_s": 3600}}, "maintenance[0].end", "3601 s, longer than alerts.maintenance_max_s"),
    ({"control": {"actuators": [ACT], "rules": [{**RULE, "actuator": "fan"}]}}, "control",
     "names actuator 'fan'"),
    ({"control": {"actuators": [{**ACT, "min": 2000}]}}, "control.actuators[0]", "must not exceed max"),
    ({"control": {"actuators": [{**ACT, "interlocks": [{"name": "x"}]}]}}, "control.actuators[0].interlocks[0]",
     "exactly one of"),
    ({"control": {"actuators": [{**ACT, "interlocks": [{"name": "x", "metric": "t"}]}]}},
     "control.actuators[0].interlocks[0]", "above and/or below"),
    ({"control": {"actuators": [ACT], "rules": [{**RULE, "when": {"kpi": "oe", "below": 0.5}}]}},
     "control.rules[0].when", "did you mean 'oee'"),
    ({"control": {"actuators": [ACT], "rules": [{**RULE, "when": {"signal": "score"}}]}}, "control.rules[0].when",
     "above and/or below"),
    ({"control": {"actuators": [ACT], "rules": [{**RULE, "action": {"set": 1, "delta": 2}}]}},
     "control.rules[0].action", "exactly one of set, delta, scale"),
    ({"control": {"actuators": [ACT], "rules": [{**RULE, "mode": "yolo"}]}}, "control.rules[0].mode", "must be"),
    ({"control": {"actuators": [ACT], "rules": [{**RULE, "when": {"alert_type": "overheat"}}]}},
     "control.rules[0].when.alert_type", "'overheat' is not an alert type"),
    ({"control": {"actuators": [ACT], "rules": [{**RULE, "when": {"kpi": "oee", "below": 0.5,
                                                                   "kpi_period_s": 60}}]}},
     "control.rules[0].when.kpi_period_s", "not one of kpi.periods_s"),
])
def test_bad_fields_have_paths_and_hints(sections: dict, path: str, words: str) -> None:
    found = problems(**sections)
    assert any(p == path and words in m for p, m in found), found


def test_several_reference_problems_are_all_reported() -> None:
    found = problems(kpi={"failure_alert_types": ["x"]},
                     maintenance=[{"start": "2026-01-01T06:00:00Z", "end": "2026-01-01T07:00:00Z", "assets": ["q"]}])
    assert [p for p, _ in found] == ["maintenance[0].assets", "kpi.failure_alert_types"]


def test_full_control_config_loads_and_resolves_per_asset() -> None:
    c = cfg(alerts={"rules": [{"type": "hot", "signal": "temperature.max", "open_threshold": 80,
                               "clear_threshold": 75, "critical_threshold": 90, "assets": ["a"]}]},
            control={"actuators": [{**ACT, "assets": ["a"], "max_step": 300, "interlocks": [
                {"name": "down", "states": ["down"]}, {"name": "hot", "alert_type": "hot", "min_severity": "critical"}]}],
                "rules": [RULE, {**RULE, "name": "kpi", "when": {"kpi": "availability", "below": 0.5},
                                 "mode": "approval"}]},
            maintenance=[{"start": "2026-01-01T06:00:00+01:00", "end": "2026-01-01T07:00:00+01:00", "line": "l2"}],
            kpi={"periods_s": [10, 60]})
    rt = SiteRuntime(c)
    acts, rules = rt.control_specs("a")
    assert [a.name for a in acts] == ["speed"] and acts[0].envelope.max_step == 300
    assert [(r.name, r.kind, r.mode, r.kpi_scheme) for r in rules] == [("slow", "alert", "advisory", None),
                                                                       ("kpi", "kpi", "approval", "10s")]
    assert rt.control_specs("b") == ([], [])  # b has no such actuator
    assert [s.type for s in rt.alert_specs("a")] == ["anomaly", "hot", "command_failed", "drift", "scalar_anomaly"]
    assert [s.type for s in rt.alert_specs("b")] == ["anomaly", "command_failed", "drift", "scalar_anomaly"]
    # 06:00+01:00 is 05:00 UTC; only line l2 (asset b)
    assert rt.maintenance_for("a") == []
    assert rt.maintenance_for("b") == [("config-0", 1_767_243_600_000_000_000, 1_767_247_200_000_000_000)]


def test_unknown_signal_is_a_config_error_at_build() -> None:
    c = cfg(alerts={"rules": [{"type": "hot", "signal": "temperature.maxx", "open_threshold": 80,
                               "clear_threshold": 75}]})
    with pytest.raises(ConfigError) as ei:
        SiteRuntime(c)
    (path, msg), = ei.value.problems
    assert path == "alerts.rules[0].signal" and "'temperature.maxx' is not 'score' or a feature column" in msg


def test_kpi_names_in_config_match_what_the_kpi_module_derives() -> None:
    assert tuple(derive(new_totals())) == KPI_NAMES


def test_the_commented_examples_in_plant_a_load_and_build(tmp_path: Path) -> None:
    """plant-a.toml documents rules, maintenance, shifts and control as comments: uncommented, they must work."""
    text = (Path(__file__).resolve().parents[2] / "flows" / "sites" / "plant-a.toml").read_text()
    lines = []
    for line in text.splitlines():
        body = line[2:] if line.startswith("# ") else ("" if line == "#" else line)
        # a commented line is an example unless it is prose (the file's own notes start with a capital)
        lines.append(body if line.startswith("#") and not body[:1].isupper() else line)
    full = tmp_path / "plant-a-examples.toml"
    full.write_text("\n".join(lines))
    c = SiteConfig.load(full)
    assert [r.type for r in c.alerts.rules] == ["overtemp"] and len(c.maintenance) == 1
    assert [s.name for s in c.kpi.shifts] == ["A", "B", "C"] and c.alerts.open_of == 3
    assert [a.name for a in c.control.actuators] == ["spindle_speed"]
    assert [(r.name, r.mode) for r in c.control.rules] == [("slow-down-on-critical", "approval")]
    rt = SiteRuntime(c)  # feature columns named by rules exist
    assert [r.name for r in rt.control_specs("pump-001")[1]] == ["slow-down-on-critical"]
