"""The building (energy-optimisation) dataflow: Bytewax operators around :mod:`aiotstream.energy`.

::

    input ──> decode (flat_map_batch: one call per poll batch -> per-zone interval partials)
                 ├── dead letters ───────────────────────────────────────────────────────┐
                 └── (zone, ZoneBatch) ─> zones (stateful_batch per zone: intervals,       │
                       baseline, waste alerts, setpoint commands, KPI periods) ─┬──────────┤
                                  zone KPI periods ─> (floor, building) ─> rollup ┘         └─> sink
                 zone interval HVAC fractions ─> floors (stateful_batch per floor: heating next to cooling) ─>
                 sink
"""
from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from aiotstream.config import SiteConfig
from aiotstream.dataflow.rollup import rollup_and_sinks
from aiotstream.dataflow.snapshots import loads as load_snapshot
from aiotstream.energy.floor import FloorState, ZoneHvac
from aiotstream.energy.ingest import BuildingIngest, ZoneBatch
from aiotstream.energy.runtime import BuildingRuntime
from aiotstream.energy.zone import ZoneState
from aiotstream.io.stop import stopping_keeps_state
from aiotstream.records import Output


class ZoneLogic(StatefulBatchLogic[ZoneBatch, Output, bytes]):
    """Bytewax wrapper around one zone's :class:`ZoneState`.

    When tailing, a zone silent for ``window.idle_close_s`` of wall-clock time
    has its open intervals closed (its KPI period stays open until an interval
    after it closes, or the end of input). Snapshots are the pickled state
    (``None`` with ``snapshots=False``, i.e. without recovery).
    """

    def __init__(self, rt: BuildingRuntime, resume: bytes | None, idle: timedelta | None,
                 snapshots: bool = True,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.rt = rt
        self.state: ZoneState | None = load_snapshot(resume).attach(rt) if resume is not None else None
        self.idle = idle
        self.snapshots = snapshots
        self.now = now
        self.last_seen: datetime | None = None
        self.outdoor_seen: datetime | None = None  # wall clock of the last outdoor readings (tailing only)
        self.flushed = True

    def on_batch(self, values: list[ZoneBatch]) -> tuple[list[Output], bool]:
        if self.state is None:
            self.state = ZoneState(self.rt, values[0].zone)  # Bytewax does not tell the builder the key
        hold = True
        if self.idle is not None:  # tailing: stop waiting for an outdoor sensor silent for idle_close_s
            now = self.now()
            if self.outdoor_seen is None or any(b.outdoor for b in values):
                self.outdoor_seen = now
            hold = now - self.outdoor_seen < self.idle
        outs: list[Output] = []
        for b in values:
            outs.extend(self.state.on_batch(b, hold))
        if self.idle is not None:
            self.last_seen = self.now()
            self.flushed = False
        return outs, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Output], bool]:
        if self.state is None or self.flushed:
            return [], StatefulBatchLogic.RETAIN
        self.flushed = True
        return self.state.flush(kpi=False), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Output], bool]:
        if self.state is None or stopping_keeps_state(self.snapshots):  # stopped: the snapshot keeps it
            return [], StatefulBatchLogic.RETAIN
        return self.state.flush(kpi=True), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.idle is None or self.last_seen is None or self.flushed:
            return None
        return self.last_seen + self.idle

    def snapshot(self) -> bytes | None:
        if not self.snapshots or self.state is None:
            return None
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


class FloorLogic(StatefulBatchLogic[ZoneHvac, Output, bytes]):
    """Bytewax wrapper around one floor's :class:`~aiotstream.energy.floor.FloorState`."""

    def __init__(self, rt: BuildingRuntime, resume: bytes | None, snapshots: bool = True):
        self.rt = rt
        self.state: FloorState | None = load_snapshot(resume).attach(rt) if resume is not None else None
        self.snapshots = snapshots

    def on_batch(self, values: list[ZoneHvac]) -> tuple[list[Output], bool]:
        if self.state is None:
            self.state = FloorState(self.rt, values[0].floor)
        return self.state.add(values), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Output], bool]:
        if self.state is None or stopping_keeps_state(self.snapshots):  # stopped: the snapshot keeps it
            return [], StatefulBatchLogic.RETAIN
        return self.state.flush(), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.snapshots or self.state is None:
            return None
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def _is_output(x: Any) -> bool:
    return isinstance(x, Output)


def build_building_flow(config: SiteConfig, source: Source, sink: Sink[Output], *, tail: bool | None = None,
                        now_ns: Callable[[], int] | None = None, flow_id: str | None = None,
                        also: Sequence[Sink[Any]] = (), snapshots: bool = True) -> Dataflow:
    """Build the energy-optimisation dataflow for one building (a site config with a ``[building]`` table).

    Arguments as :func:`aiotstream.dataflow.plant.build_flow`: any source whose
    messages have ``topic/partition/offset/value`` (Kafka, MQTT, files, the
    simulator), any sink of :class:`~aiotstream.records.Output`.
    """
    rt = BuildingRuntime(config)
    ingest = BuildingIngest(rt, now_ns, KafkaSourceMessage) if now_ns is not None else \
        BuildingIngest(rt, message_type=KafkaSourceMessage)
    tail = config.inputs.tail if tail is None else tail
    idle = timedelta(seconds=config.window.idle_close_s) if tail else None

    flow = Dataflow(flow_id or f"{config.site.flow}-{config.site.id}".replace(".", "_"))
    raw = op.input("input", flow, source)
    decoded = op.flat_map_batch("decode", raw, ingest.decode)
    split = op.branch("split_dead_letters", decoded, _is_output)
    zones = op.stateful_batch("zones", split.falses, lambda resume: ZoneLogic(rt, resume, idle, snapshots))
    zone_out = op.branch("split_floor_items", op.map("drop_key", zones, lambda kv: kv[1]), _is_output)
    results = zone_out.trues
    streams = [results, split.trues]
    if rt.neighbours:  # heating next to cooling: one step per floor
        keyed_hvac = op.map("floor_key", zone_out.falses, lambda h: (f"floor:{h.floor}", h))
        floors = op.stateful_batch("floors", keyed_hvac, lambda resume: FloorLogic(rt, resume, snapshots))
        streams.append(op.map("drop_floor_key", floors, lambda kv: kv[1]))
    rollup_and_sinks(rt, results, streams, sink, also, tail, snapshots)
    return flow
