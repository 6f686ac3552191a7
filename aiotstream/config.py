"""Site configuration: schema, loading (TOML, YAML or JSON), validation and hash.

One flow definition serves many sites; each site says which assets it has,
where its data arrives, how to window and score it and where outputs go.
A bad file fails at load with *every* bad field's path and a hint:

>>> try:
...     SiteConfig.from_dict({"site": {"id": "p1"}, "assets": [{"id": "a", "sample_rate_hz": -5}]})
... except ConfigError as e:
...     print(e.problems[0])
('assets[0].sample_rate_hz', 'must be greater than 0 (got -5)')

The ``config_hash`` (in every output's lineage) is a digest of the
normalised config, so formatting, key order and spelled-out defaults do not
change it.
"""
from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aiotstream.errors import ConfigError
from aiotstream.ids import ID_PATTERN  # the one id pattern (config, payloads, topic levels, file columns)
from aiotstream.units import S

MAX_REAL = 1e12
"""The largest magnitude of any number in a config (thresholds, bounds, setpoints) unless its field says."""
MAX_INT = 2**53
"""The largest magnitude of an integer (exact as a JSON number) unless its field says."""
MAX_DURATION_S = 31_622_400.0
"""The longest duration (366 days), in seconds, of any ``*_s`` field (``*_ms``: in ms) unless its field says."""
MIN_DURATION_S = 1e-6
"""The shortest duration that is not 0 (1 us): shorter ones round to no time at all in ns, or divide into
numbers that overflow."""
MAX_WINDOWS_PER_INPUT = 1000
"""Sliding windows: ``length_s / hop_s`` at most, the windows one input belongs to."""


def _numbers(v: Any) -> Any:
    """The ints and floats in a field's value (inside lists and tuples too; nested models check themselves)."""
    if isinstance(v, bool):
        return
    if isinstance(v, (int, float)):
        yield v
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _numbers(x)


class _Model(BaseModel):
    """Base of every config table. Rules that hold for every field, so no field can forget them:

    * unknown keys are errors (a misspelt key is not silently ignored);
    * every float is finite (``allow_inf_nan=False``: NaN or inf in an actuator bound would disable it);
    * every number is within +-:data:`MAX_REAL` (integers +-:data:`MAX_INT`), and every duration (a field
      named ``*_s`` or ``*_ms``, rates ``*_per_s`` excepted) is not negative and at most
      :data:`MAX_DURATION_S`, unless the field declares its own upper bound (``le``/``lt``), and not
      between 0 and 1 us. Durations that must be positive say ``gt=0``; those that allow 0 give it a
      meaning (off, never, at once).

    So a value that would overflow when turned into nanoseconds, or make a limit meaningless, fails at load
    with its field's path.

    >>> try:
    ...     default_site(1, control={"actuators": [{"name": "valve", "max": float("nan"), "ack_timeout_s": 1e308}]})
    ... except ConfigError as e:
    ...     print(e.problems)
    [('control.actuators[0].max', 'must be a finite number (got nan)'), \
('control.actuators[0].ack_timeout_s', 'must be at most 3.16224e+07 s (366 days), got 1e+308')]
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _sane_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        field = cls.model_fields.get(name)
        own_upper = field is not None and any(hasattr(m, "le") or hasattr(m, "lt") for m in field.metadata)
        duration = name.endswith(("_s", "_ms")) and not name.endswith("_per_s")
        unit = 1000.0 if name.endswith("_ms") else 1.0
        for x in _numbers(v):
            if duration and x < 0:
                raise ValueError(f"a duration cannot be negative (got {x!r})")
            if duration and 0 < x < MIN_DURATION_S * unit:
                raise ValueError(f"a duration must be 0 or at least 1 us (got {x!r} {'ms' if unit > 1 else 's'})")
            if own_upper:
                continue
            if duration and x > MAX_DURATION_S * unit:
                raise ValueError(f"must be at most {MAX_DURATION_S * unit:g} {'ms' if unit > 1 else 's'} "
                                 f"(366 days), got {x!r}")
            if isinstance(x, int) and abs(x) > MAX_INT:
                raise ValueError(f"must be within +-2**53, got {x!r}")
            if isinstance(x, float) and abs(x) > MAX_REAL:
                raise ValueError(f"must be within +-{MAX_REAL:g}, got {x!r}")
        return v


class SiteInfo(_Model):
    id: str = Field(pattern=ID_PATTERN, description="site id; prefixes the output topics")
    name: str = ""
    flow: str = "predictive-maintenance"
    flow_version: str = "1"


class AssetConfig(_Model):
    id: str = Field(pattern=ID_PATTERN)
    line: str = Field(default="line-1", pattern=ID_PATTERN, description="line id (a topic level in MQTT outputs)")
    channels: list[str] = Field(default_factory=lambda: ["x", "y", "z"], min_length=1, max_length=64)
    sample_rate_hz: float = Field(default=10_000.0, gt=0, le=1_000_000)
    rpm: float = Field(default=1_800.0, gt=0, le=200_000)
    ideal_cycle_time_s: float | None = Field(default=None, gt=0, description="ideal seconds per part (OEE performance)")

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"channel names must be unique, got {v}")
        return v


class AssetGroup(_Model):
    """Many alike assets: ids ``f"{prefix}{i:0{width}d}"`` for i in 1..count."""

    prefix: str = Field(pattern=ID_PATTERN)
    count: int = Field(gt=0, le=1_000_000)
    width: int = Field(default=3, ge=1, le=9)
    line: str = Field(default="line-1", pattern=ID_PATTERN)
    channels: list[str] = Field(default_factory=lambda: ["x", "y", "z"], min_length=1, max_length=64)
    sample_rate_hz: float = Field(default=10_000.0, gt=0, le=1_000_000)
    rpm: float = Field(default=1_800.0, gt=0, le=200_000)
    ideal_cycle_time_s: float | None = Field(default=None, gt=0)


PayloadFormat = Literal["auto", "frame", "json", "value", "gateway-json", "sparkplug-json", "onem2m"]
_OUTPUT_PLACEHOLDERS = ("site", "asset", "kind", "line")


class TlsConfig(_Model):
    """TLS for MQTT: an empty ``ca_file`` uses the system's CAs; cert/key for client certificates."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = Field(default=False, description="skip the server hostname check (test setups only)")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together: set both for a client certificate, or neither")
        return self


class MqttConnection(_Model):
    """Where and how to reach an MQTT broker (shared by the MQTT source and sink)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="", max_length=128,
                           description="stable id so the broker keeps the session; default aiotstream-<site>")
    protocol: Literal["5", "3.1.1"] = "5"
    username: str = ""
    password_env: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
                              description="name of the environment variable holding the password (never the "
                                          "password itself)")
    tls: TlsConfig | None = None
    qos: int = Field(default=1, ge=0, le=2)
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    reconnect_min_s: int = Field(default=1, ge=1, le=3600)
    reconnect_max_s: int = Field(default=10, ge=1, le=3600,
                                 description="paho's reconnect backoff doubles up to this: data flows again at most "
                                             "this long after the broker is back")

    @model_validator(mode="after")
    def _reconnect_order(self) -> MqttConnection:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_min_s "
                             f"({self.reconnect_min_s})")
        return self


class MqttSubscription(_Model):
    """One topic filter, how to decode its payloads and how its topics map to asset/metric."""

    filter: str = Field(description="MQTT topic filter; + and # wildcards, $share/<group>/... allowed")
    format: PayloadFormat = "auto"
    asset: str = Field(default="", description="template from topic levels, e.g. '{2}'; empty: the payload says")
    metric: str = Field(default="", description="template or name; empty: the payload says")
    missing_ts: Literal["reject", "arrival"] | None = Field(
        default=None, description="payload without event time: dead letter or arrival time (default: arrival "
                                  "for format 'value', reject otherwise)")
    metric_names: dict[str, str] = Field(default_factory=dict, description="rename payload metric names")
    seq: str = Field(default="", max_length=64,
                     description="where each topic's sequence number is, to count gaps (lost messages): "
                                 "'frame' (the binary frame header's), the name of a top-level integer field of "
                                 "a JSON payload (e.g. 'seq'), or empty (not tracked)")
    seq_wrap: int = Field(default=0, ge=0, le=2**63,
                          description="the sequence number wraps to 0 after seq_wrap - 1 (e.g. 256); 0: never")

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: str) -> str:
        from aiotstream.topics import check_filter

        err = check_filter(v)
        if err:
            raise ValueError(f"{v!r} is not a valid MQTT topic filter: {err}")
        return v

    @field_validator("asset", "metric")
    @classmethod
    def _template(cls, v: str, info: ValidationInfo) -> str:
        from aiotstream.topics import check_template

        flt = info.data.get("filter")
        if v and flt:
            err = check_template(v, flt)
            if err:
                raise ValueError(f"template {v!r}: {err}")
        return v

    @model_validator(mode="after")
    def _value_needs_mapping(self) -> MqttSubscription:
        if self.format == "value" and not (self.asset and self.metric):
            raise ValueError("format 'value' (a bare number) needs both asset and metric templates")
        if self.format == "value" and self.missing_ts == "reject":
            raise ValueError("format 'value' has no event time in the payload: missing_ts must be 'arrival'")
        if self.seq == "frame" and self.format not in ("frame", "auto"):
            raise ValueError(f"seq = 'frame' reads the binary frame header: it needs format 'frame' or 'auto', "
                             f"not {self.format!r}")
        if self.seq and self.seq != "frame" and self.format in ("frame", "value"):
            raise ValueError(f"seq = {self.seq!r} names a JSON field, but format {self.format!r} payloads are not "
                             f"JSON (use seq = 'frame' for frames)")
        if self.seq_wrap == 1:
            raise ValueError("seq_wrap = 1 would make every number 0: use 0 (no wrap) or the counter's modulus")
        return self

    @property
    def effective_missing_ts(self) -> str:
        return self.missing_ts or ("arrival" if self.format == "value" else "reject")


class MqttInput(MqttConnection):
    """``[inputs.mqtt]``: an MQTT source (one persistent session)."""

    session_expiry_s: int = Field(default=86_400, ge=0, le=0xFFFFFFFF,
                                  description="MQTT 5: how long the broker keeps the session (and queued QoS 1 "
                                              "messages) while the flow is away")
    receive_maximum: int = Field(default=65535, ge=1, le=65535,
                                 description="MQTT 5: unacknowledged QoS 1 messages the broker may have in flight; "
                                             "with ack = 'epoch' it caps ingest at about receive_maximum / "
                                             "(2 x epoch length) messages/s (see docs/mqtt.md)")
    ack: Literal["epoch", "batch"] = Field(
        default="epoch", description="epoch: PUBACK when the Bytewax epoch after the one the message entered "
                                     "closes; batch: when the next batch is taken")
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000,
                            description="messages the MQTT client process holds for the flow; when full it stops "
                                        "reading and TCP pushes back on the broker")
    broker_drops_topic: str = Field(
        default="$SYS/broker/publish/messages/dropped", max_length=256,
        description="the broker's counter of messages it dropped (mosquitto's $SYS topic); its growth during "
                    "the run is reported as a loss; empty: not read")
    subscriptions: list[MqttSubscription] = Field(min_length=1)

    @field_validator("broker_drops_topic")
    @classmethod
    def _drops_topic(cls, v: str) -> str:
        if v and ("+" in v or "#" in v or "\x00" in v):
            raise ValueError(f"{v!r} must be one topic (no + or # wildcards): the broker's counter of dropped "
                             f"messages, e.g. '$SYS/broker/publish/messages/dropped'; empty to not read it")
        return v

    @model_validator(mode="after")
    def _epoch_ack_needs_v5(self) -> MqttInput:
        if self.ack == "epoch" and self.protocol != "5" and self.qos > 0:
            raise ValueError("ack = 'epoch' needs protocol '5' (MQTT 3.1.1 brokers cap unacknowledged messages, "
                             "mosquitto at 20): use protocol = '5' or ack = 'batch'")
        return self


class OpcUaNode(_Model):
    node_id: str = Field(min_length=1, description="e.g. 'ns=2;s=Pump1.Temperature' or 'ns=2;i=1007'")
    asset: str = Field(pattern=ID_PATTERN)
    metric: str = Field(min_length=1, max_length=128)


class OpcUaInput(_Model):
    """``[inputs.opcua]``: subscribe to node ids on one OPC UA server."""

    endpoint: str = Field(pattern=r"^opc\.tcp://\S+$", description="opc.tcp://host:port[/path]")
    sampling_interval_ms: float = Field(default=100.0, ge=0, le=3_600_000)
    publishing_interval_ms: float = Field(default=500.0, gt=0, le=3_600_000)
    timestamp: Literal["server", "source"] = Field(default="server", description="which timestamp is event time")
    bad_quality: Literal["deadletter", "flag"] = "deadletter"
    username: str = ""
    password_env: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
                              description="name of the environment variable holding the user's password")
    security_policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = Field(
        default="None", description="None: messages neither signed nor encrypted (a warning at start)")
    security_mode: Literal["Sign", "SignAndEncrypt"] = Field(default="SignAndEncrypt",
                                                             description="with a security_policy other than None")
    certificate: str = Field(default="", description="the client's application instance certificate (.pem/.der)")
    private_key: str = Field(default="", description="its private key (.pem/.der)")
    private_key_password_env: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
                                          description="environment variable holding the private key's password")
    server_certificate: str = Field(default="", description="the server's certificate to trust (.pem/.der); "
                                                           "empty: the one its endpoint presents")
    timeout_s: float = Field(default=4.0, gt=0, le=600, description="per request, and per connection attempt")
    reconnect_min_s: float = Field(default=0.5, gt=0, le=3600, description="first retry delay, doubling up to "
                                                                           "reconnect_max_s")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000,
                            description="data changes buffered in the flow process; when full, the client stops "
                                        "asking the server for more (its queues then hold them)")
    monitored_queue_size: int = Field(default=100, ge=1, le=100_000,
                                      description="values the server keeps per node between publishes, and while "
                                                  "a connection is down (when the subscription can be restored)")
    nodes: list[OpcUaNode] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_security_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and "security" in data:
            raise ValueError("'security' (an asyncua security string) is replaced by security_policy, "
                             "security_mode, certificate, private_key (and server_certificate, "
                             "private_key_password_env)")
        return data

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, v: list[OpcUaNode]) -> list[OpcUaNode]:
        ids = [n.node_id for n in v]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"node id(s) {', '.join(map(repr, dups))} appear more than once")
        return v

    @model_validator(mode="after")
    def _security(self) -> OpcUaInput:
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError(f"security_policy {self.security_policy!r} needs certificate and private_key (the "
                             "client's application instance certificate and its key)")
        if self.security_policy == "None" and (self.certificate or self.private_key or self.server_certificate):
            raise ValueError("certificate/private_key/server_certificate are set but security_policy is 'None': "
                             "set security_policy (e.g. 'Basic256Sha256') to use them")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(f"reconnect_max_s ({self.reconnect_max_s}) must be >= reconnect_min_s "
                             f"({self.reconnect_min_s})")
        return self

    def security_warning(self) -> str | None:
        """What an operator should know about this connection's security at start, or None.

        >>> nodes = [{"node_id": "i=1", "asset": "a", "metric": "m"}]
        >>> OpcUaInput(endpoint="opc.tcp://plc:4840", nodes=nodes).security_warning().split(";")[0]
        'OPC UA opc.tcp://plc:4840: security policy None: no user is authenticated and values cross the network \
unsigned and unencrypted'
        >>> OpcUaInput(endpoint="opc.tcp://plc:4840", nodes=nodes, security_policy="Basic256Sha256",
        ...            certificate="c.pem", private_key="k.pem").security_warning() is None
        True
        """
        if self.security_policy != "None":
            return None
        what = f"values and user {self.username!r}'s password cross" if self.username else \
            "no user is authenticated and values cross"
        return (f"OPC UA {self.endpoint}: security policy None: {what} the network unsigned and unencrypted; set "
                "security_policy (e.g. \"Basic256Sha256\"), security_mode, certificate and private_key in "
                "[inputs.opcua] to secure it")


class FileColumns(_Model):
    """Which columns of a CSV/Parquet/JSONL file hold a reading (long: metric + value; wide: metrics)."""

    asset: str = "asset"
    ts: str = "ts"
    ts_unit: Literal["ns", "us", "ms", "s", "iso"] = "ns"
    metric: str = "metric"
    value: str = "value"
    metrics: list[str] = Field(default_factory=list, description="wide tables: each listed column is a metric")
    default_asset: str = Field(default="", description="asset for files without an asset column")

    @field_validator("default_asset")
    @classmethod
    def _default_asset_id(cls, v: str) -> str:
        from aiotstream.ids import ID_HINT, is_valid_id

        if v and not is_valid_id(v):
            raise ValueError(f"{v!r} is not a valid asset id: {ID_HINT}")
        return v


class FileInput(_Model):
    """``[inputs.files]``: replay files with event-time pacing."""

    paths: list[str] = Field(min_length=1, description="files or globs")
    format: Literal["auto", "csv", "jsonl", "parquet", "frames"] = Field(
        default="auto", description="auto: by extension (.csv, .jsonl/.json, .parquet, .bin = length-prefixed frames)")
    payload: PayloadFormat = Field(default="auto", description="format of each JSONL line when no [columns] table")
    columns: FileColumns | None = None
    speed: float = Field(default=0.0, ge=0, le=1e6, description="0: as fast as possible; 1: real time; N: N x")
    missing_ts: Literal["reject", "arrival"] = "reject"


class InputConfig(_Model):
    kind: Literal["kafka", "mqtt", "opcua", "files"] = Field(default="kafka", description="where the data comes from")
    brokers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    topics: list[str] = Field(default_factory=list, description="default: <site>.waveforms, <site>.readings")
    feedback_topics: list[str] = Field(default_factory=list,
                                       description="operator feedback and device acks; default: <site>.feedback, "
                                                   "<site>.acks")
    control_topics: list[str] = Field(default_factory=list,
                                      description="model promotions (kind = \"onnx\"); default: <site>.control")
    tail: bool = Field(default=True, description="keep waiting for new data at the end of the topics")
    poll_batch: int = Field(default=1000, gt=0, le=100_000,
                            description="messages read per partition at a time: larger favours throughput, smaller "
                                        "bounds latency under load (a whole poll batch is decoded before any asset runs)")
    max_message_bytes: int = Field(
        default=1_048_576, ge=1_024, le=268_435_456,
        description="an input message larger than this is not decoded: it is dead-lettered with reason "
                    "'too_large', keeping a 1 KiB prefix of it, its length and its sha256")
    max_abs_value: float = Field(
        default=1e12, ge=1e3, le=1e100,
        description="a reading value or waveform sample whose magnitude is larger is dead-lettered with reason "
                    "'out_of_range'; the default keeps every feature, score and KPI sum finite")
    mqtt: MqttInput | None = None
    opcua: OpcUaInput | None = None
    files: FileInput | None = None

    @model_validator(mode="after")
    def _kind_has_table(self) -> InputConfig:
        if self.kind != "kafka" and getattr(self, self.kind) is None:
            raise ValueError(f"kind = {self.kind!r} needs an [inputs.{self.kind}] table")
        return self


class WindowConfig(_Model):
    length_s: float = Field(default=1.0, gt=0, le=3600)
    hop_s: float = Field(default=1.0, gt=0, le=3600)
    allowed_lateness_s: float = Field(default=0.5, ge=0, le=3600)
    max_future_s: float = Field(default=300.0, gt=0, description="frames further ahead of wall-clock are dead-lettered")
    max_past_s: float = Field(
        default=604_800.0, gt=0, le=315_360_000,
        description="inputs whose event time is further behind the asset's own newest event time (and, for live "
                    "device sources (MQTT, OPC UA) while tailing, behind their arrival time) are dead-lettered ('too_old'); "
                    "files and Kafka backlogs may be as old as they like, as long as each asset's data is in order "
                    "to within this")
    idle_close_s: float = Field(default=5.0, gt=0, description="close an asset's windows after this much wall-clock silence")
    wait_for_readings: bool = Field(default=True, description="hold windows until the asset's readings stream "
                                    "has shown up (false: assets send frames only)")
    state_ttl_s: float = Field(default=3600.0, ge=0, description="forget an asset silent this long (0 = never)")

    @model_validator(mode="after")
    def _hop_le_length(self) -> WindowConfig:
        if self.hop_s > self.length_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed length_s ({self.length_s}): samples would be skipped")
        if self.length_s > MAX_WINDOWS_PER_INPUT * self.hop_s:
            raise ValueError(f"length_s / hop_s ({self.length_s / self.hop_s:g}) must be at most "
                             f"{MAX_WINDOWS_PER_INPUT}: each input goes to that many sliding windows")
        if 0 < self.state_ttl_s < self.idle_close_s:
            raise ValueError(f"state_ttl_s ({self.state_ttl_s}) must be 0 (never) or at least idle_close_s "
                             f"({self.idle_close_s})")
        return self


class FeatureConfig(_Model):
    set: str = Field(default="vibration-basic", description="a registered waveform feature set "
                     "(aiotstream.features.FEATURE_SETS): vibration-basic, vibration-spectral")
    bands: list[tuple[float, float]] | None = Field(
        default=None, description="spectral sets only: [[lo_hz, hi_hz], ...], ordered, not overlapping, "
        "below every asset's Nyquist frequency; default: the set's bands")
    temperature_metric: str = "temperature"


class GateConfig(_Model):
    """The validation gate a model must pass before it is promoted (``[model.onnx.gate]``).

    The candidate scores a held-out labelled set (simulated windows, faults
    injected at known times) and is refused when ``metric`` is below
    ``threshold``; the refusal, with its reason, goes to ``<site>.models``.
    """

    metric: Literal["auc", "recall_at_precision"] = "auc"
    threshold: float = Field(default=0.8, ge=0, le=1)
    assets: int = Field(default=2, ge=1, le=100)
    duration_s: float = Field(default=240.0, ge=30, le=7200)
    faults: int = Field(default=2, ge=1, le=100)
    seed: int = Field(default=1234, ge=0, le=2**32 - 1)


class OnnxConfig(_Model):
    """ONNX models from a registry, scored in batches across assets (``[model.onnx]``; ``kind = "onnx"``).

    The champion is ``[model] name`` at ``[model] version``. Paths are taken
    relative to the working directory of the flow.
    """

    registry: str = Field(min_length=1, description="directory of the model registry (name/version/...)")
    verify_key: str | None = Field(default=None, description="Ed25519 public key (PEM) that signs the artifacts")
    hmac_key_env: str | None = Field(default=None, description="environment variable holding an HMAC-SHA256 key")
    allow_unsigned: bool = Field(default=False, description="accept artifacts without a signature (tests only)")
    max_batch: int = Field(default=512, ge=1, le=65_536, description="rows per model call at most")
    max_delay_ms: float = Field(default=50.0, ge=0, le=60_000,
                                description="most that batching adds to a window's decisions: the batcher flushes "
                                            "early by the measured cost of scoring and deciding the rows waiting")
    threads: int = Field(default=1, ge=1, le=64, description="onnxruntime intra-op threads per process")
    shadow: str | None = Field(default=None, description="a version of the same model scoring beside the "
                               "champion; only the champion decides")
    canary: str | None = Field(default=None, description="a version that decides for canary_fraction of the assets")
    canary_fraction: float = Field(default=0.0, ge=0, le=1)
    gate: GateConfig | None = Field(default=None, description="refuse promotions below this metric")

    @model_validator(mode="after")
    def _canary_needs_fraction(self) -> OnnxConfig:
        if self.canary is None and self.canary_fraction > 0:
            raise ValueError("canary_fraction is set but no canary version is named (canary = \"<version>\")")
        return self


class ModelConfig(_Model):
    kind: Literal["zscore", "hst", "onnx"] = "zscore"
    name: str = "baseline"
    version: str = "1"
    warmup_windows: int = Field(default=20, ge=2, le=100_000)
    # HalfSpaceTrees settings (kind = "hst")
    n_trees: int = Field(default=25, ge=1, le=1000)
    height: int = Field(default=8, ge=2, le=20)
    window_size: int = Field(default=50, ge=2, le=100_000)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    # drift detector on the anomaly score (and on drift_features): ADWIN, Page-Hinkley or KSWIN
    drift_detector: Literal["adwin", "page_hinkley", "kswin", "none"] = "adwin"
    # ADWIN's / Page-Hinkley's delta; KSWIN's alpha (significance of its Kolmogorov-Smirnov test)
    drift_delta: float = Field(default=0.002, gt=0, lt=1)
    # feature columns (e.g. "x.rms", "temperature.mean") watched by their own drift detector each
    drift_features: list[str] = Field(default_factory=list, max_length=256)
    # KSWIN only: the sliding window, and the recent part of it tested against a sample of the rest
    drift_window_size: int = Field(default=100, ge=10, le=100_000)
    drift_stat_size: int = Field(default=30, ge=5, le=10_000)

    @field_validator("drift_features")
    @classmethod
    def _unique_features(cls, v: list[str]) -> list[str]:
        dups = sorted({f for f in v if v.count(f) > 1})
        if dups:
            raise ValueError(f"feature(s) {', '.join(map(repr, dups))} listed more than once")
        return v

    # batched ONNX models from a registry (kind = "onnx")
    onnx: OnnxConfig | None = None

    @model_validator(mode="after")
    def _onnx_table(self) -> ModelConfig:
        if self.kind == "onnx" and self.onnx is None:
            raise ValueError('kind = "onnx" needs a [model.onnx] table (registry = "<dir>" at least)')
        return self


SEVERITIES = ("info", "warning", "critical")
Severity = Literal["info", "warning", "critical"]
ALERT_TYPE_ANOMALY = "anomaly"
ALERT_TYPE_COMMAND_FAILED = "command_failed"
ALERT_TYPE_DRIFT = "drift"


def _check_debounce(n: int, m: int | None, name: str) -> None:
    if m is not None and m < n:
        raise ValueError(f"{name}_of ({m}) must be at least {name}_windows ({n}): N of M windows needs N <= M")


class AlertRuleConfig(_Model):
    """A threshold alert on one window value (a feature column such as ``x.rms`` or ``temperature.max``, or ``score``)."""

    type: str = Field(pattern=ID_PATTERN, description="alert type; one open alert per asset and type")
    signal: str = Field(min_length=1)
    direction: Literal["above", "below"] = "above"
    open_threshold: float
    clear_threshold: float
    critical_threshold: float | None = None
    severity: Severity = "warning"
    open_windows: int = Field(default=1, ge=1, le=10_000)
    open_of: int | None = Field(default=None, ge=1, le=10_000)
    clear_windows: int = Field(default=3, ge=1, le=10_000)
    clear_of: int | None = Field(default=None, ge=1, le=10_000)
    cooldown_s: float = Field(default=30.0, ge=0)
    assets: list[str] = Field(default_factory=list, description="default: every asset")

    @model_validator(mode="after")
    def _ordered(self) -> AlertRuleConfig:
        above = self.direction == "above"
        if (self.clear_threshold >= self.open_threshold) if above else (self.clear_threshold <= self.open_threshold):
            word = "below" if above else "above"
            raise ValueError(f"clear_threshold ({self.clear_threshold}) must be {word} open_threshold "
                             f"({self.open_threshold}) for hysteresis (direction {self.direction!r})")
        if self.critical_threshold is not None and (
                (self.critical_threshold < self.open_threshold) if above else
                (self.critical_threshold > self.open_threshold)):
            raise ValueError(f"critical_threshold ({self.critical_threshold}) must be at or beyond open_threshold "
                             f"({self.open_threshold}) in the direction {self.direction!r}")
        _check_debounce(self.open_windows, self.open_of, "open")
        _check_debounce(self.clear_windows, self.clear_of, "clear")
        return self


class AlertConfig(_Model):
    open_threshold: float = Field(default=0.9, gt=0, le=1)
    clear_threshold: float = Field(default=0.6, ge=0, lt=1)
    open_windows: int = Field(default=1, ge=1, le=10_000,
                              description="windows at or over open_threshold (of open_of) to open")
    open_of: int | None = Field(default=None, ge=1, le=10_000,
                                description="debounce window M for N of M; default = open_windows")
    clear_windows: int = Field(default=3, ge=1, le=10_000,
                               description="windows under clear_threshold (of clear_of) to clear")
    clear_of: int | None = Field(default=None, ge=1, le=10_000, description="default = clear_windows (consecutive)")
    cooldown_s: float = Field(default=30.0, ge=0, description="no new alert of the same type this soon after a clear")
    critical_threshold: float = Field(default=0.99, gt=0, le=1)
    escalate_after_s: float = Field(default=900.0, ge=0, description="escalate an unacknowledged alert after this; "
                                                                      "0 = never")
    max_escalations: int = Field(default=1, ge=0, le=100)
    explain_top: int = Field(default=3, ge=0, le=50, description="features in an alert's explanation")
    history: int = Field(default=100, ge=1, le=100_000, description="cleared alerts kept per asset for labels")
    maintenance_max_s: float = Field(default=604_800.0, gt=0, le=31_622_400,
                                     description="longest maintenance window (config or feedback message); a "
                                                 "longer one would silence an asset's alerts for that long")
    maintenance_max_windows: int = Field(default=256, ge=1, le=100_000,
                                         description="maintenance windows an asset keeps planned or in progress; "
                                                     "more from feedback are dead-lettered (too_many_windows)")
    rules: list[AlertRuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> AlertConfig:
        if self.clear_threshold >= self.open_threshold:
            raise ValueError(
                f"clear_threshold ({self.clear_threshold}) must be below open_threshold "
                f"({self.open_threshold}) for hysteresis"
            )
        _check_debounce(self.open_windows, self.open_of, "open")
        _check_debounce(self.clear_windows, self.clear_of, "clear")
        types = [r.type for r in self.rules]
        reserved = {ALERT_TYPE_ANOMALY, ALERT_TYPE_COMMAND_FAILED, ALERT_TYPE_DRIFT}
        bad = sorted({t for t in types if t in reserved or types.count(t) > 1})
        if bad:
            raise ValueError(f"alert rule type(s) {', '.join(map(repr, bad))} repeat or are reserved "
                             f"({', '.join(sorted(reserved))}): each rule needs its own type")
        return self

    def alert_types(self) -> list[str]:
        """Every alert type the flow can raise."""
        return [ALERT_TYPE_ANOMALY] + [r.type for r in self.rules] + [ALERT_TYPE_COMMAND_FAILED, ALERT_TYPE_DRIFT]


class MaintenanceConfig(_Model):
    """A planned maintenance window: alerts of the assets are suppressed while it lasts."""

    start: datetime
    end: datetime
    assets: list[str] = Field(default_factory=list, description="default (with no line): every asset of the site")
    line: str | None = Field(default=None, pattern=ID_PATTERN)
    reason: str = ""

    @model_validator(mode="after")
    def _window(self) -> MaintenanceConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone (e.g. 2026-01-01T06:00:00Z)")
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self

    @property
    def start_ns(self) -> int:
        return _dt_ns(self.start)

    @property
    def end_ns(self) -> int:
        return _dt_ns(self.end)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt_ns(dt: datetime) -> int:
    """An aware datetime as integer ns since the epoch (exact to the microsecond).

    >>> _dt_ns(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    1000005000
    """
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * S + delta.microseconds * 1_000


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# The derived KPIs a control rule can name (aiotstream.kpi computes them; a unit test keeps the two in step).
KPI_NAMES = ("availability", "performance", "quality", "oee", "mttr_s", "mtbf_s", "mtta_s", "false_alarm_rate",
             "anomaly_rate", "model_latency_ms", "energy_kwh", "baseline_kwh", "savings_kwh", "savings_pct")


class ShiftConfig(_Model):
    """A daily shift: starts at ``start`` (HH:MM, local time in ``kpi.timezone``) and lasts ``hours``."""

    name: str = Field(pattern=ID_PATTERN)
    start: str = Field(description="HH:MM")
    hours: float = Field(gt=0, le=24)

    @field_validator("start")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"start must be HH:MM (24-hour), got {v!r}")
        return v

    @property
    def start_minute(self) -> int:
        h, m = self.start.split(":")
        return int(h) * 60 + int(m)


class KpiConfig(_Model):
    period_s: float | None = Field(default=None, ge=1, le=604_800, description="shorthand for periods_s = [x]")
    periods_s: list[float] = Field(default_factory=lambda: [10.0], min_length=1, max_length=8,
                                   description="event-time tumbling KPI periods, seconds")
    shifts: list[ShiftConfig] = Field(default_factory=list, max_length=24)
    timezone: str = Field(default="UTC", description="IANA zone of the shift times")
    state_metric: str = "state"
    parts_total_metric: str = "parts_total"
    parts_good_metric: str = "parts_good"
    power_metric: str = "power_kw"
    baseline_power_metric: str = "baseline_power_kw"
    energy_max_gap_s: float = Field(default=300.0, gt=0, description="power samples further apart are not integrated")
    max_gap_s: float = Field(
        default=3_600.0, gt=0, le=604_800,
        description="a stretch of event time without any input of the asset longer than this is not accounted as "
                    "observed time (it counts in 'unobserved_s'), so no KPI period is made for it")
    failures: Literal["alerts", "state", "both"] = Field(
        default="both", description="what counts as a failure for MTTR/MTBF: open fault alerts, state down, or either")
    failure_alert_types: list[str] = Field(default_factory=list,
                                           description="alert types that are failures; default: anomaly + rules")
    rollup: bool = Field(default=True, description="also emit per-line and per-site KPI records")
    rollup_wait_s: float = Field(default=60.0, gt=0, description="tailing: emit an incomplete roll-up after this "
                                                                 "much wall-clock time")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("period_s") is not None:
            if "periods_s" in data:
                raise ValueError("give periods_s or its shorthand period_s, not both")
            data = dict(data)
            data["periods_s"] = [data.pop("period_s")]
        return data

    @field_validator("periods_s")
    @classmethod
    def _periods(cls, v: list[float]) -> list[float]:
        for p in v:
            if not 1 <= p <= 604_800:
                raise ValueError(f"each period must be in [1, 604800] s, got {p}")
            if abs(p * 1e9 - round(p * 1e9)) > 1e-3:
                raise ValueError(f"period {p} s is not a whole number of nanoseconds")
        if len(set(v)) != len(v):
            raise ValueError(f"periods must be unique, got {v}")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'") from None
        return v

    @field_validator("max_gap_s")
    @classmethod
    def _gap_periods(cls, v: float, info: ValidationInfo) -> float:
        periods = info.data.get("periods_s")
        shortest = min(periods) if periods else None
        if shortest and v / shortest > 100_000:
            raise ValueError(f"{v:g} s spans {v / shortest:,.0f} periods of {shortest:g} s; at most 100,000: lower "
                             "max_gap_s or lengthen the shortest period")
        return v

    @model_validator(mode="after")
    def _shift_names(self) -> KpiConfig:
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError(f"shift names must be unique, got {names}")
        return self


# ---- control: actuators, their safety envelope, rules ------------------------------------------
class InterlockConfig(_Model):
    """A condition that forbids commands to an actuator while it holds (exactly one kind)."""

    name: str = Field(pattern=ID_PATTERN)
    metric: str | None = Field(default=None, description="latest reading of this metric ...")
    above: float | None = None
    below: float | None = None
    alert_type: str | None = Field(default=None, description="... or an open alert of this type ...")
    min_severity: Severity = "info"
    states: list[Literal["running", "idle", "down", "planned_stop"]] = Field(
        default_factory=list, description="... or the machine in one of these states ...")
    maintenance: bool = Field(default=False, description="... or a maintenance window in progress")

    @model_validator(mode="after")
    def _one_kind(self) -> InterlockConfig:
        kinds = [k for k, on in (("metric", self.metric is not None), ("alert_type", self.alert_type is not None),
                                 ("states", bool(self.states)), ("maintenance", self.maintenance)) if on]
        if len(kinds) != 1:
            raise ValueError(f"an interlock needs exactly one of metric, alert_type, states, maintenance "
                             f"(got {', '.join(kinds) or 'none'})")
        if self.metric is not None and self.above is None and self.below is None:
            raise ValueError("a metric interlock needs above and/or below")
        return self


class ActuatorConfig(_Model):
    """Something a command can set (any numeric setpoint), with the safety envelope every command must pass."""

    name: str = Field(pattern=ID_PATTERN)
    unit: str = ""
    assets: list[str] = Field(default_factory=list, description="assets that have it; default: every asset")
    initial: float | None = Field(default=None, description="value assumed before any command or reading")
    feedback_metric: str | None = Field(default=None, description="a reading that reports the actual value")
    min: float | None = None
    max: float | None = None
    max_step: float | None = Field(default=None, gt=0, description="largest change per command")
    max_rate_per_s: float | None = Field(default=None, gt=0, description="largest change per second since the "
                                                                         "previous command")
    min_interval_s: float = Field(default=0.0, ge=0, description="least time between two commands")
    interlocks: list[InterlockConfig] = Field(default_factory=list)
    on_violation: Literal["block", "clamp"] = Field(default="block", description="clamp: limit the value to the "
                                                                                  "bounds/step/rate instead")
    ack_timeout_s: float = Field(default=30.0, ge=0, description="wait this long for a device ack; 0 = no acks")
    max_retries: int = Field(default=2, ge=0, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> ActuatorConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        names = [i.name for i in self.interlocks]
        if len(set(names)) != len(names):
            raise ValueError(f"interlock names must be unique, got {names}")
        return self


class ConditionConfig(_Model):
    """When a control rule fires: exactly one of an alert, a window signal (model output), a KPI."""

    alert_type: str | None = None
    min_severity: Severity = "warning"
    signal: str | None = Field(default=None, description="'score' or a feature column, per window")
    kpi: str | None = Field(default=None, description="a derived KPI of the asset, per period")
    kpi_period_s: float | None = Field(default=None, gt=0, description="which period; default: the first")
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ConditionConfig:
        kinds = [k for k in ("alert_type", "signal", "kpi") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a condition needs exactly one of alert_type, signal, kpi (got "
                             f"{', '.join(kinds) or 'none'})")
        if self.alert_type is None and self.above is None and self.below is None:
            raise ValueError(f"a {kinds[0]} condition needs above and/or below")
        if self.kpi is not None and self.kpi not in KPI_NAMES:
            close = difflib.get_close_matches(self.kpi, KPI_NAMES, n=1)
            raise ValueError(f"unknown KPI {self.kpi!r}" + (f"; did you mean {close[0]!r}?" if close else
                                                             f"; known: {', '.join(KPI_NAMES)}"))
        return self


class ActionConfig(_Model):
    """What a rule asks for: exactly one of set (absolute), delta (added), scale (multiplied)."""

    set: float | None = None
    delta: float | None = None
    scale: float | None = None

    @model_validator(mode="after")
    def _one(self) -> ActionConfig:
        n = sum(v is not None for v in (self.set, self.delta, self.scale))
        if n != 1:
            raise ValueError(f"an action needs exactly one of set, delta, scale (got {n})")
        return self


class ControlRuleConfig(_Model):
    name: str = Field(pattern=ID_PATTERN)
    actuator: str
    when: ConditionConfig
    action: ActionConfig
    revert: ActionConfig | None = Field(default=None, description="command to send when the condition ends")
    mode: Literal["off", "advisory", "approval", "auto"] = "advisory"
    approval_timeout_s: float = Field(default=300.0, gt=0)
    assets: list[str] = Field(default_factory=list, description="default: every asset with the actuator")


class ControlConfig(_Model):
    actuators: list[ActuatorConfig] = Field(default_factory=list)
    rules: list[ControlRuleConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refs(self) -> ControlConfig:
        names = [a.name for a in self.actuators]
        if len(set(names)) != len(names):
            raise ValueError(f"actuator names must be unique, got {names}")
        rules = [r.name for r in self.rules]
        if len(set(rules)) != len(rules):
            raise ValueError(f"control rule names must be unique, got {rules}")
        for r in self.rules:
            if r.actuator not in names:
                raise ValueError(f"rule {r.name!r} names actuator {r.actuator!r}, which is not in "
                                 f"[[control.actuators]] ({', '.join(names) or 'none'})")
        return self


class MqttOutput(MqttConnection):
    """``[outputs.mqtt]``: publish outputs (e.g. commands) to device topics, QoS 1, PUBACKs awaited per batch."""

    topic: str = Field(default="devices/{asset}/{kind}",
                       description="template with {site}, {asset}, {kind}, {line}")
    kinds: list[str] = Field(default_factory=lambda: ["command"], min_length=1)
    retain: bool = False
    publish_timeout_s: float = Field(default=60.0, gt=0, le=3600,
                                     description="give up (fail the flow) if a batch is not acknowledged by then")

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
    partitions: int = Field(default=3, ge=1, le=1024, description="partitions when aiotstream creates a topic")
    max_deadletter_payload_bytes: int = Field(
        default=524_288, ge=0, le=67_108_864,
        description="a dead letter keeps its input whole up to this size, else a 1 KiB prefix with the length and "
                    "sha256; the default keeps dead letters under Kafka's default 1 MB message limit")
    mqtt: MqttOutput | None = None
    parquet: ParquetOutput | None = None


# ---- building (energy-optimisation flow) ---------------------------------------------------------
FLOW_ENERGY = "energy-optimization"
WASTE_TYPES = ("hvac_empty_zone", "simultaneous_heat_cool", "baseload_creep")
"""The waste alert types of the building flow's zones (see :mod:`aiotstream.energy.waste`); control rules may
name them. ``adjacent_heat_cool`` (heating next to cooling, :mod:`aiotstream.energy.floor`) is raised by the
floor step, which sends no commands, so rules cannot name it."""


class ZoneConfig(_Model):
    """One zone of a building: an asset of the flow (its floor is its line)."""

    id: str = Field(pattern=ID_PATTERN)
    floor: str = Field(default="floor-1", pattern=ID_PATTERN)
    adjacent: list[str] = Field(default_factory=list, description="neighbouring zones on the same floor (for "
                                "heating next to cooling); adjacency is symmetric")


class ZoneGroup(_Model):
    """Many alike zones: ids ``f"{prefix}{i:0{width}d}"`` for i in 1..count."""

    prefix: str = Field(pattern=ID_PATTERN)
    count: int = Field(gt=0, le=1_000_000)
    width: int = Field(default=3, ge=1, le=9)
    floor: str = Field(default="floor-1", pattern=ID_PATTERN)
    adjacency: Literal["none", "chain"] = Field(default="none", description="chain: zone i neighbours i-1 and i+1")


class MeterNames(_Model):
    """The metric names of a zone's meters (readings ``{"asset": <zone>, "metric": <name>, ...}``)."""

    power: str = Field(default="power_kw", min_length=1, description="electric power, kW")
    temperature: str = Field(default="temperature", min_length=1, description="zone air temperature, degC")
    occupancy: str = Field(default="occupancy", min_length=1, description="people counted (>= 0)")
    hvac: str = Field(default="hvac_state", min_length=1,
                      description="0 off, 1 heating, 2 cooling, 3 heating and cooling at once")

    @model_validator(mode="after")
    def _distinct(self) -> MeterNames:
        names = [self.power, self.temperature, self.occupancy, self.hvac]
        if len(set(names)) != len(names):
            raise ValueError(f"meter metric names must be distinct, got {names}")
        return self


class BaselineConfig(_Model):
    """Per-zone baseline: River online linear regression of kWh per interval, drift detector on the residual."""

    name: str = "energy-baseline"
    version: str = "1"
    warmup_intervals: int = Field(default=48, ge=1, le=1_000_000, description="intervals learned before the "
                                  "baseline counts (until then baseline = actual, savings 0)")
    learning_rate: float = Field(default=0.02, gt=0, le=1)
    drift_detector: Literal["adwin", "page_hinkley", "none"] = "adwin"
    drift_delta: float = Field(default=0.002, gt=0, lt=1)


class WasteConfig(_Model):
    """Waste rules; durations are event-time seconds and are rounded up to whole intervals."""

    empty_hvac_after_s: float = Field(default=900.0, gt=0, description="HVAC on in an empty zone this long")
    empty_hvac_fraction: float = Field(default=0.5, gt=0, le=1, description="an interval counts when HVAC is on "
                                       "for at least this fraction of it and nobody was counted in it")
    simultaneous_after_s: float = Field(default=600.0, gt=0, description="heating and cooling at once this long")
    simultaneous_fraction: float = Field(default=0.5, gt=0, le=1)
    clear_intervals: int = Field(default=2, ge=1, le=10_000, description="intervals without the pattern to clear")
    night_start_h: float = Field(default=0.0, ge=0, lt=24, description="night window (hours of the day) for the "
                                 "baseload")
    night_end_h: float = Field(default=5.0, gt=0, le=24)
    baseload_learn_nights: int = Field(default=7, ge=1, le=365, description="nights averaged as the reference")
    baseload_creep: float = Field(default=0.15, gt=0, le=10, description="open when the night baseload exceeds "
                                  "the reference by this fraction ...")
    baseload_nights: int = Field(default=2, ge=1, le=365, description="... on this many nights in a row")
    cooldown_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _night(self) -> WasteConfig:
        if self.night_end_h <= self.night_start_h:
            raise ValueError(f"night_end_h ({self.night_end_h}) must be after night_start_h ({self.night_start_h})")
        return self


class BuildingConfig(_Model):
    """``[building]``: the energy-optimisation flow's zones, meters, interval, baseline and waste rules."""

    interval_s: float = Field(default=60.0, ge=1, le=86_400, description="readings are aggregated per meter into "
                              "intervals of this length; models learn on intervals")
    day_s: float = Field(default=86_400.0, gt=0, le=86_400, description="length of a day in event time (86400; "
                         "simulations may compress it)")
    utc_offset_h: float = Field(default=0.0, ge=-14, le=14, description="local time = UTC + this (hours)")
    outdoor_asset: str = Field(default="weather", pattern=ID_PATTERN,
                               description="the asset id of the outdoor temperature readings")
    outdoor_metric: str = Field(default="temperature", min_length=1)
    meters: MeterNames = Field(default_factory=MeterNames)
    zones: list[ZoneConfig] = Field(default_factory=list)
    zone_groups: list[ZoneGroup] = Field(default_factory=list)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    waste: WasteConfig = Field(default_factory=WasteConfig)

    @model_validator(mode="after")
    def _shape(self) -> BuildingConfig:
        if not self.zones and not self.zone_groups:
            raise ValueError("no zones: add at least one [[building.zones]] or [[building.zone_groups]] table")
        floors = {z.id: z.floor for z in self.all_zones()}
        for i, z in enumerate(self.zones):
            for n in z.adjacent:
                if n not in floors:
                    raise ValueError(f"zones[{i}] ({z.id}) names adjacent zone {n!r}, which is not a zone")
                if floors[n] != z.floor or n == z.id:
                    raise ValueError(f"zones[{i}] ({z.id}) names adjacent zone {n!r}: neighbours are other zones "
                                     "on the same floor")
        per_day = self.day_s / self.interval_s
        if abs(per_day - round(per_day)) > 1e-9:
            raise ValueError(f"interval_s ({self.interval_s}) must divide day_s ({self.day_s})")
        if abs(self.interval_s * 1e9 - round(self.interval_s * 1e9)) > 1e-3:
            raise ValueError(f"interval_s {self.interval_s} is not a whole number of nanoseconds")
        return self

    def all_zones(self) -> list[ZoneConfig]:
        """Explicit zones followed by the expanded groups."""
        out = list(self.zones)
        for g in self.zone_groups:
            ids = [f"{g.prefix}{i:0{g.width}d}" for i in range(1, g.count + 1)]
            for i, z in enumerate(ids):
                adj = [ids[j] for j in (i - 1, i + 1) if 0 <= j < len(ids)] if g.adjacency == "chain" else []
                out.append(ZoneConfig(id=z, floor=g.floor, adjacent=adj))
        return out

    def neighbours(self) -> dict[str, set[str]]:
        """Zone -> its neighbours (symmetric), for zones that have any."""
        out: dict[str, set[str]] = {}
        for z in self.all_zones():
            for n in z.adjacent:
                out.setdefault(z.id, set()).add(n)
                out.setdefault(n, set()).add(z.id)
        return out


class SiteConfig(_Model):
    site: SiteInfo
    assets: list[AssetConfig] = Field(default_factory=list)
    asset_groups: list[AssetGroup] = Field(default_factory=list)
    inputs: InputConfig = Field(default_factory=InputConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    kpi: KpiConfig = Field(default_factory=KpiConfig)
    maintenance: list[MaintenanceConfig] = Field(default_factory=list)
    control: ControlConfig = Field(default_factory=ControlConfig)
    outputs: OutputConfig = Field(default_factory=OutputConfig)
    building: BuildingConfig | None = Field(default=None, description="zones and meters of the "
                                            "energy-optimization flow")

    @field_validator("assets")
    @classmethod
    def _unique_assets(cls, v: list[AssetConfig]) -> list[AssetConfig]:
        ids = [a.id for a in v]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"asset id(s) {', '.join(map(repr, dups))} appear more than once (ids must be unique)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_site(cls, data: Any) -> Any:
        """Expand asset groups and derive topic names from the site id."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        site_id = (data.get("site") or {}).get("id") if isinstance(data.get("site"), dict) else None
        if isinstance(site_id, str):  # (a table that is not a table is left to the field's own error)
            outs = data.get("outputs") or {}
            if isinstance(outs, dict):
                outs = dict(outs)
                for kind in ("alerts", "commands", "kpis", "scores", "deadletter"):
                    outs.setdefault(kind, f"{site_id}.{kind}")
                data["outputs"] = outs
            inp = data.get("inputs") or {}
            if isinstance(inp, dict):
                inp = dict(inp)
                if not inp.get("topics"):
                    inp["topics"] = [f"{site_id}.waveforms", f"{site_id}.readings"]
                if not inp.get("feedback_topics"):
                    inp["feedback_topics"] = [f"{site_id}.feedback", f"{site_id}.acks"]
                data["inputs"] = inp
        return data

    @model_validator(mode="after")
    def _check_assets(self) -> SiteConfig:
        if self.site.flow == FLOW_ENERGY and self.building is None:
            raise ValueError(f"flow {FLOW_ENERGY!r} needs a [building] table (zones, meters)")
        if not self.assets and not self.asset_groups and self.building is None:
            raise ValueError("no assets: add at least one [[assets]] or [[asset_groups]] table")
        seen: set[str] = set()
        for a in self.all_assets():
            if a.id in seen:
                raise ValueError(f"asset id {a.id!r} appears more than once (ids must be unique)")
            seen.add(a.id)
        self._check_references(seen)
        return self

    @model_validator(mode="after")
    def _limits_fit_the_windows(self) -> SiteConfig:
        """The skew and gap bounds must leave room for the windows (else every window would be too old, or
        every stretch between two windows a gap)."""
        w, k = self.window, self.kpi
        problems = []
        if w.max_past_s < w.length_s + w.allowed_lateness_s:
            problems.append(f"window.max_past_s: {w.max_past_s:g} must be at least length_s + allowed_lateness_s "
                            f"({w.length_s + w.allowed_lateness_s:g}): an input in an open window is not too old")
        if k.max_gap_s < w.length_s:
            problems.append(f"kpi.max_gap_s: {k.max_gap_s:g} must be at least window.length_s ({w.length_s:g}): "
                            "the windows of an asset with continuous data end that far apart")
        if problems:
            raise ValueError(_REFS + _REFS.join(problems))
        return self

    def _check_references(self, assets: set[str]) -> None:
        """Asset ids, lines and alert types named elsewhere in the config must exist."""
        lines = {a.line for a in self.all_assets()}
        types = set(self.alerts.alert_types()) | (set(WASTE_TYPES) if self.building is not None else set())
        problems: list[str] = []  # "path: message", split into (path, message) by _problems

        def known(where: str, ids: list[str]) -> None:
            bad = [i for i in ids if i not in assets]
            if bad:
                problems.append(f"{where}.assets: unknown asset(s) {', '.join(map(repr, bad))}")

        for i, r in enumerate(self.alerts.rules):
            known(f"alerts.rules[{i}]", r.assets)
        longest = self.alerts.maintenance_max_s
        for i, m in enumerate(self.maintenance):
            known(f"maintenance[{i}]", m.assets)
            if (m.end - m.start).total_seconds() > longest:
                problems.append(f"maintenance[{i}].end: the window lasts {(m.end - m.start).total_seconds():g} s, "
                                f"longer than alerts.maintenance_max_s ({longest:g} s); split it or raise the limit")
            if m.line is not None and m.line not in lines:
                problems.append(f"maintenance[{i}].line: {m.line!r} is not a line of any asset "
                                f"({', '.join(sorted(lines))})")
        for t in self.kpi.failure_alert_types:
            if t not in types:
                problems.append(f"kpi.failure_alert_types: unknown alert type {t!r} (known: "
                                f"{', '.join(sorted(types))})")
        periods = set(self.kpi.periods_s)
        for i, a in enumerate(self.control.actuators):
            known(f"control.actuators[{i}]", a.assets)
            for j, lock in enumerate(a.interlocks):
                if lock.alert_type is not None and lock.alert_type not in types:
                    problems.append(f"control.actuators[{i}].interlocks[{j}].alert_type: {lock.alert_type!r} is "
                                    f"not an alert type (known: {', '.join(sorted(types))})")
        for i, r in enumerate(self.control.rules):
            known(f"control.rules[{i}]", r.assets)
            if r.when.alert_type is not None and r.when.alert_type not in types:
                problems.append(f"control.rules[{i}].when.alert_type: {r.when.alert_type!r} is not an alert type "
                                f"(known: {', '.join(sorted(types))})")
            if r.when.kpi_period_s is not None and r.when.kpi_period_s not in periods:
                problems.append(f"control.rules[{i}].when.kpi_period_s: {r.when.kpi_period_s} is not one of "
                                f"kpi.periods_s {sorted(periods)}")
        b = self.building
        if b is not None:
            if b.outdoor_asset in assets:
                problems.append(f"building.outdoor_asset: {b.outdoor_asset!r} is also a zone or asset id; the outdoor "
                                "sensor needs an id of its own")
            for p in self.kpi.periods_s:
                k = p / b.interval_s
                if abs(k - round(k)) > 1e-9 or round(k) < 1:
                    problems.append(f"kpi.periods_s: period {p:g} s is not a whole number of building intervals "
                                    f"({b.interval_s:g} s)")
            if self.kpi.shifts:
                problems.append("kpi.shifts: the energy-optimization flow reports tumbling periods only (periods_s)")
        if problems:
            raise ValueError(_REFS + _REFS.join(problems))

    # ---- derived views -------------------------------------------------
    def all_assets(self) -> list[AssetConfig]:
        """Explicit assets followed by the expanded groups (and a building's zones, with their floor as line)."""
        out = list(self.assets)
        for g in self.asset_groups:
            for i in range(1, g.count + 1):
                out.append(AssetConfig(id=f"{g.prefix}{i:0{g.width}d}", line=g.line, channels=g.channels,
                                       sample_rate_hz=g.sample_rate_hz, rpm=g.rpm,
                                       ideal_cycle_time_s=g.ideal_cycle_time_s))
        if self.building is not None:
            out += [AssetConfig(id=z.id, line=z.floor) for z in self.building.all_zones()]
        return out

    def control_topics(self) -> list[str]:
        """Topics of model promotions, read only by sites with ONNX models (default ``<site>.control``)."""
        if self.model.kind != "onnx":
            return []
        return list(self.inputs.control_topics) or [f"{self.site.id}.control"]

    def models_topic(self) -> str:
        """Where promotions, refusals and retrain requests go (``aiotstream.model/1`` records)."""
        return self.outputs.models or f"{self.site.id}.models"

    def asset_map(self) -> dict[str, AssetConfig]:
        return {a.id: a for a in self.all_assets()}

    def normalised(self) -> dict[str, Any]:
        """The config as plain JSON data with every default spelled out.

        A site without a ``[building]`` table leaves the key out, so adding that
        optional table to the schema did not change any existing site's hash.
        """
        data = self.model_dump(mode="json")
        if data.get("building") is None:
            data.pop("building", None)
        return data

    @property
    def config_hash(self) -> str:
        """sha256 of the normalised config (canonical JSON, sorted keys), 16 hex digits."""
        blob = orjson.dumps(self.normalised(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:16]

    # ---- loading -------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>") -> SiteConfig:
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(source, _problems(exc)) from None
        problems = cfg.feature_problems()
        if problems:
            raise ConfigError(source, problems)
        return cfg

    def feature_problems(self) -> list[tuple[str, str]]:
        """Checks of ``[features]`` against the feature-set registry and the assets, with field paths."""
        from aiotstream.features.sets import FEATURE_SETS, band_problems  # registry data, no kernels

        f = self.features
        fs = FEATURE_SETS.get(f.set)
        if fs is None:
            close = difflib.get_close_matches(f.set, list(FEATURE_SETS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return [("features.set", f"unknown feature set {f.set!r}{hint} (known: {', '.join(sorted(FEATURE_SETS))})")]
        if fs.kind != "waveform":
            waveform = sorted(n for n, s in FEATURE_SETS.items() if s.kind == "waveform")
            msg = f"{f.set!r} is a {fs.kind} feature set; the {self.site.flow} flow needs a waveform set: "
            return [("features.set", msg + ", ".join(waveform))]
        nyquist = {a.id: a.sample_rate_hz / 2.0 for a in self.all_assets()}
        if f.bands is None:
            bands = band_problems(fs.bands, nyquist, "features.bands (the default of " + fs.ref + ")") \
                if fs.spectral else []
        elif not fs.spectral:
            msg = f"feature set {f.set!r} has no spectral columns; bands apply to spectral sets such as "
            return [("features.bands", msg + "'vibration-spectral'")]
        else:
            bands = band_problems(f.bands, nyquist, "features.bands")
        if bands:
            return bands
        return self._drift_problems(fs.with_bands(f.bands) if f.bands is not None else fs)

    def _drift_problems(self, fs: Any) -> list[tuple[str, str]]:
        """``[model]`` drift settings that need the feature columns (``drift_features``) or each other."""
        m = self.model
        problems: list[tuple[str, str]] = []
        if m.drift_stat_size >= m.drift_window_size:
            problems.append(("model.drift_stat_size", (f"must be smaller than drift_window_size "
                             f"({m.drift_stat_size} >= {m.drift_window_size})")))
        if m.drift_features and m.drift_detector == "none":
            problems.append(("model.drift_features", ("drift_detector is 'none': set it to 'adwin', 'page_hinkley' "
                             "or 'kswin' to watch features")))
        temp = self.features.temperature_metric
        for i, name in enumerate(m.drift_features):
            for a in self.all_assets():
                cols = fs.columns(a.channels) + [f"{temp}.mean", f"{temp}.max"]
                if name not in cols:
                    close = difflib.get_close_matches(name, cols, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else f" (e.g. {', '.join(cols[:4])}, ...)"
                    problems.append((f"model.drift_features[{i}]",
                                     f"{name!r} is not a feature column of asset {a.id}{hint}"))
                    break
        return problems

    @classmethod
    def load(cls, path: str | Path) -> SiteConfig:
        """Load a site config from a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file (:data:`FORMATS`)."""
        p = Path(path)
        try:  # first whether there is a file to read at all, then what it says it is
            with p.open("rb") as f:
                text = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(str(p), [("<file>", f"cannot read: {exc.strerror}")]) from None
        fmt = FORMATS.get(p.suffix.lower())
        if fmt is None:
            raise ConfigError(str(p), [("<file>", (f"unknown file type {p.suffix or '(no suffix)'!r}: supported "
                                                  "formats: .toml, .yaml/.yml, .json"))])
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(str(p), [("<file>", f"larger than {MAX_CONFIG_BYTES // 2**20} MiB: not a site config")])
        return cls.from_dict(parse_config_text(text, fmt, str(p)), source=str(p))


FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}
"""Site config file formats by suffix."""
MAX_CONFIG_BYTES = 16 * 2**20


def parse_config_text(text: bytes, fmt: str, source: str = "<config>") -> dict[str, Any]:
    """The data of a config file's text in ``fmt`` (TOML, YAML or JSON); a ConfigError at ``<file>`` if it
    is not valid in that format or its top level is not a table. YAML is read with the safe loader (plain
    data, no tags that build objects) and without anchors/aliases (which TOML and JSON cannot say, and
    which could multiply a small file into a huge config).

    >>> parse_config_text(b"site:\\n  id: s1\\n", "YAML")
    {'site': {'id': 's1'}}
    """
    try:
        if fmt == "JSON":
            data = orjson.loads(text)
        elif fmt == "YAML":
            data = _yaml(text)
        else:
            data = tomllib.loads(text.decode("utf-8"))
    except RecursionError:
        raise ConfigError(source, [("<file>", f"not valid {fmt}: nested too deeply")]) from None
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(source, [("<file>", f"not valid {fmt}: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [("<file>", (f"the top level must be a table (key: value pairs), got "
                                              f"{type(data).__name__}"))])
    return data


def _yaml(text: bytes) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                raise yaml.YAMLError("anchors and aliases are not supported in a site config: write the values out")
        return yaml.load(text, Loader=loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).replace("\n", " ")) from None


_REFS = "\x1e"  # separates "path: message" items of cross-reference problems found at the root


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    model: Any = SiteConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = args[0] if args and isinstance(args[0], type) and issubclass(args[0], BaseModel) else ann
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "function-before"))
        path = _loc_to_path(loc)
        kind = err["type"]
        given = err.get("input")
        if kind == "extra_forbidden":
            known = _known_fields(loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (f"; known fields: {', '.join(known)}" if known else "")
            msg = f"unknown field{hint}"
        elif kind == "missing":
            msg = "required field is missing"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            msg = f"{err['msg'].replace('Input should be', 'must be')} (got {given!r})"
        elif kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
            if msg.startswith(_REFS):  # several problems, each with its own path
                for item in msg.split(_REFS)[1:]:
                    where, _, what = item.partition(": ")
                    problems.append((where, what))
                continue
        elif kind == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == ID_PATTERN:
            msg = f"{given!r} is not a valid id: use letters, digits, '.', '_' or '-' (max 128)"
        elif kind == "string_pattern_mismatch" and str(loc[-1]) == "password_env":
            msg = f"{given!r} is not an environment variable name (the password itself never goes in the file)"
        elif kind == "string_pattern_mismatch" and str(loc[-1]) == "endpoint":
            msg = f"{given!r} is not an OPC UA endpoint: use opc.tcp://host:port[/path]"
        else:
            msg = err["msg"].replace("Input should be", "must be") + (f" (got {given!r})" if given is not None
                                                                       and not isinstance(given, (dict, list)) else "")
        problems.append((path, msg))
    return problems


def default_site(n_assets: int = 5, site_id: str = "demo-plant", **overrides: Any) -> SiteConfig:
    """The embedded config used by ``make demo`` and tests: n alike assets.

    >>> cfg = default_site(3)
    >>> [a.id for a in cfg.all_assets()], cfg.outputs.alerts
    (['asset-000', 'asset-001', 'asset-002'], 'demo-plant.alerts')
    """
    data: dict[str, Any] = {
        "site": {"id": site_id, "name": "Demo plant (embedded defaults)"},
        "assets": [{"id": f"asset-{i:03d}", "line": f"line-{i % 2 + 1}"} for i in range(n_assets)],
    }
    for key, value in overrides.items():
        data[key] = value
    return SiteConfig.from_dict(data, source="<embedded default>")
