"""The end both flows share: line (floor) and site KPI roll-ups of the entities' periods, the audit trail,
then the sinks."""
from __future__ import annotations

import pickle
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import FixedPartitionedSink, Sink

from aiotstream.audit import Auditor
from aiotstream.dataflow.audit_starts import ConfigLoadSource
from aiotstream.dataflow.snapshots import loads as load_snapshot
from aiotstream.governance import Policy
from aiotstream.io.stop import stopping_keeps_state
from aiotstream.kpi import PeriodResult, RollupBook, RollupResult, RollupSite, kpi_record, rollup_inputs
from aiotstream.records import Output


class RollupLogic(StatefulBatchLogic[tuple[str, PeriodResult], Output, RollupBook]):
    """Bytewax wrapper around one scope's :class:`~aiotstream.kpi.RollupBook` (``line:<id>`` or ``site``).

    Bytewax's builder is not told the key, so the values carry it and the
    book is made from the first one.
    """

    def __init__(self, rt: RollupSite, resume: bytes | RollupBook | None, tail: bool, snapshots: bool = True):
        self.rt = rt
        self.book = load_snapshot(resume) if isinstance(resume, bytes) else resume
        self.tail = tail
        self.snapshots = snapshots
        self.wait_s = rt.config.kpi.rollup_wait_s

    def _make(self, key: str) -> RollupBook:
        if key == "site":
            return RollupBook("site", self.rt.ctx.site, set(self.rt.assets))
        line = key.removeprefix("line:")
        return RollupBook("line", line, self.rt.lines.get(line, set()))

    def _records(self, results: list[RollupResult]) -> list[Output]:
        rt = self.rt
        assert self.book is not None
        scope = self.book.scope
        return [Output("kpi", r.line or rt.ctx.site,
                       kpi_record(rt.ctx, r, scope=scope, model_sha=rt.model_block["sha256"],
                                  features=rt.features_block, model=rt.model_block))
                for r in results]

    def on_batch(self, values: list[tuple[str, PeriodResult]]) -> tuple[list[Output], bool]:
        if self.book is None:
            self.book = self._make(values[0][0])
        now = time.monotonic()
        out: list[RollupResult] = []
        for _, r in values:
            out += self.book.add(r, now)
        return self._records(out), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Output], bool]:
        if self.book is None:
            return [], StatefulBatchLogic.RETAIN
        return self._records(self.book.expire(time.monotonic(), self.wait_s)), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Output], bool]:
        if self.book is None or stopping_keeps_state(self.snapshots):  # stopped: the snapshot keeps it
            return [], StatefulBatchLogic.RETAIN
        return self._records(self.book.flush()), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.tail or self.book is None:
            return None
        due = self.book.next_expiry_s(self.wait_s)
        if due is None:
            return None
        return datetime.now(UTC) + timedelta(seconds=max(0.0, due - time.monotonic()))

    def snapshot(self) -> bytes | None:
        assert self.book is not None
        return pickle.dumps(self.book, protocol=pickle.HIGHEST_PROTOCOL) if self.snapshots else None



def rollup_and_sinks(rt: RollupSite, results: Stream[Output], streams: list[Stream[Any]], sink: Sink[Output],
                     also: Sequence[Sink[Any]], tail: bool, snapshots: bool,
                     audit_only: Sequence[Stream[Any]] = ()) -> None:
    """The end every flow shares: the line (floor) and site roll-ups of the entities' KPI periods in
    ``results`` (with ``kpi.rollup``) and the audit trail of the decisions in ``streams``
    (:func:`audit_trail`), merged with ``streams`` into the sink and the ``also`` sinks. ``audit_only``:
    audit inputs ``(chain, (chain, Noted))`` of steps that have no outputs of their own (erasures)."""
    if rt.config.kpi.rollup:
        keyed = op.flat_map("rollup_keys", results, rollup_inputs)
        rolled = op.stateful_batch("rollup", keyed, lambda resume: RollupLogic(rt, resume, tail, snapshots))
        streams = [*streams, op.map("drop_rollup_key", rolled, lambda kv: kv[1])]
    others = [s for s in streams if s is not results]
    policy = Policy.from_config(rt.config)
    if policy.active:  # every record passes here: the PII policy and erasures (governance.py), applied before
        # the audit trail reads the decisions, so that its principals are named as the outputs name them
        results = op.map("governance_policy", results, policy.apply)
        others = [op.map(f"governance_policy_{i + 1}", s, policy.apply) for i, s in enumerate(others)]
    streams = [results, *others, audit_trail(rt, results, others, audit_only)]
    outputs = op.merge("outputs", *streams)
    op.output("sink", outputs, sink)
    for i, extra in enumerate(also):
        if isinstance(extra, FixedPartitionedSink):
            op.output(f"sink_{i + 1}", op.map(f"key_outputs_{i + 1}", outputs, _keyed), extra)
        else:
            op.output(f"sink_{i + 1}", outputs, extra)


def audit_trail(rt: RollupSite, results: Stream[Output], others: list[Stream[Output]],
                noted: Sequence[Stream[Any]] = ()) -> Stream[Output]:
    """The ``audit`` step (:mod:`aiotstream.audit`): the audit entries of the entities' decisions in
    ``results`` (chain per entity), of the decode step's in ``others`` (chain per input partition) and of
    the flow's start (chain ``config``), each chain's head in the step's state."""
    auditor = Auditor.of(rt.config, rt.ctx)
    start = op.input("audit_start", results.flow(), ConfigLoadSource(auditor))
    keyed = [start, op.flat_map("audit_keys", results, lambda o: auditor.keyed(o, True))]
    for i, other in enumerate(others):
        keyed.append(op.flat_map(f"audit_keys_{i + 1}", other, lambda o: auditor.keyed(o, False)))
    keyed += noted
    chained = op.stateful_map("audit", op.merge("audit_in", *keyed), auditor.step)
    return op.flat_map("audit_entries", chained, lambda kv: kv[1])


def _keyed(o: Output) -> tuple[str, Output]:
    return (o.key, o)
