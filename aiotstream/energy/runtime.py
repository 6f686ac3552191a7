"""What every zone of a building shares: config, lineage context, zone/floor maps, meter codes, model
block."""
from __future__ import annotations

import hashlib

import orjson

from aiotstream.config import SiteConfig
from aiotstream.decisions.runtime import DecisionRuntime
from aiotstream.energy.waste import DayClock
from aiotstream.errors import ConfigError
from aiotstream.units import S

POWER, TEMPERATURE, OCCUPANCY, HVAC = 0, 1, 2, 3
METER_KINDS = ("power", "temperature", "occupancy", "hvac")


class BuildingRuntime(DecisionRuntime):
    """Built once per worker from the config; zone states keep a reference and leave it out of snapshots.

    The decisions' share (lineage context, control specs, maintenance windows,
    dead letters) is :class:`~aiotstream.decisions.runtime.DecisionRuntime`'s,
    the same as the plant flow's.

    It has the attributes :class:`aiotstream.dataflow.rollup.RollupLogic` reads
    (``ctx``, ``assets``, ``lines``, ``config``, ``model_block``,
    ``features_block``), so the KPI roll-ups per floor and building are the
    same code as the predictive-maintenance flow's.
    """

    def __init__(self, config: SiteConfig):
        if config.building is None:
            raise ConfigError(config.site.id,
                              [("building", "the energy-optimization flow needs a [building] table")])
        super().__init__(config)
        b = self.building = config.building
        zones = b.all_zones()
        self.zones: dict[str, str] = {z.id: z.floor for z in zones}  # zone -> floor
        self.zone_ids = [z.id for z in zones]
        self.zone_index = {z: i for i, z in enumerate(self.zone_ids)}
        self.assets = self.zones
        self.lines: dict[str, set[str]] = {}
        for z, f in self.zones.items():
            self.lines.setdefault(f, set()).add(z)
        m = b.meters
        self.metric_codes = {m.power: POWER, m.temperature: TEMPERATURE, m.occupancy: OCCUPANCY, m.hvac: HVAC}
        self.metric_names = {v: k for k, v in self.metric_codes.items()}
        self.interval_ns = round(b.interval_s * S)
        self.lateness_ns = round(config.window.allowed_lateness_s * S)
        self.max_future_ns = round(config.window.max_future_s * S)
        self.clock = DayClock(b.day_s, b.utc_offset_h, b.timezone)
        bl = b.baseline
        settings = {"baseline": bl.model_dump(mode="json"), "features": "energy-interval/1",
                    "interval_s": b.interval_s}
        self.model_block = {
            "name": bl.name, "version": bl.version, "kind": "river-linear-regression", "variant": "champion",
            # an online model has no artifact: the digest pins the settings it was built with
            "sha256": hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        }
        self.features_block = None
        self.neighbours = b.neighbours()
