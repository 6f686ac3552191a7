"""OPC UA security settings reach asyncua: a server of the test's own that accepts only Basic256Sha256
SignAndEncrypt and one user/password serves the flow when the site says so, refuses it otherwise (a one-line
error at start), and a flow without security says so once."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiotstream.config import OpcUaInput
from aiotstream.errors import AiotError
from aiotstream.io.broker import free_port
from aiotstream.io.opcua import OpcUaSource, make_client

pytestmark = pytest.mark.integration
asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua
USER, PASSWORD = "operator", "s3cret-Pass"


async def _cert(tmp: Path, name: str, uri: str, server: bool) -> tuple[Path, Path]:
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, cert = tmp / f"{name}-key.pem", tmp / f"{name}-cert.der"
    use = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    await setup_self_signed_certificate(key, cert, uri, "localhost", use, {"commonName": name})
    return cert, key


class _Users:
    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        return User(role=UserRole.User) if (username, password) == (USER, PASSWORD) else None


class SecurePlc:
    """An asyncua server: Basic256Sha256 SignAndEncrypt only, user/password only, one Double node."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/plc/"
        self.tmp = tmp
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        from asyncua import Server

        try:
            cert, key = await _cert(self.tmp, "server", "urn:aiotstream:test-plc", server=True)
            server = Server(user_manager=_Users())  # type: ignore[arg-type]
            await server.init()
            server.set_endpoint(self.endpoint)
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            idx = await server.register_namespace("urn:aiotstream:test-plc")
            await server.nodes.objects.add_variable(ua.NodeId("press.pressure", idx), "pressure", 4.5)
            async with server:
                self.ready.set()
                while not self.done.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
            self.ready.set()


@pytest.fixture
def secure_plc(tmp_path: Path) -> Iterator[SecurePlc]:
    plc = SecurePlc(tmp_path)
    plc.thread.start()
    assert plc.ready.wait(30), "the asyncua server did not start"
    if plc.error:
        raise plc.error
    yield plc
    plc.done.set()
    plc.thread.join(10)


@pytest.fixture
def client_cert(tmp_path: Path) -> tuple[Path, Path]:
    return asyncio.run(_cert(tmp_path, "client", "urn:aiotstream:test-client", server=False))


def cfg(endpoint: str, cert: tuple[Path, Path] | None, **kw: Any) -> OpcUaInput:
    sec = {"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt", "certificate": str(cert[0]),
           "private_key": str(cert[1])} if cert else {}
    return OpcUaInput(endpoint=endpoint, publishing_interval_ms=50, reconnect_min_s=0.2, reconnect_max_s=1.0,
                      nodes=[{"node_id": "ns=2;s=press.pressure", "asset": "press-1", "metric": "pressure"}],
                      **sec, **kw)


def test_what_reaches_asyncua(client_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Policy, mode, certificate (and the application URI in it), user and password from the environment."""
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

    monkeypatch.setenv("PLC_PASSWORD", PASSWORD)
    c = cfg("opc.tcp://127.0.0.1:4840/plc/", client_cert, username=USER, password_env="PLC_PASSWORD",
            server_certificate=str(client_cert[0]))  # any certificate: given, asyncua does not ask the server
    client = asyncio.run(make_client(c))
    assert isinstance(client.security_policy, SecurityPolicyBasic256Sha256)
    assert client.security_policy.Mode == ua.MessageSecurityMode.SignAndEncrypt
    assert client.application_uri == "urn:aiotstream:test-client"
    assert (client._username, client._password) == (USER, PASSWORD)

    pw_file = client_cert[0].parent / "plc.password"
    pw_file.write_text(PASSWORD + "\n")
    from_file = asyncio.run(make_client(c.model_copy(update={"password_env": "", "password_file": str(pw_file)})))
    assert (from_file._username, from_file._password) == (USER, PASSWORD)
    with pytest.raises(AiotError) as err:
        asyncio.run(make_client(c.model_copy(update={"password_env": "", "password_file": "/nonexistent/pw"})))
    assert str(err.value) == ("inputs.opcua.password_file: cannot read secret file '/nonexistent/pw' "
                              "(No such file or directory)")

    monkeypatch.delenv("PLC_PASSWORD")
    with pytest.raises(AiotError, match="'PLC_PASSWORD' is not set"):
        asyncio.run(make_client(c))
    with pytest.raises(AiotError, match="certificate '/nonexistent.der' is not a readable file"):
        asyncio.run(make_client(c.model_copy(update={"certificate": "/nonexistent.der"})))


@pytest.mark.parametrize("secret", ["password_env", "password_file"])
def test_secured_connection_serves_data_and_says_nothing(secret: str, secure_plc: SecurePlc,
                                                         client_cert: tuple[Path, Path],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("PLC_PASSWORD", PASSWORD)
    pw_file = client_cert[0].parent / "plc.password"
    pw_file.write_text(PASSWORD + "\n")
    part = OpcUaSource(cfg(secure_plc.endpoint, client_cert, username=USER,
                           **({"password_env": "PLC_PASSWORD"} if secret == "password_env" else
                              {"password_file": str(pw_file)})), 100).build_part("s", "p", None)
    try:
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = part.next_batch()
            time.sleep(0.02)
        assert got and got[0].asset == "press-1" and b'"value":4.5' in got[0].value
    finally:
        part.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("aiotstream")]
    assert not [r for r in caplog.records if PASSWORD in r.getMessage()]


@pytest.mark.parametrize("case", ["wrong password", "no security"])
def test_refused_at_start_is_a_one_line_error(case: str, secure_plc: SecurePlc, client_cert: tuple[Path, Path],
                                              monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("PLC_PASSWORD", "wrong" if case == "wrong password" else PASSWORD)
    c = cfg(secure_plc.endpoint, client_cert if case == "wrong password" else None, username=USER,
            password_env="PLC_PASSWORD")
    part = OpcUaSource(c, 100).build_part("s", "p", None)
    try:
        deadline = time.monotonic() + 30
        with pytest.raises(AiotError) as err:
            while time.monotonic() < deadline:
                part.next_batch()
                time.sleep(0.02)
        assert "refused the connection" in str(err.value) and "\n" not in str(err.value)
    finally:
        part.close()
    none = [r.getMessage() for r in caplog.records if "security policy None" in r.getMessage()]
    assert len(none) == (1 if case == "no security" else 0)


def test_the_flow_reads_over_sign_and_encrypt(secure_plc: SecurePlc, client_cert: tuple[Path, Path]) -> None:
    """The predictive-maintenance flow itself (Bytewax, the site's OPC UA source) subscribed over Basic256Sha256
    SignAndEncrypt with the password from a file: the PLC's value arrives and decodes (no dead letter)."""
    from datetime import timedelta

    from bytewax.testing import TestingSink, run_main
    from conftest import RecordingSource

    from aiotstream.config import SiteConfig, default_site
    from aiotstream.dataflow import build_flow

    pw_file = client_cert[0].parent / "plc.password"
    pw_file.write_text(PASSWORD + "\n")
    data = default_site(1, inputs={"tail": False}, kpi={"period_s": 1}).model_dump(mode="json")
    data["assets"] = [{"id": "press-1", "channels": ["x"]}]
    data["inputs"]["kind"] = "opcua"
    data["inputs"]["opcua"] = cfg(secure_plc.endpoint, client_cert, username=USER,
                                  password_file=str(pw_file)).model_dump(mode="json")
    site = SiteConfig.from_dict(data)
    assert site.inputs.opcua is not None and site.inputs.opcua.security_mode == "SignAndEncrypt"
    stop = threading.Event()
    seen: list[Any] = []
    src = RecordingSource(OpcUaSource(site.inputs.opcua, 64, stop=stop, idle_stop_s=1.0), seen)

    def stopper() -> None:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()

    t = threading.Thread(target=stopper)
    t.start()
    out: list[Any] = []
    run_main(build_flow(site, src, TestingSink(out), tail=False), epoch_interval=timedelta(seconds=0.5))
    t.join(timeout=30)
    assert seen and seen[0].asset == "press-1" and b'"value":4.5' in seen[0].value
    assert [o for o in out if o.kind == "deadletter"] == []
