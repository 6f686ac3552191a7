"""Files: a JSONL sink (one file per output kind) for the demo and for debugging."""
from __future__ import annotations

from pathlib import Path

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from aiotstream.analysis import KINDS, Output
from aiotstream.runstats import count_outputs

FILE_NAMES = {"alert": "alerts", "command": "commands", "kpi": "kpis", "score": "scores", "deadletter": "deadletter",
              "model": "models"}


class _JsonlPartition(StatelessSinkPartition[Output]):
    def __init__(self, directory: Path, suffix: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.files = {k: open(directory / f"{FILE_NAMES[k]}{suffix}.jsonl", "ab") for k in KINDS}  # noqa: SIM115

    def write_batch(self, items: list[Output]) -> None:
        for out in items:
            self.files[out.kind].write(orjson.dumps(out.record, option=orjson.OPT_APPEND_NEWLINE))
        for f in self.files.values():
            f.flush()
        count_outputs(items)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class JsonlSink(DynamicSink[Output]):
    """``<dir>/alerts.jsonl``, ``commands.jsonl``, ``kpis.jsonl``, ``scores.jsonl``, ``deadletter.jsonl`` (``-w<i>`` per worker if many)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonlPartition:
        return _JsonlPartition(self.directory, f"-w{worker_index}" if worker_count > 1 else "")
