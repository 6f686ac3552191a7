"""The console's model card page (/models/<name>/<version>): the card of a registry version with the events of
its card log and of the models topic, HTML-escaped, and a 404 naming the problem for what is not there."""
from __future__ import annotations

from pathlib import Path

import pytest
from markupsafe import escape
from starlette.testclient import TestClient

from aiotstream.config import default_site
from aiotstream.console.app import build_app
from aiotstream.console.state import ConsoleState
from aiotstream.models.card import CardLog
from aiotstream.models.registry import ModelRegistry

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000
EVIL = '<script>alert("x")</script>'


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = ModelRegistry(tmp_path, hmac_key=b"k" * 32)
    for v in ("1.0.0", "2.0.0"):
        reg.publish("pm", v, b"onnx" + v.encode(), feature_names=["x.rms", "x.kurtosis"],
                    training_data=f"plant-a {EVIL}", metrics={"gate": {"metric": "auc", "value": 0.97,
                                                                       "threshold": 0.9, "passed": True}},
                    score={"output": "scores"}, extra={"dataset": {"id": "ds-7", "rows": 1200}})
    log = CardLog(tmp_path)
    log.append("pm", "2.0.0", {"event": "promoted", "variant": "canary", "at_ns": T0, "id": "m1", "by": "retrain"})
    log.append("pm", "2.0.0", {"event": "verdict", "decision": "promote", "at_ns": T0 + 60 * S,
                               "reason": f"promote: no worse {EVIL}", "stats": {"pairs": 240, "b": 3, "c": 12}})
    return tmp_path


def client(registry: Path | None, state: ConsoleState | None = None) -> TestClient:
    return TestClient(build_app(default_site(2), state or ConsoleState(), None, registry=registry),
                      follow_redirects=False)


def test_the_card_page_shows_the_card_escaped(registry: Path) -> None:
    state = ConsoleState()
    # the flow's record of the same promotion (its id is in the log: shown once) and of the champion promotion
    state.fold("model", {"id": "m1", "event": "promoted", "ref": "pm@2.0.0", "variant": "canary",
                         "reason": "promoted", "produced_at": "2026-01-01T00:00:00Z"})
    state.fold("model", {"id": "m2", "event": "promoted", "ref": "pm@2.0.0", "variant": "champion", "by": "retrain",
                         "reason": "promoted: auc 0.97 >= 0.9", "produced_at": "2026-01-01T00:01:01Z"})
    state.fold("model", {"id": "m3", "event": "promoted", "ref": "pm@1.0.0", "variant": "champion",
                         "produced_at": "2025-12-01T00:00:00Z"})
    r = client(registry, state).get("/models/pm/2.0.0")
    assert r.status_code == 200, r.text
    page = r.text
    assert EVIL not in page and str(escape(EVIL)) in page  # autoescaped, the manifest's text and a reason alike
    assert "champion" in page and "since 2026-01-01T00:01:01Z" in page
    why = ('champion since 2026-01-01T00:01:01Z: promoted by retrain after canary verdict "promote: no worse '
           f'{EVIL}"; trained on dataset ds-7; gate auc 0.97 &gt;= 0.9')
    assert str(escape(why)).replace("&amp;gt;", "&gt;") in page
    assert page.count("<td>canary</td>") == 1  # m1 once, from the log
    assert "2025-12-01" not in page  # another version's record
    assert "ds-7" in page and "x.kurtosis" in page


def test_the_models_page_links_every_version_to_its_card(registry: Path) -> None:
    page = client(registry).get("/models").text
    assert 'href="/models/pm/1.0.0"' in page and 'href="/models/pm/2.0.0"' in page


@pytest.mark.parametrize("path, said", [("/models/pm/9.9.9", "no version"), ("/models/other/1.0.0", "no version"),
                                        ("/models/pm/%2E%2E", "not valid"), ("/models/-x/1", "not valid")])
def test_a_version_not_in_the_registry_is_a_404_saying_why(registry: Path, path: str, said: str) -> None:
    r = client(registry).get(path)
    assert r.status_code == 404 and said in r.text


def test_without_a_registry_the_page_says_how_to_give_one() -> None:
    r = client(None).get("/models/pm/2.0.0")
    assert r.status_code == 404 and "--registry" in r.text
    assert 'href="/models/pm' not in client(None).get("/models").text


def test_an_onnx_sites_card_shows_its_dataset_from_the_loops_store(tmp_path: Path) -> None:
    """An ONNX site's console reads its own registry, and the dataset store of its [model.onnx.loop]."""
    import orjson

    ds_id = "ab" * 16
    reg = ModelRegistry(tmp_path / "models", hmac_key=b"k" * 32)
    reg.publish("pm", "1.0.0+d1", b"onnx", feature_names=["x.rms"], training_data=f"dataset:{ds_id}", metrics={},
                score={"output": "scores"}, extra={"dataset": ds_id})
    manifest = {"id": ds_id, "format": "aiotstream.dataset/1", "site": "demo-plant", "created": "2026-01-02T00:00:00Z",
                "note": "", "selection": {}, "rows": {"score": 4321, "alert": 7}, "duplicates_dropped": {},
                "time_range": {"start_ns": T0, "end_ns": T0 + 3600 * S}, "assets": {"asset-000": 4321},
                "schema": {}, "files": {}, "feature_columns": ["x.rms"], "feature_sets": [],
                "labels": {"rule": "operator labels, else healthy", "counts": {"operator": 2}}}
    (tmp_path / "ds" / ds_id).mkdir(parents=True)
    (tmp_path / "ds" / ds_id / "manifest.json").write_bytes(orjson.dumps(manifest))
    cfg = default_site(2, model={"kind": "onnx", "name": "pm", "version": "1.0.0+d1",
                                 "onnx": {"registry": str(tmp_path / "models"),
                                          "loop": {"datasets": str(tmp_path / "ds"), "lake": str(tmp_path)}}})
    page = TestClient(build_app(cfg, ConsoleState(), None)).get("/models/pm/1.0.0+d1").text
    assert "4321" in page and "2026-01-01T01:00:00Z" in page and "operator labels, else healthy" in page
    # a dataset the store no longer holds: the card still names it
    (tmp_path / "ds" / ds_id / "manifest.json").unlink()
    r = TestClient(build_app(cfg, ConsoleState(), None)).get("/models/pm/1.0.0+d1")
    assert r.status_code == 200 and ds_id in r.text and "4321" not in r.text
