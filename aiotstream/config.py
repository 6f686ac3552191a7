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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class InputConfig(_Model):
    brokers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    topics: list[str] = Field(default_factory=list, description="default: <site>.waveforms, <site>.readings")
    tail: bool = Field(default=True, description="keep waiting for new data at the end of the topics")
    poll_batch: int = Field(default=1000, gt=0, le=100_000)


class WindowConfig(_Model):
    length_s: float = Field(default=1.0, gt=0, le=3600)
    hop_s: float = Field(default=1.0, gt=0, le=3600)
    allowed_lateness_s: float = Field(default=0.5, ge=0, le=3600)
    max_future_s: float = Field(default=300.0, gt=0, description="frames further ahead of wall-clock are dead-lettered")
    idle_close_s: float = Field(default=5.0, gt=0, description="close an asset's windows after this much wall-clock silence")

    @model_validator(mode="after")
    def _hop_le_length(self) -> WindowConfig:
        if self.hop_s > self.length_s:
            raise ValueError(f"hop_s ({self.hop_s}) must not exceed length_s ({self.length_s}): samples would be skipped")
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


class OutputConfig(_Model):
    alerts: str = ""
    kpis: str = ""
    scores: str = ""
    deadletter: str = ""
    partitions: int = Field(default=3, ge=1, le=1024, description="partitions when aiotstream creates a topic")


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
        elif kind == "string_pattern_mismatch":
            msg = f"{given!r} is not a valid id: use letters, digits, '.', '_' or '-' (max 128)"
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
