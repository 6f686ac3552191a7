"""Build the Cython kernels in ext/ into ``aiotstream._kernels``.

Everything else about the package lives in pyproject.toml; this file exists only
because setuptools needs code to describe compiled extensions.
"""
from __future__ import annotations

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

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
    )
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
