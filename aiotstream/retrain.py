"""The model loop: ``aiotstream retrain`` turns retrain requests into judged, promoted (or rolled back)
models.

One service per site (its own process, or a Kubernetes Job that runs until a loop ends with ``--once``). It
reads the site's output topics and acts only through the site's control topic, so the flow keeps one way in
and audits every step (docs/model-loop.md)::

    <site>.models  retrain_request (asset, drift point)       -> wait until the lake holds settle_s after it
                                                                 -> freeze a dataset (aiotstream.datasets)
                                                                 -> train a candidate on its healthy rows
                                                                 -> validation gate (the dataset's operator
                                                                    labels, else [model.onnx.gate])
                                                                 -> promote shadow            (control topic)
    <site>.scores  champion and candidate on the same windows -> sequential verdict (models.verdict)
                                                                 -> promote canary + the champion as shadow
                                                                 -> verdict again on the canary's assets
                                                                 -> promote champion / roll back
    <site>.alerts  operator labels                            -> a confirmed fault the candidate missed
                                                                 rolls it back

Every promotion it sends carries ``by`` (the service's principal) and a ``note`` with the reason and the
figures; the flow writes it to the hash-chained audit topic and to ``<site>.models``. Each step is also
appended to the candidate's model card log (:class:`aiotstream.models.card.CardLog`), which
``aiotstream model card`` and the console show.

:class:`ModelLoop` is the state machine: it takes records (:meth:`ModelLoop.observe`) and acts when asked
(:meth:`ModelLoop.step`); the Kafka plumbing is :func:`run_service`. Its state is a JSON file written after
every transition, so a restarted service resumes where it stopped (the judge too: repeated records are
dropped by id).
"""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aiotstream.config import SiteConfig
from aiotstream.errors import AiotError, ModelError
from aiotstream.units import S

log = logging.getLogger(__name__)

__all__ = ["LakeProgress", "LoopState", "ModelLoop", "candidate_version", "gate_candidate", "run_service"]

AUDIT_CHAIN = "service:retrain"
"""The chain of the service's own steps on ``<site>.audit`` (``model_loop.<step>``); the promotions it sends
are audited by the flow in the control partition's chain, as anybody's."""
MAX_REQUESTS_KEPT = 1_000  # ids of retrain requests already handled (repeats after a flow's resume)


def candidate_version(champion_version: str, dataset_id: str) -> str:
    """The candidate's version: the champion's base version, ``+`` the dataset id's first 12 characters, then
    the champion's family suffix (``-ae``, ``-int8``), so the same dataset gives the same version (a repeat
    finds it published) and the family stays the champion's.

    >>> candidate_version("1.0.0-ae", "3fa2c1d0e9b8a7f6")
    ('1.0.0+d3fa2c1d0e9b8', '1.0.0+d3fa2c1d0e9b8-ae')
    >>> candidate_version("2", "ab" * 8)
    ('2+dabababababab', '2+dabababababab')
    """
    base, sep, suffix = champion_version.partition("-")
    base = base.split("+", 1)[0]
    trained = f"{base}+d{dataset_id[:12]}"
    return trained, trained + (f"-{suffix}" if sep else "")


@dataclass(slots=True)
class LoopState:
    """What the service remembers across restarts (JSON)."""

    phase: str = "idle"  # idle, waiting (for the lake to settle), shadow, canary, approval
    champion: str = ""  # name@version deciding now (as the service last set or saw it)
    candidate: str | None = None
    dataset: str | None = None
    request: dict[str, Any] | None = None  # the retrain request being served
    settle_ns: int | None = None  # event time the lake must reach before the dataset is frozen
    since_ns: int | None = None  # the latest drift point seen while waiting: the dataset starts there
    judge: dict[str, Any] | None = None  # the verdict judge's snapshot
    cooldown_until: float = 0.0  # wall clock
    handled: list[str] = field(default_factory=list)  # retrain request ids acted on (bounded)
    audit_seq: int = -1  # the head of the service's audit chain (AUDIT_CHAIN)
    audit_prev: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)  # finished loops (bounded)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopState:
        known = set(cls.__slots__)  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in d.items() if k in known})


class ModelLoop:
    """The loop for one site (module docstring). ``send(msg)`` writes one control message (signing is the
    caller's); ``train(dataset_id, version) -> None`` trains and publishes ``version`` (and its family) on the
    dataset; ``gate(ref, dataset_id) -> GateResult | None``; ``make_dataset(start_ns, end_ns) -> (id, info)``;
    ``lake_end(asset) -> int | None``: the newest window end the lake holds for the asset."""

    def __init__(self, cfg: SiteConfig, *, send: Callable[[dict[str, Any]], None],
                 make_dataset: Callable[[int, int], tuple[str, dict[str, Any]]],
                 train: Callable[[str, str], None], gate: Callable[[str, str], Any],
                 lake_end: Callable[[], int | None], card: Callable[[str, dict[str, Any]], None],
                 principal: str = "model-loop", state_path: Path | None = None,
                 now: Callable[[], float] = time.time, candidate: str | None = None,
                 judge_factory: Callable[[Any, str, str], Any] | None = None,
                 audit: Callable[[dict[str, Any]], None] | None = None):
        from aiotstream.models.verdict import CanaryJudge, VerdictRule

        o = cfg.model.onnx
        if o is None or o.loop is None:
            raise AiotError(f"site {cfg.site.id}: aiotstream retrain needs [model.onnx.loop] (datasets = "
                            "\"<dir>\" at least) in the site config")
        self.cfg, self.loop = cfg, o.loop
        self.name = cfg.model.name
        self.send, self.make_dataset, self.train, self.gate = send, make_dataset, train, gate
        self.lake_end, self.card = lake_end, card
        self.judge_factory = judge_factory or CanaryJudge
        self.audit = audit
        self.principal, self.state_path, self.now = principal, state_path, now
        lp = o.loop
        self.rule = VerdictRule(alpha=lp.alpha, beta=lp.beta, worse_share=lp.worse_share,
                                min_pairs=lp.min_pairs, max_pairs=lp.max_pairs)
        self.state = self._load_state()
        if not self.state.champion:
            self.state.champion = f"{self.name}@{cfg.model.version}"
        self.judge: Any = None
        if self.state.judge is not None and self.state.candidate is not None:
            try:
                self.judge = self.judge_factory.restore(self.state.judge)  # type: ignore[attr-defined]
            except ModelError as exc:  # a damaged snapshot: judge afresh (the phase's pairs come again)
                log.warning("model loop: %s", exc)
                self.judge = self._new_judge()
        self.finished: deque[dict[str, Any]] = deque(self.state.history, maxlen=100)
        self.ended = 0  # loops ended by this process (the state file's history holds earlier ones too)
        if candidate is not None and self.state.phase == "idle":
            self._start_candidate(self.ref(candidate), dataset=None)

    # ---- state -------------------------------------------------------------------------------------------
    def ref(self, version: str) -> str:
        return version if "@" in version else f"{self.name}@{version}"

    def _load_state(self) -> LoopState:
        p = self.state_path
        if p is None or not p.exists():
            return LoopState()
        try:
            return LoopState.from_dict(orjson.loads(p.read_bytes()))
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise AiotError(f"--state {p}: not a model loop state file ({exc}); move it away to start "
                            "afresh") from None

    def save(self) -> None:
        if self.state_path is None:
            return
        if self.judge is not None:
            self.state.judge = self.judge.snapshot()
        self.state.history = list(self.finished)
        tmp = self.state_path.with_suffix(self.state_path.suffix + ".tmp")
        tmp.write_bytes(orjson.dumps(self.state.to_dict(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.state_path)

    def _new_judge(self) -> Any:
        assert self.state.candidate is not None
        return self.judge_factory(self.rule, self.state.candidate, self.state.champion)

    def _event(self, ref: str | None, what: str, **detail: Any) -> dict[str, Any]:
        ev = {"event": what, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now())),
              "phase": self.state.phase, "champion": self.state.champion, "candidate": self.state.candidate,
              **detail}
        if ref is not None:
            self.card(ref, ev)
        if self.audit is not None:
            self._audit(what, ref, detail)
        why = f" ({detail['reason']})" if "reason" in detail else ""
        log.info("model loop: %s %s%s", what, ref or "", why)
        return ev

    def _audit(self, what: str, ref: str | None, detail: dict[str, Any]) -> None:
        """One entry of the service's hash chain (:mod:`aiotstream.audit`), its head kept in the state."""
        from aiotstream.audit import ChainHead, Event

        assert self.audit is not None
        st = self.state
        head = ChainHead(AUDIT_CHAIN, st.audit_seq, st.audit_prev)
        keep = {k: detail[k] for k in ("reason", "dataset", "decision", "fraction") if k in detail}
        if isinstance(keep.get("reason"), str):
            keep["reason"] = keep["reason"][:2000]
        gate = detail.get("gate")
        if isinstance(gate, dict):
            keep["gate"] = {k: gate.get(k) for k in ("passed", "metric", "value", "threshold")}
        entry = head.append(self.cfg.site.id, Event(self.principal, f"model_loop.{what}", None,
                                                    {"ref": ref, "champion": st.champion, **keep}))
        self.audit(entry)
        st.audit_seq, st.audit_prev = head.seq, head.prev
        self.save()  # the chain's head with the entry: a restart continues it, never forks it

    # ---- inputs ------------------------------------------------------------------------------------------
    def observe(self, kind: str, record: dict[str, Any]) -> None:
        """A record from the site's output topics (``model``, ``score``, ``alert``; others are ignored)."""
        if kind == "model":
            self._model_event(record)
        elif kind in ("score", "alert") and self.judge is not None \
                and self.state.phase in ("shadow", "canary"):
            self.judge.observe(record)

    def _model_event(self, rec: dict[str, Any]) -> None:
        st = self.state
        event = rec.get("event")
        if event == "retrain_request":
            rid = rec.get("id")
            if not isinstance(rid, str) or rid in st.handled:
                return
            st.handled = (st.handled + [rid])[-MAX_REQUESTS_KEPT:]
            wr = rec.get("window_range")
            end = wr[1] if isinstance(wr, list) and len(wr) == 2 and isinstance(wr[1], int) else None
            if st.phase == "waiting" and end is not None and st.settle_ns is not None:
                # still changing: wait for settle_s after this drift point too, and learn from after it
                st.settle_ns = max(st.settle_ns, end + round(self.loop.settle_s * S))
                st.since_ns = max(st.since_ns or end, end)
                log.info("model loop: drift again on %s (%s): waiting for the lake to reach %s",
                         rec.get("asset"), rec.get("reason"), st.settle_ns)
                self.save()
                return
            if st.phase != "idle":
                log.info("model loop: retrain request %s for %s noted, a loop is running (%s of %s)",
                         rid[:12], rec.get("asset"), st.phase, st.candidate or "a candidate")
                self.save()
                return
            if self.now() < st.cooldown_until:
                log.info("model loop: retrain request for %s in the cool-down (%.0f s left): not acted on",
                         rec.get("asset"), st.cooldown_until - self.now())
                self.save()
                return
            if end is None:
                log.warning("model loop: retrain request %s has no window_range: ignored", rid[:12])
                return
            st.phase, st.request = "waiting", {k: rec.get(k) for k in ("id", "asset", "feature", "reason",
                                                                        "window_range", "ref")}
            st.settle_ns, st.since_ns = end + round(self.loop.settle_s * S), end
            log.info("model loop: retrain request for %s (%s); waiting for the lake to reach %s",
                     rec.get("asset"), rec.get("reason"), st.settle_ns)
            self.save()
        elif event in ("promoted", "refused") and st.candidate is not None:
            ref, variant = rec.get("ref"), rec.get("variant")
            if event == "refused" and ref == st.candidate:
                self._finish("rolled_back", f"the flow refused the {variant} promotion: {rec.get('reason')}")
            elif event == "promoted" and variant == "champion" and ref is not None:
                if st.phase == "approval" and ref == st.candidate:
                    st.champion = ref
                    self._finish("champion", f"promoted to champion by {rec.get('by') or 'a person'}")
                elif ref != st.candidate and st.phase in ("shadow", "canary", "approval"):
                    st.champion = ref  # someone else chose a champion: the loop's comparison is void
                    self._finish("superseded", f"{ref} was promoted to champion by {rec.get('by')} during "
                                               "the loop")

    # ---- acting ------------------------------------------------------------------------------------------
    def step(self) -> None:
        """Do what is due: freeze, train and gate once the lake has settled; act on verdicts."""
        st = self.state
        if st.phase == "waiting":
            end = self.lake_end()
            if end is None or st.settle_ns is None or end < st.settle_ns:
                return
            self._retrain()
        elif st.phase in ("shadow", "canary") and self.judge is not None:
            v = self.judge.verdict()
            if v.decision == "continue":
                return
            self._verdict(v)

    def _retrain(self) -> None:
        st = self.state
        assert st.settle_ns is not None and st.request is not None
        # the data after the last drift point (the new normal), at most lookback_s of it
        start = max(st.settle_ns - round(self.loop.lookback_s * S), st.since_ns or 0)
        try:
            dataset, info = self.make_dataset(start, st.settle_ns)
        except ModelError as exc:
            self._give_up(f"no dataset: {exc}")
            return
        champ_version = st.champion.partition("@")[2]
        trained, version = candidate_version(champ_version, dataset)
        ref = self.ref(version)
        try:
            self.train(dataset, trained)  # a version published before (the same dataset) is judged again
        except ModelError as exc:
            self._give_up(f"training on dataset {dataset} failed: {exc}")
            return
        st.dataset = dataset
        self._event(ref, "trained", dataset=dataset, request=st.request, rows=info.get("rows"),
                    reason=f"retrain request for {st.request.get('asset')}: {st.request.get('reason')}")
        self._start_candidate(ref, dataset=dataset)

    def _start_candidate(self, ref: str, *, dataset: str | None) -> None:
        st = self.state
        st.candidate, st.dataset = ref, dataset if dataset is not None else st.dataset
        g = self.gate(ref, dataset or "")
        if g is not None and not g.passed:
            self._event(ref, "gate_failed", gate=g.to_dict(), reason=g.reason)
            st.candidate = None
            self._give_up(f"{ref} failed the validation gate: {g.reason}")
            return
        gate_text = "no gate" if g is None else f"gate {g.reason}"
        st.phase = "shadow"
        self.judge = self._new_judge()
        self._promote(ref, "shadow", f"model loop: {ref} scores beside {st.champion} ({gate_text}; dataset "
                                     f"{dataset or 'given'})")
        self._event(ref, "shadow", gate=None if g is None else g.to_dict(), reason=gate_text)
        self.save()

    def _verdict(self, v: Any) -> None:
        st = self.state
        ref = st.candidate
        assert ref is not None
        self._event(ref, "verdict", decision=v.decision, reason=v.reason, stats=v.stats)
        if v.decision == "rollback":
            self._roll_back(f"{st.phase} verdict: {v.reason}")
            return
        if st.phase == "shadow":
            frac = self.loop.canary_fraction
            st.phase = "canary"
            self.judge = self._new_judge()
            self._promote(st.champion, "shadow", f"model loop: {st.champion} scores beside its canary {ref}")
            self._promote(ref, "canary", f"model loop: canary for {frac:g} of the assets after the shadow "
                                         f"verdict: {v.reason}", fraction=frac)
            self._event(ref, "canary", fraction=frac, reason=v.reason)
            self.save()
            return
        # a passing canary
        if self.loop.approval == "required":
            st.phase = "approval"
            self.judge = None
            self._event(ref, "approval_needed", reason=f"canary verdict: {v.reason}; promote {ref} as "
                                                       "champion to finish (approval = \"required\")")
            self.save()
            return
        self._promote(ref, "champion", f"model loop: canary verdict: {v.reason}")
        self._promote(None, "shadow", "model loop: canary finished")
        st.champion = ref
        self._finish("champion", f"promoted automatically after the canary verdict: {v.reason}")

    def _roll_back(self, reason: str) -> None:
        st = self.state
        if st.phase == "canary":  # every asset back to the champion (not the config's: it may be older)
            self._promote(st.champion, "champion", f"model loop: rolled back {st.candidate}: {reason}")
        self._promote(None, "shadow", f"model loop: rolled back {st.candidate}")
        self._finish("rolled_back", reason)

    def _give_up(self, reason: str) -> None:
        log.warning("model loop: %s", reason)
        self._finish("failed", reason)

    def _finish(self, outcome: str, reason: str) -> None:
        st = self.state
        ev = self._event(st.candidate, outcome, reason=reason, dataset=st.dataset, request=st.request)
        self.finished.append(ev)
        self.ended += 1
        st.phase, st.candidate, st.request, st.judge = "idle", None, None, None
        st.settle_ns = st.since_ns = None
        self.judge = None
        st.cooldown_until = self.now() + self.loop.cooldown_s
        self.save()

    def _promote(self, ref: str | None, variant: str, note: str, fraction: float | None = None) -> None:
        msg: dict[str, Any] = {"type": "promote", "variant": variant, "by": self.principal,
                               "note": note[:4096]}
        if ref is not None:
            name, _, version = ref.partition("@")
            msg["model"], msg["version"] = name, version
        else:
            msg["version"] = None
        if fraction is not None:
            msg["fraction"] = fraction
        self.send(msg)

    @property
    def done(self) -> bool:
        """A loop has ended since this process started (``--once``; the state file's history does not
        count)."""
        return self.ended > 0 and self.state.phase == "idle"


# ---- the lake, datasets, training and the gate (what run_service plugs in) ----------------------------
class LakeProgress:
    """The newest ``window_end_ns`` among the lake's score files of a site. The sink's files are immutable
    once in place (written to ``.tmp``, then renamed), so each file is read once and its maximum kept; only
    the two newest date partitions are looked at (the lake is written in event-time order per asset).

    >>> import tempfile
    >>> LakeProgress(tempfile.mkdtemp(), "s")() is None
    True
    """

    def __init__(self, lake: Path | str, site: str):
        self.root = Path(lake) / "score" / f"site={site}"
        self.seen: dict[Path, int | None] = {}

    def __call__(self) -> int | None:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if not self.root.is_dir():
            return None
        dates = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("date="))[-2:]
        best: int | None = None
        for d in dates:
            for f in d.glob("part-*.parquet"):
                if f not in self.seen:
                    try:
                        self.seen[f] = pc.max(pq.read_table(f, columns=["window_end_ns"]).column(0)).as_py()
                    except (OSError, ValueError, KeyError):
                        continue  # not readable now (removed by a prune, or not the sink's): try again later
                m = self.seen[f]
                if m is not None:
                    best = m if best is None else max(best, m)
        return best


def run_service(cfg: SiteConfig, *, brokers: str, registry: Any,
                signer: Callable[[dict[str, Any]], dict[str, Any]], principal: str, signing_key: Any = None,
                hmac_key: bytes | None = None, state_path: Path | None = None, candidate: str | None = None,
                once: bool = False, stop: Callable[[], bool] = lambda: False,
                poll_s: float = 0.5, broker_wait_s: float | None = None) -> ModelLoop:
    """Run the loop against the site's topics until ``stop()`` (or, with ``once``, until a loop ends)."""
    from aiotstream.datasets import DatasetStore
    from aiotstream.io.kafka import BROKER_WAIT_S, ensure_topics, make_producer, output_topics
    from aiotstream.models.card import CardLog
    from aiotstream.pdm.training import train_from_dataset

    o = cfg.model.onnx
    assert o is not None and o.loop is not None
    lp = o.loop
    lake = Path(lp.lake if lp.lake is not None else cfg.outputs.parquet.directory)  # type: ignore[union-attr]
    store = DatasetStore(lp.datasets)
    cards = CardLog(registry.root)
    control = cfg.control_topics()[0]
    topics = output_topics(cfg)
    wanted = {topics["model"]: "model", topics["score"]: "score", topics["alert"]: "alert"}
    security = cfg.inputs.kafka
    # a broker must answer (AiotError naming it otherwise); the topics may not exist before the flow runs
    ensure_topics(brokers, [control, *wanted, topics["audit"]], partitions=cfg.outputs.partitions,
                  wait_s=BROKER_WAIT_S if broker_wait_s is None else broker_wait_s, security=security)
    producer = make_producer(brokers, security)

    def send(msg: dict[str, Any]) -> None:
        producer.produce(control, orjson.dumps(signer(msg)), key=cfg.model.name.encode())
        if producer.flush(30) != 0:
            raise AiotError(f"could not deliver a promotion to {control} within 30 s (is the broker up?)")

    def make_dataset(start_ns: int, end_ns: int) -> tuple[str, dict[str, Any]]:
        m = store.create(lake, site=cfg.site.id, start_ns=start_ns, end_ns=end_ns,
                         note="model loop: retrain request")
        d = m.to_dict()
        return m.id, {"rows": d.get("rows")}

    def train(dataset_id: str, version: str) -> None:
        if version in registry.versions(cfg.model.name):
            return  # trained on this dataset before (a restart between training and shadow): judge it
        train_from_dataset(cfg, registry, store, dataset_id, cfg.model.name, version, signing_key=signing_key,
                           hmac_key=hmac_key, unlabelled="healthy", min_rows=lp.min_rows)

    def gate(ref: str, dataset_id: str) -> Any:
        return gate_candidate(cfg, registry, store, ref, dataset_id or None)

    def card(ref: str, event: dict[str, Any]) -> None:
        name, _, version = ref.partition("@")
        cards.append(name, version, event)

    def audit(entry: dict[str, Any]) -> None:
        producer.produce(topics["audit"], orjson.dumps(entry), key=AUDIT_CHAIN.encode())
        producer.poll(0)

    loop = ModelLoop(cfg, send=send, make_dataset=make_dataset, train=train, gate=gate, audit=audit,
                     lake_end=LakeProgress(lake, cfg.site.id), card=card, principal=principal,
                     state_path=state_path, candidate=candidate)
    consumer = _consumer(brokers, f"aiotstream-retrain-{cfg.site.id}", list(wanted), security)
    try:
        while not stop() and not (once and loop.done):
            msgs = consumer.consume(1000, poll_s)
            for m in msgs:
                if m.error() is not None:
                    continue
                try:
                    rec = orjson.loads(m.value() or b"null")
                except orjson.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    loop.observe(wanted.get(m.topic() or "", ""), rec)
            loop.step()
            if msgs:
                loop.save()
    finally:
        consumer.close()
        producer.flush(10)
    return loop


def _consumer(brokers: str, group: str, topics: list[str], security: Any = None) -> Any:
    """A consumer group member (the service's offsets survive a restart; repeats are dropped by id)."""
    from confluent_kafka import Consumer

    from aiotstream.io.kafka_client import client_config

    c = Consumer({**client_config(brokers, security), "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": True, "fetch.wait.max.ms": 100})
    c.subscribe(topics)
    return c


def gate_candidate(cfg: SiteConfig, registry: Any, store: Any, ref: str, dataset_id: str | None) -> Any:
    """The validation gate for ``ref``: on the dataset's operator labels when it holds at least
    :data:`MIN_LABELLED` confirmed faults and as many healthy windows, else on the site's
    ``[model.onnx.gate]`` held-out set (simulated faults); None when neither is there (no gate: the canary
    alone judges)."""
    from aiotstream.models.gate import validate
    from aiotstream.models.onnx_model import OnnxModel
    from aiotstream.pdm.training import dataset_columns, held_out, training_config

    o = cfg.model.onnx
    assert o is not None
    g = o.gate
    name, _, version = ref.partition("@")
    model = OnnxModel.from_artifact(registry.load(name, version))
    X = y = None
    if dataset_id:
        columns = dataset_columns(training_config(cfg))  # the columns train_from_dataset used
        rows, labels = store.rows(dataset_id, columns, labels="all")
        if int((labels == 1).sum()) >= MIN_LABELLED and int((labels == 0).sum()) >= MIN_LABELLED:
            keep = labels >= 0
            X, y = rows.X[keep], labels[keep]
    if X is None and g is not None:
        X, y = held_out(cfg)()
    if X is None or y is None:
        return None
    return validate(model, X, y, metric=g.metric if g is not None else "auc",
                    threshold=g.threshold if g is not None else 0.8)


MIN_LABELLED = 5
"""Confirmed faults (and healthy windows) a dataset needs before its operator labels are the gate's set."""
