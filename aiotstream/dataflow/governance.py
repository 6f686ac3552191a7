"""The flow's ``governance`` step: erasure requests, with the erased subjects in the recovery snapshot."""
from __future__ import annotations

from typing import Any

from bytewax.operators import StatefulBatchLogic

from aiotstream.governance import ERASED, Erasure, Policy, erase


class GovernanceLogic(StatefulBatchLogic[list[Erasure], Any, frozenset[str]]):
    """Holds every subject erased so far (one key, :data:`~aiotstream.governance.GOVERNANCE_KEY`).

    Its snapshot is that set, so a flow resumed from its recovery directory honours the erasures it had
    seen: the builder hands the resumed set to :data:`~aiotstream.governance.ERASED`, which the
    ``governance_policy`` step before the sinks consults."""

    def __init__(self, policy: Policy, resume: frozenset[str] | None):
        self.policy = policy
        self.subjects: frozenset[str] = frozenset(resume or ())
        if self.subjects:
            ERASED.add(self.subjects)

    def on_batch(self, values: list[list[Erasure]]) -> tuple[list[Any], bool]:
        for group in values:
            for e in group:
                erase([e.subject], by=e.by, ts=e.ts_ns, source=e.source, policy=self.policy)
                self.subjects = self.subjects | {e.subject}
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> frozenset[str]:
        return self.subjects
