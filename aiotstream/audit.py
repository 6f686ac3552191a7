"""The audit trail: an append-only, hash-chained record of who changed what (``<site>.audit``).

Entries (``aiotstream.audit/1``) are made by the ``audit`` step at the end of every flow from the outputs
that record a decision somebody (or the flow) took, and from one marker per flow start:

* ``config.load``: the flow started with a config (its hash) and code version;
* ``model.champion`` / ``model.canary`` / ``model.shadow`` / ``model.shadow_stopped`` / ``model.rollback`` /
  ``model.refused``: a promotion on the control topic, accepted (as the rollout applies it) or refused;
* ``command.<status>``: every command change (``advisory``, ``awaiting_approval``, ``emitted``,
  ``approved``, ``rejected``, ``blocked`` with the envelope rule, ``acked``, ``expired``, ``failed``, ...);
* ``alert.acknowledged`` / ``alert.cleared`` (by an operator) / ``alert.labelled``;
* ``governance.erasure``: an erasure request on the control topic was taken (the subject as its pseudonym,
  never in clear), in chain ``governance``;
* ``model_loop.<step>`` (``trained``, ``gate_failed``, ``shadow``, ``verdict``, ``canary``, ``champion``,
  ``rolled_back``, ...): the model loop service's own steps (:mod:`aiotstream.retrain`), in chain
  ``service:retrain``, written by that service (the promotions it sends are audited here as anybody's);
* ``refusal``: a feedback or control message that was dead-lettered, with the reason (with ``[auth]``: also
  the authentication and authorisation refusals, ``unsigned`` ... ``forbidden``, attributed to the
  principal the message claims).

With ``[auth]`` the ``by`` of an accepted message is its authenticated (acting) principal, so every entry
made from it names who signed it (or, for the console, on whose behalf).

Each entry is in one *chain* (``chain``): ``asset:<id>`` for the decisions of an asset's (zone's) own step,
``input:<topic>:<partition>`` for those taken where messages are decoded (promotions, malformed feedback),
``config`` for the config loads. A chain's entries come from one step instance in a fixed order (the
asset's event-time order; one input partition's offset order), so the chain is the same whatever the number
of workers and after a resume; a single site-wide chain would interleave several workers' entries in an
order no replay repeats. The chain head (``seq``, ``hash``) is the ``audit`` step's state, snapshotted with
the rest of the flow's state, so a resume continues the chain.

``hash`` is the sha256 of the entry's canonical JSON (orjson, sorted keys) without ``hash`` and without
``wall_ns`` (the wall-clock time the entry was made: informational, since a replay after a resume makes the
same entry again at another wall time and the chain must not change); ``prev`` is the previous entry's hash
(``""`` for seq 0). ``id`` is deterministic (site, chain, seq), so the at-least-once sinks' repeats are
exact duplicates, which :func:`verify` accepts; a different entry with a seq already seen is not.
"""
from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from aiotstream.lineage import FlowContext, make_id
from aiotstream.records import Output

SCHEMA = "aiotstream.audit/1"
FLOW = "flow"
"""The principal of the flow's own decisions (a command a rule proposed, an envelope that blocked it)."""
ANONYMOUS = "anonymous"
"""The principal of a message that names nobody (no ``by``)."""
UNHASHED = ("hash", "wall_ns")


def principal(by: Any, from_message: bool) -> str:
    """Who an entry is attributed to: the one place the principal is taken (the message's ``by``, which a site
    with ``[auth]`` sets to the verified, acting principal; a refused message's claimed principal)."""
    if isinstance(by, str) and by:
        return by
    return ANONYMOUS if from_message else FLOW


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 (hex) of the entry's canonical JSON, without ``hash`` and ``wall_ns``."""
    body = {k: v for k, v in entry.items() if k not in UNHASHED}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to audit, before it is chained."""

    principal: str
    what: str
    event_ns: int | None
    details: dict[str, Any]


@dataclass(slots=True)
class ChainHead:
    """The audit step's state for one chain: the last seq and hash, and the champions it has seen (to tell
    a rollback from a promotion)."""

    chain: str
    seq: int = -1
    prev: str = ""
    champions: list[str] = field(default_factory=list)

    def append(self, site: str, ev: Event, wall_ns: int | None = None) -> dict[str, Any]:
        self.seq += 1
        entry = {
            "schema": SCHEMA, "id": make_id("audit", site, self.chain, self.seq), "site": site,
            "chain": self.chain, "seq": self.seq, "prev": self.prev, "principal": ev.principal,
            "what": ev.what, "event_ns": ev.event_ns,
            "wall_ns": time.time_ns() if wall_ns is None else wall_ns, "details": ev.details,
        }
        entry["hash"] = self.prev = entry_hash(entry)
        return entry


# ---- outputs -> events ------------------------------------------------------------------------------

_COMMAND_DETAILS = ("command_id", "actuator", "rule", "mode", "value", "previous_value", "attempt",
                    "approved_by", "blocked_by", "clamped_by", "reason")
_BY_MESSAGE = {"rejected", "acked"}  # command statuses only a message causes


def _command(rec: dict[str, Any]) -> Event:
    status, by = rec.get("status"), rec.get("by")
    what = status
    if by and status == "emitted" and rec.get("approved_by") == by and not rec.get("attempt"):
        what = "approved"  # emitted because somebody approved it
    return Event(principal(by, by is not None or status in _BY_MESSAGE), f"command.{what}", rec.get("at_ns"),
                 {k: rec.get(k) for k in _COMMAND_DETAILS})


def _alert(rec: dict[str, Any]) -> Event | None:
    ev = rec.get("event")
    if ev == "cleared" and not str(rec.get("cleared_by") or "").startswith("operator"):
        return None  # the condition cleared it: the flow's own decision, in the alert topic already
    if ev not in ("acknowledged", "cleared", "labelled"):
        return None
    return Event(principal(rec.get("by"), True), f"alert.{ev}", rec.get("at_ns"),
                 {"alert_id": rec.get("alert_id"), "alert_type": rec.get("alert_type"),
                  "severity": rec.get("severity"), "label": rec.get("label")})


def _model(rec: dict[str, Any], head: ChainHead, seed: str | None) -> Event | None:
    ev, ref, variant = rec.get("event"), rec.get("ref"), rec.get("variant")
    if ev not in ("promoted", "refused") or rec.get("source") is None:
        return None  # retrain requests: the flow asks, nothing changes
    if ev == "refused":
        what = "model.refused"
    elif ref is None:
        what = "model.shadow_stopped"
    elif variant == "champion":
        if not head.champions and seed:
            head.champions.append(seed)
        what = "model.rollback" if ref in head.champions[:-1] else "model.champion"
        if not head.champions or head.champions[-1] != ref:
            head.champions.append(ref)
    else:
        what = f"model.{variant}"
    return Event(principal(rec.get("by"), True), what, None,
                 {"ref": ref, "variant": variant, "reason": rec.get("reason"), "source": rec.get("source"),
                  "record_id": rec.get("id")})


def _message(rec: dict[str, Any]) -> Any:
    try:
        return orjson.loads(base64.b64decode(rec.get("payload_b64") or ""))
    except (ValueError, orjson.JSONDecodeError):
        return None


def _refusal(rec: dict[str, Any], control_topics: frozenset[str], signed: bool = False) -> Event | None:
    msg = _message(rec)
    is_msg = isinstance(msg, dict)
    control = is_msg and (str(msg.get("schema", "")).startswith("aiotstream.feedback") or
                          msg.get("type") == "promote")
    if not control and (rec.get("source") or {}).get("topic") not in control_topics:
        return None
    by = msg.get("by") if is_msg else None
    if rec.get("principal"):  # refused by [auth]: the principal the message claims (its signer)
        by = rec["principal"]
    elif signed and not by and is_msg and isinstance(msg.get("auth"), dict):  # verified, refused later (e.g.
        a = msg["auth"]  # an approval for a command no longer pending): its acting principal
        by = a.get("on_behalf_of") or a.get("principal")
    ts = msg.get("ts") if is_msg else None
    event_ns = ts if isinstance(ts, int) and not isinstance(ts, bool) else None
    return Event(principal(by, True), "refusal", event_ns,
                 {"reason": rec.get("reason"), "message": rec.get("message"), "asset": rec.get("asset"),
                  "source": rec.get("source"), "deadletter_id": rec.get("id"),
                  "type": msg.get("type") if is_msg else None})


@dataclass(frozen=True, slots=True)
class Auditor:
    """What the audit step needs of the site: its id, the topics whose messages are control, the
    configured champion, and the config load's details."""

    site: str
    control_topics: frozenset[str]
    champion: str | None
    config_hash: str
    code_version: str
    signed: bool = False  # the site has [auth]: a message's acting principal is in its auth object

    @classmethod
    def of(cls, config: Any, ctx: FlowContext) -> Auditor:
        topics = frozenset([*config.inputs.feedback_topics, *config.control_topics()])
        m = config.model
        name, version = getattr(m, "name", None), getattr(m, "version", None)
        champion = f"{name}@{version}" if name and version else None
        return cls(ctx.site, topics, champion, ctx.config_hash, ctx.code_version,
                   getattr(config, "auth", None) is not None)

    def chain_of(self, out: Output, entity_step: bool) -> str | None:
        """The chain an output's audit entry goes to, or None if it records nothing to audit."""
        rec = out.record
        if out.kind not in ("command", "alert", "model", "deadletter"):
            return None
        if entity_step:
            return f"asset:{out.key}"
        src = rec.get("source")
        if isinstance(src, dict) and src.get("topic") is not None:
            return f"input:{src['topic']}:{src.get('partition')}"
        return f"asset:{out.key}" if out.key else "site"

    def keyed(self, out: Output, entity_step: bool) -> list[tuple[str, tuple[str, Output]]]:
        chain = self.chain_of(out, entity_step)
        return [] if chain is None else [(chain, (chain, out))]

    def event(self, item: Output | ConfigLoad | Noted, head: ChainHead) -> Event | None:
        if isinstance(item, Noted):
            return item.event
        if isinstance(item, ConfigLoad):
            return Event(FLOW, "config.load", None, {"config_hash": item.config_hash,
                                                      "code_version": item.code_version, "start": item.start})
        rec = item.record
        if item.kind == "command":
            return _command(rec)
        if item.kind == "alert":
            return _alert(rec)
        if item.kind == "model":
            return _model(rec, head, self.champion)
        if item.kind == "deadletter":
            return _refusal(rec, self.control_topics, self.signed)
        return None

    def step(self, head: ChainHead | None, value: tuple[str, Output | ConfigLoad | Noted]
             ) -> tuple[ChainHead, list[Output]]:
        """The ``audit`` step (``stateful_map`` per chain): append the item's entry, if it has one."""
        chain, item = value
        head = head or ChainHead(chain)
        ev = self.event(item, head)
        if ev is None:
            return head, []
        return head, [Output("audit", chain, head.append(self.site, ev))]


@dataclass(frozen=True, slots=True)
class Noted:
    """An event another step hands to the audit step as it is (an erasure from the ``governance`` step)."""

    event: Event


GOVERNANCE_CHAIN = "governance"
"""The chain of the ``governance`` step's decisions (erasures; one step instance, in input order)."""


def erasure_event(by: str, ts_ns: int, subject_shown: str, source: str) -> tuple[str, tuple[str, Noted]]:
    """The audit input of an erasure the governance step took: by whom (the acting principal with
    ``[auth]``), the subject as :func:`aiotstream.governance.shown_subject` names it, and where it came
    from (``topic:partition:offset``)."""
    ev = Event(principal(by, True), "governance.erasure", ts_ns or None,
               {"subject": subject_shown, "source": source})
    return GOVERNANCE_CHAIN, (GOVERNANCE_CHAIN, Noted(ev))


# ---- config loads ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfigLoad:
    """The marker of one flow start (the ``start``-th of this recovery store, from 0)."""

    config_hash: str
    code_version: str
    start: int


# ---- verification ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class Report:
    """What :func:`verify` found: per chain the entries kept (duplicates left out), the first problem."""

    chains: dict[str, int] = field(default_factory=dict)
    entries: int = 0
    duplicates: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    problem: str | None = None

    def summary(self) -> str:
        from aiotstream.lineage import iso_ns

        span = "no wall times" if self.first_ns is None or self.last_ns is None else \
            f"{iso_ns(self.first_ns)} .. {iso_ns(self.last_ns)}"
        return (f"audit trail verified: {len(self.chains)} chain(s), {self.entries} entries"
                f" ({self.duplicates} exact duplicate(s) skipped), written {span}")


def verify(entries: Iterable[Any]) -> Report:
    """Check every chain of ``entries`` (in the order they were written; chains may interleave).

    Stops at the first broken link and names it in ``problem``: an entry whose hash does not match its
    content (``edited``), a seq past the next expected one (``missing``), a ``prev`` that is not the previous
    entry's hash (``edited`` or ``reordered`` before it), a seq already seen with different content
    (``edited``/``reordered``), or a record that is not an audit entry. An exact duplicate (same id, same
    hash) of an entry already verified is skipped: the sinks deliver at least once.
    """
    rep = Report()
    heads: dict[str, tuple[int, str]] = {}
    seen: dict[tuple[str, int], tuple[str, str]] = {}
    for n, e in enumerate(entries, 1):
        where = f"entry {n}"
        if not isinstance(e, dict) or e.get("schema") != SCHEMA:
            rep.problem = f"{where}: not an {SCHEMA} entry"
            return rep
        chain, seq, h = e.get("chain"), e.get("seq"), e.get("hash")
        if not isinstance(chain, str) or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 \
                or not isinstance(h, str):
            rep.problem = f"{where}: chain, seq or hash missing or malformed"
            return rep
        where = f"chain {chain} seq {seq}"
        if entry_hash(e) != h:
            rep.problem = f"{where}: edited (its hash does not match its content)"
            return rep
        known = seen.get((chain, seq))
        if known is not None:
            if known == (e.get("id"), h):
                rep.duplicates += 1
                continue
            rep.problem = f"{where}: edited or forked (a different entry with this seq was verified before)"
            return rep
        last_seq, last_hash = heads.get(chain, (-1, ""))
        if seq > last_seq + 1:
            rep.problem = (f"{where}: missing or reordered (seq {last_seq + 1} was expected here; an entry "
                           "is missing or the entries were reordered)")
            return rep
        if seq < last_seq + 1:
            rep.problem = f"{where}: reordered (seq {last_seq} came before it)"
            return rep
        if e.get("prev") != last_hash:
            what = "the first entry of its chain has a prev" if seq == 0 else \
                f"prev is not the hash of seq {last_seq} (that entry was edited or replaced)"
            rep.problem = f"{where}: {what}"
            return rep
        heads[chain] = (seq, h)
        seen[(chain, seq)] = (e.get("id"), h)
        rep.chains[chain] = rep.chains.get(chain, 0) + 1
        rep.entries += 1
        w = e.get("wall_ns")
        if isinstance(w, int):
            rep.first_ns = w if rep.first_ns is None else min(rep.first_ns, w)
            rep.last_ns = w if rep.last_ns is None else max(rep.last_ns, w)
    return rep


def read_jsonl(lines: Iterable[bytes]) -> Iterator[Any]:
    """The entries of a JSONL export; a line that is not JSON comes back as its text (which fails verify)."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            yield line.decode("utf-8", "replace")


def read_kafka(brokers: str, topic: str, wait_s: float, timeout_s: float = 60.0) -> Iterator[Any]:
    """The entries of an audit topic, every partition from its beginning to its end now (its high
    watermark, and on while records come: a broker's watermark can lag its log) (a chain is one key, so
    its entries are in one partition, in order). AiotError if no broker answers or the topic does
    not exist."""
    from confluent_kafka import Consumer, TopicPartition

    from aiotstream.errors import AiotError
    from aiotstream.io.kafka_client import client_config, metadata, wait_for_brokers

    admin = wait_for_brokers(brokers, wait_s)
    meta = metadata(admin, brokers, wait_s, topic).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise AiotError(f"no topic {topic!r} on {brokers} (has the flow run with this site?)")
    c = Consumer({**client_config(brokers), "group.id": "aiotstream-audit-verify",
                  "enable.auto.commit": False})
    try:
        for p in sorted(meta.partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=wait_s)
            if hi <= lo:
                continue
            c.assign([TopicPartition(topic, p, lo)])
            at, deadline = lo, time.monotonic() + timeout_s
            while True:
                past = time.monotonic() > deadline
                if past and at < hi:
                    raise AiotError(f"{topic} partition {p}: read only to offset {at} of {hi} in "
                                    f"{timeout_s:g} s")
                got = c.consume(1000, timeout=0.5)
                # the watermark can lag the log by a batch (Tansu reported 5 with 7 records written):
                # past it, read on while records come, so an entry is never left out
                if at >= hi and (past or not got):
                    break
                for m in got:
                    if m.error():
                        continue
                    at = m.offset() + 1
                    yield from read_jsonl([m.value() or b""])
    finally:
        c.close()
