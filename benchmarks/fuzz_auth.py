"""Fuzzing signed control, feedback and ack messages (``[auth]``, issue 19 item 1) through the real decode step.

Kind ``signed`` (``KINDS``; :mod:`benchmarks.fuzz` merges it in): ack, clear, label, approve, reject,
command_ack, maintenance, promote and erase messages, valid and broken, signed in one of many ways: by a
principal whose role and assets allow the action (with the right key, fresh, a new nonce, ``by`` absent or
the principal; sometimes by the console on behalf of such a principal); or not: unsigned, the wrong key or
algorithm, an unknown principal, a stale or future time, a role or asset that does not allow it, a ``by``
naming someone else, ``on_behalf_of`` from a non-console, a malformed ``auth`` object; or a correctly signed
message changed afterwards (a value, a type, a field dropped or added, an ``auth`` field) or sent again.

The oracle is written here, from the spec (docs/security.md), not taken from :mod:`aiotstream.auth`: whether a
case is *correctly signed by an authorised principal* is known by construction. An *escape* is: an exception;
a message that is not correctly signed by an authorised principal getting past the verifier (an effect, or a
dead letter of a later check such as ``bad_feedback``); a correctly signed, authorised one refused with an auth
reason; an accepted message whose ``by`` is not its acting principal; a refusal whose text holds a key or a
signature; a message that ends in neither an effect nor a dead letter (*lost*).

Run by hand::

    python -m benchmarks.fuzz --kind signed --cases 100000
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.fuzz_control import Draw, Escape, RandomDraw, _brief, dumps, junk

S = 1_000_000_000
WALL = 1_767_225_600_000_000_000 + 10**15  # the decode step's wall clock
MAX_AGE_S, MAX_FUTURE_S = 300, 30
REASONS = {"unsigned", "bad_auth", "unknown_principal", "bad_signature", "expired", "future_auth", "replayed",
           "forbidden"}
# the spec's role table and the site's principals, written out again (the oracle does not import them)
ROLE_ACTIONS = {"operator": {"ack", "clear", "label"}, "engineer": {"approve", "reject", "maintenance"},
                "model_admin": {"promote"}, "device": {"command_ack"}, "governance": {"erase"}, "console": set()}
PRINCIPALS: dict[str, dict[str, Any]] = {
    "ana": {"roles": ["operator"], "assets": ["*"], "alg": "hmac-sha256"},
    "eve": {"roles": ["engineer"], "assets": ["line:l1"], "alg": "ed25519"},
    "plc": {"roles": ["device"], "assets": ["p2"], "alg": "ed25519"},
    "ops@x": {"roles": ["operator", "engineer"], "assets": ["p1", "line:l2"], "alg": "hmac-sha256"},
    "max": {"roles": ["model_admin"], "assets": ["*"], "alg": "hmac-sha256"},
    "dpo": {"roles": ["governance"], "assets": ["*"], "alg": "ed25519"},
    "con": {"roles": ["console"], "assets": ["*"], "alg": "ed25519"},
}
LINES = {"p1": "l1", "p2": "l2", "p3": "l1"}
FB_KINDS = ("ack", "clear", "label", "approve", "reject", "command_ack", "maintenance")
FEEDBACK, CONTROL, DEVICE = "fz.feedback", "fz.control", "mqtt:fz/feedback"


def _jsonable(v: Any) -> Any:
    """``v`` if orjson can write it (a signer signs what it can serialise), else None."""
    try:
        orjson.dumps(v)
    except TypeError:
        return None
    return v


def _canonical(raw: bytes) -> bytes | None:
    """What the verifier will see of ``raw``: its parse, written with sorted keys (None if not JSON)."""
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, TypeError):
        return None


def allowed(pid: str, kind: Any, scope: Any) -> bool:
    """The spec's authorisation: a role allowing ``kind``, and ``scope`` within the principal's assets."""
    p = PRINCIPALS[pid]
    if not isinstance(kind, str) or not any(kind in ROLE_ACTIONS[r] for r in p["roles"]):
        return False
    mine = set(p["assets"])
    if "*" in mine:
        return True
    if not isinstance(scope, str):
        return False
    return scope in mine or f"line:{LINES.get(scope)}" in mine


def scope(body: dict[str, Any]) -> Any:
    if body.get("asset") is not None:
        return body["asset"]
    line = body.get("line")
    if line is not None:
        return f"line:{line}" if isinstance(line, str) else line
    return None


class SignedHarness:
    """A plant site with ``[auth]`` (keys in files), its real :class:`~aiotstream.pdm.ingest.Ingestor` with a
    fixed wall clock; :meth:`case` makes a message and what it must come to, :meth:`step` sends it."""

    def __init__(self, tmp: Path):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from aiotstream.config import SiteConfig
        from aiotstream.pdm.ingest import Ingestor
        from aiotstream.pdm.runtime import SiteRuntime

        self.keys: dict[str, Any] = {}
        self.wrong: dict[str, Any] = {"hmac-sha256": b"not-the-right-secret-0123", "ed25519":
                                      Ed25519PrivateKey.generate()}
        self.secrets: list[str] = []
        principals = []
        for pid, p in PRINCIPALS.items():
            entry: dict[str, Any] = {"id": pid, "roles": p["roles"], "assets": p["assets"]}
            if p["alg"] == "hmac-sha256":
                secret = f"{pid}-secret-0123456789".encode()
                (tmp / f"{pid}.key").write_bytes(secret + b"\n")
                entry["secret_file"] = str(tmp / f"{pid}.key")
                self.keys[pid] = secret
                self.secrets.append(secret.decode())
            else:
                k = Ed25519PrivateKey.generate()
                (tmp / f"{pid}.pub").write_bytes(k.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
                entry["public_key_file"] = str(tmp / f"{pid}.pub")
                self.keys[pid] = k
            principals.append(entry)
        self.cfg = SiteConfig.from_dict({
            "site": {"id": "fz"}, "inputs": {"tail": False},
            "assets": [{"id": a, "line": line} for a, line in LINES.items()],
            "governance": {"erasure": True},
            "auth": {"max_age_s": MAX_AGE_S, "max_future_s": MAX_FUTURE_S, "principals": principals}})
        self.ingest = Ingestor(SiteRuntime(self.cfg), now_ns=lambda: WALL)
        self.offset = 0
        self.sent: list[tuple[str, bytes]] = []  # signed messages sent, with their topic (for replays)
        self.outcomes: dict[str, int] = {}

    # ---- the cases ----
    def body(self, d: Draw) -> tuple[str, dict[str, Any]]:
        """A message (feedback on the feedback topic or an MQTT subscription with ``format = "auto"``,
        promote/erase on the control topic), maybe broken."""
        kind = d.choice([*FB_KINDS, "promote", "erase"])
        if kind == "promote":
            m: dict[str, Any] = {"type": "promote", "version": d.choice(["1.1.0", "2", None, "bad version"])}
            if d.chance(0.3):
                m["variant"] = d.choice(["champion", "canary", "shadow", "x"])
            topic = CONTROL
        elif kind == "erase":
            m = {"type": "erase", "subject": d.choice(["bob", "ana", "", "x" * 300])}
            topic = CONTROL
        else:
            topic = FEEDBACK if d.chance(0.8) else DEVICE  # Kafka, or an MQTT subscription with format auto
            m = {"schema": "aiotstream.feedback/1", "type": kind, "ts": WALL - d.int(0, 10) * S}
            where = d.int(0, 9)
            if kind == "maintenance":
                m.update(start=WALL - 10 * S, end=WALL + d.choice([S, 60 * S, -S]))
                if where < 4:
                    m["asset"] = d.choice(["p1", "p2", "p3", "nope"])
                elif where < 8:
                    m["line"] = d.choice(["l1", "l2", "l9"])
            else:
                m["asset"] = d.choice(["p1", "p2", "p3", "nope"]) if where else d.choice([None, 7, ["p1"]])
                if kind in ("ack", "clear"):
                    m["alert_type"] = "anomaly"
                elif kind == "label":
                    m.update(alert_id="a1", label=d.choice(["true_fault", "false_alarm"]))
                else:
                    m["command_id"] = "c1"
                    if kind == "command_ack" and d.chance(0.5):
                        m["value"] = d.choice([1.0, "high", None])
        if d.chance(0.15):  # a broken field: wrong type, dropped, unknown
            op = d.int(0, 2)
            if op == 0:
                m[d.choice(sorted(m))] = _jsonable(junk(d))
            elif op == 1:
                m.pop(d.choice(sorted(m)))
            else:
                m[d.choice(["nope", "valu", "auth_"])] = _jsonable(junk(d))
        if d.chance(0.1):
            m["note"] = d.text(20) or "n"
        return topic, m

    def sign(self, d: Draw, body: dict[str, Any], pid: str, key: Any = None, alg: str | None = None,
             ts: int | None = None, behalf: str | None = None) -> dict[str, Any]:
        from aiotstream.auth import sign

        alg = alg or PRINCIPALS.get(pid, {}).get("alg", "hmac-sha256")
        key = key if key is not None else self.keys.get(pid, self.wrong[alg])
        ts = ts if ts is not None else WALL + d.int(-MAX_AGE_S, MAX_FUTURE_S) * S
        return sign(body, pid, key, alg=alg, now_ns=ts, on_behalf_of=behalf)

    def case(self, d: Draw) -> tuple[str, bytes, str, str | None]:
        """``(topic, bytes, how, acting)``: ``how`` is ``good`` for a message correctly signed by an authorised
        principal (``acting`` who it is by), anything else names the way it is not."""
        topic, m = self.body(d)
        kind, sc = m.get("type"), scope(m)
        if self.sent and d.chance(0.08):
            was_topic, raw = d.choice(self.sent)  # on the topic it came on first
            return was_topic, raw, "replay", None
        ok = [p for p in PRINCIPALS if allowed(p, kind, sc)]
        how = d.choice(["good"] * 5 + ["unsigned", "wrong_key", "wrong_alg", "unknown", "stale", "future",
                                       "not_allowed", "by_other", "behalf_non_console", "bad_auth", "tamper"])
        if how in ("good", "tamper", "by_other", "bad_auth") and not ok:
            how = "not_allowed"
        if how == "unsigned":
            return topic, dumps(m), how, None
        if how == "not_allowed":
            bad = [p for p in PRINCIPALS if not allowed(p, kind, sc)]
            pid = d.choice(bad)
            if d.chance(0.3) and bad != ["con"]:  # the console on behalf of somebody not allowed
                who = d.choice([p for p in bad if p != "con"] or ["ana"])
                signed = self.sign(d, {k: v for k, v in m.items() if k != "by"}, "con", behalf=who)
                return self._send(topic, signed, how, None)
            return self._send(topic, self.sign(d, {k: v for k, v in m.items() if k != "by"}, pid), how, None)
        acting = d.choice(ok) if ok else "ana"
        body = {k: v for k, v in m.items() if k != "by"}
        if d.chance(0.4):
            body["by"] = acting
        behalf = None
        signer = acting
        if acting != "con" and d.chance(0.2):
            signer, behalf = "con", acting
        if how == "good":
            return self._send(topic, self.sign(d, body, signer, behalf=behalf), how, acting)
        if how == "by_other":
            body["by"] = d.choice(["bob", "", 3, None, "con" if behalf else "zed"])
            if body["by"] is None:
                how = "good"  # null: as if absent
            return self._send(topic, self.sign(d, body, signer, behalf=behalf), how, acting if how == "good"
                              else None)
        if how == "wrong_key":
            alg = PRINCIPALS[signer]["alg"]
            return self._send(topic, self.sign(d, body, signer, key=self.wrong[alg], behalf=behalf), how, None)
        if how == "wrong_alg":
            alg = "ed25519" if PRINCIPALS[signer]["alg"] == "hmac-sha256" else "hmac-sha256"
            return self._send(topic, self.sign(d, body, signer, key=self.wrong[alg], alg=alg, behalf=behalf),
                              how, None)
        if how == "unknown":
            return self._send(topic, self.sign(d, body, d.choice(["mallory", "root", "ana2"])), how, None)
        if how == "stale":
            ts = WALL - (MAX_AGE_S * S + d.choice([1, S, 10**15]))
            return self._send(topic, self.sign(d, body, signer, ts=ts, behalf=behalf), how, None)
        if how == "future":
            ts = WALL + MAX_FUTURE_S * S + d.choice([1, S, 10**15])
            return self._send(topic, self.sign(d, body, signer, ts=ts, behalf=behalf), how, None)
        if how == "behalf_non_console":
            other = d.choice([p for p in PRINCIPALS if p not in ("con", acting)])
            return self._send(topic, self.sign(d, body, other, behalf=acting), how, None)
        signed = self.sign(d, body, signer, behalf=behalf)
        before = _canonical(dumps(signed))
        if how == "bad_auth":
            a = signed["auth"]
            k = d.choice(["principal", "ts", "nonce", "alg", "sig", "on_behalf_of", "extra", "whole"])
            if k == "whole":
                signed["auth"] = junk(d)
            elif k == "extra":
                a["x"] = junk(d)
            elif d.chance(0.3):
                a.pop(k, None)
            else:
                a[k] = junk(d)
        else:  # tamper: change the signed message afterwards
            self._tamper(d, signed)
        same = _canonical(dumps(signed)) == before  # (a change that changes nothing: still correctly signed)
        return self._send(topic, signed, "good" if same else how, acting if same else None)

    def _tamper(self, d: Draw, signed: dict[str, Any]) -> None:
        target = signed["auth"] if d.chance(0.3) else signed
        field = d.choice(sorted(target)) if target else "x"
        op = d.int(0, 2)
        if op == 0:
            target[field] = junk(d)
        elif op == 1:
            target.pop(field, None)
        else:
            target[d.choice(["extra", "by", "asset", "on_behalf_of"])] = junk(d)

    def _send(self, topic: str, msg: dict[str, Any], how: str, acting: str | None) -> tuple[str, bytes, str,
                                                                                            str | None]:
        raw = dumps(msg)
        self.sent.append((topic, raw))
        del self.sent[:-64]
        return topic, raw, how, acting

    # ---- one case through the decode step ----
    def step(self, case: tuple[str, bytes, str, str | None]) -> str:
        from aiotstream.records import DecodeHints, DeviceMessage, Feedback, SourceMessage

        topic, raw, how, acting = case
        self.offset += 1
        effects: list[Any] = []
        dead: list[Any] = []
        try:
            msg = DeviceMessage(topic, -1, self.offset, raw, DecodeHints("auto"), None, None, WALL) \
                if topic == DEVICE else SourceMessage(topic, 0, self.offset, raw)
            self.ingest._decode([msg], effects.append, dead.append)
        except Exception as exc:
            raise Escape(f"{how}: {type(exc).__name__}: {exc} <- {_brief(raw)}") from exc
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        checked = isinstance(obj, dict) and (topic == CONTROL or "schema" in obj)  # goes through the verifier
        reasons = [o.record["reason"] for o in dead]
        for o in dead:
            text = o.record["message"]
            sig = obj.get("auth", {}).get("sig") if isinstance(obj, dict) and isinstance(obj.get("auth"), dict) \
                else None
            if any(s in text for s in self.secrets) or (isinstance(sig, str) and len(sig) > 8 and sig in text):
                raise Escape(f"{how}: a refusal's text holds a key or signature: {text[:200]}")
        if not effects and not dead:
            raise Escape(f"lost: {how} <- {_brief(raw)}")
        passed = bool(effects) or (checked and any(r not in REASONS for r in reasons))
        if how != "good" and checked and passed:
            raise Escape(f"{how}: got past the verifier ({reasons or 'an effect'}) <- {_brief(raw)}")
        if how != "good" and not checked and effects:
            raise Escape(f"{how}: an effect from a message the verifier did not see <- {_brief(raw)}")
        if how == "good" and any(r in REASONS for r in reasons):
            raise Escape(f"good: refused {reasons} <- {_brief(raw)}")
        for e in effects:
            by = e.by
            if (isinstance(e, Feedback) or hasattr(e, "subject")) and by != acting:
                raise Escape(f"{how}: accepted with by {by!r}, acting {acting!r} <- {_brief(raw)}")
        outcome = "effect" if effects else ("refused:" + reasons[0] if reasons[0] in REASONS else "decode")
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        return outcome


def run_signed(kind: str, cases: int, seed: int, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    import logging

    quiet = logging.getLogger("aiotstream")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    d = RandomDraw(seed)
    escapes = lost = 0
    examples: list[str] = []
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="fuzz-signed-") as tmp:
            h = SignedHarness(Path(tmp))
            for i in range(cases):
                c = h.case(d)
                try:
                    h.step(c)
                except Escape as e:
                    if str(e).startswith("lost:"):
                        lost += 1
                    else:
                        escapes += 1
                    if len(examples) < 10:
                        examples.append(str(e))
                if progress is not None and (i + 1) % max(1, cases // 10) == 0:
                    progress(i + 1)
    finally:
        quiet.setLevel(level)
    return {"kind": kind, "cases": cases, "escapes": escapes, "escape_examples": examples, "lost": lost,
            "seconds": round(time.perf_counter() - t0, 3)}


KINDS: dict[str, Callable[[str, int, int], dict]] = {"signed": run_signed}


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(orjson.dumps(run_signed("signed", n, 1)).decode())
