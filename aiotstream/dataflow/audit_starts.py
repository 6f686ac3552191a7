"""The source of the audit trail's ``config.load`` markers (:mod:`aiotstream.audit`): one per flow start.

A Bytewax source, so it lives here and :mod:`aiotstream.audit` stays free of Bytewax (only ``dataflow/``
and ``io/`` import it).
"""
from __future__ import annotations

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from aiotstream.audit import Auditor, ConfigLoad


class _StartPartition(StatefulSourcePartition[tuple[str, tuple[str, ConfigLoad]], int]):
    def __init__(self, auditor: Auditor, resume: int | None):
        self.start = 0 if resume is None else resume + 1
        self.auditor = auditor
        self.done = False

    def next_batch(self) -> list[tuple[str, ConfigLoad]]:
        if self.done:
            raise StopIteration
        self.done = True
        a = self.auditor
        return [("config", ("config", ConfigLoad(a.config_hash, a.code_version, self.start)))]

    def snapshot(self) -> int:
        return self.start


class ConfigLoadSource(FixedPartitionedSource[tuple[str, tuple[str, ConfigLoad]], int]):
    """One ``config.load`` marker per flow start; its resume state counts the starts, so the entry of a
    resumed run is a new entry, not a repeat."""

    def __init__(self, auditor: Auditor):
        self.auditor = auditor

    def list_parts(self) -> list[str]:
        return ["config"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _StartPartition:
        return _StartPartition(self.auditor, resume_state)
