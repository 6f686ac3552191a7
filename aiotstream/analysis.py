"""Per-asset analysis: windows -> features -> score -> alert policy -> KPIs, with lineage.

Plain Python, no Bytewax: :mod:`aiotstream.dataflow` wraps one
:class:`AssetAnalyzer` per asset in a ``stateful_batch`` step. Everything the
analyzer emits is an :class:`Output` (kind, key, JSON-ready record); the sink
maps kinds to topics.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from aiotstream.alerts import AlertEvent, AlertPolicy
from aiotstream.codecs import encode_reading
from aiotstream.config import AssetConfig, SiteConfig
from aiotstream.features import get_feature_set, reduce_partials, reduce_spectral, window_features
from aiotstream.lineage import FlowContext, input_entry, inputs_block, iso_ns, make_id, window_block
from aiotstream.models.online import Detector, DriftWatch, make_detector
from aiotstream.records import DeadLetter, Frame, Reading
from aiotstream.windows import ClosedWindow, WindowAssembler

KINDS = ("alert", "kpi", "score", "deadletter")
ALERT_TYPE = "anomaly"


@dataclass(frozen=True, slots=True)
class Output:
    """One output record on its way to a sink: kind picks the topic, key is the asset id."""

    kind: str
    key: str
    record: dict[str, Any]


class SiteRuntime:
    """What every asset's analyzer shares: config, lineage context, column names.

    Built once per worker from the config; analyzers keep a reference to it and
    leave it out of their snapshots.
    """

    def __init__(self, config: SiteConfig):
        self.config = config
        self.ctx = FlowContext(config.site.id, config.site.flow, config.site.flow_version, config.config_hash)
        self.feature_set = get_feature_set(config.features.set, config.features.bands)
        self.assets = config.asset_map()
        m = config.model
        settings = m.model_dump(mode="json")
        self.model_block = {
            "name": m.name, "version": m.version, "kind": m.kind, "variant": "champion",
            # online models have no artifact: the digest pins the settings they were built with
            "sha256": hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        }
        self.features_block = self.feature_set.lineage()
        w = config.window
        self.length_ns = round(w.length_s * 1e9)
        self.hop_ns = round(w.hop_s * 1e9)
        self.lateness_ns = round(w.allowed_lateness_s * 1e9)
        self.kpi_period_ns = round(config.kpi.period_s * 1e9)
        self.cooldown_ns = round(config.alerts.cooldown_s * 1e9)
        self.temp_metric = config.features.temperature_metric

    def columns(self, asset: AssetConfig) -> list[str]:
        return self.feature_set.columns(asset.channels) + [f"{self.temp_metric}.mean", f"{self.temp_metric}.max"]

    def deadletter(self, dl: DeadLetter) -> Output:
        """A dead-letter output: original bytes, source position, reason."""
        pos = dl.pos
        rec = {
            "schema": "aiotstream.deadletter/1",
            # a message that gave several readings can have several dead letters: the item index tells them apart
            "id": make_id("deadletter", self.ctx.site, pos.topic, pos.partition, pos.offset, dl.reason,
                          *((dl.extra["item"],) if "item" in dl.extra else ())),
            "reason": dl.reason,
            "message": dl.message,
            "asset": dl.asset,
            "source": {"topic": pos.topic, "partition": pos.partition, "offset": pos.offset},
            "payload_b64": base64.b64encode(dl.raw).decode("ascii"),
            "payload_size": len(dl.raw),
            **self.ctx.block(inputs=[input_entry(pos.topic, pos.partition, pos.offset, pos.offset)], window=None,
                             features=None, model=None),
            **dl.extra,
        }
        return Output("deadletter", dl.asset or "", rec)


class _KpiPeriod:
    __slots__ = (
        "alerts_opened",
        "anomalous",
        "drifts",
        "frames",
        "late",
        "max_score",
        "scored",
        "spans",
        "start_ns",
        "windows",
    )

    def __init__(self, start_ns: int):
        self.start_ns = start_ns
        self.frames = self.windows = self.scored = self.anomalous = self.alerts_opened = self.late = 0
        self.drifts = 0
        self.max_score = 0.0
        self.spans: dict[tuple[str, int], list[int]] = {}


class AssetAnalyzer:
    """All state for one asset: open windows, detector, drift watch, alert policy, KPI period."""

    def __init__(self, rt: SiteRuntime, asset_id: str):
        self.rt = rt
        self.asset_id = asset_id
        asset = rt.assets[asset_id]
        self.line = asset.line
        self.columns = rt.columns(asset)
        cfg = rt.config
        self.windows = WindowAssembler(rt.length_ns, rt.hop_ns, rt.lateness_ns, asset=asset_id,
                                       idle_s=cfg.window.idle_close_s,
                                       expected=("frames", "readings") if cfg.window.wait_for_readings else ("frames",))
        self.detector: Detector = make_detector(cfg.model.kind, self.columns, warmup=cfg.model.warmup_windows,
                                                n_trees=cfg.model.n_trees, height=cfg.model.height,
                                                window_size=cfg.model.window_size, seed=cfg.model.seed)
        self.drift = DriftWatch(cfg.model.drift_detector, cfg.model.drift_delta) \
            if cfg.model.drift_detector != "none" else None
        a = cfg.alerts
        self.policy = AlertPolicy(a.open_threshold, a.clear_threshold, a.open_windows, a.clear_windows,
                                  rt.cooldown_ns)
        self.kpi: _KpiPeriod | None = None
        self.last_temp: tuple[float, float] = (float("nan"), float("nan"))

    # Bytewax snapshots pickle the analyzer; the shared runtime is rebuilt on resume.
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "rt"}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rt = None  # type: ignore[assignment]  # set by attach()

    def attach(self, rt: SiteRuntime) -> AssetAnalyzer:
        self.rt = rt
        return self

    # ---- input -------------------------------------------------------------
    def on_items(self, items: list[Frame | Reading], now_s: float | None = None) -> list[Output]:
        """Window a batch of this asset's inputs; ``now_s`` (monotonic wall clock) drives stream idleness."""
        closed, late = self.windows.add(items, now_s)
        outs: list[Output] = []
        for item in late:
            outs.append(self._late(item))
        for w in closed:
            outs.extend(self._on_window(w))
        return outs

    def flush(self, kpi: bool = True) -> list[Output]:
        """Close every open window, and with ``kpi`` the KPI period too (end of input).

        An idle asset closes its windows but keeps its KPI period open, so a
        period is emitted once, with all its windows.
        """
        outs: list[Output] = []
        for w in self.windows.flush():
            outs.extend(self._on_window(w))
        if kpi and self.kpi is not None:
            outs.append(self._kpi_record(self.kpi))
            self.kpi = None
        return outs

    # ---- steps -------------------------------------------------------------
    def _late(self, item: Frame | Reading) -> Output:
        t = item.t0_ns if isinstance(item, Frame) else item.ts_ns
        wm = self.windows.watermark_ns
        raw = item.raw
        if raw is None:  # table rows carry no bytes: the dead letter keeps the reading as JSON
            raw = encode_reading(item.asset, item.ts_ns, item.metric, item.value) if isinstance(item, Reading) else b""
        dl = DeadLetter(raw, item.pos, "late",
                        f"event time {iso_ns(t)} falls in a window that closed already "
                        f"(watermark {iso_ns(wm) if wm is not None else '-'}, allowed lateness "
                        f"{self.rt.config.window.allowed_lateness_s} s)", asset=self.asset_id)
        if self.kpi is not None:
            self.kpi.late += 1
        return self.rt.deadletter(dl)

    def _features(self, w: ClosedWindow) -> np.ndarray:
        fs = self.rt.feature_set
        part = reduce_partials(np.stack(w.partials))  # frames in time order: exact merge, one kernel call
        spec = reduce_spectral(np.stack(w.spectral)) if fs.spectral else None  # type: ignore[arg-type]
        temps = w.readings.get(self.rt.temp_metric)
        if temps:
            self.last_temp = (float(np.mean(temps)), float(np.max(temps)))
        return np.concatenate([window_features(part, fs, spec), np.asarray(self.last_temp)])

    def _on_window(self, w: ClosedWindow) -> list[Output]:
        outs: list[Output] = []
        kpi = self._kpi_for(w.start_ns, outs)
        kpi.windows += 1
        kpi.frames += w.n_frames
        for t, p, a, b in w.inputs:
            span = kpi.spans.setdefault((t, p), [a, b])
            span[0], span[1] = min(span[0], a), max(span[1], b)
        if w.n_frames == 0:  # readings only: nothing to score
            return outs
        x = self._features(w)
        detector = self.detector
        score = detector.score_learn(x)
        warm = detector.warm
        drift = bool(self.drift.update(score)) if (self.drift is not None and warm and score > 0) else False
        anomalous = warm and score >= self.rt.config.alerts.open_threshold
        kpi.scored += int(warm)
        kpi.anomalous += int(anomalous)
        kpi.drifts += int(drift)
        kpi.max_score = max(kpi.max_score, score)
        ctx, wblock = self.rt.ctx, window_block(w.start_ns, w.end_ns)
        lineage = ctx.block(inputs=inputs_block(w.inputs), window=wblock, features=self.rt.features_block,
                            model=self.rt.model_block)
        outs.append(Output("score", self.asset_id, {
            "schema": "aiotstream.score/1",
            "id": make_id("score", ctx.site, ctx.config_hash, self.rt.model_block["sha256"], self.asset_id,
                          w.start_ns, w.end_ns),
            "asset": self.asset_id, "line": self.line,
            "score": round(score, 6), "warm": warm, "anomalous": anomalous, "drift": drift,
            "frames": w.n_frames, "seq_range": [w.first_seq, w.last_seq],
            "values": {c: (None if np.isnan(v) else round(float(v), 6)) for c, v in zip(self.columns, x)},
            **lineage,
        }))
        if warm:
            for ev in self.policy.update(w.end_ns, score):
                if ev.kind == "opened":
                    kpi.alerts_opened += 1
                outs.append(self._alert(ev, w, x, lineage))
        return outs

    def _alert(self, ev: AlertEvent, w: ClosedWindow, x: np.ndarray, lineage: dict) -> Output:
        a, ctx = self.rt.config.alerts, self.rt.ctx
        alert_id = make_id("alert-id", ctx.site, ctx.config_hash, self.asset_id, ALERT_TYPE, ev.opened_at_ns)
        status = "open" if ev.kind == "opened" else "cleared"
        severity = "critical" if ev.peak_score >= a.critical_threshold else "warning"
        rec = {
            "schema": "aiotstream.alert/1",
            "id": make_id("alert", alert_id, status, ev.at_ns),
            "alert_id": alert_id,
            "status": status,
            "alert_type": ALERT_TYPE,
            "severity": severity,
            "asset": self.asset_id, "line": self.line,
            "score": round(ev.score, 6), "peak_score": round(ev.peak_score, 6),
            "open_threshold": a.open_threshold, "clear_threshold": a.clear_threshold,
            "opened_at": iso_ns(ev.opened_at_ns), "opened_at_ns": ev.opened_at_ns,
            "cleared_at": iso_ns(ev.at_ns) if status == "cleared" else None,
            "explanation": self.detector.explain(x, 3) if status == "open" else [],
            **lineage,
        }
        return Output("alert", self.asset_id, rec)

    def _kpi_for(self, t_ns: int, outs: list[Output]) -> _KpiPeriod:
        start = (t_ns // self.rt.kpi_period_ns) * self.rt.kpi_period_ns
        if self.kpi is not None and self.kpi.start_ns != start:
            outs.append(self._kpi_record(self.kpi))
            self.kpi = None
        if self.kpi is None:
            self.kpi = _KpiPeriod(start)
        return self.kpi

    def _kpi_record(self, k: _KpiPeriod) -> Output:
        ctx = self.rt.ctx
        end = k.start_ns + self.rt.kpi_period_ns
        spans = tuple(sorted((t, p, a, b) for (t, p), (a, b) in k.spans.items()))
        rec = {
            "schema": "aiotstream.kpi/1",
            "id": make_id("kpi", ctx.site, ctx.config_hash, self.rt.model_block["sha256"], self.asset_id, k.start_ns),
            "asset": self.asset_id, "line": self.line,
            "period_s": self.rt.config.kpi.period_s,
            "frames": k.frames, "windows": k.windows, "scored_windows": k.scored,
            "anomalous_windows": k.anomalous,
            "anomaly_rate": round(k.anomalous / k.scored, 6) if k.scored else 0.0,
            "max_score": round(k.max_score, 6),
            "alerts_opened": k.alerts_opened, "late_inputs": k.late, "drift_events": k.drifts,
            **ctx.block(inputs=inputs_block(spans), window=window_block(k.start_ns, end),
                        features=self.rt.features_block, model=self.rt.model_block),
        }
        return Output("kpi", self.asset_id, rec)

