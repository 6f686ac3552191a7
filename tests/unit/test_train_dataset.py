"""Training from a recorded dataset: a lake written by the plant flow's own analysis and the Parquet sink's
own partition code, a dataset made from it, models trained on its healthy windows, and a registry that
refuses models whose dataset it does not know or that was changed."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiotstream import code_version
from aiotstream.cli import main as cli_main
from aiotstream.config import ParquetOutput, SiteConfig
from aiotstream.datasets import Alert, DatasetError, DatasetStore, labels_for
from aiotstream.decisions.alerts import AlertChange, AlertState, alert_record
from aiotstream.errors import ModelError, ModelRefused
from aiotstream.io.parquet import ParquetSink
from aiotstream.models.registry import ModelRegistry
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.pdm.training import train_from_dataset, training_config
from aiotstream.records import Output, SourceMessage
from aiotstream.sim.plant import PlantSimulator

SITE_TOML = '[site]\nid = "t"\n\n[[assets]]\nid = "p1"\n\n[[assets]]\nid = "p2"\n'


def flow_outputs(cfg: SiteConfig, duration_s: float, seed: int) -> list[Output]:
    """The score outputs the plant flow's ingest and per-asset analysis make of a simulated run."""
    tcfg = training_config(cfg)
    rt = SiteRuntime(tcfg)
    sim = PlantSimulator(tcfg.all_assets(), duration_s=duration_s, n_faults=0, seed=seed)
    ingest = Ingestor(rt, now_ns=lambda: sim.end_ns + 10**13)
    topics = {"waveform": tcfg.inputs.topics[0], "reading": tcfg.inputs.topics[-1]}
    msgs = [SourceMessage(topics[m.stream], 0, i, m.payload) for i, m in enumerate(sim.messages())]
    per_asset: dict[str, list[Any]] = {}
    for x in ingest.decode_batch(msgs):
        assert isinstance(x, tuple)
        per_asset.setdefault(x[0], []).append(x[1])
    outs = []
    for aid in sorted(per_asset):
        a = AssetAnalyzer(rt, aid)
        outs += [o for o in a.on_items(per_asset[aid], 0.0) + a.flush() if o.kind == "score"]
    return outs


def labelled_alert(asset: str, opened: int, cleared: int, label: str, lineage: dict) -> list[Output]:
    s = AlertState("op-1", "anomaly", 0, "cleared", "warning", opened, 0.9, 0.9, 0.5, 0.3, [], {},
                   cleared_at_ns=cleared, label=label, labelled_by="op", labelled_at_ns=cleared + 1)
    return [Output("alert", asset, alert_record(AlertChange("labelled", s, cleared + 1), asset, "L", lineage))]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("rec")
    (d / "site.toml").write_text(SITE_TOML)
    cfg = SiteConfig.load(d / "site.toml")
    outs = flow_outputs(cfg, 50.0, seed=4)
    p1 = sorted((o for o in outs if o.key == "p1"), key=lambda o: o.record["window"]["start_ns"])
    opened, cleared = p1[10].record["window"]["end_ns"], p1[19].record["window"]["end_ns"]
    lin = {k: p1[0].record[k] for k in ("site", "flow", "flow_version", "config_hash", "code_version")}
    fault = labelled_alert("p1", opened, cleared, "true_fault", lin)
    sink = ParquetSink(ParquetOutput(directory=str(d / "lake"), kinds=["score", "alert"]), cfg.site.id)
    part = sink.build_part("parquet", "p0", None)
    for batch in (outs[:70], outs[50:] + fault):  # 20 windows twice: at least once
        part.write_batch(batch)
        part.snapshot()
    store = DatasetStore(d / "ds")
    m = store.create(d / "lake", site=cfg.site.id)
    windows = [(o.key, o.record["window"]["start_ns"], o.record["window"]["end_ns"]) for o in outs]
    y, _ = labels_for(windows, [Alert("op-1", "anomaly", "p1", opened, cleared, "true_fault")])
    return {"dir": d, "cfg": cfg, "store": store, "id": m.id, "healthy": int((y == 0).sum()),
            "faulty": int((y == 1).sum()), "n": len(outs)}


@pytest.fixture(scope="module")
def trained(recorded, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    reg_dir = tmp_path_factory.mktemp("reg")
    reg = ModelRegistry(reg_dir, hmac_key=b"k" * 32, datasets=recorded["store"])
    ms = train_from_dataset(recorded["cfg"], reg, recorded["store"], recorded["id"], "pm", "1.0.0", seed=1,
                            n_estimators=10)
    return reg_dir, ms


def test_models_trained_on_a_dataset_name_it_and_fit_its_healthy_windows(recorded, trained) -> None:
    _, ms = trained
    rt = SiteRuntime(training_config(recorded["cfg"]))
    cols = rt.columns(rt.assets["p1"])
    assert recorded["faulty"] == 10 and recorded["healthy"] == recorded["n"] - 10
    assert [m.version for m in ms] == ["1.0.0", "1.0.0-ae", "1.0.0-int8"]
    for m in ms:
        assert m.training_data == f"dataset:{recorded['id']}" and m.feature_names == cols
        assert m.extra["dataset"] == recorded["id"] and m.extra["code_version"] == code_version()
        assert m.extra["feature_set"] == rt.features_block and m.extra["family"]
        assert m.metrics["train_rows"] == recorded["healthy"] and m.metrics["train_assets"] == 2


def test_the_registry_with_a_store_refuses_unknown_and_changed_datasets(recorded, trained,
                                                                        tmp_path: Path) -> None:
    reg_dir, _ = trained
    store_dir = recorded["store"].root
    with pytest.raises(ModelError, match="give a dataset store"):
        ModelRegistry(reg_dir, datasets=store_dir)  # type: ignore[arg-type]
    # intact: loads, with and without the store
    assert ModelRegistry(reg_dir, hmac_key=b"k" * 32, datasets=DatasetStore(store_dir)).load("pm", "1.0.0")
    with pytest.raises(ModelError, match="is not a dataset in"):
        ModelRegistry(tmp_path / "r2", hmac_key=b"k" * 32, datasets=DatasetStore(store_dir)).publish(
            "pm", "9", b"x", feature_names=["a"], training_data="t", metrics={}, score={}, extra={"dataset": "f" * 32})
    # a registry over another store (empty): the dataset is unknown
    with pytest.raises(ModelRefused, match="not in .*unknown dataset"):
        ModelRegistry(reg_dir, hmac_key=b"k" * 32,
                      datasets=DatasetStore(tmp_path / "empty")).load("pm", "1.0.0-ae")
    # a changed byte in the dataset: refused, naming the file
    copy = tmp_path / "copy"
    shutil.copytree(store_dir, copy)
    f = copy / recorded["id"] / "score.parquet"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(ModelRefused, match=r"failed verification: .*score.parquet: hash mismatch"):
        ModelRegistry(reg_dir, hmac_key=b"k" * 32, datasets=DatasetStore(copy)).load("pm", "1.0.0-int8")
    # without a store: as before (no dataset check)
    assert ModelRegistry(reg_dir, hmac_key=b"k" * 32).load("pm", "1.0.0-int8").manifest.quantized


def test_training_refuses_a_dataset_of_other_feature_columns(recorded, tmp_path: Path) -> None:
    other = SiteConfig.from_dict({"site": {"id": "t"}, "assets": [{"id": "p1", "channels": ["x", "w"]}]})
    with pytest.raises(DatasetError, match=r"no feature column\(s\) \['w\.") as e:
        train_from_dataset(other, ModelRegistry(tmp_path, allow_unsigned=True), recorded["store"],
                           recorded["id"], "pm", "1")
    assert "feature set or the channels differ" in str(e.value)
    spectral = SiteConfig.from_dict({"site": {"id": "t"}, "assets": [{"id": "p1"}],
                                     "features": {"set": "vibration-spectral"}})
    with pytest.raises(ModelError, match=r"recorded with feature set\(s\) \[\(.vibration-basic., 2\)\]"):
        train_from_dataset(spectral, ModelRegistry(tmp_path, allow_unsigned=True), recorded["store"],
                           recorded["id"], "pm", "1")
    assert ModelRegistry(tmp_path).names() == []


def test_cli_train_dataset(recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = recorded["dir"]
    args = ["train", "--site", str(d / "site.toml"), "--registry", str(tmp_path / "reg"), "--name", "pm",
            "--version", "2.0.0", "--unsigned", "--trees", "5", "--datasets", str(recorded["store"].root)]
    assert cli_main(args + ["--dataset", recorded["id"][:10]]) == 0
    reg = ModelRegistry(tmp_path / "reg", allow_unsigned=True, datasets=recorded["store"])
    m = reg.load("pm", "2.0.0").manifest
    assert m.training_data == f"dataset:{recorded['id']}" and m.metrics["train_rows"] == recorded["healthy"]
    capsys.readouterr()
    assert cli_main(args[:-2] + ["--dataset", recorded["id"]]) == 2
    assert "--datasets" in capsys.readouterr().err
    assert cli_main([*args[:8], "2.1.0", *args[9:], "--dataset", "0" * 32]) == 1
    assert "no dataset" in capsys.readouterr().err and reg.versions("pm") == ["2.0.0-ae", "2.0.0-int8", "2.0.0"]
    assert np.isfinite(reg.load("pm", "2.0.0-ae").manifest.score["center"])


def test_windows_under_unlabelled_alerts_train_only_when_the_loop_asks(recorded, tmp_path: Path) -> None:
    """``unlabelled="healthy"`` (the model loop's choice) adds the windows under an alert nobody labelled to the
    training rows; the default leaves them out; ``min_rows`` refuses too few rows with the label counts."""
    cfg = recorded["cfg"]
    outs = flow_outputs(cfg, 50.0, seed=4)
    p2 = sorted((o for o in outs if o.key == "p2"), key=lambda o: o.record["window"]["start_ns"])
    opened, cleared = p2[5].record["window"]["end_ns"], p2[14].record["window"]["end_ns"]
    lin = {k: p2[0].record[k] for k in ("site", "flow", "flow_version", "config_hash", "code_version")}
    s = AlertState("op-2", "anomaly", 0, "cleared", "warning", opened, 0.9, 0.9, 0.5, 0.3, [], {},
                   cleared_at_ns=cleared)
    alert = [Output("alert", "p2", alert_record(AlertChange("cleared", s, cleared), "p2", "L", lin))]
    sink = ParquetSink(ParquetOutput(directory=str(tmp_path / "lake"), kinds=["score", "alert"]), cfg.site.id)
    part = sink.build_part("parquet", "p0", None)
    part.write_batch(outs + alert)
    part.snapshot()
    store = DatasetStore(tmp_path / "ds")
    ds = store.create(tmp_path / "lake", site=cfg.site.id).id
    _, y = store.rows(ds, list(store.get(ds).feature_columns), labels="all")
    assert int((y == -1).sum()) >= 10 and int((y == 1).sum()) == 0
    reg = ModelRegistry(tmp_path / "reg", hmac_key=b"k" * 32, datasets=store)
    kw = {"n_estimators": 5, "hidden": (4,)}
    left_out = train_from_dataset(cfg, reg, store, ds, "pm", "1", **kw)
    kept = train_from_dataset(cfg, reg, store, ds, "pm", "2", unlabelled="healthy", **kw)
    assert left_out[0].metrics["train_rows"] == int((y == 0).sum())
    assert kept[0].metrics["train_rows"] == int((y <= 0).sum()) == len(y)
    with pytest.raises(ModelError, match=rf"{len(y)} training rows, fewer than {len(y) + 1} .*kept as healthy"):
        train_from_dataset(cfg, reg, store, ds, "pm", "3", unlabelled="healthy", min_rows=len(y) + 1, **kw)
    with pytest.raises(ModelError, match="unlabelled='maybe'"):
        train_from_dataset(cfg, reg, store, ds, "pm", "4", unlabelled="maybe", **kw)
