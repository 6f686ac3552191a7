"""PollSize: how many messages a Kafka partition's next consume asks for (pure logic; the broker test is
tests/integration/test_kafka_poll_size.py)."""
from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from aiotstream.io.kafka_consumer import PollSize

mosts = st.integers(1, 100_000)
budgets = st.integers(65_536, 1 << 30)
sizes = st.integers(0, 1 << 20)
polls = st.lists(st.tuples(st.integers(0, 100_000), sizes), max_size=40)  # (messages, mean size)


@given(mosts, budgets, polls)
def test_count_stays_in_bounds_and_a_poll_of_the_last_size_fits_the_budget(most, budget, seq) -> None:
    p = PollSize(most, budget)
    assert p.count == most  # the first poll: what librdkafka's queue holds, up to the most
    for n, mean in seq:
        before = p.count
        p.observe(n, n * mean)
        assert 1 <= p.count <= most
        if n == 0:
            assert p.count == before  # an empty poll says nothing about sizes
        elif p.count > 1:
            assert p.count * mean <= budget  # the next poll, if its messages are as large: within the budget
        assert p.count <= 2 * before + 1  # the estimate at most halves a poll: the count at most doubles


@given(mosts, budgets, st.integers(1, 1 << 20), st.integers(1, 1 << 20))
def test_a_steady_size_reaches_its_count_within_log2_of_the_first_size(most, budget, first, size) -> None:
    p = PollSize(most, budget)
    p.observe(10, 10 * first)
    for _ in range(max(0, math.ceil(math.log2(first / size))) + 1):
        p.observe(p.count, p.count * size)
    want = max(1, min(most, budget // size))
    assert want - 1 <= p.count <= want  # float division of the budget
    p.observe(p.count, p.count * size)
    assert want - 1 <= p.count <= want


@given(mosts, polls)
def test_without_a_budget_every_poll_asks_for_the_most(most, seq) -> None:
    p = PollSize(most, None)
    for n, mean in seq:
        assert p.count == most
        p.observe(n, n * mean)
    assert p.count == most


def test_a_larger_size_counts_at_once_a_smaller_one_halves_the_estimate() -> None:
    p = PollSize(10_000, 1_200_000)
    assert p.count == 10_000
    p.observe(10, 10 * 12_000)
    assert p.count == 100
    p.observe(100, 100 * 70)
    assert p.count == 200  # 6,000 bytes assumed, not 70
    p.observe(200, 200 * 70)
    assert p.count == 400
    p.observe(400, 400 * 24_000)
    assert p.count == 50  # larger: at once
