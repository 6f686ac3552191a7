"""What every asset of a plant shares: the site's feature set, model block and ONNX models, columns, rules.

:class:`SiteRuntime` extends the decisions' :class:`~aiotstream.decisions.runtime.DecisionRuntime`
with what the plant flow needs: window lengths, the feature set and the feature columns of each asset,
the model block (the ONNX model store for an ONNX site), KPI failure types, the metrics the asset's
timeline applies, and the alert specs of each asset (with the window signals rules name checked).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import orjson

from aiotstream.config import (
    ALERT_TYPE_ANOMALY,
    ALERT_TYPE_COMMAND_FAILED,
    ALERT_TYPE_DRIFT,
    ALERT_TYPE_SCALAR,
    AssetConfig,
    SiteConfig,
)
from aiotstream.decisions.alerts import AlertRuleSpec, anomaly_spec
from aiotstream.decisions.runtime import DecisionRuntime
from aiotstream.errors import ConfigError, ModelError
from aiotstream.features import get_feature_set, time_columns_kept
from aiotstream.models.scoring import ModelStore
from aiotstream.units import S


def _ns(seconds: float) -> int:
    return round(seconds * S)


class SiteRuntime(DecisionRuntime):
    """What every asset's analyzer shares: config, lineage context, column names, resolved rules.

    Built once per worker from the config; analyzers keep a reference to it and
    leave it out of their snapshots. Rules naming a window signal are checked
    against each asset's feature columns here (a bad name is a ConfigError).
    ``labelled`` makes the validation gate's held-out set for an ONNX site
    (:func:`aiotstream.pdm.training.held_out`; the flow's builder passes it).
    """

    def __init__(self, config: SiteConfig,
                 labelled: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None):
        super().__init__(config)
        self.feature_set = get_feature_set(config.features.set, config.features.bands)
        # a time-domain set's columns among the kernels' (window_row's keep; None: all, or a spectral set)
        self.time_keep = None if self.feature_set.spectral else time_columns_kept(self.feature_set)
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
        self.length_ns = _ns(w.length_s)
        self.hop_ns = _ns(w.hop_s)
        self.lateness_ns = _ns(w.allowed_lateness_s)
        self.temp_metric = config.features.temperature_metric
        self._columns: dict[tuple[str, ...], tuple[list[str], dict[str, int]]] = {}
        k = config.kpi
        self.failure_types = set(k.failure_alert_types
                                 or [ALERT_TYPE_ANOMALY, ALERT_TYPE_SCALAR]
                                 + [r.type for r in config.alerts.rules])
        self.lines: dict[str, set[str]] = {}
        for a in self.assets.values():
            self.lines.setdefault(a.line, set()).add(a.id)
        self.timeline_metrics = {k.state_metric, k.parts_total_metric, k.parts_good_metric, k.power_metric,
                                 k.baseline_power_metric}
        for act in config.control.actuators:
            if act.feedback_metric:
                self.timeline_metrics.add(act.feedback_metric)
            self.timeline_metrics.update(i.metric for i in act.interlocks if i.metric)
        self._check_signals()
        self.models: ModelStore | None = None
        if m.kind == "onnx":
            self._load_models(labelled)

    def _load_models(self, labelled: Callable[[], tuple[np.ndarray, np.ndarray]] | None) -> None:
        """ONNX site: open the registry and load (verify) the configured champion, canary and shadow now, so
        a tampered or missing artifact stops the flow at start-up with the reason, not at the first window."""
        m = self.config.model
        assert m.onnx is not None
        columns = {tuple(self.columns(a)) for a in self.assets.values()}
        if len(columns) != 1:
            raise ModelError(f"site {self.config.site.id}: the assets have different feature columns (their "
                             "channels differ), so one ONNX model cannot score them all; use one site config "
                             "per asset group")
        self.models = store = ModelStore(self.config, list(columns.pop()), labelled)
        champion = store.ref(m.version)
        self.model_block = store.block(champion, "champion")
        for version in (m.onnx.canary, m.onnx.shadow):
            if version is not None:
                store.get(store.ref(version))

    def columns(self, asset: AssetConfig) -> list[str]:
        """The asset's window feature columns (read-only: one list for all assets with the same channels)."""
        return self._columns_of(asset)[0]

    def column_index(self, asset: AssetConfig) -> dict[str, int]:
        """Each of :meth:`columns` by name: its position (read-only, shared like the list)."""
        return self._columns_of(asset)[1]

    def _columns_of(self, asset: AssetConfig) -> tuple[list[str], dict[str, int]]:
        # one list and index per set of channels, not a copy per asset (1.4 KB an asset with the names)
        key = tuple(asset.channels)
        got = self._columns.get(key)
        if got is None:
            cols = self.feature_set.columns(asset.channels) + [f"{self.temp_metric}.mean",
                                                               f"{self.temp_metric}.max"]
            got = self._columns[key] = (cols, {c: i for i, c in enumerate(cols)})
        return got

    def _check_signals(self) -> None:
        problems = []
        named = [(f"alerts.rules[{i}].signal", r.signal, r.assets) for i,
                 r in enumerate(self.config.alerts.rules)]
        named += [(f"control.rules[{i}].when.signal", r.when.signal, r.assets)
                  for i, r in enumerate(self.config.control.rules) if r.when.signal is not None]
        for path, signal, assets in named:
            for aid in assets or list(self.assets):
                cols = self.columns(self.assets[aid])
                if signal != "score" and signal not in cols:
                    msg = (f"{signal!r} is not 'score' or a feature column of asset {aid} (e.g. "
                           f"{', '.join(cols[:4])}, ...)")
                    problems.append((path, msg))
                    break
        if problems:
            raise ConfigError(self.config.site.id, problems)

    # ---- per-asset resolution ----
    def alert_specs(self, asset_id: str) -> list[AlertRuleSpec]:
        a = self.config.alerts
        specs = [anomaly_spec(a.open_threshold, a.clear_threshold, a.critical_threshold, a.open_windows,
                              a.open_of,
                              a.clear_windows, a.clear_of, self.cooldown_ns)]
        for r in a.rules:
            if not r.assets or asset_id in r.assets:
                specs.append(AlertRuleSpec(r.type, r.signal, r.direction, r.open_threshold, r.clear_threshold,
                                           r.critical_threshold, r.severity, r.open_windows, r.open_of,
                                           r.clear_windows, r.clear_of, _ns(r.cooldown_s),
                                           needs_warm_model=r.signal == "score"))
        specs.append(AlertRuleSpec(ALERT_TYPE_COMMAND_FAILED, None, severity="critical"))
        specs.append(AlertRuleSpec(ALERT_TYPE_DRIFT, None, severity="warning"))
        if self.config.scalar.enabled:
            # the streaming detector's own alert (1 while open, 0 after; its hysteresis decides): the book
            # adds the lifecycle (ack, escalation, operator clear, maintenance, labels) and the cool-down
            specs.append(AlertRuleSpec(ALERT_TYPE_SCALAR, "scalar", "above", 1.0, 0.5, None, "warning", 1,
                                       None, 1, None, self.cooldown_ns))
        return specs
