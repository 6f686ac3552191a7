"""Model cards (aiotstream.models.card): the card's fields are its inputs', the status follows the events, the
one line says why, Markdown never breaks on odd strings, and the event log is append-only beside an
immutable registry."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.errors import ModelError
from aiotstream.models.card import STATUSES, CardLog, card_markdown, model_card
from aiotstream.models.registry import Manifest, ModelRegistry
from aiotstream.models.verdict import CanaryJudge, VerdictRule

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000


def manifest(**kw: Any) -> Manifest:
    d: dict[str, Any] = {"name": "pm", "version": "2.0.0", "sha256": "ab" * 32, "created": "2026-01-01T00:00:00Z",
                         "training_data": "plant-a healthy, 30 days", "metrics": {"train_rows": 1200},
                         "feature_names": ["x.rms", "x.kurtosis"], "score": {"output": "scores"}}
    d.update(kw)
    return Manifest(**d)


GATE = {"metric": "auc", "value": 0.97, "threshold": 0.9, "passed": True}


def ev(event: str, t_s: int, **kw: Any) -> dict[str, Any]:
    return {"event": event, "at_ns": T0 + t_s * S, **kw}


# ---- fields ------------------------------------------------------------------------------------------------
names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,20}\Z")
odd_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40) | \
    st.sampled_from(["|", "a|b\nc", "<script>alert(1)</script>", "[x](javascript:y)", "`", "\\", "\r\n|", "**"])
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**62, 2**62) |
                           st.floats(allow_nan=False, allow_infinity=False) | odd_text,
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(odd_text, kids, max_size=3),
                           max_leaves=12)
event_st = st.fixed_dictionaries(
    {"event": st.sampled_from(["promoted", "verdict", "rolled_back", "retired", "refused", "published"]) | odd_text},
    optional={"variant": st.sampled_from(["shadow", "canary", "champion"]) | odd_text,
              "decision": st.sampled_from(["continue", "promote", "rollback"]) | odd_text,
              "reason": odd_text, "by": odd_text | st.none(), "at_ns": st.integers(0, 2**63 - 1),
              "produced_at": odd_text, "stats": json_values, "automatic": st.booleans(), "gate": json_values,
              "replaced_by": odd_text})


@settings(max_examples=150, deadline=None)
@given(names, names, st.text(max_size=30), odd_text, st.dictionaries(odd_text, json_values, max_size=4),
       st.lists(names, min_size=1, max_size=20, unique=True), st.none() | st.dictionaries(odd_text, json_values),
       st.lists(event_st, max_size=8), st.dictionaries(st.sampled_from(["code_version", "features", "dataset"]),
                                                        json_values))
def test_the_card_holds_its_inputs_and_markdown_never_breaks(name: str, version: str, created: str,
                                                             training: str, metrics: dict, columns: list[str],
                                                             dataset: dict | None, events: list[dict],
                                                             extra: dict) -> None:
    m = manifest(name=name, version=version, created=created, training_data=training, metrics=metrics,
                 feature_names=columns, extra=extra)
    card = model_card(m, dataset=dataset, events=events)
    assert (card["name"], card["version"], card["ref"], card["sha256"], card["created"]) == \
        (name, version, f"{name}@{version}", m.sha256, created)
    assert card["training"]["data"] == training and card["metrics"] == metrics
    assert card["features"]["columns"] == columns
    assert card["status"] in STATUSES and isinstance(card["why"], str) and "\n" not in card["why"]
    assert len(card["history"]) == len(events)
    orjson.dumps(card)  # JSON-able
    md = card_markdown(card)
    for line in md.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line)  # the unescaped pipes: a row keeps its columns
            assert len(cells) - 2 in (2, 3, 6), line
        assert not re.search(r"(?<!\\)<", line), line  # no raw HTML from any input
    card_markdown({"ref": object(), "history": [None, 3], "verdicts": "x", "metrics": {1: object()}})


def test_dataset_fields_are_shown_as_given() -> None:
    ds = {"id": "ds-7", "rows": 1200, "time_range": [T0, T0 + 86400 * S], "assets": ["p1", "p2"],
          "labels": {"operator": 12, "simulated": 0}, "source": "plant-a.scores"}
    card = model_card(manifest(), dataset=ds, events=[])
    got = card["training"]["dataset"]
    assert got == {"id": "ds-7", "rows": 1200, "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z",
                   "assets": ["p1", "p2"], "labels": {"operator": 12, "simulated": 0}, "source": "plant-a.scores"}
    md = card_markdown(card)
    assert "| dataset id | ds-7 |" in md and "| dataset rows | 1200 |" in md
    # without the argument, the manifest's extra names the dataset
    card = model_card(manifest(extra={"dataset": {"id": "ds-8"}, "code_version": "abc123",
                                      "features": {"set": "vib", "version": "3"}}), dataset=None, events=[])
    assert card["training"]["dataset"]["id"] == "ds-8" and card["code_version"] == "abc123"
    assert card["features"]["set"] == "vib" and card["features"]["version"] == "3"


# ---- status and the one line --------------------------------------------------------------------------------
@pytest.mark.parametrize("events, status", [
    ([], "candidate"),
    ([ev("promoted", 1, variant="shadow")], "shadow"),
    ([ev("promoted", 1, variant="shadow"), ev("verdict", 2, decision="promote"),
      ev("promoted", 3, variant="canary")], "canary"),
    ([ev("promoted", 3, variant="canary"), ev("verdict", 4, decision="continue")], "canary"),
    ([ev("promoted", 3, variant="canary"), ev("verdict", 4, decision="rollback", reason="worse")], "rolled back"),
    ([ev("promoted", 3, variant="canary"), ev("rolled_back", 4)], "rolled back"),
    ([ev("promoted", 5, variant="champion"), ev("retired", 9, replaced_by="pm@3")], "retired"),
    ([ev("verdict", 4, decision="rollback"), ev("promoted", 8, variant="champion")], "champion"),
    ([ev("promoted", 8, variant="champion"), ev("refused", 9)], "champion"),
])
def test_the_status_follows_the_events(events: list[dict], status: str) -> None:
    card = model_card(manifest(), events=events)
    assert card["status"] == status
    changes = [e for e in events if e["event"] in ("promoted", "rolled_back", "retired")
               or (e["event"] == "verdict" and e["decision"] == "rollback")]
    assert card["since"] == (None if not changes else card["history"][events.index(changes[-1])]["time"])


def test_events_are_put_in_time_order() -> None:
    events = [ev("promoted", 8, variant="champion"), ev("promoted", 1, variant="canary")]
    assert model_card(manifest(), events=events)["status"] == "champion"
    events = [ev("retired", 9), {"event": "promoted", "variant": "champion", "produced_at": "2026-01-01T00:00:05Z"}]
    card = model_card(manifest(), events=events)
    assert card["status"] == "retired" and card["history"][0]["time"] == "2026-01-01T00:00:05Z"


def test_why_a_champion_is_live() -> None:
    reason = "promote: pm@2.0.0 is no worse than pm@1.0.0: b=3, c=12 of 15 discordant in 240 paired windows"
    events = [ev("promoted", 0, variant="shadow", by="retrain"),
              ev("verdict", 60, decision="promote", reason=reason, stats={"pairs": 240}),
              ev("promoted", 61, variant="canary", automatic=True),
              ev("verdict", 3600, decision="promote", reason=reason, stats={"pairs": 260}),
              ev("promoted", 3601, variant="champion", automatic=True, gate=GATE)]
    card = model_card(manifest(), dataset={"id": "ds-7"}, events=events)
    assert card["why"] == (f'champion since 2026-01-01T01:00:01Z: promoted automatically after canary verdict '
                           f'"{reason}"; trained on dataset ds-7; gate auc 0.97 >= 0.9')
    assert [v["decision"] for v in card["verdicts"]] == ["promote", "promote"]
    assert card["verdicts"][1]["stats"] == {"pairs": 260} and card["gate"] == GATE
    md = card_markdown(card)
    assert md.startswith("# Model card: pm@2.0.0\n") and "## Canary verdicts" in md and "## History" in md


def test_why_a_model_is_not_live() -> None:
    card = model_card(manifest(metrics={"gate": {**GATE, "value": 0.7, "passed": False}}), events=[
        ev("promoted", 1, variant="canary", by="ops"), ev("verdict", 9, decision="rollback", reason="flags more")])
    assert card["why"] == ("not live: rolled back at 2026-01-01T00:00:09Z: flags more; trained on plant-a healthy, "
                           "30 days; gate auc 0.7 < 0.9")
    card = model_card(manifest(), events=[ev("promoted", 1, variant="champion", by="ops"),
                                          ev("retired", 5, replaced_by="pm@3")])
    assert card["why"].startswith("not live: retired at 2026-01-01T00:00:05Z, replaced by pm@3")
    card = model_card(manifest(), events=[])
    assert card["why"].startswith("not live: a candidate, never promoted (published 2026-01-01T00:00:00Z)")
    card = model_card(manifest(), events=[ev("promoted", 1, variant="champion", by="ops")])
    assert card["why"].startswith("champion since 2026-01-01T00:00:01Z: promoted by ops without a canary verdict")


# ---- the event log ------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=10), json_values, max_size=5), max_size=6))
def test_the_log_gives_back_what_was_appended(events: list[dict]) -> None:
    import tempfile

    log = CardLog(tempfile.mkdtemp())
    for e in events:
        log.append("pm", "2.0.0", e)
    assert log.events("pm", "2.0.0") == [orjson.loads(orjson.dumps(e)) for e in events]


def test_the_log_only_appends_beside_an_immutable_registry(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, hmac_key=b"k" * 32)
    reg.publish("pm", "2.0.0", b"onnx", feature_names=["a"], training_data="t", metrics={},
                score={"output": "scores"})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    log = CardLog(tmp_path)
    log.append("pm", "2.0.0", ev("promoted", 1, variant="shadow"))
    first = log.path("pm", "2.0.0").read_bytes()
    log.append("pm", "2.0.0", ev("verdict", 2, decision="continue"))
    data = log.path("pm", "2.0.0").read_bytes()
    assert data.startswith(first) and data.count(b"\n") == 2
    assert log.path("pm", "2.0.0") == tmp_path / ".cards" / "pm" / "2.0.0.jsonl"
    assert {p: p.read_bytes() for p in before} == before  # the version's files are as published
    assert reg.names() == ["pm"] and reg.versions("pm") == ["2.0.0"]
    reg.load("pm", "2.0.0")  # still verifies


def test_a_torn_last_line_is_skipped_and_the_next_event_starts_a_new_line(tmp_path: Path) -> None:
    log = CardLog(tmp_path)
    log.append("pm", "1", {"event": "a"})
    with open(log.path("pm", "1"), "ab") as f:
        f.write(b'{"event": "tor')  # a crash in the middle of a write
    log.append("pm", "1", {"event": "b"})
    assert log.events("pm", "1") == [{"event": "a"}, {"event": "b"}]


@pytest.mark.parametrize("name, version", [("..", "1"), ("pm", "../x"), ("a/b", "1"), ("pm", ""), ("", "1")])
def test_the_log_refuses_names_that_are_not_registry_names(tmp_path: Path, name: str, version: str) -> None:
    with pytest.raises(ModelError, match="is not valid"):
        CardLog(tmp_path).append(name, version, {"event": "x"})


def test_the_log_refuses_what_is_not_a_json_object(tmp_path: Path) -> None:
    log = CardLog(tmp_path)
    with pytest.raises(ModelError, match="is a dict"):
        log.append("pm", "1", ["x"])  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="not JSON-able"):
        log.append("pm", "1", {"x": object()})
    assert log.events("pm", "1") == []


def test_a_judges_verdicts_logged_make_the_cards_canary_outcome(tmp_path: Path) -> None:
    """The verdict module's events as the retraining service would log them, read back into the card."""
    judge = CanaryJudge(VerdictRule(min_pairs=3), "pm@2.0.0", "pm@1.0.0")
    log = CardLog(tmp_path)
    log.append("pm", "2.0.0", ev("promoted", 0, variant="shadow", automatic=True))
    for i in range(6):  # the champion alone flags every window: H0 accepted at the fifth (LLR 5 ln 0.5)
        judge.observe({"schema": "aiotstream.score/1", "id": f"s{i}", "asset": "p1", "warm": True,
                       "anomalous": True, "window": {"start_ns": i, "end_ns": i + 1},
                       "model": {"name": "pm", "version": "1.0.0", "variant": "champion"},
                       "shadow": {"model": {"name": "pm", "version": "2.0.0", "variant": "shadow"}, "score": 0.1,
                                  "anomalous": False}})
        log.append("pm", "2.0.0", judge.verdict().to_event(T0 + (i + 1) * S))
    log.append("pm", "2.0.0", ev("promoted", 7, variant="champion", automatic=True))
    card = model_card(manifest(), dataset=None, events=log.events("pm", "2.0.0"))
    final = judge.verdict()
    assert [v["decision"] for v in card["verdicts"]] == ["continue"] * 4 + ["promote"] * 2
    assert card["verdicts"][-1]["reason"] == final.reason
    assert card["verdicts"][-1]["stats"]["pairs"] == 6 and card["verdicts"][-1]["stats"]["c"] == 6
    assert card["status"] == "champion" and f'after canary verdict "{final.reason}"' in card["why"]


def loop_ev(event: str, t_s: int, **kw: Any) -> dict[str, Any]:
    """An event as the model loop (aiotstream.retrain) logs it: ISO ``at``, phase, champion, candidate."""
    at = f"2026-01-01T{t_s // 3600:02d}:{t_s // 60 % 60:02d}:{t_s % 60:02d}Z"
    return {"event": event, "at": at, "phase": "x", "champion": "pm@1.0.0", "candidate": "pm@2.0.0", **kw}


def test_the_model_loops_events_make_the_card() -> None:
    verdict = "promote: pm@2.0.0 is no worse than pm@1.0.0: b=1, c=40 of 41 discordant in 300 paired windows"
    events = [loop_ev("trained", 0, dataset="ds-9", rows={"score": 5000, "alert": 12}, reason="drift"),
              loop_ev("shadow", 10, gate=GATE, reason="gate auc 0.97 >= 0.9"),
              loop_ev("verdict", 600, decision="promote", reason=verdict, stats={"pairs": 300}),
              loop_ev("canary", 601, fraction=0.25, reason=verdict),
              loop_ev("verdict", 1800, decision="promote", reason=verdict, stats={"pairs": 320}),
              loop_ev("champion", 1801, reason=f"promoted automatically after the canary verdict: {verdict}",
                      dataset="ds-9")]
    m = manifest(training_data="dataset:ds-9", extra={"dataset": "ds-9", "feature_set": {"set": "vib", "version": 2},
                                                      "code_version": "abc"})
    card = model_card(m, dataset=None, events=events)
    assert (card["status"], card["since"]) == ("champion", "2026-01-01T00:30:01Z")
    assert card["why"] == (f"champion since 2026-01-01T00:30:01Z: promoted automatically after the canary verdict: "
                           f"{verdict}; trained on dataset ds-9; gate auc 0.97 >= 0.9")
    assert card["training"]["dataset"] == {"id": "ds-9", "rows": {"score": 5000, "alert": 12}, "start": None,
                                           "end": None, "assets": None, "labels": None}
    assert (card["features"]["set"], card["features"]["version"]) == ("vib", "2")
    assert [v["stats"]["pairs"] for v in card["verdicts"]] == [300, 320]
    # the steps before: shadow, then canary
    assert model_card(m, events=events[:2])["why"].startswith("shadow (scores beside the champion, never decides) "
                                                              "since 2026-01-01T00:00:10Z: gate auc 0.97 >= 0.9;")
    assert model_card(m, events=events[:4])["status"] == "canary"
    pending = model_card(m, events=events[:5] + [loop_ev("approval_needed", 1801, reason="promote it by hand")])
    assert pending["status"] == "canary" and "awaiting approval: promote it by hand" in pending["why"]


@pytest.mark.parametrize("last, status, says", [
    (loop_ev("rolled_back", 900, reason="shadow verdict: flags more"), "rolled back",
     "not live: rolled back at 2026-01-01T00:15:00Z: shadow verdict: flags more"),
    (loop_ev("superseded", 900, reason="pm@3 was promoted to champion by ops during the loop"), "retired",
     "not live: retired at 2026-01-01T00:15:00Z: pm@3 was promoted"),
])
def test_a_loop_that_ends_without_a_champion_says_why(last: dict, status: str, says: str) -> None:
    card = model_card(manifest(), events=[loop_ev("trained", 0, dataset="ds-9"), loop_ev("shadow", 10), last])
    assert card["status"] == status and card["why"].startswith(says)


def test_a_version_the_gate_refused_was_never_live() -> None:
    card = model_card(manifest(), events=[loop_ev("trained", 0, dataset="ds-9"),
                                          loop_ev("gate_failed", 5, gate={**GATE, "value": 0.6, "passed": False},
                                                  reason="auc 0.6 < 0.9")])
    assert card["status"] == "candidate"
    assert card["why"] == ("not live: gate_failed at 2026-01-01T00:00:05Z: auc 0.6 < 0.9; trained on dataset ds-9; "
                           "gate auc 0.6 < 0.9")


def test_a_dataset_stores_manifest_is_summarised() -> None:
    ds = {"id": "ds-9", "format": "aiotstream.dataset/1", "site": "plant-a", "created": "2026-01-02T00:00:00Z",
          "rows": {"score": 5000, "alert": 12}, "time_range": {"start_ns": T0, "end_ns": T0 + 3600 * S,
                                                               "start": "x", "end": "y"},
          "assets": {"p1": 2500, "p2": 2500}, "files": {"score.parquet": {"sha256": "0" * 64}},
          "labels": {"rule": "r", "counts": {"operator": 3}, "alerts": {"true_fault": ["a1", "a2"],
                                                                        "unlabelled": []}}}
    got = model_card(manifest(), dataset=ds, events=[])["training"]["dataset"]
    assert got == {"id": "ds-9", "rows": {"score": 5000, "alert": 12}, "start": "2026-01-01T00:00:00Z",
                   "end": "2026-01-01T01:00:00Z", "assets": {"p1": 2500, "p2": 2500},
                   "labels": {"rule": "r", "counts": {"operator": 3}, "alerts": {"true_fault": 2, "unlabelled": 0}},
                   "format": "aiotstream.dataset/1", "site": "plant-a", "created": "2026-01-02T00:00:00Z"}
