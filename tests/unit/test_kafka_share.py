"""How a cluster's processes share the Kafka partitions (pure logic; the multi-process equivalence test runs it)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiotstream.io.kafka import ProcessShare, share_of
from aiotstream.routing import Placement, partition_for, worker_of


@given(st.lists(st.integers(1, 12), min_size=1, max_size=5), st.integers(1, 6), st.integers(1, 3))
def test_every_partition_has_exactly_one_reader_and_shares_are_even(counts: list[int], n: int, w: int) -> None:
    parts = [f"{p}-topic{t}" for t, c in enumerate(counts) for p in range(c)]
    shares = [share_of(parts, Placement(i, n, w)) for i in range(n)]
    read = [p for s in shares for p in s]
    assert sorted(read) == sorted(parts)  # no partition twice, none left out
    for t, c in enumerate(counts):  # within each topic, no process has more than one partition more than another
        sizes = [sum(1 for p in s if p.endswith(f"-topic{t}")) for s in shares]
        assert max(sizes) - min(sizes) <= 1


def test_single_partition_topics_are_spread_over_the_processes() -> None:
    parts = ["0-frames", "0-readings", "0-feedback", "0-acks"]
    assert [len(share_of(parts, Placement(i, 2))) for i in range(2)] == [2, 2]


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3))
def test_co_partitioned_keys_are_read_by_the_process_that_owns_them(keys: list[str], n: int, w: int,
                                                                    per_worker: int) -> None:
    parts = n * w * per_worker
    names = [f"{p}-frames" for p in range(parts)] + [f"{p}-readings" for p in range(parts)]
    reader = {name: i for i in range(n) for name in share_of(names, Placement(i, n, w))}
    for k in keys:
        owner = worker_of(k, n * w) // w
        assert reader[f"{partition_for(k, parts)}-frames"] == owner
        assert reader[f"{partition_for(k, parts)}-readings"] == owner


class _Listed:
    def list_parts(self) -> list[str]:
        return [f"{p}-frames" for p in range(8)]

    def build_part(self, step_id: str, for_part: str, resume_state: object) -> str:
        return f"built {for_part} from {resume_state}"


def test_process_share_lists_its_share_and_builds_any_partition() -> None:
    src = ProcessShare(_Listed(), Placement(1, 2))  # type: ignore[arg-type]
    assert src.list_parts() == ["1-frames", "3-frames", "5-frames", "7-frames"]
    assert src.build_part("in", "3-frames", 42) == "built 3-frames from 42"
