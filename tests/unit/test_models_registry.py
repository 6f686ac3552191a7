"""Model registry: publish/load round trips, and every way an artifact must be refused; ONNX load checks."""
from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import orjson
import pytest
from onnx import TensorProto, helper

from aiotstream.errors import ModelError, ModelRefused
from aiotstream.models.onnx_model import OnnxModel
from aiotstream.models.registry import ModelRegistry, generate_keypair, sorted_versions

FEATURES = ["a", "b", "c"]
SCORE = {"input": "X", "output": "scores", "sign": 1.0, "center": 1.0, "scale": 0.5, "impute": [0.0, 10.0, 0.0]}


def tiny_onnx(n_in: int = 3, input_name: str = "X", elem: int = TensorProto.FLOAT, output: str = "scores") -> bytes:
    """scores = sum of the row's features, shape [N, 1]."""
    ident = helper.make_node("Identity", [input_name], ["X_in"])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceSum", ["X_in", "axes"], [output], keepdims=1)
    g = helper.make_graph([ident, node], "tiny", [helper.make_tensor_value_info(input_name, elem, [None, n_in])],
                          [helper.make_tensor_value_info(output, elem, [None, 1])], [axes])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


def publish(reg: ModelRegistry, version: str = "1.0.0", blob: bytes | None = None, **kw: object):
    return reg.publish("pm", version, tiny_onnx() if blob is None else blob, feature_names=FEATURES,
                       training_data="unit-test", metrics={"auc": 0.97}, score=SCORE, **kw)


def test_ed25519_round_trip_and_scores(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    reg = ModelRegistry(tmp_path / "reg", verify_key=pub)
    m = publish(reg, signing_key=priv)
    assert m.signature is not None and m.signature["alg"] == "ed25519"
    assert m.signature["key_id"].startswith("ed25519:")
    assert (tmp_path / "reg/pm/1.0.0/model.onnx").exists() and (tmp_path / "reg/pm/1.0.0/manifest.json").exists()
    assert reg.manifest("pm", "1.0.0") == m
    art = reg.load("pm", "1.0.0")
    assert art.manifest == m and art.onnx_bytes == tiny_onnx()
    model = OnnxModel.from_artifact(art, threads=2)
    assert (model.name, model.version, model.sha256, model.n_features) == ("pm", "1.0.0", m.sha256, 3)
    assert model.session.get_session_options().intra_op_num_threads == 2
    s = model.score(np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]))
    # raw = row sum; logistic around center 1 with scale 0.5
    assert s.dtype == np.float64 and s.shape == (2,)
    assert s[0] == pytest.approx(0.5) and s[1] == pytest.approx(1 / (1 + np.exp(-4.0)))
    # a missing feature takes the manifest's impute value (b -> 10), the same every time
    nan_row = model.score(np.array([[0.0, np.nan, 0.0]]))
    assert nan_row[0] == pytest.approx(model.score(np.array([[0.0, 10.0, 0.0]]))[0])


def test_hmac_round_trip_and_wrong_hmac_key(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, hmac_key=b"s" * 32)
    m = publish(reg)
    assert m.signature is not None and m.signature["alg"] == "hmac-sha256"
    assert reg.load("pm", "1.0.0").onnx_bytes == tiny_onnx()
    with pytest.raises(ModelRefused, match="unknown key"):
        ModelRegistry(tmp_path, hmac_key=b"t" * 32).load("pm", "1.0.0")
    with pytest.raises(ModelRefused, match="no hmac_key"):
        ModelRegistry(tmp_path).load("pm", "1.0.0")


def test_versions_are_immutable_and_sorted(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, hmac_key=b"k" * 32)
    for v in ("1.10.0", "1.2.0", "1.2.0-int8", "1.9.1"):
        publish(reg, v)
    assert reg.versions("pm") == ["1.2.0-int8", "1.2.0", "1.9.1", "1.10.0"]
    assert reg.versions("other") == []
    with pytest.raises(ModelError, match="published already"):
        publish(reg, "1.2.0")
    with pytest.raises(ModelError, match="not valid"):
        publish(reg, "../escape")
    assert sorted_versions(["2", "10", "1.0.0-rc.2", "1.0.0-rc.10"]) == ["1.0.0-rc.2", "1.0.0-rc.10", "2", "10"]
    # PEP 440 (packaging.version): pre- and post-releases, and a variant suffix before its base version
    assert sorted_versions(["1.0.0.post1", "1.0.0", "1.0.0-int8", "1.0.0rc1", "0.9", "nightly"]) == [
        "0.9", "1.0.0rc1", "1.0.0-int8", "1.0.0", "1.0.0.post1", "nightly"]


def test_tampered_model_bytes_are_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    reg = ModelRegistry(tmp_path, verify_key=pub)
    publish(reg, signing_key=priv)
    f = tmp_path / "pm/1.0.0/model.onnx"
    f.write_bytes(tiny_onnx(3, output="scores") + b"\0")
    with pytest.raises(ModelRefused, match="hash mismatch") as e:
        reg.load("pm", "1.0.0")
    assert str(f) in str(e.value)


def _edit_manifest(path: Path, **changes: object) -> None:
    d = orjson.loads(path.read_bytes())
    d.update(changes)
    path.write_bytes(orjson.dumps(d))


def test_tampered_manifest_is_refused_by_the_signature(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    reg = ModelRegistry(tmp_path, verify_key=pub)
    publish(reg, signing_key=priv)
    mf = tmp_path / "pm/1.0.0/manifest.json"
    _edit_manifest(mf, metrics={"auc": 0.999})
    with pytest.raises(ModelRefused, match="bad signature") as e:
        reg.load("pm", "1.0.0")
    assert str(mf) in str(e.value)


def test_swapping_model_and_hash_together_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """An attacker who replaces the model and fixes the manifest's sha256 still fails: the hash is signed."""
    import hashlib

    priv, pub = keys
    reg = ModelRegistry(tmp_path, verify_key=pub)
    publish(reg, signing_key=priv)
    other = tiny_onnx(3, output="scores").replace(b"tiny", b"evil")
    (tmp_path / "pm/1.0.0/model.onnx").write_bytes(other)
    _edit_manifest(tmp_path / "pm/1.0.0/manifest.json", sha256=hashlib.sha256(other).hexdigest())
    with pytest.raises(ModelRefused, match="bad signature"):
        reg.load("pm", "1.0.0")


def test_unsigned_is_refused_unless_allowed(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    _, pub = keys
    publish(ModelRegistry(tmp_path, allow_unsigned=True))
    with pytest.raises(ModelRefused, match="unsigned artifact refused"):
        ModelRegistry(tmp_path, verify_key=pub).load("pm", "1.0.0")
    assert ModelRegistry(tmp_path, allow_unsigned=True).load("pm", "1.0.0").manifest.signature is None


def test_wrong_key_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, _ = keys
    _, other_pub = generate_keypair(tmp_path / "other")
    publish(ModelRegistry(tmp_path / "reg"), signing_key=priv)
    with pytest.raises(ModelRefused, match="unknown key"):
        ModelRegistry(tmp_path / "reg", verify_key=other_pub).load("pm", "1.0.0")
    with pytest.raises(ModelRefused, match="no verify_key"):
        ModelRegistry(tmp_path / "reg").load("pm", "1.0.0")
    # while keys rotate a site trusts both the old and the new public key
    both = ModelRegistry(tmp_path / "reg", verify_key=[other_pub, keys[1]])
    assert both.load("pm", "1.0.0").manifest.signature["alg"] == "ed25519"  # type: ignore[index]


def test_signature_by_another_key_claiming_the_trusted_key_id_is_refused(tmp_path: Path,
                                                                       keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    evil_priv, _ = generate_keypair(tmp_path / "evil")
    reg = ModelRegistry(tmp_path / "reg", verify_key=pub)
    trusted = publish(reg, "1.0.0", signing_key=priv)
    publish(reg, "2.0.0", signing_key=evil_priv)
    mf = tmp_path / "reg/pm/2.0.0/manifest.json"
    d = orjson.loads(mf.read_bytes())
    d["signature"]["key_id"] = trusted.signature["key_id"]  # type: ignore[index]
    mf.write_bytes(orjson.dumps(d))
    with pytest.raises(ModelRefused, match="bad signature"):
        reg.load("pm", "2.0.0")
    d["signature"]["value"] = "not base64!"
    mf.write_bytes(orjson.dumps(d))
    with pytest.raises(ModelRefused, match="not base64"):
        reg.load("pm", "2.0.0")


def test_missing_files_are_refused_with_the_path(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, hmac_key=b"k" * 32)
    with pytest.raises(ModelRefused, match="missing file"):
        reg.load("pm", "9.9.9")
    publish(reg)
    os.remove(tmp_path / "pm/1.0.0/model.onnx")
    with pytest.raises(ModelRefused, match=r"model\.onnx: missing file"):
        reg.load("pm", "1.0.0")
    (tmp_path / "pm/1.0.0/manifest.json").write_text("{not json")
    with pytest.raises(ModelRefused, match="not valid JSON"):
        reg.load("pm", "1.0.0")


def test_keypair_files(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path)
    assert priv.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    with pytest.raises(ModelError, match="refusing to overwrite"):
        generate_keypair(tmp_path)
    # a raw 32-byte public key works as well as the PEM file
    from cryptography.hazmat.primitives import serialization

    raw = serialization.load_pem_public_key(pub.read_bytes()).public_bytes(serialization.Encoding.Raw,
                                                                           serialization.PublicFormat.Raw)
    reg = ModelRegistry(tmp_path / "reg", verify_key=raw)
    publish(reg, signing_key=priv)
    assert reg.load("pm", "1.0.0").manifest.signature["alg"] == "ed25519"  # type: ignore[index]
    assert base64.b64decode(reg.manifest("pm", "1.0.0").signature["value"])  # type: ignore[index]


# ---- ONNX load checks --------------------------------------------------------------------------------------
def _manifest(reg: ModelRegistry, blob: bytes, version: str = "1.0.0", score: dict | None = None):
    return reg.publish("pm", version, blob, feature_names=FEATURES, training_data="t", metrics={},
                       score=score or SCORE)


def test_input_shape_mismatch_is_refused_with_expected_and_found(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, hmac_key=b"k" * 32)
    m = _manifest(reg, tiny_onnx(4))
    with pytest.raises(ModelError, match="input shape mismatch") as e:
        OnnxModel.from_artifact(reg.load("pm", "1.0.0"))
    msg = str(e.value)
    assert "expected one input 'X': tensor(float) [batch, 3]" in msg and "[None, 4]" in msg and "pm/1.0.0" in msg
    # the same through from_bytes
    with pytest.raises(ModelError, match="input shape mismatch"):
        OnnxModel.from_bytes(tiny_onnx(4), m)


def test_input_name_type_and_output_are_checked(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, hmac_key=b"k" * 32)
    m = _manifest(reg, tiny_onnx())
    with pytest.raises(ModelError, match="input mismatch.*'float_input'"):
        OnnxModel.from_bytes(tiny_onnx(input_name="float_input"), m)
    with pytest.raises(ModelError, match=r"input mismatch.*tensor\(double\)"):
        OnnxModel.from_bytes(tiny_onnx(elem=TensorProto.DOUBLE), m)
    with pytest.raises(ModelError, match="output mismatch.*'label'"):
        OnnxModel.from_bytes(tiny_onnx(output="label"), m)
    with pytest.raises(ModelError, match="cannot load"):
        OnnxModel.from_bytes(b"not an onnx model", m)
    model = OnnxModel.from_bytes(tiny_onnx(), m)
    with pytest.raises(ModelError, match=r"rows must be \(n, 3\)"):
        model.score(np.zeros((2, 4)))
    assert model.score(np.zeros((0, 3))).shape == (0,)


def test_bad_score_block_is_refused(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, hmac_key=b"k" * 32)
    m = _manifest(reg, tiny_onnx(), score={"output": "scores"})
    with pytest.raises(ModelError, match="center and scale"):
        OnnxModel.from_bytes(tiny_onnx(), m)
    m2 = _manifest(reg, tiny_onnx(), "2", score={**SCORE, "impute": [1.0]})
    with pytest.raises(ModelError, match="impute has 1 values"):
        OnnxModel.from_bytes(tiny_onnx(), m2)


def _encrypted_ed25519(tmp_path: Path, passphrase: bytes) -> tuple[Path, Path]:
    """A real encrypted Ed25519 PEM (PKCS#8, the best encryption cryptography offers) and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    k = ed25519.Ed25519PrivateKey.generate()
    priv, pub = tmp_path / "signing.pem", tmp_path / "signing.pub"
    priv.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(passphrase)))
    pub.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def test_an_encrypted_signing_key_signs_with_its_passphrase(tmp_path: Path) -> None:
    from aiotstream.models.registry import load_signing_key

    passphrase = b"correct horse battery staple"
    priv, pub = _encrypted_ed25519(tmp_path, passphrase)
    assert b"ENCRYPTED PRIVATE KEY" in priv.read_bytes()
    reg = ModelRegistry(tmp_path / "reg", verify_key=pub)
    m = publish(reg, signing_key=load_signing_key(priv, passphrase))
    assert m.signature is not None and m.signature["alg"] == "ed25519"
    assert reg.load("pm", "1.0.0").manifest == m  # verified against the public key
    with pytest.raises(ModelError, match="encrypted PEM: give its passphrase"):
        publish(reg, "1.0.1", signing_key=priv)
    with pytest.raises(ModelError, match="cannot decrypt") as e:
        load_signing_key(priv, b"wrong passphrase")
    assert "wrong passphrase" not in str(e.value).replace("(wrong passphrase?)", "")


def test_cli_train_reads_the_passphrase_from_a_secret_file(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from aiotstream.cli import main as cli_main

    priv, pub = _encrypted_ed25519(tmp_path, b"s3cret passphrase")
    site = tmp_path / "site.toml"
    site.write_text('[site]\nid = "t"\n\n[[assets]]\nid = "p1"\n')
    args = ["train", "--site", str(site), "--registry", str(tmp_path / "reg"), "--name", "pm",
            "--duration", "30", "--trees", "5", "--signing-key", str(priv)]
    assert cli_main([*args, "--version", "0.1.0"]) == 1  # encrypted, no passphrase: refused before training
    assert "--signing-key-passphrase-file" in capsys.readouterr().err
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not it\n")
    assert cli_main([*args, "--version", "0.1.0", "--signing-key-passphrase-file", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert "cannot decrypt" in err and "not it" not in err
    good = tmp_path / "good.pass"
    good.write_text("s3cret passphrase\n")
    assert cli_main([*args, "--version", "0.1.0", "--signing-key-passphrase-file", str(good)]) == 0
    assert "s3cret" not in capsys.readouterr().err
    reg = ModelRegistry(tmp_path / "reg", verify_key=pub)
    assert reg.load("pm", "0.1.0").manifest.signature["alg"] == "ed25519"  # type: ignore[index]
