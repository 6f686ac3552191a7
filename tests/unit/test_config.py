"""Site configuration: loading, validation with field paths, hashing, derived defaults, `validate` CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aiotstream.cli import main
from aiotstream.config import SiteConfig, default_site
from aiotstream.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PLANT_A = ROOT / "flows" / "sites" / "plant-a.toml"

# The same site as plant-a.toml, written with only the non-default settings, in a different key
# order and formatting. Every setting plant-a.toml spells out that is missing here equals the
# schema default (checked by hand against aiotstream/config/: brokers, topics = <site>.waveforms/readings,
# tail, poll_batch, window 1/1/0.5/300/5, features, model calibrated/baseline/"1"/20/adwin, alerts
# 0.9/0.6/1/3/30/0.99, kpi 10, partitions 3; pump-001's line/channels/rate/rpm are the defaults).
PLANT_A_MINIMAL_TOML = """
[[asset_groups]]
rpm = 3000.0
line = 'line-2'
count = 2
prefix = 'fan-'

[site]
name = 'Plant A, pump hall'
id = 'plant-a'

[[assets]]
id = 'pump-001'

[[assets]]
rpm = 1.5e3
id = 'pump-002'

[[assets]]
line = 'line-2'
id = 'pump-003'
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as ei:
        SiteConfig.from_dict(data)
    problems = ei.value.problems
    assert isinstance(problems, list) and problems
    assert all(isinstance(p, tuple) and len(p) == 2 for p in problems)
    return problems


def _paths(problems: list[tuple[str, str]]) -> list[str]:
    return [path for path, _ in problems]


# ---------------------------------------------------------------------------------------------
# loading the example and the embedded default
# ---------------------------------------------------------------------------------------------
def test_example_site_file_loads() -> None:
    cfg = SiteConfig.load(PLANT_A)
    assert cfg.site.id == "plant-a"
    assert cfg.site.name == "Plant A, pump hall"
    # three explicit pumps then the fan group expanded with the default width 3
    assert [a.id for a in cfg.all_assets()] == ["pump-001", "pump-002", "pump-003", "fan-001", "fan-002"]
    amap = cfg.asset_map()
    assert amap["pump-002"].rpm == 1500.0
    assert amap["pump-002"].channels == ["x", "y", "z"]  # default
    assert amap["pump-003"].line == "line-2"
    assert amap["fan-002"].line == "line-2" and amap["fan-002"].rpm == 3000.0
    assert amap["fan-001"].sample_rate_hz == 10_000.0
    assert cfg.window.length_s == 1.0 and cfg.window.hop_s == 1.0 and cfg.window.allowed_lateness_s == 0.5
    assert cfg.alerts.open_threshold == 0.9 and cfg.alerts.clear_threshold == 0.6
    assert cfg.outputs.alerts == "plant-a.alerts"
    assert cfg.outputs.deadletter == "plant-a.deadletter"
    assert re.fullmatch(r"[0-9a-f]{16}", cfg.config_hash)


def test_default_site() -> None:
    cfg = default_site(3)
    assert cfg.site.id == "demo-plant"
    assert [a.id for a in cfg.all_assets()] == ["asset-000", "asset-001", "asset-002"]
    # line = f"line-{i % 2 + 1}": i=0 -> line-1, 1 -> line-2, 2 -> line-1
    assert [a.line for a in cfg.all_assets()] == ["line-1", "line-2", "line-1"]
    assert cfg.inputs.topics == ["demo-plant.waveforms", "demo-plant.readings"]
    assert cfg.outputs.kpis == "demo-plant.kpis"


def test_default_site_overrides_and_site_id() -> None:
    cfg = default_site(2, site_id="p9", window={"length_s": 2.0, "hop_s": 0.5})
    assert cfg.site.id == "p9"
    assert cfg.window.length_s == 2.0 and cfg.window.hop_s == 0.5
    assert cfg.outputs.scores == "p9.scores"
    assert default_site(2).config_hash != default_site(3).config_hash


def test_default_site_bad_override_is_config_error() -> None:
    with pytest.raises(ConfigError) as ei:
        default_site(1, window={"length_s": 1.0, "hop_s": 2.0})
    assert ei.value.source == "<embedded default>"
    assert _paths(ei.value.problems) == ["window"]


# ---------------------------------------------------------------------------------------------
# validation: every bad field with its path
# ---------------------------------------------------------------------------------------------
def test_many_errors_reported_at_once_with_paths() -> None:
    bad = {
        "site": {"id": "-bad id"},  # must start with a letter/digit and has a space
        "assets": [
            {"id": "a", "sample_rate_hz": -5, "chanels": ["x"]},  # negative rate, misspelt field
            {"id": "b", "rpm": "fast"},  # wrong type
        ],
        "window": {"length_s": 1.0, "hop_s": 2.0},  # hop > length
        "alerts": {"open_threshold": 0.5, "clear_threshold": 0.5},  # clear >= open
        "model": {"warmup_windows": "many"},  # wrong type
        "inputs": {"tail": "perhaps"},  # wrong type
    }
    problems = _problems(bad)
    by_path = dict(problems)
    assert set(by_path) == {
        "site.id",
        "assets[0].sample_rate_hz",
        "assets[0].chanels",
        "assets[1].rpm",
        "window",
        "alerts",
        "model.warmup_windows",
        "inputs.tail",
    }
    assert "'-bad id'" in by_path["site.id"] and "not a valid id" in by_path["site.id"]
    assert by_path["assets[0].sample_rate_hz"] == "must be greater than 0 (got -5)"
    assert "unknown field" in by_path["assets[0].chanels"]
    assert "did you mean 'channels'?" in by_path["assets[0].chanels"]
    assert "'fast'" in by_path["assets[1].rpm"]
    assert "hop_s (2.0) must not exceed length_s (1.0)" in by_path["window"]
    assert "clear_threshold (0.5) must be below open_threshold (0.5)" in by_path["alerts"]
    assert "'many'" in by_path["model.warmup_windows"]
    assert "'perhaps'" in by_path["inputs.tail"]


def test_config_error_message_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as ei:
        SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": "a", "rpm": 0, "sample_rate_hz": 2e6}]},
                             source="my.toml")
    err = ei.value
    assert err.source == "my.toml"
    assert sorted(_paths(err.problems)) == ["assets[0].rpm", "assets[0].sample_rate_hz"]
    text = str(err)
    assert text.startswith("my.toml: 2 problem(s)")
    for path, msg in err.problems:
        assert f"  {path}: {msg}" in text


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"assets": [{"id": "a"}]}, "site", "required field is missing"),
        ({"site": {}, "assets": [{"id": "a"}]}, "site.id", "required field is missing"),
        ({"site": {"name": "x"}, "assets": [{"id": "a"}]}, "site.id", "required field is missing"),
        ({"site": {"id": "s"}, "assets": [{"id": "a", "sample_rate_hz": -1}]}, "assets[0].sample_rate_hz",
         "greater than 0"),
        ({"site": {"id": "s"}, "assets": [{"id": "a", "sample_rate_hz": 1_000_001}]}, "assets[0].sample_rate_hz",
         "less than or equal to 1000000"),
        ({"site": {"id": "s"}, "assets": [{"id": "a b"}]}, "assets[0].id", "not a valid id"),
        ({"site": {"id": "x" * 129}, "assets": [{"id": "a"}]}, "site.id", "not a valid id"),
        ({"site": {"id": "s"}, "assets": [{"id": "a", "channels": []}]}, "assets[0].channels", ""),
        ({"site": {"id": "s"}, "assets": [{"id": "a", "channels": ["x", "x"]}]}, "assets[0].channels",
         "must be unique"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "window": {"lenght_s": 2}}, "window.lenght_s",
         "did you mean 'length_s'?"),
        ({"site": {"id": "s"}, "asset": [{"id": "a"}], "assets": [{"id": "a"}]}, "asset", "did you mean 'assets'?"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "kpi": {"period": 5}}, "kpi.period",
         "did you mean 'period_s'?"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "model": {"kind": "lstm"}}, "model.kind", "'lstm'"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "alerts": {"open_threshold": 0.5, "clear_threshold": 0.7}},
         "alerts", "for hysteresis"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "window": {"length_s": 1, "hop_s": 1.5}}, "window",
         "must not exceed"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "window": {"allowed_lateness_s": -0.1}},
         "window.allowed_lateness_s", "greater than or equal to 0"),
        ({"site": {"id": "s"}}, "<root>", "no assets"),
        ({"site": {"id": "s"}, "asset_groups": [{"prefix": "f-", "count": 0}]}, "asset_groups[0].count",
         "greater than 0"),
        ({"site": {"id": "s"}, "assets": [{"id": "a", "rpm": "fast"}]}, "assets[0].rpm", "valid number"),
        ({"site": {"id": "s"}, "assets": {"id": "a"}}, "assets", "valid list"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "outputs": {"partitions": 1.5}}, "outputs.partitions",
         "integer"),
        # [governance] and [lineage] (issue 19)
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"retention": {"score": "7 days"}}},
         "governance.retention.score", "is not a duration"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"retention": {"score": "0h"}}},
         "governance.retention.score", "longer than 0"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"retention": {"alert": "999999999w"}}},
         "governance.retention.alert", "write 'forever'"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"retention": {"scores": "7d"}}},
         "governance.retention.scores.[key]", "'score'"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"classification": {"alert": "secret"}}},
         "governance.classification.alert", "'restricted'"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"pii": "hash"}}, "governance.pii",
         "'pseudonymise'"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"pii": "pseudonymise"}},
         "governance.pseudonym_key_file", "needs a key file"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"pseudonym_key": "abc"}},
         "governance.pseudonym_key", "did you mean 'pseudonym_key_file'?"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "governance": {"erasure": 2}}, "governance.erasure",
         "boolean"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "lineage": {"transport": "http"}}, "lineage.url",
         "transport 'http' needs url"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "lineage": {"transport": "kafka"}}, "lineage.topic",
         "needs topic"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "lineage": {"transport": "file", "file": ""}},
         "lineage.file", "at least 1 character"),
        ({"site": {"id": "s"}, "assets": [{"id": "a"}], "lineage": {"transport": "s3"}}, "lineage.transport",
         "'kafka'"),
    ],
)
def test_single_bad_field_has_its_path(data: dict, path: str, fragment: str) -> None:
    problems = _problems(data)
    assert path in _paths(problems), problems
    msg = dict(problems)[path]
    assert fragment in msg


def test_unknown_field_without_close_match_lists_known_fields() -> None:
    problems = _problems({"site": {"id": "s"}, "assets": [{"id": "a"}], "kpi": {"zzzzzz": 1}})
    assert _paths(problems) == ["kpi.zzzzzz"]
    assert "known fields: period_s" in problems[0][1]


def test_duplicate_asset_ids_rejected() -> None:
    problems = _problems({"site": {"id": "s"}, "assets": [{"id": "a"}, {"id": "b"}, {"id": "a"}]})
    assert _paths(problems) == ["assets"]
    assert "'a'" in problems[0][1] and "more than once" in problems[0][1]


def test_duplicate_between_asset_and_group_rejected() -> None:
    # the group expands to fan-001, fan-002 (width 3), so the explicit fan-002 collides
    problems = _problems({"site": {"id": "s"}, "assets": [{"id": "fan-002"}],
                          "asset_groups": [{"prefix": "fan-", "count": 2}]})
    assert len(problems) == 1
    assert "'fan-002'" in problems[0][1] and "more than once" in problems[0][1]


def test_non_mapping_root_is_config_error() -> None:
    problems = _problems([1, 2])  # type: ignore[arg-type]
    assert _paths(problems) == ["<root>"]


# ---------------------------------------------------------------------------------------------
# derived defaults
# ---------------------------------------------------------------------------------------------
def test_topic_defaults_derive_from_site_id() -> None:
    cfg = SiteConfig.from_dict({"site": {"id": "north.7"}, "assets": [{"id": "a"}]})
    assert cfg.inputs.topics == ["north.7.waveforms", "north.7.readings"]
    assert (cfg.outputs.alerts, cfg.outputs.kpis, cfg.outputs.scores, cfg.outputs.deadletter) == (
        "north.7.alerts", "north.7.kpis", "north.7.scores", "north.7.deadletter")


def test_explicit_topics_are_kept() -> None:
    cfg = SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": "a"}],
                                "inputs": {"topics": ["raw"]}, "outputs": {"alerts": "my-alerts"}})
    assert cfg.inputs.topics == ["raw"]
    assert cfg.outputs.alerts == "my-alerts"
    assert cfg.outputs.kpis == "s.kpis"  # the others still derive from the site id


def test_asset_groups_expand_with_zero_padding() -> None:
    cfg = SiteConfig.from_dict({
        "site": {"id": "s"},
        "assets": [{"id": "main"}],
        "asset_groups": [
            {"prefix": "fan-", "count": 3},  # default width 3
            {"prefix": "m", "count": 11, "width": 2, "line": "l9", "rpm": 900, "channels": ["a"]},
        ],
    })
    ids = [a.id for a in cfg.all_assets()]
    assert ids[:4] == ["main", "fan-001", "fan-002", "fan-003"]
    assert ids[4:] == [f"m{i:02d}" for i in range(1, 12)]
    assert ids[4] == "m01" and ids[-1] == "m11"
    m05 = cfg.asset_map()["m05"]
    assert (m05.line, m05.rpm, m05.channels) == ("l9", 900.0, ["a"])


def test_asset_group_width_one_overflows_without_truncation() -> None:
    cfg = SiteConfig.from_dict({"site": {"id": "s"}, "asset_groups": [{"prefix": "p", "count": 10, "width": 1}]})
    assert [a.id for a in cfg.all_assets()][-2:] == ["p9", "p10"]


# ---------------------------------------------------------------------------------------------
# config hash
# ---------------------------------------------------------------------------------------------
def test_config_hash_ignores_formatting_order_and_spelled_defaults(tmp_path: Path) -> None:
    full = SiteConfig.load(PLANT_A)
    minimal = SiteConfig.load(_write(tmp_path, "min.toml", PLANT_A_MINIMAL_TOML))
    assert minimal.config_hash == full.config_hash
    # JSON with yet another key order and some defaults spelled out (int vs float, derived topics)
    as_json = {
        "outputs": {"alerts": "plant-a.alerts", "partitions": 3},
        "window": {"hop_s": 1, "length_s": 1},
        "assets": [{"id": "pump-001", "rpm": 1800, "sample_rate_hz": 10000},
                   {"id": "pump-002", "rpm": 1500},
                   {"line": "line-2", "id": "pump-003"}],
        "asset_groups": [{"prefix": "fan-", "count": 2, "line": "line-2", "rpm": 3000, "width": 3}],
        "inputs": {"topics": ["plant-a.waveforms", "plant-a.readings"], "tail": True},
        "site": {"flow": "predictive-maintenance", "id": "plant-a", "name": "Plant A, pump hall"},
        "model": {"kind": "calibrated", "drift_delta": 0.002},
    }
    jpath = tmp_path / "plant-a.json"
    jpath.write_text(json.dumps(as_json, indent=4))
    assert SiteConfig.load(jpath).config_hash == full.config_hash


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("alerts", "cooldown_s", 31),
        ("window", "allowed_lateness_s", 0.25),
        ("model", "kind", "hst"),
        ("kpi", "period_s", 5),
        ("inputs", "brokers", ["10.0.0.1:9092"]),
        ("site", "name", "renamed"),
    ],
)
def test_config_hash_changes_when_a_setting_changes(section: str, key: str, value: object) -> None:
    base = {"site": {"id": "s"}, "assets": [{"id": "a"}]}
    changed = json.loads(json.dumps(base))
    changed.setdefault(section, {})[key] = value
    assert SiteConfig.from_dict(changed).config_hash != SiteConfig.from_dict(base).config_hash


def test_config_hash_changes_with_assets_and_site_id() -> None:
    base = SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": "a"}]}).config_hash
    assert SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": "a", "rpm": 1801}]}).config_hash != base
    assert SiteConfig.from_dict({"site": {"id": "s"}, "assets": [{"id": "b"}]}).config_hash != base
    assert SiteConfig.from_dict({"site": {"id": "t"}, "assets": [{"id": "a"}]}).config_hash != base


# ---------------------------------------------------------------------------------------------
# file errors
# ---------------------------------------------------------------------------------------------
def test_unreadable_file_is_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as ei:
        SiteConfig.load(missing)
    assert ei.value.source == str(missing)
    assert _paths(ei.value.problems) == ["<file>"]
    assert "cannot read" in ei.value.problems[0][1]


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        SiteConfig.load(tmp_path)
    assert _paths(ei.value.problems) == ["<file>"]


def test_invalid_toml_is_config_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "bad.toml", "[site]\nid = \"s\nassets = [\n")
    with pytest.raises(ConfigError) as ei:
        SiteConfig.load(p)
    assert _paths(ei.value.problems) == ["<file>"]
    assert "not valid TOML" in ei.value.problems[0][1]


def test_invalid_utf8_toml_is_config_error(tmp_path: Path) -> None:
    p = tmp_path / "latin1.toml"
    p.write_bytes(b"[site]\nid = \"caf\xe9\"\n")
    with pytest.raises(ConfigError) as ei:
        SiteConfig.load(p)
    assert _paths(ei.value.problems) == ["<file>"]


def test_invalid_json_is_config_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "bad.json", '{"site": {"id": "s"},')
    with pytest.raises(ConfigError) as ei:
        SiteConfig.load(p)
    assert _paths(ei.value.problems) == ["<file>"]
    assert "not valid JSON" in ei.value.problems[0][1]


def test_bad_field_in_file_reports_source(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.toml", '[site]\nid = "s"\n[[assets]]\nid = "a"\nsample_rate_hz = -5\n')
    with pytest.raises(ConfigError) as ei:
        SiteConfig.load(p)
    assert ei.value.source == str(p)
    assert ei.value.problems == [("assets[0].sample_rate_hz", "must be greater than 0 (got -5)")]


# ---------------------------------------------------------------------------------------------
# `aiotstream validate`
# ---------------------------------------------------------------------------------------------
BAD_TOML = """
[site]
id = "bad site"

[[assets]]
id = "a"
sample_rate_hz = -5

[window]
length_s = 1.0
hop_s = 2.0
"""


def test_cli_validate_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["validate", str(PLANT_A)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert SiteConfig.load(PLANT_A).config_hash in out
    assert "OK" in out and "'plant-a'" in out and "5 asset(s)" in out
    assert err == ""


def test_cli_validate_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "bad.toml", BAD_TOML)
    rc = main(["validate", str(bad)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert str(bad) in err
    for path in ("site.id", "assets[0].sample_rate_hz", "window"):
        assert f"  {path}: " in err
    assert "3 problem(s)" in err


def test_cli_validate_mixed_files_reports_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, "bad.toml", BAD_TOML)
    missing = tmp_path / "missing.toml"
    rc = main(["validate", str(bad), str(PLANT_A), str(missing)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert str(PLANT_A) in out and SiteConfig.load(PLANT_A).config_hash in out  # good file still validated
    assert str(bad) in err and str(missing) in err
    assert "<file>: cannot read" in err


def test_cli_validate_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _write(tmp_path, "broken.toml", "[site\n")
    assert main(["validate", str(p)]) == 2
    _, err = capsys.readouterr()
    assert "<file>: not valid TOML" in err


def test_default_governance_and_lineage_keep_the_config_hash() -> None:
    """``[governance]`` and ``[lineage]`` came later: spelled-out defaults do not change a site's hash, any
    setting does."""
    base = {"site": {"id": "s"}, "assets": [{"id": "a"}]}
    plain = SiteConfig.from_dict(base).config_hash
    spelled = SiteConfig.from_dict({**base, "governance": {"pii": "keep", "erasure": False},
                                    "lineage": {"transport": "none"}}).config_hash
    assert spelled == plain
    assert SiteConfig.from_dict({**base, "governance": {"pii": "drop"}}).config_hash != plain


def test_window_stagger_off_keeps_the_config_hash() -> None:
    """``window.stagger`` came later: off (the default, spelled out or not) leaves every site's hash, and so
    every output id made from it, as it was (the golden files hold them); on changes it."""
    base = {"site": {"id": "s"}, "assets": [{"id": "a"}], "window": {"allowed_lateness_s": 0.25}}
    plain = SiteConfig.from_dict(base).config_hash
    assert "stagger" not in SiteConfig.from_dict(base).normalised()["window"]
    off = SiteConfig.from_dict({**base, "window": {"allowed_lateness_s": 0.25, "stagger": False}})
    assert off.config_hash == plain
    on = SiteConfig.from_dict({**base, "window": {"allowed_lateness_s": 0.25, "stagger": True}})
    assert on.config_hash != plain and on.normalised()["window"]["stagger"] is True
