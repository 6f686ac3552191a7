"""Running a dataflow: Bytewax's runner and its recovery store, for the CLI (which imports no Bytewax)."""
from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from aiotstream.errors import AiotError

__all__ = ["cli_main", "recovery_config"]


def recovery_config(directory: Path, partitions: int, backup_s: float, process_id: int = 0,
                    processes: int = 1):
    """A Bytewax RecoveryConfig for ``directory``, creating this process's share of partitions on first use.

    A cluster's partitions are spread over its processes' local directories:
    process ``i`` of ``n`` keeps partitions ``i, i + n, i + 2n, ...`` of the
    ``partitions`` created for the whole cluster.
    """
    if partitions < processes:
        raise AiotError(f"--recovery-partitions ({partitions}) must be at least the number of "
                        f"processes ({processes})")
    directory.mkdir(parents=True, exist_ok=True)
    if not any(directory.glob("*.sqlite3")):
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            init_db_dir(Path(tmp), partitions)
            for i in range(process_id, partitions, processes):
                shutil.move(str(Path(tmp) / f"part-{i}.sqlite3"), directory / f"part-{i}.sqlite3")
    return RecoveryConfig(str(directory), backup_interval=timedelta(seconds=backup_s))
