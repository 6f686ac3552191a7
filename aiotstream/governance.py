"""Data governance at run time: the PII policy applied to every output before any sink sees it, erasure
requests, retention of the Parquet lake (``aiotstream prune``), and the hook the audit trail connects to.

**PII policy** (``[governance] pii``). Fields that name people (:data:`PERSON_FIELDS`: ``by``,
``acknowledged_by``, ``cleared_by``, ``approved_by``, ``subject``, and ``principal``/``on_behalf_of`` of
signed messages; at the top level of a record, in an alert's ``label``, in a model event's ``source`` and
in a dead letter's JSON payload and its ``auth``) are kept, dropped
(``null``) or pseudonymised: ``"pn:" + HMAC-SHA256(key, id)`` in hex, 32 digits. The key comes from a
secret file, so the pseudonym of a person is the same in every output and run with that key (joins still
work) and cannot be reversed without it. Free-text notes (:data:`NOTE_FIELDS`) are dropped unless the
policy is ``keep``.

**Erasure.** An erasure request on the control topic adds its subject to :data:`ERASED`; from then on that
person's id is pseudonymised (dropped when there is no key, or when the policy is ``drop``) in every output,
even under ``keep``. The list of erased subjects lives in the flow's recovery snapshot (the ``governance``
step, :mod:`aiotstream.dataflow.plant`), so a restart keeps honouring it.

>>> pol = Policy("pseudonymise", key=b"k" * 32)
>>> rec = pol.apply_record("alert", {"by": "ana", "label": {"by": "ana"}, "score": 1.0})
>>> rec["by"] == rec["label"]["by"] == pol.pseudonym("ana"), rec["by"].startswith("pn:")
(True, True)
>>> Policy("drop").apply_record("command", {"approved_by": "bob", "value": 2})
{'approved_by': None, 'value': 2}
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from aiotstream.errors import ConfigError
from aiotstream.records import Output

log = logging.getLogger(__name__)

PERSON_FIELDS = frozenset({"by", "acknowledged_by", "cleared_by", "approved_by", "subject", "principal",
                           "on_behalf_of"})
"""Fields that hold a person's name or id (operators, engineers, devices' principals, erasure subjects)."""
NOTE_FIELDS = frozenset({"note", "comment", "notes"})
"""Free text written by people: kept under ``keep``, else dropped."""
_NESTED = ("label", "source")  # sub-objects that can hold a person (an alert's label, a model event's source)
_WITH_PEOPLE = frozenset({"alert", "command", "model", "deadletter"})  # scores and KPIs never name people
MIN_KEY_BYTES = 16


def audit_hook(event: str, **fields: Any) -> None:
    """Called for every new erased subject with ``event="erasure"`` and the request's ``subject`` (as its
    pseudonym when there is a key), ``by``, ``ts`` and source position; a no-op hook for embedders. The audit
    trail's ``governance.erasure`` entries come from the flow's ``governance`` step
    (:func:`aiotstream.audit.erasure_event`), one per request taken."""


class ErasedSubjects:
    """The subjects of erasure requests seen by this process (thread-safe; the flow's workers share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subjects: frozenset[str] = frozenset()

    def add(self, subjects: Iterable[str]) -> None:
        with self._lock:
            self._subjects = self._subjects | frozenset(subjects)

    def clear(self) -> None:
        with self._lock:
            self._subjects = frozenset()

    def __contains__(self, subject: object) -> bool:
        return subject in self._subjects

    def __len__(self) -> int:
        return len(self._subjects)

    def snapshot(self) -> frozenset[str]:
        return self._subjects


ERASED = ErasedSubjects()


def read_key(path: str) -> bytes:
    """The pseudonym key from its secret file; ConfigError at ``governance.pseudonym_key_file`` if it cannot
    be read or is shorter than :data:`MIN_KEY_BYTES`. (Surrounding whitespace is not part of the key.)"""
    where = "governance.pseudonym_key_file"
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError("[governance]", [(where, f"{path}: cannot read: {exc.strerror}")]) from None
    if len(key) < MIN_KEY_BYTES:
        why = f"{path}: a key needs at least {MIN_KEY_BYTES} bytes (got {len(key)})"
        raise ConfigError("[governance]", [(where, why)])
    return key


@dataclass(slots=True)
class Policy:
    """The PII policy of a site (``keep``, ``drop`` or ``pseudonymise``) and its key."""

    pii: str = "keep"
    key: bytes | None = None
    erasure: bool = False
    erased: ErasedSubjects = ERASED

    @classmethod
    def from_config(cls, config: Any) -> Policy:
        g = config.governance
        key = read_key(g.pseudonym_key_file) if g.pseudonym_key_file else None
        return cls(g.pii, key, g.erasure)

    @property
    def active(self) -> bool:
        """Whether outputs can change at all (a policy other than keep, or erasure requests read)."""
        return self.pii != "keep" or self.erasure

    def pseudonym(self, subject: str) -> str:
        assert self.key is not None
        return "pn:" + hmac.new(self.key, subject.encode(), hashlib.sha256).hexdigest()[:32]

    def person(self, value: Any, field: str = "by") -> Any:
        """What a person field's value becomes. ``cleared_by`` says how an alert was cleared and, for an
        operator's clear, by whom (``operator:<id>``): only the id after the colon is a person.

        >>> p = Policy("drop")
        >>> p.person("operator:bo", "cleared_by"), p.person("condition", "cleared_by"), p.person("bo")
        ('operator', 'condition', None)
        """
        if not isinstance(value, str) or not value:
            return value
        if field == "cleared_by":
            how, sep, who = value.partition(":")
            if not sep:
                return value  # condition, timeout, ...: no person
            who = self.person(who)
            return how if who is None else f"{how}:{who}"
        if self.pii == "drop":
            return None
        if self.pii == "pseudonymise" or value in self.erased:
            return self.pseudonym(value) if self.key is not None else None
        return value

    def _fields(self, d: dict[str, Any]) -> dict[str, Any]:
        out = dict(d)
        for k, v in d.items():
            if k in PERSON_FIELDS:
                out[k] = self.person(v, k)
            elif k in NOTE_FIELDS and self.pii != "keep" and isinstance(v, str):
                out[k] = None
        return out

    def apply_record(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with the policy applied (a new dict when anything changes; the record itself when
        the kind never names people or nothing applies)."""
        if kind not in _WITH_PEOPLE or (self.pii == "keep" and not len(self.erased)):
            return record
        rec = self._fields(record)
        for k in _NESTED:
            v = rec.get(k)
            if isinstance(v, dict):
                rec[k] = self._fields(v)
        if kind == "deadletter" and isinstance(rec.get("payload_b64"), str):
            rec.update(self._payload(rec))
        return rec if rec != record else record

    def _payload(self, rec: dict[str, Any]) -> dict[str, Any]:
        """A dead letter's payload is the input as it came: when it is a JSON object that names a person
        (a feedback or control message), the policy applies to it too (``payload_redacted``)."""
        try:
            body = base64.b64decode(rec["payload_b64"], validate=True)
            obj = orjson.loads(body)
        except (ValueError, orjson.JSONDecodeError):
            return {}
        if not isinstance(obj, dict):
            return {}
        fixed = self._fields(obj)
        if isinstance(fixed.get("auth"), dict):  # a signed message's principals ([auth])
            fixed["auth"] = self._fields(fixed["auth"])
        if fixed == obj:
            return {}
        data = orjson.dumps(fixed)
        return {"payload_b64": base64.b64encode(data).decode("ascii"), "payload_redacted": True}

    def apply(self, out: Output) -> Output:
        """The one place outputs pass before any sink (the flow's ``governance_policy`` step)."""
        rec = self.apply_record(out.kind, out.record)
        return out if rec is out.record else Output(out.kind, out.key, rec)


def shown_subject(subject: str, policy: Policy | None) -> str:
    """How an erased subject is named where it must be named (log line, audit entry): its pseudonym with a
    key, else a short sha256, never in clear."""
    if policy is not None and policy.key is not None:
        return policy.pseudonym(subject)
    return "sha256:" + hashlib.sha256(subject.encode()).hexdigest()[:16]


def erase(subjects: Iterable[str], *, by: str = "", ts: int = 0, source: str = "",
          policy: Policy | None = None) -> None:
    """Honour erasure requests from now on, log them (never the subject in clear) and hand them to the
    audit trail (:func:`audit_hook`)."""
    subjects = list(subjects)
    new = [s for s in subjects if s not in ERASED]
    ERASED.add(subjects)
    for s in new:
        shown = shown_subject(s, policy)
        log.warning("erasure request from %s at %s: subject %s is pseudonymised in every output from now "
                    "on", by or "(unknown)", source or "?", shown)
        audit_hook("erasure", subject=shown, by=by, ts=ts, source=source)


# ---- retention of the Parquet lake ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Partition:
    kind: str
    day: date
    path: Path


def lake_partitions(lake: Path, site: str) -> list[Partition]:
    """The date partitions ``<lake>/<kind>/site=<site>/date=<YYYY-MM-DD>/`` of a site (others left out:
    ``date=unknown`` and anything that is not a date)."""
    out = []
    for kind_dir in sorted(p for p in lake.iterdir() if p.is_dir()):
        site_dir = kind_dir / f"site={site}"
        if not site_dir.is_dir():
            continue
        for d in sorted(site_dir.iterdir()):
            if not d.is_dir() or not d.name.startswith("date="):
                continue
            try:
                day = date.fromisoformat(d.name.removeprefix("date="))
            except ValueError:
                continue
            out.append(Partition(kind_dir.name, day, d))
    return out


def expired(parts: Iterable[Partition], retention_s: dict[str, int | None], now: datetime) -> list[Partition]:
    """The partitions whose whole day is older than their kind's retention: the day's end (its date + 1
    day, UTC) is at or before ``now - retention``. The partition's date decides, never a file's mtime.

    >>> p = Partition("score", date(2026, 1, 1), Path("x"))
    >>> now = datetime(2026, 1, 9, tzinfo=UTC)
    >>> len(expired([p], {"score": 7 * 86400}, now)), len(expired([p], {"score": 8 * 86400}, now))
    (1, 0)
    """
    out = []
    for p in parts:
        keep = retention_s.get(p.kind)
        if keep is None:
            continue
        end = datetime(p.day.year, p.day.month, p.day.day, tzinfo=UTC) + timedelta(days=1)
        if end <= now - timedelta(seconds=keep):
            out.append(p)
    return out


def prune(lake: Path, site: str, retention_s: dict[str, int | None], now: datetime,
          dry_run: bool = False) -> list[Partition]:
    """Delete (unless ``dry_run``) the site's expired partitions; return them."""
    gone = expired(lake_partitions(lake, site), retention_s, now)
    if not dry_run:
        for p in gone:
            shutil.rmtree(p.path)
    return gone


GOVERNANCE_KEY = "\x00governance"
"""The key erasure requests travel under to the flow's ``governance`` step (no asset id can be it)."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """A decoded erasure request (see :func:`aiotstream.codecs.feedback.decode_erase`)."""

    subject: str
    by: str
    ts_ns: int
    source: str
    asset: str = GOVERNANCE_KEY
