"""Data governance and lineage events: ``[governance]`` (retention, classification, PII policy, erasure
requests) and ``[lineage]`` (where OpenLineage run events go).

Every default keeps the behaviour of a site without these tables: topics keep the broker's retention,
outputs carry people's names as they come (``pii = "keep"``), the control topic is read for model
promotions only, and no lineage events are sent.

>>> from aiotstream.config import default_site
>>> from aiotstream.errors import ConfigError
>>> try:
...     default_site(1, governance={"retention": {"score": "7 days"}})
... except ConfigError as e:
...     print(e.problems)
[('governance.retention.score', "'7 days' is not a duration: write <number><unit> with unit s, m, h, d \
or w (e.g. '7d', '36h'), or 'forever'")]
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from aiotstream.config.base import _Model

OUTPUT_KINDS = ("alert", "command", "kpi", "score", "deadletter", "model")
"""The output kinds a retention or a classification can be given for (as :data:`aiotstream.records.KINDS`)."""
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
PII_POLICIES = ("keep", "drop", "pseudonymise")
Kind = Literal["alert", "command", "kpi", "score", "deadletter", "model"]
Classification = Literal["public", "internal", "confidential", "restricted"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")
MAX_RETENTION_S = 100 * 366 * 86_400  # a century: anything longer is 'forever'


def retention_seconds(text: str) -> int | None:
    """A retention such as ``"7d"`` in seconds; None for ``"forever"``. ValueError for anything else.

    >>> retention_seconds("7d"), retention_seconds("36h"), retention_seconds("forever")
    (604800, 129600, None)
    """
    if text == "forever":
        return None
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration: write <number><unit> with unit s, m, h, d or w "
                         "(e.g. '7d', '36h'), or 'forever'")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r}: a retention must be longer than 0 (or 'forever')")
    if seconds > MAX_RETENTION_S:
        raise ValueError(f"{text!r}: longer than 100 years; write 'forever'")
    return seconds


class GovernanceConfig(_Model):
    """``[governance]``: retention and classification per output kind, the PII policy, erasure requests."""

    retention: dict[Kind, str] = Field(
        default_factory=dict,
        description="per output kind: how long its Kafka topic (retention.ms, set when aiotstream creates "
                    "the topic) and its Parquet partitions (`aiotstream prune`) keep records: '7d', '36h', "
                    "'forever'; a kind not named keeps the broker's default and is never pruned")
    classification: dict[Kind, Classification] = Field(
        default_factory=dict,
        description="per output kind: public, internal, confidential or restricted (default internal); "
                    "sent as the Kafka header 'classification' and stored in Parquet file metadata")
    pii: Literal["keep", "drop", "pseudonymise"] = Field(
        default="keep",
        description="fields naming people (by, acknowledged_by, cleared_by, approved_by, notes): keep them, "
                    "drop them (null), or replace them by a keyed hash (HMAC-SHA256, key in "
                    "pseudonym_key_file); notes are dropped unless kept")
    pseudonym_key_file: str | None = Field(
        default=None, min_length=1,
        description="a file holding the pseudonym key (at least 16 bytes; never the key itself in the "
                    "config); needed by pii = 'pseudonymise'")
    erasure: bool = Field(
        default=False,
        description="read erasure requests ({\"type\": \"erase\", \"subject\": ...}) on the control topic: "
                    "the subject's id is pseudonymised (dropped without a key) in every later output")

    @field_validator("retention")
    @classmethod
    def _durations(cls, v: dict[str, str]) -> dict[str, str]:
        problems = []
        for kind, text in v.items():
            try:
                retention_seconds(text)
            except ValueError as exc:
                problems.append(f"governance.retention.{kind}: {exc}")
        if problems:
            raise ValueError("\x1e" + "\x1e".join(problems))
        return v

    @model_validator(mode="after")
    def _key_for_pseudonyms(self) -> GovernanceConfig:
        if self.pii == "pseudonymise" and self.pseudonym_key_file is None:
            raise ValueError("\x1egovernance.pseudonym_key_file: pii = 'pseudonymise' needs a key file "
                             "(a file of at least 16 random bytes, readable by the flow only)")
        return self

    def retention_s(self, kind: str) -> int | None:
        """The retention of ``kind`` in seconds; None when it has none (the broker's default, never
        pruned) or is 'forever'."""
        text = self.retention.get(kind)  # type: ignore[call-overload]
        return None if text is None else retention_seconds(text)

    def classification_of(self, kind: str) -> str:
        return self.classification.get(kind, "internal")  # type: ignore[call-overload]


class LineageConfig(_Model):
    """``[lineage]``: OpenLineage run events (START, COMPLETE, FAIL) for every flow run and training."""

    transport: Literal["none", "file", "http", "kafka"] = Field(
        default="none", description="where events go: none (default), a JSONL file, an HTTP endpoint "
                                    "(POST /api/v1/lineage), or a Kafka topic")
    file: str | None = Field(default=None, min_length=1, description="transport 'file': the JSONL file")
    url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+", description="transport 'http'")
    topic: str | None = Field(default=None, min_length=1,
                              description="transport 'kafka': the topic (the site's brokers)")
    namespace: str = Field(default="aiotstream", min_length=1, max_length=256,
                           description="the OpenLineage job namespace")

    @model_validator(mode="after")
    def _destination(self) -> LineageConfig:
        need = {"file": "file", "http": "url", "kafka": "topic"}.get(self.transport)
        if need is not None and getattr(self, need) is None:
            raise ValueError(f"\x1elineage.{need}: transport {self.transport!r} needs {need}")
        return self
