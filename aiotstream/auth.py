"""Signed, fresh, authorised control, feedback and ack messages (``[auth]``; pure logic, no Bytewax).

A message (a feedback ``aiotstream.feedback/1`` object, a ``promote`` or ``erase`` control message) carries
one extra top-level field ``auth``::

    "auth": {"principal": "ana", "ts": <int ns>, "nonce": "<base64url, 16..64 chars>",
             "alg": "ed25519" | "hmac-sha256", "sig": "<base64url, no padding>",
             "on_behalf_of": "bob"}            (optional; a principal with the console role only)

The signature covers :func:`canonical_bytes`: ``b"aiotstream.auth/1\\n"`` followed by the whole message as
orjson writes it with sorted keys, its ``auth`` object without ``sig`` (so the principal, time, nonce,
algorithm and on-behalf principal are signed too). The verifier re-serialises the parsed message, so a
transport that re-encodes the JSON does not break a signature; a change of any value does.

:class:`Verifier` checks, in this order, and refuses with the first reason that applies (the dead-letter
reason, the metric label and the audit entry's reason): ``unsigned``, ``bad_auth``, ``unknown_principal``,
``bad_signature``, ``expired`` / ``future_auth`` (the worker's wall clock), ``replayed``, ``forbidden``
(role, asset, ``by``, on-behalf rules). Nothing secret (a key, a signature) is ever put in a refusal's text.

>>> key = b"0123456789abcdef-secret"
>>> cfg = AuthConfig(principals=[{"id": "ana", "roles": ["operator"], "secret_file": "unused"}])
>>> v = Verifier(cfg, now_ns=lambda: 10**18, keys={"ana": Key("hmac-sha256", key)})
>>> msg = {"schema": "aiotstream.feedback/1", "type": "ack", "asset": "p1", "alert_type": "anomaly", "ts": 5}
>>> signed = sign(msg, "ana", key, alg="hmac-sha256", now_ns=10**18, nonce="n" * 22)
>>> v.check(signed, "ack", "p1")
Identity(principal='ana', acting='ana', signed=True)
>>> v.check(signed, "ack", "p1").__class__.__name__, v.check(signed, "ack", "p1").reason
('Refusal', 'replayed')
>>> v.check({**signed, "asset": "p2"}, "ack", "p2").reason
'bad_signature'
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from aiotstream.codecs.feedback import _feedback, _load_json
from aiotstream.codecs.iot import _check_item_asset, decode_payload
from aiotstream.codecs.readings import _reading, decode_any
from aiotstream.config.auth import ALL_ASSETS, PRINCIPAL_PATTERN, ROLE_ACTIONS, AuthConfig
from aiotstream.errors import AiotError, ConfigError, DecodeError
from aiotstream.ids import check_id
from aiotstream.records import DecodeHints, Feedback, Frame, Position, Reading
from aiotstream.secretfiles import read_secret, read_secret_bytes

log = logging.getLogger(__name__)

DOMAIN = b"aiotstream.auth/1\n"
"""What the signed bytes start with (so a signature over anything else never verifies here)."""
ALGS = ("ed25519", "hmac-sha256")
REASONS = ("unsigned", "bad_auth", "unknown_principal", "bad_signature", "expired", "future_auth", "replayed",
           "forbidden")
"""Every refusal reason, in the order they are checked."""
AUTH_FIELDS = frozenset({"principal", "ts", "nonce", "alg", "sig"})
OPTIONAL_AUTH_FIELDS = frozenset({"on_behalf_of"})
KINDS = frozenset().union(*ROLE_ACTIONS.values())
"""The message kinds a role can allow: feedback types, ``promote``, ``erase``."""
MIN_SECRET_BYTES = 16
MAX_TS_NS = 2**63 - 1
_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_JSON_START = (b"{", b" ", b"\n", b"\t", b"[")  # as decode_any tells JSON from a frame
_SIG = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # base64url without padding (Ed25519: 86 chars, HMAC: 43)


@dataclass(frozen=True, slots=True)
class Key:
    """A principal's verifying key (Ed25519 public key, or HMAC secret bytes), or a signer's signing key."""

    alg: str
    key: Any

    def __repr__(self) -> str:  # never the key in a log line or a traceback
        return f"Key({self.alg!r}, <hidden>)"


@dataclass(frozen=True, slots=True)
class Identity:
    """An accepted message's principals: ``principal`` signed it; ``acting`` is whom the action is by
    (``on_behalf_of`` when the console signed for somebody, else ``principal``). ``signed`` is False for an
    unsigned message a site with ``required = false`` accepts (then both are "")."""

    principal: str
    acting: str
    signed: bool = True


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message was refused: ``reason`` (one of :data:`REASONS`), a one-line ``message`` naming the
    principal and why (never a key or signature), and the principal the message claims (None if none)."""

    reason: str
    message: str
    principal: str | None = None


UNSIGNED = Identity("", "", signed=False)


# ---- canonical form and signing ------------------------------------------------------------------------

def canonical_bytes(msg: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: :data:`DOMAIN` + the message (its ``auth`` without ``sig``) as orjson
    with sorted keys. TypeError if the message cannot be written as JSON (e.g. an int beyond 64 bits).

    >>> canonical_bytes({"b": 1, "a": [1.5, "x"], "auth": {"sig": "zz", "principal": "p"}})
    b'aiotstream.auth/1\\n{"a":[1.5,"x"],"auth":{"principal":"p"},"b":1}'
    """
    body = dict(msg)
    a = body.get("auth")
    if isinstance(a, Mapping):
        body["auth"] = {k: v for k, v in a.items() if k != "sig"}
    try:
        return DOMAIN + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"not JSON: {exc}") from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_nonce() -> str:
    """A random nonce: 16 random bytes as base64url (22 characters)."""
    return _b64(secrets.token_bytes(16))


def sign(msg: Mapping[str, Any], principal: str, key: Any, *, alg: str, now_ns: int | None = None,
         nonce: str | None = None, on_behalf_of: str | None = None) -> dict[str, Any]:
    """``msg`` with an ``auth`` object signed by ``principal`` (any ``auth`` it had is replaced).

    ``key``: an Ed25519 private key (``cryptography``) for ``ed25519``, the secret bytes for ``hmac-sha256``
    (or a :class:`Key`). ``now_ns`` (default: the wall clock) becomes ``auth.ts``; ``nonce`` (default: 16
    random bytes) must be unique per principal within the verifier's freshness window.
    """
    if isinstance(key, Key):
        key = key.key
    if alg not in ALGS:
        raise ValueError(f"alg must be one of {', '.join(ALGS)}, got {alg!r}")
    if not _PRINCIPAL.match(principal):
        raise ValueError(f"principal {principal!r} is not a valid principal id")
    a: dict[str, Any] = {"principal": principal, "ts": time.time_ns() if now_ns is None else int(now_ns),
                         "nonce": new_nonce() if nonce is None else nonce, "alg": alg}
    if on_behalf_of is not None:
        a["on_behalf_of"] = on_behalf_of
    out = {k: v for k, v in msg.items() if k != "auth"}
    out["auth"] = a
    data = canonical_bytes(out)
    if alg == "hmac-sha256":
        if not isinstance(key, bytes | bytearray):
            raise TypeError("an hmac-sha256 key is the secret's bytes")
        sig = hmac.new(bytes(key), data, hashlib.sha256).digest()
    else:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError("an ed25519 key is an Ed25519 private key")
        sig = key.sign(data)
    a["sig"] = _b64(sig)
    return out


# ---- key files -------------------------------------------------------------------------------------------

def load_public_key(path: str, field: str) -> Key:
    """An Ed25519 public key (PEM) from ``path``; ConfigError naming ``field`` otherwise."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError("[auth]", [(field, f"{path}: cannot read: {exc.strerror}")]) from None
    try:
        pub = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError("[auth]", [(field, f"{path}: not a PEM public key")]) from None
    if not isinstance(pub, Ed25519PublicKey):
        raise ConfigError("[auth]", [(field, f"{path}: not an Ed25519 public key ({type(pub).__name__})")])
    return Key("ed25519", pub)


def load_secret(path: str, field: str) -> Key:
    """An HMAC-SHA256 secret (the file's first line, at least :data:`MIN_SECRET_BYTES` bytes)."""
    try:
        secret = read_secret_bytes(path, field)
    except AiotError as exc:
        raise ConfigError("[auth]", [(field, str(exc).removeprefix(f"{field}: "))]) from None
    if len(secret) < MIN_SECRET_BYTES:
        why = f"{path}: an HMAC secret needs at least {MIN_SECRET_BYTES} bytes (got {len(secret)})"
        raise ConfigError("[auth]", [(field, why)])
    return Key("hmac-sha256", secret)


def load_private_key(path: str, field: str = "--key", passphrase_file: str | None = None) -> Key:
    """An Ed25519 private key (PEM, PKCS#8; encrypted with the passphrase in ``passphrase_file`` if given).
    AiotError naming ``field`` if it cannot be read, is encrypted without a passphrase, or is another key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AiotError(f"{field}: cannot read {path!r} ({exc.strerror})") from None
    password = read_secret_bytes(passphrase_file, f"{field} passphrase file") if passphrase_file else None
    try:
        key = load_pem_private_key(data, password=password)
    except TypeError:
        hint = "it is encrypted: give its passphrase file" if password is None else \
            "it is not encrypted: leave out the passphrase file"
        raise AiotError(f"{field}: {path!r}: {hint}") from None
    except ValueError:
        raise AiotError(f"{field}: {path!r} is not a PEM private key, or the passphrase is wrong") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AiotError(f"{field}: {path!r} is not an Ed25519 private key ({type(key).__name__})")
    return Key("ed25519", key)


def load_signing_key(path: str, alg: str, field: str = "--key", passphrase_file: str | None = None) -> Key:
    """The key to sign with: an Ed25519 private key PEM (``ed25519``) or an HMAC secret file."""
    if alg == "hmac-sha256":
        secret = read_secret(path, field).encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise AiotError(f"{field}: an HMAC secret needs at least {MIN_SECRET_BYTES} bytes "
                            f"(got {len(secret)})")
        return Key(alg, secret)
    if alg != "ed25519":
        raise AiotError(f"--alg: must be one of {', '.join(ALGS)}, got {alg!r}")
    return load_private_key(path, field, passphrase_file)


def load_keys(cfg: AuthConfig) -> dict[str, Key]:
    """Every principal's verifying key from its file; one ConfigError with every problem's path."""
    keys: dict[str, Key] = {}
    problems: list[tuple[str, str]] = []
    for i, p in enumerate(cfg.principals):
        try:
            if p.public_key_file is not None:
                keys[p.id] = load_public_key(p.public_key_file, f"auth.principals[{i}].public_key_file")
            elif p.secret_file is not None:
                keys[p.id] = load_secret(p.secret_file, f"auth.principals[{i}].secret_file")
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("[auth]", problems)
    return keys


def generate_keypair() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PKCS#8 PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = Ed25519PrivateKey.generate()
    private = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    public = k.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


# ---- verification ----------------------------------------------------------------------------------------

def _shown(value: Any) -> str:
    """A claimed value for a refusal's text: a valid principal id as is, anything else cut and repr'd."""
    if isinstance(value, str) and _PRINCIPAL.match(value):
        return value
    return repr(value)[:40]


class ReplayCache:
    """The nonces seen, per principal, until they can no longer be fresh (bounded; oldest expiry first).

    An entry is kept until the worker's clock passes the message's ``ts`` + ``max_age_s`` (after which the
    message is refused as expired anyway) and at least ``max_age_s + max_future_s`` after it was seen (so a
    clock stepped back does not make a forgotten nonce usable while its message is still fresh)."""

    def __init__(self, max_entries: int, horizon_ns: int):
        self.max_entries = max_entries
        self.horizon_ns = horizon_ns
        self._until: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()  # the flow's workers in one process share the decode step's verifier

    def __len__(self) -> int:
        return len(self._until)

    def _purge(self, now: int, everything: bool = False) -> None:
        """Forget expired entries: those at the front (entries come roughly in expiry order), or, when the
        cache is full, every one."""
        until = self._until
        if everything:
            for key in [k for k, t in until.items() if t <= now]:
                del until[key]
            return
        while until:
            key, t = next(iter(until.items()))
            if t > now:
                break
            del until[key]

    def seen(self, principal: str, nonce: str, ts_ns: int, now: int) -> bool | None:
        """True if (principal, nonce) was seen and has not expired; else remember it and False. None when
        the cache is full of live entries (the caller refuses the message rather than forget one)."""
        with self._lock:
            return self._seen(principal, nonce, ts_ns, now)

    def _seen(self, principal: str, nonce: str, ts_ns: int, now: int) -> bool | None:
        self._purge(now)
        key = (principal, nonce)
        if key in self._until:
            return True
        if len(self._until) >= self.max_entries:
            self._purge(now, everything=True)
            if len(self._until) >= self.max_entries:
                return None
        self._until[key] = max(ts_ns, now) + self.horizon_ns
        return False


class Verifier:
    """Checks signed messages against ``[auth]`` (see the module docstring).

    ``keys`` (default: read from the principals' key files) maps principal id -> :class:`Key`; ``lines``
    maps asset id -> its line, so that ``line:<id>`` in a principal's assets covers the line's assets.
    One per worker process: the replay cache is in memory (docs/security.md).
    """

    def __init__(self, cfg: AuthConfig, now_ns: Callable[[], int] = time.time_ns,
                 keys: Mapping[str, Key] | None = None, lines: Mapping[str, str] | None = None):
        self.cfg = cfg
        self.now_ns = now_ns
        self.keys = dict(load_keys(cfg) if keys is None else keys)
        self.principals = {p.id: p for p in cfg.principals}
        self.lines = dict(lines or {})
        self.max_age_ns = round(cfg.max_age_s * 1e9)
        self.max_future_ns = round(cfg.max_future_s * 1e9)
        self.replays = ReplayCache(cfg.replay_cache_size, self.max_age_ns + self.max_future_ns)
        self._roles = {p.id: frozenset().union(*(ROLE_ACTIONS[r] for r in p.roles)) for p in cfg.principals}
        self._assets = {p.id: frozenset(p.assets) for p in cfg.principals}

    def check(self, obj: Mapping[str, Any], kind: Any, asset: Any) -> Identity | Refusal:
        """Whether ``obj`` (a parsed message, ``auth`` included) may do ``kind`` (a feedback type,
        ``promote``, ``erase``) on ``asset`` (an asset id, ``line:<id>``, or None for site-wide)."""
        if "auth" not in obj:
            if self.cfg.required:
                return Refusal("unsigned", "the message is not signed (no 'auth'); this site requires "
                                           "signed control, feedback and ack messages ([auth])")
            return UNSIGNED
        a = obj["auth"]
        bad = _auth_problem(a)
        if bad is not None:
            claimed = a.get("principal") if isinstance(a, dict) else None
            return Refusal("bad_auth", f"malformed 'auth': {bad}",
                           claimed if isinstance(claimed, str) and _PRINCIPAL.match(claimed) else None)
        pid = a["principal"]
        key = self.keys.get(pid)
        if pid not in self.principals:
            return Refusal("unknown_principal", f"principal {pid} is not in [auth] principals", pid)
        if key is None:
            return Refusal("bad_signature", f"principal {pid} has no key (a console user: the console signs "
                                            "its actions on its behalf)", pid)
        if a["alg"] != key.alg:
            return Refusal("bad_signature", f"principal {pid} signs with {key.alg}, the message says "
                                            f"{a['alg']}", pid)
        if not _verify(key, obj, a["sig"]):
            return Refusal("bad_signature", f"the signature of principal {pid} does not match the message "
                                            "(another key, or the message was changed)", pid)
        now = self.now_ns()
        ts = a["ts"]
        if ts < now - self.max_age_ns:
            ago = (now - ts) / 1e9
            return Refusal("expired", f"signed by {pid} {ago:.0f} s ago, more than auth.max_age_s "
                                      f"({self.cfg.max_age_s:g} s) by this worker's clock", pid)
        if ts > now + self.max_future_ns:
            return Refusal("future_auth", f"signed by {pid} {(ts - now) / 1e9:.0f} s ahead of this worker's "
                                          f"clock, more than auth.max_future_s ({self.cfg.max_future_s:g} s)",
                           pid)
        seen = self.replays.seen(pid, a["nonce"], ts, now)
        if seen is None:
            n = self.cfg.replay_cache_size
            return Refusal("replayed", f"the replay cache is full ({n} nonces within the freshness "
                                       "window): refused rather than risk a replay "
                                       "(auth.replay_cache_size)", pid)
        if seen:
            return Refusal("replayed", f"principal {pid} sent this nonce before (a replayed message)", pid)
        acting = pid
        behalf = a.get("on_behalf_of")
        if behalf is not None:
            if "console" not in self.principals[pid].roles:
                return Refusal("forbidden", f"principal {pid} signs on behalf of {behalf} but does not have "
                                            "the console role", pid)
            if behalf not in self.principals:
                return Refusal("forbidden", f"principal {pid} signs on behalf of {behalf}, who is not in "
                                            "[auth] principals", pid)
            acting = behalf
        who = acting if acting == pid else f"{acting} (signed by {pid})"
        if not isinstance(kind, str) or kind not in self._roles[acting]:  # (a list or object is not a kind)
            roles = ", ".join(self.principals[acting].roles)
            return Refusal("forbidden", f"{who} may not send {_shown(kind)} messages (roles: {roles})", pid)
        if not self.allows_asset(acting, asset):
            where = "site-wide" if asset is None else f"for {_shown(asset)}"
            return Refusal("forbidden", f"{who} may not act {where} (auth assets)", pid)
        by = obj.get("by")
        if by is not None and by != acting:
            return Refusal("forbidden", f"the message says by {_shown(by)} but is signed for {acting}", pid)
        return Identity(pid, acting)

    def allows_asset(self, pid: str, asset: Any) -> bool:
        """Whether principal ``pid`` may act on ``asset`` (asset id, ``line:<id>``, None = site-wide)."""
        mine = self._assets.get(pid, frozenset())
        if ALL_ASSETS in mine:
            return True
        if not isinstance(asset, str):
            return False
        if asset in mine:
            return True
        line = self.lines.get(asset)
        return line is not None and f"line:{line}" in mine


def _auth_problem(a: Any) -> str | None:
    """What is wrong with an ``auth`` object's shape, or None."""
    if not isinstance(a, dict):
        return f"must be an object, got {type(a).__name__}"
    missing = sorted(AUTH_FIELDS - a.keys())
    if missing:
        return f"lacks field(s) {', '.join(missing)}"
    extra = sorted(str(k)[:32] for k in a.keys() - AUTH_FIELDS - OPTIONAL_AUTH_FIELDS)
    if extra:
        return f"unknown field(s) {', '.join(extra)}"
    if not isinstance(a["principal"], str) or not _PRINCIPAL.match(a["principal"]):
        return "'principal' must be a principal id (1..64 of letters, digits, '.', '_', '@', '-')"
    ts = a["ts"]
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts <= MAX_TS_NS:
        return "'ts' must be integer ns since the epoch"
    if not isinstance(a["nonce"], str) or not _NONCE.match(a["nonce"]):
        return "'nonce' must be 16..64 base64url characters"
    if a["alg"] not in ALGS:
        return f"'alg' must be one of {', '.join(ALGS)}"
    if not isinstance(a["sig"], str) or not _SIG.match(a["sig"]):
        return "'sig' must be base64url without padding"
    behalf = a.get("on_behalf_of")
    if "on_behalf_of" in a and (not isinstance(behalf, str) or not _PRINCIPAL.match(behalf)):
        return "'on_behalf_of' must be a principal id"
    return None


def _verify(key: Key, obj: Mapping[str, Any], sig_text: str) -> bool:
    try:
        sig = _unb64(sig_text)
        data = canonical_bytes(obj)
    except (binascii.Error, ValueError, TypeError):
        return False
    if key.alg == "hmac-sha256":
        return hmac.compare_digest(hmac.new(key.key, data, hashlib.sha256).digest(), sig)
    from cryptography.exceptions import InvalidSignature

    try:
        key.key.verify(sig, data)
    except InvalidSignature:
        return False
    return True


# ---- what a flow does with a message ---------------------------------------------------------------------

def scope_of(obj: Mapping[str, Any]) -> Any:
    """The asset a message acts on, for authorisation: its ``asset``; else ``line:<line>`` for a line-wide
    maintenance message; else None (site-wide). A value of the wrong type is returned as is (only ``*``
    allows it; the decoder refuses the message anyway)."""
    if "asset" in obj and obj["asset"] is not None:
        return obj["asset"]
    line = obj.get("line")
    if line is not None:
        return f"line:{line}" if isinstance(line, str) else line
    return None


def admit(verifier: Verifier, obj: Mapping[str, Any]) -> tuple[dict[str, Any], Identity] | Refusal:
    """Check a parsed message; if accepted, the message without ``auth`` and, when it was signed, with
    ``by`` set to the acting principal (what the decoders see), and the identity."""
    kind = obj.get("type")
    got = verifier.check(obj, kind, scope_of(obj))
    if isinstance(got, Refusal):
        return got
    out = {k: v for k, v in obj.items() if k != "auth"}
    if got.signed:
        out["by"] = got.acting
    return out, got


def warning_without_auth(topics: list[str]) -> str:
    """The WARNING a flow logs at start when its site has no ``[auth]``."""
    return (f"no [auth] in the site config: control, feedback and ack messages are not authenticated; anyone "
            f"who can write to {', '.join(topics) or 'the feedback and control topics'} can acknowledge "
            "alerts, approve commands and promote models (docs/security.md)")


# ---- the flows' decoders with [auth] ---------------------------------------------------------------------

class Refused(DecodeError):
    """A message the :class:`Verifier` refused, as the decoders' error (its ``reason`` is the refusal's;
    ``principal`` the one the message claims, for the dead letter and the audit trail)."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.reason, refusal.message)
        self.principal = refusal.principal


def refusal_extra(exc: BaseException) -> dict[str, Any]:
    """What a dead letter of ``exc`` adds: the claimed ``principal`` of a refused message, else nothing."""
    return {"principal": exc.principal} if isinstance(exc, Refused) else {}


def site_verifier(config: Any, now_ns: Callable[[], int] = time.time_ns) -> Verifier | None:
    """The verifier of a site with ``[auth]`` (keys read from their files now), else None."""
    if config.auth is None:
        return None
    lines = {a.id: a.line for a in config.all_assets() if a.line}
    return Verifier(config.auth, now_ns, lines=lines)


def decode_signed(raw: bytes | None, pos: Position, verifier: Verifier | None) -> Frame | Reading | Feedback:
    """:func:`~aiotstream.codecs.decode_any` for a site with ``[auth]``: a feedback message (a JSON object
    with ``schema``) is checked by ``verifier`` first, and decoded without its ``auth``, ``by`` set to the
    acting principal; :class:`Refused` (a DecodeError) if refused. Without a verifier: ``decode_any``."""
    if verifier is None or not raw or raw[:1] not in _JSON_START:
        return decode_any(raw, pos)
    obj = _load_json(raw)
    if isinstance(obj, dict) and "schema" in obj:
        got = admit(verifier, obj)
        if isinstance(got, Refusal):
            raise Refused(got)
        return _feedback(got[0], raw, pos)
    return _reading(obj, raw, pos)


def decode_payload_signed(raw: bytes | None, pos: Position, hints: DecodeHints, asset: str | None,
                          metric: str | None, arrival_ns: int | None,
                          verifier: Verifier | None) -> list[Frame | Reading | Feedback]:
    """:func:`~aiotstream.codecs.iot.decode_payload` for a site with ``[auth]``: a device-facing source
    (MQTT) with ``format = "auto"`` hands its payloads to the decoder that also takes feedback, so they are
    checked as :func:`decode_signed` checks them; every other format gives frames or readings only."""
    if verifier is None or hints.fmt != "auto":
        return decode_payload(raw, pos, hints, asset, metric, arrival_ns)
    if asset is not None:  # as decode_payload: the mapping's asset first, then the payload's
        check_id(asset, "asset (from the topic/node mapping)")
    items = _check_item_asset(decode_signed(raw or b"", pos, verifier), asset)
    for item in items:
        check_id(item.asset)
    return items


def warn_without_auth(config: Any) -> None:
    """At flow start: one WARNING when the site has no ``[auth]`` (see :func:`warning_without_auth`)."""
    if config.auth is None:
        topics = [*config.inputs.feedback_topics, *config.control_topics()]
        log.warning(warning_without_auth(topics))
    else:
        a = config.auth
        log.info("[auth]: %d principal(s); %s control, feedback and ack messages are refused; freshness "
                 "%gs back, %gs ahead", len(a.principals), "unsigned" if a.required else "wrongly signed",
                 a.max_age_s, a.max_future_s)
