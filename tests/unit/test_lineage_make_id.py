"""``make_id`` formats its parts with one ``%s`` format (no ``str`` call per part): the id must be the one
of before, ``sha256("\\x1f".join(map(str, parts)))``, for any number and kind of parts (str and its
subclasses, ints, floats, None, tuples, bytes)."""
from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.lineage import make_id


class S(str):
    def __str__(self) -> str:
        return "other"


_part = st.one_of(st.text(), st.integers(), st.floats(allow_nan=True), st.none(), st.binary(max_size=4),
                  st.tuples(st.integers(), st.text(max_size=3)), st.text(max_size=4).map(S))


@settings(max_examples=500, deadline=None)
@given(st.lists(_part, max_size=20))
def test_make_id_is_sha256_of_the_parts_str_joined(parts: list) -> None:
    want = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]
    assert make_id(*parts) == want
