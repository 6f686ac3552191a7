"""The MQTT source's pure parts: sequence-gap counting, the broker drop counter, the outage log policy, the
plaintext warning, topic routing (paho's matcher against the MQTT rules) and the config checks."""
from __future__ import annotations

import itertools
import logging
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aiotstream.codecs import encode_frame
from aiotstream.config import SiteConfig
from aiotstream.errors import ConfigError
from aiotstream.io.mqtt import (
    RETRY_LINE_S,
    BrokerDrops,
    ConnectionLog,
    SeqTracker,
    _resume_state,
    is_loopback,
    sequence_number,
    warn_if_plaintext,
)
from aiotstream.topics import TopicRouter, TopicRule, check_filter, filter_levels

N_EXAMPLES = 1000


# ---- sequence gaps ---------------------------------------------------------------------------------------
@st.composite
def deliveries(draw: st.DrawFn, wrap: int = 0) -> tuple[list[int], list[int]]:
    """A device numbers n messages; some are lost, some delivered twice, neighbours swapped (QoS 1
    redelivery, device retries). Returns (indexes delivered in order, numbers as sent)."""
    n = draw(st.integers(1, 300))
    start = draw(st.integers(0, 10**6))
    p_lost = draw(st.sampled_from([0.0, 0.05, 0.3, 0.7]))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    lost = [rnd.random() < p_lost for _ in range(n)]
    if wrap:  # a gap of wrap / 2 or more cannot be told from a late message: keep runs of losses short
        run = 0
        for i in range(n):
            run = run + 1 if lost[i] else 0
            if run > wrap // 4:
                lost[i] = False
                run = 0
    order = [i for i in range(n) if not lost[i]]
    for _ in range(draw(st.integers(0, 20))):  # local reorders
        if len(order) > 1:
            j = rnd.randrange(len(order) - 1)
            k = min(len(order) - 1, j + rnd.randint(1, 5))
            order[j], order[k] = order[k], order[j]
    for _ in range(draw(st.integers(0, 10))):  # duplicates, a little later than the original
        if order:
            j = rnd.randrange(len(order))
            order.insert(min(len(order), j + rnd.randint(1, 8)), order[j])
    numbers = [(start + i) % wrap if wrap else start + i for i in order]
    return order, numbers


def expected_missing(order: list[int]) -> int:
    """What a tracker can know: numbers after the first delivered, up to the highest, never delivered."""
    if not order:
        return 0
    first, top, got = order[0], max(order), set(order)
    return sum(1 for i in range(first + 1, top) if i not in got)


@settings(max_examples=N_EXAMPLES, deadline=None)
@given(deliveries())
def test_gaps_are_the_numbers_never_delivered_however_the_rest_is_reordered_or_repeated(d) -> None:
    order, numbers = d
    t = SeqTracker(max_ranges=10_000)
    assert sum(t.see("dev", n) for n in numbers) == expected_missing(order)


@settings(max_examples=N_EXAMPLES, deadline=None)
@given(deliveries(wrap=256))
def test_gaps_of_a_wrapping_counter(d) -> None:
    order, numbers = d
    t = SeqTracker(max_ranges=10_000)
    assert sum(t.see("dev", n, wrap=256) for n in numbers) == expected_missing(order)


def test_keys_are_independent_and_a_counter_that_starts_again_is_no_gap() -> None:
    t = SeqTracker(window=100)
    assert [t.see("a", n) for n in (500, 501, 503)] == [0, 0, 1]
    assert [t.see("b", n) for n in (7, 9)] == [0, 1]
    assert t.see("a", 0) == 0  # far behind: the device restarted
    assert [t.see("a", n) for n in (1, 2, 5)] == [0, 0, 2]


def test_only_so_many_open_gaps_are_remembered_the_older_stay_counted() -> None:
    t = SeqTracker(max_ranges=2)
    assert sum(t.see("a", n) for n in (0, 2, 4, 6)) == 3  # gaps at 1, 3, 5; only 3 and 5 remembered
    assert t.see("a", 1) == 0  # forgotten: counted as lost, its late arrival is taken for a duplicate
    assert t.see("a", 3) == -1 and t.see("a", 5) == -1


@settings(max_examples=N_EXAMPLES, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(["frame", "seq", "n"]))
def test_sequence_numbers_are_read_from_any_bytes_without_raising(raw: bytes, where: str) -> None:
    n = sequence_number(raw, where)
    assert n is None or (isinstance(n, int) and n >= 0)


def test_sequence_numbers_from_frames_and_json() -> None:
    import numpy as np

    frame = encode_frame("pump-1", 123_456, 5, 10_000.0, np.zeros((3, 8), np.float32))
    assert sequence_number(frame, "frame") == 123_456
    assert sequence_number(b'{"seq": 5}', "frame") is None
    assert sequence_number(b'{"value": 1, "n": 42}', "n") == 42
    assert sequence_number(b'{"n": -1}', "n") is None and sequence_number(b'{"n": true}', "n") is None
    assert sequence_number(b'{"n": 4.5}', "n") is None and sequence_number(b'[1, 2]', "n") is None
    assert sequence_number(b'{"n": 9, "value": ', "n") == 9  # malformed JSON (a dead letter): not also a gap
    assert sequence_number(b'{"n": 9.5, "value": ', "n") is None


# ---- broker drops, resume state --------------------------------------------------------------------------
@settings(max_examples=N_EXAMPLES, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1000), min_size=1, max_size=8), min_size=1, max_size=5))
def test_drop_counter_growth_is_summed_across_broker_restarts(lives: list[list[int]]) -> None:
    """Each broker life counts up from 0 and the flow sees some of its values (cumulative sums of the steps).
    What the flow reports: the growth after the first value it saw, plus each later life's count (a value
    below the last one means the broker started again)."""
    seen = [[sum(steps[:i + 1]) for i in range(len(steps))] for steps in lives]
    assume(all(later[0] < earlier[-1] for earlier, later in itertools.pairwise(seen)))
    d = BrokerDrops()
    total = sum(d.update(v) for life in seen for v in life)
    assert total == (seen[0][-1] - seen[0][0]) + sum(life[-1] for life in seen[1:])


def test_resume_state_reads_old_and_new_snapshots() -> None:
    assert _resume_state(None) == (-1, None, {})
    assert _resume_state(17) == (17, None, {})  # snapshots before the drop counter and sequence numbers
    assert _resume_state({"offset": 5, "drops": 3, "seq": {"t": [4, 4]}}) == (5, 3, {"t": [4, 4]})


# ---- the outage log ----------------------------------------------------------------------------------------
@settings(max_examples=N_EXAMPLES, deadline=None)
@given(st.floats(0.0, 3600.0), st.integers(1, 10), st.integers(1, 120))
def test_an_outage_is_one_warning_a_line_per_30_s_at_most_and_one_info(down_s: float, lo: int, hi: int) -> None:
    hi = max(lo, hi)
    lines: list[tuple[float, int, str]] = []
    t = [0.0]
    c = ConnectionLog("b:1883", f"{lo}-{hi} s", lambda lvl, msg: lines.append((t[0], lvl, msg)), lambda: t[0])
    c.up(False)
    t[0] = 10.0
    c.down("Unspecified error")
    delay, at = float(lo), 10.0
    while at + delay < 10.0 + down_s:  # paho's backoff: doubling from lo, at most hi
        at += delay
        t[0] = at
        c.retry()
        delay = min(delay * 2, hi)
    t[0] = 10.0 + down_s
    c.up(True)
    during = [x for x in lines if x[0] >= 10.0]
    assert during[0][1] == logging.WARNING and " lost (" in during[0][2]
    assert during[-1][1] == logging.INFO and " back after " in during[-1][2]
    middle = [x[0] for x in during[:-1]]
    assert all(b - a >= RETRY_LINE_S for a, b in itertools.pairwise(middle))
    assert len(during) <= 2 + down_s // RETRY_LINE_S


def test_a_broker_that_is_not_there_at_start_is_one_warning_then_one_line_per_30_s() -> None:
    lines: list[str] = []
    t = [0.0]
    c = ConnectionLog("b:1883", "1-30 s", lambda lvl, msg: lines.append(msg), lambda: t[0])
    for t[0] in (0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0):
        c.retry(refused="Not authorized" if t[0] > 50 else None)
    assert lines == [
        "MQTT broker b:1883 not reachable; retrying with backoff 1-30 s",
        "MQTT broker b:1883 still not reachable after 31 s (6 failed attempt(s)); retrying with backoff 1-30 s",
        ("MQTT broker b:1883 still refuses the connection (Not authorized) after 61 s (7 failed attempt(s)); "
         "retrying with backoff 1-30 s"),
        ("MQTT broker b:1883 still refuses the connection (Not authorized) after 91 s (8 failed attempt(s)); "
         "retrying with backoff 1-30 s"),
    ]
    t[0] = 95.0
    c.up(False)
    assert lines[-1] == "MQTT connected to b:1883 (session present: False)"


# ---- plaintext -----------------------------------------------------------------------------------------------
def mqtt_input(**kw) -> object:
    data = {"site": {"id": "s"}, "assets": [{"id": "a"}],
            "inputs": {"kind": "mqtt", "mqtt": {"subscriptions": [{"filter": "a/+"}], **kw}}}
    return SiteConfig.from_dict(data).inputs.mqtt


@pytest.mark.parametrize(("host", "tls", "warns"), [
    ("broker.plant.example", None, True), ("10.1.2.3", None, True), ("fe80::1", None, True),
    ("127.0.0.1", None, False), ("127.8.9.1", None, False), ("::1", None, False), ("localhost", None, False),
    ("broker.plant.example", {"ca_file": "/etc/ca.pem"}, False), ("10.1.2.3", {}, False),
])
def test_plaintext_to_a_remote_broker_is_one_warning_naming_the_setting(host: str, tls, warns: bool,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    cfg = mqtt_input(host=host, **({} if tls is None else {"tls": tls}))
    assert warn_if_plaintext(cfg, "inputs.mqtt.tls") is warns  # type: ignore[arg-type]
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == int(warns)
    if warns:
        assert "inputs.mqtt.tls" in msgs[0] and host in msgs[0]


def test_the_source_and_the_sink_warn_once_at_start(caplog: pytest.LogCaptureFixture) -> None:
    from aiotstream.config import MqttOutput
    from aiotstream.io.mqtt import MqttSink, MqttSource

    caplog.set_level(logging.WARNING)
    MqttSource(mqtt_input(host="192.0.2.10"), "s")  # type: ignore[arg-type]
    MqttSink(MqttOutput(host="192.0.2.11"), "s")
    MqttSink(MqttOutput(host="127.0.0.1"), "s")
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and "inputs.mqtt.tls" in msgs[0] and "outputs.mqtt.tls" in msgs[1], msgs
    assert not is_loopback("192.0.2.10")


# ---- topics: paho's matcher, our rules ------------------------------------------------------------------------
def spec_match(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 section 4.7, written out: the reference the router must agree with."""
    f, t = filter_levels(topic_filter), topic.split("/")
    if t[0].startswith("$") and f[0] in ("+", "#"):
        return False
    for i, lv in enumerate(f):
        if lv == "#":
            return True
        if i >= len(t) or (lv != "+" and lv != t[i]):
            return False
    return len(t) == len(f)


LEVELS = st.sampled_from(["a", "b", "$x", "", "ab"])
FILTER_LEVELS = st.sampled_from(["a", "b", "$x", "", "+", "#"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    f = "/".join(draw(st.lists(FILTER_LEVELS, min_size=1, max_size=4)))
    if draw(st.booleans()) and not f.startswith("$"):
        f = "$share/g/" + f
    return f


@settings(max_examples=N_EXAMPLES, deadline=None)
@given(st.lists(filters(), min_size=1, max_size=5), st.lists(LEVELS, min_size=1, max_size=5))
def test_the_router_picks_the_first_filter_that_matches_by_the_mqtt_rules(flts: list[str], levels: list[str]) -> None:
    rules = [TopicRule.build(f, asset="{0}", tag=i) for i, f in enumerate(flts) if check_filter(f) is None]
    topic = "/".join(levels)
    want = next((r.tag for r in rules if spec_match(r.topic_filter, topic)), None)
    got = TopicRouter(rules).route(topic)
    assert (got[0] if got is not None else None) == want
    if got is not None:
        assert got[1] == (levels[0] or None)  # {0}: an empty level fills as "no asset"


# ---- config ------------------------------------------------------------------------------------------------
def problems(mqtt: dict) -> dict[str, str]:
    data = {"site": {"id": "s"}, "assets": [{"id": "a"}],
            "inputs": {"kind": "mqtt", "mqtt": {"subscriptions": [{"filter": "a/+"}], **mqtt}}}
    with pytest.raises(ConfigError) as e:
        SiteConfig.from_dict(data)
    return dict(e.value.problems)


def test_mqtt_loss_settings_are_checked_at_load_with_their_paths() -> None:
    p = problems({"subscriptions": [{"filter": "a/+", "format": "json", "seq": "frame"},
                                    {"filter": "b/+", "format": "frame", "seq": "seq"},
                                    {"filter": "c/+", "seq": "n", "seq_wrap": 1}],
                  "broker_drops_topic": "$SYS/#"})
    assert "needs format 'frame'" in p["inputs.mqtt.subscriptions[0]"]
    assert "not JSON" in p["inputs.mqtt.subscriptions[1]"]
    assert "seq_wrap = 1" in p["inputs.mqtt.subscriptions[2]"]
    assert "one topic" in p["inputs.mqtt.broker_drops_topic"]
    cfg = mqtt_input()
    assert cfg.receive_maximum == 65535 and cfg.session_expiry_s == 86_400  # type: ignore[attr-defined]
    assert cfg.broker_drops_topic == "$SYS/broker/publish/messages/dropped"  # type: ignore[attr-defined]


def test_bad_tls_files_and_a_missing_password_fail_at_start_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path) -> None:
    from aiotstream.errors import AiotError
    from aiotstream.io.mqtt import MqttSource

    with pytest.raises(AiotError, match=r"inputs\.mqtt\.tls"):
        MqttSource(mqtt_input(tls={"ca_file": str(tmp_path / "missing-ca.pem")}), "s")  # type: ignore[arg-type]
    monkeypatch.delenv("AIOT_TEST_MQTT_PW", raising=False)
    with pytest.raises(AiotError, match="AIOT_TEST_MQTT_PW"):
        MqttSource(mqtt_input(password_env="AIOT_TEST_MQTT_PW"), "s")  # type: ignore[arg-type]
