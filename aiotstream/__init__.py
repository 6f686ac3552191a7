"""aiotstream: stream processing for industrial AIoT.

Windows high-rate sensor streams by event time, computes features with Cython
kernels, scores windows with online models and emits alerts, KPIs and dead
letters, each carrying lineage.
"""
from __future__ import annotations

import functools
from pathlib import Path

__version__ = "0.1.0"
"""The package version (pyproject.toml reads it from here)."""


def _git(root: Path, *args: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                             check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def checkout_commit(root: Path) -> str | None:
    """The commit of the git checkout whose top level is ``root`` (with ``.dirty`` when the package's code
    differs from it), or None when ``root`` is not the top of a checkout or git is missing."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return None
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return None
    dirty = _git(root, "status", "--porcelain", "--", "aiotstream", "ext", "setup.py", "pyproject.toml")
    return commit + (".dirty" if dirty else "")


@functools.cache
def build_commit() -> str | None:
    """The git commit this code was built from: the live checkout's when the package runs from one (an
    editable install: the code is the checkout), else the one ``setup.py`` wrote into ``aiotstream/_build.py``
    when the package was built, else None (e.g. built from an sdist without git)."""
    live = checkout_commit(Path(__file__).resolve().parent.parent)
    if live is not None:
        return live
    try:
        from aiotstream._build import COMMIT  # type: ignore[import-not-found]  # written by setup.py
    except ImportError:
        return None
    return COMMIT or None


def code_version() -> str:
    """The version lineage carries and ``aiotstream --version`` prints: the package version, plus the commit
    when known as a PEP 440 local label (``0.1.0+g<12 hex digits>``, ``.dirty`` for uncommitted changes to
    the code). The same build always gives the same string."""
    commit = build_commit()
    if not commit:
        return __version__
    sha, _, dirty = commit.partition(".")
    return f"{__version__}+g{sha[:12]}" + (f".{dirty}" if dirty else "")
