"""Model cards: what a model version is, what it was trained on, how it fared, and why it is live.

:func:`model_card` builds a card (a plain JSON-able dict) from a version's registry
:class:`~aiotstream.models.registry.Manifest`, its training dataset's description (when given) and the
events of its life (:class:`CardLog`, and the ``aiotstream.model/1`` records of ``<site>.models``);
:func:`card_markdown` writes it as Markdown. The card's fields:

* ``name``, ``version``, ``ref`` (``name@version``), ``sha256``, ``created``, ``quantized``, ``signature``
  (algorithm and key id as the manifest says; checking it is the registry's job);
* ``training``: the manifest's ``training_data`` text and ``dataset``: its ``id``, ``rows``, time range
  (``start`` and ``end``, ISO UTC), ``assets`` and ``labels`` (label provenance), plus any other plain
  fields it has; ``dataset`` comes from the ``dataset`` argument, else from ``manifest.extra["dataset"]``;
* ``features``: the feature set (``manifest.extra["features"]``: ``{"set", "version"}`` or a name) and the
  feature columns; ``code_version`` (``manifest.extra["code_version"]``);
* ``metrics``: the manifest's metrics; ``gate``: the validation gate (``{"metric", "value", "threshold",
  "passed"}``) from the latest promotion event that carries one, else ``metrics["gate"]``;
* ``verdicts``: each canary verdict in the events (``time``, ``decision``, ``reason``, ``stats``);
  ``history``: every event (``time``, ``event``, ``variant``, ``decision``, ``by``, ``reason``);
* ``status``: ``candidate`` | ``shadow`` | ``canary`` | ``champion`` | ``rolled back`` | ``retired``, and
  ``since`` (when it became so);
* ``why``: the one-line answer to "why is this model live?" (or why it is not).

Events are dicts with an ``event`` and a time (``at_ns``, or an ISO ``produced_at``/``at``):

* ``{"event": "promoted", "variant": "shadow" | "canary" | "champion", "by", "reason", "automatic": bool,
  "gate": {...}}``: the version went live in that role (also what a ``<site>.models`` record says);
* ``{"event": "verdict", "decision": "continue" | "promote" | "rollback", "reason", "stats"}``: a canary
  verdict (:meth:`aiotstream.models.verdict.Verdict.to_dict` plus the time); a ``rollback`` verdict means
  rolled back;
* ``{"event": "rolled_back", "reason", "by"}`` and ``{"event": "retired", "replaced_by", "reason"}`` (a new
  champion took over); any other event (``refused``, ``published``, ...) is history only;
* the model loop's steps (:mod:`aiotstream.retrain`, time in ``at``): ``trained`` (``dataset``, ``rows``:
  filled into the dataset when not given), ``shadow`` / ``canary`` / ``champion`` (the version went live in
  that role; the ``reason`` is the why-line's), ``verdict``, ``rolled_back``, ``superseded`` (retired: a
  person chose another champion), and ``gate_failed`` / ``failed`` / ``approval_needed``, which the why-line
  names.

>>> from aiotstream.models.registry import Manifest
>>> m = Manifest(name="pm", version="2", sha256="ab" * 32, created="2026-12-01T10:00:00Z",
...              training_data="plant-a, 30 days", metrics={"gate": {"metric": "auc", "value": 0.97,
...              "threshold": 0.9, "passed": True}}, feature_names=["x.rms"], score={})
>>> card = model_card(m, dataset={"id": "ds-7", "rows": 1200}, events=[
...     {"event": "promoted", "variant": "canary", "at_ns": 1_000_000_000_000_000_000},
...     {"event": "verdict", "decision": "promote", "reason": "promote: no worse",
...      "at_ns": 1_000_000_100_000_000_000},
...     {"event": "promoted", "variant": "champion", "automatic": True, "at_ns": 1_000_000_100_000_000_000}])
>>> card["status"], card["since"]
('champion', '2001-09-09T01:48:20Z')
>>> for part in card["why"].split("; "): print(part)
champion since 2001-09-09T01:48:20Z: promoted automatically after canary verdict "promote: no worse"
trained on dataset ds-7
gate auc 0.97 >= 0.9
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from aiotstream.errors import ModelError
from aiotstream.models.registry import Manifest

log = logging.getLogger(__name__)
__all__ = ["STATUSES", "CardLog", "card_markdown", "model_card"]

CARD_SCHEMA = "aiotstream.model-card/1"
STATUSES = ("candidate", "shadow", "canary", "champion", "rolled back", "retired")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")  # as the registry's names and versions
MAX_EVENT_BYTES = 1 << 20


# ---- times -------------------------------------------------------------------------------------------------
def _iso(t_ns: int) -> str:
    """ISO UTC to the second (microseconds when it has them).

    >>> _iso(1_767_225_600_000_000_000), _iso(1_767_225_600_000_001_000)
    ('2026-01-01T00:00:00Z', '2026-01-01T00:00:00.000001Z')
    """
    dt = datetime.fromtimestamp(t_ns // 1_000_000_000, tz=UTC).replace(microsecond=t_ns // 1000 % 1_000_000)
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds").replace("+00:00", "Z")


def _time_ns(event: dict[str, Any]) -> int | None:
    """An event's time in ns: ``at_ns`` or ``ts`` (ns), else an ISO ``produced_at`` or ``at``."""
    for key in ("at_ns", "ts"):
        v = event.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63:
            return v
    for key in ("produced_at", "at"):
        v = event.get(key)
        if isinstance(v, str):
            try:
                dt = datetime.fromisoformat(v)
            except ValueError:
                continue
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    return None


def _when(event: dict[str, Any]) -> str | None:
    t = _time_ns(event)
    return None if t is None else _iso(t)


def _text(v: Any) -> str | None:
    return None if v is None else v if isinstance(v, str) else str(v)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if math.isfinite(v) else str(v)
    return str(v)


# ---- the card ----------------------------------------------------------------------------------------------
def _dataset(dataset: Any) -> dict[str, Any] | None:
    """The card's view of a dataset description: id, rows, start/end (ISO), assets, labels, and any other
    plain fields."""
    if isinstance(dataset, str):
        dataset = {"id": dataset}
    if not isinstance(dataset, dict):
        return None
    out: dict[str, Any] = {"id": _text(dataset.get("id") or dataset.get("dataset_id") or dataset.get("name"))}
    rows = dataset.get("rows", dataset.get("n_rows"))
    out["rows"] = rows if isinstance(rows, (int, dict)) and not isinstance(rows, bool) else _text(rows)
    rng = dataset.get("time_range")
    if isinstance(rng, dict):  # the dataset store's {"start_ns", "end_ns", "start", "end"}
        start, end = rng.get("start_ns", rng.get("start")), rng.get("end_ns", rng.get("end"))
    elif isinstance(rng, (list, tuple)) and len(rng) == 2:
        start, end = rng[0], rng[1]
    else:
        start, end = dataset.get("start_ns", dataset.get("start")), dataset.get("end_ns", dataset.get("end"))
    for key, v in (("start", start), ("end", end)):
        out[key] = _iso(v) if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 else _text(v)
    assets = dataset.get("assets")  # names, or rows per asset
    out["assets"] = [str(a) for a in assets] if isinstance(assets, (list, tuple)) else \
        assets if isinstance(assets, dict) else _text(assets)
    labels = dataset.get("labels", dataset.get("label_provenance"))
    if isinstance(labels, dict):  # the rule and the counts; lists of alert ids as their lengths
        labels = {k: ({a: len(b) if isinstance(b, list) else b for a, b in v.items()} if k == "alerts" and
                      isinstance(v, dict) else v) for k, v in labels.items()}
    out["labels"] = labels if isinstance(labels, (dict, list)) else _text(labels)
    used = {"id", "dataset_id", "name", "rows", "n_rows", "time_range", "start_ns", "start", "end_ns", "end",
            "assets", "labels", "label_provenance"}
    for k, v in dataset.items():
        if k not in used and isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool))):
            out[k] = v
    return out


def _gate(metrics: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any] | None:
    for e in reversed(events):  # the latest event that carries one (a promotion, the loop's shadow step)
        g = e.get("gate")
        if isinstance(g, dict) and "metric" in g:
            return g
    g = metrics.get("gate") if isinstance(metrics, dict) else None
    return g if isinstance(g, dict) and "metric" in g else None


def _gate_line(g: dict[str, Any] | None) -> str | None:
    if g is None:
        return None
    value, threshold = g.get("value"), g.get("threshold")
    passed = g.get("passed")
    op = ">=" if passed is not False else "<"
    if value is None or threshold is None:
        return f"gate {g.get('metric')} {'passed' if passed else 'failed' if passed is False else '?'}"
    return f"gate {g.get('metric')} {_num(value)} {op} {_num(threshold)}"


def _entry(e: dict[str, Any]) -> dict[str, Any]:
    return {"time": _when(e), "event": _text(e.get("event")), "variant": _text(e.get("variant")),
            "decision": _text(e.get("decision")), "by": _text(e.get("by")), "reason": _text(e.get("reason"))}


def _ordered(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The events that are dicts, in time order when every one has a time (else as given)."""
    evs = [e for e in events if isinstance(e, dict)]
    times = [_time_ns(e) for e in evs]
    if all(t is not None for t in times):
        return [e for _, _, e in sorted(zip(times, range(len(evs)), evs))]  # type: ignore[type-var]
    return evs


def model_card(manifest: Manifest, *, dataset: dict[str, Any] | None = None,
               events: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The card of one version (see the module docstring for its fields); pure: the same inputs give the same
    card."""
    m = manifest
    evs = _ordered(events)
    extra = m.extra if isinstance(m.extra, dict) else {}
    ds = _dataset(dataset if dataset is not None else extra.get("dataset"))
    feats = extra.get("features", extra.get("feature_set"))
    if isinstance(feats, dict):
        fset = {"set": _text(feats.get("set", feats.get("name"))), "version": _text(feats.get("version"))}
    else:
        fset = {"set": _text(feats), "version": None}
    sig = m.signature if isinstance(m.signature, dict) else None
    metrics = m.metrics if isinstance(m.metrics, dict) else {}
    gate = _gate(metrics, evs)

    status, since, cause = "candidate", None, None
    last_verdict: dict[str, Any] | None = None
    note: dict[str, Any] | None = None  # the latest event that says why it is not (yet) further
    verdicts = []
    for e in evs:
        kind = e.get("event")
        if kind == "verdict":
            stats = e.get("stats")
            verdicts.append({"time": _when(e), "decision": _text(e.get("decision")),
                             "reason": _text(e.get("reason")),
                             "stats": stats if isinstance(stats, dict) else {}})
            if e.get("decision") == "rollback":
                status, since, cause = "rolled back", _when(e), e
            else:
                last_verdict = e
        elif kind == "promoted" and e.get("variant") in ("shadow", "canary", "champion"):
            status, since, cause, note = str(e["variant"]), _when(e), e, None
        elif kind in ("shadow", "canary", "champion"):  # the model loop's steps (aiotstream.retrain)
            status, since, cause, note = str(kind), _when(e), e, None
        elif kind in ("rolled_back", "rolled back", "rollback"):
            status, since, cause = "rolled back", _when(e), e
        elif kind in ("retired", "superseded"):
            status, since, cause = "retired", _when(e), e
        elif kind in ("gate_failed", "failed", "approval_needed"):
            note = e
    trained = [e for e in evs if e.get("event") == "trained" and isinstance(e.get("dataset"), str)]
    if ds is None and trained:  # the loop's "trained" event names the dataset (and counts its rows)
        ds = _dataset(trained[-1]["dataset"])
    if ds is not None and ds.get("rows") is None:
        for e in trained:
            if e["dataset"] == ds.get("id") and e.get("rows") is not None:
                ds["rows"] = e["rows"]

    card: dict[str, Any] = {
        "schema": CARD_SCHEMA, "name": m.name, "version": m.version, "ref": f"{m.name}@{m.version}",
        "sha256": m.sha256, "created": m.created, "quantized": bool(m.quantized),
        "signature": None if sig is None else {"alg": _text(sig.get("alg")),
                                               "key_id": _text(sig.get("key_id"))},
        "training": {"data": m.training_data, "dataset": ds},
        "features": {**fset, "columns": list(m.feature_names)},
        "code_version": _text(extra.get("code_version")),
        "metrics": metrics, "gate": gate,
        "verdicts": verdicts, "history": [_entry(e) for e in evs],
        "status": status, "since": since,
    }
    card["why"] = " ".join(_why(card, cause, last_verdict, note).split())  # one line, whatever the inputs
    return card


def _why(card: dict[str, Any], cause: dict[str, Any] | None, verdict: dict[str, Any] | None,
         note: dict[str, Any] | None = None) -> str:
    """The one line: why this version is live (or why it is not)."""
    status, since = card["status"], card["since"] or "an unknown time"
    ds = card["training"]["dataset"]
    trained = f"trained on dataset {ds['id']}" if ds and ds.get("id") else \
        f"trained on {card['training']['data']}" if card["training"]["data"] else "training data not recorded"
    gate = _gate_line(card["gate"])
    tail = "; ".join(x for x in (trained, gate) if x)
    reason = _text((cause or {}).get("reason"))
    if status in ("shadow", "canary", "champion") and cause is not None and cause.get("event") == status:
        # a step of the model loop: its reason says why (e.g. "promoted automatically after the canary
        # verdict: ..."); a pending approval is said too
        role = {"shadow": "shadow (scores beside the champion, never decides)",
                "canary": "canary (decides for a share of the assets)", "champion": "champion"}[status]
        waiting = f"; awaiting approval: {_text(note.get('reason'))}" if note is not None and \
            note.get("event") == "approval_needed" else ""
        return f"{role} since {since}: {reason or 'by the model loop'}{waiting}; {tail}"
    if status in ("shadow", "canary", "champion"):
        assert cause is not None
        by = _text(cause.get("by"))
        how = "automatically" if cause.get("automatic") is True else f"by {by}" if by else ""
        after = f'after canary verdict "{verdict.get("reason")}"' if verdict is not None and \
            verdict.get("decision") == "promote" and status == "champion" else \
            "without a canary verdict" if status == "champion" else ""
        promoted = " ".join(x for x in ("promoted", how, after) if x)
        role = {"shadow": "shadow (scores beside the champion, never decides)",
                "canary": "canary (decides for a share of the assets)", "champion": "champion"}[status]
        return f"{role} since {since}: {promoted}; {tail}"
    if status == "rolled back":
        return f"not live: rolled back at {since}" + (f": {reason}" if reason else "") + f"; {tail}"
    if status == "retired":
        after = _text((cause or {}).get("replaced_by"))
        return f"not live: retired at {since}" + (f", replaced by {after}" if after else "") + \
            (f": {reason}" if reason else "") + f"; {tail}"
    if note is not None:  # e.g. the validation gate refused it
        return f"not live: {_text(note.get('event'))} at {_when(note) or 'an unknown time'}: " \
            f"{_text(note.get('reason'))}; {tail}"
    return f"not live: a candidate, never promoted (published {card['created']}); {tail}"


# ---- Markdown ----------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~])")


def _md(v: Any) -> str:
    """Any value as inline Markdown text: one line, the Markdown (and HTML) specials escaped, so a table cell
    stays one cell and nothing in it renders as a link, markup or HTML.

    >>> _md("a|b <i>x</i>\\n[y](z)")
    'a\\\\|b \\\\<i\\\\>x\\\\</i\\\\> \\\\[y\\\\]\\\\(z\\\\)'
    """
    if v is None:
        return "–"
    s = v if isinstance(v, str) else _num(v) if isinstance(v, (int, float)) else \
        orjson.dumps(v, default=str, option=orjson.OPT_SORT_KEYS).decode()
    s = " ".join(s.split())  # newlines, tabs and other breaks to single spaces
    return _MD_SPECIAL.sub(r"\\\1", s) or "–"


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown (a heading, the one line, a table of facts, the verdicts and the history)."""
    def get(*path: str) -> Any:
        v: Any = card
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return v

    lines = [f"# Model card: {_md(get('ref'))}", "", f"**Why live:** {_md(get('why'))}", "",
             "| field | value |", "|---|---|"]
    ds = get("training", "dataset") or {}
    feats = get("features") or {}
    cols = feats.get("columns") if isinstance(feats, dict) else None
    facts: list[tuple[str, Any]] = [
        ("status", f"{get('status')} since {get('since')}" if get("since") else get("status")),
        ("name", get("name")), ("version", get("version")), ("sha256", get("sha256")),
        ("created", get("created")), ("quantized", get("quantized")), ("signature", get("signature")),
        ("training data", get("training", "data")),
    ]
    if isinstance(ds, dict):
        facts += [(f"dataset {k}", v) for k, v in ds.items()]
    facts += [("feature set", " ".join(str(x) for x in (feats.get("set"), feats.get("version")) if x)
               if isinstance(feats, dict) else None),
              ("feature columns", f"{len(cols)}: {', '.join(map(str, cols[:12]))}"
               + (" ..." if len(cols) > 12 else "") if isinstance(cols, list) else None),
              ("code version", get("code_version")), ("gate", _gate_line(get("gate")) if isinstance(
                  get("gate"), dict) else None)]
    metrics = get("metrics")
    if isinstance(metrics, dict):
        facts += [(f"metric {k}", v) for k, v in metrics.items() if k != "gate"]
    lines += [f"| {_md(k)} | {_md(v)} |" for k, v in facts]
    lines += _md_table("Canary verdicts", get("verdicts"), ("time", "decision", "reason"))
    lines += _md_table("History", get("history"), ("time", "event", "variant", "decision", "by", "reason"))
    return "\n".join(lines) + "\n"


def _md_table(title: str, rows: Any, keys: tuple[str, ...]) -> list[str]:
    """A section of the card: ``## title`` and a table of ``rows`` (dicts) by ``keys``, or "None recorded"."""
    out = ["", f"## {title}", ""]
    if not (isinstance(rows, list) and rows):
        return [*out, "None recorded."]
    out += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        r = r if isinstance(r, dict) else {}
        out.append("| " + " | ".join(_md(r.get(k)) for k in keys) + " |")
    return out


# ---- the event log -----------------------------------------------------------------------------------------
class CardLog:
    """An append-only event log per model version beside the registry: JSON lines at
    ``<root>/.cards/<name>/<version>.jsonl``, one event per line, each appended with one write and fsynced,
    never rewritten. The registry's versions stay immutable (the registry lists no dot directory).

    A line torn by a crash mid-write is skipped when read (and the next append starts on a new line).

    >>> import tempfile
    >>> log = CardLog(tempfile.mkdtemp())
    >>> log.append("pm", "2", {"event": "promoted", "variant": "shadow", "at_ns": 5})
    >>> log.events("pm", "2")
    [{'event': 'promoted', 'variant': 'shadow', 'at_ns': 5}]
    """

    def __init__(self, registry_root: Path | str):
        self.root = Path(registry_root)

    def path(self, name: str, version: str) -> Path:
        for what, v in (("name", name), ("version", version)):
            if not isinstance(v, str) or not _NAME.match(v) or v in (".", ".."):
                raise ModelError(f"model card log: model {what} {v!r} is not valid: use letters, digits, "
                                 "'.', '_', '+' or '-' (max 128, not starting with a separator)")
        return self.root / ".cards" / name / f"{version}.jsonl"

    def append(self, name: str, version: str, event: dict[str, Any]) -> None:
        """Append one event (a JSON-able dict of at most 1 MiB) and fsync it."""
        if not isinstance(event, dict):
            raise ModelError(f"model card log: an event is a dict, got {type(event).__name__}")
        try:
            line = orjson.dumps(event) + b"\n"
        except TypeError as exc:
            raise ModelError(f"model card log: the event for {name}@{version} is not JSON-able "
                             f"({exc})") from None
        if len(line) > MAX_EVENT_BYTES:
            raise ModelError(f"model card log: the event for {name}@{version} is {len(line)} bytes (at most "
                             f"{MAX_EVENT_BYTES}): leave bulky stats out")
        p = self.path(name, version)
        try:
            new_dir = not p.parent.is_dir()
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size:
                    with open(p, "rb") as f:
                        f.seek(size - 1)
                        if f.read(1) != b"\n":  # a torn last line: start on a new one
                            line = b"\n" + line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new_dir or size == 0:
                _fsync_dir(p.parent)
        except OSError as exc:
            raise ModelError(f"model card log: cannot append to {p}: {exc.strerror or exc}") from None

    def events(self, name: str, version: str) -> list[dict[str, Any]]:
        """Every event of ``name@version``, oldest first ([] if none); lines that are not JSON objects (a
        torn write) are skipped."""
        p = self.path(name, version)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ModelError(f"model card log: cannot read {p}: {exc.strerror or exc}") from None
        out = []
        for line in raw.splitlines():
            try:
                e = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(e, dict):
                out.append(e)
        return out


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory: the file itself is synced
        log.debug("model card log: cannot fsync %s: %s", d, exc)
    finally:
        os.close(fd)
