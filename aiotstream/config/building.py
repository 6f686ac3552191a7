"""The building (energy-optimisation) flow: zones, meters, baseline and waste rules."""
from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aiotstream.config.base import _Model
from aiotstream.ids import ID_PATTERN  # the one id pattern (config, payloads, topic levels, file columns)

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
    adjacency: Literal["none", "chain"] = Field(default="none",
                                                description="chain: zone i neighbours i-1 and i+1")


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
    """Per-zone baseline: River online linear regression of kWh per interval, drift detector on the \
residual."""

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
    empty_hvac_fraction: float = Field(default=0.5, gt=0, le=1,
                                       description="an interval counts when HVAC is on for at least this "
                                       "fraction of it and nobody was counted in it")
    simultaneous_after_s: float = Field(default=600.0, gt=0,
                                        description="heating and cooling at once this long")
    simultaneous_fraction: float = Field(default=0.5, gt=0, le=1)
    clear_intervals: int = Field(default=2, ge=1, le=10_000,
                                 description="intervals without the pattern to clear")
    night_start_h: float = Field(default=0.0, ge=0, lt=24,
                                 description="night window (hours of the day) for the baseload")
    night_end_h: float = Field(default=5.0, gt=0, le=24)
    baseload_learn_nights: int = Field(default=7, ge=1, le=365,
                                       description="nights averaged as the reference")
    baseload_creep: float = Field(default=0.15, gt=0, le=10,
                                  description="open when the night baseload exceeds the reference by "
                                  "this fraction ...")
    baseload_nights: int = Field(default=2, ge=1, le=365, description="... on this many nights in a row")
    cooldown_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _night(self) -> WasteConfig:
        if self.night_end_h <= self.night_start_h:
            raise ValueError(f"night_end_h ({self.night_end_h}) must be after night_start_h "
                             f"({self.night_start_h})")
        return self


class BuildingConfig(_Model):
    """``[building]``: the energy-optimisation flow's zones, meters, interval, baseline and waste rules."""

    interval_s: float = Field(default=60.0, ge=1, le=86_400,
                              description="readings are aggregated per meter into intervals of this length; "
                              "models learn on intervals")
    day_s: float = Field(default=86_400.0, gt=0, le=86_400,
                         description="length of a day in event time (86400; simulations may compress it)")
    utc_offset_h: float = Field(default=0.0, ge=-14, le=14,
                                description="local time = UTC + this (hours), all year; for a zone with "
                                "daylight saving time set `timezone` instead")
    timezone: str | None = Field(default=None,
                                 description="IANA time zone of the building (e.g. 'Europe/Berlin'): local "
                                 "time of day and the night window follow its daylight saving time; "
                                 "needs day_s = 86400 and utc_offset_h = 0")
    outdoor_asset: str = Field(default="weather", pattern=ID_PATTERN,
                               description="the asset id of the outdoor temperature readings")
    outdoor_metric: str = Field(default="temperature", min_length=1)
    meters: MeterNames = Field(default_factory=MeterNames)
    zones: list[ZoneConfig] = Field(default_factory=list)
    zone_groups: list[ZoneGroup] = Field(default_factory=list)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    waste: WasteConfig = Field(default_factory=WasteConfig)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as 'Europe/Berlin'") from None
        if info.data.get("day_s", 86_400.0) != 86_400.0:
            raise ValueError("a time zone needs real 24-hour days: day_s must be 86400 (a compressed "
                             "simulation day has no daylight saving time; use utc_offset_h)")
        if info.data.get("utc_offset_h", 0.0) != 0.0:
            raise ValueError("set either timezone or utc_offset_h, not both")
        return v

    @model_validator(mode="after")
    def _shape(self) -> BuildingConfig:
        if not self.zones and not self.zone_groups:
            raise ValueError("no zones: add at least one [[building.zones]] or "
                             "[[building.zone_groups]] table")
        floors = {z.id: z.floor for z in self.all_zones()}
        for i, z in enumerate(self.zones):
            for n in z.adjacent:
                if n not in floors:
                    raise ValueError(f"zones[{i}] ({z.id}) names adjacent zone {n!r}, which is not a zone")
                if floors[n] != z.floor or n == z.id:
                    raise ValueError(f"zones[{i}] ({z.id}) names adjacent zone {n!r}: neighbours are other "
                                     "zones on the same floor")
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
