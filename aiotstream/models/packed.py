"""Large state arrays in a pickle without the part they have not used yet, bit for bit the same on load.

A detector allocates its rings whole (``spot_window`` values per test and channel, a drift watch's
``reference + recent`` rows) and fills them as rows arrive: a young asset's snapshot was mostly the fill
value (zeros, NaN), written again at every epoch. :func:`pack` cuts an array's trailing rows (``axis=0``)
or columns (``axis=1``) whose every value has the fill value's bits; :func:`unpack` puts them back. Both
decide by bits, not by value, so what comes back is the same array whatever it held (a -0.0 is not a
0.0, a NaN with another payload is not the fill), and a full ring pickles as before. An array that
arrives already whole (a snapshot from before, or one with nothing to cut) passes through :func:`unpack`
unchanged.

>>> a = np.zeros((6, 2)); a[:2] = [[1.0, 2.0], [3.0, -0.0]]
>>> p = pack(a, 0.0)
>>> p.head.shape, np.array_equal(unpack(p).view(np.uint64), a.view(np.uint64))
((2, 2), True)
>>> b = np.full((2, 5), np.nan); b[:, 0] = 7.0
>>> pack(b, np.nan, axis=1).head.shape, pack(np.ones((3, 2)), 0.0).shape   # (nothing to cut: as is)
((2, 1), (3, 2))
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np


class Packed(NamedTuple):
    """A float64 array without its trailing fill: its ``shape``, the fill's bits (``fill_bits``, as an
    unsigned 64-bit int), the ``axis`` cut and what is left of it (``head``)."""

    shape: tuple[int, ...]
    fill_bits: int
    axis: int
    head: np.ndarray


def _fill_bits(fill: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", fill))[0]


def pack(a: np.ndarray, fill: float, axis: int = 0) -> np.ndarray | Packed:
    """``a`` (2-d, C-contiguous, float64) as :class:`Packed` without its trailing rows (``axis=0``) or
    columns (``axis=1``) that hold ``fill``'s bits throughout; ``a`` itself when there is nothing to cut
    (or it is not such an array).

    The usual full ring is settled by its last value alone (it lies in the last row and the last column);
    only a ring whose last value is the fill is searched."""
    if a.ndim != 2 or a.dtype != np.float64 or not a.flags.c_contiguous or a.size == 0:
        return a
    bits = a.view(np.uint64)
    fb = _fill_bits(fill)
    if bits.item(-1) != fb:
        return a
    last = bits[-1] if axis == 0 else bits[:, -1]
    if (last != fb).any():
        return a
    used = np.flatnonzero(bits != fb)  # (flat, C order: a row's values are together)
    if not used.size:
        k = 0
    else:
        k = int(used[-1]) // a.shape[1] + 1 if axis == 0 else int((used % a.shape[1]).max()) + 1
    head = a[:k] if axis == 0 else a[:, :k]
    return Packed(a.shape, fb, axis, head)


def unpack(p: np.ndarray | Packed) -> np.ndarray:
    """The array :func:`pack` was given (a new, writable, C-contiguous array); an array as it is."""
    if not isinstance(p, Packed):
        return p
    out = np.full(p.shape, p.fill_bits, np.uint64).view(np.float64)
    k = p.head.shape[p.axis]
    if p.axis == 0:
        out[:k] = p.head
    else:
        out[:, :k] = p.head
    return out
