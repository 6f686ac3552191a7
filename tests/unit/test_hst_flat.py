"""Half-Space Trees in flat arrays (aiotstream.models.hst) against River's own HalfSpaceTrees.

The flat trees must score every row exactly as River does (the detector's outputs stay identical), in
both implementations (the compiled kernels and their numpy twin), for any settings, columns and rows,
including NaN, values on a split point and rows outside [0, 1]; a detector pickled with River's model
inside (a recovery snapshot from before) must resume with the same scores.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import anomaly

from aiotstream import _kernels
from aiotstream.models.hst import FlatHalfSpaceTrees, mass_dtype, structure
from aiotstream.models.online import HalfSpaceTreesDetector

IMPLS = ("compiled", "numpy")


def _river_vs_flat(cols: list[str], n_trees: int, height: int, window_size: int, seed: int,
                   rows: np.ndarray) -> tuple[list[float], list[list[float]]]:
    river = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=seed)
    flats = [FlatHalfSpaceTrees(cols, n_trees, height, window_size, seed, impl) for impl in IMPLS]
    want: list[float] = []
    got: list[list[float]] = [[] for _ in flats]
    for x in rows:
        d = dict(zip(cols, x.tolist()))
        want.append(river.score_one(d))
        river.learn_one(d)
        for f, out in zip(flats, got):
            out.append(f.score(x))
            f.learn(x)
    return want, got


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_cols=st.integers(1, 6), n_trees=st.integers(1, 5), height=st.integers(1, 6),
       window_size=st.integers(1, 40), seed=st.integers(0, 2**16), data=st.data())
def test_flat_trees_score_every_row_exactly_as_river(n_cols: int, n_trees: int, height: int, window_size: int,
                                                     seed: int, data: st.DataObject) -> None:
    cols = data.draw(st.permutations([f"c{i}" for i in range(n_cols)]))  # River sorts them; the flat trees not
    value = st.one_of(st.floats(-0.5, 1.5, allow_nan=False), st.sampled_from([0.0, 1.0, 0.5, np.nan]))
    rows = np.array(data.draw(st.lists(st.lists(value, min_size=n_cols, max_size=n_cols), min_size=1,
                                       max_size=3 * window_size + 5)), dtype=np.float64)
    # a row exactly on a split point of the first tree: River goes right there (not < threshold)
    tree = structure(cols, n_trees, height, seed)
    on_split = np.full(n_cols, 0.5)
    on_split[tree.feature[0, 0]] = tree.threshold[0, 0]
    rows = np.vstack([rows, on_split, on_split])
    want, got = _river_vs_flat(cols, n_trees, height, window_size, seed, rows)
    for impl, g in zip(IMPLS, got):
        assert g == want, impl


def test_default_settings_on_a_long_run_with_an_outlier_match_river_and_fit_in_25_kb() -> None:
    cols = [f"f{i:02d}" for i in range(24)]
    rows = np.random.default_rng(3).uniform(0.33, 0.66, (400, 24))
    rows[300] = 0.99  # an outlier: a high score
    want, got = _river_vs_flat(cols, 25, 8, 50, 42, rows)
    assert got[0] == want and got[1] == want
    assert want[300] > max(want[250:300]) + 0.05
    flat = FlatHalfSpaceTrees(cols, 25, 8, 50, 42)
    assert flat.l_mass.dtype == np.uint8 and flat.nbytes == 2 * 25 * 511  # one byte a mass, two masses a node
    assert len(pickle.dumps(flat)) < 27_000  # the trees are not in the pickle (River's model: ~420 KB)


def test_masses_take_the_smallest_type_that_holds_a_window() -> None:
    assert [mass_dtype(w) for w in (1, 255, 256, 65535, 65536)] == [np.uint8, np.uint8, np.uint16, np.uint16,
                                                                     np.uint32]
    with pytest.raises(ValueError, match="uint32"):
        mass_dtype(2**32)
    # a full window of identical rows puts window_size on the root and the whole path: no wrap-around
    for w in (255, 256):
        f = FlatHalfSpaceTrees(["a"], n_trees=1, height=2, window_size=w)
        for _ in range(w - 1):
            f.learn(np.array([0.5]))
        assert int(f.l_mass[0, 0]) == w - 1
        f.learn(np.array([0.5]))
        assert int(f.r_mass[0, 0]) == w and not f.l_mass.any() and not f.first_window


def test_trees_are_shared_by_all_assets_and_not_pickled() -> None:
    a = FlatHalfSpaceTrees(["x", "y"], 3, 4, 10, seed=5)
    b = FlatHalfSpaceTrees(["x", "y"], 3, 4, 10, seed=5)
    assert a.trees is b.trees and a.l_mass is not b.l_mass
    a.learn(np.array([0.1, 0.9]))
    c = pickle.loads(pickle.dumps(a))
    assert c.trees is a.trees and np.array_equal(c.l_mass, a.l_mass) and c.counter == 1
    assert FlatHalfSpaceTrees(["x", "y"], 3, 4, 10, seed=6).trees is not a.trees


def test_bad_rows_and_settings_are_refused_before_the_kernels_read_them() -> None:
    f = FlatHalfSpaceTrees(["a", "b", "c"], 2, 3, 5)
    for bad in (np.zeros(2), np.zeros(4), np.zeros((1, 3))):
        with pytest.raises(ValueError, match="one value per column"):
            f.learn(bad)
        with pytest.raises(ValueError, match="one value per column"):
            f.score(bad)
    with pytest.raises(ValueError, match=">= 1"):
        FlatHalfSpaceTrees(["a"], n_trees=0)
    with pytest.raises(ValueError, match="impl"):
        FlatHalfSpaceTrees(["a"], impl="fast")
    t = f.trees
    with pytest.raises(ValueError, match="same trees"):
        _kernels.hst_score(t.feature, t.threshold, np.zeros((2, 7), np.uint8)[:, :5].copy(), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="same trees"):
        _kernels.hst_learn(t.feature[:1].copy(), t.threshold, np.zeros((2, 15), np.uint8), np.zeros(3))


def test_a_snapshot_holding_rivers_model_resumes_with_the_same_scores() -> None:
    """Recovery snapshots taken before the flat trees hold a River model inside the detector."""
    cols = ["a", "b", "c"]
    rng = np.random.default_rng(11)
    rows = rng.normal(0, 1, (300, 3))
    rows[250:260] += 6
    d = HalfSpaceTreesDetector(cols, warmup=20, window_size=30)
    for x in rows[:150]:
        d.score_learn(x)
    # the same detector as an old snapshot: River's model fed the same scaled rows it learnt
    river = anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=30, seed=42)
    river.learn_one(dict.fromkeys(cols, 0.5))  # build the trees, then forget that row (as the old template did)
    for nodes in river._tree_nodes:
        for node in nodes:
            node.l_mass = 0
    river.counter = 0
    replay = HalfSpaceTreesDetector(cols, warmup=20, window_size=30)
    learnt: list[np.ndarray] = []
    learn = replay._learn

    def record(feats: np.ndarray) -> None:  # what the trees learn, in order
        learnt.append(feats.copy())
        learn(feats)

    replay._learn = record  # type: ignore[method-assign]
    for x in rows[:150]:
        replay.score_learn(x)
    for x in learnt:
        river.learn_one(dict(zip(cols, x.tolist())))
    old_state = dict(d.__dict__, model=river)
    old = HalfSpaceTreesDetector.__new__(HalfSpaceTreesDetector)
    old.__setstate__(pickle.loads(pickle.dumps(old_state)))
    assert isinstance(old.model, FlatHalfSpaceTrees)
    assert np.array_equal(old.model.r_mass, d.model.r_mass) and old.model.counter == d.model.counter
    assert [old.score_learn(x) for x in rows[150:]] == [d.score_learn(x) for x in rows[150:]]


def test_a_river_model_whose_trees_differ_from_its_seed_is_refused() -> None:
    river = anomaly.HalfSpaceTrees(n_trees=2, height=3, window_size=5, seed=1)
    river.learn_one({"a": 0.5, "b": 0.5})
    river.trees[0].threshold = 0.123  # not what seed 1 builds
    with pytest.raises(ValueError, match="differ"):
        FlatHalfSpaceTrees.from_river(river, ["a", "b"])


def test_an_hst_asset_holds_its_masses_not_its_own_trees() -> None:
    """The memory regression this module fixed: River's objects held 3.8 MB per asset (the same trees in
    every asset); now an asset holds its masses (25.5 KB with the defaults) plus the detector's baselines."""
    import tracemalloc

    from aiotstream.models.online import make_detector

    cols = [f"c{i:02d}.f" for i in range(36)]
    rows = np.random.default_rng(0).normal(1.0, 0.1, (80, len(cols)))
    make_detector("hst", cols)  # the shared trees: once a process
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dets = []
        for _ in range(10):
            d = make_detector("hst", cols)
            for r in rows:
                d.score_learn(r)
            dets.append(d)
        per_asset = (tracemalloc.get_traced_memory()[0] - before) / len(dets)
    finally:
        tracemalloc.stop()
    assert 25_550 <= per_asset < 60_000, per_asset
    assert len(pickle.dumps(dets[0])) < 40_000
