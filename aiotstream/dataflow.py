"""Assemble the Bytewax dataflow from a site config: the only module that knows Bytewax operators.

::

    input ──> decode (flat_map_batch: one call per poll batch, kernel moments)
                 ├── dead letters ───────────────────────────────┐
                 └── (asset, frame|reading) ─> analyze (stateful_batch per asset:
                        windows, features, score, drift, alerts, KPIs) ──┴─> sink

``build_flow(config, source, sink)`` works with any Bytewax source that yields
objects with ``topic/partition/offset/value`` (Kafka, the simulator, files)
and any sink that takes :class:`~aiotstream.analysis.Output`.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import FixedPartitionedSink, Sink

from aiotstream.analysis import AssetAnalyzer, Output, SiteRuntime
from aiotstream.config import SiteConfig
from aiotstream.ingest import Ingestor
from aiotstream.records import Frame, Reading


class AnalyzerLogic(StatefulBatchLogic[list[Frame | Reading], Output, AssetAnalyzer]):
    """Bytewax wrapper around one asset's :class:`AssetAnalyzer`; values are per-asset lists from one poll batch.

    When tailing, an asset silent for ``idle`` (wall clock) has its open windows
    closed; one silent for ``ttl`` is flushed (KPI period included) and its state
    discarded, so memory stays bounded when assets come and go. A returning
    asset starts afresh (with a new warm-up).
    """

    def __init__(self, rt: SiteRuntime, resume: AssetAnalyzer | None, idle: timedelta | None,
                 ttl: timedelta | None = None):
        self.rt = rt
        self.analyzer = resume.attach(rt) if resume is not None else None
        self.idle = idle
        self.ttl = ttl
        self.last_seen: datetime | None = None

    def on_batch(self, values: list[list[Frame | Reading]]) -> tuple[list[Output], bool]:
        items = values[0] if len(values) == 1 else [x for group in values for x in group]
        if self.analyzer is None:
            self.analyzer = AssetAnalyzer(self.rt, items[0].asset)
        if self.idle is not None:
            self.last_seen = datetime.now(UTC)
        # only a tailing flow has a wall clock to judge idle streams by; a bounded replay must not
        # depend on how fast each partition happens to be read
        now = time.monotonic() if self.idle is not None else None
        return self.analyzer.on_items(items, now), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Output], bool]:
        """Silent for ``idle``: close open windows; silent for ``ttl``: flush everything and forget the asset."""
        if self.analyzer is None or self.last_seen is None:
            return [], StatefulBatchLogic.RETAIN
        if self.ttl is not None and datetime.now(UTC) >= self.last_seen + self.ttl:
            return self.analyzer.flush(kpi=True), StatefulBatchLogic.DISCARD
        return self.analyzer.flush(kpi=False), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Output], bool]:
        if self.analyzer is None:
            return [], StatefulBatchLogic.RETAIN
        return self.analyzer.flush(kpi=True), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.idle is None or self.last_seen is None or self.analyzer is None:
            return None
        if self.analyzer.windows.open:
            return self.last_seen + self.idle
        return self.last_seen + self.ttl if self.ttl is not None else None

    def snapshot(self) -> AssetAnalyzer:
        assert self.analyzer is not None
        return copy.deepcopy(self.analyzer)  # the copy leaves the shared runtime out (see __getstate__)


def _is_output(x: Any) -> bool:
    return isinstance(x, Output)


def build_flow(config: SiteConfig, source: Source, sink: Sink[Output], *, tail: bool | None = None,
               now_ns: Callable[[], int] | None = None, flow_id: str | None = None,
               also: Sequence[Sink[Any]] = ()) -> Dataflow:
    """Build the predictive-maintenance dataflow for one site.

    ``tail`` (default: ``config.inputs.tail``) decides whether silent assets
    have their windows closed after ``window.idle_close_s`` of wall-clock time.
    ``also``: more sinks that see every output (e.g. the Parquet and MQTT
    sinks, which keep the kinds they are configured for); a
    ``FixedPartitionedSink`` gets ``(asset, output)`` pairs.
    """
    rt = SiteRuntime(config)
    ingest = Ingestor(rt, now_ns) if now_ns is not None else Ingestor(rt)
    tail = config.inputs.tail if tail is None else tail
    idle = timedelta(seconds=config.window.idle_close_s) if tail else None
    ttl = timedelta(seconds=config.window.state_ttl_s) if config.window.state_ttl_s > 0 else None

    flow = Dataflow(flow_id or f"{config.site.flow}-{config.site.id}".replace(".", "_"))
    raw = op.input("input", flow, source)
    decoded = op.flat_map_batch("decode", raw, ingest.decode_grouped)  # (asset, [items]) per asset + dead letters
    split = op.branch("split_dead_letters", decoded, _is_output)
    analyzed = op.stateful_batch("analyze", split.falses, lambda resume: AnalyzerLogic(rt, resume, idle, ttl))
    results = op.map("drop_key", analyzed, lambda kv: kv[1])
    outputs = op.merge("outputs", results, split.trues)
    op.output("sink", outputs, sink)
    for i, extra in enumerate(also):
        if isinstance(extra, FixedPartitionedSink):
            op.output(f"sink_{i + 1}", op.map(f"key_outputs_{i + 1}", outputs, _keyed), extra)
        else:
            op.output(f"sink_{i + 1}", outputs, extra)
    return flow


def _keyed(o: Output) -> tuple[str, Output]:
    return (o.key, o)
