"""Secret files: the first line is the secret; a missing, unreadable, empty or non-UTF-8 file is one line naming
the config field and never showing the content; a field and its ``*_file`` twin together are a config error."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotstream.config import default_site
from aiotstream.errors import AiotError, ConfigError
from aiotstream.secretfiles import read_secret


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_file_gives_its_first_line_or_one_line_naming_the_field(tmp_path_factory: pytest.TempPathFactory,
                                                                    data: bytes) -> None:
    path = tmp_path_factory.mktemp("s") / "secret"
    path.write_bytes(data)
    try:
        secret = read_secret(str(path), "inputs.kafka.password_file")
    except AiotError as exc:  # exactly one of these lines: nothing of the content is shown
        field = "inputs.kafka.password_file"
        assert str(exc) in (f"{field}: secret file {str(path)!r} is not UTF-8 text",
                            f"{field}: secret file {str(path)!r} is empty (the secret is its first line)")
        return
    text = data.decode("utf-8")
    assert secret == text.split("\n", 1)[0].removesuffix("\r") and secret
    assert "\n" not in secret and not secret.endswith("\r")


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(AiotError, match=r"^f: cannot read secret file '.*nope' \(No such file or directory\)$"):
        read_secret(str(tmp_path / "nope"), "f")
    with pytest.raises(AiotError, match="Is a directory"):
        read_secret(str(tmp_path), "f")
    p = tmp_path / "locked"
    p.write_text("x\n")
    p.chmod(0)
    if os.geteuid() != 0:  # root reads it anyway
        with pytest.raises(AiotError, match="Permission denied"):
            read_secret(str(p), "f")


@pytest.mark.parametrize(("where", "table"), [
    ("inputs", {"kind": "mqtt", "mqtt": {"password_env": "X", "password_file": "/f",
                                         "subscriptions": [{"filter": "a/#"}]}}),
    ("inputs", {"kind": "opcua", "opcua": {"endpoint": "opc.tcp://h:4840", "password_env": "X",
                                           "password_file": "/f",
                                           "nodes": [{"node_id": "i=1", "asset": "asset-000", "metric": "m"}]}}),
    ("outputs", {"opcua": {"endpoint": "opc.tcp://h:4840", "password_env": "X", "password_file": "/f",
                           "writes": [{"asset": "asset-000", "actuator": "a", "node_id": "i=1"}]}}),
])
def test_a_field_and_its_file_twin_together_are_refused(where: str, table: dict) -> None:
    with pytest.raises(ConfigError, match="password_env and password_file are two ways"):
        default_site(1, **{where: table})
