"""The model loop's state machine (aiotstream.retrain.ModelLoop) with its I/O replaced by recorders: which
promotions it sends, in which order, for each verdict; repeats, cool-down, refusals, a person's champion, and
a restart from its state file. The verdict rule itself is tested in test_verdict.py; the loop on the broker in
tests/integration/test_model_loop.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import default_site
from aiotstream.errors import ModelError
from aiotstream.retrain import ModelLoop, candidate_version

S = 1_000_000_000


@dataclass
class Verdict:
    decision: str
    reason: str = "r"
    stats: dict = field(default_factory=dict)


class ScriptedJudge:
    """Says ``continue`` until it has seen ``after`` score records, then the next decision of ``script``."""

    script: ClassVar[list[str]] = []
    after = 3

    def __init__(self, rule: Any, candidate: str, champion: str):
        self.candidate, self.champion, self.seen = candidate, champion, 0

    def observe(self, rec: dict) -> None:
        self.seen += 1

    def verdict(self) -> Verdict:
        if self.seen < self.after:
            return Verdict("continue")
        return Verdict(ScriptedJudge.script.pop(0), reason=f"{self.seen} pairs")

    def snapshot(self) -> dict:
        return {"seen": self.seen}

    @classmethod
    def restore(cls, d: dict) -> ScriptedJudge:
        j = cls(None, "", "")
        j.seen = d["seen"]
        return j


def site(**loop: Any) -> Any:
    return default_site(2, model={"kind": "onnx", "name": "pm", "version": "1.0.0-ae",
                                  "onnx": {"registry": "r", "loop": {"datasets": "d", "settle_s": 10,
                                                                     "cooldown_s": 60, **loop}}},
                        outputs={"parquet": {"directory": "lake", "kinds": ["score", "alert"]}})


class Rig:
    def __init__(self, tmp: Path, *, gate_passes: bool | None = True, **loop: Any):
        self.sent: list[dict] = []
        self.trained: list[tuple[str, str]] = []
        self.cards: list[tuple[str, str]] = []
        self.frozen: list[tuple[int, int]] = []
        self.lake: int | None = None
        self.clock = 1000.0
        self.gate_passes = gate_passes
        self.cfg = site(**loop)
        self.state = tmp / "state.json"

    def gate(self, ref: str, ds: str) -> Any:
        if self.gate_passes is None:
            return None
        ok = self.gate_passes
        return type("G", (), {"passed": ok, "reason": "auc 0.9 >= 0.8" if ok else "auc 0.5 < 0.8",
                              "to_dict": lambda self: {"passed": ok}})()

    def make(self, candidate: str | None = None) -> ModelLoop:
        def make_dataset(a: int, b: int) -> tuple[str, dict]:
            self.frozen.append((a, b))
            return "ab12" * 8, {"rows": 500}

        return ModelLoop(self.cfg, send=self.sent.append, make_dataset=make_dataset,
                         train=lambda ds, v: self.trained.append((ds, v)), gate=self.gate,
                         lake_end=lambda: self.lake, card=lambda ref, ev: self.cards.append((ref, ev["event"])),
                         state_path=self.state, now=lambda: self.clock, candidate=candidate,
                         judge_factory=ScriptedJudge)


def request(rid: str = "r1", end: int = 100 * S) -> dict:
    return {"event": "retrain_request", "id": rid, "asset": "asset-000", "feature": "x.rms", "reason": "drift",
            "window_range": [0, end], "ref": "pm@1.0.0-ae"}


def to_shadow(rig: Rig, loop: ModelLoop) -> None:
    """A retrain request, the lake past its settle point, one step: trained, gated, shadow."""
    loop.observe("model", request())
    rig.lake = 200 * S
    loop.step()


def scores(loop: ModelLoop, n: int) -> None:
    for i in range(n):
        loop.observe("score", {"id": str(i)})


def promos(sent: list[dict]) -> list[tuple[str, str | None, float | None]]:
    return [(m["variant"], m["version"], m.get("fraction")) for m in sent]


CAND = "1.0.0+dab12ab12ab12-ae"


def test_a_request_waits_for_the_lake_then_trains_gates_and_runs_shadow_canary_champion(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ScriptedJudge.script = ["promote", "promote"]
    loop = rig.make()
    loop.observe("model", request())
    loop.step()
    assert rig.trained == [] and loop.state.phase == "waiting"  # the lake has not reached the settle point
    rig.lake = 100 * S + 10 * S - 1
    loop.step()
    assert rig.trained == []
    rig.lake = 110 * S
    loop.step()
    assert rig.trained == [("ab12" * 8, "1.0.0+dab12ab12ab12")] and loop.state.phase == "shadow"
    assert promos(rig.sent) == [("shadow", CAND, None)]
    loop.step()
    assert loop.state.phase == "shadow"  # the judge has not seen enough
    scores(loop, 3)
    loop.step()
    assert loop.state.phase == "canary"
    assert promos(rig.sent)[1:] == [("shadow", "1.0.0-ae", None), ("canary", CAND, 0.25)]
    scores(loop, 3)
    loop.step()
    assert promos(rig.sent)[3:] == [("champion", CAND, None), ("shadow", None, None)]
    assert loop.state.phase == "idle" and loop.state.champion == f"pm@{CAND}" and loop.done
    assert all(m["by"] == "model-loop" and m["note"].startswith("model loop") for m in rig.sent)
    assert [e for _, e in rig.cards] == ["trained", "shadow", "verdict", "canary", "verdict", "champion"]


@pytest.mark.parametrize("phase_of_rollback", ["shadow", "canary"])
def test_a_rollback_verdict_restores_the_champion_on_every_asset(tmp_path: Path, phase_of_rollback: str) -> None:
    rig = Rig(tmp_path)
    ScriptedJudge.script = ["rollback"] if phase_of_rollback == "shadow" else ["promote", "rollback"]
    loop = rig.make()
    to_shadow(rig, loop)
    scores(loop, 3)
    loop.step()
    if phase_of_rollback == "canary":
        scores(loop, 3)
        loop.step()
        assert promos(rig.sent)[-2:] == [("champion", "1.0.0-ae", None), ("shadow", None, None)]
    else:
        assert promos(rig.sent)[-1:] == [("shadow", None, None)] and len(rig.sent) == 2
    assert loop.state.phase == "idle" and loop.state.champion == "pm@1.0.0-ae"
    assert loop.finished[-1]["event"] == "rolled_back" and f"{phase_of_rollback} verdict" in loop.finished[-1]["reason"]


def test_a_failed_gate_ends_the_loop_without_any_promotion(tmp_path: Path) -> None:
    rig = Rig(tmp_path, gate_passes=False)
    loop = rig.make()
    to_shadow(rig, loop)
    assert rig.sent == [] and loop.state.phase == "idle"
    assert loop.finished[-1]["event"] == "failed" and "validation gate" in loop.finished[-1]["reason"]


def test_repeats_requests_during_a_loop_and_the_cool_down_are_not_acted_on(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ScriptedJudge.script = ["rollback"]
    loop = rig.make()
    loop.observe("model", request("r1"))
    loop.observe("model", request("r2", 150 * S))  # during the loop: noted only
    assert loop.state.request["id"] == "r1"
    rig.lake = 200 * S
    loop.step()
    scores(loop, 3)
    loop.step()
    assert loop.state.phase == "idle"
    loop.observe("model", request("r1"))  # a repeat (the flow resumed): ignored
    loop.observe("model", request("r3"))  # within the 60 s cool-down
    assert loop.state.phase == "idle"
    rig.clock += 61
    loop.observe("model", request("r3"))  # handled once already: still ignored
    loop.observe("model", request("r4"))
    assert loop.state.phase == "waiting" and loop.state.request["id"] == "r4"


def test_a_refusal_by_the_flow_or_a_persons_champion_ends_the_loop(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ScriptedJudge.script = ["promote"]
    loop = rig.make()
    to_shadow(rig, loop)
    scores(loop, 3)
    loop.step()
    assert loop.state.phase == "canary"
    loop.observe("model", {"event": "refused", "ref": f"pm@{CAND}", "variant": "canary", "reason": "gate: auc low"})
    assert loop.state.phase == "idle" and "refused the canary promotion: gate: auc low" in loop.finished[-1]["reason"]
    rig2 = Rig(tmp_path / "b")
    (tmp_path / "b").mkdir()
    loop2 = rig2.make()
    to_shadow(rig2, loop2)
    loop2.observe("model", {"event": "promoted", "ref": "pm@7.0.0", "variant": "champion", "by": "ana"})
    assert loop2.state.phase == "idle" and loop2.state.champion == "pm@7.0.0"
    assert loop2.finished[-1]["event"] == "superseded"


def test_approval_required_stops_after_the_canary_until_a_person_promotes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, approval="required")
    ScriptedJudge.script = ["promote", "promote"]
    loop = rig.make()
    to_shadow(rig, loop)
    for _ in range(2):
        scores(loop, 3)
        loop.step()
    assert loop.state.phase == "approval" and [v for v, _, _ in promos(rig.sent)] == ["shadow", "shadow", "canary"]
    loop.observe("model", {"event": "promoted", "ref": f"pm@{CAND}", "variant": "champion", "by": "ana"})
    assert loop.state.phase == "idle" and loop.finished[-1]["event"] == "champion"
    assert "by ana" in loop.finished[-1]["reason"]


def test_a_restarted_service_resumes_the_phase_and_the_judge(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ScriptedJudge.script = ["promote"]
    loop = rig.make()
    to_shadow(rig, loop)
    scores(loop, 2)
    loop.save()
    again = rig.make()  # the same state file
    assert again.state.phase == "shadow" and again.judge.seen == 2 and again.state.candidate == f"pm@{CAND}"
    scores(again, 1)
    again.step()
    assert again.state.phase == "canary"
    again.observe("model", request())  # handled before the restart
    assert again.state.request["id"] == "r1"


def test_a_given_candidate_skips_training(tmp_path: Path) -> None:
    rig = Rig(tmp_path, gate_passes=None)
    ScriptedJudge.script = ["rollback"]
    loop = rig.make(candidate="9.0.0-ae")
    assert rig.trained == [] and promos(rig.sent) == [("shadow", "9.0.0-ae", None)]
    scores(loop, 3)
    loop.step()
    assert loop.done and loop.finished[-1]["candidate"] == "pm@9.0.0-ae"


def test_a_training_failure_ends_the_loop_with_the_reason(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    loop = rig.make()

    def fail(ds: str, v: str) -> None:
        raise ModelError("only 12 healthy rows (min_rows 200)")

    loop.train = fail
    to_shadow(rig, loop)
    assert loop.state.phase == "idle" and "only 12 healthy rows" in loop.finished[-1]["reason"]


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}(\+[a-z0-9]{1,6})?(-(ae|int8))?", fullmatch=True),
       st.text("0123456789abcdef", min_size=16, max_size=64))
def test_candidate_versions_are_valid_registry_names_and_keep_the_family(champion: str, ds: str) -> None:
    from aiotstream.models.registry import _NAME

    trained, cand = candidate_version(champion, ds)
    assert _NAME.match(trained) and _NAME.match(cand)
    assert cand.endswith(champion[champion.index("-"):] if "-" in champion else trained)
    assert ds[:12] in trained and candidate_version(champion, ds) == (trained, cand)


def test_the_real_judge_resumes_from_the_state_file(tmp_path: Path) -> None:
    """With aiotstream.models.verdict.CanaryJudge: the pairs seen before a restart count after it."""
    rig = Rig(tmp_path, min_pairs=4)

    def make() -> ModelLoop:
        return ModelLoop(rig.cfg, send=rig.sent.append, make_dataset=lambda a, b: ("ab12" * 8, {"rows": 500}),
                         train=lambda ds, v: None, gate=rig.gate, lake_end=lambda: rig.lake,
                         card=lambda ref, ev: None, state_path=rig.state, now=lambda: rig.clock)

    def pair(loop: ModelLoop, i: int) -> None:  # the champion alone flags: the candidate is no worse
        loop.observe("score", {"schema": "aiotstream.score/1", "id": f"s{i}", "asset": "asset-000", "warm": True,
                               "anomalous": True,
                               "window": {"start_ns": i * S, "end_ns": (i + 1) * S},
                               "model": {"name": "pm", "version": "1.0.0-ae", "variant": "champion"},
                               "shadow": {"model": {"name": "pm", "version": CAND, "variant": "shadow"},
                                          "score": 0.1, "anomalous": False}})

    loop = make()
    to_shadow(rig, loop)
    for i in range(3):
        pair(loop, i)
    loop.step()
    loop.save()
    assert loop.state.phase == "shadow"
    again = make()
    pair(again, 2)  # a repeat from before the restart: not counted twice
    again.step()
    assert again.state.phase == "shadow" and again.judge.verdict().stats["pairs"] == 3
    pair(again, 3)
    again.step()
    assert again.state.phase == "shadow"  # c = 4: LLR 4 ln(0.5) = -2.77, not yet at ln(0.05/0.95) = -2.94
    pair(again, 4)
    again.step()
    assert again.state.phase == "canary"


def test_drift_while_waiting_moves_the_settle_point_and_the_datasets_start(tmp_path: Path) -> None:
    """A machine still changing: each drift point while waiting (any asset) moves the settle point to settle_s
    after it, and the dataset starts at the latest drift point (lookback_s at most)."""
    rig = Rig(tmp_path, lookback_s=100)  # settle_s 10
    loop = rig.make()
    loop.observe("model", request("r1", 100 * S))
    rig.lake = 105 * S
    loop.step()
    loop.observe("model", {**request("r2", 130 * S), "asset": "asset-001"})
    rig.lake = 139 * S
    loop.step()
    assert rig.frozen == [] and loop.state.phase == "waiting" and loop.state.settle_ns == 140 * S
    loop.observe("model", request("r3", 120 * S))  # an older drift point (another detector): no later settle
    assert loop.state.settle_ns == 140 * S
    rig.lake = 140 * S
    loop.step()
    assert rig.frozen == [(130 * S, 140 * S)] and loop.state.phase == "shadow"
    rig2 = Rig(tmp_path / "b", lookback_s=20)
    (tmp_path / "b").mkdir()
    loop2 = rig2.make()
    loop2.observe("model", request("r1", 100 * S))
    rig2.lake = 200 * S
    loop2.step()
    assert rig2.frozen == [(100 * S, 110 * S)]  # lookback 20 reaches before the drift point: from the drift point
    rig3 = Rig(tmp_path / "c", lookback_s=5)
    (tmp_path / "c").mkdir()
    loop3 = rig3.make()
    loop3.observe("model", request("r1", 100 * S))
    rig3.lake = 200 * S
    loop3.step()
    assert rig3.frozen == [(105 * S, 110 * S)]  # at most lookback_s


def test_once_counts_only_the_loops_this_process_ended(tmp_path: Path) -> None:
    """A restarted ``--once`` service whose state file holds an earlier loop's end is not done at once."""
    rig = Rig(tmp_path)
    ScriptedJudge.script = ["rollback"]
    loop = rig.make()
    to_shadow(rig, loop)
    scores(loop, 3)
    loop.step()
    assert loop.done and loop.ended == 1
    again = rig.make()
    assert len(again.finished) == 1 and not again.done


def test_the_lake_progress_is_the_newest_window_end_and_new_files_count(tmp_path: Path) -> None:
    """LakeProgress over files the Parquet sink wrote: the newest window end of the site's score files."""
    from aiotstream.config import ParquetOutput
    from aiotstream.io.parquet import ParquetSink
    from aiotstream.records import Output
    from aiotstream.retrain import LakeProgress

    def score(asset: str, start_s: int) -> Output:
        t = 1_767_225_600 * S + start_s * S
        return Output("score", asset, {"schema": "aiotstream.score/1", "id": f"{asset}-{start_s}", "site": "s",
                                       "asset": asset, "score": 0.1, "window": {"start_ns": t, "end_ns": t + S}})

    part = ParquetSink(ParquetOutput(directory=str(tmp_path), kinds=["score"]), "s").build_part("p", "p0", None)
    progress = LakeProgress(tmp_path, "s")
    assert progress() is None
    part.write_batch([score("a", 5), score("b", 9), score("a", 7)])
    part.snapshot()
    assert progress() == 1_767_225_600 * S + 10 * S
    part.write_batch([score("a", 86_400 + 3)])  # the next day's partition
    part.snapshot()
    assert progress() == 1_767_225_600 * S + (86_400 + 4) * S
    assert LakeProgress(tmp_path, "other-site")() is None


def test_every_step_is_an_entry_of_the_services_audit_chain_and_a_restart_continues_it(tmp_path: Path) -> None:
    from aiotstream.audit import verify

    rig = Rig(tmp_path)
    entries: list[dict] = []
    ScriptedJudge.script = ["promote", "promote"]

    def make() -> ModelLoop:
        loop = rig.make()
        loop.audit = entries.append
        return loop

    loop = make()
    loop.observe("model", request())
    rig.lake = 200 * S
    loop.step()  # trained, shadow
    scores(loop, 3)
    loop.step()  # verdict, canary
    again = make()  # a restart: the chain goes on from the state file's head
    scores(again, 3)
    again.step()  # verdict, champion
    assert [e["what"] for e in entries] == [f"model_loop.{w}" for w in
                                            ("trained", "shadow", "verdict", "canary", "verdict", "champion")]
    assert [e["seq"] for e in entries] == list(range(6)) and {e["chain"] for e in entries} == {"service:retrain"}
    assert {e["principal"] for e in entries} == {"model-loop"} and entries[-1]["details"]["ref"] == f"pm@{CAND}"
    assert verify(entries).problem is None
    entries[2]["details"]["reason"] = "edited"
    assert verify(entries).problem is not None
