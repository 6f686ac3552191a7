"""aiotstream: stream processing for industrial AIoT.

Windows high-rate sensor streams by event time, computes features with Cython
kernels, scores windows with online models and emits alerts, KPIs and dead
letters, each carrying lineage.
"""
from __future__ import annotations

__version__ = "0.1.0"
