"""Fuzz of signed control, feedback and ack messages ([auth], issue 19 item 1): 1,000 hypothesis cases through the
real decode step of a site with [auth] (``benchmarks/fuzz_auth.py`` holds the generator, the oracle written from
the spec, and the harness). 0 escapes: every message takes effect as a correctly signed message of an authorised
principal (``by`` its acting principal), or is refused with one of the spec's reasons or a decode reason; never an
exception, never a message that is not correctly signed by an authorised principal getting past the verifier,
never a key or signature in a refusal's text."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_auth import REASONS, SignedHarness, run_signed
from benchmarks.fuzz_control import Escape, RandomDraw


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedHarness]:
    yield SignedHarness(tmp_path_factory.mktemp("signed"))


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1))
def test_signed_messages_take_effect_only_when_correctly_signed_and_authorised(harness: SignedHarness,
                                                                               seed: int) -> None:
    case = harness.case(RandomDraw(seed))
    event(case[2])
    outcome = harness.step(case)  # raises Escape otherwise
    event(outcome)
    assert outcome in ("effect", "decode") or outcome.removeprefix("refused:") in REASONS


def test_the_fuzz_reached_every_outcome(harness: SignedHarness) -> None:
    """After the 1,000 cases above: effects, decode refusals and every one of the spec's reasons happened."""
    assert sum(harness.outcomes.values()) >= 1000
    assert {"effect", "decode"} | {f"refused:{r}" for r in REASONS} <= set(harness.outcomes), harness.outcomes


def test_the_harness_catches_a_verifier_that_lets_messages_through(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle is not the code under test: a verifier that accepts everything is caught at once."""
    from aiotstream.auth import Identity, Verifier

    h = SignedHarness(tmp_path)
    monkeypatch.setattr(Verifier, "check", lambda self, obj, kind, asset: Identity("ana", "ana"))
    d = RandomDraw(1)
    with pytest.raises(Escape, match="got past the verifier|accepted with by"):
        for _ in range(200):
            h.step(h.case(d))


def test_the_runner_keeps_the_harness_contract() -> None:
    from benchmarks.fuzz import KINDS

    assert KINDS["signed"] is run_signed
    res = run_signed("signed", 50, 7)
    assert set(res) == {"kind", "cases", "escapes", "escape_examples", "lost", "seconds"}
    assert (res["kind"], res["cases"], res["escapes"], res["lost"]) == ("signed", 50, 0, 0), res
