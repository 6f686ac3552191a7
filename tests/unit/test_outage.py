"""OutageLog: few lines however the connection flaps (hypothesis over event sequences), and library logs at
DEBUG only."""
from __future__ import annotations

import itertools
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.io.outage import LibrdkafkaLog, OutageLog, route_library_logs


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str, str]] = []
        self.now = 0.0

    def warning(self, fmt: str, *a: object) -> None:
        self.lines.append((self.now, "W", fmt % a))

    def info(self, fmt: str, *a: object) -> None:
        self.lines.append((self.now, "I", fmt % a))


events = st.lists(st.tuples(st.floats(min_value=0, max_value=20, allow_nan=False),
                            st.sampled_from(["fail", "ok"]), st.sampled_from(["", "p0", "p1"])), max_size=60)


@settings(max_examples=1000, deadline=None)
@given(events)
def test_one_warning_per_outage_spaced_retries_one_info_when_back(evs: list[tuple[float, str, str]]) -> None:
    out = Lines()
    log = OutageLog(out, "X", every_s=30.0, clock=lambda: out.now)
    down: set[str] = set()
    outages = backs = 0
    ever_up = False
    first_ok = 0
    for dt, kind, member in evs:
        out.now += dt
        if kind == "fail":
            if not down:
                outages += 1
            down.add(member)
            log.failed("refused", retry_in_s=1.0, member=member)
        else:
            if member in down:
                down.discard(member)
                if not down:
                    backs += 1
                    ever_up = True
            elif not down and not ever_up:
                ever_up = True
                first_ok += 1
            log.ok(member=member)
    lost = [line for line in out.lines if line[1] == "W" and ("connection lost" in line[2] or "cannot connect"
                                                              in line[2])]
    still = [line for line in out.lines if "still down" in line[2]]
    infos = [line for line in out.lines if line[1] == "I"]
    assert len(lost) == outages
    assert len(infos) == backs + first_ok
    assert log.is_down == bool(down)
    # while down, a line at most every every_s: each "still down" line comes 30 s or more after the one before
    warnings = [line for line in out.lines if line[1] == "W"]
    assert len(warnings) == len(lost) + len(still)
    for prev, cur in itertools.pairwise(warnings):
        if "still down" in cur[2]:
            assert cur[0] - prev[0] >= 30.0


def test_library_records_go_to_debug_with_their_traceback(caplog) -> None:  # type: ignore[no-untyped-def]
    route_library_logs("fakelib", "aiotstream.test.fakelib")
    route_library_logs("fakelib", "aiotstream.test.fakelib")  # idempotent: one handler
    assert len(logging.getLogger("fakelib").handlers) == 1
    caplog.set_level(logging.INFO)
    try:
        raise ConnectionError("Connection is closed")
    except ConnectionError:
        logging.getLogger("fakelib.session").exception("Publish iteration crashed")
    assert not caplog.records  # nothing at INFO or above, nothing from the library itself
    caplog.set_level(logging.DEBUG, logger="aiotstream.test.fakelib")
    try:
        raise ConnectionError("Connection is closed")
    except ConnectionError:
        logging.getLogger("fakelib.session").exception("Publish iteration crashed")
    (rec,) = caplog.records
    assert rec.name == "aiotstream.test.fakelib" and rec.levelno == logging.DEBUG
    assert "fakelib.session ERROR: Publish iteration crashed" in rec.getMessage() and rec.exc_info is not None


def test_librdkafka_lines_at_debug(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, logger="aiotstream.io.kafka.librdkafka")
    LibrdkafkaLog().log(3, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "Connect failed")
    (rec,) = caplog.records
    assert rec.levelno == logging.DEBUG and rec.getMessage() == "librdkafka[3] FAIL [rdkafka#consumer-1] Connect failed"
