"""The console's actions are the flow's own feedback/control messages: each round-trips through the flow's
decoders (codecs/feedback.py for ack/clear/approve/reject, pdm/rollout.py's Promote for promotions), and an
action the flow could not apply is refused with a message for the page."""
from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.codecs import decode_feedback
from aiotstream.console.actions import (
    ActionError,
    alert_action,
    command_action,
    label_action,
    promote_action,
    rollback_action,
)
from aiotstream.console.state import ConsoleState
from aiotstream.pdm.rollout import Promote, promote_problem
from aiotstream.records import Position

S = 1_000_000_000
T0 = 1_767_225_600_000_000_000
FB = "site.feedback"
AID = "ab" * 16
CID = "cd" * 16


def decode(action) -> object:
    return decode_feedback(action.payload, Position(action.topic, 0, 0))


@pytest.fixture
def state() -> ConsoleState:
    s = ConsoleState()
    s.fold("alert", {"alert_id": AID, "event": "opened", "status": "open", "asset": "press-1", "at_ns": T0,
                     "alert_type": "anomaly", "severity": "critical"})
    s.fold("command", {"command_id": CID, "status": "awaiting_approval", "asset": "press-1", "at_ns": T0,
                       "actuator": "speed", "value": 1200.0, "expires_at_ns": T0 + 600 * S})
    s.fold("score", {"asset": "press-1", "score": 0.1, "window": {"end_ns": T0 + 4 * S}, "model": None})
    return s


@pytest.mark.parametrize("kind", ["ack", "clear"])
def test_ack_and_clear_are_feedback_the_flow_decodes(state: ConsoleState, kind: str) -> None:
    a = alert_action(state, FB, kind, AID, " ana ", "  sensor stuck  ")
    fb = decode(a)
    assert (fb.type, fb.asset, fb.alert_id, fb.alert_type, fb.by, fb.note) == (
        kind, "press-1", AID, None, "ana", "sensor stuck")
    # on the asset's clock (its newest window end the console saw), so the flow applies it at once
    assert fb.ts_ns == T0 + 4 * S
    assert (a.topic, a.key) == (FB, b"press-1")
    assert orjson.loads(a.payload)["schema"] == "aiotstream.feedback/1"


def test_a_comment_is_optional_and_left_out_when_empty(state: ConsoleState) -> None:
    a = alert_action(state, FB, "ack", AID, "ana", "   ")
    assert "note" not in orjson.loads(a.payload) and decode(a).note == ""


def test_actions_on_unknown_or_closed_alerts_are_refused_with_a_reason(state: ConsoleState) -> None:
    with pytest.raises(ActionError, match="unknown alert id 'nope'"):
        alert_action(state, FB, "ack", "nope", "ana")
    state.fold("alert", {"alert_id": AID, "event": "acknowledged", "status": "acknowledged", "asset": "press-1",
                         "at_ns": T0 + S, "acknowledged_by": "bo", "acknowledged_at_ns": T0 + S})
    with pytest.raises(ActionError, match="already acknowledged \\(by bo at 2026-01-01T00:00:01"):
        alert_action(state, FB, "ack", AID, "ana")
    assert decode(alert_action(state, FB, "clear", AID, "ana")).type == "clear"  # an acknowledged one clears
    state.fold("alert", {"alert_id": AID, "event": "cleared", "status": "cleared", "asset": "press-1",
                         "at_ns": T0 + 2 * S, "cleared_by": "cy", "cleared_at": "2026-01-01T00:00:02.000000Z"})
    for kind in ("ack", "clear"):
        with pytest.raises(ActionError, match="already cleared \\(by cy at 2026-01-01T00:00:02"):
            alert_action(state, FB, kind, AID, "ana")
    with pytest.raises(ActionError, match="unknown alert action"):
        alert_action(state, FB, "label", AID, "ana")


@pytest.mark.parametrize("by", [None, "", "   ", "x" * 257])
def test_every_action_names_its_operator(state: ConsoleState, by: str | None) -> None:
    with pytest.raises(ActionError, match="operator"):
        alert_action(state, FB, "ack", AID, by)
    with pytest.raises(ActionError, match="operator"):
        command_action(state, FB, "approve", CID, by)
    with pytest.raises(ActionError, match="operator"):
        promote_action("site.control", "m@1", "champion", by)


def test_a_comment_longer_than_the_flow_takes_is_refused(state: ConsoleState) -> None:
    with pytest.raises(ActionError, match="longer than 4096"):
        alert_action(state, FB, "ack", AID, "ana", "x" * 4097)


@pytest.mark.parametrize("kind", ["approve", "reject"])
def test_approve_and_reject_are_feedback_the_flow_decodes(state: ConsoleState, kind: str) -> None:
    fb = decode(command_action(state, FB, kind, CID, "ana", "ok by shift lead"))
    assert (fb.type, fb.asset, fb.command_id, fb.by, fb.note, fb.ts_ns) == (
        kind, "press-1", CID, "ana", "ok by shift lead", T0 + 4 * S)


def test_commands_not_awaiting_approval_are_refused(state: ConsoleState) -> None:
    with pytest.raises(ActionError, match="unknown command id"):
        command_action(state, FB, "approve", "ef" * 16, "ana")
    state.fold("command", {"command_id": CID, "status": "emitted", "asset": "press-1", "at_ns": T0 + S,
                           "actuator": "speed"})
    with pytest.raises(ActionError, match="is emitted, not awaiting approval"):
        command_action(state, FB, "reject", CID, "ana")


def test_an_expired_command_is_refused_before_it_is_sent() -> None:
    s = ConsoleState()
    s.fold("command", {"command_id": CID, "status": "awaiting_approval", "asset": "p", "at_ns": T0,
                       "expires_at_ns": T0 + 5 * S})
    s.fold("score", {"asset": "p", "score": 0.1, "window": {"end_ns": T0 + 6 * S}, "model": None})
    with pytest.raises(ActionError, match="expired at 2026-01-01T00:00:05"):
        command_action(s, FB, "approve", CID, "ana")


def test_without_any_event_of_the_asset_the_time_is_the_wall_clock() -> None:
    s = ConsoleState()
    s.alerts[AID] = {"alert_id": AID, "status": "open", "asset": "p", "at_ns": 5, "alert_type": "t"}
    before = time.time_ns()
    fb = decode(alert_action(s, FB, "ack", AID, "ana"))
    assert before <= fb.ts_ns <= time.time_ns()


@pytest.mark.parametrize(("ref", "variant", "fraction", "want"), [
    ("pm@2.0.0", "champion", 0, {"model": "pm", "version": "2.0.0", "variant": "champion"}),
    ("1.1.0", "shadow", 0, {"version": "1.1.0", "variant": "shadow"}),
    ("pm@1.1.0", "canary", "0.25", {"model": "pm", "version": "1.1.0", "variant": "canary", "fraction": 0.25}),
])
def test_a_promotion_is_a_control_message_the_flow_validates(ref: str, variant: str, fraction: object,
                                                             want: dict) -> None:
    a = promote_action("site.control", ref, variant, "ana", "after the gate", fraction)
    msg = orjson.loads(a.payload)
    assert promote_problem(msg) is None
    p = Promote.model_validate(msg)
    assert {k: getattr(p, k) for k in want} == want and (p.by, p.note, p.type) == ("ana", "after the gate",
                                                                                   "promote")
    assert a.topic == "site.control"


@pytest.mark.parametrize(("ref", "variant", "fraction", "said"), [
    ("", "champion", 0, "choose a model version"),
    ("pm@bad version", "champion", 0, "would refuse this promotion: version"),
    ("pm@1", "gold", 0, "would refuse this promotion: variant"),
    ("pm@1", "canary", "1.5", "would refuse this promotion: fraction"),
    ("pm@1", "canary", "lots", "fraction must be a number"),
])
def test_a_promotion_the_flow_would_refuse_is_not_sent(ref: str, variant: str, fraction: object, said: str) -> None:
    with pytest.raises(ActionError, match=said):
        promote_action("site.control", ref, variant, "ana", "", fraction)


def test_sites_without_onnx_models_have_nothing_to_promote() -> None:
    with pytest.raises(ActionError, match="no ONNX models"):
        promote_action(None, "pm@1", "champion", "ana")


def test_rollback_promotes_the_previous_champion() -> None:
    s = ConsoleState()
    with pytest.raises(ActionError, match="no earlier champion"):
        rollback_action(s, "site.control", "ana")
    for ref in ("pm@1.0.0", "pm@2.0.0"):
        s.fold("model", {"event": "promoted", "variant": "champion", "ref": ref})
    p = Promote.model_validate(orjson.loads(rollback_action(s, "site.control", "ana", "2.0.0 misfires").payload))
    assert (p.model, p.version, p.variant, p.by, p.note) == ("pm", "1.0.0", "champion", "ana", "2.0.0 misfires")


def test_rollback_after_the_first_promotion_goes_back_to_the_configs_champion() -> None:
    s = ConsoleState()
    with pytest.raises(ActionError, match="no earlier champion"):
        rollback_action(s, "site.control", "ana", initial="pm@1.0.0")
    s.fold("model", {"event": "promoted", "variant": "champion", "ref": "pm@1.0.0-ae"})
    p = Promote.model_validate(orjson.loads(rollback_action(s, "site.control", "ana", initial="pm@1.0.0").payload))
    assert (p.model, p.version, p.variant) == ("pm", "1.0.0", "champion")
    with pytest.raises(ActionError, match="no ONNX models"):
        rollback_action(s, None, "ana", initial="pm@1.0.0")


@settings(max_examples=300, deadline=None)
@given(by=st.text(max_size=300), note=st.text(max_size=50), kind=st.sampled_from(["ack", "clear"]))
def test_whatever_the_operator_types_the_flow_decodes_what_is_sent(by: str, note: str, kind: str) -> None:
    s = ConsoleState()
    s.fold("alert", {"alert_id": AID, "event": "opened", "status": "open", "asset": "press-1", "at_ns": T0})
    try:
        a = alert_action(s, FB, kind, AID, by, note)
    except ActionError:
        assert not by.strip() or len(by.strip()) > 256
        return
    fb = decode(a)
    assert (fb.by, fb.note, fb.alert_id) == (by.strip(), note.strip(), AID)


def test_a_label_is_feedback_the_flow_decodes_once_per_alert(state: ConsoleState) -> None:
    fb = decode(label_action(state, FB, AID, "true_fault", "ana", "bearing worn", " bearing "))
    assert (fb.type, fb.asset, fb.alert_id, fb.label, fb.fault_type, fb.by, fb.note) == (
        "label", "press-1", AID, "true_fault", "bearing", "ana", "bearing worn")
    assert decode(label_action(state, FB, AID, "false_alarm", "ana")).fault_type is None
    with pytest.raises(ActionError, match="a label is one of true_fault, false_alarm"):
        label_action(state, FB, AID, "maybe", "ana")
    with pytest.raises(ActionError, match="unknown alert id"):
        label_action(state, FB, "nope", "true_fault", "ana")
    state.fold("alert", {"alert_id": AID, "event": "labelled", "status": "cleared", "asset": "press-1",
                         "at_ns": T0 + S, "label": {"label": "false_alarm", "by": "bo", "fault_type": None}})
    with pytest.raises(ActionError, match="already labelled false_alarm by bo: a label is given once"):
        label_action(state, FB, AID, "true_fault", "ana")


def test_a_site_whose_flow_reads_no_kafka_gets_a_read_only_console() -> None:
    """A flow reading MQTT never sees the Kafka feedback topic: the console must not pretend an action
    reached it."""
    from aiotstream.config import SiteConfig
    from aiotstream.console.app import _need
    from aiotstream.console.feed import Feed

    root = Path(__file__).resolve().parents[2]
    data = SiteConfig.load(root / "flows" / "sites" / "plant-a.toml").model_dump(mode="json")
    data["inputs"] = {"kind": "mqtt", "mqtt": {"host": "127.0.0.1", "subscriptions": [
        {"filter": "plant/+/+", "format": "json", "asset": "{1}", "metric": "{2}"}]}}
    mqtt = Feed(SiteConfig.from_dict(data), "127.0.0.1:1", ConsoleState())
    assert mqtt.feedback_topic is None and mqtt.control_topic is None
    assert "reads its inputs from mqtt" in (mqtt.unreachable or "")
    with pytest.raises(ActionError, match="reads its inputs from mqtt"):
        _need("plant-a.feedback", "feedback", mqtt)
    kafka = Feed(SiteConfig.load(root / "flows" / "sites" / "plant-a.toml"), "127.0.0.1:1", ConsoleState())
    assert kafka.unreachable is None and kafka.feedback_topic == "plant-a.feedback"
    assert _need(kafka.feedback_topic, "feedback", kafka) == "plant-a.feedback"
