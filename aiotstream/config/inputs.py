"""Where data arrives: Kafka topics, MQTT subscriptions (TLS, auth), OPC UA nodes, files."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aiotstream.config.base import _Model
from aiotstream.ids import ID_PATTERN  # the one id pattern (config, payloads, topic levels, file columns)

PayloadFormat = Literal["auto", "frame", "json", "value", "gateway-json", "sparkplug-json", "onem2m"]
_OUTPUT_PLACEHOLDERS = ("site", "asset", "kind", "line")


class TlsConfig(_Model):
    """TLS for MQTT: an empty ``ca_file`` uses the system's CAs; cert/key for client certificates."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    key_password_file: str = Field(default="", description="file holding the passphrase of an encrypted "
                                                           "key_file (read at start, never logged)")
    insecure: bool = Field(default=False, description="skip the server hostname check (test setups only)")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together: set both for a client "
                             "certificate, or neither")
        if self.key_password_file and not self.key_file:
            raise ValueError("key_password_file is the passphrase of key_file: set key_file too")
        return self


def _check_reconnect(min_s: float, max_s: float) -> None:
    """The reconnect backoff runs from ``reconnect_min_s`` up to ``reconnect_max_s``."""
    if max_s < min_s:
        raise ValueError(f"reconnect_max_s ({max_s}) must be >= reconnect_min_s ({min_s})")


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
    password_file: str = Field(default="", description="file holding the password (its first line), read at "
                                                       "start; instead of password_env")
    tls: TlsConfig | None = None
    qos: int = Field(default=1, ge=0, le=2)
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    reconnect_min_s: int = Field(default=1, ge=1, le=3600)
    reconnect_max_s: int = Field(default=10, ge=1, le=3600,
                                 description="paho's reconnect backoff doubles up to this: data flows again "
                                             "at most this long after the broker is back")

    @model_validator(mode="after")
    def _reconnect_order(self) -> MqttConnection:
        if self.password_env and self.password_file:
            raise ValueError("password_env and password_file are two ways to give the one password: set one")
        _check_reconnect(self.reconnect_min_s, self.reconnect_max_s)
        return self


class MqttSubscription(_Model):
    """One topic filter, how to decode its payloads and how its topics map to asset/metric."""

    filter: str = Field(description="MQTT topic filter; + and # wildcards, $share/<group>/... allowed")
    format: PayloadFormat = "auto"
    asset: str = Field(default="",
                       description="template from topic levels, e.g. '{2}'; empty: the payload says")
    metric: str = Field(default="", description="template or name; empty: the payload says")
    missing_ts: Literal["reject", "arrival"] | None = Field(
        default=None, description="payload without event time: dead letter or arrival time (default: arrival "
                                  "for format 'value', reject otherwise)")
    metric_names: dict[str, str] = Field(default_factory=dict, description="rename payload metric names")
    seq: str = Field(default="", max_length=64,
                     description="where each topic's sequence number is, to count gaps (lost messages): "
                                 "'frame' (the binary frame header's), the name of a top-level integer field "
                                 "of a JSON payload (e.g. 'seq'), or empty (not tracked)")
    seq_wrap: int = Field(default=0, ge=0, le=2**63,
                          description="the sequence number wraps to 0 after seq_wrap - 1 "
                                      "(e.g. 256); 0: never")

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
            raise ValueError("seq = 'frame' reads the binary frame header: it needs format 'frame' or "
                             f"'auto', not {self.format!r}")
        if self.seq and self.seq != "frame" and self.format in ("frame", "value"):
            raise ValueError(f"seq = {self.seq!r} names a JSON field, but format {self.format!r} payloads "
                             "are not JSON (use seq = 'frame' for frames)")
        if self.seq_wrap == 1:
            raise ValueError("seq_wrap = 1 would make every number 0: use 0 (no wrap) or the "
                             "counter's modulus")
        return self

    @property
    def effective_missing_ts(self) -> str:
        return self.missing_ts or ("arrival" if self.format == "value" else "reject")


class MqttInput(MqttConnection):
    """``[inputs.mqtt]``: an MQTT source (one persistent session)."""

    session_expiry_s: int = Field(default=86_400, ge=0, le=0xFFFFFFFF,
                                  description="MQTT 5: how long the broker keeps the session (and queued QoS "
                                              "1 messages) while the flow is away")
    receive_maximum: int = Field(default=65535, ge=1, le=65535,
                                 description="MQTT 5: unacknowledged QoS 1 messages the broker may have in "
                                             "flight; with ack = 'epoch' it caps ingest at about "
                                             "receive_maximum / (2 x epoch length) messages/s "
                                             "(see docs/mqtt.md)")
    ack: Literal["epoch", "batch"] = Field(
        default="epoch", description="epoch: PUBACK when the Bytewax epoch after the one the message entered "
                                     "closes; batch: when the next batch is taken")
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000,
                            description="messages the MQTT client process holds for the flow; when full it "
                                        "stops reading and TCP pushes back on the broker")
    broker_drops_topic: str = Field(
        default="$SYS/broker/publish/messages/dropped", max_length=256,
        description="the broker's counter of messages it dropped (mosquitto's $SYS topic); its growth during "
                    "the run is reported as a loss; empty: not read")
    subscriptions: list[MqttSubscription] = Field(min_length=1)

    @field_validator("broker_drops_topic")
    @classmethod
    def _drops_topic(cls, v: str) -> str:
        if v and ("+" in v or "#" in v or "\x00" in v):
            raise ValueError(f"{v!r} must be one topic (no + or # wildcards): the broker's counter of "
                             "dropped messages, e.g. '$SYS/broker/publish/messages/dropped'; "
                             "empty to not read it")
        return v

    @model_validator(mode="after")
    def _epoch_ack_needs_v5(self) -> MqttInput:
        if self.ack == "epoch" and self.protocol != "5" and self.qos > 0:
            raise ValueError("ack = 'epoch' needs protocol '5' (MQTT 3.1.1 brokers cap unacknowledged "
                             "messages, mosquitto at 20): use protocol = '5' or ack = 'batch'")
        return self


class OpcUaNode(_Model):
    node_id: str = Field(min_length=1, description="e.g. 'ns=2;s=Pump1.Temperature' or 'ns=2;i=1007'")
    asset: str = Field(pattern=ID_PATTERN)
    metric: str = Field(min_length=1, max_length=128)


class OpcUaServer(_Model):
    """Where and how to reach an OPC UA server (shared by the OPC UA source and the command writer)."""

    endpoint: str = Field(pattern=r"^opc\.tcp://\S+$", description="opc.tcp://host:port[/path]")
    username: str = ""
    password_env: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
                              description="name of the environment variable holding the user's password")
    password_file: str = Field(default="", description="file holding the user's password (its first line), "
                                                       "read at start; instead of password_env")
    security_policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = Field(
        default="None", description="None: messages neither signed nor encrypted (a warning at start)")
    security_mode: Literal["Sign", "SignAndEncrypt"] = Field(
        default="SignAndEncrypt", description="with a security_policy other than None")
    certificate: str = Field(default="",
                             description="the client's application instance certificate (.pem/.der)")
    private_key: str = Field(default="", description="its private key (.pem/.der)")
    private_key_password_env: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
                                          description="environment variable holding the "
                                                      "private key's password")
    private_key_password_file: str = Field(default="", description="file holding the private key's password "
                                                                   "(instead of private_key_password_env)")
    server_certificate: str = Field(default="", description="the server's certificate to trust (.pem/.der); "
                                                            "empty: the one its endpoint presents")
    timeout_s: float = Field(default=4.0, gt=0, le=600, description="per request, and per connection attempt")

    @model_validator(mode="before")
    @classmethod
    def _no_security_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and "security" in data:
            raise ValueError("'security' (an asyncua security string) is replaced by security_policy, "
                             "security_mode, certificate, private_key (and server_certificate, "
                             "private_key_password_env)")
        return data

    @model_validator(mode="after")
    def _security(self) -> OpcUaServer:
        if self.security_policy != "None" and not (self.certificate and self.private_key):
            raise ValueError(f"security_policy {self.security_policy!r} needs certificate and private_key "
                             "(the client's application instance certificate and its key)")
        if self.security_policy == "None" and (self.certificate or self.private_key
                                               or self.server_certificate):
            raise ValueError("certificate/private_key/server_certificate are set but security_policy is "
                             "'None': set security_policy (e.g. 'Basic256Sha256') to use them")
        if self.password_env and self.password_file:
            raise ValueError("password_env and password_file are two ways to give the one password: set one")
        if self.private_key_password_env and self.private_key_password_file:
            raise ValueError("private_key_password_env and private_key_password_file are two ways to give "
                             "the one password: set one")
        return self

    def security_warning(self) -> str | None:
        """What an operator should know about this connection's security at start, or None.

        >>> nodes = [{"node_id": "i=1", "asset": "a", "metric": "m"}]
        >>> warning = OpcUaInput(endpoint="opc.tcp://plc:4840", nodes=nodes).security_warning()
        >>> print(warning.split(";")[0])  # doctest: +NORMALIZE_WHITESPACE
        OPC UA opc.tcp://plc:4840: security policy None: no user is authenticated and values cross the network
        unsigned and unencrypted
        >>> OpcUaInput(endpoint="opc.tcp://plc:4840", nodes=nodes, security_policy="Basic256Sha256",
        ...            certificate="c.pem", private_key="k.pem").security_warning() is None
        True
        """
        if self.security_policy != "None":
            return None
        what = f"values and user {self.username!r}'s password cross" if self.username else \
            "no user is authenticated and values cross"
        return (f"OPC UA {self.endpoint}: security policy None: {what} the network unsigned and unencrypted; "
                "set security_policy (e.g. \"Basic256Sha256\"), security_mode, certificate and private_key "
                "in [inputs.opcua] (or [outputs.opcua]) to secure it")


class OpcUaInput(OpcUaServer):
    """``[inputs.opcua]``: subscribe to node ids on one OPC UA server."""

    sampling_interval_ms: float = Field(default=100.0, ge=0, le=3_600_000)
    publishing_interval_ms: float = Field(default=500.0, gt=0, le=3_600_000)
    timestamp: Literal["server", "source"] = Field(default="server",
                                                   description="which timestamp is event time")
    bad_quality: Literal["deadletter", "flag"] = "deadletter"
    reconnect_min_s: float = Field(default=0.5, gt=0, le=3600,
                                   description="first retry delay, doubling up to reconnect_max_s")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000,
                            description="data changes buffered in the flow process; when full, the client "
                                        "stops asking the server for more (its queues then hold them)")
    monitored_queue_size: int = Field(default=100, ge=1, le=100_000,
                                      description="values the server keeps per node between publishes, and "
                                                  "while a connection is down (when the subscription "
                                                  "can be restored)")
    nodes: list[OpcUaNode] = Field(min_length=1)

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, v: list[OpcUaNode]) -> list[OpcUaNode]:
        ids = [n.node_id for n in v]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"node id(s) {', '.join(map(repr, dups))} appear more than once")
        return v

    @model_validator(mode="after")
    def _reconnect_order(self) -> OpcUaInput:
        _check_reconnect(self.reconnect_min_s, self.reconnect_max_s)
        return self


class FileColumns(_Model):
    """Which columns of a CSV/Parquet/JSONL file hold a reading (long: metric + value; wide: metrics)."""

    asset: str = "asset"
    ts: str = "ts"
    ts_unit: Literal["ns", "us", "ms", "s", "iso"] = "ns"
    metric: str = "metric"
    value: str = "value"
    metrics: list[str] = Field(default_factory=list,
                               description="wide tables: each listed column is a metric")
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
        default="auto", description="auto: by extension (.csv, .jsonl/.json, .parquet, .bin = "
                                    "length-prefixed frames)")
    payload: PayloadFormat = Field(default="auto",
                                   description="format of each JSONL line when no [columns] table")
    columns: FileColumns | None = None
    speed: float = Field(default=0.0, ge=0, le=1e6,
                         description="0: as fast as possible; 1: real time; N: N x")
    missing_ts: Literal["reject", "arrival"] = "reject"


class KafkaSecurity(_Model):
    """``[inputs.kafka]``: how every Kafka client of the site (the flow's source and sink, topic creation, the
    console, the simulator) authenticates and encrypts. Secrets come from files, read at start; the config
    (and its hash) hold only the files' paths."""

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="librdkafka's security.protocol")
    sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="", description="with SASL_PLAINTEXT or SASL_SSL")
    username: str = Field(default="", max_length=256, description="the SASL user")
    password_file: str = Field(default="", description="secret file holding the SASL password (first line)")
    ca_file: str = Field(default="", description="CA certificate(s) to trust, PEM (SSL, SASL_SSL); "
                                                 "empty: the system's")
    cert_file: str = Field(default="", description="client certificate, PEM (SSL client authentication)")
    key_file: str = Field(default="", description="its private key, PEM")
    key_password_file: str = Field(default="", description="secret file holding the key's passphrase")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        sasl = self.security_protocol.startswith("SASL_")
        tls = self.security_protocol.endswith("SSL")
        if sasl and not (self.sasl_mechanism and self.username and self.password_file):
            raise ValueError(f"security_protocol {self.security_protocol!r} needs sasl_mechanism, "
                             "username and password_file")
        if not sasl and (self.sasl_mechanism or self.username or self.password_file):
            raise ValueError("sasl_mechanism/username/password_file are set but security_protocol "
                             f"{self.security_protocol!r} has no SASL: use SASL_SSL (or SASL_PLAINTEXT)")
        if not tls and (self.ca_file or self.cert_file or self.key_file or self.key_password_file):
            raise ValueError("ca_file/cert_file/key_file are set but security_protocol "
                             f"{self.security_protocol!r} has no TLS: use SSL or SASL_SSL")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together: set both for a client certificate, "
                             "or neither")
        if self.key_password_file and not self.key_file:
            raise ValueError("key_password_file is the passphrase of key_file: set key_file too")
        return self


class InputConfig(_Model):
    kind: Literal["kafka", "mqtt", "opcua", "files"] = Field(default="kafka",
                                                             description="where the data comes from")
    brokers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    topics: list[str] = Field(default_factory=list, description="default: <site>.waveforms, <site>.readings")
    feedback_topics: list[str] = Field(default_factory=list,
                                       description="operator feedback and device acks; default: "
                                                   "<site>.feedback, <site>.acks")
    control_topics: list[str] = Field(default_factory=list,
                                      description="model promotions (kind = \"onnx\"); "
                                                  "default: <site>.control")
    tail: bool = Field(default=True, description="keep waiting for new data at the end of the topics")
    poll_batch: int = Field(default=10_000, gt=0, le=100_000,
                            description="messages read per partition at a time, at most (a table file's "
                                        "rows, a JSONL file's lines; Kafka: also poll_bytes): larger "
                                        "favours throughput, smaller bounds latency under load (a whole "
                                        "poll batch is decoded before any asset runs)")
    poll_bytes: int = Field(default=8 << 20, ge=65_536, le=1 << 30,
                            description="Kafka: about this many bytes read per partition at a time, at "
                                        "the size the partition's recent messages had (librdkafka "
                                        "counts messages): 8 MiB is poll_batch's 10,000 JSON readings "
                                        "but ~700 waveform frames")
    max_message_bytes: int = Field(
        default=1_048_576, ge=1_024, le=268_435_456,
        description="an input message larger than this is not decoded: it is dead-lettered with reason "
                    "'too_large', keeping a 1 KiB prefix of it, its length and its sha256")
    max_abs_value: float = Field(
        default=1e12, ge=1e3, le=1e100,
        description="a reading value or waveform sample whose magnitude is larger is dead-lettered with "
                    "reason 'out_of_range'; the default keeps every feature, score and KPI sum finite")
    kafka: KafkaSecurity | None = Field(
        default=None, description="TLS and SASL for every Kafka client (default: plaintext, or "
                                  "AIOTSTREAM_KAFKA_* environment variables)")
    mqtt: MqttInput | None = None
    opcua: OpcUaInput | None = None
    files: FileInput | None = None

    @model_validator(mode="after")
    def _kind_has_table(self) -> InputConfig:
        if self.kind != "kafka" and getattr(self, self.kind) is None:
            raise ValueError(f"kind = {self.kind!r} needs an [inputs.{self.kind}] table")
        return self
