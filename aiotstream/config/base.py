"""Shared parts of the site model: the strict base model, number bounds, severities and time helpers."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationInfo,
    field_validator,
)

from aiotstream.units import S

MAX_REAL = 1e12
"""The largest magnitude of any number in a config (thresholds, bounds, setpoints) unless its field says."""
MAX_INT = 2**53
"""The largest magnitude of an integer (exact as a JSON number) unless its field says."""
MAX_DURATION_S = 31_622_400.0
"""The longest duration (366 days), in seconds, of any ``*_s`` field (``*_ms``: in ms) unless its field
says."""
MIN_DURATION_S = 1e-6
"""The shortest duration that is not 0 (1 us): shorter ones round to no time at all in ns, or divide into
numbers that overflow."""
MAX_WINDOWS_PER_INPUT = 1000
"""Sliding windows: ``length_s / hop_s`` at most, the windows one input belongs to."""


def _numbers(v: Any) -> Any:
    """The ints and floats in a field's value (inside lists and tuples too; nested models check
    themselves)."""
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

    >>> from aiotstream.config import default_site
    >>> from aiotstream.errors import ConfigError
    >>> try:
    ...     default_site(1, control={"actuators": [{"name": "valve", "max": float("nan"),
    ...                                                 "ack_timeout_s": 1e308}]})
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
                raise ValueError(f"a duration must be 0 or at least 1 us (got {x!r} "
                                 f"{'ms' if unit > 1 else 's'})")
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt_ns(dt: datetime) -> int:
    """An aware datetime as integer ns since the epoch (exact to the microsecond).

    >>> _dt_ns(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    1000005000
    """
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * S + delta.microseconds * 1_000


SEVERITIES = ("info", "warning", "critical")
Severity = Literal["info", "warning", "critical"]
ALERT_TYPE_ANOMALY = "anomaly"
ALERT_TYPE_COMMAND_FAILED = "command_failed"
ALERT_TYPE_DRIFT = "drift"
ALERT_TYPE_SCALAR = "scalar_anomaly"  # the streaming detector of an asset's scalar readings (issue 17)
