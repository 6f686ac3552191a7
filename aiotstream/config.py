"""Site configuration: schema, loading (TOML or JSON), validation and hash.

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
import tomllib
from pathlib import Path
from typing import Any, Literal

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

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteInfo(_Model):
    id: str = Field(pattern=ID_PATTERN, description="site id; prefixes the output topics")
    name: str = ""
    flow: str = "predictive-maintenance"
    flow_version: str = "1"


class AssetConfig(_Model):
    id: str = Field(pattern=ID_PATTERN)
    line: str = "line-1"
    channels: list[str] = Field(default_factory=lambda: ["x", "y", "z"], min_length=1, max_length=64)
    sample_rate_hz: float = Field(default=10_000.0, gt=0, le=1_000_000)
    rpm: float = Field(default=1_800.0, gt=0, le=200_000)

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
    line: str = "line-1"
    channels: list[str] = Field(default_factory=lambda: ["x", "y", "z"], min_length=1, max_length=64)
    sample_rate_hz: float = Field(default=10_000.0, gt=0, le=1_000_000)
    rpm: float = Field(default=1_800.0, gt=0, le=200_000)


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
    reconnect_max_s: int = Field(default=30, ge=1, le=3600)

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
        return self

    @property
    def effective_missing_ts(self) -> str:
        return self.missing_ts or ("arrival" if self.format == "value" else "reject")


class MqttInput(MqttConnection):
    """``[inputs.mqtt]``: an MQTT source (one persistent session)."""

    session_expiry_s: int = Field(default=3600, ge=0, le=0xFFFFFFFF,
                                  description="MQTT 5: how long the broker keeps the session (and queued QoS 1 "
                                              "messages) while disconnected")
    receive_maximum: int = Field(default=10_000, ge=1, le=65535,
                                 description="MQTT 5: unacknowledged QoS 1 messages the broker may have in flight")
    ack: Literal["epoch", "batch"] = Field(
        default="epoch", description="epoch: PUBACK when the Bytewax epoch after the one the message entered "
                                     "closes; batch: when the next batch is taken")
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000)
    subscriptions: list[MqttSubscription] = Field(min_length=1)

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
    password_env: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    security: str = Field(default="", description="asyncua security string, e.g. "
                                                  "'Basic256Sha256,SignAndEncrypt,cert.pem,key.pem'")
    timeout_s: float = Field(default=4.0, gt=0, le=600)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000)
    nodes: list[OpcUaNode] = Field(min_length=1)

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, v: list[OpcUaNode]) -> list[OpcUaNode]:
        ids = [n.node_id for n in v]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"node id(s) {', '.join(map(repr, dups))} appear more than once")
        return v


class FileColumns(_Model):
    """Which columns of a CSV/Parquet/JSONL file hold a reading (long: metric + value; wide: metrics)."""

    asset: str = "asset"
    ts: str = "ts"
    ts_unit: Literal["ns", "us", "ms", "s", "iso"] = "ns"
    metric: str = "metric"
    value: str = "value"
    metrics: list[str] = Field(default_factory=list, description="wide tables: each listed column is a metric")
    default_asset: str = Field(default="", description="asset for files without an asset column")


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
    tail: bool = Field(default=True, description="keep waiting for new data at the end of the topics")
    poll_batch: int = Field(default=1000, gt=0, le=100_000)
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
    idle_close_s: float = Field(default=5.0, gt=0, description="close an asset's windows after this much wall-clock silence")
    wait_for_readings: bool = Field(default=True, description="hold windows until the asset's readings stream "
                                    "has shown up (false: assets send frames only)")
    state_ttl_s: float = Field(default=3600.0, ge=0, description="forget an asset silent this long (0 = never)")

    @model_validator(mode="after")
    def _hop_le_length(self) -> WindowConfig:
        if self.hop_s > self.length_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed length_s ({self.length_s}): samples would be skipped")
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


class ModelConfig(_Model):
    kind: Literal["zscore", "hst"] = "zscore"
    name: str = "baseline"
    version: str = "1"
    warmup_windows: int = Field(default=20, ge=2, le=100_000)
    # HalfSpaceTrees settings (kind = "hst")
    n_trees: int = Field(default=25, ge=1, le=1000)
    height: int = Field(default=8, ge=2, le=20)
    window_size: int = Field(default=50, ge=2)
    seed: int = 42
    # drift detector on the anomaly score
    drift_detector: Literal["adwin", "page_hinkley", "none"] = "adwin"
    drift_delta: float = Field(default=0.002, gt=0, lt=1)


class AlertConfig(_Model):
    open_threshold: float = Field(default=0.9, gt=0, le=1)
    clear_threshold: float = Field(default=0.6, ge=0, lt=1)
    open_windows: int = Field(default=1, ge=1, description="consecutive windows at or over open_threshold to open")
    clear_windows: int = Field(default=3, ge=1, description="consecutive windows under clear_threshold to clear")
    cooldown_s: float = Field(default=30.0, ge=0, description="no new alert of the same type this soon after a clear")
    critical_threshold: float = Field(default=0.99, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> AlertConfig:
        if self.clear_threshold >= self.open_threshold:
            raise ValueError(
                f"clear_threshold ({self.clear_threshold}) must be below open_threshold "
                f"({self.open_threshold}) for hysteresis"
            )
        return self


class KpiConfig(_Model):
    period_s: float = Field(default=10.0, gt=0, le=86_400)


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
    kpis: str = ""
    scores: str = ""
    deadletter: str = ""
    partitions: int = Field(default=3, ge=1, le=1024, description="partitions when aiotstream creates a topic")
    mqtt: MqttOutput | None = None
    parquet: ParquetOutput | None = None


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
    outputs: OutputConfig = Field(default_factory=OutputConfig)

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
        if isinstance(site_id, str):
            outs = dict(data.get("outputs") or {})
            for kind in ("alerts", "kpis", "scores", "deadletter"):
                outs.setdefault(kind, f"{site_id}.{kind}")
            data["outputs"] = outs
            inp = dict(data.get("inputs") or {})
            if not inp.get("topics"):
                inp["topics"] = [f"{site_id}.waveforms", f"{site_id}.readings"]
            data["inputs"] = inp
        return data

    @model_validator(mode="after")
    def _check_assets(self) -> SiteConfig:
        if not self.assets and not self.asset_groups:
            raise ValueError("no assets: add at least one [[assets]] or [[asset_groups]] table")
        seen: set[str] = set()
        for a in self.all_assets():
            if a.id in seen:
                raise ValueError(f"asset id {a.id!r} appears more than once (ids must be unique)")
            seen.add(a.id)
        return self

    # ---- derived views -------------------------------------------------
    def all_assets(self) -> list[AssetConfig]:
        """Explicit assets followed by the expanded groups."""
        out = list(self.assets)
        for g in self.asset_groups:
            for i in range(1, g.count + 1):
                out.append(AssetConfig(id=f"{g.prefix}{i:0{g.width}d}", line=g.line, channels=g.channels,
                                       sample_rate_hz=g.sample_rate_hz, rpm=g.rpm))
        return out

    def asset_map(self) -> dict[str, AssetConfig]:
        return {a.id: a for a in self.all_assets()}

    def normalised(self) -> dict[str, Any]:
        """The config as plain JSON data with every default spelled out."""
        return self.model_dump(mode="json")

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
            return band_problems(fs.bands, nyquist, "features.bands (the default of " + fs.ref + ")") \
                if fs.spectral else []
        if not fs.spectral:
            msg = f"feature set {f.set!r} has no spectral columns; bands apply to spectral sets such as "
            return [("features.bands", msg + "'vibration-spectral'")]
        return band_problems(f.bands, nyquist, "features.bands")

    @classmethod
    def load(cls, path: str | Path) -> SiteConfig:
        """Load a site config from a ``.toml`` or ``.json`` file."""
        p = Path(path)
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise ConfigError(str(p), [("<file>", f"cannot read: {exc.strerror}")]) from None
        try:
            if p.suffix == ".json":
                data = orjson.loads(text)
            else:
                data = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(p), [("<file>", f"not valid {p.suffix.lstrip('.') or 'TOML'}: {exc}")]) from None
        return cls.from_dict(data, source=str(p))


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
