"""Where the CLI's log lines go: stderr, one line each, with the time, level and logger.

aiotstream's own loggers (``aiotstream.*``) print from ``--log-level`` up (default ``info``, so an
operator sees a source's "connected" and "back after 42 s" lines, not only its warnings); every other
library prints warnings and errors only (their chatter is routed to ``aiotstream.*`` at DEBUG where it is
known to be noisy: asyncua, librdkafka). ``--log-format json`` writes one JSON object per line for a log
shipper.

Without :func:`configure` (the library used from Python) nothing is set up here: the application decides.

>>> import io, logging
>>> out = io.StringIO()
>>> undo = configure("warning", "text", stream=out)
>>> logging.getLogger("aiotstream.demo").info("hidden"); logging.getLogger("aiotstream.demo").warning("shown")
>>> out.getvalue().split(" ", 1)[1]
'WARNING aiotstream.demo: shown\\n'
>>> undo = configure("info", "text", stream=out)  # again: replaces the handler, never adds a second
>>> len([h for h in logging.getLogger().handlers if isinstance(h, CliHandler)])
1
>>> undo(); [h for h in logging.getLogger().handlers if isinstance(h, CliHandler)]
[]
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO

import orjson

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
OWN = "aiotstream"
OTHERS_FROM = logging.WARNING  # other libraries' records below this are not printed


class _Filter(logging.Filter):
    def __init__(self, own_level: int):
        super().__init__()
        self.own_level = own_level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == OWN or record.name.startswith(OWN + ".")
        return record.levelno >= (self.own_level if own else OTHERS_FROM)


class _Text(logging.Formatter):
    converter = time.gmtime  # UTC, like every timestamp the product writes

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts_ns": int(record.created * 1e9), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


class CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler :func:`configure` installs on the root logger."""


def configure(level: str = "info", fmt: str = "text", *, stream: IO[str] | None = None) -> Callable[[], None]:
    """Install (or replace) the CLI's stderr handler on the root logger; returns the undo (``main`` calls it
    at exit, so a CLI run inside a Python process leaves its logging as it found it)."""
    if level not in LEVELS or fmt not in FORMATS:
        raise ValueError(f"log level {level!r} / format {fmt!r}: expected one of {LEVELS} / {FORMATS}")
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, CliHandler)]:
        root.removeHandler(h)
    handler = CliHandler(stream if stream is not None else sys.stderr)
    own_level = getattr(logging, level.upper())
    handler.addFilter(_Filter(own_level))
    handler.setFormatter(_Json() if fmt == "json" else _Text())
    root.addHandler(handler)
    own = logging.getLogger(OWN)
    before = own.level
    own.setLevel(own_level)  # the root logger keeps its level (WARNING): other libraries stay quiet

    def undo() -> None:
        root.removeHandler(handler)
        own.setLevel(before)

    return undo
