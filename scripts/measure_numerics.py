"""Reproduces the figures quoted in docs/numerics.md and matbackprop/validation.py.

(a) How large the computed "zero" eigenvalues of a Gram matrix ``FᵀF`` (``n < d``) come out, in
    units of ``n eps max|λ|`` -- the basis of the definiteness factor 4.
(b) float32 second-order pooling (log, eps = 1e-3, C = 16, post-ReLU features) against float64,
    per route, for a rank-deficient region (13 pixels) and a full-rank one (40 pixels), at
    feature scales 1 … 1000. ``check=False`` shows each route as computed (no float64 recompute).
(c) float32 NCuts gradients ``∂loss/∂F`` (``F = rand(m, 64)²``, k = 8, ``ncuts_loss`` against
    a random 8-way partition) against float64 (our SVD route in float64), relative 2-norm, per
    solver, with a plain float32 Gram matrix (torch ``eigh`` of ``GᵀG``) for comparison.

Usage::

    OMP_NUM_THREADS=1 python scripts/measure_numerics.py          # (a), (b), (c) at m = 4096
    OMP_NUM_THREADS=1 python scripts/measure_numerics.py c 65536  # (c) only, at given m
"""

from __future__ import annotations

import sys
import warnings

import torch

from matbackprop.nn import EigengapWarning
from matbackprop.nn.functional import ncuts_loss, normalized_cuts, second_order_pooling


def zero_eigenvalues() -> None:
    print("(a) max |zero eigenvalue of FᵀF| / (n eps max|λ|)")
    for dtype in (torch.float64, torch.float32):
        eps = torch.finfo(dtype).eps
        for d in (2, 3, 4, 8, 16, 64, 256):
            worst = 0.0
            for n in sorted({1, d // 4, d // 2, d - 1} - {0}):
                for scale in (1e-3, 1.0, 1e3):
                    for relu in (True, False):
                        g = torch.Generator().manual_seed(d * 1000 + n)
                        F = torch.randn(
                            200 if d < 64 else 20, n, d, generator=g, dtype=torch.float64
                        )
                        F = ((F.relu() if relu else F) * scale).to(dtype)
                        A = F.mT @ F
                        A = 0.5 * (A + A.mT)
                        try:
                            lam = torch.linalg.eigvalsh(A)
                        except torch.linalg.LinAlgError:  # float32 syevd on singular input
                            lam = torch.linalg.eigvalsh(A.double()).to(dtype)
                        top = lam.abs().amax(-1, keepdim=True)
                        ratio = (lam[..., : d - n].abs() / (d * eps * top)).max()
                        worst = max(worst, float(ratio))
            print(f"    {str(dtype):14s} n = {d:3d}: {worst:.3f}")


def pooling_routes() -> None:
    print("(b) float32 pooling, max abs error against float64 (max |log| in brackets)")
    C = 16
    for p in (13, 40):
        for scale in (1.0, 10.0, 30.0, 100.0, 1000.0):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1, C, 8, 8, generator=g, dtype=torch.float64).relu() * scale
            masks = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
            masks.view(-1)[:p] = 1.0
            ref = second_order_pooling(x, masks, route="covariance", eps=1e-3)
            row = []
            for route in ("gram", "covariance", "auto"):
                out = second_order_pooling(
                    x.float(), masks.float(), route=route, eps=1e-3, check=False
                )
                row.append(f"{route} {float((out.double() - ref).abs().max()):.1e}")
            print(
                f"    p = {p}, scale {scale:6g} [{float(ref.abs().max()):.1f}]: " + ", ".join(row)
            )


def _ncuts_gradient(F, labels, k, plain_gram=False, **options):
    F = F.clone().requires_grad_()
    if plain_gram:  # eigh of a GᵀG in the dtype of F, torch autograd
        degrees = (F @ F.sum(1, keepdim=True).mT).squeeze(-1)
        G = F * degrees.rsqrt().unsqueeze(-1)
        lam, V = torch.linalg.eigh(G.mT @ G)
        Z = G @ V.flip(-1)[..., :k] * lam.flip(-1)[..., :k].rsqrt().unsqueeze(-2)
        loss = ncuts_loss(Z, labels, degrees=degrees, num_segments=k)
    else:
        loss = ncuts_loss(normalized_cuts(F, k, num_segments=k, **options), labels)
    return torch.autograd.grad(loss, F)[0]


def ncuts_gradients(sizes=(4096,), d: int = 64, k: int = 8) -> None:
    print("(c) float32 NCuts gradient, relative 2-norm error against float64 (SVD route)")
    warnings.simplefilter("ignore", EigengapWarning)
    for m in sizes:
        g = torch.Generator().manual_seed(0)
        F = torch.rand(1, m, d, generator=g, dtype=torch.float64) ** 2
        labels = torch.randint(0, k, (1, m), generator=g)
        reference = _ncuts_gradient(F, labels, k, solver="svd")
        gap = float(normalized_cuts(F, k).eigengap[0])
        cases = {"default": {}, "svd": {"solver": "svd"}, "gram": {"solver": "gram"}}
        if m <= 4096:
            cases["dense"] = {"route": "dense"}
        cases["plain float32 Gram"] = {"plain_gram": True}
        row = []
        for name, options in cases.items():
            grad = _ncuts_gradient(F.float(), labels, k, **options).double()
            row.append(f"{name} {float((grad - reference).norm() / reference.norm()):.1e}")
        print(f"    m = {m} (relative eigengap {gap:.2g}): " + ", ".join(row))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["c"]:
        ncuts_gradients(tuple(int(m) for m in sys.argv[2:]) or (4096,))
    else:
        zero_eigenvalues()
        pooling_routes()
        ncuts_gradients()
