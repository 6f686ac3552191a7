"""Statistics of a repeated, interleaved benchmark (``aiotstream bench e2e --repeat N``, issue 21).

Every contender of a section runs once per round, the rounds one after the other (A B A B ...), so that
drift on a shared machine hits both sides of a comparison. A figure is then reported by the median of its
runs, with min, max and ``spread = (max - min) / median``; a figure whose spread exceeds
:data:`SPREAD_LIMIT` is flagged ``noisy`` (not to be quoted). A ratio goal (ours / a peer) is judged on
the median of the per-round ratios (each interleaved pair's ratio, then the median of those), not on the
ratio of the medians.
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

SPREAD_LIMIT = 0.20  # (max - min) / median above this: the figure is not to be quoted


def spread(values: Sequence[float]) -> float | None:
    """``(max - min) / median`` of ``values``; None for fewer than 2 values or a median of 0."""
    if len(values) < 2:
        return None
    med = statistics.median(values)
    return None if med == 0 else (max(values) - min(values)) / abs(med)


def figure(values: Sequence[float | None], digits: int | None = None) -> dict[str, Any]:
    """Median, min, max and spread of one figure's runs (None: a failed run, left out). ``noisy`` is
    True when the spread exceeds :data:`SPREAD_LIMIT`, None when it cannot be told (fewer than 2 runs).
    ``digits``: significant digits of median, min and max (default: as the runs were recorded)."""
    runs = [v for v in values if v is not None]
    if not runs:
        return {"runs": list(values), "n": 0, "median": None, "min": None, "max": None, "spread": None,
                "noisy": None}
    s = spread(runs)
    g = (lambda x: x) if digits is None else (lambda x: float(f"{x:.{digits}g}"))
    return {"runs": list(values), "n": len(runs), "median": g(statistics.median(runs)), "min": g(min(runs)),
            "max": g(max(runs)), "spread": None if s is None else round(s, 4),
            "noisy": None if s is None else s > SPREAD_LIMIT}


def pairwise_ratios(ours: Sequence[float | None], peer: Sequence[float | None]) -> list[float | None]:
    """The ratio of each round's pair, ``ours[i] / peer[i]`` (None where either run is missing or 0)."""
    return [a / b if a and b else None for a, b in zip(ours, peer, strict=True)]


def ratio(ours: Sequence[float | None], peer: Sequence[float | None]) -> dict[str, Any]:
    """A ratio goal's figure: median, min, max and spread of the per-round ratios ours / peer (3 significant
    digits, as the single-run report always gave its ratios; the runs keep theirs)."""
    return figure(pairwise_ratios(ours, peer), digits=3)


def median_index(values: Sequence[float | None]) -> int | None:
    """Index of the run whose value is the (lower) median of the runs that have one: the run whose whole
    record stands for the contender in the report."""
    present = sorted((v, i) for i, v in enumerate(values) if v is not None)
    return present[(len(present) - 1) // 2][1] if present else None

