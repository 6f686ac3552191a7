"""Issue 15, control plane: malformed manifests and promotions are refused with a reason and the running model
stays; maintenance windows are bounded and active suppressions are reported; every feedback message leaves a
trace. Real registries (tiny ONNX models signed with a key made here), the real decode step and analyzers."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from aiotstream.errors import ModelRefused
from aiotstream.models.registry import ModelRegistry, generate_keypair
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import ModelSwitch, Output, SourceMessage
from benchmarks.fuzz_control import (
    BAD_VERSIONS,
    GOOD_VERSIONS,
    WALL,
    onnx_registry,
    onnx_site,
    site_columns,
    tiny_onnx,
)

S = 1_000_000_000


# ---- manifests ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A registry with pm@1.0.0 signed by a new Ed25519 key: (root, public key, the manifest as stored)."""
    d = tmp_path_factory.mktemp("signed")
    priv, pub = generate_keypair(d / "keys")
    reg = ModelRegistry(d / "reg", verify_key=pub)
    reg.publish("pm", "1.0.0", tiny_onnx(3), feature_names=["a", "b", "c"], training_data="t", metrics={},
                score={"center": 1.0, "scale": 0.5}, signing_key=priv)
    return d / "reg", pub, orjson.loads((d / "reg/pm/1.0.0/manifest.json").read_bytes())


SIG = {"alg": "ed25519", "value": base64.b64encode(bytes(64)).decode(), "key_id": "ed25519:0123456789abcdef"}


@pytest.mark.parametrize(("signature", "words"), [
    ("ed25519:AAAA", "signature: must be a valid dictionary"),
    (["ed25519", SIG["value"]], "signature: must be a valid dictionary"),
    (12345, "signature: must be a valid dictionary"),
    (True, "signature: must be a valid dictionary"),
    ({**SIG, "value": 12345}, "signature.value: must be a valid string"),
    ({**SIG, "value": None}, "signature.value: must be a valid string"),
    ({**SIG, "value": ["AAAA"]}, "signature.value: must be a valid string"),
    ({**SIG, "value": "not base64!"}, "signature.value: is not base64"),
    ({**SIG, "value": "QUJD"}, "signature.value: decodes to 3 bytes; an ed25519 signature has 64"),
    ({**SIG, "value": base64.b64encode(bytes(65)).decode()}, "decodes to 65 bytes"),
    ({**SIG, "value": "A" * 10_000}, "signature.value: String should have at most 256 characters"),
    ({**SIG, "alg": "hmac-sha256", "key_id": "hmac:0123456789abcdef"}, "decodes to 64 bytes; an hmac-sha256"),
    ({**SIG, "alg": "rsa"}, "signature.alg"),
    ({**SIG, "alg": None}, "signature.alg"),
    ({**SIG, "key_id": {"id": 1}}, "signature.key_id"),
    ({**SIG, "key_id": "hmac:0123456789abcdef"}, "not a key id of the ed25519 algorithm"),
    ({k: v for k, v in SIG.items() if k != "value"}, "signature.value: Field required"),
    ({**SIG, "extra": 1}, "signature.extra: Extra inputs are not permitted"),
])
def test_a_malformed_signature_is_refused_naming_the_field(signed: tuple, tmp_path: Path, signature: Any,
                                                           words: str) -> None:
    """Issue 15 item 7: a signature of the wrong type raised AttributeError (``sig.get`` on a str/list/int)."""
    root, pub, manifest = signed
    reg = ModelRegistry(tmp_path, verify_key=pub)
    d = tmp_path / "pm/1.0.0"
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes((root / "pm/1.0.0/model.onnx").read_bytes())
    (d / "manifest.json").write_bytes(orjson.dumps({**manifest, "signature": signature}))
    with pytest.raises(ModelRefused) as e:
        reg.load("pm", "1.0.0")
    assert words in str(e.value) and str(d / "manifest.json") in str(e.value)


@pytest.mark.parametrize(("change", "words"), [
    ({"name": 5}, "name: must be a valid string"),
    ({"sha256": "abc"}, "sha256: String should match pattern"),
    ({"feature_names": "a"}, "feature_names: must be a valid list"),
    ({"feature_names": ["a", "a", "b"]}, "feature names must be unique"),
    ({"feature_names": []}, "feature_names: List should have at least 1 item"),
    ({"score": "logistic"}, "score: must be a valid dictionary"),
    ({"score": {"center": "nan", "scale": 1.0}}, "score.center: must be a valid number"),
    ({"score": {"center": 1.0, "scale": 0.0}}, "score.scale: must be greater than 0"),
    ({"score": {"center": 1.0, "scale": 1.0, "impute": [1.0, None, 2.0]}}, "score.impute.1"),
    ({"score": {"center": 1.0, "scale": 1.0, "sign": 2.0}}, "score.sign"),
    ({"score": {"center": 1.0, "scale": 1.0, "output": 7}}, "score.output"),
    ({"quantized": "yes"}, "quantized: must be a valid boolean"),
    ({"metrics": [1, 2]}, "metrics: must be a valid dictionary"),
    ({"created": None}, "created: must be a valid string"),
])
def test_every_malformed_manifest_field_is_refused_naming_it(signed: tuple, tmp_path: Path, change: dict,
                                                             words: str) -> None:
    root, pub, manifest = signed
    d = tmp_path / "pm/1.0.0"
    d.mkdir(parents=True)
    (d / "model.onnx").write_bytes((root / "pm/1.0.0/model.onnx").read_bytes())
    (d / "manifest.json").write_bytes(orjson.dumps({**manifest, **change}))
    with pytest.raises(ModelRefused, match="not a valid model manifest") as e:
        ModelRegistry(tmp_path, verify_key=pub).load("pm", "1.0.0")
    assert words in str(e.value)


# ---- promotions ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return onnx_registry(tmp_path_factory.mktemp("onnx"), site_columns())


class Site:
    """An ONNX site's decode step and its assets' analyzers; promotions go in, records come out."""

    def __init__(self, registry: dict[str, Any]):
        self.cfg = onnx_site(registry)
        self.rt = SiteRuntime(self.cfg)
        self.ingest = Ingestor(self.rt, now_ns=lambda: WALL)
        self.analyzers = {a: AssetAnalyzer(self.rt, a) for a in self.rt.assets}
        self.offset = 0

    def send(self, msg: Any) -> list[Output]:
        self.offset += 1
        raw = msg if isinstance(msg, bytes) else orjson.dumps(msg)
        routed = self.ingest.decode_batch([SourceMessage("fz.control", 0, self.offset, raw)])
        outs = [x for x in routed if isinstance(x, Output)]
        for asset, item in (x for x in routed if not isinstance(x, Output)):
            assert isinstance(item, ModelSwitch)
            outs += self.analyzers[asset].on_items([item])
        assert all(o.record.get("source", {}).get("offset") == self.offset for o in outs), outs
        return outs

    def models(self) -> dict[str, tuple]:
        return {k: (a.model_ref, a.variant, a.shadow_ref) for k, a in self.analyzers.items()}


def test_every_bad_artifact_is_refused_with_a_reason_and_the_running_model_stays(onnx: dict) -> None:
    """Issue 15 item 7: a promotion of a malformed manifest crashed the flow (AttributeError in the decode
    step); now every bad artifact is an ``aiotstream.model/1`` ``refused`` record and nothing switches."""
    site = Site(onnx)
    before = site.models()
    assert {v[0] for v in before.values()} == {"pm@1.0.0"}
    for version, what in BAD_VERSIONS.items():
        for variant in ("champion", "canary", "shadow"):
            (rec,) = site.send({"type": "promote", "version": version, "variant": variant, "fraction": 1.0})
            assert (rec.kind, rec.record["event"], rec.record["ref"]) == ("model", "refused", f"pm@{version}"), what
            assert rec.record["reason"], what
            assert site.models() == before, what
    (ok,) = site.send({"type": "promote", "version": GOOD_VERSIONS[1], "variant": "champion", "by": "ops"})
    assert ok.record["event"] == "promoted" and {v[0] for v in site.models().values()} == {"pm@1.1.0"}


@pytest.mark.parametrize(("msg", "words"), [
    ({"type": "promote", "version": 1.1}, "version: Input should be a valid string"),
    ({"type": "promote", "version": ["1.1.0"]}, "version: Input should be a valid string"),
    ({"type": "promote", "version": "../../etc"}, "version: String should match pattern"),
    ({"type": "promote", "version": "1.1.0", "variant": "king"}, "variant: Input should be 'champion'"),
    ({"type": "promote", "version": "1.1.0", "variant": "canary", "fraction": True}, "fraction"),
    ({"type": "promote", "version": "1.1.0", "variant": "canary", "fraction": 1.5}, "fraction"),
    ({"type": "promote", "version": "1.1.0", "variant": "canary", "fraction": "0.5"}, "fraction"),
    ({"type": "promote", "version": "1.1.0", "ts": -5}, "ts: Input should be greater than or equal to 0"),
    ({"type": "promote", "version": "1.1.0", "ts": 1.5e18}, "ts: Input should be a valid integer"),
    ({"type": "promote", "version": "1.1.0", "by": {"name": "x"}}, "by: Input should be a valid string"),
    ({"type": "promote", "version": "1.1.0", "model": "a@b"}, "model: String should match pattern"),
    ({"type": "promote", "version": "1.1.0", "modle": "pm"}, "modle: Extra inputs are not permitted"),
    ({"type": "promote", "variant": "champion"}, "only a shadow can be stopped"),
    ({"type": "demote", "version": "1.1.0"}, 'a control message is {"type": "promote"'),
    ([1, 2], 'a control message is {"type": "promote"'),
    (b"\xff\xfe", "control message is not JSON"),
])
def test_a_malformed_promotion_is_dead_lettered_naming_the_field(onnx: dict, msg: Any, words: str) -> None:
    site = Site(onnx)
    before = site.models()
    (dead,) = site.send(msg)
    assert dead.kind == "deadletter" and dead.record["reason"] in ("bad_control", "bad_json")
    assert words in dead.record["message"], dead.record["message"]
    assert site.models() == before


def test_each_accepted_promotion_is_one_log_line_and_a_return_to_an_earlier_champion_says_rollback(
        onnx: dict, root_records: list) -> None:
    """Issue 18 item 3: the operator's log says when the live model changed and how, one line each."""
    import io

    from aiotstream import logs

    site = Site(onnx)
    text = io.StringIO()
    undo = logs.configure("info", "text", stream=text)  # as the CLI sets it up (default level info)
    try:
        root_records.clear()
        site.send({"type": "promote", "version": GOOD_VERSIONS[1], "variant": "champion", "by": "ops"})
        site.send({"type": "promote", "version": GOOD_VERSIONS[1], "variant": "shadow"})
        site.send({"type": "promote", "version": None, "variant": "shadow", "by": "ops"})
        site.send({"type": "promote", "version": "1.0.0", "variant": "champion", "by": "night-shift"})
        site.send({"type": "promote", "version": next(iter(BAD_VERSIONS)), "variant": "champion"})
    finally:
        undo()
    lines = [(r.levelname, r.getMessage()) for r in root_records if r.name == "aiotstream.pdm.rollout"]
    assert [msg.split(":")[0] for _, msg in lines[:4]] == [
        "model pm@1.1.0 promoted as champion by ops",
        "model pm@1.1.0 promoted as shadow",
        "model shadow stopped by ops",
        "model rolled back to pm@1.0.0 (champion, from pm@1.1.0) by night-shift"]
    assert [lvl for lvl, _ in lines] == ["INFO"] * 4 + ["WARNING"]  # the refused one: its warning, as before
    assert {v[0] for v in site.models().values()} == {"pm@1.0.0"}
    assert len(text.getvalue().splitlines()) == 5 and " INFO aiotstream.pdm.rollout: model rolled back" in text.getvalue()


def test_a_canary_that_stops_covering_an_asset_returns_it_to_the_latest_champion(onnx: dict) -> None:
    """After a promotion to champion, a canary that no longer covers an asset sends it back to that champion,
    not to the config's (which is older). Canary assets: those with canary_share below the fraction."""
    from aiotstream.models.scoring import canary_share

    site = Site(onnx)
    by = {"by": "ops"}
    site.send({"type": "promote", "version": "1.1.0", "variant": "champion", **by})
    site.send({"type": "promote", "version": "1.2.0-int8", "variant": "canary", "fraction": 0.5, **by})
    covered = {a for a in site.analyzers if canary_share(a) < 0.5}
    assert covered and covered != set(site.analyzers)  # some assets on the canary, some not
    assert {a: m[:2] for a, m in site.models().items()} == {
        a: ("pm@1.2.0-int8", "canary") if a in covered else ("pm@1.1.0", "champion") for a in site.analyzers}
    site.send({"type": "promote", "version": "1.2.0-int8", "variant": "canary", "fraction": 0.0, **by})
    assert {m[:2] for m in site.models().values()} == {("pm@1.1.0", "champion")}


def test_the_latest_champion_survives_a_snapshot_and_an_old_snapshot_falls_back_to_the_configs(
        onnx: dict) -> None:
    import pickle

    site = Site(onnx)
    site.send({"type": "promote", "version": "1.1.0", "variant": "champion", "by": "ops"})
    site.send({"type": "promote", "version": "1.2.0-int8", "variant": "canary", "fraction": 1.0, "by": "ops"})
    asset = min(site.analyzers)
    back = ModelSwitch(asset, "canary", "pm@1.2.0-int8", 0.0, 0, None)  # a canary covering no asset
    resumed = pickle.loads(pickle.dumps(site.analyzers[asset])).attach(site.rt)
    assert (resumed.model_ref, resumed.variant, resumed.champion_ref) == ("pm@1.2.0-int8", "canary", "pm@1.1.0")
    resumed.on_items([back])
    assert (resumed.model_ref, resumed.variant) == ("pm@1.1.0", "champion")
    old = site.analyzers[asset].__getstate__()
    old.pop("champion_ref")  # a snapshot made before assets kept their champion: the config's, as then
    before = AssetAnalyzer.__new__(AssetAnalyzer)
    before.__setstate__(old)
    before.attach(site.rt)
    before.on_items([back])
    assert (before.model_ref, before.variant) == ("pm@1.0.0", "champion")
