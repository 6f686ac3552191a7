"""Time units: every timestamp in aiotstream is an integer count of nanoseconds since the Unix epoch.

>>> round(1.5 * S)
1500000000
"""
from __future__ import annotations

S = 1_000_000_000
"""Nanoseconds per second: ``round(seconds * S)`` is a duration in ns, ``t_ns / S`` one in seconds."""
