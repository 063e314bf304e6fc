"""DegeneracyPolicy(block=k): pairs straddling the top-k boundary keep their coupling.

A loss of the top-k projector is not invariant to rotations that mix an eigenvector inside the
block with one outside, so dropping that pair's coupling (what ``rtol`` does for near-ties)
makes the gradient wrong by O(1). With ``block=k`` such pairs are dropped only at true ties
(``STRADDLE_ULPS · eps``); the float32 gradient then carries the rounding error ``eps/gap``.
"""

from __future__ import annotations

import pytest
import torch

from matbackprop.linalg import DegeneracyPolicy, eigh, svd
from matbackprop.linalg._policy import STRADDLE_ULPS

F64, F32 = torch.float64, torch.float32
# relative gap 1e-5 between the 3rd and 4th values: above 64 eps (float32: 7.6e-6) and below
# float32's default rtol (1e-4)
SPECTRUM = [3.0, 2.0, 1.0 + 3e-5, 1.0, 0.5]
K = 3


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    Q, _ = torch.linalg.qr(
        torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    )
    return Q


def _top_projector_gradient(kind: str, dtype, policy, *, reference: bool = False) -> torch.Tensor:
    """The gradient of ``‖U_k U_kᵀ − T‖²``; ``reference``: by torch's own autograd through
    ``torch.linalg.eigh`` / ``svd`` (an independent implementation; exact here, no tie)."""
    Q, W = _orthogonal(5, 1), _orthogonal(5, 2)
    sigma = torch.tensor(SPECTRUM, dtype=F64)
    A = (Q * sigma) @ (Q.mT if kind == "eigh" else W.mT)
    target = torch.randn(5, 5, generator=torch.Generator().manual_seed(3), dtype=F64)
    target = target + target.mT
    X = A.to(dtype).requires_grad_()
    if kind == "eigh":
        decompose = torch.linalg.eigh if reference else (lambda A: eigh(A, policy=policy))
        U = decompose(X)[1][..., -K:]  # the K largest (ascending order)
    else:
        decompose = torch.linalg.svd if reference else (lambda A: svd(A, policy=policy))
        U = decompose(X)[0][..., :K]
    loss = ((U @ U.mT - target.to(dtype)) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, X)
    return grad.double()


@pytest.mark.parametrize("kind", ["eigh", "svd"])
def test_float32_gradient_of_a_top_k_loss_with_a_straddling_near_tie(kind):
    exact = _top_projector_gradient(kind, F64, None, reference=True)
    with_block = _top_projector_gradient(kind, F32, DegeneracyPolicy(block=K))
    without = _top_projector_gradient(kind, F32, DegeneracyPolicy())

    def error(g):
        return float((g - exact).norm() / exact.norm())

    assert error(with_block) < 0.05  # eps/gap ≈ 6e-3
    assert error(without) > 0.5  # the dropped coupling is most of the gradient


def test_true_ties_across_the_boundary_are_still_dropped_and_finite():
    lam = torch.tensor([1.0, 2.0, 2.0, 3.0], dtype=F64)  # a tie straddling block=2 (ascending)
    gaps = lam.unsqueeze(-2) - lam.unsqueeze(-1)
    policy = DegeneracyPolicy(block=2)
    straddle = policy.straddles(4, descending=False, device=lam.device)
    inv = policy.inverse_gaps(gaps, lam.abs().max().reshape(1, 1), straddle)
    assert torch.isfinite(inv).all() and inv[1, 2] == 0 and inv[2, 1] == 0
    assert inv[0, 3] == pytest.approx(0.5)  # a separated pair: 1/(3 − 1)


def test_straddles_mask_and_validation():
    top_first = DegeneracyPolicy(block=2).straddles(4, descending=True, device=torch.device("cpu"))
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]).bool()
    assert torch.equal(top_first, expected)
    top_last = DegeneracyPolicy(block=1).straddles(3, descending=False, device=torch.device("cpu"))
    assert torch.equal(top_last, torch.tensor([[0, 0, 1], [0, 0, 1], [1, 1, 0]]).bool())
    assert DegeneracyPolicy().straddles(4, descending=True, device=torch.device("cpu")) is None
    assert (
        DegeneracyPolicy("lorentzian", block=2).straddles(4, descending=True, device=None) is None
    )
    assert STRADDLE_ULPS * torch.finfo(F32).eps < 1e-4  # tighter than float32's default rtol
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="`block`"):
            DegeneracyPolicy(block=bad)
