"""What the console knows: the site's output topics folded into the latest state, in bounded memory.

:class:`ConsoleState` takes every output record (``fold(kind, record)``, ``kind`` as in
:func:`aiotstream.io.kafka.output_topics`: alert, command, kpi, score, deadletter, model) and keeps

* the latest event of every alert (open and acknowledged ones first; the oldest cleared ones are forgotten
  past ``max_alerts``), so the open-alerts table is ``status != "cleared"``;
* the latest state of every command (pending = ``awaiting_approval``), bounded the same way;
* per asset the model versions scoring it (champion or canary, and the shadow) and, per version, a histogram
  of its scores (``BINS`` bins over [0, 1]); the model lifecycle events (promoted, refused, retrain requests);
* per scope, entity and period scheme the latest ``kpi_history`` periods (the highest revision of each);
* dead letters counted by reason, and the latest few;
* per asset the newest event time seen (its clock, as far as the outputs tell), which actions use as their
  ``ts`` so the flow applies them at once (see :mod:`aiotstream.console.actions`).

Records are folded in topic order; one asset's records share a partition (the key is the asset), so its
events arrive in order. Thread-safe: a consumer thread folds while the web server reads :meth:`snapshot`-style
copies under the lock.

>>> s = ConsoleState()
>>> s.fold("alert", {"alert_id": "a1", "event": "opened", "status": "open", "asset": "p1", "at_ns": 5})
>>> [a["alert_id"] for a in s.open_alerts()]
['a1']
>>> s.fold("alert", {"alert_id": "a1", "event": "cleared", "status": "cleared", "asset": "p1", "at_ns": 9})
>>> s.open_alerts(), s.clock("p1")
([], 9)
"""
from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

BINS = 20
"""Score histogram bins over [0, 1]."""
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
KPI_SERIES = ("oee", "mttr_s", "mtbf_s", "energy_kwh")
LINEAGE = ("id", "inputs", "window", "features", "model", "config_hash", "code_version", "flow",
           "flow_version", "produced_at")


def _bin(score: float) -> int:
    """The histogram bin of a score in [0, 1] (1.0 in the last bin).

    >>> _bin(0.0), _bin(0.999), _bin(1.0), _bin(-3), _bin(7)
    (0, 19, 19, 0, 19)
    """
    return min(BINS - 1, max(0, int(score * BINS)))


@dataclass(slots=True)
class ModelSeen:
    """One model version as it scored one asset: how often, in which variant, and the score histogram."""

    ref: str
    variant: str
    windows: int = 0
    anomalous: int = 0
    last_at_ns: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * BINS)

    def add(self, score: float, anomalous: bool, at_ns: int) -> None:
        self.windows += 1
        self.anomalous += bool(anomalous)
        self.last_at_ns = max(self.last_at_ns, at_ns)
        self.hist[_bin(score)] += 1


@dataclass(slots=True)
class AssetModels:
    """The model versions of one asset: which decides now (``live``: champion or canary) and the shadow."""

    live: str | None = None
    live_variant: str | None = None
    shadow: str | None = None
    versions: dict[tuple[str, str], ModelSeen] = field(default_factory=dict)  # (ref, role) -> seen


def model_ref(block: Any) -> str | None:
    """``name@version`` of a lineage model block, or None.

    >>> model_ref({"name": "m", "version": "1.0", "variant": "champion"}), model_ref(None)
    ('m@1.0', None)
    """
    if not isinstance(block, dict) or not block.get("name"):
        return None
    return f"{block['name']}@{block.get('version', '')}"


def _event_ns(kind: str, rec: dict[str, Any]) -> int | None:
    """The record's event time on its asset's clock, if it has one."""
    if kind in ("alert", "command"):
        t = rec.get("at_ns")
    elif kind == "score":
        t = (rec.get("window") or {}).get("end_ns")
    elif kind == "kpi":
        t = (rec.get("period") or {}).get("end_ns")
    else:
        t = None
    return t if isinstance(t, int) else None


class ConsoleState:
    """The latest state of a site's alerts, commands, models, KPIs and dead letters (see the module doc)."""

    def __init__(self, max_alerts: int = 10_000, max_commands: int = 10_000, kpi_history: int = 96,
                 recent: int = 50, max_assets: int = 100_000):
        self.lock = threading.Lock()
        self.max_alerts = max_alerts
        self.max_commands = max_commands
        self.kpi_history = kpi_history
        self.max_assets = max_assets
        self.alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()  # alert_id -> latest record
        self.commands: OrderedDict[str, dict[str, Any]] = OrderedDict()  # command_id -> latest record
        self.models: dict[str, AssetModels] = {}
        self.model_events: deque[dict[str, Any]] = deque(maxlen=recent)
        self.champions: list[str] = []  # refs promoted to champion, oldest first (for a roll-back)
        self.kpis: dict[tuple[str, str, str], OrderedDict[int, dict[str, Any]]] = {}
        self.deadletters: Counter[str] = Counter()
        self.recent_deadletters: deque[dict[str, Any]] = deque(maxlen=recent)
        self.clocks: dict[str, int] = {}
        self.records = 0
        self.bad_records = 0

    # ---- folding ---------------------------------------------------------------------------------------
    def fold(self, kind: str, rec: Any) -> None:
        """Fold one output record in; one that is not a JSON object of its kind is counted and skipped."""
        with self.lock:
            self.records += 1
            if not isinstance(rec, dict):
                self.bad_records += 1
                return
            try:
                getattr(self, f"_fold_{kind}")(rec)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                self.bad_records += 1
                return
            asset, t = rec.get("asset"), _event_ns(kind, rec)
            if isinstance(asset, str) and t is not None and (asset in self.clocks
                                                              or len(self.clocks) < self.max_assets):
                self.clocks[asset] = max(self.clocks.get(asset, t), t)

    @staticmethod
    def _keep_latest(book: OrderedDict[str, dict[str, Any]], key: str, rec: dict[str, Any], limit: int,
                     closed: Any) -> None:
        """Replace ``key``'s record (moved to the end: newest last); past ``limit`` forget the oldest closed
        entries first, then the oldest of all."""
        book.pop(key, None)
        book[key] = rec
        while len(book) > limit:
            old = next((k for k, r in book.items() if closed(r)), None)
            book.pop(old if old is not None else next(iter(book)))

    def _fold_alert(self, rec: dict[str, Any]) -> None:
        aid = rec["alert_id"]
        # the views order alerts by severity and time: a record whose severity is not text or whose time is
        # not a number is bad here, not an exception in every later view
        if not isinstance(rec.get("severity"), (str, type(None))):
            raise TypeError("severity is not a string")
        int(rec.get("at_ns") or 0)
        prev = self.alerts.get(aid)
        if prev is not None and prev.get("status") == "cleared" and rec.get("event") != "labelled":
            return  # a replayed older event must not reopen a cleared alert
        # the lineage of the opening (the window and inputs that caused the alert) stays with the alert: later
        # events carry their own (an operator's feedback message, a timer)
        if rec.get("event") == "opened" or prev is None:
            rec["opened_lineage"] = {k: rec.get(k) for k in LINEAGE}
        else:
            rec["opened_lineage"] = prev.get("opened_lineage")
        self._keep_latest(self.alerts, aid, rec, self.max_alerts, lambda r: r.get("status") == "cleared")

    def _fold_command(self, rec: dict[str, Any]) -> None:
        int(rec.get("requested_at_ns") or 0)  # the pending view orders by it (as _fold_alert's at_ns)
        self._keep_latest(self.commands, rec["command_id"], rec, self.max_commands,
                          lambda r: r.get("status") != "awaiting_approval")

    def _fold_score(self, rec: dict[str, Any]) -> None:
        asset = rec["asset"]
        am = self.models.get(asset)
        if am is None:
            if len(self.models) >= self.max_assets:
                return
            am = self.models[asset] = AssetModels()
        t = int((rec.get("window") or {}).get("end_ns") or 0)
        block = rec.get("model")
        ref = model_ref(block) or "(built-in detector)"
        variant = (block or {}).get("variant") or "champion"
        am.live, am.live_variant = ref, variant
        self._seen(am, ref, variant).add(float(rec["score"]), bool(rec.get("anomalous")), t)
        shadow = rec.get("shadow")
        if isinstance(shadow, dict):
            sref = model_ref(shadow.get("model")) or "?"
            am.shadow = sref
            self._seen(am, sref, "shadow").add(float(shadow["score"]), bool(shadow.get("anomalous")), t)
        else:
            am.shadow = None

    @staticmethod
    def _seen(am: AssetModels, ref: str, role: str) -> ModelSeen:
        seen = am.versions.get((ref, role))
        if seen is None:
            if len(am.versions) >= 32:  # versions come and go over months: keep the latest 32 per asset
                del am.versions[min(am.versions, key=lambda k: am.versions[k].last_at_ns)]
            seen = am.versions[(ref, role)] = ModelSeen(ref, role)
        return seen

    def _fold_model(self, rec: dict[str, Any]) -> None:
        self.model_events.append(rec)
        if rec.get("event") == "promoted" and rec.get("variant") == "champion" and rec.get("ref"):
            self.champions.append(rec["ref"])
            del self.champions[:-32]

    def _fold_kpi(self, rec: dict[str, Any]) -> None:
        scope = rec["scope"]
        entity = rec.get("asset") if scope == "asset" else rec.get("line") if scope == "line" else "site"
        period = rec["period"]
        key = (scope, str(entity), str(period["scheme"]))
        hist = self.kpis.get(key)
        if hist is None:
            hist = self.kpis[key] = OrderedDict()
        start = int(period["start_ns"])
        old = hist.get(start)
        if old is not None and int(old.get("revision", 0)) > int(rec.get("revision", 0)):
            return  # keep the highest revision of a period
        hist[start] = rec
        if len(hist) > self.kpi_history:
            for k in sorted(hist)[:len(hist) - self.kpi_history]:
                del hist[k]

    def _fold_deadletter(self, rec: dict[str, Any]) -> None:
        self.deadletters[str(rec["reason"])] += 1
        keep = ("reason", "message", "asset", "source", "id")
        self.recent_deadletters.append({k: rec.get(k) for k in keep})

    # ---- views (copies, taken under the lock) ----------------------------------------------------------
    def open_alerts(self) -> list[dict[str, Any]]:
        """Open and acknowledged alerts: critical first, then the newest."""
        with self.lock:
            rows = [a for a in self.alerts.values() if a.get("status") != "cleared"]
        return sorted(rows, key=lambda a: (SEVERITY_ORDER.get(a.get("severity"), 9),
                                           -int(a.get("at_ns") or 0)))

    def recent_closed_alerts(self, n: int = 20) -> list[dict[str, Any]]:
        with self.lock:
            rows = [a for a in self.alerts.values() if a.get("status") == "cleared"]
        return rows[::-1][:n]

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.alerts.get(alert_id)

    def pending_commands(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = [c for c in self.commands.values() if c.get("status") == "awaiting_approval"]
        return sorted(rows, key=lambda c: int(c.get("requested_at_ns") or 0))

    def recent_commands(self, n: int = 30) -> list[dict[str, Any]]:
        with self.lock:
            rows = [c for c in self.commands.values() if c.get("status") != "awaiting_approval"]
        return rows[::-1][:n]

    def command(self, command_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.commands.get(command_id)

    def asset_models(self) -> dict[str, AssetModels]:
        with self.lock:
            return {a: AssetModels(m.live, m.live_variant, m.shadow,
                                   {k: ModelSeen(v.ref, v.variant, v.windows, v.anomalous, v.last_at_ns,
                                                 list(v.hist)) for k, v in m.versions.items()})
                    for a, m in sorted(self.models.items())}

    def previous_champion(self, initial: str | None = None) -> str | None:
        """The champion before the latest promotion to champion (what a roll-back promotes), if known;
        ``initial`` is the champion the site's config starts with (before any promotion on the topic)."""
        with self.lock:
            refs = ([initial] if initial else []) + list(self.champions)
        current = refs[-1] if refs else None
        for ref in reversed(refs[:-1]):
            if ref != current:
                return ref
        return None

    def kpi_keys(self) -> list[tuple[str, str, str]]:
        with self.lock:
            order = {"site": 0, "line": 1, "asset": 2}
            return sorted(self.kpis, key=lambda k: (order.get(k[0], 3), k[1], k[2]))

    def kpi_series(self, key: tuple[str, str, str]) -> list[dict[str, Any]]:
        """The kept periods of one (scope, entity, scheme), oldest first."""
        with self.lock:
            hist = self.kpis.get(key)
            return [hist[k] for k in sorted(hist)] if hist else []

    def deadletter_counts(self) -> list[tuple[str, int]]:
        with self.lock:
            return self.deadletters.most_common()

    def clock(self, asset: str) -> int | None:
        with self.lock:
            return self.clocks.get(asset)
