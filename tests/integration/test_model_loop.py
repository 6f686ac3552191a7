"""The model loop end to end on the real broker (issue 20): an ageing asset -> drift -> retrain request ->
dataset frozen from the Parquet lake -> candidate trained and gated -> shadow -> canary -> champion, with no
person; and a bad candidate (trained on faulty data) rolled back with the reason.

The plant, the sites and the harness (the flow and ``aiotstream retrain --once`` as their own processes, the
plant's data paced into Kafka) are :mod:`benchmarks.model_loop`'s, which also measures detection before and
after by hand.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aiotstream.audit import verify
from aiotstream.schemas import validator
from benchmarks.model_loop import AGED, BAD, CHAMPION, run_loop, train_plant

pytestmark = pytest.mark.integration

S = 1_000_000_000


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_plant(tmp_path_factory.mktemp("plant"))


def by_offset(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda m: (m["source"]["partition"], m["source"]["offset"]) if m.get("source")
                  else (-1, -1))


def test_an_ageing_asset_is_retrained_on_recorded_data_judged_and_promoted_without_a_person(
        kafka_broker: str, plant: dict[str, Path], tmp_path: Path) -> None:
    from aiotstream.datasets import DatasetStore
    from aiotstream.models.card import CardLog
    from aiotstream.models.registry import ModelRegistry

    r = run_loop(kafka_broker, plant, tmp_path, "loop-age", gate=True)
    recs, sim = r["records"], r["sim"]
    assert [f["event"] for f in r["finished"]] == ["champion"], r["loop_log"][-3000:]
    candidate = r["finished"][0]["candidate"]
    name, _, version = candidate.partition("@")
    assert name == "pm" and version.startswith("1.0.0+d") and version.endswith("-ae")
    # what started it: drift on the ageing asset
    requests = [m for m in recs["model"] if m["event"] == "retrain_request"]
    assert requests and requests[0]["asset"] == AGED
    # the promotions, in order, each by the loop; the flow audited each
    promos = [(m["event"], m["variant"], m["ref"]) for m in by_offset(recs["model"]) if m.get("by") == "model-loop"]
    assert promos == [("promoted", "shadow", candidate), ("promoted", "shadow", f"pm@{CHAMPION}"),
                      ("promoted", "canary", candidate), ("promoted", "champion", candidate),
                      ("promoted", "shadow", None)], promos
    audited = [e for e in recs["audit"] if e["what"].startswith("model.") and e["principal"] == "model-loop"]
    assert len(audited) == 5 and verify(recs["audit"]).problem is None
    # and the service's own steps, in its own chain (verified above with the rest)
    steps = [e["what"] for e in sorted(recs["audit"], key=lambda e: e["seq"]) if e["chain"] == "service:retrain"]
    assert steps == [f"model_loop.{w}" for w in ("trained", "shadow", "verdict", "canary", "verdict", "champion")]
    # the promoted model's manifest names a dataset whose files still hash to the manifest's values
    store = DatasetStore(tmp_path / "datasets")
    art = ModelRegistry(plant["root"], verify_key=plant["pub"], datasets=store).load(name, version)
    ds = art.manifest.extra["dataset"]
    assert art.manifest.training_data == f"dataset:{ds}" and store.verify(ds).id == ds
    # the dataset holds the aged asset's windows after the drift point (its new normal)
    rows, _ = store.rows(ds, list(art.manifest.feature_names), labels="all")
    aged = [s for a, s in zip(rows.assets, rows.start_ns) if a == AGED]
    assert aged and max(aged) >= requests[0]["window_range"][1]
    # after the promotion the aged asset is quiet again: the new champion flags far fewer of its windows
    after = sim.start_ns + 150 * S
    old = [s["anomalous"] for s in recs["score"] if s["asset"] == AGED and s["window"]["start_ns"] >= after
           and s["model"]["version"] == CHAMPION and s["model"]["variant"] == "champion"]
    new = [s["anomalous"] for s in recs["score"] if s["asset"] == AGED and s["model"]["version"] == version
           and s["model"]["variant"] == "champion"]
    assert len(old) >= 20 and len(new) >= 20, (len(old), len(new))
    assert np.mean(new) < 0.2 and np.mean(old) > 0.8, (np.mean(new), np.mean(old))
    # the model card's log: why the model is live
    events = [e["event"] for e in CardLog(plant["root"]).events(name, version)]
    assert events[0] == "trained" and events[-1] == "champion" and events.count("verdict") == 2, events
    v = validator()
    for kind in ("model", "audit"):
        for rec in recs[kind]:
            assert next(iter(v.iter_errors(rec)), None) is None


def test_a_bad_candidate_is_rolled_back_automatically_with_the_reason(
        kafka_broker: str, plant: dict[str, Path], tmp_path: Path) -> None:
    r = run_loop(kafka_broker, plant, tmp_path, "loop-bad", gate=False, extra=("--candidate", BAD),
                 duration_s=400.0)
    recs = r["records"]
    assert [f["event"] for f in r["finished"]] == ["rolled_back"], r["loop_log"][-3000:]
    reason = r["finished"][0]["reason"]
    assert reason.startswith(f"shadow verdict: rollback: pm@{BAD} flags more windows than pm@{CHAMPION}"), reason
    promos = [(m["variant"], m["ref"]) for m in by_offset(recs["model"]) if m.get("by") == "model-loop"]
    assert promos == [("shadow", f"pm@{BAD}"), ("shadow", None)], promos
    steps = [e["what"] for e in sorted(recs["audit"], key=lambda e: e["seq"]) if e["chain"] == "service:retrain"]
    assert steps == ["model_loop.shadow", "model_loop.verdict", "model_loop.rolled_back"], steps
    # the champion decided throughout: no window was decided by the bad candidate
    assert set(Counter((s["model"]["version"], s["model"]["variant"]) for s in recs["score"])) == {
        (CHAMPION, "champion")}
