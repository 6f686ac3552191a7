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

import argparse
import base64
import copy
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
import traceback
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
    """Choices drawn from hypothesis (``st.data()``), so a failing case shrinks. For generators whose choices
    depend only on earlier choices (manifests). The stateful harnesses (feedback, acks, promotions: their
    ids and clocks change from case to case) take a seed from hypothesis and a :class:`RandomDraw`, since
    hypothesis needs the same draws to give the same case again; so do configs, whose many small draws are
    slow through hypothesis."""

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
    from aiotstream.config import default_site
    from aiotstream.pdm.runtime import SiteRuntime

    cfg = default_site(n_assets)
    return SiteRuntime(cfg).columns(cfg.all_assets()[0])


def onnx_site(registry: dict[str, Any], n_assets: int = 3, site_id: str = "fz", **onnx: Any) -> Any:
    """A site of ``n_assets`` whose champion is ``pm@1.0.0`` from :func:`onnx_registry`'s registry."""
    from aiotstream.config import SiteConfig, default_site

    # frames only: a bounded run without readings would hold every window until the end of input
    data = default_site(n_assets, site_id=site_id, inputs={"tail": False},
                        window={"wait_for_readings": False}).model_dump(mode="json")
    data["model"] = {"kind": "onnx", "name": "pm", "version": "1.0.0", "drift_detector": "none",
                     "onnx": {"registry": str(registry["root"]), "verify_key": str(registry["pub"]), **onnx}}
    return SiteConfig.from_dict(data)


# ---- outcomes ----------------------------------------------------------------------------------------------
class Escape(Exception):
    """An input that left the refusal/dead-letter path (or was accepted although it is bad)."""


def _brief(x: Any, n: int = 160) -> str:
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


# ---- configs -----------------------------------------------------------------------------------------------
def _base_configs() -> list[dict[str, Any]]:
    """A plant config with every optional table (and a building one), valid as they are."""
    plant = {
        "site": {"id": "fz", "flow": "predictive-maintenance"},
        "assets": [{"id": "a1", "line": "l1", "ideal_cycle_time_s": 2.0}],
        "asset_groups": [{"prefix": "g-", "count": 2, "width": 2, "line": "l2"}],
        "inputs": {"kind": "kafka", "poll_batch": 1000, "tail": False,
                   "mqtt": {"port": 1883, "keepalive_s": 30, "session_expiry_s": 3600, "queue_size": 1000,
                            "subscriptions": [{"filter": "p/+/+", "asset": "{1}", "metric": "{2}"}]},
                   "opcua": {"endpoint": "opc.tcp://127.0.0.1:4840", "sampling_interval_ms": 100,
                             "nodes": [{"node_id": "ns=2;i=1", "asset": "a1", "metric": "temperature"}]},
                   "files": {"paths": ["x.csv"], "speed": 1.0}},
        "window": {"length_s": 1.0, "hop_s": 0.5, "allowed_lateness_s": 0.5, "max_future_s": 300,
                   "idle_close_s": 5, "state_ttl_s": 3600},
        "features": {"set": "vibration-basic"},
        "model": {"kind": "zscore", "warmup_windows": 20, "seed": 1, "drift_detector": "adwin",
                  "drift_features": ["x.rms"]},
        "alerts": {"open_threshold": 0.9, "clear_threshold": 0.6, "cooldown_s": 30, "escalate_after_s": 900,
                   "rules": [{"type": "hot", "signal": "temperature.max", "open_threshold": 80.0,
                              "clear_threshold": 75.0, "critical_threshold": 90.0}]},
        "kpi": {"periods_s": [10.0, 60.0], "shifts": [{"name": "A", "start": "06:00", "hours": 8.0}]},
        "maintenance": [{"start": "2026-01-01T06:00:00Z", "end": "2026-01-01T07:00:00Z", "line": "l1"}],
        "control": {"actuators": [{"name": "speed", "initial": 1800.0, "min": 600.0, "max": 1800.0,
                                   "max_step": 300.0, "max_rate_per_s": 50.0, "min_interval_s": 5.0,
                                   "interlocks": [{"name": "hot", "metric": "temperature", "above": 90.0}]}],
                    "rules": [{"name": "slow", "actuator": "speed", "mode": "approval", "approval_timeout_s": 300,
                               "when": {"alert_type": "hot"}, "action": {"set": 1200.0},
                               "revert": {"set": 1800.0}}]},
        "outputs": {"partitions": 3},
    }
    building = {
        "site": {"id": "fb", "flow": "energy-optimization"},
        "kpi": {"periods_s": [60.0]},
        "building": {"interval_s": 60, "zones": [{"id": "z1", "floor": "f1", "adjacent": ["z2"]},
                                                  {"id": "z2", "floor": "f1"}],
                     "zone_groups": [{"prefix": "zg-", "count": 2, "floor": "f2", "adjacency": "chain"}],
                     "waste": {"empty_hvac_after_s": 900, "night_start_h": 1.0, "night_end_h": 5.0}},
    }
    return [plant, building]


BASES = _base_configs()


def _mutate_config(d: Draw, data: Any, depth: int = 0) -> Any:
    """One random change somewhere in the tree: a value replaced (edge numbers above all), a key dropped or
    added, a list emptied or grown."""
    if isinstance(data, dict) and data and depth < 6 and d.chance(0.75):
        key = d.choice(sorted(data, key=str))
        data[key] = _mutate_config(d, data[key], depth + 1)
        return data
    if isinstance(data, list) and data and depth < 6 and d.chance(0.7):
        i = d.int(0, len(data) - 1)
        data[i] = _mutate_config(d, data[i], depth + 1)
        return data
    k = d.int(0, 9)
    if isinstance(data, dict) and k == 0 and data:
        data.pop(d.choice(sorted(data, key=str)))
        return data
    if isinstance(data, dict) and k == 1:
        data[d.choice(["unknown", "lenght_s", "Min", "", "x" * 200])] = junk(d)
        return data
    if isinstance(data, list) and k == 2:
        return [] if d.chance(0.5) else data + copy.deepcopy(data[: d.int(1, 3)])
    if k <= 6 or isinstance(data, (int, float)):
        return number(d)
    return junk(d)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return orjson.dumps(v).decode()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{orjson.dumps(str(k)).decode()} = {_toml_value(x)}" for k, x in v.items()
                               if x is not None) + "}"
    return orjson.dumps(str(v)).decode()


def to_toml(data: dict) -> str:
    """TOML text for ``data``: one ``"key" = <inline value>`` line per top-level key (None values left out)."""
    return "".join(f"{orjson.dumps(str(k)).decode()} = {_toml_value(v)}\n" for k, v in data.items() if v is not None)


def config_case(d: Draw) -> tuple[str, Any]:
    """``(format, data or text)``: a base config with 0-3 random changes, as a dict or as TOML/YAML/JSON text
    (sometimes with its bytes damaged)."""
    data = copy.deepcopy(d.choice(BASES))
    for _ in range(d.int(0, 3)):
        data = _mutate_config(d, data)
    fmt = d.choice(["dict", "dict", "TOML", "YAML", "JSON"])
    if fmt == "dict":
        return fmt, data
    try:
        if fmt == "TOML":
            text = to_toml(data).encode("utf-8", "surrogatepass") if isinstance(data, dict) else b"[1]"
        elif fmt == "YAML":
            import yaml

            text = yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
        else:
            text = dumps(data)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a value the writer cannot say
        return "dict", data if not isinstance(exc, RecursionError) else {}
    if d.chance(0.15):
        text = damage(d, text)
    return fmt, text


class ConfigHarness:
    """Loads a config case; what loads must also build what ``run`` builds first."""

    def step(self, case: tuple[str, Any]) -> str:
        from aiotstream.config import SiteConfig, parse_config_text
        from aiotstream.errors import ConfigError

        fmt, body = case
        try:
            data = body if fmt == "dict" else parse_config_text(body, fmt, "<fuzz>")
            cfg = SiteConfig.from_dict(data, source="<fuzz>")
        except ConfigError as e:
            if not e.problems or any(not p or not m for p, m in e.problems):
                return "lost"  # an error that does not say where or what
            return "refused"
        except Exception as exc:
            raise Escape(f"{type(exc).__name__}: {exc} <- {fmt} {_brief(body)}") from exc
        try:
            self._build(cfg)
        except ConfigError:
            return "refused"  # some checks need the runtime (feature columns of rules): still a ConfigError
        except Exception as exc:
            raise Escape(f"loaded but does not run: {type(exc).__name__}: {exc} <- {_brief(body)}") from exc
        return "loaded"

    @staticmethod
    def _build(cfg: Any) -> None:
        if cfg.building is not None:
            from aiotstream.energy.runtime import BuildingRuntime
            from aiotstream.energy.zone import ZoneState

            rt = BuildingRuntime(cfg)
            ZoneState(rt, cfg.building.all_zones()[0].id)
            return
        from aiotstream.pdm.asset import AssetAnalyzer
        from aiotstream.pdm.runtime import SiteRuntime

        rt = SiteRuntime(cfg)
        AssetAnalyzer(rt, next(iter(rt.assets)))


# ---- feedback and device acks through the decode step and the asset analyzers ---------------------------------
def _plant_config() -> Any:
    """Two assets on two lines, frames only (1 kHz, one 1 s frame per window), an alert on the x channel's RMS,
    an approval rule and an auto rule with device acks, escalation: alerts and commands come and go."""
    from aiotstream.config import SiteConfig

    return SiteConfig.from_dict({
        "site": {"id": "fz"},
        "assets": [{"id": "p1", "line": "l1", "sample_rate_hz": 1000}, {"id": "p2", "line": "l2", "sample_rate_hz": 1000}],
        "inputs": {"tail": False},
        "window": {"length_s": 1.0, "hop_s": 1.0, "allowed_lateness_s": 0.0, "wait_for_readings": False},
        "model": {"warmup_windows": 5, "drift_detector": "none"},
        "alerts": {"escalate_after_s": 3, "max_escalations": 2, "cooldown_s": 0, "history": 50,
                   "maintenance_max_windows": 16,
                   "rules": [{"type": "vib", "signal": "x.rms", "open_threshold": 5.0, "clear_threshold": 1.0,
                              "critical_threshold": 8.0, "open_windows": 1, "clear_windows": 1, "cooldown_s": 0}]},
        "kpi": {"periods_s": [10]},
        "control": {"actuators": [{"name": "speed", "initial": 1000, "min": 0, "max": 2000, "ack_timeout_s": 4,
                                   "max_retries": 1},
                                  {"name": "fan", "initial": 0, "min": 0, "max": 1, "ack_timeout_s": 2}],
                    "rules": [{"name": "slow", "actuator": "speed", "when": {"alert_type": "vib"}, "mode": "approval",
                               "approval_timeout_s": 3, "action": {"set": 500}, "revert": {"set": 1000}},
                              {"name": "cool", "actuator": "fan", "when": {"alert_type": "vib"}, "mode": "auto",
                               "action": {"set": 1}, "revert": {"set": 0}}]},
    })


FB_TYPES = ("ack", "clear", "label", "approve", "reject", "command_ack", "maintenance")


class MessageHarness:
    """The real decode step (:class:`~aiotstream.pdm.ingest.Ingestor`) and one
    :class:`~aiotstream.pdm.asset.AssetAnalyzer` per asset. Inputs go in one at a time; every one must end as an
    effect (a record naming its position), a dead letter (naming its position), a maintenance window set,
    or wait in its asset's queue until the asset's clock passes its time (:meth:`settle` at the end)."""

    topic = "fz.feedback"

    def __init__(self, cfg: Any = None, seed: int = 0):
        from aiotstream.pdm.asset import AssetAnalyzer
        from aiotstream.pdm.ingest import Ingestor
        from aiotstream.pdm.runtime import SiteRuntime
        from aiotstream.schemas import validator

        self.cfg = cfg or _plant_config()
        self.rt = SiteRuntime(self.cfg)
        self.ingest = Ingestor(self.rt, now_ns=lambda: WALL)
        self.analyzers = {a: self._hooked(AssetAnalyzer(self.rt, a)) for a in sorted(self.rt.assets)}
        self.validate = validator()
        self.offset = 0
        self.tick_no = 0
        self.loud: dict[str, bool] = {a: False for a in self.analyzers}
        self.rng = random.Random(seed)
        self.alert_ids: list[str] = []
        self.alert_types = ["vib", "anomaly", "command_failed", "drift", "nope"]
        self.command_ids: list[str] = []
        self.sent: list[bytes] = []
        self.waiting: set[int] = set()  # offsets queued in an analyzer, not yet resolved
        self.resolved: set[int] = set()
        self.applied: set[int] = set()  # maintenance offsets applied without a record
        self.checked = 0

    def _hooked(self, a: Any) -> Any:
        """Note which feedback reached the analyzer's effect step, and maintenance applied without a record."""
        inner = a._feedback

        def feedback(fb: Any, t: int) -> list:
            outs = inner(fb, t)
            if fb.type == "maintenance" and not outs:
                self.applied.add(fb.pos.offset)
            return outs

        a._feedback = feedback
        return a

    @property
    def clock_ns(self) -> int:
        return T0 + self.tick_no * S

    def tick(self) -> None:
        """One more second of frames for every asset (loud or quiet, flipping now and then)."""
        import numpy as np

        from aiotstream.codecs import encode_frame
        from aiotstream.records import SourceMessage

        msgs = []
        for i, a in enumerate(self.analyzers):
            if self.rng.random() < 0.25:
                self.loud[a] = not self.loud[a]
            amp = 10.0 if self.loud[a] else 0.2
            x = np.sin(np.arange(1000) * 0.3 + self.tick_no) * amp
            samples = np.stack([x, x * 0.5, x * 0.1]).astype(np.float32)
            msgs.append(SourceMessage("fz.waveforms", 0, self.tick_no * 10 + i,
                                      encode_frame(a, self.tick_no, self.clock_ns, 1000.0, samples)))
        self.tick_no += 1
        self._run(msgs)

    def _run(self, msgs: list) -> list:
        from aiotstream.records import Output

        routed = self.ingest.decode_batch(msgs)
        outs = [x for x in routed if isinstance(x, Output)]
        per: dict[str, list] = {}
        for asset, item in (x for x in routed if not isinstance(x, Output)):
            per.setdefault(asset, []).append(item)
        for asset, items in per.items():
            outs += self.analyzers[asset].on_items(items, None)
        self._account(outs)
        return outs

    def _account(self, outs: list) -> None:
        for o in outs:
            r = o.record
            if o.kind == "alert":
                if r["event"] == "opened":
                    self.alert_ids.append(r["alert_id"])
            elif o.kind == "command" and r["status"] in ("awaiting_approval", "emitted"):
                self.command_ids.append(r["command_id"])
            src = r.get("source") if o.kind == "deadletter" else None
            if src is not None and src.get("topic") == self.topic:
                self.resolved.add(src["offset"])
            for inp in r.get("inputs") or ():
                if inp.get("topic") == self.topic:
                    self.resolved.add(inp["first_offset"])
            self.checked += 1
            if self.checked % 7 == 0:  # every 7th record against the output schema (slow: jsonschema)
                err = next(iter(self.validate.iter_errors(r)), None)
                if err is not None:
                    raise Escape(f"{o.kind} record breaks the output schema: {err.message} at {list(err.path)}")
        del self.alert_ids[:-64], self.command_ids[:-64]

    def step(self, raw: bytes) -> str:
        """One input message; its outcome: ``record``, ``deadletter``, ``applied`` or ``waiting``."""
        from aiotstream.records import SourceMessage

        self.offset += 1
        off = self.offset
        self.sent.append(raw)
        del self.sent[:-32]
        try:
            outs = self._run([SourceMessage(self.topic, 0, off, raw)])
        except Escape:
            raise
        except Exception as exc:
            raise Escape(f"{type(exc).__name__}: {exc} <- {_brief(raw)}") from exc
        self.waiting -= self.resolved | self.applied
        applied, resolved = off in self.applied, off in self.resolved
        self.resolved.clear()  # (what they say is taken: the sets stay small however long the run)
        self.applied.clear()
        if applied:
            return "applied"
        if resolved:
            return "deadletter" if any(o.kind == "deadletter" and o.record["source"]["offset"] == off for o in outs) \
                else "record"
        if any(off == item[2].pos.offset for a in self.analyzers.values() for item in a.queue):
            self.waiting.add(off)
            return "waiting"
        raise Escape(f"lost: no record, no dead letter, not waiting <- {_brief(raw)}")

    def settle(self) -> int:
        """End of input: every analyzer applies what waits; the number of inputs lost."""
        outs = []
        for a in self.analyzers.values():
            outs += a.flush(kpi=True)
        self._account(outs)
        self.waiting -= self.resolved | self.applied
        return len(self.waiting)

    # ---- the messages ----
    def ids(self, d: Draw, pool: list[str], live: list[str]) -> str:
        """Mostly an id that is live now (an open alert, a pending command of the asset), else a past one
        (of any asset), else one that never was."""
        if live and d.chance(0.6):
            return d.choice(live)
        if pool and d.chance(0.85):
            return d.choice(pool)
        return d.choice(["0" * 32, "f" * 64, "x", "", "A" * 65])

    def feedback(self, d: Draw, kinds: Sequence[str] = FB_TYPES) -> bytes:
        if self.sent and d.chance(0.05):
            return d.choice(self.sent)  # the same message again (a redelivery)
        if d.chance(0.03):
            return damage(d, self.feedback(d, kinds)) if d.chance(0.7) else bytes(d.int(0, 255) for _ in range(9))
        kind = d.choice(kinds) if len(kinds) == 1 or d.chance(0.8) else "maintenance"
        if kind == "maintenance" and len(kinds) > 1 and d.chance(0.7):
            kind = d.choice(kinds[:-1])  # maintenance windows suppress alerts: fewer of them, so alerts open
        assets = list(self.analyzers)
        past = self.clock_ns - d.int(0, 5) * S
        ts = d.choice([past, self.clock_ns + d.int(1, 3) * S, T0, past]) if d.chance(0.97) else WALL + 10**12
        m: dict[str, Any] = {"schema": "aiotstream.feedback/1", "type": kind, "ts": ts}
        asset = d.choice(assets) if d.chance(0.95) else d.choice(["nope", "p3", "evil/#"])
        a = self.analyzers.get(asset)
        alerts = [x.alert_id for x in a.book.current.values()] if a is not None else []
        commands = [c.command_id for c in a.control.pending()] if a is not None else []
        if kind in ("ack", "clear"):
            m["asset"] = asset
            if d.chance(0.5):
                m["alert_id"] = self.ids(d, self.alert_ids, alerts)
            else:
                m["alert_type"] = d.choice(self.alert_types)
        elif kind == "label":
            m.update(asset=asset, alert_id=self.ids(d, self.alert_ids, alerts),
                     label=d.choice(["true_fault", "false_alarm", "maybe"]))
            if d.chance(0.3):
                m["fault_type"] = d.choice(["bearing", "imbalance"])
        elif kind in ("approve", "reject", "command_ack"):
            m.update(asset=asset, command_id=self.ids(d, self.command_ids, commands))
            if kind == "command_ack":
                if d.chance(0.6):
                    m["status"] = d.choice(["applied", "applied", "failed", "rejected", "done"])
                if d.chance(0.5):
                    m["value"] = d.choice([500.0, 1000.0, 1.0, 0.0, 2000.0, 2000.5, -1.0, 1e308, "high", True]) \
                        if d.chance(0.8) else number(d)
        else:
            start = self.clock_ns + d.int(-20, 20) * S
            m.update(start=start, end=start + d.choice([S, 2 * S, 5 * S, S, 600 * S, 8 * 86_400 * S, -S, 0]))
            if d.chance(0.2):
                m["end"] = d.choice([2**63 - 1, 2**64 - 1, 2**63])
            scope = d.int(0, 2)
            if scope == 0:
                m["asset"] = asset
            elif scope == 1:
                m["line"] = d.choice(["l1", "l2", "l9"])
            if d.chance(0.7):
                m["window_id"] = f"w{d.int(0, 40)}"
        if d.chance(0.6):
            m["by"] = d.choice(["ana", "bo", "device-7"])
        for _ in range(d.int(0, 2) if d.chance(0.2) else 0):  # a broken field: wrong type, missing, unknown
            op = d.int(0, 2)
            if op == 0 and m:
                m[d.choice(sorted(m))] = junk(d)
            elif op == 1 and m:
                m.pop(d.choice(sorted(m)))
            else:
                m[d.choice(["nope", "alertid", "valu"])] = junk(d)
        return dumps(m)

    def ack(self, d: Draw) -> bytes:
        return self.feedback(d, ("command_ack",))


# ---- promotions on <site>.control of an ONNX site ------------------------------------------------------------
class ControlHarness:
    """An ONNX site (3 assets, registry of :func:`onnx_registry`): promotions through the decode step, the
    switches to every asset's analyzer; a frame per asset now and then is scored by whatever model each asset
    has. A refused or malformed promotion must leave every asset's models as they were; only good artifacts may
    be promoted."""

    topic = "fz.control"

    def __init__(self, root: Path):
        from aiotstream.pdm.asset import AssetAnalyzer
        from aiotstream.pdm.ingest import Ingestor
        from aiotstream.pdm.runtime import SiteRuntime

        self.registry = onnx_registry(root, site_columns())
        self.cfg = onnx_site(self.registry)
        self.rt = SiteRuntime(self.cfg)
        self.ingest = Ingestor(self.rt, now_ns=lambda: WALL)
        self.analyzers = {a: AssetAnalyzer(self.rt, a) for a in sorted(self.rt.assets)}
        self.offset = 0
        self.tick_no = 0
        self.scored = 0
        self.good = {f"pm@{v}" for v in GOOD_VERSIONS}

    def models(self) -> dict[str, tuple]:
        return {k: (a.model_ref, a.variant, a.shadow_ref) for k, a in self.analyzers.items()}

    def tick(self) -> None:
        import numpy as np

        from aiotstream.codecs import encode_frame
        from aiotstream.records import Output, SourceMessage

        msgs = [SourceMessage("fz.waveforms", 0, self.tick_no * 10 + i,
                              encode_frame(a, self.tick_no, T0 + self.tick_no * S, 10_000.0,
                                           np.full((3, 100), 0.1 * (i + 1), np.float32)))
                for i, a in enumerate(self.analyzers)]
        self.tick_no += 1
        routed = self.ingest.decode_batch(msgs)
        outs = []
        for asset, item in (x for x in routed if not isinstance(x, Output)):
            outs += self.analyzers[asset].on_items([item], None)
        for a in self.analyzers.values():
            outs += a.drain(now=True)
        self.scored += sum(o.kind == "score" for o in outs)  # windows scored by each asset's model of the moment

    def step(self, raw: bytes) -> str:
        from aiotstream.records import ModelSwitch, Output, SourceMessage

        self.offset += 1
        before = self.models()
        try:
            routed = self.ingest.decode_batch([SourceMessage(self.topic, 0, self.offset, raw)])
            outs = [x for x in routed if isinstance(x, Output)]
            switches = [x for x in routed if not isinstance(x, Output)]
            for asset, sw in switches:
                assert isinstance(sw, ModelSwitch)
                outs += self.analyzers[asset].on_items([sw], None)
        except Exception as exc:
            raise Escape(f"{type(exc).__name__}: {exc} <- {_brief(raw)}") from exc
        mine = [o for o in outs if (o.record.get("source") or {}).get("offset") == self.offset]
        if not mine:
            raise Escape(f"lost: no model record and no dead letter <- {_brief(raw)}")
        rec = mine[0].record
        if rec["schema"] == "aiotstream.model/1" and rec["event"] == "promoted":
            if rec["ref"] is not None and rec["ref"] not in self.good:
                raise Escape(f"a bad artifact was promoted: {rec['ref']} <- {_brief(raw)}")
            return "promoted"
        if self.models() != before:
            raise Escape(f"refused ({rec.get('reason')}) but the models changed <- {_brief(raw)}")
        if not (rec.get("reason") or rec.get("message")):
            raise Escape(f"a refusal without a reason <- {_brief(raw)}")
        return "refused" if rec["schema"] == "aiotstream.model/1" else "deadletter"

    def promote(self, d: Draw) -> bytes:
        if d.chance(0.03):
            return bytes(d.int(0, 255) for _ in range(d.int(0, 20)))
        versions = list(GOOD_VERSIONS) + list(BAD_VERSIONS) + ["9.9.9", "../x", "1.0.0@2"]
        m: dict[str, Any] = {"type": "promote" if d.chance(0.95) else d.choice(["demote", 1, None]),
                             "version": d.choice(versions) if d.chance(0.9) else junk(d)}
        if d.chance(0.8):
            m["variant"] = d.choice(["champion", "canary", "shadow", "shadow", "king"])
        if d.chance(0.4):
            m["fraction"] = d.choice([0.0, 0.25, 0.5, 1.0, 1.5, -0.1, True, "0.5"]) if d.chance(0.8) else number(d)
        if d.chance(0.2):
            m["model"] = d.choice(["pm", "other", "pm@1.0.0", "../pm"])
        if d.chance(0.2) and m.get("variant") == "shadow":
            m["version"] = None
        if d.chance(0.3):
            m["by"] = d.choice(["ops", "", 7])
        if d.chance(0.2):
            m["ts"] = d.choice([T0, -1, 2**63, 1.5])
        if d.chance(0.05):
            m[d.choice(["modle", "note", "extra"])] = junk(d)
        raw = dumps(m)
        return damage(d, raw) if d.chance(0.03) else raw


# ---- manifests ---------------------------------------------------------------------------------------------
class ManifestHarness:
    """A manifest (mostly the good one, changed) written as version ``9.9.9`` next to the good model's bytes,
    then loaded by a registry that trusts the signer's key and by one that accepts unsigned artifacts; what a
    registry accepts must also load in onnxruntime or be refused by the ONNX loader with a ModelError."""

    def __init__(self, root: Path):
        from aiotstream.models.registry import ModelRegistry, canonical_json

        self.info = onnx_registry(root, ["a", "b", "c"])
        reg_root = Path(self.info["root"])
        self.dir = reg_root / "pm" / "9.9.9"
        self.dir.mkdir(parents=True)
        (self.dir / "model.onnx").write_bytes((reg_root / "pm" / "1.0.0" / "model.onnx").read_bytes())
        self.signed = ModelRegistry(reg_root, verify_key=self.info["pub"])
        self.unsigned = ModelRegistry(reg_root, allow_unsigned=True)
        good = dict(self.info["manifest"])
        good["version"] = "9.9.9"  # (its signature no longer matches: only the unsigned registry may accept it)
        self.good = good
        self.canonical = canonical_json

    def manifest(self, d: Draw) -> bytes:
        if d.chance(0.03):
            return damage(d, dumps(self.good))
        m = copy.deepcopy(self.good)
        if d.chance(0.3):
            m["signature"] = None
        for _ in range(d.int(1, 3)):
            k = d.int(0, 9)
            if k <= 3:  # the signature field above all
                sig = m.get("signature")
                if not isinstance(sig, dict) or d.chance(0.3):
                    m["signature"] = d.choice([junk(d), "ed25519:AAAA", ["ed25519", "AAAA"], 12345, {},
                                               {"alg": "ed25519"}])
                else:
                    field = d.choice(["alg", "value", "key_id", "extra"])
                    sig[field] = d.choice([junk(d), base64.b64encode(bytes(d.int(0, 80))).decode(), "not base64!",
                                           "hmac-sha256", "ed25519", "rsa", "hmac:0123456789abcdef"])
                    if d.chance(0.2):
                        sig.pop(d.choice(sorted(sig)), None)
            elif k <= 5:
                score = m["score"] if isinstance(m.get("score"), dict) else {}
                score[d.choice(["center", "scale", "sign", "impute", "input", "output", "map", "x"])] = d.choice(
                    [junk(d), [0.0, 1.0], [0.0] * 3, [None, 1.0, 2.0], 0.0, -1.0, 2.0, "X", "scores", "nan"])
                m["score"] = score
            elif k <= 7:
                m[d.choice(sorted(m))] = junk(d)
            elif k == 8:
                m.pop(d.choice(sorted(m)))
            else:
                m[d.choice(["feature_names", "name", "version", "sha256", "quantized"])] = d.choice(
                    [["a", "b", "c"], ["a", "a", "b"], [], ["a", "b", "c", "d"], "pm", "9.9.9", "1.0.0", True,
                     "0" * 64])
        return dumps(m)

    def step(self, raw: bytes) -> str:
        from aiotstream.errors import ModelError
        from aiotstream.models.onnx_model import OnnxModel

        (self.dir / "manifest.json").write_bytes(raw)
        out = []
        for name, reg in (("signed", self.signed), ("unsigned", self.unsigned)):
            try:
                art = reg.load("pm", "9.9.9")
            except ModelError as e:  # ModelRefused included
                if not str(e):
                    raise Escape(f"refused without a reason <- {_brief(raw)}") from e
                out.append("refused")
                continue
            except Exception as exc:
                raise Escape(f"{name} registry: {type(exc).__name__}: {exc} <- {_brief(raw)}") from exc
            if name == "signed":  # only the publisher's signed bytes may pass: this manifest was changed
                raise Escape(f"the signed registry accepted a changed manifest <- {_brief(raw)}")
            try:
                OnnxModel.from_artifact(art)
            except ModelError:
                out.append("refused")
                continue
            except Exception as exc:
                raise Escape(f"accepted manifest, ONNX load: {type(exc).__name__}: {exc} <- {_brief(raw)}") from exc
            out.append("accepted")
        return "/".join(out)


# ---- runners (the harness contract) ----------------------------------------------------------------------------
def _run(kind: str, cases: int, seed: int, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    import logging

    quiet = logging.getLogger("aiotstream")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # one warning per refused promotion is noise here
    try:
        return _run_quietly(kind, cases, seed, progress)
    finally:
        quiet.setLevel(level)  # the tests call runners in-process: leave logging as it was


def _run_quietly(kind: str, cases: int, seed: int, progress: Callable[[int], None] | None) -> dict[str, Any]:
    d = RandomDraw(seed)
    escapes = lost = 0
    examples: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{kind}-") as tmp:
        if kind == "configs":
            h: Any = ConfigHarness()
            make: Callable[[], Any] = lambda: config_case(d)
        elif kind == "control":
            h = ControlHarness(Path(tmp))
            make = lambda: h.promote(d)
        elif kind == "manifests":
            h = ManifestHarness(Path(tmp))
            make = lambda: h.manifest(d)
        else:
            h = MessageHarness(seed=seed)
            for _ in range(8):
                h.tick()
            make = (lambda: h.ack(d)) if kind == "acks" else (lambda: h.feedback(d))
        for i in range(cases):
            if kind in ("feedback", "acks", "control") and i % 5 == 4:
                try:
                    h.tick()
                except Exception as exc:  # noqa: BLE001
                    escapes += 1
                    examples.append(f"frames: {type(exc).__name__}: {exc}")
            case = make()
            try:
                if h.step(case) == "lost":
                    lost += 1
            except Escape as e:
                if str(e).startswith("lost:"):
                    lost += 1
                else:
                    escapes += 1
                if len(examples) < 10:
                    examples.append(str(e) + ("" if e.__cause__ is None else " | " + "".join(
                        traceback.format_exception(e.__cause__, limit=-2)[-3:]).replace("\n", " ")))
            if progress is not None and (i + 1) % max(1, cases // 10) == 0:
                progress(i + 1)
        if isinstance(h, MessageHarness):
            try:
                lost += h.settle()
            except Exception as exc:  # noqa: BLE001
                escapes += 1
                examples.append(f"settle: {type(exc).__name__}: {exc}")
    return {"kind": kind, "cases": cases, "escapes": escapes, "escape_examples": examples, "lost": lost,
            "seconds": round(time.perf_counter() - t0, 3)}


def run_configs(kind: str, cases: int, seed: int) -> dict[str, Any]:
    return _run("configs", cases, seed)


def run_control(kind: str, cases: int, seed: int) -> dict[str, Any]:
    return _run("control", cases, seed)


def run_feedback(kind: str, cases: int, seed: int) -> dict[str, Any]:
    return _run("feedback", cases, seed)


def run_acks(kind: str, cases: int, seed: int) -> dict[str, Any]:
    return _run("acks", cases, seed)


def run_manifests(kind: str, cases: int, seed: int) -> dict[str, Any]:
    return _run("manifests", cases, seed)


KINDS: dict[str, Callable[[str, int, int], dict]] = {
    "configs": run_configs, "control": run_control, "feedback": run_feedback, "acks": run_acks,
    "manifests": run_manifests,
}


def _rss_mb() -> float:
    """Resident memory now (Linux /proc), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fuzz the control plane and the configuration (see the module doc).")
    ap.add_argument("--cases", type=int, default=100_000, help="cases per kind (default 100000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kind", action="append", choices=sorted(KINDS), help="only these kinds (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if args.cases < 1:
        ap.error("--cases must be at least 1")
    results = []
    for kind in args.kind or list(KINDS):
        samples: list[float] = []
        res = _run(kind, args.cases, args.seed, progress=lambda n, s=samples: s.append(round(_rss_mb(), 1)))
        res["rss_mb_at_each_tenth"] = samples
        res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        results.append(res)
        print(json.dumps(res), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["escapes"] or r["lost"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
