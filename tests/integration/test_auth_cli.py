"""``aiotstream auth keygen`` and ``aiotstream auth sign``: a key pair for a principal (private key 0600,
optionally encrypted), messages signed from stdin that the flow's verifier accepts as that principal."""
from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import orjson
from support import cli

from aiotstream.auth import Identity, Refusal, Verifier
from aiotstream.config import AuthConfig

ACK = {"schema": "aiotstream.feedback/1", "type": "ack", "asset": "p1", "alert_type": "anomaly", "ts": 5}


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cli(*args), input=stdin, capture_output=True, timeout=60, check=False)


def test_keygen_then_sign_then_the_verifier_accepts(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("a long passphrase\n")
    keys = tmp_path / "keys"
    gen = run("auth", "keygen", "--out-dir", str(keys), "--principal", "ana", "--passphrase-file",
              str(tmp_path / "pass"))
    assert gen.returncode == 0, gen.stderr
    assert stat.S_IMODE((keys / "ana.pem").stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (keys / "ana.pem").read_bytes()
    assert f'public_key_file = "{keys / "ana.pub"}"'.encode() in gen.stdout
    again = run("auth", "keygen", "--out-dir", str(keys), "--principal", "ana")
    assert again.returncode == 2 and b"ana.pem exists (--force replaces it)" in again.stderr

    signed = run("auth", "sign", "--principal", "ana", "--key", str(keys / "ana.pem"), "--passphrase-file",
                 str(tmp_path / "pass"), stdin=orjson.dumps(ACK))
    assert signed.returncode == 0, signed.stderr
    msg = orjson.loads(signed.stdout)
    assert {k: v for k, v in msg.items() if k != "auth"} == ACK and msg["auth"]["alg"] == "ed25519"
    cfg = AuthConfig(principals=[{"id": "ana", "roles": ["operator"], "public_key_file": str(keys / "ana.pub")}])
    v = Verifier(cfg, now_ns=time.time_ns)
    assert v.check(msg, "ack", "p1") == Identity("ana", "ana")
    assert isinstance(v.check({**msg, "asset": "p2"}, "ack", "p2"), Refusal)

    # an HMAC secret file; a 'by' naming someone else is refused before signing
    (tmp_path / "hmac").write_text("0123456789abcdef0123\n")
    h = run("auth", "sign", "--principal", "ana", "--key", str(tmp_path / "hmac"), "--alg", "hmac-sha256",
            stdin=orjson.dumps({**ACK, "by": "ana"}))
    assert h.returncode == 0 and orjson.loads(h.stdout)["auth"]["alg"] == "hmac-sha256"
    bad = run("auth", "sign", "--principal", "ana", "--key", str(tmp_path / "hmac"), "--alg", "hmac-sha256",
              stdin=orjson.dumps({**ACK, "by": "bob"}))
    assert bad.returncode == 2 and b"says by 'bob'" in bad.stderr and len(bad.stderr.splitlines()) == 1
    junk = run("auth", "sign", "--principal", "ana", "--key", str(tmp_path / "hmac"), "--alg", "hmac-sha256",
               stdin=b"[1, 2]")
    assert junk.returncode == 2 and b"must be a JSON object, got list" in junk.stderr
