"""A block's readings grouped by asset: :func:`aiotstream._kernels.group_columns` against its Python twin and
against a plain oracle (each key's items in index order, keys in order of first appearance)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.codecs.readings import group_columns


def _oracle(keys: list, take: list[int] | None, cols: tuple[list, ...]) -> dict:
    order = list(range(len(keys))) if take is None else take
    out: dict = {}
    for k in order:
        out.setdefault(keys[k], []).append(k)
    return {key: [[c[k] for k in ks] for c in cols] for key, ks in out.items()}


@st.composite
def _case(draw: st.DrawFn) -> tuple[list, list[int] | None, tuple[list, ...]]:
    n = draw(st.integers(0, 60))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", "", "é", "a-10"]), min_size=n, max_size=n))
    m = draw(st.integers(0, 5))
    cols = tuple([f"{j}:{k}" if j % 2 else (k * 10 + j) for k in range(n)] for j in range(m))
    take = draw(st.one_of(st.none(), st.lists(st.integers(0, max(n - 1, 0)), max_size=n).map(
        lambda t: t if n else [])))
    return keys, take, cols


@settings(max_examples=1_000, deadline=None)
@given(_case())
def test_the_kernel_its_twin_and_the_oracle_agree(case: tuple) -> None:
    keys, take, cols = case
    want = _oracle(keys, take, cols)
    got = group_columns(keys, take, cols)
    twin = group_columns(keys, take, cols, compiled=False)
    assert got == twin == want
    assert list(got) == list(want)  # keys in order of first appearance
    for lists in got.values():  # each key's columns are lists of their own
        assert all(type(c) is list for c in lists) and len({id(c) for c in lists}) == len(lists)


@pytest.mark.parametrize("compiled", [True, False])
def test_items_are_the_columns_own_objects_and_the_columns_are_untouched(compiled: bool) -> None:
    raws = [b"x" * 3, b"y" * 3, b"z" * 3]
    cols = ([1, 2, 3], raws)
    got = group_columns(["k", "j", "k"], None, cols, compiled=compiled)
    assert got["k"][1][0] is raws[0] and got["k"][1][1] is raws[2] and cols == ([1, 2, 3], raws)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize(("keys", "take", "cols"), [
    (["a", "b"], None, ([1],)),  # a column shorter than the keys
    (["a"], None, ((1,),)),  # a tuple, not a list
    (["a", "b"], [2], ([1, 2],)),  # an index past the end
    (["a", "b"], [-1], ([1, 2],)),  # a negative index
])
def test_a_bad_call_raises(keys: list, take: list | None, cols: tuple, compiled: bool) -> None:
    with pytest.raises(ValueError, match="group_columns"):
        group_columns(keys, take, cols, compiled=compiled)
