"""Assets with the same channels share one list of feature column names and its index (memory: a copy each
was 1.1 KB an asset), also after a resume; an asset whose snapshot holds other columns keeps its own."""
from __future__ import annotations

import pickle

from aiotstream.config import SiteConfig
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.runtime import SiteRuntime


def _site(channels_b: list[str]) -> SiteConfig:
    return SiteConfig.from_dict({
        "site": {"id": "cols"},
        "assets": [{"id": "a1"}, {"id": "a2"}, {"id": "b1", "channels": channels_b}],
        "inputs": {"tail": False},
    })


def test_assets_with_the_same_channels_share_their_columns_and_index() -> None:
    rt = SiteRuntime(_site(["x"]))
    a1, a2, b1 = (AssetAnalyzer(rt, a) for a in ("a1", "a2", "b1"))
    assert a1.columns is a2.columns and a1.col_index is a2.col_index
    assert b1.columns is not a1.columns and b1.columns != a1.columns
    assert b1.col_index == {c: i for i, c in enumerate(b1.columns)}
    assert a1.col_index == {c: i for i, c in enumerate(a1.columns)}
    assert a1.columns == rt.feature_set.columns(rt.assets["a1"].channels) + ["temperature.mean", "temperature.max"]


def test_a_resumed_asset_shares_them_again_unless_its_columns_changed() -> None:
    rt = SiteRuntime(_site(["x"]))
    a1, b1 = AssetAnalyzer(rt, "a1"), AssetAnalyzer(rt, "b1")
    back = pickle.loads(pickle.dumps(a1)).attach(rt)
    assert back.columns is a1.columns and back.col_index is a1.col_index
    # the site now gives b1 three channels; its snapshot's detector was built on one: its own columns stay
    rt2 = SiteRuntime(_site(["x", "y", "z"]))
    old = pickle.loads(pickle.dumps(b1)).attach(rt2)
    assert old.columns == b1.columns and old.columns is not rt2.columns(rt2.assets["b1"])
    assert old.col_index == {c: i for i, c in enumerate(old.columns)}
