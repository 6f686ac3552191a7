"""The batcher's flush rules (pure logic, a fake clock and a fake model)."""
from __future__ import annotations

import numpy as np
import pytest

from aiotstream.errors import ModelError
from aiotstream.models.scoring import ScoreBatcher


class Model:
    def __init__(self, clock: list[float], s_per_row: float = 0.0):
        self.clock, self.s_per_row, self.batches = clock, s_per_row, []

    def score(self, rows: np.ndarray) -> np.ndarray:
        self.batches.append(rows.copy())
        self.clock[0] += self.s_per_row * len(rows)
        return rows[:, 0] + rows[:, 1]


def batcher(clock: list[float], model: Model, **kw) -> ScoreBatcher:
    return ScoreBatcher({"m@1": model, "m@2": model}.__getitem__, clock=lambda: clock[0], **kw)


def test_a_full_batch_is_scored_at_once_in_order_and_each_row_reaches_its_key_and_owner() -> None:
    clock = [0.0]
    m = Model(clock)
    b = batcher(clock, m, max_batch=3, max_delay_ms=1000)
    for i in range(7):
        b.submit(i, "m@1", np.array([i, 10.0 * i]), owner=f"a{i % 2}")
    assert [len(x) for x in m.batches] == [3, 3]  # the 7th row waits
    assert [b.take(i).score for i in range(6)] == [11.0 * i for i in range(6)] and b.take(6) is None
    assert b.pop_ready() == {"a0", "a1"} and b.pop_ready() == set()
    assert b.flush() == 1 and b.take(6).batch_rows == 1


def test_rows_of_two_models_are_scored_in_separate_calls() -> None:
    clock = [0.0]
    m = Model(clock)
    b = batcher(clock, m, max_batch=10, max_delay_ms=5)
    b.submit("x", "m@1", np.array([1.0, 2.0]))
    b.submit("y", "m@2", np.array([3.0, 4.0]))
    clock[0] = 0.006
    assert b.flush_due() == 2 and len(m.batches) == 2
    assert (b.take("x").model, b.take("y").model) == ("m@1", "m@2")


def test_the_deadline_moves_earlier_by_the_measured_cost_of_scoring_and_handing_over_the_rows_waiting() -> None:
    clock = [0.0]
    m = Model(clock, s_per_row=0.001)  # 1 ms per row
    b = batcher(clock, m, max_batch=100, max_delay_ms=50)
    assert b.deadline() is None
    b.submit(0, "m@1", np.array([0.0, 0.0]))
    assert b.deadline() == pytest.approx(0.050)  # nothing measured yet
    b.flush()
    b.note_handover(0.010, 5)  # 2 ms per row to run the decisions
    assert b.call_s_per_row > 0 and b.hand_s_per_row > 0
    per_row = b.call_s_per_row + b.hand_s_per_row
    start = clock[0]
    for i in range(1, 11):
        b.submit(i, "m@1", np.array([0.0, 0.0]))
    assert b.deadline() == pytest.approx(start + 0.050 - 10 * per_row)
    clock[0] = b.deadline() - 0.001
    assert b.flush_due() == 0
    clock[0] += 0.001
    assert b.flush_due() == 10
    b.note_handover(1.0, 1)  # so slow that one row's cost exceeds max_delay: due as soon as it is submitted
    b.submit(99, "m@1", np.array([0.0, 0.0]))
    assert b.deadline() == pytest.approx(clock[0]) and b.flush_due() == 1


def test_a_model_that_returns_the_wrong_number_of_scores_is_an_error() -> None:
    class Bad:
        def score(self, rows: np.ndarray) -> np.ndarray:
            return np.zeros(len(rows) + 1)

    b = ScoreBatcher({"m@1": Bad()}.__getitem__, max_batch=2)
    b.submit(0, "m@1", np.array([1.0]))
    with pytest.raises(ModelError, match="shape"):
        b.flush()


def test_each_model_call_is_one_observation_of_its_latency_by_model_and_version_and_of_its_rows() -> None:
    """Issue 18's metrics: inference latency per model version and batch sizes (stage score), once per call."""
    from aiotstream.runstats import STATS

    def count(name: str, labels: tuple) -> tuple[int, float]:
        h = STATS.histograms().get((name, labels))
        return (0, 0.0) if h is None else (int(sum(h[:-1])), h[-1])

    before_lat, before_rows = count("inference_latency_seconds", ("m", "2")), count("batch_size", ("score",))
    clock = [0.0]
    b = batcher(clock, Model(clock), max_batch=3, max_delay_ms=1000)
    for i in range(7):
        b.submit(i, "m@2", np.array([i, 1.0]))
    b.flush()  # calls of 3, 3 and 1 rows
    lat, rows = count("inference_latency_seconds", ("m", "2")), count("batch_size", ("score",))
    assert lat[0] - before_lat[0] == 3 and lat[1] > before_lat[1]
    assert rows[0] - before_rows[0] == 3 and rows[1] - before_rows[1] == 7
