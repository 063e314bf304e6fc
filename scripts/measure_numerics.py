"""Reproduces the figures quoted in docs/numerics.md and matbackprop/validation.py.

(a) How large the computed "zero" eigenvalues of a Gram matrix ``FᵀF`` (``n < d``) come out, in
    units of ``n eps max|λ|`` -- the basis of the definiteness factor 4.
(b) float32 second-order pooling (log, eps = 1e-3, C = 16, post-ReLU features) against float64,
    per route, for a rank-deficient region (13 pixels) and a full-rank one (40 pixels), at
    feature scales 1 … 1000. ``check=False`` shows each route as computed (no float64 recompute).

Usage::

    OMP_NUM_THREADS=1 python scripts/measure_numerics.py
"""

from __future__ import annotations

import torch

from matbackprop.nn.functional import second_order_pooling


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


if __name__ == "__main__":
    torch.set_num_threads(1)
    zero_eigenvalues()
    pooling_routes()
