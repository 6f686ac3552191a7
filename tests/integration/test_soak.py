"""Bounded memory: RSS stays flat while many assets keep sending (benchmarks/soak.py, CI-sized)."""
from __future__ import annotations

import pytest

from benchmarks.soak import soak

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_rss_stays_flat_over_the_second_half() -> None:
    res = soak(assets=2000, rounds=10, tolerance=0.05, epoch_s=0.5)
    assert res["outputs"]["score"] == 2000 * 10  # every window of every asset was scored
    assert res["flat"], f"RSS grew {res['second_half_growth']:+.1%} over the second half: {res['rss_mb']}"
