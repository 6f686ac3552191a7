"""Files: a JSONL sink (one file per output kind) for the demo and for debugging; an in-process callback sink.

JSON Lines has no limit on a line's length; records still go through
:func:`aiotstream.io.sinkguard.encode`, so none carries a number JSON cannot hold,
and dead letters are bounded by ``outputs.max_deadletter_payload_bytes``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from aiotstream.io.sinkguard import count_loss, encode
from aiotstream.records import KINDS, Output
from aiotstream.runstats import count_outputs

FILE_NAMES = {"alert": "alerts", "command": "commands", "kpi": "kpis", "score": "scores",
              "deadletter": "deadletter",
              "model": "models", "scalar": "scalar_scores", "audit": "audit"}


class _JsonlPartition(StatelessSinkPartition[Output]):
    def __init__(self, directory: Path, suffix: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.files = {k: open(directory / f"{FILE_NAMES[k]}{suffix}.jsonl", "ab") for k in KINDS}  # noqa: SIM115

    def write_batch(self, items: list[Output]) -> None:
        written = []
        for item in items:
            enc = encode(item)
            if enc is None:  # cannot happen without a limit; kept for symmetry with the other sinks
                count_loss(item, "unwritable_output", "no form of it can be written")
                continue
            out, data = enc
            self.files[out.kind].write(data + b"\n")
            written.append(out)
        for f in self.files.values():
            f.flush()
        count_outputs(written)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class JsonlSink(DynamicSink[Output]):
    """``<dir>/alerts.jsonl``, ``commands.jsonl``, ``kpis.jsonl``, ``scores.jsonl``, ``deadletter.jsonl``
    (``-w<i>`` per worker if many)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonlPartition:
        return _JsonlPartition(self.directory, f"-w{worker_index}" if worker_count > 1 else "")


class _CallbackPartition(StatelessSinkPartition[Output]):
    def __init__(self, write: Callable[[list[Output]], None]):
        self.write = write

    def write_batch(self, items: list[Output]) -> None:
        self.write(items)
        count_outputs(items)


class CallbackSink(DynamicSink[Output]):
    """Hands every batch of outputs to ``write(items)`` in-process (``aiotstream detect`` collects its
    records this way); one worker, or a ``write`` that is safe to call from several."""

    def __init__(self, write: Callable[[list[Output]], None]):
        self.write = write

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CallbackPartition:
        return _CallbackPartition(self.write)
