"""The PII policy, erasure requests and their decoder, and the governance step's snapshot (issue 19 item 3).
Pure logic: no broker (the flow and broker tests are tests/integration/test_governance_*.py)."""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiotstream.codecs.feedback import EraseRequest, decode_erase
from aiotstream.config import default_site
from aiotstream.dataflow.governance import GovernanceLogic
from aiotstream.errors import ConfigError, DecodeError
from aiotstream.governance import ERASED, Erasure, Policy, read_key
from aiotstream.records import Output

KEY = b"k" * 32


@pytest.fixture(autouse=True)
def _no_erasures() -> Iterator[None]:
    ERASED.clear()
    yield
    ERASED.clear()


def test_pseudonyms_are_stable_for_a_key_and_differ_between_keys() -> None:
    a, b = Policy("pseudonymise", KEY), Policy("pseudonymise", KEY)
    assert a.pseudonym("ana") == b.pseudonym("ana") != a.pseudonym("bo")
    assert Policy("pseudonymise", b"j" * 32).pseudonym("ana") != a.pseudonym("ana")
    assert len(a.pseudonym("ana")) == 35 and "ana" not in a.pseudonym("ana")[3:]


def test_every_person_field_of_every_kind_is_covered() -> None:
    pol = Policy("drop")
    alert = {"by": "a", "acknowledged_by": "a", "cleared_by": "operator:a", "label": {"by": "a"}, "score": 1}
    assert pol.apply_record("alert", alert) == {"by": None, "acknowledged_by": None, "cleared_by": "operator",
                                                "label": {"by": None}, "score": 1}
    assert pol.apply_record("command", {"approved_by": "a", "by": "a"}) == {"approved_by": None, "by": None}
    model = {"by": "a", "source": {"type": "promote", "by": "a", "note": "because"}}
    assert pol.apply_record("model", model) == {"by": None, "source": {"type": "promote", "by": None,
                                                                         "note": None}}
    score = {"by": "never a person here", "score": 1.0}
    assert pol.apply_record("score", score) is score  # scores and KPIs are passed through untouched


def test_a_dead_letters_payload_is_redacted_when_it_names_a_person() -> None:
    raw = orjson.dumps({"schema": "aiotstream.feedback/1", "type": "ack", "by": "ana", "note": "hi"})
    dl = {"reason": "bad_feedback", "payload_b64": base64.b64encode(raw).decode()}
    got = Policy("pseudonymise", KEY).apply_record("deadletter", dl)
    body = orjson.loads(base64.b64decode(got["payload_b64"]))
    assert body["by"] == Policy("x", KEY).pseudonym("ana") and body["note"] is None
    assert got["payload_redacted"] is True
    binary = {"reason": "bad_frame", "payload_b64": base64.b64encode(b"AIOW\x01").decode()}
    assert Policy("drop").apply_record("deadletter", binary) is binary


def test_keep_changes_nothing_until_an_erasure_and_then_only_that_person() -> None:
    pol = Policy("keep", KEY, erasure=True)
    out = Output("alert", "a1", {"by": "ana", "acknowledged_by": "bo"})
    assert pol.apply(out) is out
    ERASED.add(["ana"])
    got = pol.apply(out).record
    assert got == {"by": pol.pseudonym("ana"), "acknowledged_by": "bo"}
    assert Policy("keep", None, erasure=True).apply(out).record["by"] is None  # no key: dropped


def test_the_governance_step_keeps_erasures_in_its_snapshot_and_restores_them() -> None:
    logic = GovernanceLogic(Policy("keep", KEY, erasure=True), None)
    logic.on_batch([[Erasure("ana", "dpo", 5, "s.control:0:7")], [Erasure("bo", "dpo", 6, "s.control:0:8")]])
    assert "ana" in ERASED and "bo" in ERASED
    snap = logic.snapshot()
    assert snap == frozenset({"ana", "bo"})
    ERASED.clear()  # a new process, resumed from the recovery snapshot
    GovernanceLogic(Policy("keep", KEY, erasure=True), snap)
    assert "ana" in ERASED and "bo" in ERASED


def test_the_key_comes_from_a_file_that_must_hold_one(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"abc\n")
    with pytest.raises(ConfigError) as ei:
        read_key(str(short))
    assert ei.value.problems[0][0] == "governance.pseudonym_key_file"
    with pytest.raises(ConfigError, match="cannot read"):
        Policy.from_config(default_site(1, governance={"pii": "pseudonymise",
                                                        "pseudonym_key_file": str(tmp_path / "none")}))


@pytest.mark.parametrize(("body", "fragment"), [
    ({"type": "erase"}, "lacks field 'subject'"),
    ({"type": "erase", "subject": "a", "who": "x"}, "unknown field 'who'"),
    ({"type": "erase", "subject": 7}, "field 'subject' must be a string"),
    ({"type": "erase", "subject": "a", "ts": -1}, "field 'ts' must be integer ns"),
    ({"type": "erase", "subject": "a", "by": ""}, "field 'by' must be a string"),
    ({"type": "promote", "subject": "a"}, "an erasure request is"),
])
def test_bad_erasure_requests_name_the_field(body: dict, fragment: str) -> None:
    with pytest.raises(DecodeError) as ei:
        decode_erase(orjson.dumps(body))
    assert ei.value.reason == "bad_control" and fragment in str(ei.value)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
                     | st.text(max_size=300), lambda c: st.lists(c, max_size=4)
                     | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=12)
_FIELD = st.sampled_from(["type", "subject", "by", "ts", "note", "id", "x", ""])
_REQUEST = st.dictionaries(_FIELD, _JSON | st.just("erase"), max_size=7).map(lambda d: {"type": "erase", **d}
                                                                             if len(d) % 2 else d)
def _dumps(obj: object) -> bytes:
    """As a client may write it: the standard library's JSON (big integers, Infinity and all)."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.one_of(_REQUEST.map(_dumps), st.binary(max_size=200),
                 _REQUEST.map(lambda d: _dumps(d)[: max(1, len(_dumps(d)) // 2)])))
def test_fuzz_erasure_decoding_never_escapes(raw: bytes) -> None:
    """1,000 cases: every input is an erasure request that satisfies the model or a DecodeError; no other
    exception escapes, and nothing valid is refused."""
    try:
        req = decode_erase(raw)
    except DecodeError as exc:
        assert exc.reason in ("bad_control", "bad_json", "non_finite") and str(exc)
        return
    obj = orjson.loads(raw)
    assert isinstance(req, EraseRequest) and req.subject == obj["subject"] and 1 <= len(req.subject) <= 256
    assert set(obj) <= {"type", "subject", "by", "ts", "note", "id"}



def test_erasure_on_a_building_site_fails_at_load() -> None:
    import tomllib

    from aiotstream.config import SiteConfig

    site = Path(__file__).resolve().parents[2] / "flows" / "sites" / "building-1.toml"
    data = tomllib.loads(site.read_text())
    SiteConfig.from_dict({**data, "governance": {"pii": "drop"}})  # the policy is fine there
    with pytest.raises(ConfigError) as ei:
        SiteConfig.from_dict({**data, "governance": {"erasure": True}})
    assert ei.value.problems[0][0] == "governance.erasure"


@pytest.fixture(scope="module")
def ingestor() -> object:
    from aiotstream.pdm.ingest import Ingestor
    from aiotstream.pdm.runtime import SiteRuntime

    return Ingestor(SiteRuntime(default_site(1, governance={"erasure": True})), live=False)


@FUZZ
@given(st.one_of(_REQUEST.map(_dumps), st.binary(max_size=200).map(lambda b: b'{"type": "erase"' + b)))
def test_fuzz_erasure_requests_through_the_flows_decoder(ingestor: object, raw: bytes) -> None:
    """1,000 cases through the decode step the flow runs (the control topic): each message becomes exactly
    one erasure for the governance step or one dead letter naming why; nothing escapes, nothing vanishes."""
    from aiotstream.governance import GOVERNANCE_KEY
    from aiotstream.records import SourceMessage

    out = ingestor.decode_batch([SourceMessage("demo-plant.control", 0, 1, raw)])  # type: ignore[attr-defined]
    assert len(out) == 1
    got = out[0]
    if isinstance(got, Output):
        assert got.kind == "deadletter" and got.record["reason"] in ("bad_control", "bad_json", "non_finite")
        assert got.record["message"]
    else:
        key, item = got
        assert key == GOVERNANCE_KEY and isinstance(item, Erasure) and 1 <= len(item.subject) <= 256
