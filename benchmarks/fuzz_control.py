"""Fuzzing the control plane and the configuration: site configs, promotions, feedback, device acks, manifests.

Every generated input must end in exactly one of: an applied effect, a refusal record (``aiotstream.model/1``
``refused``), a dead letter with a reason, or (configs) a :class:`~aiotstream.errors.ConfigError` naming the
bad fields' paths. An *escape* is an exception that leaves those paths (or, for promotions and manifests, a
bad input that was accepted); an input is *lost* when it ends in none of them.

Kinds (``KINDS``; the fuzz harness ``benchmarks/fuzz.py`` imports it, each runner is
``run(kind, cases, seed) -> {"kind", "cases", "escapes", "escape_examples", "lost", "seconds"}``):

``configs``    site configs: a valid plant or building config, mutated (values replaced by NaN, +-inf, 1e308,
               0, negative numbers, huge integers, wrong types; keys dropped or added), loaded from a dict or
               from TOML/YAML/JSON text (sometimes with its bytes damaged); one that loads must also build
               its runtime and an asset's analyzer (what ``run`` does first).
``control``    promotions on ``<site>.control`` through the real decode step and every asset's analyzer of
               an ONNX site whose registry holds good, tampered, unsigned, misnamed and malformed artifacts.
``feedback``   ack, clear, label, approve, reject, command_ack and maintenance messages (valid ones naming
               live alerts and commands, and broken ones) through the decode step and the asset analyzers,
               while simulated frames open and clear alerts and rules propose commands.
``acks``       device ``command_ack`` messages only: pending, acked, expired, unknown and other assets'
               commands, repeated, with good and bad statuses and values.
``manifests``  model manifests, the signature field above all (wrong type, length, encoding, algorithm, key
               id), loaded and verified by the registry and, when accepted, by the ONNX loader.

The generators draw from a :class:`Draw`: :class:`RandomDraw` (seeded, fast: what the runners use) or
:class:`HypothesisDraw` (the unit tests, so hypothesis explores and shrinks the same generators).

Run by hand (100,000 cases per kind is the bar of issue 15)::

    python -m benchmarks.fuzz_control --cases 100000            # every kind
    python -m benchmarks.fuzz_control --cases 1000 --kind acks
"""
from __future__ import annotations

import base64
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

S = 1_000_000_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: event time of the runs
WALL = T0 + 10**15  # the decode step's wall clock (far ahead, so no input is "from the future" by accident)


# ---- where the random choices come from --------------------------------------------------------------------
class Draw:
    """The random choices a generator makes (see the module docstring)."""

    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def float(self, lo: float, hi: float) -> float:
        raise NotImplementedError

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def chance(self, p: float) -> bool:
        return self.float(0.0, 1.0) < p

    def text(self, max_len: int = 12) -> str:
        alphabet = "abcxyz019-_. /#+@:é\u00e9\u4e2d\U0001f600\x00\n\"'\\"
        return "".join(self.choice(alphabet) for _ in range(self.int(0, max_len)))


class RandomDraw(Draw):
    """Seeded ``random.Random`` choices: fast, reproducible from the seed."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def float(self, lo: float, hi: float) -> float:
        return self.r.uniform(lo, hi)


class HypothesisDraw(Draw):
    """Choices drawn from hypothesis (``st.data()``), so a failing case shrinks."""

    def __init__(self, data: Any):
        from hypothesis import strategies as st

        self.data = data
        self.st = st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def float(self, lo: float, hi: float) -> float:
        return self.data.draw(self.st.floats(lo, hi))


# ---- generic junk ------------------------------------------------------------------------------------------
EDGE_NUMBERS: tuple[Any, ...] = (0, -1, 1, 0.0, -0.0, 1e308, -1e308, 1e-308, 5e-324, 2**31, 2**53 + 1, 2**63 - 1,
                                 -(2**63), 2**64 - 1, math.nan, math.inf, -math.inf, 0.5, -0.5, 1e9, 1e18, 7)


def number(d: Draw) -> Any:
    """An edge number (NaN, +-inf, 1e308, 0, negative, huge integers) or an ordinary one."""
    k = d.int(0, 3)
    if k == 0:
        return d.choice(EDGE_NUMBERS)
    if k == 1:
        return d.int(-(2**64), 2**64)
    if k == 2:
        return d.float(-1e6, 1e6)
    return d.int(-10, 10_000)


def junk(d: Draw, depth: int = 2) -> Any:
    """Any JSON-ish value (and NaN/inf, which JSON writers turn into null or refuse)."""
    k = d.int(0, 7 if depth > 0 else 5)
    if k == 0:
        return None
    if k == 1:
        return d.chance(0.5)
    if k in (2, 3):
        return number(d)
    if k == 4:
        return d.text()
    if k == 5:
        return d.choice(["", "1.0.0", "true", "null", "nan", "1e400", "x" * 300, "2026-01-01T00:00:00Z", "-1"])
    if k == 6:
        return [junk(d, depth - 1) for _ in range(d.int(0, 3))]
    return {d.text(6): junk(d, depth - 1) for _ in range(d.int(0, 3))}


def dumps(obj: Any) -> bytes:
    """JSON bytes; numbers JSON cannot hold (NaN, inf, beyond 64-bit) are written as literals anyway, as a
    careless producer might (the decoder must cope)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits
        import json

        return json.dumps(obj, default=str).encode()


def damage(d: Draw, raw: bytes) -> bytes:
    """The bytes cut, flipped, repeated or replaced."""
    k = d.int(0, 4)
    if not raw or k == 0:
        return bytes(d.int(0, 255) for _ in range(d.int(0, 40)))
    i = d.int(0, len(raw) - 1)
    if k == 1:
        return raw[:i]
    if k == 2:
        return raw[:i] + bytes([raw[i] ^ (1 << d.int(0, 7))]) + raw[i + 1:]
    if k == 3:
        return raw[:i] + raw[i:i + 8] * d.int(2, 50) + raw[i:]
    return raw.replace(b"1", d.choice([b"1e400", b"NaN", b"-", b"99999999999999999999999", b"\"1\""]))


# ---- a small ONNX registry for an ONNX site -----------------------------------------------------------------
def tiny_onnx(n_in: int, output: str = "scores") -> bytes:
    """scores = sum of the row's features, ``[N, 1]`` (needs the ``onnx`` package: the dev extra)."""
    from onnx import TensorProto, helper

    ident = helper.make_node("Identity", ["X"], ["X_in"])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceSum", ["X_in", "axes"], [output], keepdims=1)
    g = helper.make_graph([ident, node], "tiny", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_in])],
                          [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, 1])], [axes])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


GOOD_VERSIONS = ("1.0.0", "1.1.0", "1.2.0-int8")
BAD_VERSIONS = {  # version -> what is wrong with it (each must be refused, the running model staying)
    "2.0.0": "model bytes changed after signing (hash mismatch)",
    "2.1.0": "manifest changed after signing (bad signature)",
    "2.2.0": "unsigned",
    "2.3.0": "trained on other feature columns",
    "2.4.0": "signature is a string",
    "2.5.0": "signature is a list",
    "2.6.0": "signature value is not base64",
    "2.7.0": "signature value has the wrong length",
    "2.8.0": "signature without a value",
    "2.9.0": "signature by an unknown algorithm",
    "2.10.0": "signature value is a number",
    "2.11.0": "manifest is a JSON array",
    "2.12.0": "manifest is not JSON",
    "2.13.0": "score block with NaN center",
    "2.14.0": "feature_names is a string",
    "2.15.0": "model file missing",
    "2.16.0": "manifest names another version",
}


def onnx_registry(root: Path, columns: list[str]) -> dict[str, Any]:
    """A registry of model ``pm``: :data:`GOOD_VERSIONS` signed with a new Ed25519 key, and one artifact per
    entry of :data:`BAD_VERSIONS`. Returns ``{"root", "pub", "manifest"}`` (a good manifest, as a dict)."""
    from aiotstream.models.registry import ModelRegistry, generate_keypair

    priv, pub = generate_keypair(root / "keys")
    reg = ModelRegistry(root / "reg", verify_key=pub)
    score = {"input": "X", "output": "scores", "sign": 1.0, "center": 1.0, "scale": 0.5,
             "impute": [0.0] * len(columns)}

    def publish(version: str, cols: list[str] = columns, signed: bool = True) -> Path:
        reg.publish("pm", version, tiny_onnx(len(cols)), feature_names=cols, training_data="fuzz", metrics={},
                    score={**score, "impute": [0.0] * len(cols)}, signing_key=priv if signed else None)
        return reg.path("pm", version)

    for v in GOOD_VERSIONS:
        publish(v)
    good = orjson.loads((reg.path("pm", "1.0.0") / "manifest.json").read_bytes())

    def edit(version: str, change: Callable[[dict], Any]) -> None:
        mf = publish(version) / "manifest.json"
        d = orjson.loads(mf.read_bytes())
        out = change(d)
        mf.write_bytes(out if isinstance(out, bytes) else orjson.dumps(d if out is None else out))

    p = publish("2.0.0")
    (p / "model.onnx").write_bytes(tiny_onnx(len(columns) + 1))
    edit("2.1.0", lambda d: d.update(training_data="changed"))
    publish("2.2.0", signed=False)
    publish("2.3.0", cols=[c + "_other" for c in columns])
    edit("2.4.0", lambda d: d.update(signature="ed25519:deadbeef"))
    edit("2.5.0", lambda d: d.update(signature=["ed25519", "AAAA"]))
    edit("2.6.0", lambda d: d["signature"].update(value="not base64 at all!"))
    edit("2.7.0", lambda d: d["signature"].update(value=base64.b64encode(b"short").decode()))
    edit("2.8.0", lambda d: d["signature"].pop("value") and None)
    edit("2.9.0", lambda d: d["signature"].update(alg="rsa"))
    edit("2.10.0", lambda d: d["signature"].update(value=12345))
    edit("2.11.0", lambda d: [d])
    edit("2.12.0", lambda d: b"{not json")
    edit("2.13.0", lambda d: d.update(score={**d["score"], "center": "NaN"}))
    edit("2.14.0", lambda d: d.update(feature_names="x.mean"))
    os.remove(publish("2.15.0") / "model.onnx")
    edit("2.16.0", lambda d: d.update(version="1.0.0"))
    return {"root": root / "reg", "pub": pub, "manifest": good}


def site_columns(n_assets: int = 3) -> list[str]:
    """The feature columns of :func:`onnx_site`'s assets (what its models must be trained on)."""
    from aiotstream.analysis import SiteRuntime
    from aiotstream.config import default_site

    cfg = default_site(n_assets)
    return SiteRuntime(cfg).columns(cfg.all_assets()[0])


def onnx_site(registry: dict[str, Any], n_assets: int = 3, site_id: str = "fz", **onnx: Any) -> Any:
    """A site of ``n_assets`` whose champion is ``pm@1.0.0`` from :func:`onnx_registry`'s registry."""
    from aiotstream.config import SiteConfig, default_site

    data = default_site(n_assets, site_id=site_id, inputs={"tail": False}).model_dump(mode="json")
    data["model"] = {"kind": "onnx", "name": "pm", "version": "1.0.0", "drift_detector": "none",
                     "onnx": {"registry": str(registry["root"]), "verify_key": str(registry["pub"]), **onnx}}
    return SiteConfig.from_dict(data)
