"""The one pattern every asset, line and site id must match, wherever the id comes from.

Ids end up in places that give characters a meaning: MQTT topics (``/`` is a level,
``+`` and ``#`` are wildcards), Kafka topic names (``<site>.alerts``), file and
partition names (``site=<id>``), Prometheus labels. So an id is plain: a letter or
digit, then up to 127 letters, digits, ``.``, ``_`` or ``-``. The config checks its
ids against :data:`ID_PATTERN`; the decoders check the ids a payload, a topic level
or a file column names (a bad one is a ``bad_asset_id`` dead letter), and the MQTT
sink refuses to publish to a topic whose levels came out different from its template.

>>> [is_valid_id(s) for s in ("pump-001", "line_2.a", "evil/#", "a/+/b", "", "-x", "é")]
[True, True, False, False, False, False, False]
>>> check_id("pump-1", "asset")
'pump-1'
>>> check_id("a/+/b", "asset")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
aiotstream.errors.DecodeError: asset 'a/+/b' is not a valid id: use a letter or digit, then letters,
digits, '.', '_' or '-' (at most 128 characters)
"""
from __future__ import annotations

import re

from aiotstream.errors import DecodeError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""Asset, line and site ids (and other names that become topic levels): 1..128 plain characters."""

MAX_ID = 128
ID_HINT = "use a letter or digit, then letters, digits, '.', '_' or '-' (at most 128 characters)"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_valid_id(value: object) -> bool:
    """True when ``value`` is a string matching :data:`ID_PATTERN`."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: object, what: str = "asset", reason: str = "bad_asset_id") -> str:
    """``value`` if it is a valid id, else :class:`~aiotstream.errors.DecodeError` (``reason``) naming it."""
    if is_valid_id(value):
        return value  # type: ignore[return-value]
    shown = repr(value) if not isinstance(value, str) or len(value) <= 64 else repr(value[:64]) + "..."
    raise DecodeError(reason, f"{what} {shown} is not a valid id: {ID_HINT}")


def safe_id(value: object) -> str | None:
    """``value`` if it is a valid id, else None: for the ``asset`` field of a dead letter, which must never
    carry a string that could be mistaken for a topic level or wildcard.

    >>> safe_id("pump-1"), safe_id("evil/#"), safe_id(None)
    ('pump-1', None, None)
    """
    return value if is_valid_id(value) else None  # type: ignore[return-value]
