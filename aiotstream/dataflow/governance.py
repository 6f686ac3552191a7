"""The flow's ``governance`` step: erasure requests, with the erased subjects in the recovery snapshot."""
from __future__ import annotations

from typing import Any

from bytewax.operators import StatefulBatchLogic

from aiotstream.audit import erasure_event
from aiotstream.governance import ERASED, Erasure, Policy, erase, shown_subject


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
        """Honour the requests; one audit input per request (``governance.erasure``, by its principal)."""
        noted = []
        for group in values:
            for e in group:
                erase([e.subject], by=e.by, ts=e.ts_ns, source=e.source, policy=self.policy)
                self.subjects = self.subjects | {e.subject}
                by = self.policy.person(e.by)  # named as the outputs name people (the PII policy)
                noted.append(erasure_event(by if isinstance(by, str) else "", e.ts_ns,
                                           shown_subject(e.subject, self.policy), e.source))
        return noted, StatefulBatchLogic.RETAIN

    def snapshot(self) -> frozenset[str]:
        return self.subjects
