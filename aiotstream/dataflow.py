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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from aiotstream.analysis import AssetAnalyzer, Output, SiteRuntime
from aiotstream.config import SiteConfig
from aiotstream.ingest import Ingestor
from aiotstream.records import Frame, Reading


class AnalyzerLogic(StatefulBatchLogic[Frame | Reading, Output, AssetAnalyzer]):
    """Bytewax wrapper around one asset's :class:`AssetAnalyzer`.

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

    def on_batch(self, values: list[Frame | Reading]) -> tuple[list[Output], bool]:
        if self.analyzer is None:
            self.analyzer = AssetAnalyzer(self.rt, values[0].asset)
        if self.idle is not None:
            self.last_seen = datetime.now(UTC)
        return self.analyzer.on_items(values, time.monotonic()), StatefulBatchLogic.RETAIN

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
               now_ns: Callable[[], int] | None = None, flow_id: str | None = None) -> Dataflow:
    """Build the predictive-maintenance dataflow for one site.

    ``tail`` (default: ``config.inputs.tail``) decides whether silent assets
    have their windows closed after ``window.idle_close_s`` of wall-clock time.
    """
    rt = SiteRuntime(config)
    ingest = Ingestor(rt, now_ns) if now_ns is not None else Ingestor(rt)
    tail = config.inputs.tail if tail is None else tail
    idle = timedelta(seconds=config.window.idle_close_s) if tail else None
    ttl = timedelta(seconds=config.window.state_ttl_s) if config.window.state_ttl_s > 0 else None

    flow = Dataflow(flow_id or f"{config.site.flow}-{config.site.id}".replace(".", "_"))
    raw = op.input("input", flow, source)
    decoded = op.flat_map_batch("decode", raw, ingest.decode_batch)
    split = op.branch("split_dead_letters", decoded, _is_output)
    analyzed = op.stateful_batch("analyze", split.falses, lambda resume: AnalyzerLogic(rt, resume, idle, ttl))
    results = op.map("drop_key", analyzed, lambda kv: kv[1])
    op.output("sink", op.merge("outputs", results, split.trues), sink)
    return flow
