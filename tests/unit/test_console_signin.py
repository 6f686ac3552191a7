"""Console sign-in on a site with [auth] (aiotstream/console/signin.py, app.py), through Starlette's
TestClient: every page asks for a signed-in user; a wrong password (or name) is refused with one text; an
action needs the session's CSRF token and a role (and assets) that allow it, is refused with the reason
otherwise, and goes out signed on behalf of the signed-in user, whatever the form's ``by`` says; logging out
ends the session on the server (an old copy of the cookie is worth nothing); repeated failures lock a name.
Without [auth] the console works as before and says on every page that its actions are unsigned."""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from aiotstream.config import default_site
from aiotstream.console.app import COOKIE, build_app
from aiotstream.console.signin import LOCK_S, MAX_FAILURES, SignIn, User
from aiotstream.console.state import ConsoleState
from aiotstream.errors import AiotError

S = 1_000_000_000
T0 = 1_767_225_600_000_000_000
AID = "ab" * 16
CID = "cd" * 16
CID2 = "ef" * 16
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # (cheap hashes: the tests make several)
PASSWORDS = {"eve": "eve's long passphrase", "olaf": "olaf's long passphrase", "lin": "lin's long passphrase"}


class Sender:
    """What the console's Feed offers the app (the broker side is tested in the browser test)."""

    feedback_topic, control_topic = "demo-plant.feedback", None
    unreachable = error = None

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.caught_up = threading.Event()
        self.caught_up.set()

    def send(self, action: Any) -> None:
        self.sent.append(action)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _state() -> ConsoleState:
    s = ConsoleState()
    s.fold("alert", {"alert_id": AID, "event": "opened", "status": "open", "asset": "asset-000", "at_ns": T0,
                     "alert_type": "anomaly", "severity": "critical"})
    for cid, asset in ((CID, "asset-000"), (CID2, "asset-001")):
        s.fold("command", {"command_id": cid, "status": "awaiting_approval", "asset": asset, "at_ns": T0,
                           "actuator": "speed", "value": 1200.0, "expires_at_ns": T0 + 600 * S, "unit": "rpm",
                           "previous_value": 1800.0, "action": {"set": 1200.0}, "rule": "slow",
                           "trigger": {"kind": "alert", "alert_type": "anomaly"}, "requested_at_ns": T0,
                           "mode": "approval"})
    return s


def _signer(msg: dict[str, Any], user: str) -> dict[str, Any]:
    return {**msg, "auth": {"principal": "console", "on_behalf_of": user}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signin(clock: Clock) -> SignIn:
    users = {"eve": User("eve", frozenset({"engineer", "operator"})),
             "olaf": User("olaf", frozenset({"operator"})),
             "lin": User("lin", frozenset({"engineer"}), ("line:line-2",))}
    return SignIn(users, {u: FAST.hash(pw) for u, pw in PASSWORDS.items()}, clock=clock, hasher=FAST)


@pytest.fixture
def console(signin: SignIn) -> tuple[TestClient, Sender]:
    sender = Sender()
    app = build_app(default_site(2), _state(), sender, signin=signin, signer=_signer,  # type: ignore[arg-type]
                    session_secret="x" * 32)
    return TestClient(app, follow_redirects=False), sender


def _login(c: TestClient, user: str, password: str | None = None, nxt: str = "/alerts") -> Any:
    return c.post("/login", data={"user": user, "password": password or PASSWORDS[user], "next": nxt})


def _csrf(c: TestClient, page: str) -> str:
    r = c.get(page)
    assert r.status_code == 200, r.text
    return re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]


def test_every_page_asks_for_a_signed_in_user(console: tuple[TestClient, Sender]) -> None:
    c, _ = console
    for page in ("/alerts", "/commands", "/models", "/kpis", f"/alerts/{AID}"):
        r = c.get(page)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2F"), page
    assert c.get("/alerts", headers={"X-Fragment": "1"}).status_code == 401  # (a live refresh: left as it is)
    assert c.get("/healthz").status_code == 200
    r = c.get("/login")
    assert r.status_code == 200 and 'type="password"' in r.text and "unsigned" not in r.text


def test_a_wrong_password_or_an_unknown_name_is_refused_alike(console: tuple[TestClient, Sender]) -> None:
    c, _ = console
    for user, pw in (("eve", "not eve's password"), ("nobody", "whatever it is"), ("eve", "")):
        r = _login(c, user, pw or " ")
        assert r.status_code == 401 and "wrong user name or password" in r.text
        assert COOKIE not in r.cookies
        assert c.get("/alerts").status_code == 303
    assert "not eve's password" not in r.text


def test_signing_in_sets_an_httponly_samesite_strict_cookie_and_goes_back(
        console: tuple[TestClient, Sender]) -> None:
    c, _ = console
    r = _login(c, "eve", nxt="/commands")
    assert r.status_code == 303 and r.headers["location"] == "/commands"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=") and "httponly" in cookie and "samesite=strict" in cookie
    page = c.get("/commands")
    assert page.status_code == 200 and "Signed in as <b>eve</b>" in page.text
    assert "unsigned" not in page.text and 'id="operator"' not in page.text
    # a redirect target elsewhere is not followed
    for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        assert _login(c, "eve", nxt=elsewhere).headers["location"] == "/alerts"


def test_an_action_is_signed_on_behalf_of_the_signed_in_user(console: tuple[TestClient, Sender]) -> None:
    c, sender = console
    _login(c, "eve")
    token = _csrf(c, "/commands")
    r = c.post(f"/commands/{CID}/approve", data={"csrf": token, "by": "mallory", "note": "go"})
    assert r.status_code == 303 and "ok=" in r.headers["location"], r.headers["location"]
    (action,) = sender.sent
    msg = orjson.loads(action.payload)
    assert (msg["type"], msg["command_id"], msg["by"], msg["note"]) == ("approve", CID, "eve", "go")
    assert msg["auth"] == {"principal": "console", "on_behalf_of": "eve"}
    assert action.summary.startswith("eve: approve")


def test_an_action_without_the_sessions_csrf_token_is_refused(console: tuple[TestClient, Sender]) -> None:
    c, sender = console
    _login(c, "eve")
    good = _csrf(c, "/alerts")
    for data in ({}, {"csrf": ""}, {"csrf": good[:-1] + ("A" if good[-1] != "A" else "B")}):
        r = c.post(f"/alerts/{AID}/ack", data=data)
        assert r.status_code == 303 and "CSRF" in r.headers["location"]
    assert sender.sent == []
    # another session's token is not this one's
    other = TestClient(c.app, follow_redirects=False)
    _login(other, "olaf")
    r = other.post(f"/alerts/{AID}/ack", data={"csrf": good})
    assert "CSRF" in r.headers["location"] and sender.sent == []
    assert "ok=" in c.post(f"/alerts/{AID}/ack", data={"csrf": good}).headers["location"]
    assert len(sender.sent) == 1


def test_an_operator_cannot_approve_and_the_page_says_why(console: tuple[TestClient, Sender]) -> None:
    c, sender = console
    _login(c, "olaf")
    page = c.get("/commands").text
    approve = re.search(rf'formaction="/commands/{CID}/approve" class="approve"[^>]*>', page).group(0)  # type: ignore[union-attr]
    assert "disabled" in approve and "needs the engineer role" in approve
    token = _csrf(c, "/commands")
    r = c.post(f"/commands/{CID}/approve", data={"csrf": token})
    assert r.status_code == 303
    where = c.get(r.headers["location"]).text
    assert "olaf (operator) may not approve commands: that needs the engineer role" in where
    assert sender.sent == []
    # ... but may acknowledge an alert (its button is live)
    ack = re.search(rf'formaction="/alerts/{AID}/ack" class="ack"[^>]*>', c.get("/alerts").text).group(0)  # type: ignore[union-attr]
    assert "disabled" not in ack
    assert "ok=" in c.post(f"/alerts/{AID}/ack", data={"csrf": token}).headers["location"]
    assert orjson.loads(sender.sent[0].payload)["by"] == "olaf"


def test_a_user_acts_only_on_the_assets_of_its_lines(console: tuple[TestClient, Sender]) -> None:
    c, sender = console
    _login(c, "lin")  # engineer for line-2 (asset-001) only
    page = c.get("/commands").text
    assert "disabled" in re.search(rf'formaction="/commands/{CID}/approve"[^>]*>', page).group(0)  # type: ignore[union-attr]
    assert "disabled" not in re.search(rf'formaction="/commands/{CID2}/approve"[^>]*>', page).group(0)  # type: ignore[union-attr]
    token = _csrf(c, "/commands")
    r = c.post(f"/commands/{CID}/approve", data={"csrf": token})
    assert "not+among+the+user%27s+assets" in r.headers["location"] and sender.sent == []
    assert "ok=" in c.post(f"/commands/{CID2}/approve", data={"csrf": token}).headers["location"]
    assert orjson.loads(sender.sent[0].payload)["asset"] == "asset-001"
    # site-wide actions need "*" (and promote needs model_admin anyway)
    r = c.post("/models/promote", data={"csrf": token, "ref": "pm@2"})
    assert "needs+the+model_admin+role" in r.headers["location"]


def test_logging_out_ends_the_session_on_the_server(console: tuple[TestClient, Sender]) -> None:
    c, sender = console
    _login(c, "eve")
    token = _csrf(c, "/alerts")
    stolen = c.cookies.get(COOKIE)
    r = c.post("/logout")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert c.get("/alerts").status_code == 303
    thief = TestClient(c.app, follow_redirects=False, cookies={COOKIE: stolen})
    assert thief.get("/alerts").status_code == 303
    r = thief.post(f"/alerts/{AID}/ack", data={"csrf": token})
    assert r.headers["location"].startswith("/login") and sender.sent == []


def test_a_login_from_another_sites_page_is_refused(console: tuple[TestClient, Sender]) -> None:
    c, _ = console
    r = c.post("/login", data={"user": "eve", "password": PASSWORDS["eve"]},
               headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 401 and "another site" in r.text and COOKIE not in r.cookies


def test_repeated_failures_lock_the_name_for_a_while(console: tuple[TestClient, Sender], clock: Clock) -> None:
    c, _ = console
    for _ in range(MAX_FAILURES):
        assert "wrong user name or password" in _login(c, "eve", "guess guess guess").text
    r = _login(c, "eve")  # the right password: still refused while locked
    assert r.status_code == 401 and "too many failed sign-ins for &#39;eve&#39;" in r.text
    assert _login(c, "olaf").status_code == 303  # (other names are not locked)
    clock.t += LOCK_S + 1
    assert _login(c, "eve").status_code == 303


def test_failures_spread_out_do_not_lock(signin: SignIn, clock: Clock) -> None:
    for _ in range(3 * MAX_FAILURES):
        assert signin.check("eve", "guess guess guess") == "wrong user name or password"
        clock.t += LOCK_S / (MAX_FAILURES - 1) + 1
    assert isinstance(signin.check("eve", PASSWORDS["eve"]), User)


def test_concurrent_failures_still_lock_the_name(signin: SignIn) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # (the app checks passwords in worker threads)
        got = list(pool.map(lambda _: signin.check("eve", "guess guess guess"), range(4 * MAX_FAILURES)))
    assert got.count("wrong user name or password") >= MAX_FAILURES
    assert all(g == "wrong user name or password" or g.startswith("too many failed sign-ins") for g in got)
    assert str(signin.check("eve", PASSWORDS["eve"])).startswith("too many failed sign-ins for 'eve'")


def test_sessions_expire(console: tuple[TestClient, Sender], clock: Clock) -> None:
    from aiotstream.console.signin import SESSION_S

    c, _ = console
    _login(c, "eve")
    assert c.get("/alerts").status_code == 200
    clock.t += SESSION_S + 1
    assert c.get("/alerts").status_code == 303


def test_without_auth_the_console_works_as_before_and_says_actions_are_unsigned() -> None:
    sender = Sender()
    c = TestClient(build_app(default_site(2), _state(), sender), follow_redirects=False)  # type: ignore[arg-type]
    page = c.get("/commands")
    assert page.status_code == 200 and 'class="flash warn unsigned"' in page.text and 'id="operator"' in page.text
    assert "disabled" not in re.search(rf'formaction="/commands/{CID}/approve"[^>]*>', page.text).group(0)  # type: ignore[union-attr]
    r = c.post(f"/commands/{CID}/approve", data={"by": "bo"})
    assert "ok=" in r.headers["location"]
    msg = orjson.loads(sender.sent[0].payload)
    assert msg["by"] == "bo" and "auth" not in msg
    assert c.get("/login").headers["location"].startswith("/alerts?error=")
    assert "set-cookie" not in page.headers


def test_password_hash_files_are_read_at_start(tmp_path: Path) -> None:
    from types import SimpleNamespace as P

    (tmp_path / "eve.pw").write_text(FAST.hash("a long password") + "\n")
    (tmp_path / "bad.pw").write_text("plaintext\n")
    ps = [P(id="eve", roles=["engineer"], assets=["*"], password_hash_file=str(tmp_path / "eve.pw")),
          P(id="dev", roles=["device"], assets=["asset-000"], password_hash_file=None)]
    s = SignIn.from_principals(ps, hasher=FAST)
    assert list(s.users) == ["eve"] and isinstance(s.check("eve", "a long password"), User)
    assert s.check("dev", "anything at all") == "wrong user name or password"
    with pytest.raises(AiotError, match=r"auth.principals\[1\].password_hash_file: .* holds no argon2 hash"):
        SignIn.from_principals([ps[0], P(id="x", roles=["operator"], password_hash_file=str(tmp_path / "bad.pw"))])
    with pytest.raises(AiotError, match=r"auth.principals\[0\].password_hash_file: cannot read"):
        SignIn.from_principals([P(id="x", roles=["operator"], password_hash_file=str(tmp_path / "none"))])


def _auth_site(tmp: Path, console_roles: list[str] | None = None) -> Any:
    from aiotstream.auth import generate_keypair

    priv, pub = generate_keypair()
    (tmp / "console.key").write_bytes(priv)
    (tmp / "console.pub").write_bytes(pub)
    (tmp / "eve.pw").write_text(FAST.hash(PASSWORDS["eve"]) + "\n")
    (tmp / "olaf.pw").write_text(FAST.hash(PASSWORDS["olaf"]) + "\n")
    (tmp / "olaf.secret").write_text("olaf's hmac secret, 32 bytes long\n")
    return default_site(2, auth={"principals": [
        {"id": "eve", "roles": ["engineer"], "secret_file": str(tmp / "olaf.secret"),
         "password_hash_file": str(tmp / "eve.pw")},
        {"id": "olaf", "roles": ["operator"], "secret_file": str(tmp / "olaf.secret"),
         "password_hash_file": str(tmp / "olaf.pw")},
        {"id": "console", "roles": console_roles or ["console"], "public_key_file": str(tmp / "console.pub")}]})


def test_the_flows_verifier_takes_what_the_console_signs_as_the_users_action(tmp_path: Path) -> None:
    from aiotstream.auth import Identity, Verifier, admit
    from aiotstream.console.signin import console_signer

    cfg = _auth_site(tmp_path)
    sender = Sender()
    signin = SignIn.from_principals(cfg.auth.principals, hasher=FAST)
    c = TestClient(build_app(cfg, _state(), sender, signin=signin,  # type: ignore[arg-type]
                             signer=console_signer(cfg.auth, "console", str(tmp_path / "console.key"))),
                   follow_redirects=False)
    _login(c, "eve")
    r = c.post(f"/commands/{CID}/approve", data={"csrf": _csrf(c, "/commands"), "by": "mallory"})
    assert "ok=" in r.headers["location"], r.headers["location"]
    msg = orjson.loads(sender.sent[0].payload)
    assert msg["auth"]["principal"] == "console" and msg["auth"]["on_behalf_of"] == "eve"
    verifier = Verifier(cfg.auth, lines={a.id: a.line for a in cfg.all_assets()})
    plain, who = admit(verifier, msg)  # type: ignore[misc]
    assert who == Identity("console", "eve") and plain["by"] == "eve" and "auth" not in plain
    # the same message once more is a replay; changed, its signature no longer matches
    assert admit(verifier, msg).reason == "replayed"  # type: ignore[union-attr]
    assert admit(verifier, {**msg, "command_id": CID2}).reason == "bad_signature"  # type: ignore[union-attr]


def test_the_console_principal_must_be_the_sites_and_have_the_console_role(tmp_path: Path) -> None:
    from aiotstream.console.signin import console_signer

    cfg = _auth_site(tmp_path)
    with pytest.raises(AiotError, match=r"--principal kiosk: not a principal of the site's \[auth\] "
                                        r"\(console principals: console\)"):
        console_signer(cfg.auth, "kiosk", str(tmp_path / "console.key"))
    with pytest.raises(AiotError, match="--principal eve: has roles engineer, not console"):
        console_signer(cfg.auth, "eve", str(tmp_path / "eve.pw"))
    with pytest.raises(AiotError, match="--key: .* is not a PEM private key"):
        console_signer(cfg.auth, "console", str(tmp_path / "console.pub"))


@given(st.text(max_size=40) | st.sampled_from(["//evil.example", "/\\evil.example", "https://x/", "/commands",
                                                "/alerts/ab", "\\\\evil", "/%2F/evil", "/\t/evil.example"]))
def test_the_page_after_sign_in_is_always_one_of_this_consoles(url: str) -> None:
    from urllib.parse import urlsplit

    from aiotstream.console.app import _local

    got = _local(url)
    parts = urlsplit(got)
    assert got.startswith("/") and not got.startswith("//") and parts.scheme == "" and parts.netloc == ""
    assert all(c.isascii() and c.isprintable() and c not in "\\ " for c in got)  # (a browser drops tabs)
    assert got == url or got == "/alerts"
