"""A block's names to the flow's codes: :func:`aiotstream._kernels.dict_codes` against its Python twin and a
plain oracle (``table.get(key, -1)``), with runs of the same key object (the kernel's shortcut), equal keys
that are other objects, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.codecs.readings import dict_codes, plain_readings

_NAMES = ["a", "b", "z1", "", "é", "zone-0001", 7, (1, "x"), None]


@st.composite
def _case(draw: st.DrawFn) -> tuple[list, dict]:
    table = draw(st.dictionaries(st.sampled_from(_NAMES), st.one_of(st.integers(-(2**63), 2**63 - 1),
                                                                    st.booleans()), max_size=len(_NAMES)))
    picks = draw(st.lists(st.tuples(st.sampled_from(_NAMES), st.integers(1, 4), st.booleans()), max_size=30))
    keys: list = []
    for name, run, copy in picks:  # a run of one object, or of equal strs that are new objects each
        for _ in range(run):
            keys.append("".join(list(name)) if copy and isinstance(name, str) else name)
    return keys, table


@settings(max_examples=1_000, deadline=None)
@given(_case())
def test_the_kernel_its_twin_and_the_oracle_agree(case: tuple) -> None:
    keys, table = case
    want = [int(table.get(k, -1)) for k in keys]
    got = dict_codes(keys, table)
    twin = dict_codes(keys, table, compiled=False)
    assert got.dtype == twin.dtype == np.int64 and got.shape == (len(keys),)
    assert got.tolist() == twin.tolist() == want


def test_a_new_key_after_a_run_is_looked_up_again() -> None:
    keys = ["a"] * 3 + ["b"] + ["a"] + ["c", "c"]
    assert dict_codes(keys, {"a": 1, "b": 2}).tolist() == [1, 1, 1, 2, 1, -1, -1]
    assert dict_codes([None, "a"], {"a": 5}).tolist() == [-1, 5]  # None first: looked up, not taken as "before"
    assert dict_codes([None], {None: 3}).tolist() == [3]
    assert dict_codes([], {"a": 1}).tolist() == []


def test_the_block_parsers_names_are_coded_as_the_table_says() -> None:
    from aiotstream.codecs.readings import encode_reading

    raws = [encode_reading(a, 1, m, 1.0) for a in ("z1", "z2", "z9", "z1") for m in ("kw", "temp", "x")]
    cols = plain_readings(raws, 4096)
    assert cols is not None
    assert dict_codes(cols.assets, {"z1": 0, "z2": 1}).tolist() == [0] * 3 + [1] * 3 + [-1] * 3 + [0] * 3
    assert dict_codes(cols.metrics, {"kw": 0, "temp": 1}).tolist() == [0, 1, -1] * 4


@pytest.mark.parametrize("compiled", [True, False])
def test_refusals(compiled: bool) -> None:
    with pytest.raises(TypeError, match="unhashable"):
        dict_codes(["a", ["x"]], {"a": 1}, compiled)
    with pytest.raises(TypeError, match="'a' is a float"):
        dict_codes(["a"], {"a": 1.5}, compiled)
    with pytest.raises(TypeError, match="'a' is a str"):
        dict_codes(["b", "a"], {"a": "0", "b": 1}, compiled)
    with pytest.raises(OverflowError):
        dict_codes(["a"], {"a": 2**63}, compiled)
