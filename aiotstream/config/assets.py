"""The plant: the site itself, its assets and groups of alike assets."""
from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from aiotstream.config.base import _Model
from aiotstream.ids import ID_PATTERN, MAX_ID  # the one id pattern (config, payloads, topic levels)


class SiteInfo(_Model):
    id: str = Field(pattern=ID_PATTERN, description="site id; prefixes the output topics")
    name: str = ""
    flow: str = "predictive-maintenance"
    flow_version: str = "1"


class AssetConfig(_Model):
    id: str = Field(pattern=ID_PATTERN)
    line: str = Field(default="line-1", pattern=ID_PATTERN,
                      description="line id (a topic level in MQTT outputs)")
    channels: list[str] = Field(default_factory=lambda: ["x", "y", "z"], min_length=1, max_length=64)
    sample_rate_hz: float = Field(default=10_000.0, gt=0, le=1_000_000)
    rpm: float = Field(default=1_800.0, gt=0, le=200_000)
    ideal_cycle_time_s: float | None = Field(default=None, gt=0,
                                             description="ideal seconds per part (OEE performance)")

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: list[str]) -> list[str]:
        return _unique(v)


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

    # What each of the group's assets (AssetConfig) requires, checked here so that a bad group fails with
    # its own path (``asset_groups[i]...``), not an asset's field path without the group in it.
    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: list[str]) -> list[str]:
        return _unique(v)

    @model_validator(mode="after")
    def _ids_fit(self) -> AssetGroup:
        last = f"{self.prefix}{self.count:0{self.width}d}"  # the longest id of the group
        if len(last) > MAX_ID:
            raise ValueError(f"the group's last id {last[:20]}...{last[-8:]} has {len(last)} characters, "
                             f"over {MAX_ID}: shorten the prefix or the width")
        return self


def _unique(channels: list[str]) -> list[str]:
    if len(set(channels)) != len(channels):
        raise ValueError(f"channel names must be unique, got {channels}")
    return channels
