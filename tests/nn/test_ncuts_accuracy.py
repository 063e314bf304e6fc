"""Float32 accuracy of the NCuts gradient at scale (issue 12, §1).

On non-negative random features ``F = rand(m, 64)²`` the top-8 eigengap is tiny (relative gap
~1e-4 at m = 4096, ~2e-5 at 65536), so the float32 top-k subspace, and with it the gradient
``∂loss/∂F``, carries an error ``~ eps/gap``. The default solver must stay within the SVD
route's error against float64 (the SVD of ``D^-½F`` has the best conditioning a float32 method
can have: ``eps/gap`` rather than the ``eps λ₁/(λₖ − λₖ₊₁)`` of a float32 Gram matrix).
The float64 reference is the SVD route in float64 (an independent factorization: LAPACK's
``gesdd`` of ``D^-½F``, not the Gram solver under test).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from matbackprop.nn import EigengapWarning
from matbackprop.nn.functional import ncuts_loss, normalized_cuts

K, D = 8, 64
# the default may be at most this factor above the SVD route's float32 error
SVD_ERROR_FACTOR = 1.5


def _problem(m: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    F = torch.rand(1, m, D, generator=g, dtype=torch.float64) ** 2
    labels = torch.randint(0, K, (1, m), generator=g)
    return F, labels


def _gradient(F, labels, **options):
    F = F.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EigengapWarning)  # the gap is small on purpose
        result = normalized_cuts(F, K, num_segments=K, **options)
    loss = ncuts_loss(result, labels, num_segments=K)
    return torch.autograd.grad(loss, F)[0]


def _plain_float32_gram_gradient(F, labels):
    """The naive alternative: eigh of a float32 ``GᵀG`` with torch autograd (the control)."""
    F = F.clone().requires_grad_()
    degrees = (F @ F.sum(1, keepdim=True).mT).squeeze(-1)
    G = F * degrees.rsqrt().unsqueeze(-1)
    lam, V = torch.linalg.eigh(G.mT @ G)
    lam, V = lam.flip(-1)[..., :K], V.flip(-1)[..., :K]
    Z = G @ V * lam.rsqrt().unsqueeze(-2)
    loss = ncuts_loss(Z, labels, degrees=degrees, num_segments=K)
    return torch.autograd.grad(loss, F)[0]


def _relative_error(gradient, reference):
    return float((gradient.double() - reference).norm() / reference.norm())


def _errors(m: int) -> dict[str, float]:
    F, labels = _problem(m)
    reference = _gradient(F, labels, solver="svd")
    F32 = F.float()
    return {
        "default": _relative_error(_gradient(F32, labels), reference),
        "svd": _relative_error(_gradient(F32, labels, solver="svd"), reference),
        "gram": _relative_error(_gradient(F32, labels, solver="gram"), reference),
        "plain float32 gram": _relative_error(_plain_float32_gram_gradient(F32, labels), reference),
    }


def _check(errors: dict[str, float]) -> None:
    bound = SVD_ERROR_FACTOR * errors["svd"]
    assert errors["default"] <= bound, errors
    assert errors["gram"] <= bound, errors
    # the bound discriminates: a float32 Gram matrix loses the subspace (error ~ eps λ₁/gap)
    assert errors["plain float32 gram"] > bound, errors


def test_default_float32_gradient_within_the_svd_routes_error_m4096():
    # measured (relative 2-norm): Intel + MKL default 6.2e-5, svd 1.6e-4, plain float32 Gram
    # 5.6e-4; AMD Zen 4 + MKL default 2.2e-5, svd 1.5e-4, plain 6.0e-4 (3.1e-4 for the default
    # before H = GᵀZ̄ was summed in partial sums: this test failed there)
    _check(_errors(4096))


@pytest.mark.slow
def test_default_float32_gradient_within_the_svd_routes_error_m65536():
    # measured: default 6.7e-3, svd 6.9e-3, plain float32 Gram 1.4e-2
    _check(_errors(65536))


def test_eigengap_warning_names_the_remedy_in_float32():
    F, _ = _problem(4096)
    with pytest.warns(EigengapWarning) as record:
        normalized_cuts(F.float(), K)
    message = str(record[0].message)
    assert "float32" in message and "eps/gap" in message
    for remedy in ("float64 features", "larger gap", "smaller k"):
        assert remedy in message, message
    # the float64 gap passes float64's threshold: no warning, nothing to remedy
    with warnings.catch_warnings():
        warnings.simplefilter("error", EigengapWarning)
        normalized_cuts(F, K)
