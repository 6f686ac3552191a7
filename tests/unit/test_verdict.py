"""The canary verdict (aiotstream.models.verdict): the SPRT on discordant pairs against a slow reference, its
error rates in seeded simulation, repeats, other versions, operator-confirmed faults, latency, and a
restarted judge carrying on from its snapshot."""
from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.errors import ModelError
from aiotstream.models.verdict import CanaryJudge, VerdictRule, llr

CAND, CHAMP = "pm@2", "pm@1"


def block(ref: str, variant: str) -> dict[str, Any]:
    name, version = ref.split("@")
    return {"name": name, "version": version, "sha256": "0" * 64, "variant": variant}


def score(i: int, cand_flag: bool, champ_flag: bool, *, asset: str = "p1", canary: bool = False,
          call_ms: float | None = None, cand: str = CAND, champ: str = CHAMP, warm: bool = True,
          hop: int = 10) -> dict[str, Any]:
    """Window ``i`` of ``asset`` scored by both: the champion decides and the candidate shadows, or (canary)
    the other way round."""
    decider, shadow = (cand, champ) if canary else (champ, cand)
    dflag, sflag = (cand_flag, champ_flag) if canary else (champ_flag, cand_flag)
    rec: dict[str, Any] = {
        "schema": "aiotstream.score/1", "id": f"{asset}-{i}-{decider}", "asset": asset, "line": "l1",
        "window": {"start_ns": i * hop, "end_ns": (i + 1) * hop}, "score": 0.9 if dflag else 0.1,
        "anomalous": dflag, "warm": warm, "drift": False,
        "model": block(decider, "canary" if canary else "champion"),
        "shadow": {"model": block(shadow, "shadow"), "score": 0.9 if sflag else 0.1, "anomalous": sflag},
    }
    if call_ms is not None:
        rec["latency"] = {"added_ms": call_ms + 1, "call_ms": call_ms, "batch_rows": 4, "scored_ms": call_ms}
    return rec


def alert(aid: str, opened: int, *, asset: str = "p1", cleared: int | None = None, label: str | None = None,
          event: str = "labelled", at: int | None = None) -> dict[str, Any]:
    at = at if at is not None else (cleared or opened)
    return {"schema": "aiotstream.alert/2", "id": f"{aid}-{event}-{at}", "alert_id": aid, "event": event,
            "alert_type": "anomaly", "asset": asset, "opened_at_ns": opened, "cleared_at_ns": cleared,
            "at_ns": at, "label": None if label is None else {"label": label, "by": "ana", "at_ns": at}}


# ---- the statistic ------------------------------------------------------------------------------------------
def slow_llr(outcomes: list[bool], worse_share: float) -> float:
    """The log-likelihood ratio as a sum over each discordant window: True = the candidate alone flagged it
    (Bernoulli(p) with p = worse_share under H1, 0.5 under H0)."""
    return math.fsum(math.log((worse_share if x else 1 - worse_share) / 0.5) for x in outcomes)


def reference_decision(b: int, c: int, pairs: int, rule: VerdictRule) -> str:
    """The rule without latency and faults, from its definition: the decision and, for a rollback, why."""
    a_, b_ = math.log((1 - rule.beta) / rule.alpha), math.log(rule.beta / (1 - rule.alpha))
    value = slow_llr([True] * b + [False] * c, rule.worse_share)
    if value >= a_ - 1e-9:
        return "rollback: worse"
    if value <= b_ + 1e-9 and pairs >= rule.min_pairs:
        return "promote"
    if pairs >= rule.max_pairs:
        return "rollback: inconclusive"
    return "continue"


def decision_of(v: Any) -> str:
    if v.decision != "rollback":
        return v.decision
    return "rollback: inconclusive" if "(inconclusive)" in v.reason else \
        "rollback: worse" if "flags more windows" in v.reason else "rollback: ?"


@given(st.lists(st.booleans(), max_size=400), st.floats(0.51, 0.99))
def test_llr_is_the_sum_of_the_per_window_log_ratios(outcomes: list[bool], w: float) -> None:
    b = sum(outcomes)
    assert llr(b, len(outcomes) - b, w) == pytest.approx(slow_llr(outcomes, w), rel=1e-9, abs=1e-9)


@given(st.floats(0.001, 0.49), st.floats(0.001, 0.49))
def test_thresholds_are_walds(alpha: float, beta: float) -> None:
    r = VerdictRule(alpha=alpha, beta=beta)
    assert r.upper == pytest.approx(math.log((1 - beta) / alpha))
    assert r.lower == pytest.approx(math.log(beta / (1 - alpha)))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 300), st.floats(0, 1), st.floats(0, 1), st.integers(0, 2**32), st.integers(1, 50),
       st.integers(0, 250))
def test_counts_and_decision_match_a_reference(n: int, p_cand: float, p_champ: float, seed: int, min_pairs: int,
                                               extra: int) -> None:
    """Streams of paired windows (the flag rates drawn, so every decision is reached) mixed with repeats,
    records of another candidate and cold windows."""
    rule = VerdictRule(min_pairs=min_pairs, max_pairs=min_pairs + extra)
    j = CanaryJudge(rule, CAND, CHAMP)
    rng = random.Random(seed)
    b = c = pairs = 0
    sent: list[dict[str, Any]] = []
    for i in range(n):
        cf, hf, canary = rng.random() < p_cand, rng.random() < p_champ, rng.random() < 0.5
        kind = rng.choice(["pair", "pair", "pair", "repeat", "other", "cold"])
        if kind == "repeat" and sent:
            j.observe(dict(rng.choice(sent)))
            continue
        if kind == "other":
            j.observe(score(i, cf, hf, canary=canary, cand="pm@3"))
            continue
        rec = score(i, cf, hf, canary=canary, warm=kind != "cold", asset=f"p{i % 3}")
        j.observe(rec)
        if kind == "cold":
            continue
        sent.append(rec)
        pairs += 1
        b += cf and not hf
        c += hf and not cf
        v = j.verdict()  # after every window: the judge is asked at any time
        assert (v.stats["pairs"], v.stats["b"], v.stats["c"]) == (pairs, b, c)
        assert decision_of(v) == reference_decision(b, c, pairs, rule)
        assert v.stats["llr"] == pytest.approx(slow_llr([True] * b + [False] * c, rule.worse_share), abs=1e-9)


# ---- simulation: error rates and power ----------------------------------------------------------------------
def run(rng: random.Random, p_cand: float, p_champ: float, rule: VerdictRule, canary_after: int = 100,
        limit: int = 30000) -> tuple[str, int, str]:
    """One candidate's life: shadow for ``canary_after`` windows, then canary; Bernoulli flags, independent.
    The first decision that is not 'continue', the pairs then, and its reason."""
    j = CanaryJudge(rule, CAND, CHAMP)
    for i in range(limit):
        j.observe(score(i, rng.random() < p_cand, rng.random() < p_champ, canary=i >= canary_after,
                        asset=f"p{i % 7}"))
        v = j.verdict()
        if v.decision != "continue":
            return v.decision, v.stats["pairs"], v.reason
    raise AssertionError("no decision within the limit")


def test_a_candidate_no_worse_is_rolled_back_in_at_most_alpha_of_runs() -> None:
    """1000 seeded runs, both models flag 10% of windows independently (H0 true). Ville's inequality bounds
    the false-rollback chance by alpha / (1 - beta) = 0.0526; the tolerance 0.025 is 3.6 binomial standard
    deviations of a rate of 0.05 over 1000 runs (sd 0.0069)."""
    rule = VerdictRule()
    rng = random.Random(20)
    runs = 1000
    outcomes = [run(rng, 0.1, 0.1, rule)[0] for _ in range(runs)]
    rollbacks = outcomes.count("rollback") / runs
    assert rollbacks <= rule.alpha + 0.025, rollbacks
    assert outcomes.count("promote") + outcomes.count("rollback") == runs


def test_a_candidate_flagging_far_more_is_rolled_back_saying_so() -> None:
    rule = VerdictRule()
    rng = random.Random(7)
    for _ in range(50):
        decision, pairs, reason = run(rng, 0.3, 0.05, rule)
        assert decision == "rollback"
        assert f"{CAND} flags more windows than {CHAMP}" in reason and "LLR" in reason
        assert pairs < rule.min_pairs  # decided long before a promote could be


def test_worse_candidates_are_promoted_in_at_most_beta_of_runs() -> None:
    """200 seeded runs at H1 exactly (the candidate flags 3 of 4 discordant windows): the SPRT's chance of
    accepting H0 is about beta (0.05); tolerance 0.05 (3.2 sd of 0.05 over 200 runs)."""
    rule = VerdictRule()
    rng = random.Random(5)
    # p_cand(1 - p_champ) / (p_cand(1 - p_champ) + p_champ(1 - p_cand)) = 0.75 with p_champ = 0.1
    p_champ = 0.1
    p_cand = 3 * p_champ / (1 + 2 * p_champ)
    outcomes = [run(rng, p_cand, p_champ, rule)[0] for _ in range(200)]
    assert outcomes.count("promote") / 200 <= rule.beta + 0.05


def test_a_candidate_flagging_less_than_a_stale_champion_is_promoted_after_min_pairs() -> None:
    """The champion alerts on an aged asset (20% of windows); the candidate, trained on its new normal,
    flags 2%: H0 is accepted early, and the promotion waits for min_pairs."""
    rule = VerdictRule()
    rng = random.Random(3)
    for _ in range(20):
        decision, pairs, reason = run(rng, 0.02, 0.2, rule)
        assert (decision, pairs) == ("promote", rule.min_pairs)
        assert reason.startswith(f"promote: {CAND} is no worse than {CHAMP}") and "<=" in reason


def test_models_that_always_agree_end_inconclusive_at_max_pairs() -> None:
    rule = VerdictRule(min_pairs=10, max_pairs=50)
    j = CanaryJudge(rule, CAND, CHAMP)
    for i in range(49):
        j.observe(score(i, i % 5 == 0, i % 5 == 0))
    assert j.verdict().decision == "continue"
    j.observe(score(49, False, False))
    v = j.verdict()
    assert v.decision == "rollback" and "inconclusive" in v.reason and "50 paired windows" in v.reason


# ---- records: repeats, other models, warm-up ----------------------------------------------------------------
def stream(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [score(i, rng.random() < 0.2, rng.random() < 0.2, canary=i % 2 == 0, asset=f"p{i % 4}",
                  call_ms=rng.uniform(1, 3)) for i in range(n)]


def test_repeats_do_not_count_twice() -> None:
    recs = stream(150)
    once, twice = CanaryJudge(VerdictRule(), CAND, CHAMP), CanaryJudge(VerdictRule(), CAND, CHAMP)
    for r in recs:
        once.observe(r)
        twice.observe(r)
        twice.observe(json.loads(json.dumps(r)))  # redelivered, a new object
    for r in recs[-20:]:
        twice.observe(r)  # a replay of the tail later on
    a, b = once.verdict().stats, twice.verdict().stats
    assert b["duplicates"] == 170
    assert {k: v for k, v in a.items() if k != "duplicates"} == {k: v for k, v in b.items() if k != "duplicates"}


def test_a_repeat_beyond_the_id_memory_counts_again() -> None:
    """The documented bound: ids are kept per asset, ``id_memory`` of them."""
    j = CanaryJudge(VerdictRule(), CAND, CHAMP, id_memory=10)
    recs = [score(i, True, False) for i in range(11)]
    for r in recs:
        j.observe(r)
    j.observe(recs[1])  # still remembered
    j.observe(recs[0])  # forgotten: counted again
    assert (j.verdict().stats["pairs"], j.verdict().stats["duplicates"]) == (12, 1)


def test_records_of_other_versions_and_cold_windows_are_ignored() -> None:
    j = CanaryJudge(VerdictRule(min_pairs=1), CAND, CHAMP)
    for i in range(40):
        j.observe(score(i, True, False, cand="pm@3"))  # another candidate beside the champion
        j.observe(score(1000 + i, True, False, cand="pm@3", champ="pm@0"))  # neither of ours
        j.observe(score(2000 + i, True, False, warm=False))  # not warm
        j.observe({"schema": "aiotstream.kpi/1", "id": f"k{i}"})
        j.observe({"schema": "aiotstream.model/1", "event": "promoted", "ref": CAND})
    v = j.verdict()
    assert (v.stats["pairs"], v.stats["b"], v.stats["c"], v.decision) == (0, 0, 0, "continue")
    assert v.stats["candidate_windows"] == 0 and v.stats["ignored"] == 160


def test_a_model_shadowing_itself_is_no_pair() -> None:
    """On the canary's other assets the champion decides with the champion as its shadow."""
    j = CanaryJudge(VerdictRule(), CAND, CHAMP)
    for i in range(10):
        j.observe(score(i, True, False, cand=CHAMP))
    assert j.verdict().stats["pairs"] == 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                      max_size=4),
                           max_leaves=20)
fields = ["schema", "id", "asset", "window", "model", "shadow", "anomalous", "warm", "latency", "alert_id",
          "opened_at_ns", "cleared_at_ns", "label"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(fields), json_values, max_size=10) | json_values, max_size=8),
       st.data())
def test_observe_never_raises_on_malformed_records(junk: list[Any], data: st.DataObject) -> None:
    j = CanaryJudge(VerdictRule(), CAND, CHAMP)
    good = score(0, True, False, call_ms=1.0)
    for x in junk:
        j.observe(x)
        broken = dict(good)
        key = data.draw(st.sampled_from(sorted(good)))
        broken[key] = data.draw(json_values)
        j.observe(broken)
    j.verdict()
    CanaryJudge.restore(json.loads(json.dumps(j.snapshot())))


# ---- operator-confirmed faults ------------------------------------------------------------------------------
def fault_judge(order: str, cand_flags: list[bool], label: str = "true_fault") -> CanaryJudge:
    """Windows 0..9 on p1 (10 ns each); an alert over [30, 60] (windows 2..6 touch it), labelled."""
    j = CanaryJudge(VerdictRule(min_pairs=5), CAND, CHAMP)
    windows = [score(i, cand_flags[i], 3 <= i <= 5) for i in range(10)]
    alerts = [alert("a1", 30, event="opened", at=30), alert("a1", 30, cleared=60, event="cleared"),
              alert("a1", 30, cleared=60, label=label, at=90)]
    for r in (windows + alerts if order == "windows first" else alerts + windows):
        j.observe(r)
    return j


@pytest.mark.parametrize("order", ["windows first", "alerts first"])
def test_a_confirmed_fault_the_candidate_missed_rolls_it_back(order: str) -> None:
    # the candidate flags windows 0 and 8, outside the alert: none over it
    flags = [i in (0, 8) for i in range(10)]
    v = fault_judge(order, flags).verdict()
    assert v.decision == "rollback" and "missed 1 of 1 operator-confirmed faults" in v.reason and "a1" in v.reason
    assert v.stats["faults"] == {"confirmed": 1, "seen": 1, "missed": 1, "missed_alerts": ["a1"]}


@pytest.mark.parametrize("order", ["windows first", "alerts first"])
@pytest.mark.parametrize("flagged", [2, 4, 6])
def test_a_confirmed_fault_the_candidate_flagged_is_no_miss(order: str, flagged: int) -> None:
    """Window 2 ends when the alert opens and window 6 starts when it clears: both touch it."""
    flags = [i == flagged for i in range(10)]
    v = fault_judge(order, flags).verdict()
    assert v.stats["faults"]["missed"] == 0 and v.stats["faults"]["seen"] == 1


def test_a_false_alarm_label_is_no_fault() -> None:
    v = fault_judge("windows first", [False] * 10, label="false_alarm").verdict()
    assert v.stats["faults"]["confirmed"] == 0 and v.decision != "rollback"


def test_a_fault_on_another_asset_or_unscored_by_the_candidate_is_not_missed() -> None:
    j = CanaryJudge(VerdictRule(), CAND, CHAMP)
    for i in range(10):
        j.observe(score(i, False, True))
    j.observe(alert("x", 30, asset="p2", cleared=60, label="true_fault"))
    assert j.verdict().stats["faults"] == {"confirmed": 1, "seen": 0, "missed": 0, "missed_alerts": []}


def test_min_confirmed_holds_a_promotion_until_enough_faults_were_scored() -> None:
    j = CanaryJudge(VerdictRule(min_pairs=5, min_confirmed=1), CAND, CHAMP)
    for i in range(10):
        j.observe(score(i, False, True))
    v = j.verdict()
    assert v.decision == "continue" and "0 of 1 confirmed faults" in v.reason
    j.observe(score(10, True, True))
    j.observe(alert("f", 100, cleared=110, label="true_fault"))
    assert j.verdict().decision == "promote"


def test_faults_beyond_the_alert_memory_still_count() -> None:
    j = CanaryJudge(VerdictRule(), CAND, CHAMP, alert_memory=2)
    for k in range(5):  # five faults, each over one window the candidate did not flag
        j.observe(score(k, False, True))
        j.observe(alert(f"f{k}", k * 10 + 5, cleared=k * 10 + 8, label="true_fault"))
    f = j.verdict().stats["faults"]
    assert (f["confirmed"], f["seen"], f["missed"]) == (5, 5, 5)
    assert sorted(f["missed_alerts"]) == [f"f{k}" for k in range(5)]


# ---- latency ------------------------------------------------------------------------------------------------
def latency_judge(n_cand: int, n_champ: int, cand_ms: float, champ_ms: float, **rule: Any) -> CanaryJudge:
    j = CanaryJudge(VerdictRule(min_pairs=1, **rule), CAND, CHAMP)
    for i in range(max(n_cand, n_champ)):
        if i < n_champ:  # the champion decides (the candidate's call time is not in these records)
            j.observe(score(i, False, True, asset="a", call_ms=champ_ms))
        if i < n_cand:
            j.observe(score(i, False, True, asset="b", canary=True, call_ms=cand_ms))
    return j


def test_a_candidate_three_times_slower_is_rolled_back() -> None:
    v = latency_judge(30, 30, 10.0, 2.0).verdict()
    assert v.decision == "rollback" and "median model call 10 ms is 5x" in v.reason
    assert v.stats["latency"]["candidate_median_ms"] == 10.0 and v.stats["latency"]["champion_median_ms"] == 2.0


def test_latency_is_not_judged_below_the_sample_count() -> None:
    for n_cand, n_champ in ((29, 30), (30, 29)):
        v = latency_judge(n_cand, n_champ, 10.0, 2.0).verdict()
        assert v.decision == "promote" and "latency not judged" in v.reason
        assert v.stats["latency"]["judged"] is False


def test_latency_within_the_ratio_or_under_the_floor_passes() -> None:
    assert latency_judge(40, 40, 5.9, 2.0).verdict().decision == "promote"
    v = latency_judge(40, 40, 0.9, 0.1).verdict()  # 9x, but under the 1 ms floor
    assert v.decision == "promote" and v.stats["latency"]["ratio"] == pytest.approx(0.9)


# ---- snapshot and restore -----------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 40), st.integers(0, 200), st.integers(0, 1000))
def test_a_restored_judge_carries_on_as_if_it_had_not_stopped(n_alerts: int, cut: int, seed: int) -> None:
    rng = random.Random(seed)
    recs: list[dict[str, Any]] = stream(200, seed)
    for k in range(n_alerts):
        t = rng.randrange(0, 2000)
        recs.insert(rng.randrange(len(recs) + 1),
                    alert(f"a{k}", t, asset=f"p{k % 4}", cleared=rng.choice([None, t + rng.randrange(50)]),
                          label=rng.choice([None, "true_fault", "false_alarm"]), at=t + 100))
    recs += recs[:30]  # repeats after the restart
    small = {"id_memory": 16, "window_memory": 8, "alert_memory": 3, "latency_memory": 20}
    whole = CanaryJudge(VerdictRule(min_pairs=20), CAND, CHAMP, **small)
    first = CanaryJudge(VerdictRule(min_pairs=20), CAND, CHAMP, **small)
    for r in recs[:cut]:
        whole.observe(r)
        first.observe(r)
    resumed = CanaryJudge.restore(json.loads(json.dumps(first.snapshot())))
    for r in recs[cut:]:
        whole.observe(r)
        resumed.observe(r)
    assert resumed.verdict() == whole.verdict()
    assert resumed.snapshot() == whole.snapshot()


def test_restore_refuses_what_is_not_a_snapshot() -> None:
    with pytest.raises(ModelError, match="not a aiotstream.canary-judge/1 snapshot"):
        CanaryJudge.restore({"schema": "x"})
    snap = CanaryJudge(VerdictRule(), CAND, CHAMP).snapshot()
    del snap["counts"]
    with pytest.raises(ModelError, match="damaged"):
        CanaryJudge.restore(snap)


# ---- the rule's ranges --------------------------------------------------------------------------------------
@given(st.sampled_from(["alpha", "beta", "worse_share", "min_pairs", "max_latency_ratio", "min_confirmed",
                        "latency_floor_ms", "min_latency_samples"]),
       st.sampled_from([-1, 0, 0.5, 1, 2.5, math.nan, math.inf, "x", None, True]))
def test_a_rule_out_of_range_is_refused_naming_the_field(name: str, value: Any) -> None:
    valid = {"alpha": (0, 0.5), "beta": (0, 0.5), "worse_share": (0.5, 1)}
    try:
        VerdictRule(**{name: value})
    except ModelError as exc:
        assert name in str(exc)
        return
    # accepted: then it was in range
    if name in valid:
        lo, hi = valid[name]
        assert lo < value < hi
    elif name in ("min_pairs", "min_latency_samples"):
        assert isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 20000
    elif name == "min_confirmed":
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_max_pairs_below_min_pairs_is_refused() -> None:
    with pytest.raises(ModelError, match="max_pairs must be >= min_pairs"):
        VerdictRule(min_pairs=300, max_pairs=200)


def test_the_judge_needs_two_different_refs() -> None:
    with pytest.raises(ModelError, match="both pm@1"):
        CanaryJudge(VerdictRule(), "pm@1", "pm@1")
    with pytest.raises(ModelError, match="name@version"):
        CanaryJudge(VerdictRule(), "pm", "pm@1")
