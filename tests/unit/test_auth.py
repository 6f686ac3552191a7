"""Signed control, feedback and ack messages (issue 19 item 1): the ``[auth]`` table, signing and the Verifier.

Round trips with both algorithms; every refusal reason; a change of any field (auth fields included) breaks the
signature; replay, expiry and future; the role table; asset scoping with ``line:<id>``; on_behalf_of rules; key
files (an encrypted Ed25519 PEM with its passphrase file)."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.auth import (
    REASONS,
    Identity,
    Key,
    Refusal,
    Verifier,
    admit,
    canonical_bytes,
    generate_keypair,
    load_keys,
    load_private_key,
    load_signing_key,
    sign,
)
from aiotstream.config import AuthConfig, default_site
from aiotstream.config.auth import ROLE_ACTIONS
from aiotstream.errors import AiotError, ConfigError

NOW = 1_764_880_000_000_000_000
S = 1_000_000_000
SECRET = b"0123456789abcdef0123"
ED = Ed25519PrivateKey.generate()
OTHER_ED = Ed25519PrivateKey.generate()

PRINCIPALS = [
    {"id": "ana", "roles": ["operator"], "secret_file": "x"},
    {"id": "eve", "roles": ["engineer"], "assets": ["line:L1"], "public_key_file": "x"},
    {"id": "max", "roles": ["model_admin"], "secret_file": "x"},
    {"id": "plc-7", "roles": ["device"], "assets": ["p1"], "public_key_file": "x"},
    {"id": "dpo", "roles": ["governance"], "secret_file": "x"},
    {"id": "console", "roles": ["console"], "public_key_file": "x"},
    {"id": "ops@site", "roles": ["operator", "engineer"], "assets": ["p3"], "secret_file": "x"},
]
KEYS = {"ana": Key("hmac-sha256", SECRET), "eve": Key("ed25519", ED.public_key()),
        "max": Key("hmac-sha256", SECRET), "plc-7": Key("ed25519", ED.public_key()),
        "dpo": Key("hmac-sha256", SECRET), "console": Key("ed25519", ED.public_key()),
        "ops@site": Key("hmac-sha256", SECRET)}
SIGNING = {"hmac-sha256": SECRET, "ed25519": ED}
ALG = {pid: k.alg for pid, k in KEYS.items()}
LINES = {"p1": "L1", "p2": "L1", "p3": "L2"}


def verifier(now: int = NOW, **cfg: Any) -> Verifier:
    conf = AuthConfig(principals=PRINCIPALS, **cfg)
    return Verifier(conf, now_ns=lambda: now, keys=KEYS, lines=LINES)


def fb(kind: str = "ack", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"schema": "aiotstream.feedback/1", "type": kind, "ts": NOW, "asset": "p1"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def signed(msg: dict[str, Any], pid: str, *, ts: int = NOW, nonce: str | None = None, **kw: Any) -> dict:
    alg = ALG[pid]
    return sign(msg, pid, SIGNING[alg], alg=alg, now_ns=ts, nonce=nonce, **kw)


def reason(v: Verifier, msg: dict[str, Any]) -> str:
    got = admit(v, msg)
    return "accepted" if not isinstance(got, Refusal) else got.reason


# ---- round trips ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("pid,kind,extra", [
    ("ana", "ack", {"alert_type": "anomaly"}),
    ("eve", "approve", {"command_id": "c1"}),
    ("plc-7", "command_ack", {"command_id": "c1", "status": "applied"}),
])
def test_a_signed_message_is_accepted_and_by_is_the_principal(pid: str, kind: str, extra: dict) -> None:
    v = verifier()
    msg = signed(fb(kind, **extra), pid)
    got = admit(v, msg)
    assert not isinstance(got, Refusal), got
    stripped, ident = got
    assert ident == Identity(pid, pid) and "auth" not in stripped and stripped["by"] == pid
    assert {k: v for k, v in stripped.items() if k != "by"} == {k: v for k, v in msg.items() if k != "auth"}


def test_both_algorithms_and_the_wire_format() -> None:
    for pid in ("ana", "eve"):
        msg = signed(fb("approve" if pid == "eve" else "ack", command_id="c", alert_type="anomaly"), pid)
        a = msg["auth"]
        assert set(a) == {"principal", "ts", "nonce", "alg", "sig"} and a["alg"] == ALG[pid]
        assert "=" not in a["sig"] and len(a["nonce"]) == 22
        assert len(a["sig"]) == (86 if pid == "eve" else 43)


def test_control_messages_promote_and_erase() -> None:
    v = verifier()
    assert reason(v, signed({"type": "promote", "version": "1.1.0", "ts": NOW}, "max")) == "accepted"
    assert reason(v, signed({"type": "erase", "subject": "bob"}, "dpo")) == "accepted"
    assert reason(v, signed({"type": "erase", "subject": "bob"}, "max")) == "forbidden"
    assert reason(v, signed({"type": "promote", "version": "1"}, "dpo")) == "forbidden"


def test_a_transport_that_reencodes_the_json_does_not_break_the_signature() -> None:
    import json

    import orjson

    msg = signed(fb("ack", alert_type="anomaly", note="ünïcode ✓", value=None), "ana")
    for text in (json.dumps(msg, indent=2, ensure_ascii=True), json.dumps(dict(reversed(msg.items())))):
        assert reason(verifier(), orjson.loads(text)) == "accepted"


# ---- every refusal reason ----------------------------------------------------------------------------------

def test_every_reason_is_reachable() -> None:
    seen = set()
    v = verifier()
    seen.add(reason(v, fb("ack", alert_type="a")))  # unsigned
    seen.add(reason(v, {**fb(), "auth": "ana"}))  # bad_auth
    m = signed(fb("ack", alert_type="a"), "ana")
    m["auth"]["principal"] = "nobody"
    seen.add(reason(v, m))  # unknown_principal
    seen.add(reason(v, {**signed(fb("ack", alert_type="a"), "ana"), "asset": "p2"}))  # bad_signature
    seen.add(reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW - 301 * S)))  # expired
    seen.add(reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW + 31 * S)))  # future_auth
    m = signed(fb("ack", alert_type="a"), "ana")
    assert reason(v, m) == "accepted"
    seen.add(reason(v, m))  # replayed
    seen.add(reason(v, signed(fb("approve", command_id="c"), "ana")))  # forbidden
    assert seen == set(REASONS)


@pytest.mark.parametrize("auth,why", [
    ("x", "must be an object"),
    ({"principal": "ana"}, "lacks field(s) alg, nonce, sig, ts"),
    ({"principal": "ana", "ts": 1, "nonce": "n" * 16, "alg": "ed25519", "sig": "AA", "x": 1}, "unknown field"),
    ({"principal": "a b", "ts": 1, "nonce": "n" * 16, "alg": "ed25519", "sig": "AA"}, "'principal'"),
    ({"principal": "ana", "ts": "1", "nonce": "n" * 16, "alg": "ed25519", "sig": "AA"}, "'ts'"),
    ({"principal": "ana", "ts": True, "nonce": "n" * 16, "alg": "ed25519", "sig": "AA"}, "'ts'"),
    ({"principal": "ana", "ts": -1, "nonce": "n" * 16, "alg": "ed25519", "sig": "AA"}, "'ts'"),
    ({"principal": "ana", "ts": 1.5, "nonce": "n" * 16, "alg": "ed25519", "sig": "AA"}, "'ts'"),
    ({"principal": "ana", "ts": 1, "nonce": "short", "alg": "ed25519", "sig": "AA"}, "'nonce'"),
    ({"principal": "ana", "ts": 1, "nonce": "n" * 16, "alg": "rsa", "sig": "AA"}, "'alg'"),
    ({"principal": "ana", "ts": 1, "nonce": "n" * 16, "alg": "ed25519", "sig": "AA=="}, "'sig'"),
    ({"principal": "ana", "ts": 1, "nonce": "n" * 16, "alg": "ed25519", "sig": "AA", "on_behalf_of": 3},
     "'on_behalf_of'"),
])
def test_bad_auth_names_what_is_wrong(auth: Any, why: str) -> None:
    got = verifier().check({**fb(), "auth": auth}, "ack", "p1")
    assert isinstance(got, Refusal) and got.reason == "bad_auth" and why in got.message, got


def test_a_message_signed_with_the_wrong_key_or_alg() -> None:
    v = verifier()
    m = sign(fb("approve", command_id="c"), "eve", OTHER_ED, alg="ed25519", now_ns=NOW)
    assert reason(v, m) == "bad_signature"
    m = sign(fb("approve", command_id="c"), "eve", SECRET, alg="hmac-sha256", now_ns=NOW)
    got = v.check(m, "approve", "p1")
    assert isinstance(got, Refusal) and got.reason == "bad_signature" and "signs with ed25519" in got.message
    m = sign(fb("ack", alert_type="a"), "ana", b"another-secret-of-16", alg="hmac-sha256", now_ns=NOW)
    assert reason(v, m) == "bad_signature"


def test_no_secret_or_signature_in_a_refusal() -> None:
    v = verifier()
    m = sign(fb("approve", command_id="c"), "eve", OTHER_ED, alg="ed25519", now_ns=NOW)
    got = v.check(m, "approve", "p1")
    assert isinstance(got, Refusal) and got.principal == "eve"
    assert m["auth"]["sig"] not in got.message and SECRET.decode() not in got.message
    assert "<hidden>" in repr(KEYS["ana"]) and SECRET.decode() not in repr(KEYS["ana"])


def _mutations(msg: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k, v in msg.items():
        if k == "auth":
            for ak, av in v.items():
                if ak == "sig":
                    continue
                m = copy.deepcopy(msg)
                m["auth"][ak] = (av + 1) if isinstance(av, int) else (av + "x" if ak != "alg" else
                                                                       ("ed25519" if av != "ed25519" else
                                                                        "hmac-sha256"))
                out.append(m)
            continue
        m = copy.deepcopy(msg)
        m[k] = (v + 1) if isinstance(v, int) and not isinstance(v, bool) else (str(v) + "x")
        out.append(m)
        m = copy.deepcopy(msg)
        del m[k]
        out.append(m)
    m = copy.deepcopy(msg)
    m["extra"] = 1
    out.append(m)
    m = copy.deepcopy(msg)
    m["auth"]["on_behalf_of"] = "ana"
    out.append(m)
    return out


@pytest.mark.parametrize("pid", ["ana", "eve"])
def test_changing_any_field_breaks_the_signature(pid: str) -> None:
    msg = signed(fb("ack", alert_type="anomaly", note="n", by=pid), pid, nonce="A" * 22)
    muts = _mutations(msg)
    assert len(muts) >= 14
    for m in muts:
        got = verifier().check(m, m.get("type"), m.get("asset"))
        assert isinstance(got, Refusal) and got.reason in ("bad_signature", "bad_auth", "unsigned",
                                                           "unknown_principal"), (m, got)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=8),
                                                       st.booleans(), st.none(), st.floats(allow_nan=False,
                                                                                          allow_infinity=False)),
                       max_size=6), st.sampled_from(["ana", "eve"]))
def test_any_json_object_round_trips_and_any_change_breaks_it(body: dict, pid: str) -> None:
    body.pop("auth", None)
    if "by" in body:  # a by naming someone else is refused (test_by_must_be_the_acting_principal)
        body["by"] = pid
    kind = "ack" if pid == "ana" else "approve"
    body = {**body, "type": kind, "asset": "p1"}
    msg = signed(body, pid)
    v = verifier()
    assert isinstance(v.check(msg, kind, "p1"), Identity)
    for m in _mutations(msg):
        assert isinstance(verifier().check(m, kind, "p1"), Refusal)


# ---- freshness and replay ----------------------------------------------------------------------------------

def test_expiry_and_future_bounds_are_inclusive_and_follow_the_config() -> None:
    v = verifier()
    assert reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW - 300 * S)) == "accepted"
    assert reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW - 300 * S - 1)) == "expired"
    assert reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW + 30 * S)) == "accepted"
    assert reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW + 30 * S + 1)) == "future_auth"
    v = verifier(max_age_s=10, max_future_s=0)
    assert reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW - 11 * S)) == "expired"
    assert reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW + 1)) == "future_auth"


def test_the_message_ts_is_not_the_freshness() -> None:
    """Only auth.ts counts: an old feedback ts re-signed now is fresh, a fresh ts signed long ago is not."""
    v = verifier()
    assert reason(v, signed(fb("ack", alert_type="a", ts=5), "ana")) == "accepted"
    assert reason(v, signed(fb("ack", alert_type="a"), "ana", ts=NOW - 3600 * S)) == "expired"


def test_replay_is_per_principal_nonce_and_expires_with_the_window() -> None:
    now = [NOW]
    v = Verifier(AuthConfig(principals=PRINCIPALS), now_ns=lambda: now[0], keys=KEYS, lines=LINES)
    m = signed(fb("ack", alert_type="a"), "ana", nonce="N" * 16)
    assert reason(v, m) == "accepted"
    assert reason(v, m) == "replayed"
    other = signed(fb("ack", alert_type="a", note="other message"), "ana", nonce="N" * 16)
    assert reason(v, other) == "replayed"  # the nonce, not the message
    assert reason(v, signed(fb("approve", command_id="c"), "eve", nonce="N" * 16)) == "accepted"
    now[0] += 300 * S + 1
    assert reason(v, m) == "expired"  # still refused once the cache has forgotten it
    assert len(v.replays) <= 2


def test_the_replay_cache_is_bounded_and_refuses_when_full() -> None:
    v = verifier(replay_cache_size=3)
    for i in range(3):
        assert reason(v, signed(fb("ack", alert_type="a"), "ana", nonce=f"nonce-{i:011d}")) == "accepted"
    got = admit(v, signed(fb("ack", alert_type="a"), "ana", nonce="nonce-x0000000000"))
    assert isinstance(got, Refusal) and got.reason == "replayed" and "cache is full" in got.message
    assert len(v.replays) == 3


# ---- roles and assets ---------------------------------------------------------------------------------------

KIND_FIELDS = {"ack": {"alert_type": "a"}, "clear": {"alert_type": "a"}, "label": {"alert_id": "x",
                                                                                  "label": "true_fault"},
               "approve": {"command_id": "c"}, "reject": {"command_id": "c"},
               "command_ack": {"command_id": "c"}, "maintenance": {"start": 1, "end": 2}}


def _kind_msg(kind: str) -> dict[str, Any]:
    if kind == "promote":
        return {"type": "promote", "version": "1.0"}
    if kind == "erase":
        return {"type": "erase", "subject": "x"}
    return fb(kind, **KIND_FIELDS[kind])


@pytest.mark.parametrize("role", list(ROLE_ACTIONS))
def test_the_role_table(role: str) -> None:
    cfg = AuthConfig(principals=[{"id": "p", "roles": [role], "secret_file": "x"}])
    for kind in sorted(set().union(*ROLE_ACTIONS.values())):
        v = Verifier(cfg, now_ns=lambda: NOW, keys={"p": Key("hmac-sha256", SECRET)})
        msg = sign(_kind_msg(kind), "p", SECRET, alg="hmac-sha256", now_ns=NOW)
        want = "accepted" if kind in ROLE_ACTIONS[role] else "forbidden"
        assert reason(v, msg) == want, (role, kind)
    assert ROLE_ACTIONS["operator"] == {"ack", "clear", "label"}
    assert ROLE_ACTIONS["engineer"] == {"approve", "reject", "maintenance"}
    assert ROLE_ACTIONS["model_admin"] == {"promote"} and ROLE_ACTIONS["device"] == {"command_ack"}
    assert ROLE_ACTIONS["governance"] == {"erase"} and ROLE_ACTIONS["console"] == frozenset()


def test_asset_scoping_with_lines() -> None:
    v = verifier()
    # eve: engineer on line:L1 (p1, p2), not p3, not site-wide, and line messages for L1 only
    assert reason(v, signed(fb("approve", command_id="c", asset="p2"), "eve")) == "accepted"
    assert reason(v, signed(fb("approve", command_id="c", asset="p3"), "eve")) == "forbidden"
    assert reason(v, signed(fb("approve", command_id="c", asset="nowhere"), "eve")) == "forbidden"
    assert reason(v, signed(fb("maintenance", start=1, end=2, asset=None, line="L1"), "eve")) == "accepted"
    assert reason(v, signed(fb("maintenance", start=1, end=2, asset=None, line="L2"), "eve")) == "forbidden"
    assert reason(v, signed(fb("maintenance", start=1, end=2, asset=None), "eve")) == "forbidden"
    # plc-7: device for p1 only
    assert reason(v, signed(fb("command_ack", command_id="c"), "plc-7")) == "accepted"
    assert reason(v, signed(fb("command_ack", command_id="c", asset="p2"), "plc-7")) == "forbidden"
    # an asset named by its id; '*' allows a site-wide message; a wrong-typed asset only under '*'
    assert reason(v, signed(fb("ack", alert_type="a", asset="p3"), "ops@site")) == "accepted"
    assert reason(v, signed(fb("ack", alert_type="a", asset="p1"), "ops@site")) == "forbidden"
    assert reason(v, signed(fb("ack", alert_type="a", asset=["p3"]), "ops@site")) == "forbidden"
    assert reason(v, signed(fb("ack", alert_type="a", asset=None), "ana")) == "accepted"


def test_by_must_be_the_acting_principal() -> None:
    v = verifier()
    assert reason(v, signed(fb("ack", alert_type="a", by="ana"), "ana")) == "accepted"
    got = admit(v, signed(fb("ack", alert_type="a", by="bob"), "ana"))
    assert isinstance(got, Refusal) and got.reason == "forbidden" and "says by bob" in got.message


def test_on_behalf_of() -> None:
    v = verifier()
    ok = signed(fb("ack", alert_type="a"), "console", on_behalf_of="ana")
    got = admit(v, ok)
    assert not isinstance(got, Refusal) and got[1] == Identity("console", "ana") and got[0]["by"] == "ana"
    # the on-behalf principal's roles and assets decide, not the console's
    assert reason(v, signed(fb("approve", command_id="c"), "console", on_behalf_of="ana")) == "forbidden"
    assert reason(v, signed(fb("approve", command_id="c", asset="p3"), "console", on_behalf_of="eve")) \
        == "forbidden"
    assert reason(v, signed(fb("approve", command_id="c", asset="p2"), "console", on_behalf_of="eve")) \
        == "accepted"
    # only a console may; the on-behalf principal must exist; by must be the on-behalf principal
    got = admit(v, signed(fb("ack", alert_type="a"), "ana", on_behalf_of="ops@site"))
    assert isinstance(got, Refusal) and got.reason == "forbidden" and "console role" in got.message
    assert reason(v, signed(fb("ack", alert_type="a"), "console", on_behalf_of="ghost")) == "forbidden"
    assert reason(v, signed(fb("ack", alert_type="a", by="console"), "console", on_behalf_of="ana")) \
        == "forbidden"
    # the console acting as itself has no action
    assert reason(v, signed(fb("ack", alert_type="a"), "console")) == "forbidden"


def test_a_console_user_without_a_key_acts_only_through_the_console() -> None:
    """A principal with only a password_hash_file (a person who signs in to the console) has no key: the
    console may sign on its behalf, a message signed as that principal itself is refused."""
    conf = AuthConfig(principals=[*PRINCIPALS, {"id": "kim", "roles": ["operator"], "password_hash_file": "h"}])
    v = Verifier(conf, now_ns=lambda: NOW, keys=KEYS, lines=LINES)
    got = admit(v, signed(fb("ack", alert_type="a"), "console", on_behalf_of="kim"))
    assert not isinstance(got, Refusal) and got[0]["by"] == "kim"
    msg = sign(fb("ack", alert_type="a"), "kim", SECRET, alg="hmac-sha256", now_ns=NOW)
    got = admit(v, msg)
    assert isinstance(got, Refusal) and got.reason == "bad_signature" and "has no key" in got.message


def test_optional_auth_accepts_unsigned_but_verifies_signed() -> None:
    v = verifier(required=False)
    got = admit(v, fb("ack", alert_type="a", by="whoever"))
    assert not isinstance(got, Refusal) and got[0]["by"] == "whoever" and not got[1].signed
    assert reason(v, {**signed(fb("ack", alert_type="a"), "ana"), "asset": "p2"}) == "bad_signature"


def test_canonical_bytes_sign_the_auth_fields_but_not_the_signature() -> None:
    m = signed(fb(), "ana")
    c = canonical_bytes(m)
    assert c.startswith(b"aiotstream.auth/1\n{") and b'"principal":"ana"' in c and m["auth"]["sig"].encode() \
        not in c
    with pytest.raises(TypeError):
        canonical_bytes({"x": 2**70})


# ---- config and key files --------------------------------------------------------------------------------

def test_config_errors_name_the_path() -> None:
    cases = [
        ({"principals": [{"id": "a", "roles": ["operator"], "secret_file": "s"},
                         {"id": "b", "roles": ["pilot"], "secret_file": "s"}]}, "auth.principals[1].roles[0]"),
        ({"principals": [{"id": "a", "roles": ["operator"]}]}, "auth.principals[0]"),  # no key, no password
        ({"principals": [{"id": "a", "roles": ["operator"], "secret_file": "s", "public_key_file": "p"}]},
         "auth.principals[0]"),
        ({"principals": [{"id": "a", "roles": ["operator"], "secret_file": "s"},
                         {"id": "a", "roles": ["device"], "secret_file": "s"}]}, "auth.principals[1].id"),
        ({"principals": [{"id": "a b", "roles": ["operator"], "secret_file": "s"}]}, "auth.principals[0].id"),
        ({"max_age_s": 0}, "auth.max_age_s"),
        ({"requird": True}, "auth.requird"),
    ]
    for table, path in cases:
        with pytest.raises(ConfigError) as exc:
            default_site(1, auth=table)
        assert [p for p, _ in exc.value.problems] == [path], exc.value.problems


def test_a_site_without_auth_keeps_its_hash() -> None:
    assert default_site(1).auth is None
    assert "auth" not in default_site(1).normalised()
    assert default_site(1, auth={}).config_hash != default_site(1).config_hash
    assert default_site(1, auth={}).auth.required is True  # type: ignore[union-attr]


def test_key_files(tmp_path: Path) -> None:
    priv, pub = generate_keypair()
    (tmp_path / "eve.pub").write_bytes(pub)
    (tmp_path / "ana.key").write_bytes(SECRET + b"\n")
    (tmp_path / "short.key").write_bytes(b"short\n")
    cfg = AuthConfig(principals=[
        {"id": "ana", "roles": ["operator"], "secret_file": str(tmp_path / "ana.key")},
        {"id": "eve", "roles": ["engineer"], "public_key_file": str(tmp_path / "eve.pub")}])
    keys = load_keys(cfg)
    assert keys["ana"] == Key("hmac-sha256", SECRET) and keys["eve"].alg == "ed25519"
    bad = AuthConfig(principals=[
        {"id": "a", "roles": ["operator"], "secret_file": str(tmp_path / "short.key")},
        {"id": "b", "roles": ["operator"], "public_key_file": str(tmp_path / "ana.key")},
        {"id": "c", "roles": ["operator"], "secret_file": str(tmp_path / "missing")}])
    with pytest.raises(ConfigError) as exc:
        load_keys(bad)
    assert [p for p, _ in exc.value.problems] == ["auth.principals[0].secret_file",
                                                   "auth.principals[1].public_key_file",
                                                   "auth.principals[2].secret_file"]
    assert SECRET.decode() not in str(exc.value) and "short" not in str(exc.value.problems[0][1]).split(":")[-1]
    # the private key signs what the public key file verifies
    (tmp_path / "eve.pem").write_bytes(priv)
    k = load_private_key(str(tmp_path / "eve.pem"))
    msg = sign(fb("approve", command_id="c"), "eve", k, alg="ed25519", now_ns=NOW)
    assert isinstance(Verifier(cfg, now_ns=lambda: NOW).check(msg, "approve", "p1"), Identity)


def test_an_encrypted_private_key_needs_its_passphrase_file(tmp_path: Path) -> None:
    k = Ed25519PrivateKey.generate()
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"correct horse"))
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "pass").write_text("correct horse\n")
    (tmp_path / "wrong").write_text("wrong\n")
    os.chmod(tmp_path / "pass", 0o600)
    got = load_signing_key(str(tmp_path / "k.pem"), "ed25519", passphrase_file=str(tmp_path / "pass"))
    assert got.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == \
        k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    with pytest.raises(AiotError, match="encrypted: give its passphrase file"):
        load_signing_key(str(tmp_path / "k.pem"), "ed25519")
    with pytest.raises(AiotError, match="passphrase is wrong"):
        load_signing_key(str(tmp_path / "k.pem"), "ed25519", passphrase_file=str(tmp_path / "wrong"))
    with pytest.raises(AiotError, match="at least 16 bytes"):
        load_signing_key(str(tmp_path / "wrong"), "hmac-sha256")
    (tmp_path / "hmac").write_text(SECRET.decode() + "\n")
    assert load_signing_key(str(tmp_path / "hmac"), "hmac-sha256") == Key("hmac-sha256", SECRET)
