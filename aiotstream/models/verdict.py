"""The canary verdict: should a candidate model version replace the champion, roll back, or keep running?

A candidate runs first as the shadow (the champion decides, the candidate scores the same windows beside it)
and then as the canary with the champion as its shadow (the candidate decides on the canary's assets, the
champion scores beside it). Either way each warm window scored by both is a *paired window*. The rule looks
at the *discordant* pairs, the windows where exactly one of the two flags ``anomalous`` (McNemar's view):

* ``b``: windows flagged by the candidate alone; ``c``: by the champion alone;
* H0: ``p = b / (b + c) = 0.5`` (the candidate flags no more than the champion: no worse);
  H1: ``p = worse_share`` (e.g. 0.75: the candidate flags three times as many windows alone: worse);
* Wald's sequential probability ratio test on the discordant pairs, one Bernoulli(p) observation each::

      LLR = b ln(worse_share / 0.5) + c ln((1 - worse_share) / 0.5)
      rollback        when LLR >= ln((1 - beta) / alpha)
      H0 accepted     when LLR <= ln(beta / (1 - alpha))

* **promote** only when H0 is accepted (the LLR is at or below the lower threshold now) AND at least
  ``min_pairs`` paired windows were seen AND the latency check passes AND no operator-confirmed fault was
  missed (and at least ``min_confirmed`` confirmed faults were seen, when asked for);
* **rollback** when the LLR reaches the upper threshold (worse), when a confirmed fault was missed (an alert
  labelled ``true_fault`` whose windows the candidate scored, every one of them not anomalous), when the
  candidate's median model call is more than ``max_latency_ratio`` times the champion's (judged once both have
  ``min_latency_samples`` samples), or, as *inconclusive*, when ``max_pairs`` paired windows went by without
  a decision;
* otherwise **continue**.

The LLR is the log of a likelihood ratio that is a martingale under H0, so by Ville's inequality the chance
that it *ever* reaches the upper threshold when the candidate is no worse is at most
``alpha / (1 - beta)`` (0.0526 at the defaults), even though the judge keeps watching after H0 is accepted
(until ``min_pairs``); the chance of promoting a candidate that is worse (``p = worse_share``), by the
SPRT's lower crossing, is about ``beta``.

>>> rule = VerdictRule()
>>> round(rule.upper, 3), round(rule.lower, 3)
(2.944, -2.944)
>>> round(llr(b=10, c=0, worse_share=0.75), 3), round(llr(b=3, c=12, worse_share=0.75), 3)
(4.055, -7.101)
>>> j = CanaryJudge(VerdictRule(min_pairs=4), candidate="pm@2", champion="pm@1")
>>> for i in range(6):   # champion decides, the candidate shadows; the champion alone flags every window
...     j.observe({"schema": "aiotstream.score/1", "id": f"s{i}", "asset": "p1", "warm": True,
...                "anomalous": True, "window": {"start_ns": i, "end_ns": i + 1},
...                "model": {"name": "pm", "version": "1", "variant": "champion"},
...                "shadow": {"model": {"name": "pm", "version": "2", "variant": "shadow"}, "score": 0.1,
...                           "anomalous": False}})
>>> v = j.verdict()
>>> v.decision, v.stats["pairs"], v.stats["b"], v.stats["c"], round(v.stats["llr"], 3)
('promote', 6, 0, 6, -4.159)

Memory is bounded (:class:`CanaryJudge`): per asset the last ``id_memory`` record ids (repeats beyond that
count again), the last ``window_memory`` of the candidate's windows (to link an alert the judge learns of
after its windows), the last ``alert_memory`` alerts (older ones are folded into counts); per model the last
``latency_memory`` call times (the medians are over those).
"""
from __future__ import annotations

import math
import statistics
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from aiotstream.errors import ModelError

__all__ = ["CanaryJudge", "Verdict", "VerdictRule", "llr"]

STATE_SCHEMA = "aiotstream.canary-judge/1"
Decision = Literal["continue", "promote", "rollback"]


def llr(b: int, c: int, worse_share: float) -> float:
    """The log-likelihood ratio of H1 (``p = worse_share``) over H0 (``p = 0.5``) after ``b`` windows flagged
    by the candidate alone and ``c`` by the champion alone.

    >>> llr(0, 0, 0.75), round(llr(1, 1, 0.75), 6) == round(math.log(0.75 * 0.25 / 0.25), 6)
    (0.0, True)
    """
    return b * math.log(worse_share / 0.5) + c * math.log((1.0 - worse_share) / 0.5)


@dataclass(frozen=True, slots=True)
class VerdictRule:
    """The numbers of the canary verdict (see the module docstring); every range is checked.

    >>> VerdictRule(alpha=0.7)
    Traceback (most recent call last):
    ...
    aiotstream.errors.ModelError: verdict rule: alpha must be in (0, 0.5) (got 0.7)
    """

    alpha: float = 0.05
    """The chance of rolling back a candidate that is no worse (the SPRT's type I error for H0 'no worse')."""
    beta: float = 0.05
    """The chance of promoting a candidate that is worse (p = worse_share; the SPRT's type II error)."""
    worse_share: float = 0.75
    """H1: of the discordant windows, the share the candidate flags alone when it is worse; in (0.5, 1)."""
    min_pairs: int = 200
    """Paired windows before any promote verdict."""
    max_pairs: int = 20000
    """Still undecided after this many paired windows: rollback as inconclusive."""
    max_latency_ratio: float = 3.0
    """The candidate's median model call (``latency.call_ms``) over the champion's, at most."""
    min_latency_samples: int = 30
    """Latency is judged only with at least this many call times of each model."""
    latency_floor_ms: float = 1.0
    """The champion's median counts as at least this, so sub-millisecond calls do not roll back on noise."""
    min_confirmed: int = 0
    """Operator-confirmed faults (alerts labelled ``true_fault``) the candidate must have scored before a
    promote; any confirmed fault it scored and missed rolls it back whatever this is."""

    def __post_init__(self) -> None:
        problems = []
        for name, lo, hi in (("alpha", 0.0, 0.5), ("beta", 0.0, 0.5), ("worse_share", 0.5, 1.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo < v < hi:
                problems.append(f"{name} must be in ({lo:g}, {hi:g}) (got {v!r})")
        ints = (("min_pairs", 1), ("max_pairs", 1), ("min_latency_samples", 1), ("min_confirmed", 0))
        for name, lo in ints:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                problems.append(f"{name} must be an integer >= {lo} (got {v!r})")
        if not problems and self.max_pairs < self.min_pairs:
            problems.append(f"max_pairs must be >= min_pairs (got {self.max_pairs} < {self.min_pairs})")
        for name, lo in (("max_latency_ratio", 1.0), ("latency_floor_ms", 0.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (math.isfinite(v) and v >= lo):
                problems.append(f"{name} must be a finite number >= {lo:g} (got {v!r})")
        if problems:
            raise ModelError("verdict rule: " + "; ".join(problems))

    @property
    def upper(self) -> float:
        """Rollback threshold of the LLR: ``ln((1 - beta) / alpha)``."""
        return math.log((1.0 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        """H0-accepted threshold of the LLR: ``ln(beta / (1 - alpha))``."""
        return math.log(self.beta / (1.0 - self.alpha))

    def llr(self, b: int, c: int) -> float:
        return llr(b, c, self.worse_share)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VerdictRule:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"verdict rule: unknown field(s) {unknown} (known: {sorted(known)})")
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the judge says now: ``decision``, one human line naming the numbers (``reason``), and ``stats``
    (pairs, b, c, llr, thresholds, latency medians, confirmed faults seen and missed, ...)."""

    decision: Decision
    reason: str
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "reason": self.reason, "stats": self.stats}

    def to_event(self, at_ns: int) -> dict[str, Any]:
        """The verdict as a model card event (:class:`aiotstream.models.card.CardLog`) at ``at_ns``.

        >>> Verdict("continue", "...", {"pairs": 3}).to_event(5)
        {'event': 'verdict', 'at_ns': 5, 'decision': 'continue', 'reason': '...', 'stats': {'pairs': 3}}
        """
        return {"event": "verdict", "at_ns": at_ns, **self.to_dict()}


@dataclass(slots=True)
class _Alert:
    """One alert on an asset as the judge knows it, and the candidate's windows over it: the earliest start
    of its windows that end at or after the alert opened (``any_start``), and of the anomalous ones
    (``flag_start``). A window overlaps [opened, cleared] iff it ends at or after ``opened`` and starts at or
    before ``cleared``, so these two minima answer 'seen' and 'flagged' for any clear time."""

    opened: int
    cleared: int | None = None
    label: str | None = None
    any_start: int | None = None
    flag_start: int | None = None

    def add(self, start: int, end: int, anomalous: bool) -> None:
        if end < self.opened:
            return
        if self.any_start is None or start < self.any_start:
            self.any_start = start
        if anomalous and (self.flag_start is None or start < self.flag_start):
            self.flag_start = start

    def _within(self, start: int | None) -> bool:
        return start is not None and (self.cleared is None or start <= self.cleared)

    @property
    def seen(self) -> bool:
        return self._within(self.any_start)

    @property
    def flagged(self) -> bool:
        return self._within(self.flag_start)

    @property
    def confirmed(self) -> bool:
        return self.label == "true_fault"

    @property
    def missed(self) -> bool:
        return self.confirmed and self.seen and not self.flagged

    def to_list(self) -> list[Any]:
        return [self.opened, self.cleared, self.label, self.any_start, self.flag_start]


class _Asset:
    __slots__ = ("alerts", "id_set", "ids", "windows")

    def __init__(self, id_memory: int, window_memory: int):
        self.ids: deque[str] = deque(maxlen=id_memory)
        self.id_set: set[str] = set()
        self.windows: deque[tuple[int, int, bool]] = deque(maxlen=window_memory)
        self.alerts: OrderedDict[str, _Alert] = OrderedDict()


def _ref(block: Any) -> str | None:
    if not isinstance(block, dict):
        return None
    name, version = block.get("name"), block.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        return None
    return f"{name}@{version}"


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _median(xs: deque[float] | list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _fmt(x: float) -> str:
    return f"{x:.3g}"


class CanaryJudge:
    """Judges ``candidate`` against ``champion`` (``"name@version"`` each) from the records of the site's
    topics (see the module docstring for the rule).

    :meth:`observe` takes every record as it comes off the topics and keeps what matters:

    * score records (``aiotstream.score/1``) whose decider (``model``) and ``shadow`` are the candidate and
      the champion, in either role, are *paired windows*; records of other models are ignored, and so are
      windows that are not ``warm``;
    * the decider's ``latency.call_ms`` of records decided by the candidate or the champion (the shadow's call
      time is not in the record), the last ``latency_memory`` of each;
    * every window the candidate scored (deciding or shadowing), to link operator labels to: an alert record
      (``aiotstream.alert/2``) labelled ``true_fault`` is a confirmed fault on its asset over
      ``[opened_at_ns, cleared_at_ns]`` (while not cleared: up to the latest window); the candidate *missed*
      it when it scored windows over it and flagged none;
    * repeats (at-least-once delivery) are dropped by record ``id``: the last ``id_memory`` ids per asset
      are kept (a repeat arriving more than ``id_memory`` records of its asset later counts again).

    Memory per asset: ``id_memory`` ids, ``window_memory`` windows (an alert the judge learns of after its
    windows is linked to those still kept), ``alert_memory`` alerts (the oldest beyond that are folded into
    the counts of confirmed faults seen and missed, final as they stood); at the defaults (256, 256, 64) a
    snapshot holds about 20 KB per asset. Each window of the candidate is checked against the asset's kept
    alerts (at most ``alert_memory``).

    :meth:`verdict` says what to do now; :meth:`snapshot` and :meth:`restore` carry the whole state as a
    JSON-able dict, so a restarted service resumes where it was.
    """

    def __init__(self, rule: VerdictRule, candidate: str, champion: str, *, id_memory: int = 256,
                 window_memory: int = 256, alert_memory: int = 64, latency_memory: int = 1024):
        for what, ref in (("candidate", candidate), ("champion", champion)):
            if not isinstance(ref, str) or ref.count("@") != 1 or ref.startswith("@") or ref.endswith("@"):
                raise ModelError(f"canary judge: {what} must be 'name@version' (got {ref!r})")
        if candidate == champion:
            raise ModelError(f"canary judge: the candidate and the champion are both {candidate}: judge a "
                             "candidate against another version")
        for what, n in (("id_memory", id_memory), ("window_memory", window_memory),
                        ("alert_memory", alert_memory), ("latency_memory", latency_memory)):
            if not isinstance(n, int) or n < 1:
                raise ModelError(f"canary judge: {what} must be an integer >= 1 (got {n!r})")
        self.rule = rule
        self.candidate = candidate
        self.champion = champion
        self.id_memory, self.window_memory = id_memory, window_memory
        self.alert_memory, self.latency_memory = alert_memory, latency_memory
        self.counts: dict[str, int] = dict.fromkeys(
            ("pairs", "b", "c", "both", "neither", "candidate_windows", "alerts", "duplicates", "ignored",
             "malformed"), 0)
        self.latency: dict[str, deque[float]] = {"candidate": deque(maxlen=latency_memory),
                                                 "champion": deque(maxlen=latency_memory)}
        self.latency_n = {"candidate": 0, "champion": 0}
        self.folded = {"confirmed": 0, "seen": 0, "missed": 0}
        self.missed_ids: list[str] = []  # alert ids of missed faults folded away (the first 10)
        self.assets: dict[str, _Asset] = {}

    # ---- input ----------------------------------------------------------------------------------------
    def observe(self, record: dict[str, Any]) -> None:
        """Take one record off the topics (score, alert; anything else is ignored). Never raises on a
        malformed record: it is counted (``malformed``) and ignored."""
        if not isinstance(record, dict):
            self.counts["ignored"] += 1
            return
        schema = record.get("schema")
        if schema == "aiotstream.score/1" or (schema is None and "score" in record and "model" in record):
            self._score(record)
        elif (isinstance(schema, str) and schema.startswith("aiotstream.alert/")) or \
                (schema is None and "alert_id" in record):
            self._alert(record)
        else:
            self.counts["ignored"] += 1

    def _asset(self, asset: str) -> _Asset:
        a = self.assets.get(asset)
        if a is None:
            a = self.assets[asset] = _Asset(self.id_memory, self.window_memory)
        return a

    def _repeat(self, a: _Asset, rid: str) -> bool:
        if rid in a.id_set:
            self.counts["duplicates"] += 1
            return True
        if len(a.ids) == a.ids.maxlen:
            a.id_set.discard(a.ids[0])
        a.ids.append(rid)
        a.id_set.add(rid)
        return False

    def _score(self, r: dict[str, Any]) -> None:
        asset, rid, window = r.get("asset"), r.get("id"), r.get("window")
        decider = _ref(r.get("model"))
        if not isinstance(asset, str) or not isinstance(rid, str) or not isinstance(window, dict) or \
                decider is None or not isinstance(r.get("anomalous"), bool):
            self.counts["malformed"] += 1
            return
        start, end = _int(window.get("start_ns")), _int(window.get("end_ns"))
        if start is None or end is None:
            self.counts["malformed"] += 1
            return
        shadow = r.get("shadow")
        shadow_ref = _ref(shadow.get("model")) if isinstance(shadow, dict) else None
        shadow_flag = shadow.get("anomalous") if isinstance(shadow, dict) else None
        cand, champ = self.candidate, self.champion
        ours = {cand, champ}
        if decider not in ours and shadow_ref not in ours:
            self.counts["ignored"] += 1
            return
        if r.get("warm") is not True:
            self.counts["ignored"] += 1
            return
        a = self._asset(asset)
        if self._repeat(a, rid):
            return
        latency = r.get("latency")
        call = latency.get("call_ms") if isinstance(latency, dict) else None
        if isinstance(call, (int, float)) and not isinstance(call, bool) and 0 <= call < math.inf:
            role = "candidate" if decider == cand else "champion" if decider == champ else None
            if role is not None:
                self.latency[role].append(float(call))
                self.latency_n[role] += 1
        flags: dict[str, bool] = {decider: r["anomalous"]}
        if shadow_ref is not None and isinstance(shadow_flag, bool):
            flags.setdefault(shadow_ref, shadow_flag)
        if cand in flags:
            self.counts["candidate_windows"] += 1
            flag = flags[cand]
            a.windows.append((start, end, flag))
            for al in a.alerts.values():
                al.add(start, end, flag)
            if champ in flags:
                k = self.counts
                k["pairs"] += 1
                other = flags[champ]
                if flag and not other:
                    k["b"] += 1
                elif other and not flag:
                    k["c"] += 1
                elif flag:
                    k["both"] += 1
                else:
                    k["neither"] += 1

    def _alert(self, r: dict[str, Any]) -> None:
        asset, aid, rid = r.get("asset"), r.get("alert_id"), r.get("id")
        opened = _int(r.get("opened_at_ns"))
        if not isinstance(asset, str) or not isinstance(aid, str) or opened is None:
            self.counts["malformed"] += 1
            return
        a = self._asset(asset)
        if isinstance(rid, str) and self._repeat(a, rid):
            return
        self.counts["alerts"] += 1
        al = a.alerts.get(aid)
        if al is None:
            al = a.alerts[aid] = _Alert(opened)
            for s, e, f in a.windows:  # the candidate's windows seen before the judge learnt of the alert
                al.add(s, e, f)
            while len(a.alerts) > self.alert_memory:
                old_id, old = a.alerts.popitem(last=False)
                self._fold(old_id, old)
        else:
            a.alerts.move_to_end(aid)
        cleared = _int(r.get("cleared_at_ns"))
        if cleared is not None:
            al.cleared = cleared
        label = r.get("label")
        if isinstance(label, dict) and label.get("label") in ("true_fault", "false_alarm"):
            al.label = label["label"]

    def _fold(self, aid: str, al: _Alert) -> None:
        if not al.confirmed:
            return
        self.folded["confirmed"] += 1
        self.folded["seen"] += al.seen
        if al.missed:
            self.folded["missed"] += 1
            if len(self.missed_ids) < 10:
                self.missed_ids.append(aid)

    # ---- output ---------------------------------------------------------------------------------------
    def faults(self) -> dict[str, Any]:
        """Confirmed faults: how many the judge knows of, how many the candidate scored (``seen``) and
        ``missed``, and the ids of the first missed ones."""
        confirmed, seen, missed = self.folded["confirmed"], self.folded["seen"], self.folded["missed"]
        ids = list(self.missed_ids)
        for asset in sorted(self.assets):
            for aid, al in self.assets[asset].alerts.items():
                if al.confirmed:
                    confirmed += 1
                    seen += al.seen
                    if al.missed:
                        missed += 1
                        if len(ids) < 10:
                            ids.append(aid)
        return {"confirmed": confirmed, "seen": seen, "missed": missed, "missed_alerts": ids}

    def latency_stats(self) -> dict[str, Any]:
        """The medians of the kept call times, their counts, the ratio and whether it is judged."""
        rule = self.rule
        cm, hm = _median(self.latency["candidate"]), _median(self.latency["champion"])
        nc, nh = len(self.latency["candidate"]), len(self.latency["champion"])
        judged = nc >= rule.min_latency_samples and nh >= rule.min_latency_samples
        ratio = None
        if cm is not None and hm is not None:
            ratio = cm / max(hm, rule.latency_floor_ms) if max(hm, rule.latency_floor_ms) > 0 else \
                (1.0 if cm == 0 else math.inf)
        return {"candidate_median_ms": cm, "champion_median_ms": hm, "candidate_samples": nc,
                "champion_samples": nh, "ratio": ratio, "judged": judged,
                "too_slow": bool(judged and ratio is not None and ratio > rule.max_latency_ratio)}

    def verdict(self) -> Verdict:
        """Continue, promote or rollback now (see the module docstring), with one line naming the numbers."""
        rule, k = self.rule, self.counts
        pairs, b, c = k["pairs"], k["b"], k["c"]
        value = rule.llr(b, c)
        lat = self.latency_stats()
        faults = self.faults()
        stats: dict[str, Any] = {
            "candidate": self.candidate, "champion": self.champion,
            "pairs": pairs, "b": b, "c": c, "discordant": b + c, "both": k["both"], "neither": k["neither"],
            "llr": value, "upper": rule.upper, "lower": rule.lower, "min_pairs": rule.min_pairs,
            "max_pairs": rule.max_pairs, "worse_share": rule.worse_share, "alpha": rule.alpha,
            "beta": rule.beta,
            "latency": lat, "faults": faults, "candidate_windows": k["candidate_windows"],
            "duplicates": k["duplicates"], "ignored": k["ignored"], "malformed": k["malformed"],
        }
        counts = f"b={b}, c={c} of {b + c} discordant in {pairs} paired windows"
        cand, champ = self.candidate, self.champion
        lo, hi = _fmt(rule.lower), _fmt(rule.upper)
        if faults["missed"]:
            ids = ", ".join(x[:12] for x in faults["missed_alerts"][:3])
            text = (f"rollback: {cand} missed {faults['missed']} of {faults['seen']} operator-confirmed "
                    f"faults it scored (alert {ids}): none of its windows over them was anomalous")
            return Verdict("rollback", text, stats)
        if value >= rule.upper:
            return Verdict("rollback", f"rollback: {cand} flags more windows than {champ}: {counts}, "
                                       f"LLR {_fmt(value)} >= {hi} (H1: the candidate alone flags "
                                       f"{rule.worse_share:g} of them; alpha {rule.alpha:g})", stats)
        if lat["too_slow"]:
            text = (f"rollback: {cand}'s median model call {_fmt(lat['candidate_median_ms'])} ms is "
                    f"{_fmt(lat['ratio'])}x {champ}'s {_fmt(lat['champion_median_ms'])} ms (limit "
                    f"{rule.max_latency_ratio:g}x; {lat['candidate_samples']} and {lat['champion_samples']} "
                    "calls)")
            return Verdict("rollback", text, stats)
        accepted = value <= rule.lower
        latency_note = (f"latency {_fmt(lat['ratio'])}x the champion's" if lat["judged"] else
                        f"latency not judged ({lat['candidate_samples']} and {lat['champion_samples']} of "
                        f"{rule.min_latency_samples} calls)")
        enough_faults = faults["seen"] >= rule.min_confirmed
        if accepted and pairs >= rule.min_pairs and enough_faults:
            text = (f"promote: {cand} is no worse than {champ}: {counts}, LLR {_fmt(value)} <= {lo}; "
                    f"{latency_note}; {faults['seen']} confirmed faults scored, none missed")
            return Verdict("promote", text, stats)
        if pairs >= rule.max_pairs:
            why = (f"only {faults['seen']} of {rule.min_confirmed} confirmed faults scored" if accepted else
                   f"LLR {_fmt(value)} between {lo} and {hi}")
            return Verdict("rollback", f"rollback (inconclusive): no decision after {pairs} paired windows "
                                       f"(max {rule.max_pairs}): {counts}, {why}", stats)
        if accepted:
            waits = []
            if pairs < rule.min_pairs:
                waits.append(f"{pairs} of {rule.min_pairs} paired windows")
            if not enough_faults:
                waits.append(f"{faults['seen']} of {rule.min_confirmed} confirmed faults scored")
            return Verdict("continue", f"continue: no worse so far ({counts}, LLR {_fmt(value)} <= {lo}), "
                                       f"waiting for {' and '.join(waits)}", stats)
        return Verdict("continue", f"continue: {counts}, LLR {_fmt(value)} between {lo} and {hi}", stats)

    # ---- state ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole state as a plain JSON-able dict (for :meth:`restore`)."""
        return {
            "schema": STATE_SCHEMA, "rule": self.rule.to_dict(), "candidate": self.candidate,
            "champion": self.champion,
            "memory": {"id_memory": self.id_memory, "window_memory": self.window_memory,
                       "alert_memory": self.alert_memory, "latency_memory": self.latency_memory},
            "counts": dict(self.counts),
            "latency": {role: list(xs) for role, xs in self.latency.items()},
            "latency_n": dict(self.latency_n),
            "folded": dict(self.folded), "missed_ids": list(self.missed_ids),
            "assets": {asset: {"ids": list(a.ids), "windows": [list(w) for w in a.windows],
                               "alerts": [[aid, *al.to_list()] for aid, al in a.alerts.items()]}
                       for asset, a in self.assets.items()},
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> CanaryJudge:
        """A judge that carries on from :meth:`snapshot`'s ``state`` (ModelError if it is not one)."""
        if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA:
            got = state.get("schema") if isinstance(state, dict) else type(state).__name__
            raise ModelError(f"canary judge: not a {STATE_SCHEMA} snapshot (got {got!r}); start a new judge")
        try:
            j = cls(VerdictRule.from_dict(state["rule"]), state["candidate"], state["champion"],
                    **state["memory"])
            j.counts.update({k: int(v) for k, v in state["counts"].items()})
            for role in ("candidate", "champion"):
                j.latency[role].extend(float(x) for x in state["latency"][role])
                j.latency_n[role] = int(state["latency_n"][role])
            j.folded.update({k: int(v) for k, v in state["folded"].items()})
            j.missed_ids = [str(x) for x in state["missed_ids"]]
            for asset, s in state["assets"].items():
                a = j._asset(asset)
                for rid in s["ids"]:
                    a.ids.append(rid)
                    a.id_set.add(rid)
                a.windows.extend((int(st), int(en), bool(f)) for st, en, f in s["windows"])
                for aid, opened, cleared, label, any_start, flag_start in s["alerts"]:
                    a.alerts[aid] = _Alert(opened, cleared, label, any_start, flag_start)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"canary judge: the snapshot is damaged ({type(exc).__name__}: {exc}); start a "
                             "new judge") from None
        return j
