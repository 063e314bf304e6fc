"""NormalizedCuts layer: gradients (both routes), route agreement, eigengap check, dtypes."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.nn import EigengapWarning, NCutsResult, NormalizedCuts
from matbackprop.nn.functional import (
    gaussian_affinity,
    ncuts_loss,
    normalized_cuts,
    normalized_cuts_affinity,
    segment_counts,
)

F64 = torch.float64


def positive_features(B: int, m: int, d: int, seed: int, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, m, d, generator=g, dtype=dtype) + 0.1


def labels_with_all_segments(B: int, m: int, r: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, r, (B, m), generator=g)
    labels[:, :r] = torch.arange(r)
    return labels


def degrees_of(F: torch.Tensor) -> torch.Tensor:
    return (F @ F.mT).sum(-1)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    ("route", "solver"), [("lowrank", "svd"), ("lowrank", "gram"), ("dense", "svd")]
)
def test_gradcheck_loss_rank_deficient_with_floor_active(route, solver):
    # m > d: the affinity FFᵀ has rank d, so M has the eigenvalue 0 with multiplicity m - d.
    B, m, d = 2, 12, 4
    F = positive_features(B, m, d, seed=1)
    F[0, 3] *= 1e-3  # a nearly featureless node: its degree is below the floor
    labels = labels_with_all_segments(B, m, 3, seed=2)
    labels[1, 5] = 7  # a fourth segment in image 1: k = (3, 4)
    k = segment_counts(labels)
    assert k.tolist() == [3, 4]
    floor = 0.05
    d0 = degrees_of(F)
    assert bool((d0 < floor * d0.mean(-1, keepdim=True)).any())  # the floor is active

    def loss(F):
        result = normalized_cuts(
            F, k, route=route, solver=solver, nonneg="none", degree_floor=floor
        )
        return ncuts_loss(result, labels, reduction="sum")

    value = loss(F)
    assert torch.isfinite(value)
    assert gradcheck(loss, (F.requires_grad_(),))


@pytest.mark.parametrize("route", ["lowrank", "dense"])
def test_gradcheck_gauge_invariant_function_of_Z_and_eigenvalues(route):
    B, m, d = 2, 10, 4
    g = torch.Generator().manual_seed(3)
    F = torch.randn(B, m, d, generator=g, dtype=F64)
    C = torch.randn(B, m, m, generator=g, dtype=F64)
    w = torch.randn(B, 2, generator=g, dtype=F64)

    def f(F):
        result = normalized_cuts(F, 2, route=route, nonneg="softplus")
        return ((result.Z @ result.Z.mT) * C).sum() + (result.eigenvalues * w).sum()

    assert gradcheck(f, (F.requires_grad_(),))


def test_gradcheck_affinity_route_through_gaussian_kernel():
    B, m = 1, 9
    g = torch.Generator().manual_seed(4)
    positions = torch.rand(B, m, 2, generator=g, dtype=F64)
    colors = torch.rand(B, m, 3, generator=g, dtype=F64)
    C = torch.randn(B, m, m, generator=g, dtype=F64)

    def f(colors):
        W = gaussian_affinity(positions, colors, sigma_xy=0.6, sigma_rgb=0.5)
        result = normalized_cuts_affinity(W, 3)
        return ((result.Z @ result.Z.mT) * C).sum() + result.eigenvalues.sum()

    assert gradcheck(f, (colors.requires_grad_(),))


def test_gradcheck_affinity_route_loss():
    B, m = 2, 8
    g = torch.Generator().manual_seed(5)
    A = torch.rand(B, m, m, generator=g, dtype=F64)
    labels = labels_with_all_segments(B, m, 3, seed=6)

    def f(A):
        W = 0.5 * (A + A.mT)  # symmetric, non-negative
        return ncuts_loss(normalized_cuts_affinity(W, 3), labels)

    assert gradcheck(f, (A.requires_grad_(),))


# ----------------------------------------------------------------------------- routes agree


@pytest.mark.parametrize(("m", "d"), [(30, 5), (6, 9)])
def test_lowrank_and_dense_routes_agree(m, d):
    B = 2
    F = positive_features(B, m, d, seed=7)
    labels = labels_with_all_segments(B, m, 3, seed=8)
    k = torch.tensor([3, 2])
    outputs = {}
    for name, kwargs in {
        "svd": dict(route="lowrank"),
        "gram": dict(route="lowrank", solver="gram"),
        "dense": dict(route="dense"),
    }.items():
        X = F.clone().requires_grad_(True)
        result = normalized_cuts(X, k, nonneg="none", **kwargs)
        loss = ncuts_loss(result, labels)
        loss.backward()
        outputs[name] = (result, loss.detach(), X.grad)
    ref_result, ref_loss, ref_grad = outputs["dense"]
    for name in ("svd", "gram"):
        result, loss, grad = outputs[name]
        torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(result.eigenvalues, ref_result.eigenvalues, rtol=0, atol=1e-12)
        torch.testing.assert_close(result.degrees, ref_result.degrees, rtol=1e-12, atol=0)
        P = result.Z @ result.Z.mT
        torch.testing.assert_close(P, ref_result.Z @ ref_result.Z.mT, rtol=0, atol=1e-10)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-7, atol=1e-10)


def test_embedding_is_the_top_eigenvectors_of_the_normalized_affinity():
    F = positive_features(1, 20, 6, seed=9)
    result = normalized_cuts(F, 3, nonneg="none")
    W = F[0] @ F[0].mT
    d = W.sum(-1)
    M = W / torch.sqrt(d.unsqueeze(-1) * d.unsqueeze(-2))
    Z, lam = result.Z[0], result.eigenvalues[0]
    torch.testing.assert_close(M @ Z, Z * lam, rtol=0, atol=1e-12)
    torch.testing.assert_close(Z.mT @ Z, torch.eye(3, dtype=F64), rtol=0, atol=1e-12)
    # λ₁ = 1 with eigenvector ∝ D^½ 1 (no floor active); descending order
    torch.testing.assert_close(lam[0], torch.tensor(1.0, dtype=F64))
    assert bool((lam[:-1] >= lam[1:]).all())
    torch.testing.assert_close(result.degrees[0], d)


def test_per_image_k_masks_columns_and_matches_single_image_results():
    F = positive_features(2, 15, 5, seed=10)
    labels = labels_with_all_segments(2, 15, 4, seed=11)
    k = torch.tensor([2, 4])
    batched = normalized_cuts(F, k, nonneg="none")
    assert batched.Z.shape == (2, 15, 4)
    assert bool((batched.Z[0, :, 2:] == 0).all()) and bool((batched.eigenvalues[0, 2:] == 0).all())
    per_image = ncuts_loss(batched, labels, reduction="none")
    for b in range(2):
        single = normalized_cuts(F[b : b + 1], int(k[b]), nonneg="none")
        torch.testing.assert_close(
            batched.Z[b, :, : k[b]] @ batched.Z[b, :, : k[b]].mT, single.Z[0] @ single.Z[0].mT
        )
        torch.testing.assert_close(per_image[b], ncuts_loss(single, labels[b : b + 1]))


def test_degree_floor_formula():
    F = positive_features(1, 10, 3, seed=12)
    F[0, 0] = 0.0  # zero features: degree 0
    result = normalized_cuts(F, 2, nonneg="none", degree_floor=0.1)
    d = degrees_of(F)
    torch.testing.assert_close(result.degrees, torch.maximum(d, 0.1 * d.mean(-1, keepdim=True)))
    result = normalized_cuts(F, 2, nonneg="none", degree_floor=0.0, degree_floor_abs=0.5)
    torch.testing.assert_close(result.degrees, d.clamp_min(0.5))
    assert torch.isfinite(result.Z).all()


def test_nonneg_maps():
    g = torch.Generator().manual_seed(13)
    X = torch.randn(1, 12, 4, generator=g, dtype=F64)
    for nonneg, mapped in {
        "relu": X.clamp_min(0),
        "softplus": torch.nn.functional.softplus(X),
        "square": X * X,
    }.items():
        got = normalized_cuts(X, 2, nonneg=nonneg, check_eigengap=False)
        want = normalized_cuts(mapped, 2, nonneg="none", check_eigengap=False)
        torch.testing.assert_close(got.Z @ got.Z.mT, want.Z @ want.Z.mT)


def test_module_forward_matches_functional_and_infers_k_from_labels():
    F = positive_features(2, 16, 5, seed=14)
    labels = labels_with_all_segments(2, 16, 3, seed=15) * 10 + 5  # labels {5, 15, 25}
    labels[1, 0] = 99  # image 1 has 4 segments
    layer = NormalizedCuts(nonneg="none")
    result = layer(F, labels=labels)
    assert isinstance(result, NCutsResult)
    assert result.k.tolist() == [3, 4]
    direct = normalized_cuts(F, [3, 4], nonneg="none")
    torch.testing.assert_close(result.Z, direct.Z)
    assert NormalizedCuts(2, nonneg="none")(F).k.tolist() == [2, 2]
    dense = NormalizedCuts(2, route="affinity")(F @ F.mT)
    torch.testing.assert_close(dense.Z @ dense.Z.mT, direct.Z[:, :, :2] @ direct.Z[:, :, :2].mT)
    assert "route='lowrank'" in repr(layer)


# ----------------------------------------------------------------------------- eigengap


def block_features(copies: int, per_block: int) -> torch.Tensor:
    """Disconnected identical blocks: M has eigenvalue 1 with multiplicity ``copies``."""
    eye = torch.eye(copies, dtype=F64)
    return eye.repeat_interleave(per_block, dim=0).unsqueeze(0)


def test_eigengap_warning_and_strict_error_on_degenerate_top_eigenvalue():
    F = block_features(3, 4)  # λ₁ = λ₂ = λ₃ = 1, then 0
    with pytest.warns(EigengapWarning, match="k=2"):
        result = normalized_cuts(F, 2, nonneg="none")
    assert float(result.eigengap[0]) < 1e-8
    with pytest.raises(ValueError, match="eigengap"):
        normalized_cuts(F, 2, nonneg="none", strict=True)
    with pytest.raises(ValueError, match="eigengap"):
        normalized_cuts_affinity(F @ F.mT, 1, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EigengapWarning)
        ok = normalized_cuts(F, 3, nonneg="none")  # k = number of blocks: gap 1
        normalized_cuts(F, 2, nonneg="none", check_eigengap=False)
    torch.testing.assert_close(ok.eigengap, torch.ones(1, dtype=F64))


def test_eigengap_is_checked_per_image_at_its_own_k():
    F = torch.cat([block_features(3, 4), block_features(3, 4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", EigengapWarning)
        normalized_cuts(F, [3, 3], nonneg="none")
    with pytest.warns(EigengapWarning, match="image 1: k=1"):
        normalized_cuts(F, [3, 1], nonneg="none")


def test_eigengap_full_rank_k_equal_m_is_infinite():
    F = positive_features(1, 4, 6, seed=16)
    result = normalized_cuts(F, 4, nonneg="none")
    assert float(result.eigengap[0]) == float("inf")


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("route", ["lowrank", "dense"])
def test_float32_follows_input_and_matches_float64(route):
    F = positive_features(2, 40, 8, seed=17)
    labels = labels_with_all_segments(2, 40, 3, seed=18)
    grads, losses = {}, {}
    for dtype in (torch.float32, F64):
        X = F.to(dtype).requires_grad_(True)
        result = normalized_cuts(X, 3, route=route, nonneg="none", check_eigengap=False)
        assert result.Z.dtype == dtype and result.eigenvalues.dtype == dtype
        assert result.degrees.dtype == dtype and result.Z.device == X.device
        loss = ncuts_loss(result, labels)
        assert loss.dtype == dtype
        loss.backward()
        grads[dtype], losses[dtype] = X.grad, loss.detach()
    torch.testing.assert_close(losses[torch.float32].double(), losses[F64], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[torch.float32].double(), grads[F64], rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("nonneg", ["relu", "softplus", "square", "none"])
def test_gram_solver_streamed_in_blocks_equals_the_svd_solver(monkeypatch, nonneg):
    """Tiny blocks (several per image, a partial last one, the per-image loop) give the SVD
    solver's embedding, loss and gradient; and the streamed gradient passes gradcheck."""
    import matbackprop.nn._ncuts._gram as gram

    monkeypatch.setattr(gram, "BLOCK_ELEMENTS", 40)  # d = 4: 10 rows per block, m = 37
    g = torch.Generator().manual_seed(31)
    X = torch.randn(2, 37, 4, generator=g, dtype=F64)
    if nonneg == "none":
        X = X.abs() + 0.05
    X[0, 3] *= 1e-3  # keeps the degree floor active in some images/maps
    labels = labels_with_all_segments(2, 37, 3, seed=32)
    outputs = {}
    for solver in ("svd", "gram"):
        F = X.clone().requires_grad_(True)
        result = normalized_cuts(F, 3, solver=solver, nonneg=nonneg, degree_floor=0.05)
        loss = ncuts_loss(result, labels)
        loss.backward()
        outputs[solver] = (result, loss.detach(), F.grad)
    (r_svd, l_svd, g_svd), (r_gram, l_gram, g_gram) = outputs["svd"], outputs["gram"]
    torch.testing.assert_close(l_gram, l_svd, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(r_gram.Z, r_svd.Z, rtol=0, atol=1e-10)  # signs fixed alike
    torch.testing.assert_close(r_gram.degrees, r_svd.degrees, rtol=1e-12, atol=0)
    torch.testing.assert_close(g_gram, g_svd, rtol=1e-7, atol=1e-10)
    if nonneg in ("softplus", "none"):  # smooth maps: finite differences apply
        assert gradcheck(
            lambda F: ncuts_loss(
                normalized_cuts(F, 3, solver="gram", nonneg=nonneg, degree_floor=0.05), labels
            ),
            (X.clone().requires_grad_(True),),
        )


def test_each_column_of_Z_has_its_largest_magnitude_entry_positive():
    F = positive_features(3, 40, 6, seed=33)
    for solver in ("svd", "gram"):
        Z = normalized_cuts(F, 4, solver=solver, nonneg="none").Z
        pivot = Z.abs().argmax(dim=-2, keepdim=True)
        assert bool((Z.gather(-2, pivot) > 0).all()), solver
        dense = normalized_cuts(F, 4, nonneg="none", route="dense").Z
        torch.testing.assert_close(Z, dense, rtol=0, atol=1e-9)  # one convention, any route


@pytest.mark.parametrize(
    ("route", "solver"), [("lowrank", "svd"), ("lowrank", "gram"), ("dense", "svd")]
)
def test_projector_loss_gradient_is_exact_whatever_the_degeneracy_tolerance(route, solver):
    """The loss sees Z only through ZZᵀ: couplings inside the top-k block never matter, and the
    layer keeps those across its boundary (policy block = k). So even a huge ``rtol`` (here
    σ values 1, 0.22-0.27, 0.19-0.23 | 0.18-0.22, …: every gap near the boundary is below
    0.1 σ₁, while every σ stays above it), leaves the gradient unchanged."""
    from matbackprop.linalg import DegeneracyPolicy

    F = positive_features(2, 30, 6, seed=41)
    labels = labels_with_all_segments(2, 30, 3, seed=42)
    grads = []
    for policy in (None, DegeneracyPolicy(rtol=0.1)):
        X = F.clone().requires_grad_(True)
        result = normalized_cuts(X, 3, route=route, solver=solver, nonneg="none", policy=policy)
        ncuts_loss(result, labels).backward()
        grads.append(X.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-8, atol=1e-10)
    # and against finite differences, with the huge tolerance
    policy = DegeneracyPolicy(rtol=0.1)
    assert gradcheck(
        lambda X: ncuts_loss(
            normalized_cuts(X, 3, route=route, solver=solver, nonneg="none", policy=policy),
            labels,
        ),
        (F.clone().requires_grad_(True),),
    )
