"""Training on simulator data through the real feature pipeline, float vs int8, and the validation gate.

One small training run (12 assets x 30 s of healthy data) is shared by the module; the held-out set is
another seed's plant (8 assets, 40 s, a fault on every asset from 5-25 s).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from aiotstream.cli import main as cli_main
from aiotstream.config import default_site
from aiotstream.errors import ModelError
from aiotstream.models.gate import auc, validate
from aiotstream.models.onnx_model import OnnxModel
from aiotstream.models.registry import ModelRegistry, generate_keypair
from aiotstream.models.train import iforest_onnx, quantize_int8
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.pdm.training import labelled_rows, train_and_publish, training_config, window_rows
from aiotstream.sim.plant import PlantSimulator

TRAIN_CFG = default_site(12)
HELD_OUT_CFG = default_site(8, site_id="held-out")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, dict[str, OnnxModel]]:
    d = tmp_path_factory.mktemp("models")
    priv, pub = generate_keypair(d / "keys")
    train_and_publish(TRAIN_CFG, ModelRegistry(d / "reg"), "pm", "1.0.0", duration_s=30.0, seed=1,
                      signing_key=priv, n_estimators=50)
    reg = ModelRegistry(d / "reg", verify_key=pub)
    return reg, {v: OnnxModel.from_artifact(reg.load("pm", v)) for v in reg.versions("pm")}


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    return labelled_rows(HELD_OUT_CFG, duration_s=40.0, faults=8, seed=9, warmup_s=5.0)


def test_training_publishes_three_signed_artifacts_in_the_flow_column_order(trained) -> None:
    reg, models = trained
    assert reg.versions("pm") == ["1.0.0-ae", "1.0.0-int8", "1.0.0"]
    rt = SiteRuntime(TRAIN_CFG)
    cols = rt.columns(rt.assets["asset-000"])
    for m in models.values():
        man = m.manifest
        assert man.feature_names == cols and m.n_features == len(cols)
        assert man.signature is not None and man.signature["alg"] == "ed25519"
        assert man.metrics["train_rows"] == 12 * 30 and man.training_data.startswith("simulator:healthy;")
        assert len(man.score["impute"]) == len(cols)
    assert [models[v].quantized for v in ("1.0.0", "1.0.0-ae", "1.0.0-int8")] == [False, False, True]
    assert models["1.0.0"].manifest.extra["family"] == "isolation_forest"
    assert models["1.0.0-int8"].manifest.extra["base"] == "1.0.0-ae"


def test_calibration_puts_healthy_training_p99_at_one_half(trained) -> None:
    """Scores of the training data itself: median ~0.1, p99 ~0.5 (the documented calibration)."""
    _, models = trained
    tcfg = training_config(TRAIN_CFG)
    rows = window_rows(tcfg, PlantSimulator(tcfg.all_assets(), duration_s=30.0, n_faults=0, seed=1))
    for m in models.values():
        s = m.score(rows.X)
        assert np.all((s >= 0) & (s <= 1))
        assert np.percentile(s, 50) == pytest.approx(0.1, abs=0.02)
        assert np.percentile(s, 99) == pytest.approx(0.5, abs=0.03)


def test_int8_graph_is_really_quantized_and_the_tree_ensemble_is_not(trained) -> None:
    reg, _ = trained
    ops = {n.op_type for n in onnx.load_from_string(reg.load("pm", "1.0.0-int8").onnx_bytes).graph.node}
    assert "QLinearMatMul" in ops and "MatMul" not in ops
    # what the quantizer does with the IsolationForest: nothing (no MatMul to quantize), documented in train.py
    X = np.random.default_rng(0).normal(size=(64, 5))
    blob, _ = iforest_onnx(X, n_estimators=5)
    q_ops = {n.op_type for n in onnx.load_from_string(quantize_int8(blob, X)).graph.node}
    assert "TreeEnsembleRegressor" in q_ops and not any(o.startswith("QLinear") for o in q_ops)


def test_float_and_int8_scores_are_close_and_do_not_depend_on_the_batch(trained, held_out) -> None:
    """Tolerance: |int8 - float| <= 0.15 for every held-out window and <= 0.01 for the median one
    (measured: max ~0.06, median ~0.002); a row scores the same alone as in a batch (1e-6)."""
    _, models = trained
    X, _ = held_out
    f, q = models["1.0.0-ae"].score(X), models["1.0.0-int8"].score(X)
    diff = np.abs(f - q)
    assert diff.max() <= 0.15 and np.median(diff) <= 0.01
    alone = np.array([models["1.0.0-int8"].score(X[i:i + 1])[0] for i in range(0, len(X), 7)])
    np.testing.assert_allclose(alone, q[::7], atol=1e-6)


def test_every_variant_separates_faulty_windows_from_healthy_ones(trained, held_out) -> None:
    _, models = trained
    X, y = held_out
    assert 0 < y.sum() < len(y)
    for v, m in models.items():
        s = m.score(X)
        assert auc(s, y) >= 0.9, v
        assert np.median(s[y == 1]) > np.percentile(s[y == 0], 75), v


def test_gate_passes_a_good_model_and_refuses_bad_ones_with_the_reason(trained, held_out) -> None:
    _, models = trained
    X, y = held_out
    good = validate(models["1.0.0"], X, y, "auc", 0.9)
    assert good.passed and good.value >= 0.9 and good.reason.startswith("passed pm/1.0.0: auc")
    assert good.n == len(y) and good.n_faulty == int(y.sum())
    out_of_reach = validate(models["1.0.0"], X, y, "auc", 1.01)
    assert not out_of_reach.passed and "is below the threshold 1.01" in out_of_reach.reason
    # a manifest with the score's sign flipped (larger = more normal read as more anomalous): a broken model
    m = models["1.0.0"]
    man = replace(m.manifest, score={**m.manifest.score, "sign": -m.manifest.score["sign"]})
    flipped = OnnxModel.from_bytes(_bytes_of(trained, "1.0.0"), man)
    bad = validate(flipped, X, y, "auc", 0.9)
    assert not bad.passed and bad.value < 0.2 and bad.reason.startswith("refused pm/1.0.0: auc")
    rap = validate(models["1.0.0"], X, y, "recall_at_precision", 0.5, precision=0.9)
    assert rap.passed and "recall at precision >= 0.9" in rap.reason
    healthy_only = validate(models["1.0.0"], X[y == 0], y[y == 0], "auc", 0.9)
    assert not healthy_only.passed and "needs both faulty and healthy" in healthy_only.reason
    with pytest.raises(ModelError, match="unknown gate metric"):
        validate(models["1.0.0"], X, y, "f1", 0.5)


def _bytes_of(trained, version: str) -> bytes:
    reg, _ = trained
    return reg.load("pm", version).onnx_bytes


def test_training_refuses_existing_versions_and_mixed_channel_layouts(trained, tmp_path: Path) -> None:
    reg, _ = trained
    with pytest.raises(ModelError, match="exists"):
        train_and_publish(TRAIN_CFG, reg, "pm", "1.0.0", duration_s=5.0)
    mixed = default_site(1, assets=[{"id": "a"}, {"id": "b", "channels": ["x", "y"]}])
    with pytest.raises(ModelError, match="different feature columns"):
        train_and_publish(mixed, ModelRegistry(tmp_path), "pm", "1", duration_s=5.0)
    with pytest.raises(ModelError, match="--assets 9"):
        training_config(default_site(2), 9)


def test_cli_train_publishes_signed_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[site]\nid = "t"\n\n[[assets]]\nid = "p1"\n\n[[assets]]\nid = "p2"\n')
    rc = cli_main(["train", "--site", str(site), "--registry", str(tmp_path / "reg"), "--name", "pm",
                   "--version", "0.1.0", "--new-key", str(tmp_path / "keys"), "--duration", "15", "--trees", "10"])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("ed25519") == 3 and "0.1.0-int8" in out
    reg = ModelRegistry(tmp_path / "reg", verify_key=tmp_path / "keys/model-signing.pub")
    assert OnnxModel.from_artifact(reg.load("pm", "0.1.0-int8")).quantized
    # without a key the command refuses (exit 1) instead of publishing unsigned models
    rc = cli_main(["train", "--site", str(site), "--registry", str(tmp_path / "reg"), "--name", "pm",
                   "--version", "0.2.0", "--duration", "15"])
    assert rc == 1 and "no signing key" in capsys.readouterr().err
    assert reg.versions("pm") == ["0.1.0-ae", "0.1.0-int8", "0.1.0"]


def test_the_isolation_forest_graph_gives_scikit_learns_decision_function_in_one_tree_op() -> None:
    """Rows made of training values (which sit on both sides of every split) and wide random rows: the one-op
    graph gives ``decision_function`` to float32 rounding, so every row reached the same leaves."""
    import onnxruntime as ort
    from sklearn.ensemble import IsolationForest

    from aiotstream.models.train import iforest_graph

    rng = np.random.default_rng(3)
    X = (rng.normal(size=(400, 7)) * [1, 10, 0.1, 1, 1, 5, 1]).astype(np.float32)
    X[:, 2] = np.round(X[:, 2], 1)  # repeated values: splits halfway between neighbours
    m = IsolationForest(n_estimators=30, max_features=0.6, random_state=1).fit(X)
    shuffled = np.stack([rng.permutation(X[:, j]) for j in range(X.shape[1])], axis=1)
    rows = np.concatenate([X, shuffled, (rng.normal(size=(300, 7)) * 20).astype(np.float32)])
    blob = iforest_graph(m, X.shape[1])
    ops = [n.op_type for n in onnx.load_from_string(blob).graph.node]
    assert ops.count("TreeEnsembleRegressor") == 1 and len(ops) == 5
    got = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"X": rows})[0].ravel()
    np.testing.assert_allclose(got, m.decision_function(rows), rtol=0, atol=2e-6)
    # rows sitting exactly on a threshold that float32 rounds *up*: with it rounded to nearest they would
    # take the other branch at that split
    edge = []
    for est, feats in zip(m.estimators_, m.estimators_features_):
        t = est.tree_
        paths = est.decision_path(X[:, feats]).tocsc()
        for i in np.flatnonzero(t.children_left != -1):
            thr = t.threshold[i]
            if float(np.float32(thr)) > thr:
                row = X[paths[:, i].nonzero()[0][0]].copy()
                row[feats[t.feature[i]]] = np.float32(thr)
                edge.append(row)
    assert len(edge) >= 5
    edge_rows = np.stack(edge)
    got = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"X": edge_rows})[0].ravel()
    np.testing.assert_allclose(got, m.decision_function(edge_rows), rtol=0, atol=2e-6)


def test_an_onnx_model_is_a_detector_like_the_online_ones(trained, held_out) -> None:
    """ONNX models sit behind the same Detector protocol as the River/z-score detectors: always warm, one row
    scores as in a batch, nothing learnt and nothing explained (the z-score baseline explains alerts)."""
    from aiotstream.models.detector import BatchDetector, Detector
    from aiotstream.models.online import make_detector

    _, models = trained
    X, _ = held_out
    m = models["1.0.0"]
    assert isinstance(m, Detector) and isinstance(m, BatchDetector)
    assert isinstance(make_detector("zscore", ["a"]), Detector)
    before = m.score(X[:5])
    assert m.warm and [m.score_learn(x) for x in X[:5]] == pytest.approx(list(before), abs=1e-6)
    assert m.explain(X[0]) == [] and np.array_equal(m.score(X[:5]), before)  # scoring taught it nothing


def test_the_gate_needs_a_held_out_set_from_the_flow(trained) -> None:
    """models/ imports nothing of the flow: a store without the flow's held-out set says so instead of
    simulating one through code it cannot import."""
    from aiotstream.models.scoring import ModelStore

    reg, models = trained
    cfg = default_site(2, model={"kind": "onnx", "name": "pm", "version": "1.0.0",
                                 "onnx": {"registry": str(reg.root), "allow_unsigned": True,
                                          "gate": {"threshold": 0.5, "assets": 2, "duration_s": 40, "faults": 2}}})
    store = ModelStore(cfg, models["1.0.0"].feature_names)
    with pytest.raises(ModelError, match="no held-out set"):
        store.gate("pm@1.0.0")
    x, y = np.zeros((4, len(models["1.0.0"].feature_names))), np.array([0, 0, 1, 1])
    got = ModelStore(cfg, models["1.0.0"].feature_names, labelled=lambda: (x, y)).labelled()
    assert got[0] is x and got[1] is y

