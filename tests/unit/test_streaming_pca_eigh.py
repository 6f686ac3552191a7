"""pca_refresh calls np.linalg.eigh's gufunc directly on a finite matrix and np.linalg.eigh itself
otherwise: a covariance with NaN or inf fails exactly as the reference's refresh does."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from aiotstream.models import streaming as S

C = pytest.importorskip("aiotstream._streaming")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (0, 1), (2, 2)])
def test_pca_refresh_of_a_non_finite_covariance_fails_as_the_reference(bad, where) -> None:
    outcomes = []
    for refresh in (lambda mv: mv._refresh(), C.pca_refresh):
        mv = S.MultivariateDetector(3)
        mv.cov[:] = np.eye(3) + 0.1
        mv.cov[where] = bad
        mv.count = 500
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                refresh(mv)
                outcomes.append(("ok", mv.k, np.asarray(mv.basis).tobytes(), np.asarray(mv.inv_vals).tobytes()))
            except np.linalg.LinAlgError as e:
                outcomes.append(("LinAlgError", str(e)))
    assert outcomes[0] == outcomes[1]


def test_pca_refresh_direct_eigh_is_numpys() -> None:
    rng = np.random.default_rng(5)
    for p in (2, 3, 8, 17):
        a = rng.normal(size=(p + 3, p))
        s = a.T @ a
        w, v = np.linalg.eigh(s)
        w2, v2 = C._EIGH_LO(s, signature="d->dd")
        assert w.tobytes() == w2.tobytes() and v.tobytes() == v2.tobytes()
