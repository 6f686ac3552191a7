"""The CLI runs BLAS on one thread while a flow runs, unless the environment sets a thread count."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aiotstream.cli import BLAS_THREAD_ENV

PROBE = """
from threadpoolctl import threadpool_info
from aiotstream.cli import one_blas_thread
limited = one_blas_thread()
print(limited, sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}))
"""


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_ENV}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True, timeout=60)
    return out.stdout.strip()


def test_no_thread_setting_in_the_environment_gives_one_blas_thread() -> None:
    assert _probe() == "True [1]"


@pytest.mark.parametrize("var", BLAS_THREAD_ENV)
def test_a_thread_count_in_the_environment_is_left_to_decide(var: str) -> None:
    # 2 threads asked for: kept (numpy's OpenBLAS reads OPENBLAS_NUM_THREADS or OMP_NUM_THREADS at import;
    # MKL_NUM_THREADS means nothing to it, so its pool keeps its default size, never limited to 1 here)
    limited, threads = _probe(**{var: "2"}).split(" ", 1)
    assert limited == "False"
    if var != "MKL_NUM_THREADS":
        assert threads == "[2]"
