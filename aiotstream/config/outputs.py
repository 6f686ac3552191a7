"""Where outputs go: Kafka topics, MQTT device topics, Parquet files."""
from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from aiotstream.config.base import _Model
from aiotstream.config.inputs import _OUTPUT_PLACEHOLDERS, MqttConnection, OpcUaServer
from aiotstream.ids import ID_PATTERN


class MqttOutput(MqttConnection):
    """``[outputs.mqtt]``: publish outputs (e.g. commands) to device topics, QoS 1, PUBACKs awaited per \
batch."""

    topic: str = Field(default="devices/{asset}/{kind}",
                       description="template with {site}, {asset}, {kind}, {line}")
    kinds: list[str] = Field(default_factory=lambda: ["command"], min_length=1)
    retain: bool = False
    publish_timeout_s: float = Field(default=60.0, gt=0, le=3600,
                                     description="give up (fail the flow) if a batch is not "
                                                 "acknowledged by then")

    @field_validator("topic")
    @classmethod
    def _topic_template(cls, v: str) -> str:
        import string

        try:
            names = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"topic template {v!r}: {exc}") from None
        bad = [n for n in names if n not in _OUTPUT_PLACEHOLDERS]
        if bad:
            raise ValueError(f"topic template {v!r} uses {{{bad[0]}}}; allowed: "
                             + ", ".join("{" + p + "}" for p in _OUTPUT_PLACEHOLDERS))
        if "+" in v or "#" in v or not v:
            raise ValueError(f"topic template {v!r}: a topic to publish to has no wildcards and is not empty")
        return v


class OpcUaWrite(_Model):
    """Which PLC node an actuator of an asset is written to."""

    asset: str = Field(pattern=ID_PATTERN)
    actuator: str = Field(pattern=ID_PATTERN, description="a [[control.actuators]] name")
    node_id: str = Field(min_length=1, description="e.g. 'ns=2;s=Pump1.Setpoint'")


class OpcUaOutput(OpcUaServer):
    """``[outputs.opcua]``: write emitted commands to PLC nodes (in the node's own data type), with the
    actuator's envelope checked again at the moment of writing, and acknowledge each on the site's ack
    topic."""

    writes: list[OpcUaWrite] = Field(min_length=1)
    ack_topic: str = Field(default="", description="where the write's command_ack goes; default: the "
                                                   "feedback topic ending in '.acks' (<site>.acks)")
    ack_principal: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._@-]{1,64}$",
                                      description="with [auth]: the device principal the writer signs its "
                                                  "acks as (an [[auth.principals]] id with the device role)")
    ack_key_file: str | None = Field(default=None, min_length=1,
                                     description="with [auth]: the writer's signing key, the Ed25519 private "
                                                 "key (PEM) of ack_principal or its HMAC secret file")
    ack_key_password_file: str | None = Field(default=None, min_length=1,
                                              description="secret file holding the passphrase of an "
                                                          "encrypted ack_key_file")

    @model_validator(mode="after")
    def _ack_signer(self) -> OpcUaOutput:
        if (self.ack_principal is None) != (self.ack_key_file is None):
            raise ValueError("ack_principal and ack_key_file go together: the principal the writer signs its "
                             "acks as, and its key")
        if self.ack_key_password_file is not None and self.ack_key_file is None:
            raise ValueError("ack_key_password_file is the passphrase of ack_key_file: set ack_key_file too")
        return self

    @field_validator("writes")
    @classmethod
    def _unique_writes(cls, v: list[OpcUaWrite]) -> list[OpcUaWrite]:
        keys = [(w.asset, w.actuator) for w in v]
        dups = sorted({k for k in keys if keys.count(k) > 1})
        if dups:
            raise ValueError("asset/actuator " + ", ".join(f"{a}/{b}" for a, b in dups)
                             + " appear more than once")
        return v


class ParquetOutput(_Model):
    """``[outputs.parquet]``: scores/KPIs as Parquet, ``<directory>/<kind>/site=<id>/date=<YYYY-MM-DD>/``."""

    directory: str = Field(min_length=1)
    kinds: list[str] = Field(default_factory=lambda: ["score", "kpi"], min_length=1)
    max_rows_per_file: int = Field(default=100_000, ge=1, le=100_000_000)
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"


class OutputConfig(_Model):
    alerts: str = ""
    commands: str = ""
    kpis: str = ""
    scores: str = ""
    deadletter: str = ""
    models: str = Field(default="", description="promotions, refusals and retrain requests "
                        "(default <site>.models)")
    partitions: int = Field(default=3, ge=1, le=1024,
                            description="partitions when aiotstream creates a topic")
    max_deadletter_payload_bytes: int = Field(
        default=524_288, ge=0, le=67_108_864,
        description="a dead letter keeps its input whole up to this size, else a 1 KiB prefix with the "
                    "length and sha256; the default keeps dead letters under Kafka's default 1 "
                    "MB message limit")
    audit: str = Field(default="", description="the audit trail: who changed config, models, commands and "
                       "alerts, hash-chained (default <site>.audit)")
    mqtt: MqttOutput | None = None
    opcua: OpcUaOutput | None = None
    parquet: ParquetOutput | None = None
