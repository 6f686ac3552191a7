"""The scalar workload: JSON readings (one value each) at thousands of keys through a scalar flow.

``--scalar-flow`` picks the flow:

* ``building``: the energy-optimisation flow (:mod:`benchmarks.building`): the keys are meters
  (keys / 4 zones x power, temperature, occupancy, HVAC state) at 1 Hz, as many readings as the
  generic workload of the same size; 60 s intervals, the production settings otherwise.

* ``pm-readings``: the predictive-maintenance flow fed readings only. It exercises what a
  scalar flow shares with it: JSON decode and validation once per poll batch (``flat_map_batch``)
  and the keyed per-asset stateful step (event-time windows, watermark, KPI periods). Windows
  without frames get no window score; every asset's readings go through the streaming detector
  (``[scalar]``, issue 17): scalar records and KPI records. ``pm-readings-nodetect`` is the same with the
  detector off.

A new flow plugs in as another :class:`ScalarFlow`: a site config factory for the same
``aiotstream run --once`` path, and optionally its own preload (its own kind of readings).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import with_settings
from benchmarks.scaling import run_flow
from benchmarks.workload import ScalarData, create_topics, output_topics, write_site


@dataclass(frozen=True)
class ScalarFlow:
    name: str
    label: str
    site: Callable[[str, ScalarData], dict[str, Any]]
    preload: Callable[..., ScalarData] | None = None  # None: benchmarks.workload.preload_scalars


def _building_site(site_id: str, data: ScalarData) -> dict[str, Any]:
    from benchmarks.building import building_site

    return building_site(site_id, max(1, data.keys // 4), data.topic)


def _preload_building(*a: Any, **kw: Any) -> ScalarData:
    from benchmarks.building import preload_building

    return preload_building(*a, **kw)


POLL_BATCH = 10_000
"""``inputs.poll_batch`` of the pm-readings sites, as :mod:`benchmarks.building` reads its meters: a catch-up
read (this benchmark drains a preloaded topic) takes up to this many messages per partition at a time. With
2,000 keys over 6 partitions, the default 1,000 gives each asset about 3 readings per poll batch, and the
per-asset step's fixed cost per batch is then most of the run (benchmarks/RESULTS.md, issue 21: blocks)."""


def _pm_readings_site(site_id: str, data: ScalarData) -> dict[str, Any]:
    # readings_only: the assets send no frames. Without it, a bounded replay (tail false) waits for a frames
    # stream until the input ends (aiotstream.windows): every window stayed open to the end, held in memory
    # (7.1 GB for 3 M readings), and the end-of-input flush was most of the run.
    return {"site": {"id": site_id, "name": "benchmark scalar (pm flow, readings only)"},
            "asset_groups": [{"prefix": "s-", "count": data.keys, "width": 6, "channels": ["v"]}],
            "inputs": {"topics": [data.topic], "tail": False, "poll_batch": POLL_BATCH},
            "scalar": {"readings_only": True}}


def _pm_readings_off_site(site_id: str, data: ScalarData) -> dict[str, Any]:
    site = _pm_readings_site(site_id, data)
    return {**site, "scalar": {**site["scalar"], "enabled": False}}


SCALAR_FLOWS: dict[str, ScalarFlow] = {
    "pm-readings": ScalarFlow(
        "pm-readings",
        "predictive-maintenance flow with readings-only input (JSON decode per poll batch + keyed "
        "per-asset windows and KPIs)",
        _pm_readings_site),
    "pm-readings-nodetect": ScalarFlow(
        "pm-readings-nodetect",
        "pm-readings with the streaming detector off ([scalar] enabled = false): what the detector costs",
        _pm_readings_off_site),
    "building": ScalarFlow(
        "building",
        "energy-optimisation flow: 1 Hz zone meters (power, temperature, occupancy, HVAC) decoded and reduced "
        "to per-zone interval partials per poll batch, per-zone intervals, River baseline, waste rules, KPIs",
        _building_site, _preload_building),
}


def measure_scalar(brokers: str, tmp: Path, data: ScalarData, flow: str = "pm-readings",
                   partitions: int = 3, tag: str = "", poll_batch: int | None = None,
                   settings: list[str] | None = None) -> dict[str, Any]:
    """One measured run of ``flow`` over the preloaded readings; ``tag`` makes its site (and output topics)
    its own, so that a repeated run starts afresh; ``poll_batch`` (None: the flow's site's) sets the site's
    ``inputs.poll_batch``; ``settings``: more site settings as ``path=JSON``
    (:func:`benchmarks.common.with_settings`)."""
    sf = SCALAR_FLOWS[flow]
    site_id = f"bench-scalar-{flow}{tag}"
    cfg = sf.site(site_id, data)
    if poll_batch is not None:
        cfg = {**cfg, "inputs": {**cfg["inputs"], "poll_batch": poll_batch}}
    if settings:
        cfg = with_settings(cfg, settings)
    site = write_site(tmp, cfg)
    create_topics(brokers, output_topics(site_id), partitions)
    run = run_flow(brokers, site, 1, tmp=tmp)
    if run["messages"] != data.events:
        raise RuntimeError(f"{site_id}: the flow read {run['messages']} readings, {data.events} were produced")
    eps = run["messages"] / run["span_s"]
    return {"flow": flow, "label": sf.label, **run, "events_per_s": round(eps),
            "events_per_s_per_worker": round(eps / (run["processes"] * run["workers_per_process"])),
            "cpu_us_per_event": round(run["cpu_s"] / run["messages"] * 1e6, 2)}
