"""What [auth] costs the decode step: feedback messages through the plant Ingestor unsigned (no [auth]),
HMAC-SHA256-signed and Ed25519-signed, A/B/C alternated in one run (``python -m benchmarks.auth_overhead``).
Prints us per message and the ratios to the unsigned path, with the load average."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiotstream.auth import sign
from aiotstream.config import SiteConfig
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import SourceMessage

S = 1_000_000_000
WALL = 1_767_225_600 * S
N, ROUNDS = 2000, 5


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    secret = b"0123456789abcdef-bench"
    (tmp / "ana.key").write_bytes(secret + b"\n")
    k = Ed25519PrivateKey.generate()
    (tmp / "eve.pub").write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    base = {"site": {"id": "b"}, "assets": [{"id": "p1", "line": "l1"}]}
    auth = {"principals": [{"id": "ana", "roles": ["operator"], "secret_file": str(tmp / "ana.key")},
                           {"id": "eve", "roles": ["operator"], "public_key_file": str(tmp / "eve.pub")}]}
    plain = Ingestor(SiteRuntime(SiteConfig.from_dict(base)), now_ns=lambda: WALL)

    def body(i: int) -> dict:
        return {"schema": "aiotstream.feedback/1", "type": "ack", "asset": "p1", "alert_type": "anomaly",
                "ts": WALL - i}

    results: dict[str, list[float]] = {"unsigned": [], "hmac-sha256": [], "ed25519": []}
    for r in range(ROUNDS):
        signed_ing = Ingestor(SiteRuntime(SiteConfig.from_dict({**base, "auth": auth})), now_ns=lambda: WALL)
        batches = {
            "unsigned": (plain, [orjson.dumps(body(i)) for i in range(N)]),
            "hmac-sha256": (signed_ing, [orjson.dumps(sign(body(i), "ana", secret, alg="hmac-sha256", now_ns=WALL))
                                         for i in range(N)]),
            "ed25519": (signed_ing, [orjson.dumps(sign(body(i), "eve", k, alg="ed25519", now_ns=WALL))
                                     for i in range(N)]),
        }
        order = list(batches) if r % 2 == 0 else list(reversed(batches))
        for name in order:
            ing, raws = batches[name]
            msgs = [SourceMessage("b.feedback", 0, i, raw) for i, raw in enumerate(raws)]
            out: list = []
            t = time.perf_counter()
            ing._decode(msgs, out.append, out.append)
            results[name].append((time.perf_counter() - t) / N)
            assert len(out) == N and not any(hasattr(o, "record") for o in out), name
    best = {k: min(v) for k, v in results.items()}
    print(f"load average {os.getloadavg()[0]:.2f}; best of {ROUNDS} rounds of {N} acks each")
    for name, v in best.items():
        print(f"  {name:12s} {v * 1e6:7.1f} us/message  x{v / best['unsigned']:.2f}")


if __name__ == "__main__":
    main()
