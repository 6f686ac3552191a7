"""KPI periods, shifts and the readings KPIs are computed from."""
from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aiotstream.config.base import _Model
from aiotstream.ids import ID_PATTERN  # the one id pattern (config, payloads, topic levels, file columns)

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# The derived KPIs a control rule can name (aiotstream.kpi computes them; a unit test keeps the two in step).
KPI_NAMES = ("availability", "performance", "quality", "oee", "mttr_s", "mtbf_s", "mtta_s",
             "false_alarm_rate",
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
    period_s: float | None = Field(default=None, ge=1, le=604_800,
                                   description="shorthand for periods_s = [x]")
    periods_s: list[float] = Field(default_factory=lambda: [10.0], min_length=1, max_length=8,
                                   description="event-time tumbling KPI periods, seconds")
    shifts: list[ShiftConfig] = Field(default_factory=list, max_length=24)
    timezone: str = Field(default="UTC", description="IANA zone of the shift times")
    state_metric: str = "state"
    parts_total_metric: str = "parts_total"
    parts_good_metric: str = "parts_good"
    power_metric: str = "power_kw"
    baseline_power_metric: str = "baseline_power_kw"
    energy_max_gap_s: float = Field(default=300.0, gt=0,
                                    description="power samples further apart are not integrated")
    max_gap_s: float = Field(
        default=3_600.0, gt=0, le=604_800,
        description="a stretch of event time without any input of the asset longer than this is not "
                    "accounted as observed time (it counts in 'unobserved_s'), so no KPI "
                    "period is made for it")
    failures: Literal["alerts", "state", "both"] = Field(
        default="both", description="what counts as a failure for MTTR/MTBF: open fault alerts, state "
                                    "down, or either")
    failure_alert_types: list[str] = Field(default_factory=list,
                                           description="alert types that are failures; default: "
                                                       "anomaly, scalar_anomaly + rules")
    rollup: bool = Field(default=True, description="also emit per-line and per-site KPI records")
    rollup_wait_s: float = Field(default=60.0, gt=0,
                                 description="tailing: emit an incomplete roll-up after this much "
                                             "wall-clock time")

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
            raise ValueError(f"unknown time zone {v!r}: use an IANA name such as 'UTC' or "
                             "'Europe/Berlin'") from None
        return v

    @field_validator("max_gap_s")
    @classmethod
    def _gap_periods(cls, v: float, info: ValidationInfo) -> float:
        periods = info.data.get("periods_s")
        shortest = min(periods) if periods else None
        if shortest and v / shortest > 100_000:
            raise ValueError(f"{v:g} s spans {v / shortest:,.0f} periods of {shortest:g} s; at most 100,000: "
                             "lower max_gap_s or lengthen the shortest period")
        return v

    @model_validator(mode="after")
    def _shift_names(self) -> KpiConfig:
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError(f"shift names must be unique, got {names}")
        return self
