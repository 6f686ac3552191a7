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
import tomllib
import weakref
from pathlib import Path
from typing import Any

import orjson
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aiotstream.config.assets import AssetConfig, AssetGroup, SiteInfo
from aiotstream.config.auth import AuthConfig
from aiotstream.config.base import _Model
from aiotstream.config.building import FLOW_ENERGY, WASTE_TYPES, BuildingConfig
from aiotstream.config.decisions import AlertConfig, ControlConfig, MaintenanceConfig
from aiotstream.config.detection import FeatureConfig, ModelConfig, ScalarConfig, WindowConfig
from aiotstream.config.governance import GovernanceConfig, LineageConfig
from aiotstream.config.inputs import InputConfig
from aiotstream.config.kpi import KpiConfig
from aiotstream.config.outputs import OutputConfig
from aiotstream.errors import ConfigError
from aiotstream.ids import ID_PATTERN, is_valid_id  # the one id pattern (config, payloads, topic levels)

_POLL_BYTES = InputConfig.model_fields["poll_bytes"].default


class SiteConfig(_Model):
    site: SiteInfo
    assets: list[AssetConfig] = Field(default_factory=list)
    asset_groups: list[AssetGroup] = Field(default_factory=list)
    inputs: InputConfig = Field(default_factory=InputConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    scalar: ScalarConfig = Field(default_factory=ScalarConfig, description="the streaming detector on "
                                 "scalar readings (docs/detection.md)")
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    kpi: KpiConfig = Field(default_factory=KpiConfig)
    maintenance: list[MaintenanceConfig] = Field(default_factory=list)
    control: ControlConfig = Field(default_factory=ControlConfig)
    outputs: OutputConfig = Field(default_factory=OutputConfig)
    building: BuildingConfig | None = Field(default=None, description="zones and meters of the "
                                            "energy-optimization flow")
    governance: GovernanceConfig = Field(default_factory=GovernanceConfig)
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    auth: AuthConfig | None = Field(default=None, description="principals, roles and keys: control, feedback "
                                    "and ack messages must be signed (docs/security.md); absent: unsigned "
                                    "messages are accepted (a WARNING at start)")

    @field_validator("assets")
    @classmethod
    def _unique_assets(cls, v: list[AssetConfig]) -> list[AssetConfig]:
        ids = [a.id for a in v]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise ValueError(f"asset id(s) {', '.join(map(repr, dups))} appear more than once (ids "
                             "must be unique)")
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
    def _erasure_needs_the_plant_flow(self) -> SiteConfig:
        if self.governance.erasure and self.site.flow == FLOW_ENERGY:
            raise ValueError(_REFS + "governance.erasure: the building flow does not take erasure requests "
                             "yet (its outputs follow governance.pii); set it to false")
        return self

    @model_validator(mode="after")
    def _writer_signs_its_acks(self) -> SiteConfig:
        """With ``[auth]``, the OPC UA writer's acks must be signed by a device principal for the assets it
        writes to (else the flow would refuse every ack it sends)."""
        w, auth = self.outputs.opcua, self.auth
        if w is None or auth is None:
            return self
        where = "outputs.opcua.ack_principal"
        if w.ack_principal is None:
            raise ValueError(_REFS + f"{where}: with [auth] the writer's command acks must be signed: set "
                             "ack_principal (a principal with the device role) and ack_key_file")
        p = auth.principal(w.ack_principal)
        if p is None:
            raise ValueError(_REFS + f"{where}: {w.ack_principal!r} is not in [[auth.principals]]")
        if "device" not in p.roles:
            raise ValueError(_REFS + f"{where}: principal {p.id!r} needs the device role to acknowledge "
                             "commands")
        lines = {a.id: a.line for a in self.all_assets()}
        mine = set(p.assets)
        bad = sorted({x.asset for x in w.writes if "*" not in mine and x.asset not in mine
                      and f"line:{lines.get(x.asset)}" not in mine})
        if bad:
            raise ValueError(_REFS + f"{where}: principal {p.id!r} may not act on {', '.join(bad)} (its "
                             "assets in [auth]), which the writer writes to")
        return self

    @model_validator(mode="after")
    def _loop_has_a_lake(self) -> SiteConfig:
        """The model loop builds its datasets from the Parquet lake: it needs one, holding scores (and
        alerts)."""
        o = self.model.onnx
        if o is None or o.loop is None:
            return self
        p = self.outputs.parquet
        if o.loop.lake is None and p is None:
            raise ValueError(_REFS + "model.onnx.loop.lake: give the Parquet lake to learn from, or record "
                             "one with [outputs.parquet] (kinds score and alert)")
        if o.loop.lake is None and p is not None and "score" not in p.kinds:
            raise ValueError(_REFS + "outputs.parquet.kinds: the model loop learns from recorded scores: add "
                             "\"score\" (and \"alert\", the operators' labels)")
        return self

    @model_validator(mode="after")
    def _limits_fit_the_windows(self) -> SiteConfig:
        """The skew and gap bounds must leave room for the windows (else every window would be too old, or
        every stretch between two windows a gap)."""
        w, k = self.window, self.kpi
        problems = []
        if w.max_past_s < w.length_s + w.allowed_lateness_s:
            problems.append(f"window.max_past_s: {w.max_past_s:g} must be at least length_s + "
                            f"allowed_lateness_s ({w.length_s + w.allowed_lateness_s:g}): an input in an "
                            "open window is not too old")
        if k.max_gap_s < w.length_s:
            problems.append(f"kpi.max_gap_s: {k.max_gap_s:g} must be at least window.length_s "
                            f"({w.length_s:g}): the windows of an asset with continuous data "
                            "end that far apart")
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
                problems.append(f"maintenance[{i}].end: the window lasts "
                                f"{(m.end - m.start).total_seconds():g} s, longer than "
                                f"alerts.maintenance_max_s ({longest:g} s); split it or raise the limit")
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
                    problems.append(f"control.actuators[{i}].interlocks[{j}].alert_type: {lock.alert_type!r} "
                                    f"is not an alert type (known: {', '.join(sorted(types))})")
        for i, r in enumerate(self.control.rules):
            known(f"control.rules[{i}]", r.assets)
            if r.when.alert_type is not None and r.when.alert_type not in types:
                problems.append(f"control.rules[{i}].when.alert_type: {r.when.alert_type!r} is not an alert "
                                f"type (known: {', '.join(sorted(types))})")
            if r.when.kpi_period_s is not None and r.when.kpi_period_s not in periods:
                problems.append(f"control.rules[{i}].when.kpi_period_s: {r.when.kpi_period_s} is not one of "
                                f"kpi.periods_s {sorted(periods)}")
        b = self.building
        if b is not None:
            if b.outdoor_asset in assets:
                problems.append(f"building.outdoor_asset: {b.outdoor_asset!r} is also a zone or asset id; "
                                "the outdoor sensor needs an id of its own")
            for p in self.kpi.periods_s:
                k = p / b.interval_s
                if abs(k - round(k)) > 1e-9 or round(k) < 1:
                    problems.append(f"kpi.periods_s: period {p:g} s is not a whole number of building "
                                    f"intervals ({b.interval_s:g} s)")
            if self.kpi.shifts:
                problems.append("kpi.shifts: the energy-optimization flow reports tumbling periods "
                                "only (periods_s)")
        if problems:
            raise ValueError(_REFS + _REFS.join(problems))

    # ---- derived views -------------------------------------------------
    def all_assets(self) -> list[AssetConfig]:
        """Explicit assets followed by the expanded groups (and a building's zones, with their floor as
        line).

        Expanded once per config (:func:`_expanded`): loading a site asks five times (its checks, the
        runtime's maps), and a group of 100,000 took about 2.4 s each time."""
        return list(_expanded(self))

    def control_topics(self) -> list[str]:
        """Topics of model promotions and erasure requests, read only by sites with ONNX models or
        ``governance.erasure`` (default ``<site>.control``)."""
        if self.model.kind != "onnx" and not self.governance.erasure:
            return []
        return list(self.inputs.control_topics) or [f"{self.site.id}.control"]

    def models_topic(self) -> str:
        """Where promotions, refusals and retrain requests go (``aiotstream.model/1`` records)."""
        return self.outputs.models or f"{self.site.id}.models"

    def scalar_topic(self) -> str:
        """Where the streaming detector's scalar scores go (``aiotstream.scalar/1`` records)."""
        return f"{self.site.id}.scalar_scores"

    def audit_topic(self) -> str:
        """Where the audit trail goes (``aiotstream.audit/1`` entries, see :mod:`aiotstream.audit`)."""
        return self.outputs.audit or f"{self.site.id}.audit"

    def asset_map(self) -> dict[str, AssetConfig]:
        return {a.id: a for a in self.all_assets()}

    def normalised(self) -> dict[str, Any]:
        """The config as plain JSON data with every default spelled out.

        A site without a ``[building]`` table leaves the key out, so adding that
        optional table to the schema did not change any existing site's hash; the
        same for a ``[scalar]`` table at its defaults, for ``[governance]`` and ``[lineage]`` when they
        hold their defaults, and for ``window.stagger`` off.
        """
        data = self.model_dump(mode="json")
        if data.get("building") is None:
            data.pop("building", None)
        elif data["building"].get("timezone") is None:  # added later: a building without it keeps its hash
            data["building"].pop("timezone", None)
        if data.get("auth") is None:  # added later: a site without [auth] keeps its hash
            data.pop("auth", None)
        if data.get("scalar") == ScalarConfig().model_dump(mode="json"):
            data.pop("scalar", None)  # likewise the [scalar] table at its defaults
        if not data["outputs"].get("audit"):  # the default audit topic: the hash of sites before it stays
            data["outputs"].pop("audit", None)
        if data["inputs"].get("poll_bytes") == _POLL_BYTES:  # added later, at its default: likewise
            data["inputs"].pop("poll_bytes", None)
        for section, key in (("inputs", "kafka"), ("outputs", "opcua")):  # added later, absent: likewise
            if data[section].get(key) is None:
                data[section].pop(key, None)
        opcua = data["outputs"].get("opcua")
        if isinstance(opcua, dict):  # the writer's ack signer (added with [auth]), unset: likewise
            for key in ("ack_principal", "ack_key_file", "ack_key_password_file"):
                if opcua.get(key) is None:
                    opcua.pop(key, None)
        for key, table in (("governance", GovernanceConfig), ("lineage", LineageConfig)):
            if data.get(key) == table().model_dump(mode="json"):  # added later: defaults keep the old hash
                data.pop(key, None)
        if data["window"].get("stagger") is False:  # window.stagger (added later) off: likewise
            data["window"].pop("stagger", None)
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
            return [("features.set",
                     f"unknown feature set {f.set!r}{hint} (known: {', '.join(sorted(FEATURE_SETS))})")]
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
            problems.append(("model.drift_stat_size", ("must be smaller than drift_window_size "
                             f"({m.drift_stat_size} >= {m.drift_window_size})")))
        if m.drift_features and m.drift_detector == "none":
            problems.append(("model.drift_features",
                             ("drift_detector is 'none': set it to 'adwin', 'page_hinkley' or 'kswin' "
                              "to watch features")))
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
            raise ConfigError(str(p),
                              [("<file>", (f"unknown file type {p.suffix or '(no suffix)'!r}: supported "
                                           "formats: .toml, .yaml/.yml, .json"))])
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(str(p),
                              [("<file>", f"larger than {MAX_CONFIG_BYTES // 2**20} MiB: not a site config")])
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
        raise ConfigError(source, [("<file>", ("the top level must be a table (key: value pairs), got "
                                               f"{type(data).__name__}"))])
    return data


def _yaml(text: bytes) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                raise yaml.YAMLError("anchors and aliases are not supported in a site config: "
                                     "write the values out")
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


_EXPANDED: dict[int, tuple[Any, list[AssetConfig]]] = {}
"""id(config) -> (a weak reference to it, its assets): see :func:`_expanded`."""


def _expanded(cfg: SiteConfig) -> list[AssetConfig]:
    """``cfg``'s assets (:meth:`SiteConfig.all_assets`), expanded at the first call and kept while ``cfg``
    lives (the entry goes with it). A config is frozen, and a copy with other assets (``model_copy(update=
    ...)``) is another object. Kept outside the model: a private attribute would be compared by ``==``,
    copied by ``model_copy`` and pickled with it."""
    key = id(cfg)
    hit = _EXPANDED.get(key)
    if hit is not None and hit[0]() is cfg:
        return hit[1]
    out = list(cfg.assets)
    for g in cfg.asset_groups:
        out += _group_assets(g)
    if cfg.building is not None:
        out += [AssetConfig(id=z.id, line=z.floor) for z in cfg.building.all_zones()]
    _EXPANDED[key] = (weakref.ref(cfg, lambda _ref, key=key: _EXPANDED.pop(key, None)), out)
    return out


def _group_assets(g: AssetGroup) -> list[AssetConfig]:
    """A group's assets: the first validated as a config of its own, the others copies of it with their
    own id (the fields a group shares are validated once; each id is checked against the id pattern, and
    one that does not match is built and validated in full, which raises the error it always did)."""
    def build(i: int) -> AssetConfig:
        return AssetConfig(id=f"{g.prefix}{i:0{g.width}d}", line=g.line, channels=g.channels,
                           sample_rate_hz=g.sample_rate_hz, rpm=g.rpm,
                           ideal_cycle_time_s=g.ideal_cycle_time_s)

    first = build(1)
    out = [first]
    for i in range(2, g.count + 1):
        aid = f"{g.prefix}{i:0{g.width}d}"
        out.append(first.model_copy(update={"id": aid}) if is_valid_id(aid) else build(i))
    return out


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
            known_text = f"; known fields: {', '.join(known)}" if known else ""
            hint = f"; did you mean {close[0]!r}?" if close else known_text
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
            msg = (f"{given!r} is not an environment variable name (the password itself never "
                   "goes in the file)")
        elif kind == "string_pattern_mismatch" and str(loc[-1]) == "endpoint":
            msg = f"{given!r} is not an OPC UA endpoint: use opc.tcp://host:port[/path]"
        else:
            shown = given is not None and not isinstance(given, (dict, list))
            msg = err["msg"].replace("Input should be", "must be") + (f" (got {given!r})" if shown else "")
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
