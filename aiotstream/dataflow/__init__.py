"""The dataflows: the only package (with :mod:`aiotstream.io`) that imports Bytewax.

It wires the pure parts into Bytewax operators: :func:`build_flow` for the plant
(:mod:`aiotstream.pdm`) and :func:`build_building_flow` for a building
(:mod:`aiotstream.energy`), which share the roll-ups and sinks
(:mod:`aiotstream.dataflow.rollup`); :mod:`aiotstream.dataflow.run` runs one.
"""
from __future__ import annotations

from aiotstream.dataflow.building import build_building_flow
from aiotstream.dataflow.plant import build_flow

__all__ = ["build_building_flow", "build_flow"]
