"""The audit trail's hash chains (aiotstream.audit): what verify accepts and what it detects."""
from __future__ import annotations

import base64
import copy
import pickle

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.audit import (
    ANONYMOUS,
    FLOW,
    Auditor,
    ChainHead,
    ConfigLoad,
    Event,
    entry_hash,
    principal,
    verify,
)
from aiotstream.records import Output
from aiotstream.schemas import validator

CHAINS = ("asset:a", "asset:b", "input:s.control:0")
T0 = 1_767_225_600_000_000_000


def trail(picks: list[int], wall: int = 0) -> list[dict]:
    """Entries of several chains, interleaved as ``picks`` says (each pick: the chain of the next entry)."""
    heads = {c: ChainHead(c) for c in CHAINS}
    out = []
    for i, p in enumerate(picks):
        c = CHAINS[p % len(CHAINS)]
        out.append(heads[c].append("s", Event(f"user-{i % 3}", "alert.acknowledged", T0 + 10 * i, {"n": i}),
                                   wall_ns=wall + i))
    return out


picks_st = st.lists(st.integers(0, 2), min_size=2, max_size=30)


def not_last_of_chain(entries: list[dict]) -> list[int]:
    """Positions of entries that have a later entry in their chain (removing the last one of a chain cannot
    be seen without an anchor outside the trail: the chain just looks shorter)."""
    return [i for i, e in enumerate(entries) if any(f["chain"] == e["chain"] for f in entries[i + 1:])]


@given(picks_st)
def test_an_untouched_trail_verifies_with_every_entry_counted(picks: list[int]) -> None:
    entries = trail(picks)
    rep = verify(entries)
    assert rep.problem is None
    assert rep.entries == len(entries)
    assert sum(rep.chains.values()) == len(entries)
    assert not [err for e in entries for err in validator("audit").iter_errors(e)]


@given(picks_st, st.data())
def test_exact_duplicates_are_accepted_anywhere_after_their_first_copy(picks: list[int], data: st.DataObject) -> None:
    entries = trail(picks)
    out = list(entries)
    for _ in range(data.draw(st.integers(1, 5))):
        src = data.draw(st.integers(0, len(entries) - 1))
        first = out.index(entries[src])
        at = data.draw(st.integers(first + 1, len(out)))
        dup = dict(entries[src], wall_ns=entries[src]["wall_ns"] + 999)  # replayed later: another wall time
        out.insert(at, dup)
    rep = verify(out)
    assert rep.problem is None, rep.problem
    assert rep.entries == len(entries) and rep.duplicates == len(out) - len(entries)


@given(picks_st, st.data(), st.sampled_from(["principal", "what", "event_ns", "details", "seq", "prev",
                                             "chain", "id"]), st.booleans())
def test_any_edit_is_detected(picks: list[int], data: st.DataObject, key: str, rehash: bool) -> None:
    entries = trail(picks)
    candidates = not_last_of_chain(entries) if rehash else list(range(len(entries)))
    if not candidates:
        return
    i = data.draw(st.sampled_from(candidates))
    bad = copy.deepcopy(entries)
    e = bad[i]
    e[key] = {"str": lambda v: v + "x", "int": lambda v: v + 1, "dict": lambda v: {**v, "n": -1},
              "NoneType": lambda v: 1}[type(e[key]).__name__](e[key])
    if rehash:  # a forger who recomputes the entry's own hash still breaks the next link
        e["hash"] = entry_hash(e)
    rep = verify(bad)
    assert rep.problem is not None


@given(picks_st, st.data())
def test_a_removed_entry_is_detected(picks: list[int], data: st.DataObject) -> None:
    entries = trail(picks)
    candidates = not_last_of_chain(entries)
    if not candidates:
        return
    i = data.draw(st.sampled_from(candidates))
    rep = verify(entries[:i] + entries[i + 1:])
    assert rep.problem is not None and f"chain {entries[i]['chain']}" in rep.problem
    assert "missing" in rep.problem or "prev" in rep.problem


@given(picks_st, st.data())
def test_reordering_within_a_chain_is_detected(picks: list[int], data: st.DataObject) -> None:
    entries = trail(picks)
    pairs = [(i, j) for i in range(len(entries)) for j in range(i + 1, len(entries))
             if entries[i]["chain"] == entries[j]["chain"]]
    if not pairs:
        return
    i, j = data.draw(st.sampled_from(pairs))
    bad = list(entries)
    bad[i], bad[j] = bad[j], bad[i]
    rep = verify(bad)
    assert rep.problem is not None and "reordered" in rep.problem


@given(picks_st, st.data(), st.booleans())
def test_an_inserted_entry_is_detected(picks: list[int], data: st.DataObject, reuse_seq: bool) -> None:
    entries = trail(picks)
    victim = data.draw(st.sampled_from(entries))
    fake = dict(victim, principal="mallory", what="command.approved")
    if not reuse_seq:
        fake["seq"] = victim["seq"] + 1
        fake["prev"] = victim["hash"]
    fake["hash"] = entry_hash(fake)
    at = data.draw(st.integers(entries.index(victim) + 1, len(entries)))
    bad = entries[:at] + [fake] + entries[at:]
    rep = verify(bad)
    is_last = all(e["chain"] != victim["chain"] for e in entries[entries.index(victim) + 1:])
    if not reuse_seq and is_last:
        # linked correctly after the chain's real end: that is what an append looks like; the hash chain
        # cannot tell it from a real entry (who may write the topic is the broker's ACLs' business)
        return
    assert rep.problem is not None


@settings(max_examples=30)
@given(picks_st, st.integers(0, 29))
def test_a_resumed_chain_from_a_pickled_head_continues_it_exactly(picks: list[int], cut: int) -> None:
    cut = min(cut, len(picks))
    whole = trail(picks)
    heads = {c: ChainHead(c) for c in CHAINS}
    out = []
    for i, p in enumerate(picks):
        if i == cut:
            heads = pickle.loads(pickle.dumps(heads))  # the snapshot: a restart continues from it
        c = CHAINS[p % len(CHAINS)]
        out.append(heads[c].append("s", Event(f"user-{i % 3}", "alert.acknowledged", T0 + 10 * i, {"n": i}),
                                   wall_ns=10**9 + i))
    assert [e["hash"] for e in out] == [e["hash"] for e in whole]  # wall time is not hashed
    assert verify(whole[:cut + 1] + out[max(0, cut - 3):]).problem is None  # replayed overlap: duplicates


def test_the_problem_names_the_chain_seq_and_what_is_wrong() -> None:
    entries = trail([0, 0, 0, 1])
    bad = copy.deepcopy(entries)
    bad[1]["details"] = {"n": 42}
    assert verify(bad).problem == "chain asset:a seq 1: edited (its hash does not match its content)"
    fork = dict(entries[1], principal="mallory")
    fork["hash"] = entry_hash(fork)
    assert "seq 1: edited or forked" in str(verify(entries + [fork]).problem)
    assert verify(entries[:1] + entries[2:]).problem.startswith("chain asset:a seq 2: missing or reordered")
    assert verify([*entries, {"schema": "x"}]).problem == "entry 5: not an aiotstream.audit/1 entry"


def test_principal_is_the_message_by_anonymous_or_the_flow() -> None:
    assert principal("ana", True) == "ana"
    assert principal("", True) == ANONYMOUS and principal(None, True) == ANONYMOUS
    assert principal(None, False) == FLOW


def _auditor() -> Auditor:
    return Auditor("s", frozenset({"s.feedback", "s.control"}), "m@1", "h", "v")


def test_outputs_become_entries_with_their_principal() -> None:
    a = _auditor()
    head = ChainHead("asset:p")
    approved = Output("command", "p", {"status": "emitted", "by": "eng", "approved_by": "eng", "attempt": 0,
                                       "at_ns": 5, "command_id": "c"})
    blocked = Output("command", "p", {"status": "blocked", "by": None, "at_ns": 6,
                                      "blocked_by": {"check": "bounds", "rule": "max"}})
    ack = Output("alert", "p", {"event": "acknowledged", "by": "ana", "at_ns": 7, "alert_id": "x"})
    cleared = Output("alert", "p", {"event": "cleared", "cleared_by": "condition", "at_ns": 8})
    opened = Output("alert", "p", {"event": "opened", "at_ns": 9})
    dl = Output("deadletter", "p", {"reason": "already_acknowledged", "id": "d", "source": {"topic": "s.feedback"},
                                    "payload_b64": base64.b64encode(orjson.dumps(
                                        {"schema": "aiotstream.feedback/1", "type": "ack", "by": "bob",
                                         "ts": 11})).decode()})
    bad_reading = Output("deadletter", "p", {"reason": "bad_json", "source": {"topic": "s.readings"},
                                             "payload_b64": base64.b64encode(b"{").decode()})
    got = [(e.principal, e.what, e.event_ns) if (e := a.event(o, head)) else None
           for o in (approved, blocked, ack, cleared, opened, dl, bad_reading)]
    assert got == [("eng", "command.approved", 5), (FLOW, "command.blocked", 6), ("ana", "alert.acknowledged", 7),
                   None, None, ("bob", "refusal", 11), None]
    assert a.event(blocked, head).details["blocked_by"] == {"check": "bounds", "rule": "max"}
    cfg = a.event(ConfigLoad("h", "v", 2), head)
    assert (cfg.what, cfg.details) == ("config.load", {"config_hash": "h", "code_version": "v", "start": 2})


def test_a_champion_promoted_again_is_a_rollback() -> None:
    a = _auditor()
    head = ChainHead("input:s.control:0")

    def promo(ref: str | None, variant: str = "champion", event: str = "promoted") -> str:
        ev = a.event(Output("model", "s", {"event": event, "ref": ref, "variant": variant, "by": "mo",
                                           "source": {"topic": "s.control"}}), head)
        assert ev is not None and ev.principal == "mo"
        return ev.what

    assert [promo("m@2"), promo("m@3", "canary"), promo("m@1"), promo(None, "shadow"),
            promo("m@9", event="refused")] == \
        ["model.champion", "model.canary", "model.rollback", "model.shadow_stopped", "model.refused"]
    assert a.event(Output("model", "p", {"event": "retrain_request", "source": None}), head) is None


def test_step_chains_entries_per_key_and_keeps_the_head() -> None:
    a = _auditor()
    head, outs = a.step(None, ("asset:p", Output("alert", "p", {"event": "labelled", "by": "x", "at_ns": 1})))
    head, more = a.step(head, ("asset:p", Output("alert", "p", {"event": "labelled", "by": "y", "at_ns": 2})))
    head, none = a.step(head, ("asset:p", Output("score", "p", {})))
    assert none == [] and head.seq == 1
    entries = [o.record for o in outs + more]
    assert [e["seq"] for e in entries] == [0, 1] and entries[1]["prev"] == entries[0]["hash"]
    assert {o.kind for o in outs + more} == {"audit"} and verify(entries).problem is None


def test_audit_entries_reach_the_parquet_sink_and_the_rows_verify(tmp_path) -> None:
    import pyarrow.dataset as ds

    from aiotstream.config import ParquetOutput
    from aiotstream.io.parquet import ParquetSink

    entries = trail([0, 1, 0, 2, 2, 1])
    sink = ParquetSink(ParquetOutput(directory=str(tmp_path), kinds=["audit"]), "s")
    part = sink.build_part("sink", "p0", None)
    part.write_batch([Output("audit", e["chain"], e) for e in entries] + [Output("score", "a", {"id": "x"})])
    part.close()
    assert [p.name for p in tmp_path.iterdir()] == ["audit"]  # only the configured kind
    assert (tmp_path / "audit" / "site=s" / "date=2026-01-01").is_dir()
    rows = ds.dataset(tmp_path / "audit", format="parquet", partitioning="hive").to_table().to_pylist()
    back = [{k: (orjson.loads(v) if k == "details" else v) for k, v in r.items()
             if k not in ("date", "window_start_ns", "window_end_ns")} for r in rows]
    back.sort(key=lambda e: entries.index(next(x for x in entries if x["id"] == e["id"])))
    assert verify(back).problem is None and verify(back).entries == len(entries)
