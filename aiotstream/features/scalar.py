"""Streaming statistics for 1 Hz-class scalar telemetry (the ``scalar-basic`` set).

:class:`ScalarState` keeps, per key (an asset's metric, a meter, ...), an
EWMA, a ring buffer of the last ``window`` values, the count, and the last
value and time, all in numpy arrays indexed by key. One call of
:meth:`ScalarState.update` applies a whole batch of ``(key, value, time)``
updates in the compiled kernel (:func:`aiotstream._kernels.scalar_update`,
GIL released) and returns one row of :data:`SCALAR_FEATURES` per update.

Semantics (the twin is :class:`aiotstream.features.reference.ScalarStateTwin`):

* Updates are applied **in batch order**; a key may occur several times in
  one batch, and output row ``i`` is that key's state right after update
  ``i``. Nothing is reordered by time.
* ``ewma``: the first value seeds it; then ``ewma += a * (value - ewma)``
  with a constant ``a = alpha``, or, with ``halflife_s``, the time-aware
  ``a = 1 - 2**(-dt / halflife_s)`` (``dt`` since the key's previous update;
  ``dt <= 0`` gives ``a = 0``).
* ``mean``, ``std`` (population), ``min``, ``max``: over the last
  ``min(count, window)`` values (a count window, recomputed exactly from the
  ring, O(window) per update, two-pass; a constant window gives std 0 and
  mean equal to the value exactly).
* ``roc``: ``(value - previous value) / dt`` per second; NaN for a key's
  first update and when ``dt <= 0`` (duplicate or out-of-order time).
* A NaN or Inf value is not applied: the state is unchanged and its output
  row is all NaN.

Tolerance against the twin: ``rtol = 1e-12`` (same formulas, different
summation order only).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from aiotstream._kernels import SCALAR_COLUMNS, scalar_update
from aiotstream.features.sets import SCALAR_FEATURES

__all__ = ["ScalarState"]

assert SCALAR_COLUMNS == SCALAR_FEATURES


class ScalarState:
    """Per-key EWMA, rolling window statistics and rate of change, in arrays.

    ``window`` is the ring-buffer length (values); give exactly one of
    ``alpha`` (0 < alpha <= 1, per update) or ``halflife_s`` (> 0, per
    second of event time). Keys are strings mapped to dense indices by
    :meth:`index`; the arrays grow as new keys appear. Instances pickle
    (Bytewax snapshots).

    >>> st = ScalarState(window=3, alpha=0.5)
    >>> idx = st.index(["kW", "kW", "kW", "kW"])
    >>> out = st.update(idx, [1.0, 2.0, 3.0, 10.0], [0, 10**9, 2 * 10**9, 4 * 10**9])
    >>> out[:, 0].tolist()   # ewma
    [1.0, 1.5, 2.25, 6.125]
    >>> out[3, 1:].tolist()  # mean, std, min, max of [2, 3, 10]; roc = (10 - 3) / 2 s
    [5.0, 3.559026084010437, 2.0, 10.0, 3.5]
    """

    __slots__ = ("alpha", "count", "ewma", "halflife_ns", "head", "keys", "last_ts_ns", "last_value", "ring",
                 "window")

    def __init__(self, window: int, *, alpha: float | None = None, halflife_s: float | None = None,
                 capacity: int = 16) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"ScalarState: window must be an int >= 1; got {window!r}")
        if (alpha is None) == (halflife_s is None):
            raise ValueError("ScalarState: give exactly one of alpha (per update) or halflife_s (per second)")
        if alpha is not None and not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"ScalarState: alpha must be in (0, 1]; got {alpha!r}")
        if halflife_s is not None and not (float(halflife_s) > 0.0 and np.isfinite(halflife_s)):
            raise ValueError(f"ScalarState: halflife_s must be finite and > 0; got {halflife_s!r}")
        self.window = int(window)
        self.alpha = float(alpha) if alpha is not None else 0.0
        self.halflife_ns = float(halflife_s) * 1e9 if halflife_s is not None else 0.0
        self.keys: dict[str, int] = {}
        cap = max(1, int(capacity))
        self.ewma = np.zeros(cap)
        self.ring = np.zeros((cap, self.window))
        self.head = np.zeros(cap, dtype=np.int64)
        self.count = np.zeros(cap, dtype=np.int64)
        self.last_value = np.zeros(cap)
        self.last_ts_ns = np.zeros(cap, dtype=np.int64)

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def n_keys(self) -> int:
        return len(self.keys)

    def _grow(self, needed: int) -> None:
        cap = self.ewma.shape[0]
        if needed <= cap:
            return
        new = max(needed, 2 * cap)
        for name in ("ewma", "head", "count", "last_value", "last_ts_ns"):
            old = getattr(self, name)
            arr = np.zeros(new, dtype=old.dtype)
            arr[:cap] = old
            setattr(self, name, arr)
        ring = np.zeros((new, self.window))
        ring[:cap] = self.ring
        self.ring = ring

    def index(self, keys: Iterable[str]) -> np.ndarray:
        """Dense indices of ``keys`` (new keys get the next free index), as an ``intp`` array."""
        table = self.keys
        out = [table.setdefault(k, len(table)) for k in keys]
        self._grow(len(table))
        return np.asarray(out, dtype=np.intp)

    def update(self, idx: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray,
               ts_ns: Sequence[int] | np.ndarray) -> np.ndarray:
        """Apply updates ``(idx[i], values[i], ts_ns[i])`` in order; return ``(M, 6)`` float64 rows.

        Columns :data:`SCALAR_FEATURES`: ewma, mean, std, min, max, roc.
        ``idx`` are indices from :meth:`index`; ``ts_ns`` event times in ns.
        """
        ix = np.ascontiguousarray(idx, dtype=np.intp)
        vals = np.ascontiguousarray(values, dtype=np.float64)
        ts = np.ascontiguousarray(ts_ns, dtype=np.int64)
        if ix.ndim != 1 or vals.shape != ix.shape or ts.shape != ix.shape:
            raise ValueError("ScalarState.update: idx, values and ts_ns must be 1-D of one length; got "
                             f"{ix.shape}, {vals.shape}, {ts.shape}")
        if ix.size and (ix.min() < 0 or ix.max() >= len(self.keys)):
            raise ValueError(f"ScalarState.update: key indices must be in [0, {len(self.keys)}) (get them "
                             "from ScalarState.index)")
        return scalar_update(ix, vals, ts, self.ewma, self.ring, self.head, self.count, self.last_value,
                             self.last_ts_ns, self.alpha, self.halflife_ns)
