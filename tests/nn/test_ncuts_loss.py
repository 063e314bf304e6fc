"""ncuts_loss: equality with the dense projector reference, invariances, ignore_index, batching."""

from __future__ import annotations

import pytest
import torch

from matbackprop.nn.functional import ncuts_loss, ncuts_loss_dense, normalized_cuts, segment_counts

F64 = torch.float64


def random_orthonormal(B: int, m: int, K: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(B, m, K, generator=g, dtype=F64))
    return Q


def random_degrees(B: int, m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.2 + torch.rand(B, m, generator=g, dtype=F64)


def sparse_labels(B: int, m: int, seed: int) -> torch.Tensor:
    """Arbitrary non-consecutive labels, every value present in every image."""
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor([3, 7, 100, 41])
    labels = values[torch.randint(0, 4, (B, m), generator=g)]
    labels[:, :4] = values
    return labels


@pytest.mark.parametrize("ignore_index", [None, 255])
@pytest.mark.parametrize("normalize", [False, True])
def test_fast_loss_equals_dense_reference_values_and_gradients(ignore_index, normalize):
    B, m, K = 3, 14, 4
    Z = random_orthonormal(B, m, K, seed=1).requires_grad_(True)
    degrees = random_degrees(B, m, seed=2).requires_grad_(True)
    labels = sparse_labels(B, m, seed=3)
    if ignore_index is not None:
        labels[0, 5:8] = ignore_index
        labels[2, 0] = ignore_index  # one of the segments of image 2 may lose nodes
    k = torch.tensor([4, 2, 3])
    kwargs = dict(degrees=degrees, k=k, ignore_index=ignore_index, normalize=normalize)
    fast = ncuts_loss(Z, labels, reduction="none", **kwargs)
    dense = ncuts_loss_dense(Z, labels, reduction="none", **kwargs)
    torch.testing.assert_close(fast, dense, rtol=1e-12, atol=1e-12)
    g_fast = torch.autograd.grad(fast.sum(), (Z, degrees))
    g_dense = torch.autograd.grad(dense.sum(), (Z, degrees))
    for a, b in zip(g_fast, g_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fast_loss_equals_dense_for_arbitrary_non_orthonormal_Z():
    g = torch.Generator().manual_seed(4)
    Z = torch.randn(2, 9, 3, generator=g, dtype=F64)
    degrees = random_degrees(2, 9, seed=5)
    labels = sparse_labels(2, 9, seed=6)
    torch.testing.assert_close(
        ncuts_loss(Z, labels, degrees=degrees, reduction="sum"),
        ncuts_loss_dense(Z, labels, degrees=degrees, reduction="sum"),
    )


def test_loss_is_zero_when_Z_spans_the_partition_and_maximal_when_orthogonal():
    m = 12
    labels = torch.tensor([[0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 1, 2]])
    degrees = random_degrees(1, m, seed=7)
    E = torch.nn.functional.one_hot(labels[0]).to(F64)
    Y, _ = torch.linalg.qr(degrees[0].sqrt().unsqueeze(-1) * E)
    loss = ncuts_loss(Y.unsqueeze(0), labels, degrees=degrees)
    torch.testing.assert_close(loss, torch.tensor(0.0, dtype=F64), rtol=0, atol=1e-12)
    # A basis orthogonal to range(D^½E): J = (k + r)/2.
    g = torch.Generator().manual_seed(8)
    X = torch.randn(m, 2, generator=g, dtype=F64)
    X = X - Y @ (Y.mT @ X)
    Q, _ = torch.linalg.qr(X)
    loss = ncuts_loss(Q.unsqueeze(0), labels, degrees=degrees)
    torch.testing.assert_close(loss, torch.tensor(2.5, dtype=F64))
    normalized = ncuts_loss(Q.unsqueeze(0), labels, degrees=degrees, normalize=True)
    torch.testing.assert_close(normalized, torch.tensor(2.5 / 2, dtype=F64))


def test_reductions():
    Z = random_orthonormal(3, 10, 2, seed=9)
    degrees = random_degrees(3, 10, seed=10)
    labels = sparse_labels(3, 10, seed=11)
    per_image = ncuts_loss(Z, labels, degrees=degrees, reduction="none")
    assert per_image.shape == (3,)
    torch.testing.assert_close(ncuts_loss(Z, labels, degrees=degrees), per_image.mean())
    torch.testing.assert_close(
        ncuts_loss(Z, labels, degrees=degrees, reduction="sum"), per_image.sum()
    )


def test_invariant_to_eigenvector_signs_and_rotations():
    Z = random_orthonormal(2, 11, 3, seed=12)
    degrees = random_degrees(2, 11, seed=13)
    labels = sparse_labels(2, 11, seed=14)
    ref = ncuts_loss(Z, labels, degrees=degrees, reduction="none")
    signs = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]], dtype=F64).unsqueeze(1)
    torch.testing.assert_close(
        ncuts_loss(Z * signs, labels, degrees=degrees, reduction="none"), ref
    )
    R, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=F64))
    torch.testing.assert_close(ncuts_loss(Z @ R, labels, degrees=degrees, reduction="none"), ref)


def test_invariant_to_node_permutations_through_the_layer():
    g = torch.Generator().manual_seed(15)
    F = torch.rand(2, 18, 5, generator=g, dtype=F64) + 0.05
    labels = sparse_labels(2, 18, seed=16)
    perm = torch.randperm(18, generator=g)
    k = segment_counts(labels)
    losses, grads = [], []
    for X, lab in ((F, labels), (F[:, perm], labels[:, perm])):
        X = X.clone().requires_grad_(True)
        loss = ncuts_loss(normalized_cuts(X, k, nonneg="none"), lab, reduction="sum")
        loss.backward()
        losses.append(loss.detach())
        grads.append(X.grad)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1], grads[0][:, perm], rtol=1e-8, atol=1e-12)


def test_relabeling_does_not_change_the_loss():
    Z = random_orthonormal(1, 10, 2, seed=17)
    degrees = random_degrees(1, 10, seed=18)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 2, 1, 0, 2]])
    renamed = torch.tensor([50, 3, 999])[labels]
    torch.testing.assert_close(
        ncuts_loss(Z, labels, degrees=degrees), ncuts_loss(Z, renamed, degrees=degrees)
    )


def test_ignored_nodes_do_not_matter():
    # With ignore_index, neither Z nor the degrees on unlabeled nodes enter the loss.
    Z = random_orthonormal(1, 12, 3, seed=19)
    degrees = random_degrees(1, 12, seed=20)
    labels = sparse_labels(1, 12, seed=21)
    labels[0, 8:] = -1
    ref = ncuts_loss(Z, labels, degrees=degrees, ignore_index=-1)
    Z2, d2 = Z.clone(), degrees.clone()
    Z2[0, 8:] = torch.randn(4, 3, dtype=F64)
    d2[0, 8:] = 7.0
    torch.testing.assert_close(ncuts_loss(Z2, labels, degrees=d2, ignore_index=-1), ref)
    assert segment_counts(labels, ignore_index=-1).tolist() == [4]


def test_loss_gradient_flows_into_degrees():
    Z = random_orthonormal(1, 8, 2, seed=22)
    degrees = random_degrees(1, 8, seed=23).requires_grad_(True)
    labels = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 2]])
    ncuts_loss(Z, labels, degrees=degrees).backward()
    assert degrees.grad is not None and float(degrees.grad.abs().max()) > 1e-3


def test_float32_loss():
    Z = random_orthonormal(2, 20, 3, seed=24)
    degrees = random_degrees(2, 20, seed=25)
    labels = sparse_labels(2, 20, seed=26)
    lo = ncuts_loss(Z.float(), labels, degrees=degrees.float())
    assert lo.dtype == torch.float32
    torch.testing.assert_close(
        lo.double(), ncuts_loss(Z, labels, degrees=degrees), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("ignore_index", [None, 255])
def test_fused_loss_gradients_and_second_derivatives_match_finite_differences(ignore_index):
    """The fused backward of ncuts_loss, and its double backward (plain autograd of the same
    formula), against central finite differences in float64; Z off the Stiefel manifold."""
    g = torch.Generator().manual_seed(11)
    Z = torch.randn(2, 10, 3, generator=g, dtype=F64, requires_grad=True)
    degrees = random_degrees(2, 10, seed=12).requires_grad_(True)
    labels = sparse_labels(2, 10, seed=13)
    if ignore_index is not None:
        labels[1, 6:9] = ignore_index

    def loss(Z, degrees):
        return ncuts_loss(Z, labels, degrees=degrees, ignore_index=ignore_index, reduction="none")

    assert torch.autograd.gradcheck(loss, (Z, degrees))
    assert torch.autograd.gradgradcheck(loss, (Z, degrees))


def test_loss_under_torch_func_grad_equals_autograd():
    Z = random_orthonormal(2, 12, 3, seed=14)
    degrees = random_degrees(2, 12, seed=15)
    labels = sparse_labels(2, 12, seed=16)
    grads = torch.func.grad(lambda Z, d: ncuts_loss(Z, labels, degrees=d), argnums=(0, 1))(
        Z, degrees
    )
    Zr, dr = Z.clone().requires_grad_(), degrees.clone().requires_grad_()
    expected = torch.autograd.grad(ncuts_loss_dense(Zr, labels, degrees=dr), (Zr, dr))
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
