"""SPDNet layers: BiMap (Stiefel via QR), ReEig (clamp, Daleckii–Krein), LogEig."""

from __future__ import annotations

import math

import pytest
import scipy.linalg
import torch
from torch import nn
from torch.autograd import gradcheck

from matbackprop.nn import BiMap, LogEig, ReEig
from matbackprop.nn._spd import stiefel_from_raw
from matbackprop.nn.functional import symmetric_dim, vectorize_symmetric

F64 = torch.float64


def random_orthogonal(n, *, seed=0):
    Q, R = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed),
                                       dtype=F64))  # fmt: skip
    return Q * torch.sign(torch.diagonal(R)).unsqueeze(-2)


def with_spectrum(values, *, seed=0):
    lam = torch.as_tensor(values, dtype=F64)
    U = random_orthogonal(lam.shape[-1], seed=seed)
    A = (U * lam) @ U.mT
    return 0.5 * (A + A.mT), U


def random_spd(n, *, seed=0, batch=()):
    X = torch.randn(*batch, n, 2 * n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return X @ X.mT / (2 * n) + 0.1 * torch.eye(n, dtype=F64)


# ----------------------------------------------------------------------------- BiMap


def test_bimap_smoke_shapes_and_orthonormal_weight():
    torch.manual_seed(0)
    layer = BiMap(6, 3).double()
    W = layer.weight
    torch.testing.assert_close(W.mT @ W, torch.eye(3, dtype=F64))
    out = layer(random_spd(6, batch=(2, 4)))
    assert out.shape == (2, 4, 3, 3)
    assert torch.linalg.eigvalsh(out).min() > 0
    assert "in_dim=6, out_dim=3" in repr(layer)


def test_bimap_known_answer_and_eigenvalue_preservation():
    torch.manual_seed(1)
    layer = BiMap(4, 2).double()
    with torch.no_grad():
        layer.raw_weight.copy_(torch.eye(4, 2, dtype=F64) * 3.0)  # W = first two axes
    X = random_spd(4, seed=2)
    torch.testing.assert_close(layer(X), X[:2, :2])
    square = BiMap(5, 5).double()
    X5 = random_spd(5, seed=3)
    torch.testing.assert_close(torch.linalg.eigvalsh(square(X5)), torch.linalg.eigvalsh(X5))


def test_stiefel_from_raw_keeps_orthonormal_input_and_is_orthonormal():
    Q = random_orthogonal(5, seed=4)[:, :3]
    torch.testing.assert_close(stiefel_from_raw(Q), Q)
    raw = torch.randn(7, 4, generator=torch.Generator().manual_seed(5), dtype=F64)
    W = stiefel_from_raw(raw)
    torch.testing.assert_close(W.mT @ W, torch.eye(4, dtype=F64))


def test_bimap_gradcheck_input_and_weight():
    raw = torch.randn(5, 3, generator=torch.Generator().manual_seed(6), dtype=F64)
    X = random_spd(5, seed=7, batch=(2,))

    def fn(X, raw):
        W = stiefel_from_raw(raw)
        return W.mT @ (0.5 * (X + X.mT)) @ W

    assert gradcheck(fn, (X.requires_grad_(), raw.requires_grad_()))
    layer = BiMap(5, 3).double()
    out = layer(X.detach())
    out.sum().backward()
    assert torch.isfinite(layer.raw_weight.grad).all()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 2), "`in_dim` must be a positive int"),
        ((3, 0), "`out_dim` must be a positive int"),
        ((3.0, 2), "`in_dim` must be a positive int"),
        ((3, 4), "`out_dim` must be <= in_dim"),
    ],
)
def test_bimap_construction_errors(args, match):
    with pytest.raises(ValueError, match=match):
        BiMap(*args)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (torch.ones(4, 4, dtype=F64).numpy(), "`X` must be a torch.Tensor"),
        (torch.ones(3, 3, dtype=F64), r"`X` must have shape \(..., 4, 4\)"),
        (torch.ones(4, 3, dtype=F64), r"`X` must have shape \(..., n, n\)"),
        (torch.ones(4, 4, dtype=torch.int64), "`X` must have dtype"),
    ],
)
def test_bimap_forward_errors(X, match):
    with pytest.raises(ValueError, match=match):
        BiMap(4, 2).double()(X)


# ----------------------------------------------------------------------------- ReEig


def test_reeig_known_answer_and_identity_above_threshold():
    X, U = with_spectrum([0.01, 0.05, 0.5, 2.0], seed=8)
    expected = (U * torch.tensor([0.1, 0.1, 0.5, 2.0], dtype=F64)) @ U.mT
    torch.testing.assert_close(ReEig(0.1)(X), expected)
    Y = random_spd(4, seed=9) + torch.eye(4, dtype=F64)
    torch.testing.assert_close(ReEig(1e-3)(Y), Y)


def test_reeig_gradient_is_the_daleckii_krein_form_zero_in_the_clamped_block():
    eps = 0.1
    sigma = torch.tensor([0.01, 0.02, 0.5, 0.5, 1.3], dtype=F64)  # two clamped, a tie above
    X, U = with_spectrum(sigma, seed=10)
    G = torch.randn(5, 5, generator=torch.Generator().manual_seed(11), dtype=F64)
    Xr = X.clone().requires_grad_()
    (ReEig(eps)(Xr) * G).sum().backward()
    m = sigma.clamp_min(eps)
    P = torch.empty(5, 5, dtype=F64)
    for i in range(5):
        for j in range(5):
            if abs(sigma[i] - sigma[j]) < 1e-12:
                P[i, j] = float(sigma[i] > eps)
            else:
                P[i, j] = (m[i] - m[j]) / (sigma[i] - sigma[j])
    expected = U @ (P * (U.mT @ (0.5 * (G + G.mT)) @ U)) @ U.mT
    torch.testing.assert_close(Xr.grad, expected, atol=1e-10, rtol=1e-10)
    block = U[:, :2].mT @ Xr.grad @ U[:, :2]  # clamped eigenspace
    assert block.abs().max() < 1e-10


@pytest.mark.parametrize(
    "spectrum",
    [
        [0.3, 0.7, 1.1, 1.6],  # nothing clamped
        [0.01, 0.02, 0.03, 1.5],  # three clamped (they become a tie at eps)
        [0.02, 0.6, 0.6, 0.6],  # exact tie above eps
    ],
)
def test_reeig_gradcheck(spectrum):
    X, _ = with_spectrum(spectrum, seed=12)

    def fn(X):
        return ReEig(0.1)(0.5 * (X + X.mT))

    assert gradcheck(fn, (X.requires_grad_(),))


def test_reeig_finite_where_torch_eigh_autograd_is_not():
    X = torch.diag(torch.tensor([0.01, 0.01, 0.02, 1.0], dtype=F64))
    Xt = X.clone().requires_grad_()
    lam, U = torch.linalg.eigh(Xt)
    torch_out = (U * lam.clamp_min(0.1).unsqueeze(-2)) @ U.mT
    (grad_torch,) = torch.autograd.grad(torch_out[0, 1] + torch_out[1, 0], Xt)
    assert not torch.isfinite(grad_torch).all()
    Xo = X.clone().requires_grad_()
    ours = ReEig(0.1)(Xo)
    torch.testing.assert_close(ours, torch_out.detach())
    (grad,) = torch.autograd.grad(ours[0, 1] + ours[1, 0], Xo)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("eps", [0.0, -1.0, math.nan, True])
def test_reeig_invalid_eps(eps):
    with pytest.raises(ValueError, match="`eps` must be a finite number > 0"):
        ReEig(eps)


def test_reeig_invalid_input_and_compute_dtype():
    with pytest.raises(ValueError, match="`X` is not a valid input of ReEig.*symmetric"):
        ReEig(0.1)(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64))
    with pytest.raises(ValueError, match="`compute_dtype` must be"):
        ReEig(0.1, compute_dtype=torch.float16)


# ----------------------------------------------------------------------------- LogEig


def test_logeig_inverts_expm_and_vectorizes():
    S = torch.randn(4, 4, generator=torch.Generator().manual_seed(13), dtype=F64)
    S = 0.5 * (S + S.mT)
    X = torch.from_numpy(scipy.linalg.expm(S.numpy()))
    torch.testing.assert_close(LogEig()(X), S, atol=1e-12, rtol=1e-12)
    v = LogEig(vectorize=True)(X.expand(3, 4, 4))
    assert v.shape == (3, symmetric_dim(4))
    torch.testing.assert_close(v[0], vectorize_symmetric(S), atol=1e-12, rtol=1e-12)


def test_logeig_gradcheck_random_and_repeated():
    for X in (random_spd(4, seed=14), with_spectrum([0.5, 0.5, 0.5, 2.0], seed=15)[0]):
        assert gradcheck(lambda X: LogEig()(0.5 * (X + X.mT)), (X.clone().requires_grad_(),))


def test_logeig_errors():
    with pytest.raises(ValueError, match="`X` is not a valid input of LogEig.*positive definite"):
        LogEig()(torch.diag(torch.tensor([1.0, -1.0], dtype=F64)))
    with pytest.raises(ValueError, match="`eps` must be a finite number >= 0"):
        LogEig(eps=-1.0)
    with pytest.raises(ValueError, match="`vectorize` must be a bool"):
        LogEig(vectorize=1)


# ----------------------------------------------------------------------------- network


def test_float32_in_float32_out():
    X = random_spd(6, seed=16, batch=(2,)).float()
    out = LogEig(vectorize=True)(ReEig(1e-3)(BiMap(6, 4)(X)))
    assert out.dtype == torch.float32 and out.shape == (2, 10)


def test_tiny_spdnet_trains_and_keeps_weight_on_the_stiefel_manifold():
    torch.manual_seed(17)
    net = nn.Sequential(BiMap(8, 4), ReEig(1e-2), LogEig(vectorize=True), nn.Linear(10, 2))
    net = net.double()
    X = random_spd(8, seed=18, batch=(16,))
    y = torch.arange(16) % 2
    X[y == 1] = X[y == 1] * 3.0  # separable by scale
    losses = []
    for _ in range(30):
        net.zero_grad()
        loss = nn.functional.cross_entropy(net(X), y)
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    W = net[0].weight
    torch.testing.assert_close(W.mT @ W, torch.eye(4, dtype=F64))
