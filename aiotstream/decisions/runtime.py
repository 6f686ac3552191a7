"""What the decisions of every entity of a site share, whichever flow runs them.

:class:`DecisionRuntime` is built once per worker from the site config: the
lineage context, the resolved control specs and maintenance windows of an
entity (a plant asset or a building zone, with its line or floor), the bounds
on maintenance windows asked for by messages, and dead-letter records. The
plant's :class:`~aiotstream.pdm.runtime.SiteRuntime` and the building's
:class:`~aiotstream.energy.runtime.BuildingRuntime` extend it.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

from aiotstream.config import SiteConfig
from aiotstream.decisions.control import ActuatorSpec, Envelope, Interlock, RuleSpec
from aiotstream.ids import safe_id
from aiotstream.kpi import make_schemes
from aiotstream.lineage import FlowContext, input_entry, make_id
from aiotstream.records import DEADLETTER_MESSAGE_CHARS, DEADLETTER_PREFIX_BYTES, DeadLetter, Output
from aiotstream.units import S


def _ns(seconds: float) -> int:
    return round(seconds * S)


class DecisionRuntime:
    """Shared by every entity's decisions; entities keep a reference and leave it out of their snapshots."""

    def __init__(self, config: SiteConfig):
        self.config = config
        self.ctx = FlowContext(config.site.id, config.site.flow, config.site.flow_version, config.config_hash)
        # entity -> line (plant) or floor (building)
        self.groups = {a.id: a.line for a in config.all_assets()}
        self.deadletter_payload_max = config.outputs.max_deadletter_payload_bytes
        self.cooldown_ns = _ns(config.alerts.cooldown_s)
        self.maintenance_max_ns = _ns(config.alerts.maintenance_max_s)
        self.maintenance_max_windows = config.alerts.maintenance_max_windows
        k = config.kpi
        self.schemes = make_schemes(k.periods_s, [(s.name, s.start_minute, s.hours) for s in k.shifts],
                                    k.timezone)
        self.scheme_names = {p: s.name for p, s in zip(k.periods_s, self.schemes)}

    def control_specs(self, asset_id: str) -> tuple[list[ActuatorSpec], list[RuleSpec]]:
        c = self.config.control
        acts = []
        for a in c.actuators:
            if a.assets and asset_id not in a.assets:
                continue
            locks = tuple(Interlock(i.name, i.metric, i.above, i.below, i.alert_type, i.min_severity,
                                    tuple(i.states),
                                    i.maintenance) for i in a.interlocks)
            env = Envelope(a.min, a.max, a.max_step, a.max_rate_per_s, _ns(a.min_interval_s), locks,
                           a.on_violation == "clamp")
            acts.append(ActuatorSpec(a.name, a.unit, a.initial, a.feedback_metric, env, _ns(a.ack_timeout_s),
                                     a.max_retries))
        have = {a.name for a in acts}
        rules = []
        for r in c.rules:
            if r.actuator not in have or (r.assets and asset_id not in r.assets):
                continue
            w = r.when
            kind = "alert" if w.alert_type else ("signal" if w.signal else "kpi")
            period = w.kpi_period_s if w.kpi_period_s is not None else self.config.kpi.periods_s[0]
            scheme = self.scheme_names[period]

            def act(x: Any) -> tuple[str, float]:
                ops = ("set", "delta", "scale")
                return next((op, float(getattr(x, op))) for op in ops if getattr(x, op) is not None)

            rules.append(RuleSpec(r.name, r.actuator, kind, act(r.action),
                                  act(r.revert) if r.revert else None, r.mode,
                                  _ns(r.approval_timeout_s), w.alert_type, w.min_severity, w.signal, w.kpi,
                                  scheme if kind == "kpi" else None, w.above, w.below))
        return acts, rules

    def maintenance_for(self, asset_id: str) -> list[tuple[str, int, int]]:
        line = self.groups[asset_id]
        out = []
        for i, m in enumerate(self.config.maintenance):
            if (m.assets and asset_id in m.assets) or (m.line is not None and m.line == line) or \
                    (not m.assets and m.line is None):
                out.append((f"config-{i}", m.start_ns, m.end_ns))
        return out

    def deadletter(self, dl: DeadLetter) -> Output:
        """A dead-letter output: original bytes, source position, reason.

        The bytes are kept whole up to ``outputs.max_deadletter_payload_bytes``; a larger input (or one
        marked ``truncate``) keeps a prefix of :data:`~aiotstream.records.DEADLETTER_PREFIX_BYTES`, with its
        length and sha256, so a dead letter always fits its sink. The message is cut to
        :data:`~aiotstream.records.DEADLETTER_MESSAGE_CHARS`, and an asset that is not a valid id is left
        out (None): it came from the data and must not become a topic level or key.
        """
        pos = dl.pos
        raw = dl.raw
        cut: dict[str, Any] = {}
        if dl.truncate or len(raw) > self.deadletter_payload_max:
            cut = {"payload_truncated": True, "payload_sha256": hashlib.sha256(raw).hexdigest()}
        payload = raw[:DEADLETTER_PREFIX_BYTES] if cut else raw
        message = dl.message if len(dl.message) <= DEADLETTER_MESSAGE_CHARS else \
            dl.message[:DEADLETTER_MESSAGE_CHARS] + "..."
        asset = safe_id(dl.asset)
        rec = {
            "schema": "aiotstream.deadletter/1",
            # a message that gave several readings can have several dead letters: the item index tells them
            # apart
            "id": make_id("deadletter", self.ctx.site, pos.topic, pos.partition, pos.offset, dl.reason,
                          *((dl.extra["item"],) if "item" in dl.extra else ())),
            "reason": dl.reason,
            "message": message or dl.reason,
            "asset": asset,
            "source": {"topic": pos.topic, "partition": pos.partition, "offset": pos.offset},
            "payload_b64": base64.b64encode(payload).decode("ascii"),
            "payload_size": len(raw),
            **cut,
            **self.ctx.block(inputs=[input_entry(pos.topic, pos.partition, pos.offset, pos.offset)],
                             window=None,
                             features=None, model=None),
            **dl.extra,
        }
        return Output("deadletter", asset or "", rec)
