"""State snapshots: pickled per-key state, readable across the moves of issue 16.

Bytewax keeps each key's state as the bytes the flow's logic returns (a pickle of
the asset analyzer, zone, floor or roll-up book). A pickle names every class by
its module, so a snapshot written before the package was reorganised names
``aiotstream.analysis.AssetAnalyzer``, ``aiotstream.alerts.MaintenanceSchedule``
and so on. :func:`loads` reads both: a class is looked up where it lives now,
else in the module it moved to.
"""
from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

MOVED: dict[str, tuple[str, ...]] = {
    "aiotstream.analysis": ("aiotstream.pdm.asset", "aiotstream.pdm.runtime", "aiotstream.records"),
    "aiotstream.ingest": ("aiotstream.pdm.ingest", "aiotstream.pdm.rollout"),
    "aiotstream.alerts": ("aiotstream.decisions.alerts", "aiotstream.decisions.maintenance",
                          "aiotstream.records"),
    "aiotstream.control": ("aiotstream.decisions.control",),
    "aiotstream.energy.flow": ("aiotstream.dataflow.building",),
    "aiotstream.dataflow": ("aiotstream.dataflow.plant", "aiotstream.dataflow.rollup"),
    "aiotstream.io.kafka_blocks": ("aiotstream.records",),
    "aiotstream.models.online": ("aiotstream.models.detector",),
    "aiotstream.kpi": ("aiotstream.kpi", "aiotstream.kpi.tracker", "aiotstream.kpi.rollup"),
}
"""Module before issue 16 -> the modules its classes and functions are in now."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        for new in MOVED.get(module, ()):  # a module that moved: where its names are now, first
            found = getattr(importlib.import_module(new), name, None)
            if found is not None:
                return found
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """``pickle.loads`` that also reads snapshots written before the package's modules moved."""
    return _Unpickler(io.BytesIO(data)).load()
