"""Issue 15 fuzz suite, control plane and configuration: 1,000 hypothesis cases per kind (site configs, promotions,
feedback, device acks, manifests), each through the real code path (``benchmarks/fuzz_control.py`` holds the
generators and harnesses; its runners do 100,000 per kind by hand). Every case must end as an effect, a
refusal or a dead letter naming why (configs: a ConfigError with the bad fields' paths); nothing may escape
and nothing may vanish. The harnesses live across the examples of a test, so state builds up as in a long run."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_control import (
    ConfigHarness,
    ControlHarness,
    HypothesisDraw,
    ManifestHarness,
    MessageHarness,
    RandomDraw,
    config_case,
)

SEED = st.integers(0, 2**32 - 1)  # the stateful harnesses' cases come from a seed (see HypothesisDraw)

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def messages() -> MessageHarness:
    h = MessageHarness(seed=3)
    for _ in range(8):
        h.tick()
    return h


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> ControlHarness:
    return ControlHarness(tmp_path_factory.mktemp("control"))


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> ManifestHarness:
    return ManifestHarness(tmp_path_factory.mktemp("manifests"))


@FUZZ
@given(seed=SEED)
def test_site_configs_load_or_fail_with_paths_and_what_loads_runs(seed: int) -> None:
    outcome = ConfigHarness().step(config_case(RandomDraw(seed)))  # raises Escape otherwise
    event(outcome)
    assert outcome in ("loaded", "refused")


@FUZZ
@given(seed=SEED)
def test_feedback_ends_as_an_effect_a_dead_letter_or_waits_its_turn(messages: MessageHarness, seed: int) -> None:
    if messages.offset % 5 == 4:
        messages.tick()
    event(messages.step(messages.feedback(RandomDraw(seed))))


@FUZZ
@given(seed=SEED)
def test_device_acks_match_pending_commands_or_are_dead_letters(messages: MessageHarness, seed: int) -> None:
    if messages.offset % 3 == 2:
        messages.tick()
    event(messages.step(messages.ack(RandomDraw(seed))))


def test_nothing_that_waited_was_lost(messages: MessageHarness) -> None:
    """After the fuzzing above: at the end of input every queued message is applied or dead-lettered. (Run
    without the fuzz tests, as a ``-k`` selection may, it drives the harness the same way itself.)"""
    seed = 0
    while messages.offset < 2000:
        if messages.offset % 5 == 4:
            messages.tick()
        draw = RandomDraw(seed)
        messages.step(messages.feedback(draw) if seed % 2 else messages.ack(draw))
        seed += 1
    assert messages.offset >= 2000
    assert messages.settle() == 0


@FUZZ
@given(seed=SEED)
def test_promotions_are_promoted_refused_or_dead_lettered_and_refusals_change_nothing(
        control: ControlHarness, seed: int) -> None:
    if control.offset % 10 == 9:
        control.tick()
    event(control.step(control.promote(RandomDraw(seed))))


def test_the_promoted_models_scored_windows_meanwhile(control: ControlHarness) -> None:
    """After the promotions fuzzed above (run without them, it drives the harness the same way itself)."""
    seed = 0
    while control.offset < 1000:
        if control.offset % 10 == 9:
            control.tick()
        control.step(control.promote(RandomDraw(seed)))
        seed += 1
    assert control.offset >= 1000 and control.scored >= 0.8 * control.tick_no * len(control.analyzers)


@FUZZ
@given(data=st.data())
def test_manifests_are_accepted_only_when_sound_and_refused_with_a_reason(manifests: ManifestHarness,
                                                                        data: st.DataObject) -> None:
    event(manifests.step(manifests.manifest(HypothesisDraw(data))))


def test_the_runners_keep_the_harness_contract(tmp_path: Path) -> None:
    from benchmarks.fuzz_control import KINDS

    assert set(KINDS) == {"configs", "control", "feedback", "acks", "manifests"}
    for kind, run in KINDS.items():
        res = run(kind, 20, 7)
        assert set(res) == {"kind", "cases", "escapes", "escape_examples", "lost", "seconds"}
        assert (res["kind"], res["cases"], res["escapes"], res["lost"]) == (kind, 20, 0, 0), res
