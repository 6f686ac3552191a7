"""sinkguard.problem (every output goes through it) against the path-building version it replaced: the same
first bad number and the same path, on any nesting of dicts, lists and tuples; both its paths (the kernel
``_kernels.bad_number`` and its Python twin)."""
from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotstream.io.sinkguard import problem

_INT64 = (-(1 << 63), (1 << 64) - 1)


def reference(obj: Any, path: str = "") -> tuple[str, str] | None:
    """The implementation before the fast path, kept as the specification."""
    t = type(obj)
    if t is float:
        return None if math.isfinite(obj) else (path, repr(obj))
    if t is dict:
        for k, v in obj.items():
            p = reference(v, f"{path}.{k}" if path else str(k))
            if p is not None:
                return p
        return None
    if t is list or t is tuple:
        for i, v in enumerate(obj):
            p = reference(v, f"{path}[{i}]")
            if p is not None:
                return p
        return None
    if t is int:
        return None if _INT64[0] <= obj <= _INT64[1] else (path, str(obj))
    return None


scalars = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.floats(),
                    st.integers(min_value=-(1 << 70), max_value=1 << 70))
keys = st.one_of(st.text(max_size=3), st.integers(-3, 3))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


@given(values)
def test_problem_finds_what_the_reference_finds(obj: Any) -> None:
    assert problem(obj) == reference(obj)
    assert problem(obj, compiled=False) == reference(obj)


@pytest.mark.parametrize("compiled", [True, False])
def test_problem_paths(compiled: bool) -> None:
    assert problem({"a": [1.0, {"b": float("inf")}]}, compiled=compiled) == ("a[1].b", "inf")
    assert problem([0, [float("nan")]], compiled=compiled) == ("[1][0]", "nan")
    assert problem({1: {"x": -float("inf")}}, compiled=compiled) == ("1.x", "-inf")
    assert problem({"v": (1, 1 << 64)}, compiled=compiled) == ("v[1]", str(1 << 64))
    assert problem({"n": -(1 << 63) - 1}, compiled=compiled) == ("n", str(-(1 << 63) - 1))
    assert problem({"ok": [1, 2.5, None, True, "s", (1 << 64) - 1, -(1 << 63)]}, compiled=compiled) is None
    assert problem(float("nan"), compiled=compiled) == ("", "nan")


class Number(float):
    """A float subclass (as numpy's float64 is): neither path looks into it, as before."""


@pytest.mark.parametrize("compiled", [True, False])
def test_only_exact_types_are_searched(compiled: bool) -> None:
    assert problem({"x": Number("nan"), "b": [False, True]}, compiled=compiled) is None


@pytest.mark.parametrize("depth", [1, 63, 64, 65, 200])
def test_deep_nesting_past_the_kernel_s_depth_goes_on_in_python(depth: int) -> None:
    obj: Any = [float("inf")]
    for k in range(depth):
        obj = {"k": obj} if k % 2 else [0, obj]
    assert problem(obj) == problem(obj, compiled=False) == reference(obj)
    assert problem(obj)[1] == "inf"


# a record's long lists of one type (scores, times, flags), where the search checks the whole list at once
_floats = st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from((1e308, -1e308, 5e-324)),
                   min_size=5, max_size=40)
rows = st.one_of(
    _floats,
    st.tuples(_floats, st.integers(0, 39), st.sampled_from((math.nan, math.inf, -math.inf))).map(
        lambda x: x[0][:x[1]] + [x[2]] + x[0][x[1]:]),
    st.lists(st.integers(min_value=-(1 << 70), max_value=1 << 70), min_size=5, max_size=40),
    st.lists(st.integers(min_value=_INT64[0], max_value=_INT64[1]), min_size=5, max_size=40),
    st.lists(st.text(max_size=2), min_size=5, max_size=10),
)


@given(st.dictionaries(st.sampled_from(("row_score", "row_ts_ns", "row_alert", "n")), rows | scalars, max_size=4))
def test_problem_on_long_lists_of_one_type_finds_what_the_reference_finds(rec: dict) -> None:
    assert problem(rec) == reference(rec)
    assert problem(rec, compiled=False) == reference(rec)


@pytest.mark.parametrize("compiled", [True, False])
def test_finite_floats_whose_sum_overflows_are_fine_and_a_nan_among_them_is_found(compiled: bool) -> None:
    big = [1.7e308] * 6
    assert problem({"s": big}, compiled=compiled) is None
    assert problem({"s": big + [math.nan]}, compiled=compiled) == ("s[6]", "nan")
    assert problem({"t": [1] * 5 + [1 << 64]}, compiled=compiled) == ("t[5]", str(1 << 64))
    assert problem({"t": [-(1 << 63)] * 5 + [(1 << 64) - 1]}, compiled=compiled) is None


@pytest.mark.parametrize("compiled", [True, False])
def test_nesting_past_python_s_recursion_limit_raises_in_both_paths_and_never_crashes(compiled: bool) -> None:
    obj: Any = [float("inf")]
    for k in range(5_000):
        obj = {"k": obj} if k % 2 else [obj]
    with pytest.raises(RecursionError):  # (orjson refuses records nested past 255 levels anyway)
        problem(obj, compiled=compiled)
