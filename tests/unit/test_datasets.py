"""Datasets (:mod:`aiotstream.datasets`): a lake written by the Parquet sink's own partition code, with
duplicate records, several days, assets and alerts (true fault, false alarm, unlabelled, drift)."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiotstream.cli import main as cli_main
from aiotstream.config import ParquetOutput
from aiotstream.datasets import (
    ALERT_FILE,
    LABEL_SOURCES,
    MANIFEST_FILE,
    SCORE_FILE,
    Alert,
    DatasetError,
    DatasetStore,
    labels_for,
    parse_time_ns,
    referenced,
)
from aiotstream.decisions.alerts import AlertChange, AlertState, alert_record
from aiotstream.errors import ModelError
from aiotstream.io.parquet import ParquetSink
from aiotstream.lineage import FlowContext, make_id, window_block
from aiotstream.models.registry import ModelRegistry
from aiotstream.records import Output

SITE = "plant"
DAY = 86_400 * 10**9
T0 = parse_time_ns("2026-03-01T00:00:00Z")
W = 10 * 10**9  # window length
COLS = ["rms", "peak", "temp.mean"]
CTX = FlowContext(SITE, "pdm", "1", "cfg-hash", "0.1.0")
FEATURES = {"set": "vibration-basic", "version": 2}
MODEL = {"name": "m", "version": "1", "sha256": "0" * 64, "variant": "float"}


def score_record(asset: str, start: int, rng: np.random.Generator) -> dict[str, Any]:
    """A score record shaped as :class:`~aiotstream.pdm.asset.AssetAnalyzer` makes it."""
    vals = {c: (None if rng.random() < 0.05 else round(float(rng.normal()), 6)) for c in COLS}
    return {"schema": "aiotstream.score/1",
            "id": make_id("score", SITE, CTX.config_hash, MODEL["sha256"], asset, start, start + W),
            "asset": asset, "line": "L1", "score": round(float(rng.random()), 6), "warm": True,
            "anomalous": False, "drift": False, "frames": 10, "seq_range": [0, 9], "values": vals,
            **CTX.block(inputs=[], window=window_block(start, start + W), features=FEATURES, model=MODEL)}


@dataclass
class Spec:
    """An alert to write: its lifecycle records come from the real ``alert_record``."""

    alert_id: str
    alert_type: str
    asset: str
    opened: int
    cleared: int | None
    label: str | None


def alert_records(s: Spec) -> list[dict[str, Any]]:
    st_ = AlertState(s.alert_id, s.alert_type, 0, "open", "warning", s.opened, 0.9, 0.9, 0.5, 0.3, [], {})
    lin = CTX.block(inputs=[], window=window_block(s.opened - W, s.opened), features=FEATURES, model=MODEL)
    out = [alert_record(AlertChange("opened", st_, s.opened), s.asset, "L1", lin)]
    if s.cleared is not None:
        st_ = AlertState(**{**{k: getattr(st_, k) for k in st_.__slots__}, "status": "cleared",
                            "cleared_at_ns": s.cleared})
        out.append(alert_record(AlertChange("cleared", st_, s.cleared), s.asset, "L1", lin))
    if s.label is not None:
        at = (s.cleared or s.opened) + 1
        st_ = AlertState(**{**{k: getattr(st_, k) for k in st_.__slots__}, "label": s.label,
                            "fault_type": "bearing" if s.label == "true_fault" else None,
                            "labelled_by": "op", "labelled_at_ns": at})
        out.append(alert_record(AlertChange("labelled", st_, at), s.asset, "L1", lin))
    return out


def write_lake(lake: Path, batches: list[list[Output]], kinds: tuple[str, ...] = ("score", "alert"),
               part: str = "p0") -> None:
    """Each batch is one epoch of the real sink partition (its own files)."""
    sink = ParquetSink(ParquetOutput(directory=str(lake), kinds=list(kinds)), SITE,
                       classification={"score": "confidential"})
    p = sink.build_part("parquet", part, None)
    for b in batches:
        p.write_batch(b)
        p.snapshot()
    p.close()


ASSETS = ["a1", "a2", "a3"]
SPECS = [Spec("al-1", "anomaly", "a1", T0 + 20 * W, T0 + 25 * W, "true_fault"),
         Spec("al-2", "anomaly", "a1", T0 + 40 * W, T0 + 42 * W, "false_alarm"),
         Spec("al-3", "anomaly", "a2", T0 + 30 * W, T0 + 33 * W, None),
         Spec("al-4", "drift", "a2", T0 + 5 * W, None, None),
         Spec("al-5", "anomaly", "a3", T0 + DAY + 3 * W, None, "true_fault"),  # still open, next day
         Spec("al-6", "anomaly", "a2", T0 + 60 * W, T0 + 62 * W, "false_alarm"),
         Spec("al-7", "anomaly", "a2", T0 + 61 * W, T0 + 64 * W, None)]  # unlabelled beats false alarm


def make_records(seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    scores = [score_record(a, T0 + d * DAY + i * W, rng) for d in range(2) for a in ASSETS for i in range(80)]
    alerts = [r for s in SPECS for r in alert_records(s)]
    return scores, alerts


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    lake = tmp_path_factory.mktemp("lake")
    scores, alerts = make_records()
    outs = [Output("score", r["asset"], r) for r in scores] + [Output("alert", r["asset"], r) for r in alerts]
    batches = [outs[i:i + 97] for i in range(0, len(outs), 97)]
    dups = [outs[5:40], outs[300:310], [outs[-1]]]  # a replayed epoch's rows again, in new files
    write_lake(lake, batches + dups)
    return lake, scores, alerts


def specs_alerts() -> list[Alert]:
    return [Alert(s.alert_id, s.alert_type, s.asset, s.opened, s.cleared, s.label) for s in SPECS]


def slow_label(asset: str, start: int, end: int, alerts: list[Alert]) -> tuple[int, str]:
    """The rule in words, one window at a time."""
    met = [a for a in alerts if a.asset == asset and a.alert_type != "drift" and end >= a.opened_at_ns
           and (a.cleared_at_ns is None or start < a.cleared_at_ns)]
    if any(a.label == "true_fault" for a in met):
        return 1, "operator:true_fault"
    if any(a.label not in ("true_fault", "false_alarm") for a in met):
        return -1, "unlabelled_alert"
    if met:
        return 0, "operator:false_alarm"
    return 0, "no_alert"


def select(scores: list[dict], assets: list[str] | None, lo: int | None, hi: int | None) -> list[dict]:
    seen: dict[str, dict] = {}
    for r in scores:
        s = r["window"]["start_ns"]
        if (assets is None or r["asset"] in assets) and (lo is None or s >= lo) and (hi is None or s < hi):
            seen.setdefault(r["id"], r)
    return sorted(seen.values(), key=lambda r: (r["asset"], r["window"]["start_ns"]))


# ---- create ---------------------------------------------------------------------------------------------
def test_create_selects_dedupes_labels_and_describes_the_rows(lake, tmp_path: Path) -> None:
    lake_dir, scores, _ = lake
    store = DatasetStore(tmp_path / "ds")
    lo, hi = T0 + 10 * W, T0 + DAY + 50 * W
    m = store.create(lake_dir, site=SITE, assets=["a2", "a1"], start_ns=lo, end_ns=hi, note="first")
    want = select(scores, ["a1", "a2"], lo, hi)
    assert m.rows["score"] == len(want) and m.duplicates_dropped["score"] > 0
    assert m.assets == {"a1": len(want) // 2, "a2": len(want) // 2}
    assert m.time_range["start_ns"] == lo and m.time_range["end_ns"] == max(r["window"]["end_ns"] for r in want)
    assert m.selection == {"assets": ["a1", "a2"], "start_ns": lo, "end_ns": hi, "lake": str(lake_dir.resolve())}
    assert m.feature_columns == COLS and m.feature_sets == [FEATURES]
    assert m.classification == "confidential"  # the most restricted of the source files
    t = store.table(m.id)
    assert t is not None and t.column("id").to_pylist() == [r["id"] for r in want]
    names = [n for n, _ in m.schema["score"]]
    assert {"id", "values", "window_start_ns", "window_end_ns", "label", "label_source"} <= set(names)
    assert "site" not in names and dict(m.schema["score"])["window_start_ns"] == "int64"
    for name, info in m.files.items():
        data = (tmp_path / "ds" / m.id / name).read_bytes()
        assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["bytes"] == len(data)
    # labels against the rule applied window by window
    expect = [slow_label(r["asset"], r["window"]["start_ns"], r["window"]["end_ns"], specs_alerts())
              for r in want]
    assert t.column("label").to_pylist() == [y for y, _ in expect]
    counts = {s: sum(1 for _, x in expect if x == s) for s in LABEL_SOURCES}
    assert m.labels["counts"] == {s: n for s, n in counts.items() if n}
    assert counts["operator:true_fault"] and counts["unlabelled_alert"] and counts["operator:false_alarm"]
    assert m.labels["alerts"]["true_fault"] == ["al-1"] and m.labels["alerts"]["drift"] == ["al-4"]
    assert m.labels["alerts_recorded"] is True
    alerts = store.table(m.id, "alert")
    assert alerts is not None and set(alerts.column("alert_id").to_pylist()) == {"al-1", "al-2", "al-3", "al-4",
                                                                                  "al-6", "al-7"}
    assert (tmp_path / "ds" / m.id / MANIFEST_FILE).is_file() and len(m.id) == 32


def test_a_lake_without_alerts_labels_every_window_no_alert_and_says_so(tmp_path: Path) -> None:
    scores, _ = make_records(3)
    write_lake(tmp_path / "lake", [[Output("score", r["asset"], r) for r in scores]], kinds=("score",))
    m = DatasetStore(tmp_path / "ds").create(tmp_path / "lake", site=SITE)
    assert m.labels["alerts_recorded"] is False and m.labels["counts"] == {"no_alert": len(scores)}
    assert ALERT_FILE not in m.files and m.rows == {"score": len(scores), "alert": 0}


def test_create_refuses_an_empty_selection_and_a_missing_lake(lake, tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "ds")
    with pytest.raises(DatasetError, match="no score rows"):
        store.create(lake[0], site=SITE, assets=["nope"])
    with pytest.raises(DatasetError, match="no such directory"):
        store.create(tmp_path / "nothing", site=SITE)
    with pytest.raises(DatasetError, match="no score files"):
        store.create(lake[0], site="other")
    with pytest.raises(DatasetError, match="is empty"):
        store.create(lake[0], site=SITE, start_ns=5, end_ns=5)
    assert store.list() == [] and not (tmp_path / "ds").exists()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(assets=st.none() | st.sets(st.sampled_from(ASSETS), min_size=1).map(sorted),
       lo=st.none() | st.integers(0, 150), span=st.none() | st.integers(1, 200), seed=st.integers(0, 3))
def test_the_same_selection_of_the_same_data_gives_the_same_id(lake, assets, lo, span, seed) -> None:
    lake_dir, scores, _ = lake
    start = None if lo is None else T0 + lo * W
    end = None if span is None else (start or T0) + span * W
    with tempfile.TemporaryDirectory() as d:
        a = DatasetStore(Path(d) / "a")
        try:
            m1 = a.create(lake_dir, site=SITE, assets=assets, start_ns=start, end_ns=end, note="x")
        except DatasetError:
            assert not select(scores, assets, start, end)
            return
        # again: the stored one comes back; another store over a copy of the lake with more duplicates and
        # its files in another order gives the same id
        assert a.create(lake_dir, site=SITE, assets=assets, start_ns=start, end_ns=end).created == m1.created
        copy = Path(d) / "copy"
        shutil.copytree(lake_dir, copy)
        extra = [Output("score", r["asset"], {**r, "produced_at": "2027-01-01T00:00:00.000000000Z"})
                 for r in select(scores, None, None, None)[seed::7]]
        write_lake(copy, [extra], part="p00")  # sorts before p0's files
        m2 = DatasetStore(Path(d) / "b").create(copy, site=SITE, assets=assets, start_ns=start, end_ns=end,
                                                 note="y")
        assert m2.id == m1.id and m2.files == m1.files and len(a.ids()) == 1
        # another selection is another dataset
        other = DatasetStore(Path(d) / "b").create(copy, site=SITE, assets=assets, start_ns=start,
                                                   end_ns=(end or T0) + DAY * 9)
        assert other.id != m1.id


# ---- verify ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made(lake, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("made")
    m = DatasetStore(root).create(lake[0], site=SITE)
    return root, m.id


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_changed_byte_in_a_file_fails_verify_naming_the_file(made, data) -> None:
    root, did = made
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(root / did, Path(d) / did)
        store = DatasetStore(d)
        store.verify(did)
        name = data.draw(st.sampled_from([SCORE_FILE, ALERT_FILE]))
        p = Path(d) / did / name
        raw = bytearray(p.read_bytes())
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
        p.write_bytes(bytes(raw))
        with pytest.raises(DatasetError, match=rf"{name}: hash mismatch"):
            store.verify(did)
        with pytest.raises(ModelError):  # the error family the registry and the CLI know
            store.rows(did, COLS) if name == SCORE_FILE else store.table(did, "alert")


def test_verify_finds_a_changed_manifest_a_missing_file_and_an_added_one(made, tmp_path: Path) -> None:
    root, did = made
    for case in ("manifest", "missing", "added"):
        d = tmp_path / case
        shutil.copytree(root / did, d / did)
        mp = d / did / MANIFEST_FILE
        if case == "manifest":
            m = orjson.loads(mp.read_bytes())
            m["rows"]["score"] += 1
            mp.write_bytes(orjson.dumps(m))
        elif case == "missing":
            os.remove(d / did / ALERT_FILE)
        else:
            (d / did / "more.parquet").write_bytes(b"x")
        why = {"manifest": "manifest was changed", "missing": f"{ALERT_FILE}: missing file",
               "added": "more.parquet"}[case]
        with pytest.raises(DatasetError, match=why):
            DatasetStore(d).verify(did)


# ---- labels ---------------------------------------------------------------------------------------------
_t = st.integers(0, 60)
alerts_st = st.lists(st.builds(lambda i, ty, a, o, dur, lab: Alert(f"x{i}", ty, a, o, None if dur is None
                                                                    else o + dur, lab),
                               st.integers(0, 10**6), st.sampled_from(["anomaly", "drift", "scalar"]),
                               st.sampled_from(["a", "b"]), _t, st.none() | st.integers(0, 20),
                               st.sampled_from([None, "true_fault", "false_alarm"])), max_size=8)


@settings(max_examples=300, deadline=None)
@given(windows=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), _t, st.integers(1, 15))
                        .map(lambda w: (w[0], w[1], w[1] + w[2])), max_size=30), alerts=alerts_st)
def test_the_label_rule_agrees_with_a_window_by_window_reading(windows, alerts) -> None:
    y, src = labels_for(windows, alerts)
    ref = [slow_label(a, s, e, alerts) for a, s, e in windows]
    assert y.dtype == np.int8 and y.tolist() == [r[0] for r in ref] and src == [r[1] for r in ref]


def test_the_first_label_stands_and_an_alerts_records_make_one_alert(lake) -> None:
    from aiotstream.datasets import _alerts_of
    from aiotstream.io.parquet import flatten, to_table

    recs = alert_records(Spec("z", "anomaly", "a1", 100, 200, "false_alarm"))
    late = {**recs[-1], "id": "late", "label": orjson.loads(orjson.dumps({**recs[-1]["label"],
                                                                           "label": "true_fault",
                                                                           "at_ns": 10**12}))}
    got = _alerts_of(to_table("alert", [flatten(r) for r in [late, *recs]]))
    assert got == [Alert("z", "anomaly", "a1", 100, 200, "false_alarm")]


# ---- rows -----------------------------------------------------------------------------------------------
def test_rows_give_the_recorded_values_and_labels_back(lake, made) -> None:
    _, scores, _ = lake
    root, did = made
    store = DatasetStore(root)
    want = select(scores, None, None, None)
    rows, y = store.rows(did, ["temp.mean", "rms"], labels="all")
    X = np.array([[np.nan if r["values"][c] is None else r["values"][c] for c in ["temp.mean", "rms"]]
                  for r in want])
    np.testing.assert_array_equal(rows.X, X)
    assert rows.columns == ["temp.mean", "rms"] and rows.assets == [r["asset"] for r in want]
    assert rows.start_ns.tolist() == [r["window"]["start_ns"] for r in want]
    assert rows.end_ns.tolist() == [r["window"]["end_ns"] for r in want]
    ref = [slow_label(r["asset"], r["window"]["start_ns"], r["window"]["end_ns"], specs_alerts())[0]
           for r in want]
    assert y.dtype == np.int8 and y.tolist() == ref
    healthy, yh = store.rows(did, COLS)
    assert yh.tolist() == [0] * ref.count(0) and len(healthy.assets) == ref.count(0) < len(ref)
    np.testing.assert_array_equal(healthy.X[:, 0], rows.X[np.asarray(ref) == 0, 1])  # rms


def test_rows_refuse_a_missing_column_and_an_empty_result(made, tmp_path: Path) -> None:
    root, did = made
    with pytest.raises(DatasetError, match=r"no feature column\(s\) \['kurtosis'\].*feature set"):
        DatasetStore(root).rows(did, ["rms", "kurtosis"])
    rng = np.random.default_rng(0)
    recs = [score_record("a1", T0 + i * W, rng) for i in range(5)]
    spec = Spec("f", "anomaly", "a1", T0, None, "true_fault")
    write_lake(tmp_path / "lake", [[Output("score", "a1", r) for r in recs] +
                                   [Output("alert", "a1", r) for r in alert_records(spec)]])
    store = DatasetStore(tmp_path / "ds")
    m = store.create(tmp_path / "lake", site=SITE)
    assert m.labels["y"] == {"1": 5, "0": 0, "-1": 0}
    with pytest.raises(DatasetError, match="no healthy"):
        store.rows(m.id, COLS)


# ---- list, diff, prune ----------------------------------------------------------------------------------
def test_diff_names_rows_assets_time_and_labels(lake, tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    a = store.create(lake[0], site=SITE, assets=["a1"], end_ns=T0 + DAY)
    b = store.create(lake[0], site=SITE, assets=["a1", "a3"])
    d = store.diff(a.id, b.id)
    assert d["same"] is False and d["assets"]["added"] == ["a3"] and d["assets"]["removed"] == []
    assert d["rows"]["score"] == {"a": 80, "b": 320, "change": 240}  # a1 one day; a1 and a3 two days
    assert d["assets"]["rows_changed"] == {"a1": [80, 160]}
    assert d["time_range"]["a"]["end_ns"] == T0 + 80 * W and d["columns"] == {"added": [], "removed": []}
    assert store.diff(a.id, a.id)["same"] is True and store.diff(a.id, a.id)["schema"] == {}
    assert sorted(m.id for m in store.list()) == sorted([a.id, b.id])


def test_prune_keeps_datasets_a_registry_names_and_young_ones(lake, tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "ds")
    kept = store.create(lake[0], site=SITE, assets=["a1"])
    gone = store.create(lake[0], site=SITE, assets=["a2"])
    reg = ModelRegistry(tmp_path / "reg", hmac_key=b"k" * 32, datasets=store)
    reg.publish("m", "1", b"onnx", feature_names=COLS, training_data=f"dataset:{kept.id}", metrics={},
                score={"output": "scores"}, extra={"dataset": kept.id})
    assert referenced(reg) == {kept.id}
    now = parse_time_ns(kept.created)
    assert store.prune(now + 10**9, 3600, referenced(reg)) == []  # younger than an hour
    assert store.prune(now + 7200 * 10**9, 3600, referenced(reg), dry_run=True) == [gone.id]
    assert store.exists(gone.id)
    assert store.prune(now + 7200 * 10**9, 3600, referenced(reg)) == [gone.id]
    assert store.ids() == [kept.id] and reg.load("m", "1").manifest.extra["dataset"] == kept.id


def test_get_refuses_bad_ids_and_names_the_store(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    with pytest.raises(DatasetError, match="not a dataset id"):
        store.get("../etc")
    with pytest.raises(DatasetError, match="no dataset 0{32}"):
        store.get("0" * 32)


# ---- CLI ------------------------------------------------------------------------------------------------
def test_cli_dataset_commands(lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = str(tmp_path / "ds")
    base = ["dataset"]
    rc = cli_main(base + ["create", "--datasets", ds, "--lake", str(lake[0]), "--site", SITE, "--asset", "a1",
                          "--asset", "a2", "--from", "2026-03-01T00:00:00Z", "--to", str(T0 + DAY), "--json"])
    assert rc == 0
    m = orjson.loads(capsys.readouterr().out)
    assert m["selection"]["assets"] == ["a1", "a2"] and m["selection"]["end_ns"] == T0 + DAY
    assert m["rows"]["score"] == 160
    assert cli_main(base + ["list", "--datasets", ds]) == 0
    out = capsys.readouterr().out
    assert m["id"] in out and "160" in out
    assert cli_main(base + ["show", m["id"][:8], "--datasets", ds, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["id"] == m["id"]
    assert cli_main(base + ["verify", m["id"], "--datasets", ds]) == 0
    assert "ok" in capsys.readouterr().out
    rc = cli_main(base + ["create", "--datasets", ds, "--lake", str(lake[0]), "--site", SITE, "--json"])
    other = orjson.loads(capsys.readouterr().out)["id"]
    assert cli_main(base + ["diff", m["id"], other, "--datasets", ds, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["assets"]["added"] == ["a3"]
    score = Path(ds) / m["id"] / SCORE_FILE
    score.write_bytes(score.read_bytes()[:-1] + b"\0")
    assert cli_main(base + ["verify", m["id"], "--datasets", ds]) == 1
    assert f"{SCORE_FILE}: hash mismatch" in capsys.readouterr().err
    reg = tmp_path / "reg"
    reg.mkdir()
    assert cli_main(base + ["prune", "--datasets", ds, "--older-than", "1d", "--registry", str(reg)]) == 0
    assert len(DatasetStore(ds).ids()) == 2  # younger than a day
    assert cli_main(base + ["create", "--datasets", ds, "--lake", str(lake[0]), "--site", SITE,
                            "--from", "yesterday"]) == 2
    assert "--from" in capsys.readouterr().err


# ---- parsers ----------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(t=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
       n=st.integers(-(2**62), 2**62))
def test_times_parse_as_iso_utc_or_nanoseconds(t: datetime, n: int) -> None:
    ns = round((t.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1000
    assert parse_time_ns(t.isoformat()) == ns == parse_time_ns(t.replace(tzinfo=UTC).isoformat())
    assert parse_time_ns(t.isoformat() + "Z") == ns and parse_time_ns(str(n)) == n
    assert parse_time_ns(t.replace(tzinfo=timezone(timedelta(hours=2))).isoformat()) == ns - 2 * 3600 * 10**9


json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                           max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_changed_manifest_field_is_a_dataset_error_never_another_exception(made, data) -> None:
    root, did = made
    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(root / did, Path(d) / did)
        mp = Path(d) / did / MANIFEST_FILE
        m = orjson.loads(mp.read_bytes())
        key = data.draw(st.sampled_from(sorted(m)))
        value = data.draw(json_values)
        if value == m[key]:
            return
        m[key] = value
        mp.write_bytes(orjson.dumps(m))
        store = DatasetStore(d)
        if key in ("created", "note", "duplicates_dropped"):  # not part of the id: a bad value, not a change
            try:
                store.verify(did)
                store.prune(T0, 1, set())
            except DatasetError:
                assert key != "note" or not isinstance(value, str)
            return
        with pytest.raises(DatasetError):
            store.verify(did)
        with pytest.raises(DatasetError):
            store.rows(did, COLS)


@pytest.fixture(scope="module")
def six(lake, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("six")
    store = DatasetStore(root)
    ids = [store.create(lake[0], site=SITE, assets=[a], end_ns=T0 + DAY * d).id for a in ASSETS for d in (1, 2)]
    return root, ids


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ages_h=st.lists(st.integers(0, 100), min_size=6, max_size=6), named=st.sets(st.integers(0, 5)),
       older_h=st.integers(1, 100))
def test_prune_removes_exactly_the_old_datasets_no_model_names(six, ages_h, named, older_h) -> None:
    root, ids = six
    now = T0 + 400 * DAY
    with tempfile.TemporaryDirectory() as d:
        store = DatasetStore(Path(d) / "ds")
        shutil.copytree(root, store.root)
        for i, age in zip(ids, ages_h):  # created is outside the id: the datasets stay valid
            mp = store.root / i / MANIFEST_FILE
            m = orjson.loads(mp.read_bytes())
            m["created"] = datetime.fromtimestamp((now - age * 3600 * 10**9) / 1e9, tz=UTC).isoformat()
            mp.write_bytes(orjson.dumps(m))
        reg = ModelRegistry(Path(d) / "reg", allow_unsigned=True, datasets=store)
        for j in sorted(named):
            reg.publish("m", f"{j}", b"onnx", feature_names=COLS, training_data="t", metrics={},
                        score={"output": "scores"}, extra={"dataset": ids[j]})
        gone = store.prune(now, older_h * 3600, referenced(reg))
        want = {i for j, (i, age) in enumerate(zip(ids, ages_h)) if age > older_h and j not in named}
        assert set(gone) == want and set(store.ids()) == set(ids) - want
        for j in named:
            store.verify(ids[j])
