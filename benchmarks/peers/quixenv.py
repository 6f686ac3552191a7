"""The Quix Streams peer's own virtual environment, created on demand.

Quix Streams 3.28 pins ``confluent-kafka < 2.13`` and ``pydantic < 2.14``; aiotstream runs with
newer ones, so the peer gets a venv of its own (``benchmarks/.venv-quix``, git-ignored) with
Quix Streams plus the River and numpy versions of aiotstream's environment.
"""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

QUIXSTREAMS = "quixstreams==3.28.1"
VENV = Path(__file__).resolve().parents[1] / ".venv-quix"


def requirements() -> list[str]:
    return [QUIXSTREAMS, f"river=={version('river')}", f"numpy=={version('numpy')}"]


def python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def ready(venv: Path = VENV) -> bool:
    stamp = venv / ".requirements"
    return python(venv).exists() and stamp.exists() and stamp.read_text().split() == requirements()


def ensure(venv: Path = VENV, log=print) -> Path:
    """Create or update the venv when its requirements changed; return its python."""
    if ready(venv):
        return python(venv)
    log(f"  creating {venv} with {' '.join(requirements())} (pip, about a minute) ...")
    if not python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    r = subprocess.run([str(python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *requirements()], capture_output=True, text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"pip install into {venv} failed:\n{r.stderr[-3000:]}")
    (venv / ".requirements").write_text("\n".join(requirements()) + "\n")
    return python(venv)
