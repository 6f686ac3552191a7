"""Recorded data as versioned datasets: content-addressed, immutable snapshots of the Parquet lake.

A dataset is a selection of a site's recorded ``score`` windows (by asset and window time) with the
``alert`` records that label them, copied out of the lake (:mod:`aiotstream.io.parquet`) so that a
model can name exactly what it was trained on, even after ``aiotstream prune`` removed the lake's days.

Layout (one directory per dataset, written once, never changed)::

    root/<id>/score.parquet    the selected score rows (lake columns + ``label``, ``label_source``)
    root/<id>/alerts.parquet   the selected assets' alert records that overlap them (only when there are any)
    root/<id>/manifest.json    :class:`DatasetManifest`

**Id.** The first 32 hex digits (128 bits) of the sha256 of the canonical JSON (orjson, sorted keys) of
the manifest *without* ``id``, ``created``, ``note``, ``selection.lake`` and ``duplicates_dropped``: the
files' sha256 (so the data and the labels, which are columns of the data), the selection (site, assets,
time range) and what is derived from the data (counts, schema, time range, label counts). The same
selection of the same data gives the same id wherever the lake lies and however many duplicate copies
it holds; :meth:`DatasetStore.create` then returns the dataset already stored. The files are written by
pyarrow with fixed settings (rows sorted, zstd, no source metadata but the classification), so the id is
stable for a given pyarrow version (another pyarrow may write other bytes, hence another id).
:meth:`DatasetStore.verify` rehashes every file and recomputes the id, so a changed byte in a file or a
changed manifest field is found.

**Selection.** A score row is selected when its ``asset`` is one of ``assets`` (all when None) and its
window *start* is in ``[start_ns, end_ns)`` (either bound may be open), so adjacent ranges split the
windows without overlap. The sink is at least once: rows with the same ``id`` (a replayed epoch written
twice) are kept once. Alert records are read from the site's whole ``alert`` partition (an alert's
records can fall on other days than its windows); those of the selected assets whose span meets a
selected window are kept.

**Labels (rule ``aiotstream.dataset.labels/1``).** An alert's span is ``[opened_at_ns, cleared_at_ns]``
(to the end of time while it is open); its label is the operator's (``label.label`` of any of its records:
``true_fault`` or ``false_alarm``), else it is unlabelled. Drift alerts (``alert_type`` ``drift``) say the
data changed, not that the asset failed: they never label a window. A window ``[start, end)`` of an asset
meets an alert of the same asset when ``end >= opened_at_ns`` and ``start < cleared_at_ns`` (so the
window that opened the alert, which ends at ``opened_at_ns``, counts). Each window then gets:

* ``1`` (source ``operator:true_fault``) when it meets an alert labelled ``true_fault``;
* else ``-1``, unknown (``unlabelled_alert``) when it meets an unlabelled alert;
* else ``0`` (``operator:false_alarm``) when it meets only alerts labelled ``false_alarm``;
* else ``0`` (``no_alert``).

A lake without alert records for the site (the Parquet sink's default kinds are ``score`` and ``kpi``)
labels every window ``0``/``no_alert``; the manifest says so (``labels.alerts_recorded`` false).

>>> labels_for([("a", 0, 10), ("a", 10, 20), ("a", 20, 30), ("b", 0, 10)],
...            [Alert("x", "anomaly", "a", 10, 15, "true_fault"), Alert("y", "anomaly", "b", 5, None, None),
...             Alert("z", "drift", "a", 20, None, None)])[0].tolist()
[1, 1, 0, -1]
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aiotstream.errors import ModelError
from aiotstream.models.train import WindowRows

__all__ = ["FORMAT", "LABEL_RULE", "LABEL_SOURCES", "Alert", "DatasetError", "DatasetManifest",
           "DatasetStore", "canonical_id", "labels_for", "parse_time_ns", "referenced"]

FORMAT = "aiotstream.dataset/1"
LABEL_RULE = "aiotstream.dataset.labels/1"
LABEL_SOURCES = ("operator:true_fault", "operator:false_alarm", "no_alert", "unlabelled_alert")
ID_HEX = 32
SCORE_FILE, ALERT_FILE, MANIFEST_FILE = "score.parquet", "alerts.parquet", "manifest.json"
FILE_KINDS = {SCORE_FILE: "score", ALERT_FILE: "alert"}
DRIFT = "drift"  # aiotstream.config.base.ALERT_TYPE_DRIFT
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")  # least to most restricted
_ID = re.compile(rf"^[0-9a-f]{{{ID_HEX}}}$")
_ID_EXCLUDED = ("id", "created", "note", "duplicates_dropped")
_FOREVER = np.iinfo(np.int64).max


class DatasetError(ModelError):
    """A dataset is missing, refused (hash mismatch, changed manifest) or cannot be made or used."""


# ---- time ---------------------------------------------------------------------------------------------
def parse_time_ns(text: str) -> int:
    """A time as nanoseconds since the epoch: a whole number (ns) or an ISO 8601 time (UTC when no offset is
    given; a date alone is its midnight UTC).

    >>> parse_time_ns("2026-01-01"), parse_time_ns("2026-01-01T00:00:01Z"), parse_time_ns("5")
    (1767225600000000000, 1767225601000000000, 5)
    >>> parse_time_ns("yesterday")
    Traceback (most recent call last):
    ValueError: 'yesterday' is not a time: give an ISO 8601 time (2026-01-31T12:00:00Z) or nanoseconds
    """
    t = text.strip()
    if re.fullmatch(r"-?[0-9]+", t):
        return int(t)
    try:
        d = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give an ISO 8601 time (2026-01-31T12:00:00Z) or "
                         "nanoseconds") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    delta = d - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _iso(t_ns: int | None) -> str | None:
    if t_ns is None:
        return None
    return datetime.fromtimestamp(t_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + \
        (f".{t_ns % 1_000_000_000:09d}".rstrip("0").rstrip(".") if t_ns % 1_000_000_000 else "") + "Z"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---- labels -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as its records tell it (see the module docstring): span and operator label."""

    alert_id: str
    alert_type: str
    asset: str
    opened_at_ns: int
    cleared_at_ns: int | None
    label: str | None  # true_fault | false_alarm | None (unlabelled)


def labels_for(windows: Sequence[tuple[str, int, int]] | tuple[Sequence[str], np.ndarray, np.ndarray],
               alerts: Iterable[Alert]) -> tuple[np.ndarray, list[str]]:
    """``(y, sources)`` per window (``(asset, start_ns, end_ns)`` triples, or ``(assets, starts, ends)``
    arrays) by the rule of the module docstring: y int8 (1 fault, 0 healthy, -1 unknown)."""
    if isinstance(windows, tuple) and len(windows) == 3 and isinstance(windows[1], np.ndarray):
        assets = np.asarray(windows[0], dtype=object)
        starts, ends = np.asarray(windows[1], dtype=np.int64), np.asarray(windows[2], dtype=np.int64)
    else:
        ws = list(windows)  # type: ignore[arg-type]
        assets = np.asarray([w[0] for w in ws], dtype=object)
        starts = np.asarray([w[1] for w in ws], dtype=np.int64)
        ends = np.asarray([w[2] for w in ws], dtype=np.int64)
    n = len(assets)
    fault, unl, fa = (np.zeros(n, dtype=bool) for _ in range(3))
    by_asset: dict[str, np.ndarray] = {}
    for a in alerts:
        if a.alert_type == DRIFT:
            continue
        idx = by_asset.get(a.asset)
        if idx is None:
            idx = by_asset[a.asset] = np.flatnonzero(assets == a.asset)
        cleared = _FOREVER if a.cleared_at_ns is None else a.cleared_at_ns
        hit = idx[(ends[idx] >= a.opened_at_ns) & (starts[idx] < cleared)]
        target = fault if a.label == "true_fault" else fa if a.label == "false_alarm" else unl
        target[hit] = True
    y = np.where(fault, 1, np.where(unl, -1, 0)).astype(np.int8)
    src = np.where(fault, "operator:true_fault",
                   np.where(unl, "unlabelled_alert", np.where(fa, "operator:false_alarm", "no_alert")))
    return y, src.tolist()


def _alerts_of(table: pa.Table | None) -> list[Alert]:
    """One :class:`Alert` per ``alert_id`` from its lifecycle records (the first label given stands)."""
    if table is None or table.num_rows == 0:
        return []
    cols = [c for c in ("alert_id", "alert_type", "asset", "opened_at_ns", "cleared_at_ns", "label", "at_ns")
            if c in table.column_names]
    acc: dict[str, dict[str, Any]] = {}
    for r in table.select(cols).to_pylist():
        aid = r.get("alert_id")
        if aid is None or r.get("opened_at_ns") is None:
            continue
        a = acc.setdefault(aid, {"alert_type": r.get("alert_type") or "", "asset": r.get("asset") or "",
                                 "opened": r["opened_at_ns"], "cleared": None, "label": None,
                                 "label_at": None})
        a["opened"] = min(a["opened"], r["opened_at_ns"])
        if r.get("cleared_at_ns") is not None:
            c = r["cleared_at_ns"]
            a["cleared"] = c if a["cleared"] is None else min(a["cleared"], c)
        lab = r.get("label")
        if isinstance(lab, str):
            lab = orjson.loads(lab)
        if isinstance(lab, dict) and lab.get("label") in ("true_fault", "false_alarm"):
            at = lab.get("at_ns") if isinstance(lab.get("at_ns"), int) else r.get("at_ns") or 0
            if a["label"] is None or at < a["label_at"]:
                a["label"], a["label_at"] = lab["label"], at
    return [Alert(k, v["alert_type"], v["asset"], v["opened"], v["cleared"], v["label"])
            for k, v in sorted(acc.items())]


# ---- manifest -----------------------------------------------------------------------------------------
def _canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def canonical_id(manifest: dict[str, Any]) -> str:
    """The id a manifest's content gives (see the module docstring: what is left out and why)."""
    d = {k: v for k, v in manifest.items() if k not in _ID_EXCLUDED}
    d["selection"] = {k: v for k, v in d.get("selection", {}).items() if k != "lake"}
    return hashlib.sha256(_canonical(d)).hexdigest()[:ID_HEX]


@dataclass(frozen=True, slots=True)
class DatasetManifest:
    """What ``manifest.json`` holds.

    ``selection``: ``{"assets": [...] | None, "start_ns", "end_ns" (None: open), "lake": path}``;
    ``rows``: rows per kind (``score``, ``alert``); ``duplicates_dropped``: rows with an ``id`` seen before,
    per kind; ``time_range``: ``{"start_ns", "end_ns", "start", "end"}``, the first window start and the last
    window end actually covered; ``assets``: score rows per asset; ``schema``: per kind, ``[[column, Arrow
    type], ...]`` of its file; ``files``: per file name ``{"kind", "sha256", "bytes", "rows"}``;
    ``feature_columns``: the keys of the score records' ``values``, in their order; ``feature_sets``: the
    distinct ``features`` lineage blocks of the rows; ``labels``: ``{"rule", "alerts_recorded", "counts"
    (per label source), "y" (rows per label 1/0/-1), "alerts": {"true_fault", "false_alarm", "unlabelled",
    "drift": [alert ids]}}``; ``classification``: the most restricted classification of the source files.
    """

    id: str
    format: str
    site: str
    created: str
    note: str
    selection: dict[str, Any]
    rows: dict[str, int]
    duplicates_dropped: dict[str, int]
    time_range: dict[str, Any]
    assets: dict[str, int]
    schema: dict[str, list[list[str]]]
    files: dict[str, dict[str, Any]]
    feature_columns: list[str]
    feature_sets: list[dict[str, Any]]
    labels: dict[str, Any]
    classification: str = "internal"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "dataset manifest") -> DatasetManifest:
        if not isinstance(d, dict):
            raise DatasetError(f"{where}: not a dataset manifest (a JSON object is expected)")
        names = [f.name for f in fields(cls)]
        missing = sorted(set(names) - set(d) - {"classification"})
        unknown = sorted(map(str, set(d) - set(names)))
        if missing or unknown or d.get("format") != FORMAT:
            why = [f"missing field(s) {missing}"] * bool(missing) + \
                [f"unknown field(s) {unknown}"] * bool(unknown)
            if d.get("format") != FORMAT:
                why.append(f"format {d.get('format')!r}, this code reads {FORMAT!r}")
            raise DatasetError(f"{where}: not a dataset manifest ({'; '.join(why)})")
        bad = sorted(k for k, t in _FIELD_TYPES.items() if k in d and not isinstance(d[k], t))
        if bad:
            raise DatasetError(f"{where}: not a dataset manifest (field(s) {bad} of the wrong type)")
        try:
            parse_time_ns(d["created"])  # prune compares it
        except ValueError:
            raise DatasetError(f"{where}: created {d['created']!r} is not an ISO time") from None
        return cls(**d)


_FIELD_TYPES: dict[str, type] = {
    "id": str, "format": str, "site": str, "created": str, "note": str, "selection": dict, "rows": dict,
    "duplicates_dropped": dict, "time_range": dict, "assets": dict, "schema": dict, "files": dict,
    "feature_columns": list, "feature_sets": list, "labels": dict, "classification": str}


# ---- reading the lake -----------------------------------------------------------------------------------
def _day(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d")


def _lake_files(lake: Path, kind: str, site: str, first_day: str | None = None,
                last_day: str | None = None) -> list[Path]:
    d = lake / kind / f"site={site}"
    if not d.is_dir():
        return []
    out = []
    for day_dir in sorted(p for p in d.iterdir() if p.is_dir() and p.name.startswith("date=")):
        day = day_dir.name.removeprefix("date=")
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) and ((first_day is not None and day < first_day)
                                                        or (last_day is not None and day > last_day)):
            continue
        out += sorted(p for p in day_dir.iterdir() if p.is_file() and p.name.endswith(".parquet"))
    return out


def _read(files: list[Path]) -> tuple[pa.Table | None, str]:
    """The files' rows in file order (schemas unified: a column that is all null in one file takes the type
    of the others) and the most restricted classification among them."""
    tables, cls = [], 1
    for f in files:
        try:
            t = pq.read_table(f)
        except (OSError, pa.ArrowException) as exc:
            raise DatasetError(f"{f}: cannot read the lake file ({exc})") from None
        meta = t.schema.metadata or {}
        c = meta.get(b"aiotstream.classification", b"internal").decode()
        cls = max(cls, CLASSIFICATIONS.index(c) if c in CLASSIFICATIONS else len(CLASSIFICATIONS) - 1)
        tables.append(t.replace_schema_metadata(None))
    if not tables:
        return None, CLASSIFICATIONS[cls]
    try:
        return pa.concat_tables(tables, promote_options="permissive"), CLASSIFICATIONS[cls]
    except pa.ArrowException as exc:
        raise DatasetError(f"lake files {files[0].parent.parent}: their columns do not agree "
                           f"({exc})") from None


def _dedupe(t: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first row of each ``id`` (the sink is at least once); the rows stay in their order."""
    if "id" not in t.column_names or t.num_rows == 0:
        return t, 0
    idx = pa.array(np.arange(t.num_rows, dtype=np.int64))
    first = pa.table({"id": t.column("id"), "i": idx}).group_by("id", use_threads=False) \
        .aggregate([("i", "min")]).column("i_min")
    keep = np.sort(first.to_numpy())
    return t.take(pa.array(keep)), t.num_rows - len(keep)


def _sorted(t: pa.Table, keys: list[str]) -> pa.Table:
    keys = [k for k in keys if k in t.column_names]
    return t.take(pc.sort_indices(t, sort_keys=[(k, "ascending", "at_end") for k in keys]))


def _write(t: pa.Table, path: Path, classification: str) -> dict[str, Any]:
    t = t.replace_schema_metadata({"aiotstream.classification": classification})
    pq.write_table(t, path, compression="zstd", use_dictionary=True, write_statistics=True)
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": t.num_rows}


def _schema(t: pa.Table) -> list[list[str]]:
    return [[f.name, str(f.type)] for f in t.schema]


def _values(t: pa.Table) -> list[dict[str, Any]]:
    if "values" not in t.column_names:
        raise DatasetError("score rows have no 'values' column: not score records of the Parquet sink")
    out = []
    for v in t.column("values").to_pylist():
        d = orjson.loads(v) if isinstance(v, str) else v
        out.append(d if isinstance(d, dict) else {})
    return out


# ---- the store ----------------------------------------------------------------------------------------
class DatasetStore:
    """Datasets under ``root`` (see the module docstring).

    >>> import tempfile
    >>> store = DatasetStore(tempfile.mkdtemp())
    >>> store.list(), store.exists("0" * 32)
    ([], False)
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # ---- paths
    def path(self, dataset_id: str) -> Path:
        if not isinstance(dataset_id, str) or not _ID.match(dataset_id):
            raise DatasetError(f"{dataset_id!r} is not a dataset id ({ID_HEX} lowercase hex digits, as "
                               "`aiotstream dataset list` shows)")
        return self.root / dataset_id

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and _ID.match(p.name) and (p / MANIFEST_FILE).is_file())

    def exists(self, dataset_id: str) -> bool:
        return isinstance(dataset_id, str) and bool(_ID.match(dataset_id)) and \
            (self.root / dataset_id / MANIFEST_FILE).is_file()

    def resolve(self, prefix: str) -> str:
        """The id that starts with ``prefix`` (at least 6 hex digits), for people typing ids."""
        if isinstance(prefix, str) and _ID.match(prefix):  # a whole id: get() says if it is not there
            return prefix
        hits = [i for i in self.ids() if len(prefix) >= 6 and i.startswith(prefix.lower())]
        if len(hits) != 1:
            why = "no dataset" if not hits else f"{len(hits)} datasets"
            raise DatasetError(f"{why} in {self.root} with id {prefix!r} (give the id or at least 6 of its "
                               "first hex digits; `aiotstream dataset list` shows them)")
        return hits[0]

    def get(self, dataset_id: str) -> DatasetManifest:
        p = self.path(dataset_id) / MANIFEST_FILE
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise DatasetError(f"no dataset {dataset_id} in {self.root} (`aiotstream dataset list --datasets "
                               f"{self.root}` shows the ones there)") from None
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{p}: not valid JSON ({exc})") from None
        m = DatasetManifest.from_dict(d, where=str(p))
        if m.id != dataset_id:
            raise DatasetError(f"{p}: the manifest says id {m.id}, but it is stored as {dataset_id}")
        return m

    def list(self) -> list[DatasetManifest]:
        """Every dataset, oldest first."""
        return sorted((self.get(i) for i in self.ids()), key=lambda m: (m.created, m.id))

    # ---- create
    def create(self, lake: Path | str, *, site: str, assets: Sequence[str] | None = None,
               start_ns: int | None = None, end_ns: int | None = None, note: str = "") -> DatasetManifest:
        """Copy the selection out of ``lake`` as a new dataset (or return the same one stored already)."""
        lake = Path(lake)
        if not lake.is_dir():
            raise DatasetError(f"lake {lake}: no such directory (give the [outputs.parquet] directory)")
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise DatasetError(f"time range [{_iso(start_ns)}, {_iso(end_ns)}) is empty: the end must be "
                               "after the start")
        sel_assets = sorted(set(assets)) if assets else None
        files = _lake_files(lake, "score", site, None if start_ns is None else _day(start_ns),
                            None if end_ns is None else _day(end_ns - 1))
        scores, cls_s = _read(files)
        if scores is None:
            raise DatasetError(f"lake {lake}: no score files for site {site!r} in the range (looked in "
                               f"{lake / 'score' / f'site={site}'})")
        mask = pc.is_valid(scores.column("window_start_ns"))
        if sel_assets is not None:
            mask = pc.and_(mask, pc.is_in(scores.column("asset"), pa.array(sel_assets, pa.string())))
        if start_ns is not None:
            mask = pc.and_(mask, pc.greater_equal(scores.column("window_start_ns"), start_ns))
        if end_ns is not None:
            mask = pc.and_(mask, pc.less(scores.column("window_start_ns"), end_ns))
        scores = _sorted(scores.filter(mask),
                         ["asset", "window_start_ns", "window_end_ns", "id", "produced_at"])
        scores, dup_s = _dedupe(scores)  # of copies of a record, the first made (file order does not matter)
        if scores.num_rows == 0:
            raise DatasetError(f"lake {lake}: no score rows of site {site!r} for assets "
                               f"{sel_assets or 'all'} with a window start in [{_iso(start_ns) or '-inf'}, "
                               f"{_iso(end_ns) or '+inf'})")
        w_assets = scores.column("asset").to_pylist()
        starts = scores.column("window_start_ns").to_numpy().astype(np.int64)
        ends = scores.column("window_end_ns").to_numpy().astype(np.int64)
        lo, hi = int(starts.min()), int(ends.max())
        alert_files = _lake_files(lake, "alert", site)
        alerts_t, cls_a = _read(alert_files)
        dup_a = 0
        if alerts_t is not None:
            present = sorted(set(w_assets))
            alerts_t = alerts_t.filter(pc.is_in(alerts_t.column("asset"), pa.array(present, pa.string())))
            alerts_t, dup_a = _dedupe(_sorted(alerts_t, ["asset", "opened_at_ns", "alert_id", "at_ns", "id",
                                                          "produced_at"]))
            kept = {a.alert_id for a in _alerts_of(alerts_t)
                    if a.opened_at_ns <= hi and (a.cleared_at_ns is None or a.cleared_at_ns > lo)}
            alerts_t = alerts_t.filter(pc.is_in(alerts_t.column("alert_id"),
                                                pa.array(sorted(kept), pa.string())))
        alerts = _alerts_of(alerts_t)
        y, src = labels_for((w_assets, starts, ends), alerts)
        scores = scores.append_column("label", pa.array(y, pa.int8())) \
            .append_column("label_source", pa.array(src, pa.string()))
        values = _values(scores)
        feature_columns: list[str] = []
        seen: set[str] = set()
        for v in values:
            for k in v:
                if k not in seen:
                    seen.add(k)
                    feature_columns.append(k)
        fsets: list[dict[str, Any]] = []
        if "features" in scores.column_names:
            for f in sorted(set(scores.column("features").to_pylist()) - {None}):
                fsets.append(orjson.loads(f) if isinstance(f, str) else f)
        met = {a.alert_id: a for a in alerts}
        hit_ids: dict[str, list[str]] = {"true_fault": [], "false_alarm": [], "unlabelled": [], "drift": []}
        for a in met.values():
            key = DRIFT if a.alert_type == DRIFT else a.label or "unlabelled"
            hit_ids[key].append(a.alert_id)
        classification = CLASSIFICATIONS[max(CLASSIFICATIONS.index(cls_s),
                                             CLASSIFICATIONS.index(cls_a) if alerts_t is not None else 0)]
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=self.root))
        try:
            file_info = {SCORE_FILE: {"kind": "score", **_write(scores, tmp / SCORE_FILE, classification)}}
            schema = {"score": _schema(scores)}
            if alerts_t is not None and alerts_t.num_rows:
                file_info[ALERT_FILE] = {"kind": "alert",
                                         **_write(alerts_t, tmp / ALERT_FILE, classification)}
                schema["alert"] = _schema(alerts_t)
            d: dict[str, Any] = {
                "id": "", "format": FORMAT, "site": site, "created": _now_iso(), "note": note,
                "selection": {"assets": sel_assets, "start_ns": start_ns, "end_ns": end_ns,
                              "lake": str(lake.resolve())},
                "rows": {"score": scores.num_rows, "alert": alerts_t.num_rows if alerts_t is not None else 0},
                "duplicates_dropped": {"score": dup_s, "alert": dup_a},
                "time_range": {"start_ns": lo, "end_ns": hi, "start": _iso(lo), "end": _iso(hi)},
                "assets": dict(sorted(Counter(w_assets).items())),
                "schema": schema, "files": file_info, "feature_columns": feature_columns,
                "feature_sets": fsets,
                "labels": {"rule": LABEL_RULE, "alerts_recorded": bool(alert_files),
                           "counts": {s: int(n) for s, n in sorted(Counter(src).items())},
                           "y": {str(k): int((y == k).sum()) for k in (1, 0, -1)},
                           "alerts": {k: sorted(v) for k, v in hit_ids.items()}},
                "classification": classification,
            }
            d = orjson.loads(_canonical(d))  # exactly what a reader sees
            d["id"] = canonical_id(d)
            (tmp / MANIFEST_FILE).write_bytes(
                orjson.dumps(d, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n")
            target = self.root / d["id"]
            if target.exists():
                shutil.rmtree(tmp)
                return self.get(d["id"])
            try:
                os.rename(tmp, target)  # atomic; fails (never overwrites) if another process made it first
            except OSError:
                if not (target / MANIFEST_FILE).is_file():
                    raise
                shutil.rmtree(tmp)
                return self.get(d["id"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return DatasetManifest.from_dict(d)

    # ---- verify and read
    def _read_file(self, m: DatasetManifest, name: str) -> bytes:
        p = self.root / m.id / name
        pinned = m.files[name]
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise DatasetError(f"{p}: missing file (the manifest of dataset {m.id} lists it)") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != pinned.get("sha256") or len(data) != pinned.get("bytes"):
            raise DatasetError(f"{p}: hash mismatch: sha256 {digest[:16]}... ({len(data)} bytes) but the "
                               f"manifest of dataset {m.id} pins {str(pinned.get('sha256'))[:16]}... "
                               f"({pinned.get('bytes')} bytes): the file was changed or corrupted; do not "
                               "use this dataset")
        return data

    def checked(self, dataset_id: str) -> DatasetManifest:
        """The manifest, after checking that its content still gives its id (the files are not rehashed)."""
        m = self.get(dataset_id)
        mpath = self.root / dataset_id / MANIFEST_FILE
        again = canonical_id(m.to_dict())
        if again != dataset_id:
            raise DatasetError(f"{mpath}: the manifest was changed: its content gives id {again}, not "
                               f"{dataset_id}; do not use this dataset")
        return m

    def verify(self, dataset_id: str) -> DatasetManifest:
        """Rehash every file and recompute the id; :class:`DatasetError` names the file and what changed."""
        m = self.checked(dataset_id)
        present = {p.name for p in (self.root / dataset_id).iterdir()} - {MANIFEST_FILE}
        extra = sorted(present - set(m.files))
        if extra:
            raise DatasetError(f"{self.root / dataset_id}: file(s) {extra} are not in the manifest of "
                               f"dataset {dataset_id}: something was added; do not use this dataset")
        for name in sorted(m.files):
            self._read_file(m, name)
        return m

    def table(self, dataset_id: str, kind: Literal["score", "alert"] = "score") -> pa.Table | None:
        """A kind's rows, read from bytes checked against the manifest (None: the dataset has no such
        file)."""
        m = self.checked(dataset_id)
        name = SCORE_FILE if kind == "score" else ALERT_FILE
        if name not in m.files:
            return None
        return pq.read_table(io.BytesIO(self._read_file(m, name)))

    def rows(self, dataset_id: str, columns: Sequence[str], *,
             labels: Literal["healthy", "all"] = "healthy") -> tuple[WindowRows, np.ndarray]:
        """Feature rows in ``columns`` order and their labels (int8: 1 fault, 0 healthy, -1 unknown);
        ``labels="healthy"`` keeps the label-0 rows only (what a model of normal behaviour trains on)."""
        if labels not in ("healthy", "all"):
            raise DatasetError(f"labels={labels!r}: use 'healthy' or 'all'")
        m = self.checked(dataset_id)
        missing = [c for c in columns if c not in m.feature_columns]
        if missing:
            raise DatasetError(f"dataset {dataset_id} has no feature column(s) {missing} (it has "
                               f"{len(m.feature_columns)}: {', '.join(m.feature_columns[:6])}"
                               f"{', ...' if len(m.feature_columns) > 6 else ''}): the feature set or the "
                               "channels differ; make the dataset from a lake written with this site config")
        t = self.table(dataset_id, "score")
        if t is None:
            raise DatasetError(f"dataset {dataset_id}: its manifest lists no {SCORE_FILE}")
        y = t.column("label").to_numpy().astype(np.int8)
        keep = np.flatnonzero(y == 0) if labels == "healthy" else np.arange(t.num_rows)
        if keep.size == 0:
            what = "healthy (label 0) " if labels == "healthy" else ""
            raise DatasetError(f"dataset {dataset_id}: no {what}rows left (labels: {m.labels['counts']})")
        t = t.take(pa.array(keep))
        vals = _values(t)
        X = np.empty((t.num_rows, len(columns)), dtype=np.float64)
        assets = t.column("asset").to_pylist()
        for i, v in enumerate(vals):
            for j, c in enumerate(columns):
                if c not in v:
                    raise DatasetError(f"dataset {dataset_id}: asset {assets[i]}'s window at "
                                       f"{_iso(int(t.column('window_start_ns')[i].as_py()))} has no feature "
                                       f"{c!r} (its assets have different feature columns): select the "
                                       "assets of one channel layout (--asset)")
                x = v[c]
                X[i, j] = np.nan if x is None else float(x)
        rows = WindowRows(list(columns), X, assets, t.column("window_start_ns").to_numpy().astype(np.int64),
                          t.column("window_end_ns").to_numpy().astype(np.int64))
        return rows, y[keep]

    # ---- compare and prune
    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What differs between datasets ``a`` and ``b`` (rows, time range, assets, columns, schema,
        labels); ``same`` is true when they are the same dataset."""
        ma, mb = self.get(a), self.get(b)
        kinds = sorted(set(ma.rows) | set(mb.rows))
        schema: dict[str, Any] = {}
        for k in sorted(set(ma.schema) | set(mb.schema)):
            sa, sb = dict(map(tuple, ma.schema.get(k, []))), dict(map(tuple, mb.schema.get(k, [])))
            d = {"added": {c: sb[c] for c in sb if c not in sa},
                 "removed": {c: sa[c] for c in sa if c not in sb},
                 "changed": {c: [sa[c], sb[c]] for c in sa if c in sb and sa[c] != sb[c]}}
            if any(d.values()):
                schema[k] = d
        return {
            "a": a, "b": b, "same": a == b,
            "rows": {k: {"a": ma.rows.get(k, 0), "b": mb.rows.get(k, 0),
                         "change": mb.rows.get(k, 0) - ma.rows.get(k, 0)} for k in kinds},
            "time_range": {"a": ma.time_range, "b": mb.time_range},
            "assets": {"added": sorted(set(mb.assets) - set(ma.assets)),
                       "removed": sorted(set(ma.assets) - set(mb.assets)),
                       "rows_changed": {x: [ma.assets[x], mb.assets[x]]
                                        for x in sorted(set(ma.assets) & set(mb.assets))
                                        if ma.assets[x] != mb.assets[x]}},
            "columns": {"added": [c for c in mb.feature_columns if c not in ma.feature_columns],
                        "removed": [c for c in ma.feature_columns if c not in mb.feature_columns]},
            "schema": schema,
            "labels": {"a": ma.labels["counts"], "b": mb.labels["counts"]},
        }

    def prune(self, now_ns: int, older_than_s: float, keep: set[str], *, dry_run: bool = False) -> list[str]:
        """Delete (unless ``dry_run``) the datasets created before ``now_ns - older_than_s`` and not in
        ``keep`` (e.g. :func:`referenced` by a registry's models); return their ids."""
        cutoff = now_ns - int(older_than_s * 1e9)
        gone = []
        for m in self.list():
            if m.id in keep or parse_time_ns(m.created) >= cutoff:
                continue
            gone.append(m.id)
            if not dry_run:
                trash = self.root / f".gone-{m.id}"
                os.rename(self.root / m.id, trash)  # gone at once for readers; then removed
                shutil.rmtree(trash)
        return gone


def referenced(registry: Any) -> set[str]:
    """The dataset ids named by ``extra["dataset"]`` of every model manifest in ``registry`` (a
    :class:`~aiotstream.models.registry.ModelRegistry`). A manifest that cannot be read stops it (a prune
    must not guess)."""
    out: set[str] = set()
    for name in registry.names():
        for version in registry.versions(name):
            ds = registry.manifest(name, version).extra.get("dataset")
            if isinstance(ds, str):
                out.add(ds)
    return out

