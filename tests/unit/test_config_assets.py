"""A site's assets as :meth:`SiteConfig.all_assets` expands them: once per config, each group's members copies
of one validated member, and the same assets, errors and config as a member-by-member expansion gives."""
from __future__ import annotations

import gc
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aiotstream.config import SiteConfig
from aiotstream.config.assets import AssetConfig, AssetGroup
from aiotstream.config.site import _EXPANDED
from aiotstream.errors import ConfigError
from aiotstream.ids import MAX_ID


def _one_by_one(cfg: SiteConfig) -> list[AssetConfig]:
    """The expansion as it was written before (every member built and validated on its own)."""
    out = list(cfg.assets)
    for g in cfg.asset_groups:
        out += [AssetConfig(id=f"{g.prefix}{i:0{g.width}d}", line=g.line, channels=g.channels,
                            sample_rate_hz=g.sample_rate_hz, rpm=g.rpm, ideal_cycle_time_s=g.ideal_cycle_time_s)
                for i in range(1, g.count + 1)]
    if cfg.building is not None:
        out += [AssetConfig(id=z.id, line=z.floor) for z in cfg.building.all_zones()]
    return out


def _same(a: list[AssetConfig], b: list[AssetConfig]) -> None:
    assert [x.model_dump() for x in a] == [y.model_dump() for y in b]
    assert a == b
    assert [x.model_fields_set for x in a] == [y.model_fields_set for y in b]


SITE = {"site": {"id": "s"},
        "assets": [{"id": "main", "channels": ["a", "b"], "rpm": 600}],
        "asset_groups": [{"prefix": "fan-", "count": 12},
                         {"prefix": "m", "count": 101, "width": 2, "line": "l9", "rpm": 900, "channels": ["a"],
                          "sample_rate_hz": 32, "ideal_cycle_time_s": 2.5}]}


def test_groups_expand_to_the_assets_member_by_member_gives() -> None:
    cfg = SiteConfig.from_dict(SITE)
    got = cfg.all_assets()
    _same(got, _one_by_one(cfg))
    assert [a.id for a in got][-3:] == ["m99", "m100", "m101"]  # past the width, as before
    assert got[-1].ideal_cycle_time_s == 2.5 and got[1].rpm == 1800.0


def test_the_expansion_is_made_once_per_config_and_a_caller_cannot_change_it() -> None:
    cfg = SiteConfig.from_dict(SITE)
    a, b = cfg.all_assets(), cfg.all_assets()
    assert a is not b and all(map(lambda x, y: x is y, a, b))  # the same assets, a new list each call
    a.clear()
    assert len(cfg.all_assets()) == 1 + 12 + 101 and cfg.asset_map()["m50"].line == "l9"


def test_a_copy_with_other_assets_expands_its_own() -> None:
    cfg = SiteConfig.from_dict(SITE)
    before = cfg.all_assets()
    other = cfg.model_copy(update={"asset_groups": [AssetGroup(prefix="x-", count=2)]})
    assert [a.id for a in other.all_assets()] == ["main", "x-001", "x-002"]
    assert cfg.all_assets() == before  # the original keeps its own


def test_the_kept_expansion_leaves_equality_pickles_and_the_hash_as_they_were() -> None:
    cfg = SiteConfig.from_dict(SITE)
    cfg.all_assets()
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg == SiteConfig.from_dict(SITE)
    assert again.config_hash == cfg.config_hash
    pickled = pickle.dumps(cfg)
    assert b"m101" not in pickled and b"fan-012" not in pickled  # the expanded assets are not in it
    _same(again.all_assets(), cfg.all_assets())


def test_a_config_that_is_gone_takes_its_expansion_with_it() -> None:
    cfg = SiteConfig.from_dict(SITE)
    cfg.all_assets()
    key = id(cfg)
    assert key in _EXPANDED
    del cfg
    gc.collect()
    assert key not in _EXPANDED


def test_a_building_s_zones_are_assets_after_the_groups() -> None:
    cfg = SiteConfig.from_dict({"site": {"id": "b", "flow": "energy-optimization"},
                                "asset_groups": [{"prefix": "ahu-", "count": 2}],
                                "building": {"zone_groups": [{"prefix": "z", "count": 3, "floor": "f2"}]},
                                "kpi": {"periods_s": [3600]}})
    got = cfg.all_assets()
    _same(got, _one_by_one(cfg))
    assert [(a.id, a.line) for a in got][2:] == [("z001", "f2"), ("z002", "f2"), ("z003", "f2")]


def test_a_group_whose_ids_outgrow_the_id_limit_fails_at_load_with_the_group_s_path() -> None:
    prefix = "a" * (MAX_ID - 3)
    SiteConfig.from_dict({"site": {"id": "s"}, "asset_groups": [{"prefix": prefix, "count": 999}]})  # 128: fits
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict({"site": {"id": "s"}, "asset_groups": [{"prefix": "ok", "count": 1},
                                                                    {"prefix": prefix, "count": 1000}]})
    ((path, msg),) = e.value.problems
    assert path == "asset_groups[1]"
    assert "129 characters, over 128" in msg and msg.endswith("shorten the prefix or the width")
    with pytest.raises(ConfigError) as e:  # the width alone
        SiteConfig.from_dict({"site": {"id": "s"}, "asset_groups": [{"prefix": "a" * 120, "count": 1, "width": 9}]})
    assert e.value.problems[0][0] == "asset_groups[0]"


def test_a_group_with_a_channel_twice_fails_at_load_with_the_group_s_path() -> None:
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict({"site": {"id": "s"}, "asset_groups": [{"prefix": "p", "count": 2,
                                                                    "channels": ["x", "y", "x"]}]})
    assert e.value.problems == [("asset_groups[0].channels", "channel names must be unique, got ['x', 'y', 'x']")]


_ID_CHARS = st.sampled_from("abcXYZ019._-")


@settings(max_examples=150, deadline=None)
@given(prefix=st.text(_ID_CHARS, min_size=1, max_size=MAX_ID + 2), count=st.integers(1, 40),
       width=st.integers(1, 9), channels=st.lists(st.sampled_from("xyzv"), min_size=1, max_size=4),
       rpm=st.floats(0.5, 200_000), cycle=st.none() | st.floats(0.01, 1e6))
def test_any_group_expands_or_fails_as_member_by_member(prefix: str, count: int, width: int, channels: list[str],
                                                         rpm: float, cycle: float | None) -> None:
    """Every group the schema accepts gives the assets of a member-by-member expansion; every group one of
    whose members the asset schema would refuse (a prefix that is no id, ids over the limit, a channel twice)
    fails at load, as before (where before it failed on the member, now on the group, with its path)."""
    group = {"prefix": prefix, "count": count, "width": width, "channels": channels, "rpm": rpm,
             "ideal_cycle_time_s": cycle}
    try:
        members = [AssetConfig(id=f"{prefix}{i:0{width}d}", line="line-1", channels=channels,
                               sample_rate_hz=10_000.0, rpm=rpm, ideal_cycle_time_s=cycle)
                   for i in range(1, count + 1)]  # (the group's line and rate: their defaults)
    except ValidationError:
        members = None
    try:
        cfg = SiteConfig.from_dict({"site": {"id": "s"}, "asset_groups": [group]})
    except ConfigError as e:
        assert members is None, e.problems
        assert all(path.startswith("asset_groups[0]") for path, _ in e.problems), e.problems
        return
    assert members is not None
    _same(cfg.all_assets(), members)
