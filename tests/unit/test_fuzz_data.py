"""Fuzz frames and JSON readings through the real decode -> analyze path; every emitted record validated.

The strategies are the fuzz benchmark's (``benchmarks/fuzz_data.py``: ``python -m benchmarks.fuzz`` runs them
at 100,000 cases per kind): valid and damaged frames and readings, extreme values (1e308, float32's max, NaN,
subnormals) and times (0, 1970, 2^63-1 and beyond, days off), injection ids, huge and nested JSON, device
payload formats, retransmits, random order. Each example is a poll batch through a fresh set of analyzers,
then the end of input. No exception may leave the dead-letter path, every message must end in a window, a
dead letter or a counted drop, and every record must validate against ``outputs.schema.json`` as written
(orjson turns NaN into null).
"""
from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, given, settings

from aiotstream.pdm.runtime import SiteRuntime
from benchmarks.fuzz_data import Batch, Harness, batches, fuzz_config


@cache
def _rt() -> SiteRuntime:
    return SiteRuntime(fuzz_config())


def _check(kind: str, batch: Batch) -> None:
    h = Harness(kind, rt=_rt())
    h.feed(batch)
    h.finish()
    assert h.escapes == 0, h.escape_examples
    assert h.lost == 0, f"{h.lost} message(s) lost"
    assert h.invalid == 0, h.invalid_examples


@settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches("frames", max_size=6))
def test_fuzzed_frames_never_escape_never_get_lost_and_every_record_validates(batch: Batch) -> None:
    _check("frames", batch)


@settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches("readings", max_size=6))
def test_fuzzed_readings_never_escape_never_get_lost_and_every_record_validates(batch: Batch) -> None:
    _check("readings", batch)
