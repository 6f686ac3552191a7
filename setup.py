"""Build the Cython kernels in ext/ into ``aiotstream._kernels``, and record the git commit.

Everything else about the package lives in pyproject.toml; this file exists
because setuptools needs code to describe compiled extensions, and to write
``aiotstream/_build.py`` (the commit the build came from, for ``aiotstream
--version`` and lineage ``code_version``; an installed package has no git to ask).
Built from a git checkout it writes the checkout's commit; built without git
(e.g. from an sdist, which carries the file) it leaves the file as it is.
"""
from __future__ import annotations

import platform
import runpy
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
_commit = runpy.run_path(str(HERE / "aiotstream" / "__init__.py"))["checkout_commit"](HERE)
if _commit is not None:
    _build = HERE / "aiotstream" / "_build.py"
    _text = f'"""Written by setup.py when this package was built."""\nCOMMIT = {_commit!r}\n'
    if not _build.exists() or _build.read_text() != _text:
        _build.write_text(_text)


def _libmvec() -> bool:
    """glibc >= 2.35 on x86-64 Linux with GCC: ext/streaming_simd.h may call its vector log1p."""
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        return False
    name, version = platform.libc_ver()
    try:
        major, minor = (int(v) for v in version.split(".")[:2])
    except ValueError:
        return False
    return name == "glibc" and (major, minor) >= (2, 35)


_MVEC = _libmvec()

extensions = [
    Extension(
        "aiotstream._kernels",
        ["ext/_kernels.pyx"],
        include_dirs=[np.get_include(), "ext"],
        depends=["ext/kernels_core.h"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # -fopenmp-simd: honour `#pragma omp simd` in ext/kernels_core.h (no OpenMP runtime, no
        # threads). No -ffast-math (NaN/Inf handling is documented), no -march (portable wheel:
        # the AVX2 variants are picked at load time via target_clones).
        extra_compile_args=["-O3", "-fno-math-errno", "-fopenmp-simd", "-Wno-unreachable-code"],
    ),
    # the per-row update of the streaming detectors (aiotstream.models.streaming, impl="compiled").
    # No -ffast-math: it must round like its numpy reference.
    Extension(
        "aiotstream._streaming",
        ["ext/_streaming.pyx"],
        include_dirs=[np.get_include(), "ext"],
        depends=["ext/streaming_simd.h"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       *([("AIOT_MVEC", "1")] if _MVEC else [])],
        libraries=["mvec", "m"] if _MVEC else [],
        extra_compile_args=["-O3", "-fno-math-errno", "-ffp-contract=off", "-Wno-unreachable-code"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
