"""What scores lead to: alerts and their rules, maintenance windows, control with its safety envelope."""
from __future__ import annotations

import difflib
from datetime import datetime
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from aiotstream.config.base import (
    ALERT_TYPE_ANOMALY,
    ALERT_TYPE_COMMAND_FAILED,
    ALERT_TYPE_DRIFT,
    ALERT_TYPE_SCALAR,
    Severity,
    _dt_ns,
    _Model,
)
from aiotstream.config.kpi import KPI_NAMES
from aiotstream.ids import ID_PATTERN  # the one id pattern (config, payloads, topic levels, file columns)


def _check_debounce(n: int, m: int | None, name: str) -> None:
    if m is not None and m < n:
        raise ValueError(f"{name}_of ({m}) must be at least {name}_windows ({n}): N of M "
                         "windows needs N <= M")


class AlertRuleConfig(_Model):
    """A threshold alert on one window value (a feature column such as ``x.rms`` or ``temperature.max``, or \
``score``)."""

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
        crossed = self.clear_threshold >= self.open_threshold if above else \
            self.clear_threshold <= self.open_threshold
        if crossed:
            word = "below" if above else "above"
            raise ValueError(f"clear_threshold ({self.clear_threshold}) must be {word} open_threshold "
                             f"({self.open_threshold}) for hysteresis (direction {self.direction!r})")
        if self.critical_threshold is not None and (
                (self.critical_threshold < self.open_threshold) if above else
                (self.critical_threshold > self.open_threshold)):
            raise ValueError(f"critical_threshold ({self.critical_threshold}) must be at or beyond "
                             f"open_threshold ({self.open_threshold}) in the direction {self.direction!r}")
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
    clear_of: int | None = Field(default=None, ge=1, le=10_000,
                                 description="default = clear_windows (consecutive)")
    cooldown_s: float = Field(default=30.0, ge=0,
                              description="no new alert of the same type this soon after a clear")
    critical_threshold: float = Field(default=0.99, gt=0, le=1)
    escalate_after_s: float = Field(default=900.0, ge=0,
                                    description="escalate an unacknowledged alert after this; 0 = never")
    max_escalations: int = Field(default=1, ge=0, le=100)
    explain_top: int = Field(default=3, ge=0, le=50, description="features in an alert's explanation")
    history: int = Field(default=100, ge=1, le=100_000,
                         description="cleared alerts kept per asset for labels")
    maintenance_max_s: float = Field(default=604_800.0, gt=0, le=31_622_400,
                                     description="longest maintenance window (config or feedback message); a "
                                                 "longer one would silence an asset's alerts for that long")
    maintenance_max_windows: int = Field(default=256, ge=1, le=100_000,
                                         description="maintenance windows an asset keeps planned or in "
                                                     "progress; more from feedback are dead-lettered "
                                                     "(too_many_windows)")
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
        reserved = {ALERT_TYPE_ANOMALY, ALERT_TYPE_COMMAND_FAILED, ALERT_TYPE_DRIFT, ALERT_TYPE_SCALAR}
        bad = sorted({t for t in types if t in reserved or types.count(t) > 1})
        if bad:
            raise ValueError(f"alert rule type(s) {', '.join(map(repr, bad))} repeat or are reserved "
                             f"({', '.join(sorted(reserved))}): each rule needs its own type")
        return self

    def alert_types(self) -> list[str]:
        """Every alert type the flow can raise."""
        return [ALERT_TYPE_ANOMALY, *(r.type for r in self.rules), ALERT_TYPE_COMMAND_FAILED,
                ALERT_TYPE_DRIFT, ALERT_TYPE_SCALAR]


class MaintenanceConfig(_Model):
    """A planned maintenance window: alerts of the assets are suppressed while it lasts."""

    start: datetime
    end: datetime
    assets: list[str] = Field(default_factory=list,
                              description="default (with no line): every asset of the site")
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
        kinds = [k for k,
                 on in (("metric", self.metric is not None), ("alert_type", self.alert_type is not None),
                                 ("states", bool(self.states)), ("maintenance", self.maintenance)) if on]
        if len(kinds) != 1:
            raise ValueError("an interlock needs exactly one of metric, alert_type, states, maintenance (got "
                             f"{', '.join(kinds) or 'none'})")
        if self.metric is not None and self.above is None and self.below is None:
            raise ValueError("a metric interlock needs above and/or below")
        return self


class ActuatorConfig(_Model):
    """Something a command can set (any numeric setpoint), with the safety envelope every command must \
pass."""

    name: str = Field(pattern=ID_PATTERN)
    unit: str = ""
    assets: list[str] = Field(default_factory=list, description="assets that have it; default: every asset")
    initial: float | None = Field(default=None, description="value assumed before any command or reading")
    feedback_metric: str | None = Field(default=None, description="a reading that reports the actual value")
    min: float | None = None
    max: float | None = None
    max_step: float | None = Field(default=None, gt=0, description="largest change per command")
    max_rate_per_s: float | None = Field(default=None, gt=0,
                                         description="largest change per second since the previous command")
    min_interval_s: float = Field(default=0.0, ge=0, description="least time between two commands")
    interlocks: list[InterlockConfig] = Field(default_factory=list)
    on_violation: Literal["block", "clamp"] = Field(default="block",
                                                    description="clamp: limit the value to the "
                                                                "bounds/step/rate instead")
    ack_timeout_s: float = Field(default=30.0, ge=0,
                                 description="wait this long for a device ack; 0 = no acks")
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
            raise ValueError("a condition needs exactly one of alert_type, signal, kpi (got "
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
