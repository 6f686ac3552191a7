"""Per-asset analysis: windows -> features -> score -> alerts, commands, KPIs, with lineage.

Plain Python, no Bytewax: :mod:`aiotstream.dataflow` wraps one
:class:`AssetAnalyzer` per asset in a ``stateful_batch`` step. Everything the
analyzer emits is an :class:`Output` (kind, key, JSON-ready record); the sink
maps kinds to topics.

The analyzer composes the domain classes: :class:`~aiotstream.windows.WindowAssembler`,
the detector and drift watch, :class:`~aiotstream.decisions.alerts.AlertBook` (alert
lifecycle), :class:`~aiotstream.decisions.control.Controller` (commands) and
:class:`~aiotstream.kpi.KpiTracker` (KPI periods). It owns the asset's clock:

* the clock is the end of the newest closed window (event time);
* readings the KPIs or control need (machine state, part counters, power,
  actuator feedback, interlock metrics) and feedback messages wait in a queue
  and are applied in event-time order as the clock passes them, interleaved
  with closed windows and with the timers of the alerts (escalation, end of
  maintenance) and commands (approval expiry, ack timeouts);
* at one instant the order is: the window ending then, timers due then, then
  the queued events of that time;
* while the asset is silent (tailing), :meth:`AssetAnalyzer.idle` moves the
  clock on by the wall-clock time of the silence, so timers and feedback do
  not wait for data that may never come;
* feedback whose time has already passed is applied at once (its records keep
  its own time).
"""
from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

from aiotstream._kernels import rounded_list
from aiotstream.codecs import encode_reading
from aiotstream.config import (
    ALERT_TYPE_ANOMALY,
    ALERT_TYPE_DRIFT,
    ALERT_TYPE_SCALAR,
)
from aiotstream.decisions import effects
from aiotstream.decisions.alerts import AlertBook, AlertChange
from aiotstream.decisions.control import (
    Controller,
    Situation,
)
from aiotstream.decisions.maintenance import MaintenanceSchedule, SuppressionGauge
from aiotstream.dedupe import FrameDedupe
from aiotstream.features import reduce_partials, reduce_spectral, window_features, window_row
from aiotstream.kpi import KpiTracker, PeriodResult, derive, kpi_record
from aiotstream.kpi.periods import Tumbling
from aiotstream.lineage import inputs_block, iso_ns, lineage_of, make_id, window_block
from aiotstream.models.detector import Detector, LabelLearner
from aiotstream.models.online import FeatureDrift, ShiftDrift, make_detector
from aiotstream.models.scoring import ModelStore, Scored, canary_share
from aiotstream.pdm import rollout
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.pdm.scalar import ScalarScorer, ScoredBlock
from aiotstream.records import (
    DeadLetter,
    Feedback,
    Frame,
    ModelSwitch,
    Output,
    Position,
    Reading,
    ReadingColumns,
    expand_columns,
)
from aiotstream.runstats import STATS, Share
from aiotstream.units import S
from aiotstream.windows import ClosedWindow, ReadingsWindow, WindowAssembler, stagger_offset

MAX_WAITING_FEEDBACK = 10_000
"""Feedback messages one asset holds until its clock reaches their time; more are dead-lettered
(``too_many_waiting``), so a flood of messages from the near future cannot exhaust memory."""
ALERT_TYPE = ALERT_TYPE_ANOMALY


_TRANSIENT = frozenset({"rt", "_closed_ends", "_latencies", "_max_past_ns", "_kpi_lengths"})
"""Left out of snapshots: the shared runtime, what a batch collects for the metrics, and what is found once
from the configuration (again after a resume: the configuration may have changed)."""


def _ns(seconds: float) -> int:
    return round(seconds * S)


def _pos_inputs(pos: Position) -> list[dict]:
    return [{"topic": pos.topic, "partition": pos.partition, "first_offset": pos.offset,
             "last_offset": pos.offset}]


@dataclass(slots=True)
class _Pending:
    """A closed window waiting for its ONNX score (and its shadow's) before its decisions run."""

    window: ClosedWindow
    x: np.ndarray | None  # None: a window of readings only, nothing to score
    model: str | None
    variant: str
    shadow: str | None
    scored: Scored | None = None
    shadow_scored: Scored | None = None
    submitted: float = 0.0  # time.monotonic() at submission: what batching added is measured from here
    added_s: float = 0.0  # from submission to the decisions (set when they run)


_ONE_WINDOW = {"windows": 1}  # a readings-only window's KPI sums (read, never changed)


class AssetAnalyzer(effects.RuntimeEntity):
    """All state for one asset: windows, detector, drift, alert book, controller, KPI tracker, event queue.

    With ONNX models (``[model] kind = "onnx"``) a closed window's feature
    row goes to the worker's :class:`~aiotstream.models.scoring.ScoreBatcher`
    and the window waits in ``pending``; its decisions (and everything after
    it in event time) run once its score is back (:meth:`drain`, called by
    :func:`deliver` from whichever asset of the worker runs), so windows keep
    their order and each is scored exactly once.
    """

    _max_past_ns: int | None = None  # window.max_past_s in ns (found at the first batch of columns)
    # every KPI scheme tumbling: their lengths, else None (False: not found yet)
    _kpi_lengths: list[int] | None | bool = False

    def __init__(self, rt: SiteRuntime, asset_id: str):
        self.rt = rt
        self.asset_id = asset_id
        asset = rt.assets[asset_id]
        self.line = asset.line
        self.columns = rt.columns(asset)  # (shared with the site's other assets of these channels: read-only)
        self.col_index = rt.column_index(asset)
        cfg = rt.config
        self.windows = WindowAssembler(rt.length_ns, rt.hop_ns, rt.lateness_ns, asset=asset_id,
                                       idle_s=cfg.window.idle_close_s,
                                       expected=_expected_streams(cfg),
                                       offset_ns=stagger_offset(asset_id, rt.hop_ns) if cfg.window.stagger
                                       else 0)
        # of a window's reading values only the temperature's are used (a frame window's features)
        self.windows.keep_readings = frozenset((rt.temp_metric,))
        # the window detector (``detector``) is made at the asset's first window of frames: an asset of
        # scalar readings only never needs one (nor the import of scipy.special it brings)
        self._new_drift_watches()
        # signal -> first window start its detector has seen since it fired
        self.drift_from: dict[str, int] = {}
        self.schedule = MaintenanceSchedule()
        for wid, start, end in rt.maintenance_for(asset_id):
            self.schedule.set(wid, start, end)
        self.suppression = SuppressionGauge()  # this asset's part of STATS gauge active_suppressions
        self.alert_share = Share("open_alerts")  # its part of the metrics' open alerts by severity
        self.command_share = Share("pending_commands")  # and of the pending commands by status
        self._closed_ends: list[int] = []  # this batch's closed windows' ends and model latencies (ns), until
        self._latencies: list[int] = []  # _report hands them to the metrics
        a = cfg.alerts
        self.specs = rt.alert_specs(asset_id)
        self.book = AlertBook(asset_id, rt.ctx.site, rt.ctx.config_hash, self.specs, self.schedule,
                              _ns(a.escalate_after_s), a.max_escalations, a.history)
        self.control = Controller(asset_id, rt.ctx.site, rt.ctx.config_hash, *rt.control_specs(asset_id))
        self.signals = sorted({r.signal for r in self.control.rules if r.signal})
        k = cfg.kpi
        self.kpi = KpiTracker(asset_id, self.line, rt.schemes, failures=k.failures,
                              ideal_cycle_ns=None if asset.ideal_cycle_time_s is None
                              else _ns(asset.ideal_cycle_time_s),
                              energy_max_gap_ns=_ns(k.energy_max_gap_s),
                              emit_delay_ns=rt.length_ns - rt.hop_ns,
                              max_gap_ns=_ns(k.max_gap_s))
        self.dedupe = FrameDedupe()  # (seq, t0) of the frames in open windows: retransmits count once
        self.scalar = _scalar_scorer(rt)
        self._scalar_open = False  # the detector's alert after the last scored row
        self.rebaseline_ns: int | None = None  # a maintenance reset: windows ending after it re-baseline
        self._flushing = False  # flush(): every closed window scores its scalar rows at once
        self.queue: list[tuple[int, int, Reading | Feedback]] = []  # (event time, arrival, item)
        self._arrivals = 0
        self.clock_ns: int | None = None
        self.metrics: dict[str, float] = {}
        self.last_temp: tuple[float, float] = (float("nan"), float("nan"))
        # windows waiting for the ONNX batcher's scores: a deque made by the first one (_submit); until then
        # an empty tuple, as every asset of a site without ONNX keeps it (an empty deque is 760 B)
        self.pending: deque[_Pending] | tuple[()] = ()
        self._batcher_id: str | None = None
        self.model_ref: str | None = None
        self.variant = "champion"
        self.shadow_ref: str | None = None
        self.champion_ref: str | None = None  # the latest champion promoted (None: the config's)
        if rt.models is not None:
            o = cfg.model.onnx
            assert o is not None
            self.model_ref = rt.models.ref(cfg.model.version)
            if o.canary is not None and canary_share(asset_id) < o.canary_fraction:
                self.model_ref, self.variant = rt.models.ref(o.canary), "canary"
            self.shadow_ref = rt.models.ref(o.shadow) if o.shadow else None

    # Bytewax snapshots pickle the analyzer; the shared runtime is rebuilt on resume.

    @property
    def detector(self) -> Detector:
        """The window detector of ``[model]`` (with ONNX models the z-score baseline, which still learns: it
        explains alerts), made at its first use: the same one as if made with the asset (its construction
        depends on the configuration only), and in the snapshot's state (``__dict__``) once made."""
        d = self.__dict__.get("detector")
        if d is None:
            d = self.__dict__["detector"] = _window_detector(self.rt.config, self.columns)
        return d

    @detector.setter
    def detector(self, d: Detector) -> None:
        self.__dict__["detector"] = d

    def _new_drift_watches(self) -> None:
        """Drift on the features, not on the score: every feature column's recent median against its range
        (and River's detectors on the configured drift features); new ones after a maintenance reset."""
        m = self.rt.config.model
        self.drift = ShiftDrift(self.columns) if m.drift_detector != "none" else None
        self.feature_drift = FeatureDrift(self.columns, m.drift_features, m.drift_detector, m.drift_delta,
                                          seed=m.seed, window_size=m.drift_window_size,
                                          stat_size=m.drift_stat_size) \
            if m.drift_features and m.drift_detector != "none" else None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in _TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.rt = None  # type: ignore[assignment]  # set by attach()
        self._closed_ends, self._latencies = [], []
        if "dedupe" not in state:  # a snapshot from before frames were deduplicated
            self.dedupe = FrameDedupe()
        if "scalar" not in state:  # a snapshot from before scalar readings were scored
            self.scalar, self._scalar_open = None, False
        if "champion_ref" not in state:  # a snapshot from before assets kept the latest champion
            self.champion_ref = None
        self._flushing = False

    def attach(self, rt: SiteRuntime) -> AssetAnalyzer:
        self.rt = rt
        spec = rt.assets.get(self.asset_id)
        if spec is not None and (columns := rt.columns(spec)) == self.columns:  # resumed: shared again
            self.columns, self.col_index = columns, rt.column_index(spec)
        self.kpi.max_gap_ns = _ns(rt.config.kpi.max_gap_s)  # also for a snapshot from before the setting
        return self

    # ---- input -------------------------------------------------------------
    def on_items(self, items: list[Frame | Reading | Feedback], now_s: float | None = None,
                 columns_tried: bool = False) -> list[Output]:
        """Take a batch of this asset's inputs; ``now_s`` (monotonic wall clock) drives stream idleness.
        ``columns_tried``: the caller has had :meth:`_on_columns` of ``items`` (a list of columns, no model
        switch) answer None already."""
        if self.rt.models is not None and any(isinstance(i, ModelSwitch) for i in items):
            for sw in items:
                if isinstance(sw, ModelSwitch):
                    self._switch(sw)
            items = [i for i in items if not isinstance(i, ModelSwitch)]
        one_set = len(items) == 1 and type(items[0]) is ReadingColumns  # (one asset's rows of a poll batch)
        kinds = {ReadingColumns} if one_set else set(map(type, items))
        if ReadingColumns in kinds:  # table readings as columns: in one pass if nothing needs them one by one
            if len(kinds) == 1 and not columns_tried:
                outs_c = self._on_columns(items, now_s)  # type: ignore[arg-type]
                if outs_c is not None:
                    return outs_c
            items = expand_columns(items)
            kinds = set(map(type, items))
        feedback = Feedback in kinds
        data = [i for i in items if not isinstance(i, Feedback)] if feedback else items
        outs: list[Output] = []
        if data:
            data = self._screen(data, outs, kinds == {Reading})
        closed, late = self.windows.add(data, now_s) if data else ([], [])
        # what the windows took: every item of data unless some were late (the usual case: no set to build)
        kept = {id(x) for x in data}.difference(id(x) for x in late) if late else None
        for item in late:
            outs.append(self._late(item))
        metrics = self.rt.timeline_metrics
        for item in items if feedback or metrics else ():
            if isinstance(item, Feedback):
                waiting = getattr(self, "_waiting_feedback", 0)
                if waiting >= MAX_WAITING_FEEDBACK and (self.clock_ns is None or item.ts_ns >= self.clock_ns):
                    outs.append(self._reject(item, "too_many_waiting", (
                        f"{waiting} feedback messages of asset {self.asset_id} wait for its clock to reach "
                        f"their time already (the most is {MAX_WAITING_FEEDBACK}); this one, at "
                        f"{iso_ns(item.ts_ns)}, is refused: send feedback when it happens, not ahead")))
                    continue
                self._waiting_feedback = waiting + 1
                self._enqueue(item.ts_ns, item)
            elif isinstance(item, Reading) and item.metric in metrics and (kept is None or id(item) in kept):
                self._enqueue(item.ts_ns, item)
        scalar = self.scalar
        if scalar is not None:  # (add_readings skips frames and Bad-quality readings)
            scalar.add_readings(data if kept is None else [item for item in data if id(item) in kept])
        if self.windows.closed_end_ns is not None:  # a repeat of a frame before this is late anyway
            self.dedupe.forget_before(self.windows.closed_end_ns - self.rt.length_ns)
        outs.extend(self._windows_closed(closed))
        if self.clock_ns is not None:  # feedback from the past (relative to the clock) applies now
            outs.extend(self._run_until(self.clock_ns, inclusive=False, timers=False))
        self._report()
        return outs

    def _on_columns(self, cols: list[ReadingColumns], now_s: float | None) -> list[Output] | None:
        """:meth:`on_items` for a batch of table readings as columns (see
        :class:`~aiotstream.records.ReadingColumns`), without a :class:`Reading` per value; None (nothing
        changed) when a reading must be taken one by one: one too old or late, one of a metric the KPI
        timeline follows, or sliding windows. The outputs are those of ``on_items`` of the readings."""
        rt = self.rt
        metrics = rt.timeline_metrics
        in_order = False
        if len(cols) == 1:  # (one asset's rows of one poll batch: the usual case)
            c = cols[0]
            if metrics and not metrics.isdisjoint(c.metrics):
                return None
            ts = c.ts_ns
            if not ts:
                return None
            # in time order (the usual case: its ends are the extremes)? (sorted() of a list in order is one
            # pass in C, cheaper than a comparison per pair through map)
            in_order = c.in_order or ts == sorted(ts)
            lo, hi = (ts[0], ts[-1]) if in_order else (min(ts), max(ts))
        else:
            if metrics and any(not metrics.isdisjoint(c.metrics) for c in cols):
                return None
            times = [t for c in cols if c.ts_ns for t in (min(c.ts_ns), max(c.ts_ns))]
            if not times:
                return None
            hi, lo = max(times), min(times)  # as _screen's lean path: is the oldest reading too old?
        windows = self.windows
        progress = windows.progress
        if progress:
            if len(progress) == 1:  # (one stream: unpacked, no call)
                (newest,) = progress.values()
            else:
                newest = max(progress.values())
            ref = hi if hi > newest else newest  # noqa: FURB136 (no call)
        else:
            ref = hi
        max_past = self._max_past_ns
        if max_past is None:
            max_past = self._max_past_ns = _ns(rt.config.window.max_past_s)
        if lo < ref - max_past:
            return None
        # without ONNX models (whose pending windows are kept) a window of readings only may come lean: all
        # that _windows_closed reads of one is its start, end, inputs and (no) partials
        closed = windows.add_columns(cols, now_s, (lo, hi), in_order, rt.models is None)
        if closed is None:
            return None
        scalar = self.scalar
        if scalar is not None:
            scalar.rows.add_columns(cols)  # (ScalarScorer.add_columns, one call less)
        if self.dedupe.order and windows.closed_end_ns is not None:  # a repeat of a frame before this is late
            self.dedupe.forget_before(windows.closed_end_ns - rt.length_ns)
        outs = self._windows_closed(closed) if closed or rt.models is not None else []
        if self.queue and self.clock_ns is not None:  # feedback from the past (relative to the clock) applies
            outs.extend(self._run_until(self.clock_ns, inclusive=False, timers=False))
        self._report()
        return outs

    def _screen(self, data: list[Frame | Reading], outs: list[Output], readings_only: bool = False
                ) -> list[Frame | Reading]:
        """Drop what must not reach the windows: inputs far behind the asset's own clock (``too_old`` dead
        letters) and repeated frames (same ``(seq, t0)``: counted in the run summary as ``duplicate_frame``).

        The asset's clock is the newest event time it has delivered (this batch included), so a replay of old
        files is judged against its own time, not the wall clock; within ``window.max_past_s`` of it, an input
        is either in an open window or ``late``. So one stray timestamp (1970) cannot open a window decades
        before the asset's data, and the KPI time that would follow it is bounded anyway (``kpi.max_gap_s``).
        """
        if readings_only:  # the lean path: nothing to drop unless the oldest reading is too old
            times = [i.ts_ns for i in data]
            hi, lo = max(times), min(times)
            progress = self.windows.progress
            ref = hi if not progress else max(hi, max(progress.values()))
            floor = ref - _ns(self.rt.config.window.max_past_s)
            if lo >= floor:
                return data
        times = [i.t0_ns if isinstance(i, Frame) else i.ts_ns for i in data]
        newest = self.windows.max_event_ns
        ref = max(times) if newest is None else max(newest, max(times))
        floor = ref - _ns(self.rt.config.window.max_past_s)
        keep: list[Frame | Reading] = []
        dups = 0
        for item, t in zip(data, times):
            if t < floor:
                outs.append(self._too_old(item, t, ref))
            elif isinstance(item, Frame) and not self.dedupe.first_time(item.seq, t):
                dups += 1
            else:
                keep.append(item)
        if dups:
            STATS.add("dropped", "duplicate_frame", dups)
        return keep

    def flush(self, kpi: bool = True) -> list[Output]:
        """Close every open window; with ``kpi`` (end of input) also apply every queued event and emit every
        KPI period. Timers due after the last event do not fire: nothing has happened by then.

        An idle asset closes its windows but keeps its KPI period open, so a
        period is emitted once, with all its windows.
        """
        self._flushing = True
        try:
            outs = self._windows_closed(self.windows.flush())
            if self.pending:  # end of input or a silent asset: score what waits now
                outs.extend(self.drain(now=True))
                assert not self.pending, "a window stayed unscored after a flush of the batcher"
        finally:
            self._flushing = False
        if self.scalar is not None:  # every window closed: every row is final
            outs.extend(self._scalar(math.inf, final=True))
        if kpi:
            while self.queue:
                outs.extend(self._run_until(self.queue[0][0], inclusive=True))
            outs.extend(self._periods(self.kpi.flush()))
        self._report()
        return outs

    def idle(self, until_ns: int) -> list[Output]:
        """The asset is silent: let its clock run on to ``until_ns`` (the caller adds the wall-clock time of
        the
        silence to the clock as it stood when the silence began), applying what falls due on the way."""
        if self.clock_ns is None:
            return []
        outs = self.drain(now=True) if self.pending else []  # the windows' scores first: before the silence
        outs += self._run_until(until_ns, inclusive=True)
        self._report()
        return outs

    def release(self) -> None:
        """The asset's state is being discarded (silent past ``state_ttl_s``): take back what it reports."""
        self.suppression.release()
        self._shares()[0].release()
        self._shares()[1].release()
        STATS.forget_watermark(self.asset_id)

    def _shares(self) -> tuple[Share, Share]:
        if "alert_share" not in self.__dict__:  # a snapshot from before the metrics
            self.alert_share, self.command_share = Share("open_alerts"), Share("pending_commands")
        return self.alert_share, self.command_share

    def _report(self) -> None:
        """Report to the run summary whether this asset's alerts are suppressed at its clock now, and to the
        metrics what the batch closed (window ends, model latencies: one call each per batch, not per window),
        its open alerts and pending commands (counted only when it has any, or had)."""
        clock, schedule = self.clock_ns, self.schedule
        active = clock is not None and bool(schedule.windows) and schedule.active(clock)
        if active != self.suppression.on:
            self.suppression.update(active)
        ends, lat = self._closed_ends, self._latencies
        if ends:  # (their close latencies and the newest end as the asset's watermark)
            STATS.windows_closed(self.asset_id, time.time(), ends)
            ends.clear()
        if lat:
            model = self.rt.model_block
            STATS.observe_many("inference_latency_seconds", [x / S for x in lat],
                               (str(model["name"]), str(model["version"])))
            lat.clear()
        book, control = self.book, self.control
        if book.current or control.commands or "alert_share" not in self.__dict__ or self.alert_share.now \
                or self.command_share.now:  # (what report_open looks at)
            effects.report_open(book, control, *self._shares())

    def next_deadline_ns(self) -> int | None:
        """The next event time at which something is due (a timer or a queued event), for wall-clock
        wake-ups."""
        times = [t for t in (self.book.next_deadline(), self.control.next_deadline()) if t is not None]
        if self.queue:
            times.append(self.queue[0][0])
        return min(times) if times else None

    # ---- the clock -----------------------------------------------------------
    def _enqueue(self, t_ns: int, item: Reading | Feedback) -> None:
        self._arrivals += 1
        heapq.heappush(self.queue, (t_ns, self._arrivals, item))

    def _tick(self, t_ns: int) -> None:
        if self.clock_ns is None or t_ns > self.clock_ns:
            self.clock_ns = t_ns

    def _windows_closed(self, closed: list[ClosedWindow] | list[ClosedWindow | ReadingsWindow]
                        ) -> list[Output]:
        if self.rt.models is not None:
            return self._submit(closed)  # (also with none closed: it hands out the scores that are back)
        outs: list[Output] = []
        if not closed:  # (most calls: a frame that closes nothing)
            return outs
        kpi, book, control, scalar, schedule = self.kpi, self.book, self.control, self.scalar, self.schedule
        ends = self._closed_ends
        # nothing queued and no alert, held-back alert or command (_run_until and _timers would find nothing
        # due): found once per call, and again after each step that may change it
        quiet = not (self.queue or book.current or book.suppressed or control.commands)
        block_ns, flushing, lengths = 0.0, self._flushing, None
        if scalar is not None:
            block_ns = scalar.cfg.block_s * 1e9
            # every KPI scheme tumbling: their lengths (a window's own periods found by one modulo each)
            lengths = self._kpi_lengths
            if lengths is False:
                lengths = self._kpi_lengths = [sch.length_ns for sch in kpi.schemes] \
                    if all(type(sch) is Tumbling for sch in kpi.schemes) else None
        for w in closed:
            start, end = w.start_ns, w.end_ns
            if kpi.accounted_ns is None:  # (kpi.begin)
                kpi.accounted_ns = start
            if not quiet:
                outs.extend(self._run_until(end, inclusive=False))
                quiet = not (self.queue or book.current or book.suppressed or control.commands)
            if w.partials:
                outs.extend(self._on_window(w))
                quiet = not (self.queue or book.current or book.suppressed or control.commands)
            else:  # readings only: nothing to score (_on_window's first lines, _tick inline)
                clock = self.clock_ns
                if clock is None or end > clock:
                    self.clock_ns = end
                ends.append(end)  # for the metrics, reported once per batch (_report)
                if quiet:
                    plain = scalar is None
                    if not plain and lengths is not None and not flushing:
                        # no scalar rows due (see below) even if a KPI period ended here: none pending, or
                        # no block due and no period ending by the window's end, neither an open one nor
                        # one of the window's own periods (which add_window would open)
                        first = scalar.ready[0][0] if scalar.ready else scalar.rows.first_ns()
                        if first is None:
                            plain = True
                        elif not end - first > block_ns:
                            plain = True
                            for p in kpi.periods.values():
                                if p.end <= end:
                                    plain = False
                                    break
                            else:
                                for length in lengths:
                                    if start - start % length + length <= end:
                                        plain = False
                                        break
                    if plain:  # nothing between the KPI steps below: the steps in one
                        done = kpi.readings_window(w.inputs, start, end, schedule)
                        if done:
                            outs.extend(self._periods(done))
                            quiet = not (self.queue or book.current or book.suppressed or control.commands)
                        continue
                kpi.add_window(w.inputs, _ONE_WINDOW, start)
            if scalar is not None:  # the rows before the window's end are final: before its KPIs close
                if flushing:
                    outs.extend(self._scalar(end, final=True))
                    quiet = not (self.queue or book.current or book.suppressed or control.commands)
                else:  # (_scalar_window inline: ScalarScorer.due, a KPI period's end forces the rows out)
                    first = scalar.ready[0][0] if scalar.ready else scalar.rows.first_ns()
                    if first is not None:
                        force = False
                        for p in kpi.periods.values():
                            if p.end <= end:
                                force = True
                                break
                        if force or end - first > block_ns:
                            outs.extend(self._scalar(end, force=force))
                            quiet = not (self.queue or book.current or book.suppressed or control.commands)
            if not quiet:
                outs.extend(self._timers(end))
            done = kpi.advance_close(end, schedule)
            if done:
                outs.extend(self._periods(done))
                quiet = not (self.queue or book.current or book.suppressed or control.commands)
        return outs

    # ---- batched ONNX scoring ----------------------------------------------------
    def _switch(self, sw: ModelSwitch) -> None:
        """A promotion reaches this asset: windows closing from now on are scored by the new version."""
        store = self.rt.models
        assert store is not None
        # the champion an asset leaving a canary returns to: the latest promoted one, else the config's
        champion = self.champion_ref or store.ref(self.rt.config.model.version)
        self.model_ref, self.variant, self.shadow_ref = rollout.switch(
            self.asset_id, sw, self.model_ref, self.variant, self.shadow_ref, champion)
        if sw.variant == "champion" and sw.ref is not None:
            self.champion_ref = sw.ref  # in the snapshot, so a resumed flow keeps it

    def _submit(self, closed: list[ClosedWindow]) -> list[Output]:
        store = self.rt.models
        assert store is not None
        lane = store.lane()
        if self._batcher_id != lane.id:
            self._resubmit()
        if closed and type(self.pending) is not deque:
            self.pending = deque(self.pending)
        pending = self.pending
        for w in closed:
            if w.n_frames == 0:
                pending.append(_Pending(w, None, None, self.variant, None))
                continue
            x = self._features(w)
            key = (self.asset_id, w.start_ns)
            lane.batcher.submit((key, "model"), self.model_ref, x, self.asset_id)  # type: ignore[arg-type]
            if self.shadow_ref is not None:
                lane.batcher.submit((key, "shadow"), self.shadow_ref, x, self.asset_id)
            pending.append(_Pending(w, x, self.model_ref, self.variant, self.shadow_ref,
                                    submitted=time.monotonic()))
        if self.pending:
            lane.waiting[self.asset_id] = self
        return self.drain()

    def _resubmit(self) -> None:
        """After a resume the pending windows' rows are unknown to this worker's batcher: submit them
        again."""
        store = self.rt.models
        assert store is not None
        lane = store.lane()
        for p in self.pending:
            key = (self.asset_id, p.window.start_ns)
            p.submitted = time.monotonic()  # another process's clock before the resume
            if p.x is not None and p.scored is None:
                lane.batcher.submit((key, "model"), p.model, p.x, self.asset_id)  # type: ignore[arg-type]
            if p.x is not None and p.shadow is not None and p.shadow_scored is None:
                lane.batcher.submit((key, "shadow"), p.shadow, p.x, self.asset_id)
        if self.pending:
            lane.waiting[self.asset_id] = self
        self._batcher_id = lane.id

    def drain(self, now: bool = False) -> list[Output]:
        """Run the decisions of the pending windows whose scores are back, oldest first; stop at one still
        out.
        ``now``: have the batcher score everything waiting first (end of input, silence).

        Also called for this asset while another asset of the worker runs
        (:func:`deliver`), as soon as its scores are back."""
        outs: list[Output] = []
        if not self.pending:
            return outs
        store = self.rt.models
        assert store is not None
        lane = store.lane()
        if self._batcher_id != lane.id:
            self._resubmit()
        batcher = lane.batcher
        if now:
            batcher.flush()
        while self.pending:
            p = self.pending[0]
            if p.x is not None:
                key = (self.asset_id, p.window.start_ns)
                if p.scored is None:
                    p.scored = batcher.take((key, "model"))
                if p.shadow is not None and p.shadow_scored is None:
                    p.shadow_scored = batcher.take((key, "shadow"))
                if p.scored is None or (p.shadow is not None and p.shadow_scored is None):
                    break
                p.added_s = time.monotonic() - p.submitted
            self.pending.popleft()
            w = p.window
            self.kpi.begin(w.start_ns)
            outs.extend(self._run_until(w.end_ns, inclusive=False))
            outs.extend(self._on_window(w, p))
            if self.scalar is not None:  # as in _windows_closed
                outs.extend(self._scalar_window(w.end_ns))
            outs.extend(self._timers(w.end_ns))
            self.kpi.advance(w.end_ns, self.schedule)
            outs.extend(self._periods(self.kpi.close(w.end_ns)))
        if not self.pending and lane.waiting.get(self.asset_id) is self:
            del lane.waiting[self.asset_id]
        self._report()
        return outs

    def _run_until(self, t_ns: int, inclusive: bool, timers: bool = True) -> list[Output]:
        """Apply queued events and fire timers up to ``t_ns`` in event-time order (timers first at a tie)."""
        outs: list[Output] = []
        while self.queue and (self.queue[0][0] < t_ns or (inclusive and self.queue[0][0] <= t_ns)):
            ts = self.queue[0][0]
            if timers:
                outs.extend(self._timers(ts))
            _, _, item = heapq.heappop(self.queue)
            if isinstance(item, Feedback):
                self._waiting_feedback = getattr(self, "_waiting_feedback", 1) - 1
            outs.extend(self._apply(item))
        if timers:
            outs.extend(self._timers(t_ns if inclusive else t_ns - 1))
        return outs

    def situation(self, t_ns: int) -> Situation:
        alerts = {k: a.severity for k, a in self.book.current.items()}
        return Situation(self.metrics, alerts, self.kpi.state, self.schedule.active(t_ns))

    def _timers(self, t_ns: int) -> list[Output]:
        book = self.book
        if not book.current and not book.suppressed and not self.control.commands:
            return []  # no alert, no held-back alert, no command: no deadline (what next_deadline says)
        outs: list[Output] = []
        while True:
            due = [d for d in (self.book.next_deadline(), self.control.next_deadline()) if d is not None
                   and d <= t_ns]
            if not due:
                return outs
            at = min(due)
            self._tick(at)
            lineage = self.rt.ctx.block(inputs=[], window=None, features=None, model=None)
            outs.extend(effects.timer_outputs(self, at, lineage))

    # ---- steps -------------------------------------------------------------
    def _late(self, item: Frame | Reading) -> Output:
        t = item.t0_ns if isinstance(item, Frame) else item.ts_ns
        wm = self.windows.watermark_ns
        raw = item.raw
        if raw is None:  # table rows carry no bytes: the dead letter keeps the reading as JSON
            raw = encode_reading(item.asset, item.ts_ns, item.metric,
                                 item.value) if isinstance(item, Reading) else b""
        dl = DeadLetter(raw, item.pos, "late",
                        f"event time {iso_ns(t)} falls in a window that closed already (watermark "
                        f"{iso_ns(wm) if wm is not None else '-'}, allowed lateness "
                        f"{self.rt.config.window.allowed_lateness_s} s)", asset=self.asset_id)
        self.kpi.count("late_inputs", 1, t)
        return self.rt.deadletter(dl)

    def _too_old(self, item: Frame | Reading, t: int, ref: int) -> Output:
        raw = item.raw
        if raw is None:  # table rows carry no bytes: the dead letter keeps the reading as JSON
            raw = encode_reading(item.asset, item.ts_ns, item.metric,
                                 item.value) if isinstance(item, Reading) else b""
        return self.rt.deadletter(DeadLetter(
            raw, item.pos, "too_old",
            f"event time {iso_ns(t)} is more than {self.rt.config.window.max_past_s:g} s (window.max_past_s) "
            f"behind the asset's newest event time ({iso_ns(ref)})", asset=self.asset_id))

    def _reject(self, item: Reading | Feedback, reason: str, message: str) -> Output:
        return self.rt.deadletter(DeadLetter(item.raw or b"", item.pos, reason, message, asset=self.asset_id))

    def _apply(self, item: Reading | Feedback) -> list[Output]:
        t = item.ts_ns if self.clock_ns is None else max(item.ts_ns, self.clock_ns)
        self._tick(t)
        if isinstance(item, Reading):
            return self._reading(item)
        return self._feedback(item, t)

    def _reading(self, r: Reading) -> list[Output]:
        k = self.rt.config.kpi
        self.metrics[r.metric] = r.value
        self.control.on_reading(r.metric, r.ts_ns, r.value)
        problem = None
        if r.metric == k.state_metric:
            problem = self.kpi.set_state(r.value, r.ts_ns, self.schedule)
            reason = "bad_state"
        elif r.metric in (k.parts_total_metric, k.parts_good_metric):
            problem = self.kpi.counter("parts_total" if r.metric == k.parts_total_metric else "parts_good",
                                       r.value,
                                       r.ts_ns)
            reason = "bad_counter"
        elif r.metric == k.power_metric:
            self.kpi.power("energy", r.value, r.ts_ns)
        elif r.metric == k.baseline_power_metric:
            self.kpi.power("baseline", r.value, r.ts_ns)
        return [self._reject(r, reason, problem)] if problem else []

    def _feedback(self, fb: Feedback, t_ns: int) -> list[Output]:
        lineage = self.rt.ctx.block(inputs=_pos_inputs(fb.pos), window=None, features=None, model=None)
        rt = self.rt
        forget = self._forget_windows_before() if fb.type == "maintenance" else None
        outs = effects.feedback_outputs(self, fb, t_ns, lineage, rt.maintenance_max_ns,
                                        rt.maintenance_max_windows,
                                        forget)
        if fb.type == "maintenance" and fb.reset and fb.end_ns is not None and not outs:  # (not refused)
            self.rebaseline_ns = fb.end_ns  # the machine was reset: its detectors re-baseline at the end
            if self.scalar is not None:
                self.scalar.rebaseline(fb.end_ns)
        return outs

    def _forget_windows_before(self) -> int | None:
        """Maintenance windows that ended before this can matter no more: the clock, the KPI accounting and
        every alert held back by maintenance are past them."""
        times = [self.clock_ns, self.kpi.accounted_ns] + [s.since_ns for s in self.book.suppressed.values()]
        return None if any(t is None for t in times[:2]) else min(t for t in times if t is not None)

    def _features(self, w: ClosedWindow) -> np.ndarray:
        fs = self.rt.feature_set
        temps = w.readings.get(self.rt.temp_metric)
        if temps:
            self.last_temp = (float(np.mean(temps)), float(np.max(temps)))
        if not fs.spectral:  # frames in time order merged, features and temperatures in one kernel call
            row = window_row(w.partials, self.rt.time_keep, *self.last_temp)
            if row is not None:
                return row
        # frames in time order: exact merge, one kernel call (np.array of the same-shape rows: np.stack's
        # result in 2.1 us, not 5.8, for 10 frames)
        part = reduce_partials(np.array(w.partials))
        spec = reduce_spectral(np.array(w.spectral)) if fs.spectral else None
        return np.concatenate([window_features(part, fs, spec), np.asarray(self.last_temp)])

    def _on_window(self, w: ClosedWindow, pending: _Pending | None = None) -> list[Output]:
        outs: list[Output] = []
        kpi = self.kpi
        self._tick(w.end_ns)
        self._closed_ends.append(w.end_ns)  # for the metrics, reported once per batch (_report)
        if not w.partials:  # readings only: nothing to score
            kpi.add_window(w.inputs, _ONE_WINDOW, w.start_ns)
            return outs
        kpi.add_spans(w.inputs, w.start_ns)
        at = getattr(self, "rebaseline_ns", None)  # (a snapshot from before re-baselining has none)
        if at is not None and w.end_ns > at:  # the machine was reset: a new warm-up on the new normal
            self.rebaseline_ns = None
            self.detector = _window_detector(self.rt.config, self.columns)
            self._new_drift_watches()  # the old normal is no reference for the new one either
            if getattr(self, "_changing", False) and self.scalar is not None:  # a change in progress ends
                self.scalar.condition(False, w.start_ns, w.start_ns)
            self._changing = False
            kpi.add_many({"baseline_changes": 1}, {}, w.start_ns, exact_time=True)
        detector = self.detector
        open_at = self.rt.config.alerts.open_threshold
        extra: dict[str, Any] = {}
        sums: dict[str, float] = {}
        maxima: dict[str, float] = {}
        if pending is None:  # an online model scores (and learns) here
            x = self._features(w)
            t0 = time.perf_counter_ns()
            score = detector.score_learn(x)
            latency = time.perf_counter_ns() - t0
            warm = detector.warm
            model = self.rt.model_block
            self._latencies.append(latency)  # for the metrics, reported once per batch (_report)
        else:  # the batcher scored it; latency: what batching added, from submission to these decisions
            assert pending.x is not None and pending.scored is not None and pending.model is not None
            x, got = pending.x, pending.scored
            detector.score_learn(x)  # the z-score baseline keeps learning: it explains the alerts
            added = pending.added_s
            score, latency, warm = got.score, round(added * 1e9), True
            store = self.rt.models
            assert store is not None
            model = store.block(pending.model, pending.variant)
            extra["latency"] = {"added_ms": round(added * 1e3, 3), "scored_ms": round(got.wait_s * 1e3, 3),
                                "call_ms": round(got.call_s * 1e3, 3),
                                "batch_rows": got.batch_rows}
            sums.update(score_sum=score, score_sq_sum=score * score)
            if pending.variant == "canary":
                sums.update(canary_windows=1, canary_anomalous_windows=int(score >= open_at),
                            canary_score_sum=score,
                            canary_score_sq_sum=score * score)
                maxima["canary_max_score"] = score
            sh = pending.shadow_scored
            if pending.shadow is not None and sh is not None:
                extra["shadow"] = {"model": store.block(pending.shadow, "shadow"),
                                   "score": round(sh.score, 6),
                                   "anomalous": sh.score >= open_at}
                sums.update(shadow_windows=1, shadow_anomalous_windows=int(sh.score >= open_at),
                            shadow_score_sum=sh.score, shadow_score_sq_sum=sh.score * sh.score,
                            shadow_latency_s=round(sh.wait_s * 1e9))
                maxima["shadow_max_score"] = sh.score
        # a detector with its own alert (the calibrated one: tail probability and persistence) decides the
        # anomaly alert: the book gets its condition (open_threshold, or 1.0 when p < risk^2: critical), 0
        # when closed; [[alerts.rules]] on "score" and control rules get the score (1 - p)
        decides = pending is None and hasattr(detector, "transition")
        alert_value = score
        if decides:
            d = detector  # type: ignore[assignment]
            alert_value = (1.0 if d.p < d.risk * d.risk else open_at) if d.alert else 0.0
            changing = bool(d.transition)
            if changing and not getattr(self, "_changing", False):
                sums["baseline_changes"] = 1  # a re-baseline of the load-dependent columns
                extra["condition_change"] = {"load_factor": round(float(d.g), 6)}
            if self.scalar is not None and changing != getattr(self, "_changing", False):
                self.scalar.condition(changing, w.end_ns, w.end_ns - (d.settle + 1) * self.rt.hop_ns)
            self._changing = changing
        shifted = self.drift.update(x) if self.drift is not None and warm else []
        drifted = (["features"] if shifted else []) + \
            (self.feature_drift.update(x) if self.feature_drift is not None and warm else [])
        drift = bool(drifted)
        if drifted:
            sums["drift_events"] = len(drifted)
        anomalous = warm and (bool(alert_value) if decides else score >= open_at)
        kpi.add_many({"windows": 1, "frames": w.n_frames, "model_calls": 1, "model_latency_s": latency,
                      "scored_windows": int(warm), "anomalous_windows": int(anomalous), "drift_events": 0,
                      **sums},
                     {"model_latency_max_s": latency, "max_score": score,
                      **maxima}, w.start_ns, exact_time=True)
        ctx, wblock = self.rt.ctx, window_block(w.start_ns, w.end_ns)
        lineage = ctx.block(inputs=inputs_block(w.inputs), window=wblock, features=self.rt.features_block,
                            model=model)
        outs.append(Output("score", self.asset_id, {
            "schema": "aiotstream.score/1",
            "id": make_id("score", ctx.site, ctx.config_hash, model["sha256"], self.asset_id, w.start_ns,
                          w.end_ns),
            "asset": self.asset_id, "line": self.line,
            "score": round(score, 6), "warm": warm, "anomalous": anomalous, "drift": drift,
            "frames": w.n_frames, "seq_range": [w.first_seq, w.last_seq],
            # round(v, 6) per column, NaN as None, in one compiled pass (about 5x the list comprehension)
            "values": dict(zip(self.columns, rounded_list(x, 6))),
            **extra,
            **lineage,
        }))
        if warm:
            watched = self.feature_drift.watched if self.feature_drift is not None else []
            for signal in ["features", *watched]:
                self.drift_from.setdefault(signal, w.start_ns)
        for signal in drifted:
            outs.extend(self._drifted(signal, w, model, lineage,
                                      self.drift.last if signal == "features" and self.drift else None))
        k = self.rt.config.alerts.explain_top
        explain: Callable[[], list[dict]] = lambda: _clean(detector.explain(x, k)) if k else []
        values = ((spec.type, (alert_value if spec.type == ALERT_TYPE else score) if spec.signal == "score"
                   else float(x[self.col_index[spec.signal]]))
                  for spec in self.specs if spec.signal is not None and spec.type != ALERT_TYPE_SCALAR
                  and (warm or not spec.needs_warm_model))
        changes = effects.on_values(self, w.end_ns, ((k, v) for k, v in values if not math.isnan(v)),
                                    (w.start_ns, w.end_ns), explain, x)
        outs.extend(effects.alert_outputs(self, changes, lineage))
        if self.signals:
            signals = {s: (score if s == "score" else float(x[self.col_index[s]])) for s in self.signals}
            changes_c = self.control.on_signals(w.end_ns, signals, self.situation(w.end_ns))
            outs.extend(effects.command_outputs(self, changes_c, lineage))
        return outs

    def _scalar_window(self, end_ns: int) -> list[Output]:
        """A window closed at ``end_ns``: the scalar rows before it are final. Score them if a block is due,
        or all of them if a KPI period ends there (so they count in it) or the asset is being flushed."""
        sc = self.scalar
        assert sc is not None
        if self._flushing:
            return self._scalar(end_ns, final=True)
        # ScalarScorer.due, inline (once per closed window)
        first = sc.ready[0][0] if sc.ready else sc.rows.first_ns()
        if first is None:
            return []
        ends = [p.end for p in self.kpi.periods.values()]
        force = bool(ends) and min(ends) <= end_ns
        if not force and not end_ns - first > sc.cfg.block_s * 1e9:
            return []
        return self._scalar(end_ns, force=force)

    def _scalar(self, before_ns: float, force: bool = False, final: bool = False) -> list[Output]:
        """Score the asset's scalar rows that are final before ``before_ns`` (see
        :mod:`aiotstream.pdm.scalar`): an ``aiotstream.scalar/1`` record per block, the
        ``scalar_anomaly`` alert through the alert book, KPIs."""
        assert self.scalar is not None
        outs: list[Output] = []
        for block in self.scalar.step(before_ns, force, final):
            outs.extend(self._scalar_block(block))
        return outs

    def _scalar_block(self, b: ScoredBlock) -> list[Output]:
        res, ts = b.result, b.ts
        rows = len(ts)
        if not rows:
            return []
        tsl = ts.tolist()  # (the block's arrays read once as lists: no numpy scalar per row or field)
        t0, t1 = tsl[0], tsl[-1]
        self._tick(t1)
        inputs = [{"topic": t, "partition": p, "first_offset": lo, "last_offset": hi}
                  for (t, p), (lo, hi) in sorted(b.spans.items())]
        ctx = self.rt.ctx
        al = res.alert.tolist()
        alert_rows = al.count(True)
        score = res.score
        scl = score.tolist()
        top = int(score.argmax())
        max_score = scl[top]
        k = self.rt.config.alerts.explain_top
        base = b.rows_before  # the detector's row number of the block's first row
        events = b.events
        changes = [{"ts_ns": tsl[min(max(e.row - base, 0), rows - 1)], "channel": b.channels[e.channel],
                    "old_level": e.old_level, "new_level": e.new_level} for e in events] if events else []
        rec = {
            "schema": "aiotstream.scalar/1",
            "id": make_id("scalar", ctx.site, ctx.config_hash, self.asset_id, t0, t1, rows),
            "asset": self.asset_id, "line": self.line, "channels": b.channels, "rows": rows,
            "row_ts_ns": tsl, "row_score": scl,
            "row_alert": ([0] * rows if not alert_rows else list(map(int, al))) if res.alert.dtype == np.bool_
            else [1 if a else 0 for a in al],
            "max_score": max_score, "min_p": float(res.p[top]), "alert_rows": alert_rows,
            "restarted": b.restarted, "changes": changes,
            "top": self._scalar_explain(b, top, k),
        }
        # the lineage fields set in the record itself (no dict of their own: the alerts below get one)
        ctx.block_into(rec, inputs=inputs, window=window_block(t0, t1 + 1), features=None, model=None)
        outs = [Output("scalar", self.asset_id, rec)]
        self.kpi.add_many({"scalar_rows": rows, "scalar_alert_rows": alert_rows,
                           "baseline_changes": len(changes)}, {"scalar_max_score": max_score}, t1)
        # the alert book follows the detector's alert (its hysteresis): fed at every change of it and at
        # the block's last row, so an operator's clear of a still-open alert re-opens it at the next block
        # (after the cool-down), as for window scores
        at = []
        prev = self._scalar_open  # each row's predecessor (the previous block's last for row 0)
        if alert_rows or prev or res.alert.dtype != np.bool_:  # (else no row differs from its predecessor)
            for r, a in enumerate(al):
                if a != prev:
                    at.append(r)
                prev = a
        if not at or at[-1] != rows - 1:
            at.append(rows - 1)
        book_changes = []
        on_value = self.book.on_value
        for r in at:
            tr = tsl[r]
            ch = on_value(ALERT_TYPE_SCALAR, tr, 1.0 if al[r] else 0.0,
                          lambda r=r: self._scalar_explain(b, r, k), None, (tr, tr + 1))
            if ch:
                effects.annotate_opened(ch, {"detector": "streaming", "score": scl[r],
                                             "p": float(res.p[r]), "row_ns": tr})
                book_changes.extend(ch)
        self._scalar_open = bool(al[-1])
        if book_changes:
            outs.extend(effects.alert_outputs(self, book_changes, lineage_of(rec)))
        return outs

    def _scalar_explain(self, b: ScoredBlock, r: int, top: int) -> list[dict]:
        """The channels that drive row ``r``: ``z`` in units of the channel's own normal deviation, its
        tail probability ``p``, and its normal band (level +/- huber_c scales, as the baseline stood after
        the block); JSON-safe (a missing value, NaN, is None). The channels in order of ``|z|``, the
        largest first (ties in channel order), after the rank test's channel when that test gave the row's
        smallest p (``lead``), as :meth:`~aiotstream.models.streaming.BlockResult.explain` orders them."""
        if not top:
            return []
        c = self.scalar.cfg.huber_c  # type: ignore[union-attr]
        res = b.result
        zr = res.z[r].tolist()
        isnan = math.isnan
        # (not from the detector, which gives finite z: numpy's order of NaN). The sum is NaN if a z is (or
        # for an inf and a -inf: numpy's order of those is the sort's below); one C call, not one per channel
        if isnan(sum(zr)):
            order = np.argsort(-np.abs(res.z[r]), kind="stable").tolist()
        else:  # Python's sort is stable, reversed too: argsort(-|z|, kind="stable")'s order, no numpy call
            order = sorted(range(len(zr)), key=list(map(abs, zr)).__getitem__, reverse=True)
        lead = -1 if res.lead is None else int(res.lead[r])
        if lead >= 0:  # the rank test gave the row's smallest p: its channel first (BlockResult.explain)
            order = [lead] + [i for i in order if i != lead]
        order = order[:top]
        pr = res.channel_p[r].tolist()
        xr = b.x[r].tolist()
        lvl = b.level.tolist()  # type: ignore[union-attr]
        names = b.channels
        var = b.var.tolist() if b.scale is None and b.var is not None else None
        out = []
        for i in order:
            if var is None:
                sc = b.scale_of(i)
            else:  # ScoredBlock.scale_of(i), inline: max(sqrt(var), 1e-9 (1 + |level|)), NaN if either is
                v, lv = var[i], lvl[i]
                sd = math.sqrt(v) if v >= 0.0 else math.nan
                floor = 1e-9 * (1.0 + abs(lv))
                sc = sd if sd >= floor or isnan(sd) else floor
            v, z, p = xr[i], round(zr[i], 6), pr[i]
            lo, hi = lvl[i] - c * sc, lvl[i] + c * sc
            out.append({"feature": names[i], "value": None if isnan(v) else v, "z": None if isnan(z) else z,
                        "p": None if isnan(p) else p, "baseline_low": None if isnan(lo) else lo,
                        "baseline_high": None if isnan(hi) else hi})
        return out

    def _drifted(self, signal: str, w: ClosedWindow, model: dict, lineage: dict,
                 shifted: list[dict] | None = None) -> list[Output]:
        """A drift detector fired on ``signal`` (``features``: the shift test, naming the ``shifted``
        features; or a watched feature): a ``drift`` alert and a retrain request on ``<site>.models``
        naming the windows the detector saw since it last fired."""
        since = self.drift_from.get(signal, w.start_ns)
        self.drift_from[signal] = w.end_ns
        detector = "shift" if shifted is not None else self.rt.config.model.drift_detector
        detail: dict[str, Any] = {"signal": signal, "detector": detector, "window_range": [since, w.end_ns]}
        names = [f["feature"] for f in shifted or []]
        if shifted is not None:
            detail["features"] = shifted
        outs = effects.alert_outputs(self,
                                     self.book.raise_event(ALERT_TYPE_DRIFT, w.end_ns, "warning", detail),
                                     lineage)
        ctx = self.rt.ctx
        ref = f"{model['name']}@{model['version']}"
        outs.append(Output("model", self.asset_id, {
            "schema": "aiotstream.model/1",
            "id": make_id("model", ctx.site, self.asset_id, "retrain_request", signal, w.end_ns),
            "event": "retrain_request", "ref": ref, "variant": model.get("variant", "champion"),
            "reason": f"{detector} detected drift in {', '.join(names) or signal} over the windows from "
                      f"{iso_ns(since)} to "
                      f"{iso_ns(w.end_ns)}",
            "gate": None, "by": None, "asset": self.asset_id, "detector": detector, "feature": signal,
            "window_range": [since, w.end_ns], "source": None,
            **({"features": names} if shifted is not None else {}),
            **lineage,
        }))
        return outs

    # ---- the entity the effects step works on (aiotstream.decisions.effects.Entity) ---------------
    key = property(attrgetter("asset_id"))
    group = property(attrgetter("line"))

    def count(self, name: str, n: float, t_ns: int) -> None:
        self.kpi.count(name, n, t_ns)

    def on_alert_change(self, ch: AlertChange) -> bool | None:
        """An asset's own consequences: failure accounting (MTTR/MTBF) and learning a label."""
        a, t = ch.alert, ch.at_ns
        if ch.event in ("opened", "cleared") and a.alert_type in self.rt.failure_types:
            self.kpi.alert_failure(a.alert_type, ch.event == "opened", t, self.schedule)
        elif ch.event == "labelled":
            learns = isinstance(self.detector, LabelLearner)
            if a.alert_type == ALERT_TYPE_ANOMALY and a.x is not None and learns:
                return self.detector.learn_label(a.x, a.label == "true_fault")
            return False
        return None

    def _periods(self, results: list[PeriodResult]) -> list[Output]:
        outs: list[Output] = []
        rt = self.rt
        ctx, model_block, features_block, asset_id = rt.ctx, rt.model_block, rt.features_block, self.asset_id
        model_sha = model_block["sha256"]
        rules = self.control.rules  # (once per call, not per period; no generator when there are no rules)
        on_kpis = any(rule.kind == "kpi" for rule in rules) if rules else False
        for r in results:
            rec = kpi_record(ctx, r, scope="asset", model_sha=model_sha, features=features_block,
                             model=model_block)
            outs.append(Output("kpi", asset_id, rec, partial=r))
            if on_kpis:
                t = max(r.end_ns, self.clock_ns or r.end_ns)
                lineage = rt.ctx.block(inputs=inputs_block(r.spans),
                                       window=window_block(r.start_ns, r.end_ns),
                                       features=None, model=None)
                outs.extend(effects.command_outputs(self, self.control.on_kpis(t, r.scheme, derive(r.totals),
                                                                               self.situation(t)), lineage))
        return outs


def _window_detector(cfg: Any, columns: list[str]) -> Detector:
    """A fresh window detector of ``[model]`` (for ONNX models the z-score baseline that explains alerts),
    as the asset's first one: a maintenance reset starts its warm-up again (the model itself stays)."""
    m = cfg.model
    return make_detector("zscore" if m.kind == "onnx" else m.kind, columns, warmup=m.warmup_windows,
                         n_trees=m.n_trees, height=m.height, window_size=m.window_size, seed=m.seed)


def _expected_streams(cfg: Any) -> tuple[str, ...]:
    """The streams an asset's windows wait for (see docs/architecture.md, Windows)."""
    if cfg.scalar.readings_only:
        return ("readings",)
    return ("frames", "readings") if cfg.window.wait_for_readings else ("frames",)


def _scalar_scorer(rt: SiteRuntime) -> ScalarScorer | None:
    """The asset's scalar detector (``[scalar]``); the KPI state and part counters are not channels."""
    cfg = rt.config
    if not cfg.scalar.enabled:
        return None
    k = cfg.kpi
    return ScalarScorer(cfg.scalar, {k.state_metric, k.parts_total_metric, k.parts_good_metric})


def deliver(store: ModelStore, slack_s: float = 0.0) -> list[Output]:
    """Score the calling worker's rows if they are due, then run the decisions of every asset of the worker
    whose scores are back, whichever asset is running: a window's decisions then come as soon as its batch
    is scored, not when Bytewax next activates its own asset (under load, after a whole poll batch).

    The outputs are emitted under the running asset's key; each carries its own asset (``Output.key``),
    which is what the sinks and roll-ups use. Recovery: Bytewax snapshots the keys it ran in an epoch. An
    asset decided this way usually runs in the same epoch anyway (its own notification is due by then);
    if it does not, its snapshot is the earlier one, with the windows still waiting, and a resume from
    that epoch decides them again: the same records with the same ids, as for any replay after a resume."""
    lane = store.lane()
    batcher = lane.batcher
    batcher.flush_due(slack_s)
    outs: list[Output] = []
    ready = batcher.pop_ready()
    if ready:
        t0, handed = time.perf_counter(), 0
        for asset in ready:
            analyzer = lane.waiting.get(asset)
            if analyzer is not None:
                before = len(analyzer.pending)
                outs.extend(analyzer.drain())
                handed += before - len(analyzer.pending)
        batcher.note_handover(time.perf_counter() - t0, handed)  # the batcher flushes this much earlier
    return outs


def _clean(explanation: list[dict]) -> list[dict]:
    """JSON-safe explanation entries: a missing value (NaN) becomes None."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k,
             v in e.items()} for e in explanation]
