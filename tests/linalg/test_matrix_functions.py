"""Contract suite: every matrix function in the registry passes the same checks.

Forward against SciPy, float64 gradcheck (random and degenerate input), gradgradcheck,
agreement with torch autograd where that is finite, the ValueError paths, dtype/device, vmap.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from matbackprop.linalg import logm, powm, spectral_function, sqrtm

from .. import builders as B
from .. import references as ref
from .registry import IDS, REGISTRY

F64 = torch.float64


def _sym(fn, **kw):
    return lambda X: fn(0.5 * (X + X.mT), check=False, **kw)


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
@pytest.mark.parametrize("n", [1, 4, 9])
def test_forward_matches_scipy(entry, n):
    A = B.random_spd(n, seed=n)
    ours = entry.fn(A)
    ref = torch.from_numpy(np.real(entry.scipy_ref(A.numpy())))
    assert ours.shape == A.shape and ours.dtype == F64
    torch.testing.assert_close(ours, ref, atol=B.tolerance(F64, n, float(ref.abs().max())), rtol=0)


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_forward_batched_matches_loop(entry):
    A = B.random_spd(4, seed=3, batch=(2, 3))
    out = entry.fn(A)
    loop = torch.stack([torch.stack([entry.fn(A[i, j]) for j in range(3)]) for i in range(2)])
    torch.testing.assert_close(out, loop, atol=B.tolerance(F64, 4, 10.0), rtol=0)


# ----------------------------------------------------------------------------- gradients


def _degenerate_inputs():
    return {
        "random": B.random_spd(5, seed=1),
        "identity": B.identity(4),
        "repeated": B.repeated(5, 3, value=0.7, seed=2),
        "near_degenerate_1e-8": B.near_degenerate(1e-8, seed=3),
        "batch_mixed": torch.stack(
            [B.identity(4), B.repeated(4, 2, seed=4), B.random_spd(4, seed=5)]
        ),
    }


DEGENERATE = list(_degenerate_inputs())


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
@pytest.mark.parametrize("case", DEGENERATE)
def test_gradcheck(entry, case):
    A = _degenerate_inputs()[case].clone().requires_grad_()
    assert gradcheck(_sym(entry.fn), (A,))


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_gradcheck_with_divided_differences_in_many_chunks(entry, monkeypatch):
    """The once-differentiable backward forms P chunk by chunk of the batch: force one matrix
    per chunk (and a user function with the tie band, ``rtol``) and compare with finite
    differences."""
    import matbackprop.linalg._spectral as spectral

    monkeypatch.setattr(spectral, "_DD_CHUNK_BYTES", 1)
    A = _degenerate_inputs()["batch_mixed"].clone().requires_grad_()
    assert gradcheck(_sym(entry.fn), (A,))
    cube = partial(spectral_function, f=lambda x: x**3, df=lambda x: 3 * x**2, rtol=1e-6)
    assert gradcheck(lambda X: cube(0.5 * (X + X.mT), check=False), (A,))


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_gradcheck_rank_deficient_covariance_as_function_of_F(entry):
    """``f(FᵀF + εI)`` as a function of ``F`` with n < d: ε repeated d − n times."""
    F = B.rank_deficient_factor(3, 6, seed=7).requires_grad_()
    eye = torch.eye(6, dtype=F64)

    def fn(F):
        return entry.fn(F.mT @ F + 0.05 * eye, check=False)

    assert gradcheck(fn, (F,))


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_gradgradcheck_rank_deficient_covariance_as_function_of_F(entry):
    if not entry.twice_differentiable:
        pytest.skip(
            f"{entry.name} has no f″: once differentiable by design (a second differentiation "
            "raises; see test_spectral_function_without_d2f_refuses_double_backward)"
        )
    F = B.rank_deficient_factor(3, 6, seed=7).requires_grad_()
    eye = torch.eye(6, dtype=F64)
    assert gradgradcheck(lambda F: entry.fn(F.mT @ F + 0.05 * eye, check=False), (F,))


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_gradcheck_eps_option_on_rank_deficient(entry):
    if entry.domain == "any":
        pytest.skip("eps regularisation is for functions that need definiteness")
    F = B.rank_deficient_factor(2, 5, seed=8).requires_grad_()
    assert gradcheck(lambda F: entry.fn(F.mT @ F, eps=0.1, check=False), (F,))


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_gradcheck_tiny_and_huge_scales(entry):
    """``X ↦ f(s·sym(X))`` for ``s`` far from 1: the backward is exact at every scale."""
    X = B.random_spd(4, seed=9).requires_grad_()
    for s in entry.scales:
        out_scale = float(entry.fn(s * X.detach()).abs().max())

        def fn(X, s=s, out_scale=out_scale):
            return entry.fn(s * 0.5 * (X + X.mT), check=False) / out_scale

        assert gradcheck(fn, (X,)), f"scale {s}"


@pytest.mark.parametrize(
    "entry", [e for e in REGISTRY if e.twice_differentiable], ids=lambda e: e.name
)
@pytest.mark.parametrize("case", ["random", "identity", "repeated"])
def test_gradgradcheck(entry, case):
    A = _degenerate_inputs()[case][:4, :4] if case != "random" else B.random_spd(4, seed=11)
    A = A.clone().requires_grad_()
    assert gradgradcheck(_sym(entry.fn), (A,))


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_gradient_lives_in_sym_n(entry):
    """Symmetric in, symmetric out: for a non-symmetric incoming gradient G the gradient with
    respect to (symmetric) A is that of G_sym, and symmetric (also without sym(X) wrappers)."""
    A = B.random_spd(4, seed=31)
    G = torch.randn(4, 4, generator=torch.Generator().manual_seed(32), dtype=F64)
    grads = []
    for g in (G, 0.5 * (G + G.mT)):
        X = A.clone().requires_grad_()
        (entry.fn(X) * g).sum().backward()
        grads.append(X.grad)
    torch.testing.assert_close(grads[0], grads[0].mT, atol=1e-14, rtol=0)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-14, rtol=0)


def test_spectral_function_without_d2f_refuses_double_backward():
    A = B.random_spd(3, seed=12).requires_grad_()
    Y = spectral_function(A, torch.atan, lambda x: 1 / (1 + x * x))
    (g,) = torch.autograd.grad(Y.sum(), A, create_graph=True)
    with pytest.raises(RuntimeError, match="f″"):
        g.sum().backward()


def test_spectral_function_with_d2f_supports_double_backward():
    A = B.random_spd(4, seed=13).requires_grad_()
    fn = partial(
        spectral_function,
        f=torch.atan,
        df=lambda x: 1 / (1 + x * x),
        d2f=lambda x: -2 * x / (1 + x * x) ** 2,
        check=False,
    )
    assert gradgradcheck(_sym(fn), (A,))


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_matches_torch_autograd_on_separated_spectrum(entry):
    """Independent reference: autograd through torch.linalg.eigh + U f(Σ) Uᵀ."""
    A = B.with_spectrum(torch.tensor([0.5, 1.0, 1.7, 2.6, 3.1], dtype=F64), seed=14)
    G = B.random_symmetric(5, seed=15)
    A1 = A.clone().requires_grad_()
    (entry.fn(A1) * G).sum().backward()
    A2 = A.clone().requires_grad_()
    lam, U = torch.linalg.eigh(A2)
    ((U * entry.scalar(lam).unsqueeze(-2)) @ U.mT * G).sum().backward()
    torch.testing.assert_close(A1.grad, A2.grad, atol=1e-10, rtol=1e-8)


def _torch_route_grad(entry, A, G):
    A = A.clone().requires_grad_()
    lam, U = torch.linalg.eigh(A)
    ((U * entry.scalar(lam).unsqueeze(-2)) @ U.mT * G).sum().backward()
    return A.grad


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_exact_at_repeated_eigenvalues_where_torch_autograd_is_nan(entry):
    """Known answer: for diagonal A, ∂⟨G, f(A)⟩/∂A = P ∘ G_sym with P the divided differences."""
    lam = torch.tensor([0.05, 0.05, 0.05, 1.0, 2.0, 3.0], dtype=F64)
    A = torch.diag(lam)
    G = B.random_symmetric(6, seed=17)
    A1 = A.clone().requires_grad_()
    (entry.fn(A1) * G).sum().backward()
    f, l1, l2 = entry.scalar, lam.unsqueeze(-1), lam.unsqueeze(-2)
    ties = l1 == l2
    x = lam.clone().requires_grad_()
    (df,) = torch.autograd.grad(f(x).sum(), x)
    P = torch.where(
        ties, df.unsqueeze(-1).expand(6, 6), (f(l1) - f(l2)) / torch.where(ties, 1.0, l1 - l2)
    )
    torch.testing.assert_close(A1.grad, P * G, atol=1e-12, rtol=1e-10)
    assert not torch.isfinite(_torch_route_grad(entry, A, G)).all()


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_rank_deficient_covariance_torch_autograd_is_wrong_or_nonfinite(entry):
    """On FᵀF + εI (ε repeated up to rounding) torch's route is non-finite or far off; ours is
    finite and matches central finite differences of the forward."""
    F = B.rank_deficient_factor(3, 6, seed=16)
    A = F.mT @ F + 0.05 * torch.eye(6, dtype=F64)
    A = 0.5 * (A + A.mT)
    G = B.random_symmetric(6, seed=17)
    A1 = A.clone().requires_grad_()
    (entry.fn(A1) * G).sum().backward()
    assert torch.isfinite(A1.grad).all()
    E = B.random_symmetric(6, seed=30)
    h = 1e-6
    fd = ((entry.fn(A + h * E) - entry.fn(A - h * E)) * G).sum() / (2 * h)
    torch.testing.assert_close((A1.grad * E).sum(), fd, atol=1e-7, rtol=1e-6)
    theirs = _torch_route_grad(entry, A, G)
    finite = bool(torch.isfinite(theirs).all())
    assert not finite or float((theirs - A1.grad).abs().max()) > 1e-3


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_adjoint_dot_product(entry):
    """⟨L(dX), G⟩ = ⟨dX, L*(G)⟩ with L from forward mode and L* from backward, *and* each side
    against a fourth-order difference of the forward: jvp and backward share P, so their
    agreement alone would not see a wrong P (issue 8 §3: P × 3 passed)."""
    A = B.random_spd(5, seed=19)
    dX = B.random_symmetric(5, seed=20)
    G = B.random_symmetric(5, seed=21)
    _, L_dX = torch.func.jvp(lambda X: entry.fn(X, check=False), (A,), (dX,))
    _, vjp = torch.func.vjp(lambda X: entry.fn(X, check=False), A)
    (Lstar_G,) = vjp(G)
    lhs, rhs = (L_dX * G).sum(), (dX * Lstar_G).sum()
    torch.testing.assert_close(lhs, rhs, atol=1e-12, rtol=1e-10)
    fd = (ref.richardson_difference(lambda X: entry.fn(X, check=False), A, dX, 1e-3) * G).sum()
    torch.testing.assert_close(lhs, fd, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(rhs, fd, atol=1e-9, rtol=1e-9)


# ------------------------------------------------------------------- dtype / device / vmap


def _known_spd(n: int, seed: int):
    """``A = Q diag(λ) Qᵀ`` with its exact eigenpairs (λ in [0.5, 2.5], Q from a seed)."""
    g = torch.Generator().manual_seed(seed)
    lam = 0.5 + 2.0 * torch.rand(n, generator=g, dtype=F64)
    Q = B.random_orthogonal(n, seed=seed + 1)
    return B.with_spectrum(lam, seed=seed + 1), Q, lam.tolist()


def _float32_tolerance(n: int, scale: float) -> float:
    # float32 rounding of the input (eps32 |A|) and of the decomposition (n eps32 |A|), times
    # the Lipschitz constants of f on [0.5, 2.5] (below 4 for every entry)
    return 4 * B.tolerance(torch.float32, n, scale)


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_float32_follows_input_and_matches_independent_references(entry):
    """dtype follows the input, and the float32 values are those of the independent float64
    references (SciPy forward, 50-digit divided differences for the gradient) to float32
    rounding (issue 8 §3: this checked dtype and finiteness only)."""
    A64, Q, lam = _known_spd(6, seed=22)
    G = B.random_symmetric(6, seed=23)
    A32 = A64.float().requires_grad_()
    out = entry.fn(A32)
    assert out.dtype == torch.float32
    (out * G.float()).sum().backward()
    assert A32.grad.dtype == torch.float32
    expected = torch.from_numpy(np.real(entry.scipy_ref(A64.numpy())))
    tol = _float32_tolerance(6, float(expected.abs().max()))
    torch.testing.assert_close(out.double(), expected, atol=tol, rtol=0)
    grad = ref.spectral_gradient(entry.ref_name, Q, lam, G, entry.ref_p)
    tol = _float32_tolerance(6, float(grad.abs().max()))
    torch.testing.assert_close(A32.grad.double(), grad, atol=tol, rtol=0)


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_compute_dtype_float64_for_float32_input(entry):
    """``compute_dtype=float64``: float32 in and out, values those of the float64 references
    to the final float32 rounding only (issue 8 §3: this checked dtype and finiteness only)."""
    A64, Q, lam = _known_spd(5, seed=24)
    A = A64.float().requires_grad_()
    G = B.random_symmetric(5, seed=25)
    out = entry.fn(A, compute_dtype=F64)
    assert out.dtype == torch.float32
    (out * G.float()).sum().backward()
    assert A.grad.dtype == torch.float32
    # the references at the float32-rounded input, which is what the float64 computation sees
    A_in = A.detach().double()
    expected = torch.from_numpy(np.real(entry.scipy_ref(A_in.numpy())))
    eps32 = float(torch.finfo(torch.float32).eps)
    torch.testing.assert_close(
        out.double(), expected, atol=2 * eps32 * float(expected.abs().max()), rtol=0
    )
    lam_in, Q_in = torch.linalg.eigh(A_in)  # eigenpairs of the rounded input (for ref. only)
    grad = ref.spectral_gradient(
        entry.ref_name, Q_in, lam_in.tolist(), G.float().double(), entry.ref_p
    )
    torch.testing.assert_close(
        A.grad.double(), grad, atol=2 * eps32 * float(grad.abs().max()), rtol=0
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_cuda_follows_input(entry):
    A = B.random_spd(5, seed=24).cuda().requires_grad_()
    out = entry.fn(A)
    assert out.device == A.device
    out.sum().backward()
    assert A.grad.device == A.device


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
def test_vmap_matches_batched(entry):
    A = B.random_spd(4, seed=25, batch=(3,))
    out = torch.func.vmap(lambda X: entry.fn(X, check=False))(A)
    torch.testing.assert_close(out, entry.fn(A), atol=1e-13, rtol=0)
    grads = torch.func.vmap(torch.func.grad(lambda X: entry.fn(X, check=False).trace()))(A)
    A2 = A.clone().requires_grad_()
    entry.fn(A2).diagonal(dim1=-2, dim2=-1).sum().backward()
    torch.testing.assert_close(grads, A2.grad, atol=1e-12, rtol=0)


# ----------------------------------------------------------------------------- options


def test_eps_equals_explicit_shift():
    A = B.random_spd(4, seed=26)
    torch.testing.assert_close(logm(A, eps=0.3), logm(A + 0.3 * torch.eye(4, dtype=F64)))


def test_clamp_rectifies_eigenvalues_and_zeroes_their_gradient():
    A = B.with_spectrum(torch.tensor([-1.0, 0.01, 2.0, 3.0], dtype=F64), seed=27)
    lam, U = torch.linalg.eigh(A)
    out = logm(A, clamp=0.1)
    ref = (U * torch.log(lam.clamp_min(0.1)).unsqueeze(-2)) @ U.mT
    torch.testing.assert_close(out, ref)
    A1 = A.clone().requires_grad_()
    logm(A1, clamp=0.1).sum().backward()
    g_tilde = U.mT @ A1.grad @ U  # gradient in the eigenbasis
    # rows/cols of clamped eigenvalues pair with each other: P = 0 there
    assert g_tilde[:2, :2].abs().max() < 1e-12
    assert gradcheck(
        lambda X: logm(0.5 * (X + X.mT), clamp=0.1, check=False), (A.clone().requires_grad_(),)
    )


# ----------------------------------------------------------------------------- errors

BAD_INPUTS = {
    "not a tensor": ([[1.0, 0.0], [0.0, 1.0]], "torch.Tensor"),
    "1-D": (torch.ones(3, dtype=F64), r"shape \(\.\.\., n, n\)"),
    "non-square": (torch.ones(3, 2, dtype=F64), "square"),
    "empty": (torch.ones(2, 0, 0, dtype=F64), "non-empty"),
    "integer dtype": (torch.eye(3, dtype=torch.int64), "dtype"),
    "NaN": (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]], dtype=F64), "finite"),
    "inf": (torch.tensor([[float("inf"), 0.0], [0.0, 1.0]], dtype=F64), "finite"),
    "asymmetric": (torch.tensor([[2.0, 1.0], [0.0, 2.0]], dtype=F64), "symmetric"),
}


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
@pytest.mark.parametrize("bad", list(BAD_INPUTS))
def test_invalid_input_raises_value_error_naming_A(entry, bad):
    A, pattern = BAD_INPUTS[bad]
    with pytest.raises(ValueError, match=pattern) as info:
        entry.fn(A)
    assert "`A`" in str(info.value)


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.domain != "any"], ids=lambda e: e.name)
def test_outside_domain_raises(entry):
    A = B.with_spectrum(torch.tensor([-0.5, 1.0, 2.0], dtype=F64), seed=28)
    with pytest.raises(ValueError, match="positive") as info:
        entry.fn(A)
    assert "eps" in str(info.value)


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.domain == "pd"], ids=lambda e: e.name)
def test_singular_needs_eps_or_clamp(entry):
    A = B.rank_deficient(2, 4, 0.0, seed=29)
    A = 0.5 * (A + A.mT)
    with pytest.raises(ValueError, match="positive definite"):
        entry.fn(A)
    shifted = torch.from_numpy(entry.scipy_ref(A.numpy() + 1e-3 * np.eye(4)))
    torch.testing.assert_close(entry.fn(A, eps=1e-3), shifted, atol=1e-9, rtol=1e-9)
    w, V = np.linalg.eigh(A.numpy())  # known answer of the clamp: V f(max(w, c)) Vᵀ
    clamped = torch.from_numpy(
        (V * entry.scalar(torch.from_numpy(np.maximum(w, 1e-3))).numpy()) @ V.T
    )
    torch.testing.assert_close(entry.fn(A, clamp=1e-3), clamped, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"eps": -1.0}, "`eps`"),
        ({"eps": float("nan")}, "`eps`"),
        ({"clamp": float("inf")}, "`clamp`"),
        ({"compute_dtype": torch.int32}, "`compute_dtype`"),
    ],
)
def test_invalid_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        logm(B.random_spd(3), **kwargs)


def test_invalid_power():
    with pytest.raises(ValueError, match="`p`"):
        powm(B.random_spd(3), float("nan"))


def test_check_false_skips_validation():
    A = torch.tensor([[2.0, 1.0], [0.0, 2.0]], dtype=F64)  # asymmetric
    out = logm(A, check=False)  # symmetrized internally, no error
    torch.testing.assert_close(out, logm(0.5 * (A + A.mT)))


def test_float16_input_needs_compute_dtype():
    A = B.random_spd(3).half()
    with pytest.raises(ValueError, match="compute_dtype"):
        sqrtm(A)
    out = sqrtm(A, compute_dtype=torch.float32)
    assert out.dtype == torch.float16
