"""An ONNX anomaly model from the registry: checked at load, one ``session.run`` per batch of rows.

The manifest's ``score`` block says how to read the model:

* ``input`` (default ``"X"``): the one input, a float tensor ``[batch, n_features]``;
* ``output`` (default ``"scores"``): the output holding one raw value per row (``[batch, 1]`` or ``[batch]``);
* ``sign``: +1 if a larger raw value is more anomalous, -1 if less (IsolationForest's ``scores`` output is
  its decision function: larger is more normal);
* ``center``, ``scale``: the logistic map ``score = 1 / (1 + exp(-(sign * raw - center) / scale))`` to [0, 1];
  training sets ``center`` to the healthy 99th percentile (score 0.5) and ``scale`` so the healthy median
  scores 0.1 (see :mod:`aiotstream.models.train`);
* ``impute``: one value per feature (the training median) that replaces a missing (NaN) feature, so a
  window without a temperature reading still scores, the same way every time.

>>> from aiotstream.models.onnx_model import logistic_score
>>> logistic_score(np.array([0.0, 1.0, 2.0]), center=1.0, scale=0.5).round(3).tolist()
[0.119, 0.5, 0.881]
"""
from __future__ import annotations

from typing import Any

import numpy as np

from aiotstream.errors import ModelError
from aiotstream.models.registry import Artifact, Manifest

__all__ = ["OnnxModel", "logistic_score"]


def logistic_score(raw: np.ndarray, center: float, scale: float) -> np.ndarray:
    """Map raw anomaly values (larger = more anomalous) to (0, 1)."""
    z = np.clip((np.asarray(raw, dtype=np.float64) - center) / scale, -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-z))


def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's own exception types for a graph it cannot load (they derive from Exception directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as c

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel", "NotImplemented",
             "RuntimeException", "EPFail")
    return tuple(getattr(c, n) for n in names if hasattr(c, n))


def _is_float(t: str) -> bool:
    return t == "tensor(float)"


class OnnxModel:
    """A loaded, checked ONNX model that scores feature rows.

    Attributes: ``name``, ``version``, ``sha256``, ``feature_names``, ``n_features``, ``quantized``,
    ``manifest``, ``session``.
    """

    def __init__(self, onnx_bytes: bytes, manifest: Manifest, threads: int = 1):
        import onnxruntime as ort

        self.manifest = manifest
        self.name = manifest.name
        self.version = manifest.version
        self.sha256 = manifest.sha256
        self.quantized = manifest.quantized
        self.feature_names = list(manifest.feature_names)
        self.n_features = len(self.feature_names)
        where = f"model {manifest.name}/{manifest.version}"
        sc: dict[str, Any] = manifest.score
        try:
            self.sign = float(sc.get("sign", 1.0))
            self.center = float(sc["center"])
            self.scale = float(sc["scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: manifest score block needs numeric center and scale "
                             f"({exc!r}); got {sc}") from None
        if not self.scale > 0 or self.sign not in (1.0, -1.0):
            raise ModelError(f"{where}: score.scale must be > 0 and score.sign +1 or -1 (got {sc})")
        impute = sc.get("impute")
        self.impute = None if impute is None else np.asarray(impute, dtype=np.float64)
        if self.impute is not None and self.impute.shape != (self.n_features,):
            raise ModelError(f"{where}: score.impute has {self.impute.size} values, expected one per feature "
                             f"({self.n_features})")
        self.input_name = str(sc.get("input", "X"))
        self.output_name = str(sc.get("output", "scores"))
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(onnx_bytes, sess_options=so,
                                                providers=["CPUExecutionProvider"])
        except _ort_errors() as exc:
            raise ModelError(f"{where}: onnxruntime cannot load the model: {exc}") from None
        self._check_io(where)

    def _check_io(self, where: str) -> None:
        ins = self.session.get_inputs()
        expected = f"one input {self.input_name!r}: tensor(float) [batch, {self.n_features}]"
        found = ", ".join(f"{i.name!r}: {i.type} {i.shape}" for i in ins) or "no inputs"
        if len(ins) != 1 or ins[0].name != self.input_name or not _is_float(ins[0].type):
            raise ModelError(f"{where}: input mismatch: expected {expected}; found {found}")
        shape = ins[0].shape
        batch_ok = len(shape) == 2 and (shape[0] is None or isinstance(shape[0], (str, int)))
        if not batch_ok or shape[1] != self.n_features:
            raise ModelError(f"{where}: input shape mismatch: expected {expected} ({self.n_features} = "
                             f"len(feature_names)); found {found}")
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        outs = {o.name: o for o in self.session.get_outputs()}
        o = outs.get(self.output_name)
        column = o is not None and (len(o.shape) == 1 or (len(o.shape) == 2 and o.shape[1] == 1))
        if o is None or not _is_float(o.type) or not column:
            found_o = ", ".join(f"{x.name!r}: {x.type} {x.shape}" for x in outs.values())
            raise ModelError(f"{where}: output mismatch: expected {self.output_name!r}: tensor(float) "
                             f"[batch, 1]; found {found_o}")

    @classmethod
    def from_artifact(cls, artifact: Artifact, threads: int = 1) -> OnnxModel:
        """From a verified registry artifact (:meth:`ModelRegistry.load`)."""
        return cls(artifact.onnx_bytes, artifact.manifest, threads)

    @classmethod
    def from_bytes(cls, onnx_bytes: bytes, manifest: Manifest, threads: int = 1) -> OnnxModel:
        """From bytes and a manifest that were not (or already) verified by a registry."""
        return cls(onnx_bytes, manifest, threads)

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The model's raw output per row, sign applied (larger = more anomalous), NaN features imputed."""
        x = np.asarray(rows)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ModelError(f"model {self.name}/{self.version}: rows must be (n, {self.n_features}) in the "
                             f"order {self.feature_names[:3]}...; got shape {x.shape}")
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            raise ModelError(f"model {self.name}/{self.version} takes batches of exactly {self.fixed_batch} "
                             f"rows; got {x.shape[0]}")
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        x32 = np.asarray(x, dtype=np.float32)
        nan = np.isnan(x32)
        if nan.any():
            fill = self.impute if self.impute is not None else np.zeros(self.n_features)
            x32 = np.where(nan, fill.astype(np.float32)[None, :], x32)
        out = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x32)})[0]
        return self.sign * np.asarray(out, dtype=np.float64).reshape(x.shape[0])

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Anomaly scores in [0, 1] (higher = more anomalous), float64 ``(n,)``; one ``session.run`` per
        call."""
        return logistic_score(self.raw(rows), self.center, self.scale)

    # ---- the Detector protocol (aiotstream.models.detector): a trained model is warm and learns nothing ----
    @property
    def warm(self) -> bool:
        return True

    def score_learn(self, x: np.ndarray) -> float:
        """One row's score; an ONNX model was trained offline and does not learn from what it scores."""
        return float(self.score(np.asarray(x, dtype=np.float64).reshape(1, -1))[0])

    def explain(self, x: np.ndarray, k: int = 3) -> list[dict]:
        """Nothing: the flow's z-score baseline explains an ONNX model's alerts."""
        return []

    def __repr__(self) -> str:
        return (f"OnnxModel({self.name}/{self.version}, {self.n_features} features, "
                f"quantized={self.quantized})")
