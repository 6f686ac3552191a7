"""Fit the default ONNX models on feature rows and publish them to a registry (fit and export only).

The rows come from the plant flow's own feature pipeline
(:func:`aiotstream.pdm.training.window_rows`, which also holds the ``aiotstream train``
command); this module imports nothing of the flow.

Published artifacts (``version`` = ``V``):

* ``V``: scikit-learn IsolationForest written as one ``TreeEnsembleRegressor`` op (float; see
  :func:`iforest_graph`). Its ``scores`` output is the decision function (larger = more normal), so the
  manifest's score block has ``sign = -1``.
  ``onnxruntime.quantization`` quantizes MatMul/Gemm/Conv-like ops only: it leaves the
  ``TreeEnsembleRegressor`` op as it is (checked by the tests), so there is no int8 IsolationForest.
* ``V-ae``: a small MLP autoencoder (scikit-learn ``MLPRegressor`` trained to reproduce standardised rows),
  written as an ONNX graph with ``onnx.helper`` (standardise, the MLP's MatMul/Add/Relu layers, mean squared
  reconstruction error per row as ``scores``), float.
* ``V-int8``: ``V-ae`` with its MatMuls quantized to int8 (``QLinearMatMul``, scales calibrated on the
  training rows, see :func:`quantize_int8` for why static, not dynamic): the edge profile.
  ``extra.base`` names the float version it came from.

Score mapping (every artifact): raw values on the healthy training rows give ``center`` = their 99th
percentile and ``scale`` = (p99 - p50) / ln 9, so a healthy window at the median scores 0.1, one at the 99th
percentile 0.5, and a window twice as far beyond p99 as p99 is from p50 about 0.9. The int8 variant is
calibrated on its own outputs.

``onnx`` and ``scikit-learn`` are needed only here (the ``train`` extra); scoring needs
``onnxruntime`` alone.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiotstream.errors import ModelError
from aiotstream.models.registry import Manifest, ModelRegistry

__all__ = ["WindowRows", "autoencoder_onnx", "calibrate", "check_new", "iforest_onnx", "publish_trained",
           "quantize_int8"]

OPSET = 17
ML_OPSET = 3


@dataclass(slots=True)
class WindowRows:
    """Feature rows of closed windows, one per (asset, window), in the flow's column order."""

    columns: list[str]
    X: np.ndarray  # (n, k) float64, NaN for a missing feature
    assets: list[str]
    start_ns: np.ndarray  # (n,) int64
    end_ns: np.ndarray  # (n,) int64


def medians(X: np.ndarray) -> np.ndarray:
    """Per-column median ignoring NaN (0 for an all-NaN column)."""
    out = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        col = X[:, j][~np.isnan(X[:, j])]
        out[j] = float(np.median(col)) if col.size else 0.0
    return out


def impute(X: np.ndarray, fill: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(X), fill[None, :], X)


def calibrate(raw: np.ndarray) -> dict[str, float]:
    """``center``/``scale`` of the logistic map from healthy raw values (larger = more anomalous).

    >>> c = calibrate(np.linspace(0.0, 1.0, 101))
    >>> round(c["center"], 3), round(c["scale"], 4)
    (0.99, 0.223)
    """
    p50, p99 = float(np.percentile(raw, 50)), float(np.percentile(raw, 99))
    spread = p99 - p50
    floor = 1e-6 * max(abs(p99), 1e-6)
    return {"center": p99, "scale": max(spread, floor) / math.log(9.0), "p50": p50, "p99": p99}


# ---- model builders
# ------------------------------------------------------------------------------------------
def iforest_onnx(X: np.ndarray, *, n_estimators: int = 100, seed: int = 0) -> tuple[bytes, dict[str, Any]]:
    """IsolationForest on imputed rows -> (onnx bytes, score-block part: input/output/sign)."""
    from sklearn.ensemble import IsolationForest

    m = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(X.astype(np.float32))
    return iforest_graph(m, X.shape[1]), {"input": "X", "output": "scores", "sign": -1.0}


def iforest_graph(m: Any, n_features: int) -> bytes:
    """A fitted scikit-learn IsolationForest as ONE ``TreeEnsembleRegressor`` op (``scores`` = its
    ``decision_function``).

    skl2onnx writes an IsolationForest as one tree op per tree plus about 30 ops per tree to turn the
    leaf reached into a path length (3,800 nodes for 100 trees): onnxruntime then spends about 0.9 ms
    per call on the graph alone, whatever the batch (measured: 0.89 ms for 1 row, 7.1 ms for 512). Here
    each leaf carries its path length (its depth plus the average path length of the training samples
    left in it, less 1, as scikit-learn computes it), so one op sums them over the trees and four
    element-wise ops map the sum to ``decision_function``:
    ``-2 ** (-sum / (n_trees * c(max_samples))) - offset_``.

    Thresholds: scikit-learn compares the float32 feature with a float64 threshold; the op compares
    float32 with float32. Each threshold is rounded *down* to the largest float32 not above it, which
    makes ``x <= t32`` and ``x <= t64`` agree for every float32 ``x``, so each row reaches the same
    leaves (checked against scikit-learn in the tests).
    """
    import onnx
    from onnx import TensorProto, helper
    from sklearn.ensemble._iforest import _average_path_length

    nodes_tree, nodes_id, nodes_feat, nodes_mode = [], [], [], []
    nodes_value, nodes_true, nodes_false = [], [], []
    t_tree, t_node, t_weight = [], [], []
    for t, (est, feats) in enumerate(zip(m.estimators_, m.estimators_features_)):
        tree = est.tree_
        leaf_len = tree.compute_node_depths() + _average_path_length(tree.n_node_samples) - 1.0
        for i in range(tree.node_count):
            left, right = int(tree.children_left[i]), int(tree.children_right[i])
            nodes_tree.append(t)
            nodes_id.append(i)
            if left == -1:  # a leaf
                nodes_feat.append(0)
                nodes_mode.append("LEAF")
                nodes_value.append(0.0)
                nodes_true.append(0)
                nodes_false.append(0)
                t_tree.append(t)
                t_node.append(i)
                t_weight.append(float(leaf_len[i]))
            else:
                thr = np.float32(tree.threshold[i])
                if float(thr) > float(tree.threshold[i]):
                    thr = np.nextafter(thr, np.float32(-np.inf), dtype=np.float32)
                nodes_feat.append(int(feats[int(tree.feature[i])]))
                nodes_mode.append("BRANCH_LEQ")
                nodes_value.append(float(thr))
                nodes_true.append(left)
                nodes_false.append(right)
    denominator = len(m.estimators_) * float(_average_path_length([m._max_samples])[0])
    ensemble = helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["depths"], domain="ai.onnx.ml", n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE", base_values=[0.0], nodes_treeids=nodes_tree, nodes_nodeids=nodes_id,
        nodes_featureids=nodes_feat, nodes_modes=nodes_mode, nodes_values=nodes_value,
        nodes_truenodeids=nodes_true, nodes_falsenodeids=nodes_false,
        nodes_missing_value_tracks_true=[0] * len(nodes_id), target_ids=[0] * len(t_node),
                                target_treeids=t_tree,
        target_nodeids=t_node, target_weights=t_weight)
    consts = [helper.make_tensor("k", TensorProto.FLOAT, [], [-math.log(2.0) / denominator]),
              helper.make_tensor("offset", TensorProto.FLOAT, [], [float(m.offset_)])]
    graph = helper.make_graph(
        [ensemble, helper.make_node("Mul", ["depths", "k"], ["e"]), helper.make_node("Exp", ["e"], ["s"]),
         helper.make_node("Neg", ["s"], ["ss"]), helper.make_node("Sub", ["ss", "offset"], ["scores"])],
        "aiotstream-isolation-forest",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 1])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
                              producer_name="aiotstream")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def autoencoder_onnx(X: np.ndarray, *, hidden: tuple[int, ...] = (16, 6, 16), seed: int = 0,
                     max_iter: int = 400) -> tuple[bytes, dict[str, Any]]:
    """An MLP autoencoder on standardised rows, as one ONNX graph whose ``scores`` is the per-row mean squared
    reconstruction error (larger = more anomalous)."""
    import warnings

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    k = X.shape[1]
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std = np.maximum(std, 1e-6 * np.maximum(np.abs(mean), 1.0))
    Z = (X - mean) / std
    mlp = MLPRegressor(hidden_layer_sizes=hidden, activation="relu", max_iter=max_iter, random_state=seed,
                       learning_rate_init=3e-3, alpha=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a small autoencoder need not converge fully
        mlp.fit(Z, Z)
    inits = [numpy_helper.from_array(mean.astype(np.float32), "mean"),
             numpy_helper.from_array(std.astype(np.float32), "std")]
    nodes = [helper.make_node("Sub", ["X", "mean"], ["xc"]), helper.make_node("Div", ["xc", "std"], ["z"])]
    h = "z"
    n_layers = len(mlp.coefs_)
    for i, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        inits += [numpy_helper.from_array(W.astype(np.float32), f"W{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"W{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"],
                                                                                        [f"a{i}"])]
        h = f"a{i}"
        if i < n_layers - 1:
            nodes.append(helper.make_node("Relu", [h], [f"r{i}"]))
            h = f"r{i}"
    nodes += [helper.make_node("Sub", ["z", h], ["err"]), helper.make_node("Mul", ["err", "err"], ["sq"]),
              helper.make_node("ReduceMean", ["sq"], ["scores"], axes=[1], keepdims=1)]
    graph = helper.make_graph(nodes, "aiotstream-autoencoder",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="aiotstream")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), {"input": "X", "output": "scores", "sign": 1.0}


def quantize_int8(onnx_bytes: bytes, calibration_rows: np.ndarray) -> bytes:
    """Static int8 quantization of the MatMuls (``onnxruntime.quantization.quantize_static``, QOperator
    format: ``QLinearMatMul`` with int8 weights and uint8 activations whose scales come from
    ``calibration_rows``, one row at a time).

    Not ``quantize_dynamic``: it derives each activation's scale from the batch at run time, so a row's
    score would depend on which other rows share its batch (measured: up to 0.64 apart on the same row),
    which a batched scorer must not allow. With fixed scales a row scores the same alone or in any batch.
    """
    import logging

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Rows(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"X": calibration_rows[i:i + 1].astype(np.float32)}
                            for i in range(len(calibration_rows))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "float.onnx"), os.path.join(d, "int8.onnx")
        Path(src).write_bytes(onnx_bytes)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint at WARNING on the root logger
        try:
            quantize_static(src, dst, _Rows(), quant_format=QuantFormat.QOperator,
                            op_types_to_quantize=["MatMul"],
                            per_channel=False, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        finally:
            root.setLevel(level)
        return Path(dst).read_bytes()


def raw_scores(onnx_bytes: bytes, part: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """Raw outputs (sign applied) of a model on imputed rows."""
    import onnxruntime as ort

    s = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out = s.run([part["output"]], {part["input"]: X.astype(np.float32)})[0]
    return float(part["sign"]) * np.asarray(out, dtype=np.float64).reshape(-1)


# ---- publishing
# ---------------------------------------------------------------------------------------------
def check_new(registry: ModelRegistry, name: str, version: str) -> None:
    """Refuse a version that is published already (with its variants): versions are immutable."""
    for v in (version, f"{version}-ae", f"{version}-int8"):
        if registry.path(name, v).exists():
            raise ModelError(f"{registry.path(name, v)} exists: choose a new version "
                             "(versions are immutable)")


def publish_trained(rows: WindowRows, registry: ModelRegistry, name: str, version: str, *, training_data: str,
                    seed: int = 0, signing_key: Path | bytes | None = None, hmac_key: bytes | None = None,
                    n_estimators: int = 100, hidden: tuple[int, ...] = (16, 6, 16),
                    extra: dict[str, Any] | None = None) -> list[Manifest]:
    """Train on ``rows`` and publish ``version`` (IsolationForest), ``version-ae`` (autoencoder) and
    ``version-int8`` (quantized autoencoder); return their manifests. ``training_data`` says where the rows
    came from (kept in each manifest); ``extra`` is added to each manifest's ``extra`` (provenance such as
    the dataset id)."""
    check_new(registry, name, version)
    fill = medians(rows.X)
    X = impute(rows.X, fill)
    if X.shape[0] < 20:
        raise ModelError(f"only {X.shape[0]} training windows: give a longer --duration or more --assets")
    common = {"feature_names": rows.columns, "training_data": training_data, "signing_key": signing_key,
              "hmac_key": hmac_key}
    base_metrics = {"train_rows": int(X.shape[0]), "train_assets": len(set(rows.assets)),
                    "n_features": len(rows.columns)}

    def publish(v: str, blob: bytes, part: dict[str, Any], family: str, quantized: bool,
                **more: Any) -> Manifest:
        raw = raw_scores(blob, part, X)
        cal = calibrate(raw)
        score = {**part, "map": "logistic", "center": cal["center"], "scale": cal["scale"],
                 "impute": [float(v) for v in fill]}
        metrics = {**base_metrics, "train_raw_p50": cal["p50"], "train_raw_p99": cal["p99"],
                   "train_score_p99": 0.5}
        return registry.publish(name, v, blob, metrics=metrics, score=score, quantized=quantized,
                                extra={**(extra or {}), "family": family, "seed": seed, **more}, **common)

    out = []
    blob, part = iforest_onnx(X, n_estimators=n_estimators, seed=seed)
    out.append(publish(version, blob, part, "isolation_forest", False, n_estimators=n_estimators))
    ae, ae_part = autoencoder_onnx(X, hidden=hidden, seed=seed)
    out.append(publish(f"{version}-ae", ae, ae_part, "mlp_autoencoder", False, hidden=list(hidden)))
    q = quantize_int8(ae, X)
    out.append(publish(f"{version}-int8", q, ae_part, "mlp_autoencoder", True, hidden=list(hidden),
                       base=f"{version}-ae", quantization="onnxruntime quantize_static, QOperator "
                                                          "QLinearMatMul, int8 weights, uint8 activations "
                                                          "calibrated on the training rows"))
    return out
