"""Half-Space Trees in flat arrays: River's algorithm, its scores to the bit, a hundredth of its memory.

River's ``anomaly.HalfSpaceTrees`` keeps every node of every tree as a Python object
(``PaddedBranch``: feature, threshold, two masses, a children list). With the detector's
defaults (25 trees of height 8: 12,775 nodes) that is about 3.8 MB per asset, the same
random trees copied into every asset: 380 GB for a plant of 100,000 assets.

Here the trees live once per process, as arrays shared by every asset with the same
columns and settings (:func:`structure`), and an asset keeps only its two masses per node,
in the smallest unsigned type that holds ``window_size`` (one byte each for the default
50): 25.5 KB per asset. The trees are River's own: :func:`structure` builds a River model
and reads its trees out in heap order (node ``i`` has children ``2i + 1`` and ``2i + 2``),
so the same seed gives the same splits as River. :class:`FlatHalfSpaceTrees` then walks
them as River's ``_walk_learn`` and ``_walk_score`` do: in compiled kernels
(``aiotstream._kernels.hst_score`` and ``hst_learn``: about 4 us to score and learn a row of the
defaults where River takes about 65), or in their numpy twin (``impl="numpy"``: one tree level
at a time across all trees). Its scores equal River's exactly: a tree's score is a sum of
integers (mass x 2^depth), exact in a double whatever the order (tests compare all three on
random and adversarial rows).

Differences from River, none of which the detector uses: a row is an array in column order,
not a dict, and every column must be present (River's missing-feature branch is not
needed: the detector fills NaN with the middle of the range before scoring).

>>> import numpy as np
>>> cols = ["a", "b"]
>>> m = FlatHalfSpaceTrees(cols, n_trees=3, height=4, window_size=5, seed=1)
>>> for v in np.linspace(0.4, 0.6, 10):
...     m.learn(np.array([v, v]))
>>> m.score(np.array([0.5, 0.5])) < m.score(np.array([0.02, 0.97]))
True
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiotstream._kernels import hst_learn, hst_score


@dataclass(frozen=True, eq=False)
class Trees:
    """The random trees, shared: ``feature`` and ``threshold`` of every internal node, ``(T, 2^h - 1)``."""

    feature: np.ndarray  # intp column index
    threshold: np.ndarray  # float64
    height: int

    def same(self, other: Trees) -> bool:
        return (self.height == other.height and np.array_equal(self.feature, other.feature)
                and np.array_equal(self.threshold, other.threshold))

    @property
    def n_nodes(self) -> int:
        return 2 ** (self.height + 1) - 1


_STRUCTURES: dict[tuple, Trees] = {}


def _heap_nodes(model: Any) -> Iterator[tuple[int, int, Any]]:
    """``(tree, heap index, node)`` of every node of a River ``HalfSpaceTrees`` whose trees are built."""
    inner = 2 ** int(model.height) - 1
    for t, root in enumerate(model.trees):
        todo = [(root, 0)]
        while todo:
            node, i = todo.pop()
            yield t, i, node
            if i < inner:
                todo += [(node.children[0], 2 * i + 1), (node.children[1], 2 * i + 2)]


def read_trees(model: Any, columns: list[str]) -> Trees:
    """The splits of a River ``HalfSpaceTrees`` whose trees are built, in heap order."""
    index = {c: i for i, c in enumerate(columns)}
    height = int(model.height)
    inner = 2 ** height - 1
    feature = np.zeros((len(model.trees), inner), np.intp)
    threshold = np.zeros((len(model.trees), inner), np.float64)
    for t, i, node in _heap_nodes(model):
        if i < inner:
            feature[t, i] = index[node.feature]
            threshold[t, i] = node.threshold
    return Trees(feature, threshold, height)


def read_masses(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(l_mass, r_mass)`` of every node of a River ``HalfSpaceTrees``, ``(T, 2^(h+1) - 1)``, heap order."""
    masses = np.zeros((2, len(model.trees), 2 ** (int(model.height) + 1) - 1), np.int64)
    for t, i, node in _heap_nodes(model):
        masses[0, t, i], masses[1, t, i] = node.l_mass, node.r_mass
    return masses[0], masses[1]


def structure(columns: list[str], n_trees: int, height: int, seed: int) -> Trees:
    """The trees River builds for these columns and seed (the same for every asset): built once a process.

    River builds them on the first ``learn_one``, from ``random.Random(seed)``, over the
    columns sorted by name, each in [0, 1]. ``window_size`` plays no part in the splits."""
    key = (tuple(columns), n_trees, height, seed)
    got = _STRUCTURES.get(key)
    if got is None:
        from river import anomaly  # here: River is slow to import and only building the trees needs it

        model = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, seed=seed)
        model.learn_one(dict.fromkeys(columns, 0.5))
        got = _STRUCTURES[key] = read_trees(model, list(columns))
    return got


def mass_dtype(window_size: int) -> type[np.unsignedinteger]:
    """The smallest unsigned type for a node's mass: never above ``window_size`` (the pivot resets it)."""
    for t in (np.uint8, np.uint16, np.uint32):  # the kernels' mass types
        if window_size <= np.iinfo(t).max:
            return t
    raise ValueError(f"window_size {window_size} is beyond the masses' largest type (uint32)")


class FlatHalfSpaceTrees:
    """One asset's Half-Space Trees: :func:`structure`'s shared trees and this asset's masses.

    ``learn`` and ``score`` are River's ``learn_one`` and ``score_one`` for a row given as an
    array in ``columns`` order. Pickles without the trees (they are rebuilt, once a process, from
    the columns, settings and seed).
    """

    __slots__ = (
        "_rows",
        "columns",
        "counter",
        "first_window",
        "height",
        "impl",
        "l_mass",
        "n_trees",
        "r_mass",
        "seed",
        "trees",
        "window_size",
    )

    def __init__(self, columns: list[str], n_trees: int = 10, height: int = 8, window_size: int = 250,
                 seed: int = 42, impl: str = "compiled"):
        if impl not in ("compiled", "numpy"):
            raise ValueError(f"impl must be 'compiled' or 'numpy', not {impl!r}")
        if n_trees < 1 or height < 1 or window_size < 1:
            raise ValueError(f"HalfSpaceTrees needs n_trees, height and window_size >= 1 (got {n_trees}, "
                             f"{height}, {window_size})")
        self.columns = list(columns)
        self.n_trees, self.height, self.window_size, self.seed = n_trees, height, window_size, seed
        self.impl = impl
        self.trees = structure(self.columns, n_trees, height, seed)
        n = self.trees.n_nodes
        self.l_mass = np.zeros((n_trees, n), mass_dtype(window_size))
        self.r_mass = np.zeros((n_trees, n), mass_dtype(window_size))
        self.counter = 0
        self.first_window = True
        self._rows = np.arange(n_trees)

    @classmethod
    def from_river(cls, model: Any, columns: list[str], impl: str = "compiled") -> FlatHalfSpaceTrees:
        """The same model, masses and window position as a River ``HalfSpaceTrees`` (a snapshot taken
        before this class existed resumes with it)."""
        new = cls(columns, int(model.n_trees), int(model.height), int(model.window_size), int(model.seed),
                  impl)
        if model.trees:
            if not read_trees(model, new.columns).same(new.trees):
                raise ValueError("the River model's trees differ from the ones its seed builds")
            lm, rm = read_masses(model)
            new.l_mass[:], new.r_mass[:] = lm, rm
        new.counter = int(model.counter)
        new.first_window = bool(model._first_window)
        return new

    def _check(self, x: np.ndarray) -> None:
        if x.shape != (len(self.columns),):  # the kernels index x without bounds checks
            raise ValueError(f"a row must have one value per column: shape ({len(self.columns)},), "
                             f"not {x.shape}")

    def path(self, x: np.ndarray) -> np.ndarray:
        """Every tree's root-to-leaf node indices for row ``x``: ``(T, height + 1)``, as River descends
        (left when ``x[feature] < threshold``, right otherwise, NaN included)."""
        feature, threshold = self.trees.feature, self.trees.threshold
        rows = self._rows
        out = np.empty((self.n_trees, self.height + 1), np.int64)
        node = np.zeros(self.n_trees, np.int64)
        out[:, 0] = 0
        for d in range(self.height):
            right = ~(x[feature[rows, node]] < threshold[rows, node])
            node = 2 * node + 1 + right
            out[:, d + 1] = node
        return out

    def learn(self, x: np.ndarray) -> None:
        """River's ``learn_one``: one more unit of mass along each tree's path; pivot after ``window_size``
        rows (the masses learnt become the reference, ``r_mass``)."""
        self._check(x)
        if self.impl == "compiled":
            hst_learn(self.trees.feature, self.trees.threshold, self.l_mass, x)
        else:
            p = self.path(x)
            self.l_mass[self._rows[:, None], p] += 1  # a path visits a node once: no repeated index in a tree
        self.counter += 1
        if self.counter == self.window_size:
            self.r_mass[:] = self.l_mass
            self.l_mass[:] = 0
            self.first_window = False
            self.counter = 0

    def score(self, x: np.ndarray) -> float:
        """River's ``score_one``: 1 - (sum over trees of the reference mass x 2^depth along the path, each
        tree stopping after the first node with less than a tenth of ``window_size``) / the largest sum."""
        self._check(x)
        if self.first_window:
            return 0.0
        top = self.n_trees * self.window_size * (2 ** (self.height + 1) - 1)
        if self.impl == "compiled":
            return 1.0 - hst_score(self.trees.feature, self.trees.threshold, self.r_mass, x,
                                   0.1 * self.window_size) / top
        p = self.path(x)
        r = self.r_mass[self._rows[:, None], p].astype(np.int64)
        # a node counts when every node above it on the path held at least the size limit
        ok = r >= 0.1 * self.window_size
        counts = np.ones_like(ok)
        counts[:, 1:] = np.logical_and.accumulate(ok[:, :-1], axis=1)
        total = int((r * counts * (1 << np.arange(self.height + 1))).sum())
        return 1.0 - total / top

    @property
    def nbytes(self) -> int:
        """This asset's own state in bytes (the shared trees left out)."""
        return int(self.l_mass.nbytes + self.r_mass.nbytes)

    def __getstate__(self) -> dict[str, Any]:
        return {"columns": self.columns, "settings": (self.n_trees, self.height, self.window_size, self.seed),
                "impl": self.impl,
                "l_mass": self.l_mass, "r_mass": self.r_mass, "counter": self.counter,
                "first_window": self.first_window}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.columns = state["columns"]
        self.n_trees, self.height, self.window_size, self.seed = state["settings"]
        self.impl = state["impl"]
        self.trees = structure(self.columns, self.n_trees, self.height, self.seed)
        self.l_mass, self.r_mass = state["l_mass"], state["r_mass"]
        self.counter, self.first_window = state["counter"], state["first_window"]
        self._rows = np.arange(self.n_trees)
