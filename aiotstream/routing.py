"""Where an asset's data lives in a cluster: the worker that owns its state, and the partition to produce it
to.

Bytewax sends a keyed step's item with key ``k`` to worker
``siphash13(k, 0xff) % W`` of a cluster of ``W`` workers (Rust's
``DefaultHasher``; :func:`worker_of`). Worker ``g`` is worker ``g % w`` of
process ``g // w`` when each of the ``n`` processes runs ``w`` workers.

An input partition is read by one worker, chosen by the source, and every
frame whose asset another process owns is pickled and sent to that process:
about 12 KB per frame with its raw payload (kept in case the frame arrives
late and must be dead-lettered whole). On a 2-core machine that cost most of
what a second process gains (see ``benchmarks/RESULTS.md``).

**Co-partitioning** removes the crossing without changing the keys: a
producer that puts asset ``a`` in partition :func:`partition_for` ``(a, P)``
(the same hash, modulo the partition count) and a cluster whose sources give
partition ``p`` to the process of worker ``p % W`` (:func:`reader_process`)
read every asset's data on the process whose worker owns it, whenever ``W``
divides ``P`` (among its own workers a process still lets Bytewax choose). The
keys, the state and the outputs are the same as with any partitioner (the
snapshots too: they are keyed by asset), so a producer or a cluster size that
does not fit only brings the crossing back.
aiotstream's own producers (``aiotstream simulate``, the benchmark
preloads) and replay files (``<name>-part<k>.<ext>``) use it; other
producers can call :func:`partition_for` and pass the partition explicitly.

>>> [worker_of(k, 2) for k in ("p-000001", "p-000004", "d-000001", "d-000002")]
[0, 1, 0, 1]
>>> p = partition_for("d-000002", 8)  # read by process 1 of 2, which owns d-000002
>>> p, reader_process(p, Placement(0, 2)), worker_of("d-000002", 2)
(5, 1, 1)
>>> # 2 x 2 workers: worker 1 of process 0
>>> reader_process(p, Placement(0, 2, workers=2)), worker_of("d-000002", 4)
(0, 1)
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from aiotstream.errors import AiotError

_MASK = (1 << 64) - 1


class Placement(NamedTuple):
    """This process's place in a cluster: process ``process`` of ``processes``, each with ``workers``
    workers."""

    process: int = 0
    processes: int = 1
    workers: int = 1

    @classmethod
    def of(cls, place: tuple[int, ...]) -> Placement:
        """From ``(i, n)`` or ``(i, n, w)``; AiotError if ``i`` is outside the cluster."""
        p = cls(*place)
        if not 0 <= p.process < p.processes or p.workers < 1:
            raise AiotError(f"process index {p.process} is outside a cluster of {p.processes} processes of "
                            f"{p.workers} worker(s)")
        return p

    @property
    def total_workers(self) -> int:
        return self.processes * self.workers


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 (64-bit), the algorithm behind Rust's ``DefaultHasher`` (keys 0, 0 for ``new()``)."""

    def rotl(x: int, b: int) -> int:
        return ((x << b) | (x >> (64 - b))) & _MASK

    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def rnd() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = rotl(v1, 13) ^ v0
        v0 = rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = rotl(v1, 17) ^ v2
        v2 = rotl(v2, 32)

    n = len(data)
    tail = n - n % 8
    for i in range(0, tail, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        rnd()
        v0 ^= m
    b = ((n & 0xFF) << 56) | int.from_bytes(data[tail:], "little")
    v3 ^= b
    rnd()
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(3):
        rnd()
    return v0 ^ v1 ^ v2 ^ v3


@lru_cache(maxsize=1 << 16)
def key_hash(key: str) -> int:
    """The hash Bytewax 0.21 routes a stateful step's ``key`` by: ``DefaultHasher`` over the string (its UTF-8
    bytes, then ``0xff``, as Rust hashes a ``str``); checked against a 2-worker run in the unit tests."""
    return siphash13(key.encode() + b"\xff")


def worker_of(key: str, workers: int) -> int:
    """The worker (of ``workers`` in the whole cluster) that holds ``key``'s state."""
    return key_hash(key) % workers


def partition_for(key: str, partitions: int) -> int:
    """The partition (of ``partitions``) a co-partitioning producer puts ``key``'s messages in."""
    return key_hash(key) % partitions


def reader_process(partition: int, place: Placement) -> int:
    """The process that reads ``partition`` of a topic whose partition count the cluster's workers divide:
    the process of worker ``partition % W``."""
    return (partition % place.total_workers) // place.workers


_PART_FILE = re.compile(r"-part(\d+)\.[^./\\]+$")


def file_partition(path: str) -> int | None:
    """The partition a replay file holds, from a name ``<name>-part<k>.<ext>`` (as ``aiotstream simulate
    --partitions`` writes them); None for other names.

    >>> file_partition("in/waveforms-part03.bin"), file_partition("day-3.jsonl")
    (3, None)
    """
    m = _PART_FILE.search(path)
    return int(m.group(1)) if m else None
