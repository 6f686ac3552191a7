"""Batched scoring across assets: rows wait in a per-worker batcher and are scored many per model call.

A window's feature row is *submitted* when the window closes; the rows of
every asset of one worker gather and are scored together, at most
``max_batch`` rows per call (:meth:`ScoreBatcher.flush_due`):

* as soon as ``max_batch`` rows wait;
* or when the oldest row's decisions would otherwise come later than
  ``max_delay_ms`` after it was submitted. The batcher measures what a call
  costs per row and what handing the scores to their windows (their
  decisions) costs per row, and flushes that much earlier for the rows
  waiting, so ``max_delay_ms`` bounds what batching adds to a window's
  latency, not only its time in the queue;
* or when a caller needs everything now (:meth:`ScoreBatcher.flush`, end of
  input, a silent asset).

Rows are grouped by the model that must score them, so a hot swap or a
canary simply means another group; a model is never changed in the middle of
a call. Each scored row's *owner* (its asset) is reported by
:meth:`ScoreBatcher.pop_ready`, so whichever asset of the worker runs next
hands the results to their windows at once (:class:`Lane`), instead of each
waiting for Bytewax to activate its own asset again.

The batcher holds no state that recovery needs: the windows waiting for a
score are part of their asset's state, and an asset resubmits them after a
resume (the batcher of the new process has never seen them). Scoring is a
pure function of the row and the model, so a replayed window gets the same
score.

>>> import numpy as np
>>> class Doubler:  # anything with ``score(rows) -> scores``
...     def score(self, rows): return rows[:, 0] * 2
>>> clock = [0.0]
>>> b = ScoreBatcher({"m@1": Doubler()}.__getitem__, max_batch=3, max_delay_ms=10, clock=lambda: clock[0])
>>> b.submit(("a", 1), "m@1", np.array([0.1]), owner="a")
>>> b.submit(("b", 1), "m@1", np.array([0.2]), owner="b")
>>> b.flush_due(), b.take(("a", 1))   # 2 rows, young: nothing scored yet
(0, None)
>>> clock[0] = 0.011                  # the oldest has waited 11 ms
>>> b.flush_due(), round(b.take(("a", 1)).score, 3), b.calls, sorted(b.pop_ready())
(2, 0.2, 1, ['a', 'b'])
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiotstream.config import SiteConfig
from aiotstream.errors import ModelError
from aiotstream.models.detector import BatchDetector
from aiotstream.runstats import STATS


@dataclass(frozen=True, slots=True)
class Scored:
    """One row's result: the score, the model that gave it, and what batching cost it."""

    score: float
    model: str
    wait_s: float
    """From submit to the end of the scoring call (what batching added, the call included)."""
    call_s: float
    """The batch's scoring time: stacking its rows and the model call (shared by the whole batch)."""
    batch_rows: int


class ScoreBatcher:
    """Collects rows from many assets; scores them per model, ``max_batch`` rows per call.

    ``models`` maps a model reference (e.g. ``"iforest@1.0.0"``) to a scorer;
    it is called at flush time, so the caller decides what is loaded. Each
    worker has its own (:meth:`ModelStore.lane`); it is thread safe all the same.
    """

    def __init__(self, models: Callable[[str], BatchDetector], *, max_batch: int = 512,
                 max_delay_ms: float = 50.0,
                 clock: Callable[[], float] = time.monotonic):
        if max_batch < 1:
            raise ModelError(f"max_batch must be at least 1, got {max_batch}")
        self.models = models
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.clock = clock
        self._lock = threading.RLock()
        self._pending: dict[str, list[tuple[Hashable, np.ndarray, float, Hashable]]] = {}
        self._oldest: float | None = None
        self._done: dict[Hashable, Scored] = {}
        self._ready: set[Hashable] = set()
        self.call_s_per_row = 0.0  # measured (moving average): a scoring call's time per row
        self.hand_s_per_row = 0.0  # measured by the caller (note_handover): handing a score to its window
        self.calls = 0  # model calls made
        self.rows = 0  # rows scored

    def submit(self, key: Hashable, model: str, row: np.ndarray, owner: Hashable = None) -> None:
        """Queue one row for ``model``; its result will be available under ``key``, and ``owner`` (if
        not None) reported by :meth:`pop_ready` once it is."""
        with self._lock:
            now = self.clock()
            self._pending.setdefault(model, []).append((key, row, now, owner))
            if self._oldest is None:
                self._oldest = now
            if len(self._pending[model]) >= self.max_batch:
                self._score(model)

    def take(self, key: Hashable) -> Scored | None:
        """The result for ``key`` if it has been scored (and forget it), else None."""
        with self._lock:
            return self._done.pop(key, None)

    def pop_ready(self) -> set[Hashable]:
        """The owners of the rows scored since the last call (each has results to :meth:`take`)."""
        with self._lock:
            ready, self._ready = self._ready, set()
            return ready

    def note_handover(self, seconds: float, rows: int) -> None:
        """The caller took ``seconds`` to hand ``rows`` scores to their windows (run their decisions)."""
        if rows > 0:
            self.hand_s_per_row += 0.2 * (seconds / rows - self.hand_s_per_row)

    def deadline(self) -> float | None:
        """When (on ``clock``) the waiting rows must be scored for the oldest to have its decisions within
        ``max_delay_ms``: its submission plus ``max_delay_ms``, less the measured cost of scoring and handing
        over the rows waiting (at most all of ``max_delay_ms``); None when none waits."""
        with self._lock:
            if self._oldest is None:
                return None
            waiting = sum(len(rows) for rows in self._pending.values())  # a group per model: few
            lead = waiting * (self.call_s_per_row + self.hand_s_per_row)
            return self._oldest + max(0.0, self.max_delay_s - lead)

    def flush_due(self, slack_s: float = 0.0) -> int:
        """Score everything if :meth:`deadline` has come (less ``slack_s``: a wake-up set for the deadline on
        another clock may come a hair early); the number of rows scored."""
        with self._lock:
            due = self.deadline()
            if due is None or self.clock() < due - slack_s:
                return 0
            return self.flush()

    def flush(self) -> int:
        """Score every waiting row now; the number of rows scored."""
        with self._lock:
            n = 0
            for model in list(self._pending):
                n += self._score(model)
            return n

    def _score(self, model: str) -> int:
        rows = self._pending.pop(model, [])
        if not rows:
            return 0
        scorer = self.models(model)
        n = 0
        for i in range(0, len(rows), self.max_batch):
            chunk = rows[i:i + self.max_batch]
            t0 = time.perf_counter()
            x = np.concatenate([r for _, r, _, _ in chunk]).reshape(len(chunk), -1)  # 3x np.stack's speed
            scores = np.asarray(scorer.score(x), dtype=np.float64)
            call = time.perf_counter() - t0
            name, _, version = model.partition("@")
            STATS.observe("inference_latency_seconds", call, (name, version))
            STATS.observe("batch_size", len(chunk), ("score",))
            self.call_s_per_row += 0.2 * (call / len(chunk) - self.call_s_per_row)
            if scores.shape != (len(chunk),):
                raise ModelError(f"model {model} returned scores of shape {scores.shape} for "
                                 f"{len(chunk)} rows")
            now = self.clock()
            for (key, _, t_in, owner), s in zip(chunk, scores.tolist()):
                self._done[key] = Scored(s, model, now - t_in, call, len(chunk))
                if owner is not None:
                    self._ready.add(owner)
            self.calls += 1
            self.rows += len(chunk)
            n += len(chunk)
        starts = [t for rs in self._pending.values() for _, _, t, _ in rs]
        self._oldest = min(starts) if starts else None
        return n


class Lane:
    """One worker's batcher, and the assets of that worker with windows waiting on it.

    The workers of a process are threads and a key always runs on the same
    worker, so one lane per thread keeps a batch's rows, and the assets they
    belong to, on one worker: after a flush, the asset that is running hands
    the scores to every waiting asset of its lane (``waiting``), which is safe
    because nothing else runs on that worker meanwhile.
    """

    def __init__(self, batcher: ScoreBatcher):
        self.batcher = batcher
        self.id = os.urandom(8).hex()  # rows submitted to another lane (process, worker) must be resubmitted
        self.waiting: dict[str, Any] = {}  # asset id -> its analyzer, while it has windows waiting


def hmac_key_of(onnx: Any) -> bytes | None:
    """The HMAC-SHA256 model key a site's ``[model.onnx]`` names (``hmac_key_env``), or None; ModelError when
    the variable is named but not set."""
    if not onnx.hmac_key_env:
        return None
    value = os.environ.get(onnx.hmac_key_env)
    if not value:
        raise ModelError(f"model.onnx.hmac_key_env names ${onnx.hmac_key_env}, which is not set")
    return value.encode()


def canary_share(asset: str) -> float:
    """Where an asset falls in [0, 1) for canary routing: a stable hash, so the same assets stay on the
    canary.

    >>> 0 <= canary_share("pump-1") < 1, canary_share("pump-1") == canary_share("pump-1")
    (True, True)
    """
    return int(hashlib.sha256(asset.encode()).hexdigest()[:8], 16) / 2**32


class ModelStore:
    """The ONNX models of one site in one process: loaded from the registry on first use, verified, cached.

    ``ref`` names a model as ``name@version``. Loading checks the artifact's
    hash and signature (:class:`~aiotstream.models.registry.ModelRegistry`)
    and that the model's feature names are the flow's columns; a refused
    artifact raises :class:`~aiotstream.errors.ModelRefused` and nothing
    changes. :meth:`gate` scores a candidate on the held-out labelled set of
    ``[model.onnx.gate]``, which ``labelled`` makes (once per process, on the first
    gate): the flow's builder passes a function that runs the simulator through
    the flow's own feature pipeline (:func:`aiotstream.pdm.training.held_out`),
    so this module imports nothing of the flow.
    """

    def __init__(self, config: SiteConfig, columns: list[str],
                 labelled: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None):
        from aiotstream.models.registry import ModelRegistry

        o = config.model.onnx
        assert o is not None
        self.config = config
        self.onnx = o
        self.name = config.model.name
        self.columns = list(columns)
        self.registry = ModelRegistry(o.registry, verify_key=o.verify_key, hmac_key=hmac_key_of(o),
                                      allow_unsigned=o.allow_unsigned)
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._labelled: tuple[np.ndarray, np.ndarray] | None = None
        self._make_labelled = labelled
        self._lanes = threading.local()

    def lane(self) -> Lane:
        """The calling worker's :class:`Lane` (made on first use)."""
        lane = getattr(self._lanes, "lane", None)
        if lane is None:
            o = self.onnx
            lane = self._lanes.lane = Lane(ScoreBatcher(self.get, max_batch=o.max_batch,
                                                        max_delay_ms=o.max_delay_ms))
        return lane

    @property
    def batcher(self) -> ScoreBatcher:
        """The calling worker's batcher."""
        return self.lane().batcher

    def ref(self, version: str) -> str:
        """``name@version`` for a version of this site's model (a full ``name@version`` is kept as it is)."""
        return version if "@" in version else f"{self.name}@{version}"

    def get(self, ref: str) -> Any:
        """The loaded model for ``ref`` (verified on first use)."""
        with self._lock:
            model = self._models.get(ref)
            if model is None:
                model = self._models[ref] = self._load(ref)
            return model

    def _load(self, ref: str) -> Any:
        from aiotstream.models.onnx_model import OnnxModel

        name, _, version = ref.partition("@")
        model = OnnxModel.from_artifact(self.registry.load(name, version), threads=self.onnx.threads)
        if list(model.feature_names) != self.columns:
            missing = [c for c in self.columns if c not in model.feature_names]
            extra = [c for c in model.feature_names if c not in self.columns]
            raise ModelError(f"model {ref} was trained on other feature columns than this flow computes "
                             f"(missing: {missing or 'none'}, unknown: {extra or 'none'}, or another order); "
                             "retrain it with `aiotstream train` on this site's config")
        return model

    def block(self, ref: str, variant: str) -> dict[str, Any]:
        """The lineage ``model`` block of a score given by ``ref``."""
        m = self.get(ref)
        return {"name": m.name, "version": m.version, "kind": "onnx", "variant": variant, "sha256": m.sha256}

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """The gate's held-out labelled windows (made once per process)."""
        with self._lock:
            if self._labelled is None:
                if self._make_labelled is None:
                    raise ModelError(f"site {self.config.site.id}: [model.onnx.gate] is set but this process "
                                     "was given no held-out set to run it on; build the flow with "
                                     "aiotstream.dataflow.build_flow (or pass labelled= to the "
                                     "site's runtime)")
                self._labelled = self._make_labelled()
            return self._labelled

    def gate(self, ref: str) -> Any:
        """Run the validation gate on ``ref``: a :class:`~aiotstream.models.gate.GateResult`, or None (no
        gate)."""
        from aiotstream.models.gate import validate

        g = self.onnx.gate
        if g is None:
            return None
        x, y = self.labelled()
        return validate(self.get(ref), x, y, metric=g.metric, threshold=g.threshold)
