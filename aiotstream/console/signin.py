"""Console sign-in (sites with ``[auth]``): users, passwords, sessions, CSRF tokens, role gating.

* Users are the site's ``[[auth.principals]]`` that have a ``password_hash_file`` (an argon2 hash made by
  ``aiotstream auth hash-password``); the hashes are read when the console starts. Other principals (devices,
  the console itself, scripts with keys) cannot sign in.
* A password is checked with argon2-cffi (:class:`argon2.PasswordHasher`); an unknown user costs the same
  hash check as a known one. After ``MAX_FAILURES`` failed sign-ins for one user name within ``LOCK_S``, that
  name is locked for ``LOCK_S`` (a refusal says until when; no password is checked meanwhile).
* A session is a random id in Starlette's signed session cookie (itsdangerous; HttpOnly, SameSite=Strict)
  and, on the server, the user, the session's CSRF token and its expiry: logging out (or a restart) ends it
  at once, whatever a copy of the cookie says. Every action form carries the CSRF token; a POST without the
  session's token is refused.
* An action is allowed by the ROLES AND ASSETS of the signed-in user (:data:`ACTION_ROLES`, as the flow's
  verifier checks them: the console signs on the user's behalf and its own role grants nothing).

Nothing here logs or shows a password, a hash, a session id or a token.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from aiotstream.auth import load_signing_key, sign
from aiotstream.config.auth import ROLE_ACTIONS
from aiotstream.errors import AiotError
from aiotstream.secretfiles import read_secret

ACTION_WORDS = {"ack": "acknowledge alerts", "clear": "clear alerts", "label": "label alerts",
                "approve": "approve commands", "reject": "reject commands",
                "maintenance": "announce maintenance", "promote": "promote models",
                "rollback": "roll back models"}
_KINDS = {"rollback": "promote"}  # (a rollback is a promote message)
ACTION_ROLES: dict[str, str] = {
    action: next(r for r, kinds in ROLE_ACTIONS.items() if _KINDS.get(action, action) in kinds)
    for action in ACTION_WORDS}
"""The role each console action needs: the flow's role table (:data:`aiotstream.config.auth.ROLE_ACTIONS`)."""
CONCURRENT_CHECKS = 2
"""Password checks at once (each argon2 check holds 64 MiB for tens of ms): more sign-ins wait their turn,
so a flood of them cannot take the console's memory."""
MAX_FAILURES = 5
LOCK_S = 300.0
SESSION_S = 12 * 3600
MAX_PASSWORD = 1024
MAX_NAME = 64
_TRACKED = 10_000  # failure counters kept (oldest dropped first): unknown names cannot grow memory forever


@dataclass(frozen=True, slots=True)
class User:
    """A principal who may sign in: its id, roles and assets (``*``, asset ids, ``line:<id>``)."""

    id: str
    roles: frozenset[str]
    assets: tuple[str, ...] = ("*",)

    def covers(self, asset: str | None, line: str | None) -> bool:
        """Whether the user's assets include ``asset`` (of ``line``); site-wide actions (``asset`` None)
        need ``*``."""
        if "*" in self.assets:
            return True
        if asset is None:
            return False
        return asset in self.assets or (line is not None and f"line:{line}" in self.assets)

    def role_refusal(self, action: str) -> str | None:
        """Why this user's roles do not allow ``action``, or None."""
        role = ACTION_ROLES.get(action)
        if role is None:
            return f"unknown action {action!r}"
        if role not in self.roles:
            has = ", ".join(sorted(self.roles)) or "no role"
            return f"{self.id} ({has}) may not {ACTION_WORDS[action]}: that needs the {role} role"
        return None

    def refusal(self, action: str, asset: str | None = None, line: str | None = None) -> str | None:
        """Why this user may not take ``action`` (on ``asset`` of ``line``; None: site-wide), or None."""
        why = self.role_refusal(action)
        if why is not None:
            return why
        words = ACTION_WORDS[action]
        if not self.covers(asset, line):
            where = f"asset {asset}" if asset is not None else "the whole site (assets \"*\")"
            return f"{self.id} may not {words} for {where}: not among the user's assets"
        return None


@dataclass(slots=True)
class Session:
    user: str
    csrf: str
    expires: float


@dataclass(slots=True)
class _Failures:
    count: int = 0
    first: float = 0.0
    locked_until: float = 0.0


@dataclass
class SignIn:
    """The users who may sign in, their password hashes, the live sessions and the failure counters.

    ``clock``: monotonic seconds (tests give their own); ``wall``: for the "locked until" text."""

    users: dict[str, User]
    hashes: dict[str, str]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: dict[str, _Failures] = field(default_factory=dict)
    hasher: PasswordHasher = field(default_factory=PasswordHasher)

    def __post_init__(self) -> None:
        # what an unknown name is checked against, so it takes as long as a known one
        self._decoy = self.hasher.hash(secrets.token_urlsafe(16))
        self._lock = threading.Lock()  # (checks run in worker threads: the failure counters are shared)
        self._checks = threading.BoundedSemaphore(CONCURRENT_CHECKS)

    @classmethod
    def from_principals(cls, principals: Iterable[Any], **kw: Any) -> SignIn:
        """From the site's ``auth.principals`` (objects with ``id``, ``roles``, ``assets``,
        ``password_hash_file``): the hash files are read now (AiotError naming the field when one cannot be
        read or holds no argon2 hash)."""
        users, hashes = {}, {}
        for i, p in enumerate(principals):
            path = getattr(p, "password_hash_file", None)
            if not path:
                continue
            where = f"auth.principals[{i}].password_hash_file"
            h = read_secret(str(path), where).strip()
            if not h.startswith("$argon2"):
                raise AiotError(f"{where}: {str(path)!r} holds no argon2 hash (make one with "
                                "`aiotstream auth hash-password`)")
            users[p.id] = User(p.id, frozenset(p.roles), tuple(getattr(p, "assets", None) or ("*",)))
            hashes[p.id] = h
        return cls(users, hashes, **kw)

    # ---- passwords ---------------------------------------------------------------------------------------
    def check(self, name: str, password: str) -> User | str:
        """The user if ``password`` is ``name``'s; else why not (one text for a wrong name or password, so
        the page does not tell which user names exist; a locked name says until when)."""
        name = (name or "").strip()[:MAX_NAME]
        with self._lock:
            now = self.clock()
            f = self.failures.get(name)
            if f is not None and f.locked_until > now:
                until = time.strftime("%H:%M:%S", time.localtime(self.wall() + (f.locked_until - now)))
                return f"too many failed sign-ins for {name!r}: try again after {until}"
        ok = False
        if password and len(password) <= MAX_PASSWORD:
            h = self.hashes.get(name)
            with self._checks:
                try:
                    ok = self.hasher.verify(h or self._decoy, password) and h is not None
                except (VerifyMismatchError, VerificationError, InvalidHashError):
                    ok = False
        with self._lock:
            if ok:
                self.failures.pop(name, None)
                return self.users[name]
            f = self.failures.get(name)
            if f is None or now - f.first > LOCK_S:
                f = self.failures[name] = _Failures(0, now)
                while len(self.failures) > _TRACKED:
                    self.failures.pop(next(iter(self.failures)))
            f.count += 1
            if f.count >= MAX_FAILURES:
                f.locked_until, f.count, f.first = now + LOCK_S, 0, now
        return "wrong user name or password"

    # ---- sessions ----------------------------------------------------------------------------------------
    def open(self, user: User) -> str:
        """A new session for ``user``: its id (for the signed cookie)."""
        self._expire()
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(user.id, secrets.token_urlsafe(32), self.clock() + SESSION_S)
        return sid

    def session(self, sid: Any) -> Session | None:
        """The live session ``sid`` (None: unknown, ended or expired)."""
        if not isinstance(sid, str):
            return None
        s = self.sessions.get(sid)
        if s is None or s.expires <= self.clock() or s.user not in self.users:
            self.sessions.pop(sid, None)
            return None
        return s

    def close(self, sid: Any) -> None:
        if isinstance(sid, str):
            self.sessions.pop(sid, None)

    def _expire(self) -> None:
        now = self.clock()
        for sid in [k for k, s in self.sessions.items() if s.expires <= now]:
            del self.sessions[sid]

    @staticmethod
    def csrf_ok(session: Session, token: Any) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), session.csrf.encode())


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (argon2-cffi's defaults, RFC 9106's low-memory profile)."""
    return PasswordHasher().hash(password)


def console_signer(auth: Any, principal: str, key_file: str, passphrase_file: str | None = None
                   ) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """How the console signs an action on behalf of a user: as ``principal`` (a principal of the site's
    ``[auth]`` with the ``console`` role) with its key (an Ed25519 private key PEM when the principal has a
    ``public_key_file``, its HMAC secret file when it has a ``secret_file``). AiotError naming the option
    when the principal is not the site's, has no console role, or the key cannot be read."""
    p = auth.principal(principal)
    if p is None:
        known = ", ".join(q.id for q in auth.principals if "console" in q.roles) or "none"
        raise AiotError(f"--principal {principal}: not a principal of the site's [auth] (console principals: "
                        f"{known})")
    if "console" not in p.roles:
        raise AiotError(f"--principal {principal}: has roles {', '.join(p.roles)}, not console: it cannot "
                        "sign on behalf of the signed-in users")
    alg = "ed25519" if p.public_key_file is not None else "hmac-sha256"
    key = load_signing_key(key_file, alg, "--key", passphrase_file)

    def signer(msg: dict[str, Any], user: str) -> dict[str, Any]:
        return sign(msg, principal, key, alg=alg, on_behalf_of=user)

    return signer
