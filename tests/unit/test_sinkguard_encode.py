"""sinkguard.encode's bytes: orjson's, in a bytes object of their own size (a sink holds a batch of them)."""
from __future__ import annotations

import gc
import tracemalloc

import orjson
from hypothesis import given
from hypothesis import strategies as st

from aiotstream.io.sinkguard import dumps, encode
from aiotstream.records import Output

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=10), kids, max_size=5),
    max_leaves=30)


@given(st.dictionaries(st.text(max_size=12), _JSON, max_size=8))
def test_encode_writes_orjsons_bytes(rec: dict) -> None:
    rec = {"schema": "aiotstream.score/1", "id": "0" * 32, "site": "s", **rec}
    got = encode(Output("score", "p1", rec))
    assert got is not None
    out, data = got
    assert out.record is rec and type(data) is bytes
    assert data == orjson.dumps(rec) == dumps(rec)


def test_a_batch_of_encoded_records_holds_their_size_not_orjsons_buffers() -> None:
    """orjson 3.12+ returns each record in a buffer of 4 KB or more that it never shrinks: 1,000 encoded
    records of about 300 bytes held 4 MB; their exact copies hold what they are (and a bytes object's
    header)."""
    recs = [{"schema": "aiotstream.score/1", "id": f"{i:032d}", "site": "plant-a", "asset": f"pump-{i:04d}",
             "ts": 1_700_000_000_000_000_000 + i, "score": i / 7, "alert": False,
             "inputs": [{"topic": "readings", "partition": 0, "offsets": [i, i + 1]}]} for i in range(1000)]
    outs = [Output("score", r["asset"], r) for r in recs]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        held = [encode(o) for o in outs]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    size = sum(len(d) for _, d in held)
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # each record: its bytes, a bytes header (33), the (out, data) tuple (56), the list's slot (8) and
    # the allocators' rounding
    assert grown < size + 150 * len(recs), (grown, size)
