"""Predictive maintenance: vibration + temperature -> windows -> features -> online model -> alerts/KPIs.

Run it with Bytewax's own runner (workers ``-w``, processes ``-i/-a``)::

    python -m bytewax.run "flows.predictive_maintenance:get_flow('flows/sites/plant-a.toml')" -w 2

or with ``aiotstream run --site flows/sites/plant-a.toml``, which does the same and
creates missing topics first. The flow itself is built by
:func:`aiotstream.dataflow.build_flow`; this module only wires the site's
Kafka input and output topics to it.
"""
from __future__ import annotations

import os

from bytewax.dataflow import Dataflow

from aiotstream.cli import tune_gc
from aiotstream.config import SiteConfig
from aiotstream.dataflow import build_flow
from aiotstream.io.kafka import KafkaOutputSink, kafka_source


def get_flow(site: str | None = None, brokers: str | None = None, once: bool = False,
             snapshots: bool = True) -> Dataflow:
    """The flow for a site config file (default: ``$AIOTSTREAM_SITE``); ``brokers`` overrides the file's.

    Pass ``snapshots=False`` when running without ``-r`` (recovery): Bytewax takes
    state snapshots every epoch either way, and nothing reads them then. In a
    cluster started with ``BYTEWAX_PROCESS_ID`` and ``BYTEWAX_ADDRESSES`` set (and
    ``BYTEWAX_WORKERS_PER_PROCESS`` if not 1), each process reads its even share
    of the Kafka partitions, co-located with its assets where the producers
    co-partition (:mod:`aiotstream.routing`).
    """
    path = site or os.environ.get("AIOTSTREAM_SITE")
    if not path:
        raise SystemExit("name a site config: get_flow('flows/sites/plant-a.toml') or set AIOTSTREAM_SITE")
    cfg = SiteConfig.load(path)
    brokers = brokers or os.environ.get("AIOTSTREAM_BROKERS")
    tail = not once
    addresses = os.environ.get("BYTEWAX_ADDRESSES")
    process = (int(os.environ.get("BYTEWAX_PROCESS_ID", "0")), len(addresses.split(";")),
               int(os.environ.get("BYTEWAX_WORKERS_PER_PROCESS", "1"))) if addresses else (0, 1)
    tune_gc()
    return build_flow(cfg, kafka_source(cfg, brokers, tail=tail, process=process), KafkaOutputSink(cfg, brokers), tail=tail,
                      snapshots=snapshots)
