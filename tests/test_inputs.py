"""Every bad input gets a clear error naming the parameter, rule, value and fix."""

import numpy as np
import pytest
import torch

import rankbias as rb

A = np.random.default_rng(0).standard_normal((2, 6, 5))


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: rb.rsvd(A, 0), ValueError, r"'k' parameter of rsvd must be an int in \[1, 5\].*Got 0 instead"),
        (lambda: rb.rsvd(A, 6), ValueError, r"'k' parameter of rsvd .* for A of shape \(6, 5\)\. Got 6"),
        (lambda: rb.rsvd(A, 2.0), TypeError, r"'k' parameter of rsvd must be an int.*Got 2.0 of type float"),
        (lambda: rb.rsvd(A, True), TypeError, r"'k' parameter of rsvd must be an int.*type bool"),
        (lambda: rb.rsvd(A, 2, oversample=-1), ValueError, r"'oversample' parameter of rsvd .*Got -1"),
        (lambda: rb.rsvd(A, 2, power_iters=-2), ValueError, r"'power_iters' parameter of rsvd .*Got -2"),
        (lambda: rb.rsvd(A, 2, seed=-1), ValueError, r"'seed' parameter of rsvd must be an int in \[0, .* or None"),
        (lambda: rb.rsvd(A, 2, seed="x"), TypeError, r"'seed' parameter of rsvd .*Got 'x' of type str"),
        (lambda: rb.svdvals([[1.0, 2.0]]), TypeError, r"'A' parameter of svdvals must be a numpy array or a torch tensor.*Got list.*np\.asarray"),
        (lambda: rb.svdvals(np.ones((3, 3), dtype=int)), TypeError, r"must hold real floats\. Got dtype int64.*astype"),
        (lambda: rb.svdvals(np.ones((3, 3), dtype=bool)), TypeError, r"must hold real floats\. Got dtype bool"),
        (lambda: rb.svdvals(np.ones((3, 3), dtype=complex)), TypeError, r"must hold real floats\. Got dtype complex128.*real part"),
        (lambda: rb.svdvals(np.ones(4)), ValueError, r"at least 2 dimensions \(\.\.\., m, n\)\. Got shape \(4,\).*reshape"),
        (lambda: rb.svdvals(np.ones((0, 3))), ValueError, r"must not be empty\. Got shape \(0, 3\)"),
        (lambda: rb.svdvals(np.ones((0, 3, 3))), ValueError, r"must not be empty\. Got shape \(0, 3, 3\)"),
        (lambda: rb.svdvals(np.array([[1.0, np.inf]])), ValueError, r"must be finite\. Got inf at index \(0, 0, 1\)"),
        (lambda: rb.ranks(np.full((2, 2), 1e200)), ValueError, r"Frobenius norm below 1\.3e154.*Rescale"),
        (lambda: rb.svdvals(torch.ones(3, 3, dtype=torch.int32)), TypeError, r"tensor of dtype torch\.int32.*\.float\(\)"),
        (lambda: rb.svdvals(torch.ones(3, 3, dtype=torch.complex64)), TypeError, r"tensor of dtype torch\.complex64"),
        (lambda: rb.svdvals(torch.ones(3, 3, device="meta")), ValueError, r"tensor on device 'meta'.*Pass A\.cpu\(\)"),
        (lambda: rb.ranks(A, ["rank", "stable_rank"]), ValueError, r"'measures' parameter of ranks .*Got \['rank', 'stable_rank'\]"),
        (lambda: rb.ranks(A, []), ValueError, r"'measures' parameter of ranks must be a non-empty list"),
        (lambda: rb.ranks(A, tol=-1e-3), ValueError, r"'tol' parameter of ranks must be a finite float >= 0\. Got -0\.001"),
        (lambda: rb.ranks(A, eps=float("nan")), ValueError, r"'eps' parameter of ranks must be a finite float >= 0\. Got nan"),
        (lambda: rb.ranks(A, tol="big"), TypeError, r"'tol' parameter of ranks must be a float >= 0\. Got 'big'"),
        (lambda: rb.ranks(A, k=0), ValueError, r"'k' parameter of ranks must be an int in \[1, 5\]"),
        (lambda: rb.eps_rank(A, -0.1), ValueError, r"'eps' parameter of eps_rank must be a finite float >= 0"),
        (lambda: rb.eps_rank(A, 0.1, block=0), ValueError, r"'block' parameter of eps_rank must be an int in \[1, "),
    ],
)
def test_error_messages(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_nan_error_locates_the_entry():
    B = A.copy()
    B[1, 4, 2] = np.nan
    with pytest.raises(ValueError, match=r"Got nan at index \(1, 4, 2\).*1 non-finite entries.*nan_to_num"):
        rb.rsvd(B, 2)


def test_requires_grad_tensor_is_detached_and_accepted():
    t = torch.randn(4, 3, requires_grad=True)
    np.testing.assert_allclose(rb.svdvals(t).numpy(), np.linalg.svd(t.detach().numpy(), compute_uv=False), rtol=1e-5)
