"""Energy optimisation in a building: 1 Hz zone meters -> intervals -> baseline, waste alerts, setpoints, KPIs.

Run it with Bytewax's own runner (workers ``-w``, processes ``-i/-a``)::

    python -m bytewax.run "flows.energy_optimization:get_flow('flows/sites/building-1.toml')" -w 2

or with ``aiotstream run --site flows/sites/building-1.toml``, which does the same (the site's
``flow = "energy-optimization"`` picks this flow) and creates missing topics first. The flow is
built by :func:`aiotstream.dataflow.building.build_building_flow`; this module wires the site's Kafka
input and output topics to it (or its MQTT source when ``inputs.kind = "mqtt"``).
"""
from __future__ import annotations

import os

from bytewax.dataflow import Dataflow

from aiotstream.config import SiteConfig
from aiotstream.dataflow.building import build_building_flow
from aiotstream.io.kafka import KafkaOutputSink, kafka_source


def get_flow(site: str | None = None, brokers: str | None = None, once: bool = False,
             snapshots: bool = True) -> Dataflow:
    """The flow for a building's site config file (default: ``$AIOTSTREAM_SITE``)."""
    path = site or os.environ.get("AIOTSTREAM_SITE")
    if not path:
        raise SystemExit("name a site config: get_flow('flows/sites/building-1.toml') or set AIOTSTREAM_SITE")
    cfg = SiteConfig.load(path)
    brokers = brokers or os.environ.get("AIOTSTREAM_BROKERS")
    tail = not once
    if cfg.inputs.kind == "mqtt":
        from aiotstream.io.mqtt import mqtt_source

        source = mqtt_source(cfg)
    else:
        source = kafka_source(cfg, brokers, tail=tail)
    return build_building_flow(cfg, source, KafkaOutputSink(cfg, brokers), tail=tail, snapshots=snapshots)
