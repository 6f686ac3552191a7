"""Training and validation data made by the plant flow's own code, and the ``aiotstream train`` command.

Feature rows come from the real pipeline: simulator messages are decoded by
:class:`~aiotstream.pdm.ingest.Ingestor` and windowed and featurised by
:class:`~aiotstream.pdm.asset.AssetAnalyzer`; each window's row is the ``values``
of its score record, in the flow's column order (:meth:`SiteRuntime.columns`),
so a model sees exactly what the flow will feed it. Values in score records are
rounded to 6 decimals, far below the models' resolution.

:func:`labelled_rows` labels the windows of a simulated run with injected
faults (1: the window overlaps a fault after its onset): the validation gate's
held-out set (:func:`held_out` hands it to the site's model store).
Fitting and exporting the models is :mod:`aiotstream.models.train`'s, which
imports nothing of the flow.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiotstream.config import SiteConfig
from aiotstream.errors import ModelError
from aiotstream.models.registry import Manifest, ModelRegistry
from aiotstream.models.train import WindowRows, check_new, publish_trained
from aiotstream.pdm.asset import AssetAnalyzer
from aiotstream.pdm.ingest import Ingestor
from aiotstream.pdm.runtime import SiteRuntime
from aiotstream.records import SourceMessage
from aiotstream.sim.plant import FAULT_KINDS, PlantSimulator

__all__ = ["dataset_columns", "held_out", "labelled_rows", "train_and_publish", "train_from_dataset",
           "training_config", "window_rows"]


def training_config(cfg: SiteConfig, n_assets: int | None = None) -> SiteConfig:
    """The part of ``cfg`` that decides feature rows (site, the first ``n_assets`` assets, window, features);
    alert rules, control and maintenance are left out, so they cannot act on training data."""
    assets = cfg.all_assets()
    if n_assets is not None:
        if n_assets < 1 or n_assets > len(assets):
            raise ModelError(f"--assets {n_assets}: site {cfg.site.id} has {len(assets)} asset(s); use "
                             f"1..{len(assets)}")
        assets = assets[:n_assets]
    d = cfg.normalised()
    data = {"site": d["site"], "assets": [a.model_dump(mode="json") for a in assets], "window": d["window"],
            "features": d["features"], "inputs": {"tail": False}, "model": {"drift_detector": "none"}}
    return SiteConfig.from_dict(data, source=f"<training view of {cfg.site.id}>")


def window_rows(cfg: SiteConfig, sim: Any) -> WindowRows:
    """Run ``sim``'s messages (a :class:`~aiotstream.sim.plant.PlantSimulator`) through the flow's ingest and
    per-asset analysis and return every scored window's feature row."""
    rt = SiteRuntime(cfg)
    cols = {a: tuple(rt.columns(rt.assets[a])) for a in rt.assets}
    if len(set(cols.values())) != 1:
        raise ModelError(f"site {cfg.site.id}: assets have different feature columns (channels differ), so "
                         "one model cannot serve them all; train per asset group (--assets, or a site "
                         "file per group)")
    columns = list(next(iter(cols.values())))
    ingest = Ingestor(rt, now_ns=lambda: sim.end_ns + 10**13)
    topics = {"waveform": cfg.inputs.topics[0], "reading": cfg.inputs.topics[-1]}
    msgs = [SourceMessage(topics[m.stream], 0, i, m.payload) for i, m in enumerate(sim.messages())]
    per_asset: dict[str, list[Any]] = {}
    bad = []
    for x in ingest.decode_batch(msgs):
        if isinstance(x, tuple):
            per_asset.setdefault(x[0], []).append(x[1])
        else:
            bad.append(x.record["reason"])
    if bad:
        raise ModelError(f"simulator data gave {len(bad)} dead letter(s) ({sorted(set(bad))}): the site "
                         "config does not match the simulated assets")
    rows, assets, starts, ends = [], [], [], []
    for aid in sorted(per_asset):
        a = AssetAnalyzer(rt, aid)
        for o in a.on_items(per_asset[aid], 0.0) + a.flush():
            if o.kind != "score":
                continue
            r = o.record
            rows.append([np.nan if r["values"][c] is None else r["values"][c] for c in columns])
            assets.append(aid)
            starts.append(r["window"]["start_ns"])
            ends.append(r["window"]["end_ns"])
    if not rows:
        raise ModelError("the simulated run closed no window: give a longer duration")
    return WindowRows(columns, np.asarray(rows, dtype=np.float64), assets, np.asarray(starts, dtype=np.int64),
                      np.asarray(ends, dtype=np.int64))


def labelled_rows(cfg: SiteConfig, *, assets: int | None = None, duration_s: float = 60.0,
                  faults: int | Sequence[Any] = 3, seed: int = 1, warmup_s: float | None = None,
                  fault_kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Held-out labelled windows ``(X, y)`` from the simulator: ``X`` (n, k) feature rows in the flow's column
    order (NaN where a feature is missing), ``y`` (n,) 1 for windows that overlap an injected fault after its
    onset. ``faults`` is a count (placed by the simulator on distinct assets, onsets after ``warmup_s``) or
    a list of :class:`~aiotstream.sim.plant.Fault`. Use a ``seed`` other than the training one."""
    tcfg = training_config(cfg, assets)
    kw: dict[str, Any] = {"duration_s": duration_s, "seed": seed}
    if warmup_s is None:
        warmup_s = min(20.0, max(0.0, duration_s - 20.0))
    kw["warmup_s"] = warmup_s
    if isinstance(faults, int):
        kw["n_faults"] = faults
        kw["fault_kinds"] = tuple(fault_kinds or FAULT_KINDS)
    else:
        kw["faults"] = list(faults)
    sim = PlantSimulator(tcfg.all_assets(), **kw)
    rows = window_rows(tcfg, sim)
    y = np.zeros(len(rows.assets), dtype=np.int8)
    asset_arr = np.asarray(rows.assets)
    for f in sim.faults:
        end = np.iinfo(np.int64).max if f.end_ns is None else f.end_ns
        y[(asset_arr == f.asset) & (rows.end_ns > f.onset_ns) & (rows.start_ns < end)] = 1
    return rows.X, y


def held_out(cfg: SiteConfig) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """What makes the validation gate's held-out set of ``cfg`` (``[model.onnx.gate]``), for its model
    store."""
    def make() -> tuple[np.ndarray, np.ndarray]:
        g = cfg.model.onnx.gate if cfg.model.onnx is not None else None
        assert g is not None
        return labelled_rows(cfg, assets=min(g.assets, len(cfg.all_assets())), duration_s=g.duration_s,
                             faults=g.faults, seed=g.seed)
    return make


# ---- the command
# ---------------------------------------------------------------------------------------------
def train_and_publish(cfg: SiteConfig, registry: ModelRegistry, name: str, version: str, *,
                      n_assets: int | None = None, duration_s: float = 120.0, seed: int = 0,
                      signing_key: Path | bytes | None = None, hmac_key: bytes | None = None,
                      n_estimators: int = 100, hidden: tuple[int, ...] = (16, 6, 16),
                      rows: WindowRows | None = None,
                      stage: Callable[[str], None] = lambda _: None) -> list[Manifest]:
    """Simulate healthy data for ``cfg``'s assets, train, publish ``version`` (IsolationForest),
    ``version-ae`` (autoencoder) and ``version-int8`` (quantized autoencoder); return their manifests.

    ``rows`` skips the simulation (feature rows made earlier by :func:`window_rows`). ``stage`` is called
    with what starts next (``simulating``, ``fitting``): the CLI's progress bar.
    """
    check_new(registry, name, version)
    tcfg = training_config(cfg, n_assets)
    if rows is None:
        stage("simulating")
        sim = PlantSimulator(tcfg.all_assets(), duration_s=duration_s, n_faults=0, seed=seed)
        rows = window_rows(tcfg, sim)
    stage("fitting")
    fs = tcfg.features
    ref = (f"simulator:healthy;site={cfg.site.id};config_hash={cfg.config_hash};"
           f"assets={len(tcfg.all_assets())};"
           f"duration_s={duration_s:g};seed={seed};feature_set={fs.set}")
    return publish_trained(rows, registry, name, version, training_data=ref, seed=seed,
                           signing_key=signing_key,
                           hmac_key=hmac_key, n_estimators=n_estimators, hidden=hidden)


# ---- training from a recorded dataset
# ------------------------------------------------------------------------------------------
def dataset_columns(cfg: SiteConfig) -> list[str]:
    """The feature columns every asset of ``cfg`` feeds its model, in the flow's order (ModelError when the
    assets' channels differ, as in :func:`window_rows`)."""
    rt = SiteRuntime(cfg)
    cols = {tuple(rt.columns(rt.assets[a])) for a in rt.assets}
    if len(cols) != 1:
        raise ModelError(f"site {cfg.site.id}: assets have different feature columns (channels differ), so "
                         "one model cannot serve them all; train per asset group (a site file per group)")
    return list(next(iter(cols)))


def train_from_dataset(cfg: SiteConfig, registry: ModelRegistry, store: Any, dataset_id: str, name: str,
                       version: str, *, seed: int = 0, signing_key: Path | bytes | None = None,
                       hmac_key: bytes | None = None, n_estimators: int = 100,
                       hidden: tuple[int, ...] = (16, 6, 16), unlabelled: str = "exclude", min_rows: int = 20,
                       stage: Callable[[str], None] = lambda _: None) -> list[Manifest]:
    """Fit and publish the models (as :func:`train_and_publish`) on the healthy (label 0) windows of a
    recorded dataset of ``store`` (a :class:`~aiotstream.datasets.DatasetStore`) instead of simulator data.

    ``unlabelled="healthy"`` also trains on the windows under alerts nobody labelled (label -1; the model
    loop's choice: a stale champion's alerts on an aged asset are what it retrains for); ``min_rows``: fewer
    training rows than that is a ModelError naming the label counts.

    The columns are the ones ``cfg``'s assets feed their model; the dataset must have them all and must have
    been recorded with ``cfg``'s feature set (ModelError otherwise). Each manifest's ``training_data`` is
    ``dataset:<id>`` and its ``extra`` carries ``dataset``, ``feature_set`` (the lineage block) and
    ``code_version``. The dataset is verified (every file rehashed) before it is read.
    """
    from aiotstream import code_version

    check_new(registry, name, version)
    stage("reading")
    tcfg = training_config(cfg)
    columns = dataset_columns(tcfg)
    m = store.verify(dataset_id)
    fs = SiteRuntime(tcfg).features_block
    other = [f for f in m.feature_sets if (f.get("set"), f.get("version")) != (fs["set"], fs["version"])]
    if other:
        raise ModelError(f"dataset {dataset_id} was recorded with feature set(s) "
                         f"{sorted({(f.get('set'), f.get('version')) for f in other})}, the site config of "
                         f"{cfg.site.id} computes {fs['set']} v{fs['version']}: train with the config that "
                         "recorded it, or record a dataset with this one")
    if unlabelled not in ("exclude", "healthy"):
        raise ModelError(f"unlabelled={unlabelled!r}: use 'exclude' or 'healthy'")
    if unlabelled == "healthy":
        rows, y = store.rows(dataset_id, columns, labels="all")
        keep = y <= 0
        rows = WindowRows(rows.columns, rows.X[keep], [a for a, k in zip(rows.assets, keep) if k],
                          rows.start_ns[keep], rows.end_ns[keep])
    else:
        rows, _ = store.rows(dataset_id, columns, labels="healthy")
    if len(rows.assets) < min_rows:
        raise ModelError(f"dataset {dataset_id}: {len(rows.assets)} training rows, fewer than {min_rows} "
                         f"(labels: {m.labels.get('counts')}; windows under unlabelled alerts "
                         f"{'left out' if unlabelled == 'exclude' else 'kept as healthy'})")
    stage("fitting")
    return publish_trained(rows, registry, name, version, training_data=f"dataset:{dataset_id}", seed=seed,
                           signing_key=signing_key, hmac_key=hmac_key, n_estimators=n_estimators,
                           hidden=hidden, extra={"dataset": dataset_id, "feature_set": fs,
                                                 "code_version": code_version()})
