"""Property tests (hypothesis) over shapes, dtypes and leading dims."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import rankbias as rb
from reference import lapack_svdvals

dims = st.integers(1, 12)
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def matrices(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    shape = (*lead, draw(dims), draw(dims))
    return draw(arrays(dtype, shape, elements=finite))


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(matrices())
def test_svdvals_match_lapack(A):
    s = rb.svdvals(A)
    exact = lapack_svdvals(A)
    assert s.shape == exact.shape and s.dtype == A.dtype
    top = exact[..., :1]
    np.testing.assert_allclose(s, exact, rtol=1e-4, atol=1e-6 * float(top.max(initial=0)) + 1e-30)


@SETTINGS
@given(matrices(), st.integers(0, 3), st.integers(0, 2**32))
def test_rsvd_values_never_exceed_the_true_ones(A, q, seed):
    r = min(A.shape[-2:])
    k = 1 + seed % r
    out = rb.rsvd(A, k, power_iters=q, seed=seed)
    exact = lapack_svdvals(A)[..., :k]
    assert out.s.shape == exact.shape
    # B = Q^T A is a compression of A: sigma_i(B) <= sigma_i(A) (interlacing)
    slack = 1e-4 * exact[..., :1] + 1e-30
    assert np.all(out.s <= exact + slack)
    if k == r:
        np.testing.assert_allclose(out.s, exact, rtol=1e-3, atol=float(slack.max()))


@SETTINGS
@given(matrices())
def test_rank_measures_stay_in_range(A):
    r = min(A.shape[-2:])
    out = rb.ranks(A, tol=1e-3, eps=1e-3, k=1)
    nonzero = np.linalg.norm(A.astype(np.float64), axis=(-2, -1)) > 0
    for name in ("rank_tol", "rank_rel", "gd_rank", "numerical_rank"):
        assert np.all((out[name] >= 0) & (out[name] <= r)), name
    for name in ("stable_rank", "effective_rank"):
        value = out[name][nonzero]
        assert np.all((value >= 1 - 1e-6) & (value <= r + 1e-6)), name
    assert np.all(out["rank_rel"][nonzero] >= 1)
    assert np.all((out["tail_k"] >= 0) & (out["tail_k"] <= 1))
