"""benchmarks.flowrun's sampled step timing: the analyze step's thread CPU estimated from a random sample of its
calls (each timed with probability 1/every, counted every times). Pure logic, on a fake clock: call i costs
a known amount, so the estimate can be checked against the truth."""
from __future__ import annotations

import itertools

import pytest

from benchmarks import flowrun


class FakeClock:
    """A thread clock that advances only inside the wrapped step (by that call's cost) and counts its reads."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def _run(monkeypatch: pytest.MonkeyPatch, every: int, costs: list[float], seed: int = 0
         ) -> tuple[float, int, list[int]]:
    clock = FakeClock()
    monkeypatch.setattr(flowrun.time, "thread_time", clock)
    cpu = {"analyze": 0.0}
    seen: list[int] = []

    def step(i: int) -> int:
        clock.now += costs[i]
        seen.append(i)
        return i * 2

    wrapped = flowrun._sampled_cpu(step, cpu, "analyze", every, seed)
    results = [wrapped(i) for i in range(len(costs))]
    assert results == [i * 2 for i in range(len(costs))]  # every call made once, its result passed on
    assert seen == list(range(len(costs)))
    return cpu["analyze"], clock.reads, results


def test_every_one_times_every_call_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    costs = [0.001 * (i % 7 + 1) for i in range(500)]
    est, reads, _ = _run(monkeypatch, 1, costs)
    assert est == pytest.approx(sum(costs), rel=1e-12)
    assert reads == 2 * len(costs)


@pytest.mark.parametrize("every", [2, 16, 100])
def test_a_sample_estimates_the_total_and_reads_the_clock_for_about_one_call_in_every(
        monkeypatch: pytest.MonkeyPatch, every: int) -> None:
    # the flow's shape: most calls cheap, one in 20 (a window close) forty times dearer, in a fixed period, so
    # a sample that followed the calls' order (every n-th) could alias with it; a random one does not
    n = 200_000
    costs = [40e-6 if i % 20 == 0 else 1e-6 for i in range(n)]
    est, reads, _ = _run(monkeypatch, every, costs)
    truth = sum(costs)
    timed = reads / 2
    assert timed == pytest.approx(n / every, rel=0.05)
    # the estimate's standard error here: under 2 % for every = 100 (n / every = 2,000 timed calls)
    assert est == pytest.approx(truth, rel=0.06)
    assert est != pytest.approx(truth, rel=1e-9)  # an estimate, not the sum (the test sees the sampled path)


def test_the_sample_is_unbiased_across_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    costs = [float(c) for c in itertools.islice(itertools.cycle([1, 1, 1, 9, 1, 30]), 3_000)]
    ests = [_run(monkeypatch, 8, costs, seed)[0] for seed in range(40)]
    mean = sum(ests) / len(ests)
    assert mean == pytest.approx(sum(costs), rel=0.03)
    assert len(set(ests)) > 30  # the seeds draw different samples


def test_a_call_that_raises_is_still_timed_and_the_error_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(flowrun.time, "thread_time", clock)
    cpu = {"analyze": 0.0}

    def boom() -> None:
        clock.now += 1.0
        raise ValueError("bad batch")

    wrapped = flowrun._sampled_cpu(boom, cpu, "analyze", 4)
    for _ in range(40):
        with pytest.raises(ValueError, match="bad batch"):
            wrapped()
    assert cpu["analyze"] > 0 and cpu["analyze"] % 4 == 0  # whole calls, each counted 4 times
