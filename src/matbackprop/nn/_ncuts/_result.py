"""The normalized-cuts output type, per-image masking of columns, and the eigengap check."""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType
from typing import NamedTuple

import torch
from torch import Tensor


class EigengapWarning(UserWarning):
    """The gap ``λ_k − λ_{k+1}`` is too small (relative to ``λ_1``) for a well-defined top-k
    eigenspace: its eigenvectors, and their gradient, are unreliable.

    Examples
    --------
    >>> import warnings
    >>> import torch
    >>> from matbackprop.nn import EigengapWarning, NormalizedCuts
    >>> F = torch.ones(1, 10, 4, dtype=torch.float64)       # every node alike: no 2-way cut
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = NormalizedCuts(k=2)(F)
    >>> any(issubclass(w.category, EigengapWarning) for w in caught)
    True
    """


class NCutsResult(NamedTuple):
    """Spectral embedding of a batch of graphs.

    Attributes
    ----------
    Z : Tensor, shape (B, m, K)
        Top eigenvectors of ``M = D^-½ W D^-½`` by decreasing eigenvalue, ``K = max(k)``.
        Columns ``j >= k[b]`` of image ``b`` are zero (masked); the first ``k[b]`` are
        orthonormal. Each column's sign is fixed so that its largest-magnitude entry is positive
        (on a tie of magnitudes, the positive one wins; a convention only: everything downstream
        is sign invariant).
    eigenvalues : Tensor, shape (B, K)
        Matching eigenvalues of ``M`` (in ``[0, 1]`` up to the degree floor), decreasing; masked
        entries are zero.
    degrees : Tensor, shape (B, m)
        Floored degrees ``d̃`` used to build ``M`` (the loss needs them).
    k : Tensor, shape (B,), long
        Number of eigenvectors per image.
    eigengap : Tensor, shape (B,)
        Relative eigengap ``(λ_k − λ_{k+1}) / λ_1`` per image (``inf`` when ``k = m``), detached.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn import NormalizedCuts
    >>> F = torch.rand(2, 50, 8, dtype=torch.float64)
    >>> result = NormalizedCuts(k=3)(F)
    >>> result.Z.shape, result.eigenvalues.shape, result.degrees.shape
    (torch.Size([2, 50, 3]), torch.Size([2, 3]), torch.Size([2, 50]))
    >>> result.k
    tensor([3, 3])
    """

    Z: Tensor
    eigenvalues: Tensor
    degrees: Tensor
    k: Tensor
    eigengap: Tensor


def default_eigengap_rtol(dtype: torch.dtype) -> float:
    """``sqrt(eps)`` of ``dtype`` (1.5e-8 float64, 3.5e-4 float32).

    Eigenvectors with relative gap ``g`` are accurate to about ``eps / g``, so at ``g = sqrt(eps)``
    the top-k subspace keeps half the digits. It also exceeds the default zero-coupling tolerance
    of :class:`matbackprop.linalg.DegeneracyPolicy` (1e-10 / 1e-4), so a gap that passes the check
    is never dropped from the backward.
    """
    return float(torch.finfo(dtype).eps) ** 0.5


def relative_eigengaps(spectrum: Tensor, k: Tensor, m: int) -> Tensor:
    """``(λ_k − λ_{k+1}) / λ_1`` per image from a descending ``spectrum (B, n)``, ``k <= n``.

    Eigenvalues past ``n`` are zero (a rank-``n`` matrix); ``k = m`` gives ``inf`` (the top-m
    eigenspace is the whole space, always well defined); ``λ_1 <= 0`` gives 0.
    """
    spectrum = spectrum.detach()
    padded = torch.cat([spectrum, spectrum.new_zeros(spectrum.shape[0], 1)], dim=-1)
    idx = (k - 1).unsqueeze(-1)
    lam_k = padded.gather(-1, idx).squeeze(-1)
    lam_next = padded.gather(-1, idx + 1).squeeze(-1)
    lam_1 = padded[:, 0]
    safe = torch.where(lam_1 > 0, lam_1, torch.ones_like(lam_1))
    gap = torch.where(lam_1 > 0, (lam_k - lam_next) / safe, torch.zeros_like(lam_1))
    return torch.where(k >= m, torch.full_like(gap, float("inf")), gap)


def check_eigengaps(
    gap: Tensor, k: Tensor, rtol: float, strict: bool, dtype: torch.dtype = torch.float64
) -> None:
    """Warn (:class:`EigengapWarning`) or raise (``strict``) where ``gap < rtol``.

    The message gives the expected relative error ``eps/gap`` of the embedding (and of its
    gradient) in ``dtype`` at the smallest gap, and names the remedies: float64 features
    (float32 only), a larger gap, a smaller ``k``.
    """
    bad = gap < rtol
    if not bool(bad.any()):
        return
    images = bad.nonzero().flatten().tolist()
    shown = images[:8]
    details = ", ".join(f"image {b}: k={int(k[b])}, gap={float(gap[b]):.3g}" for b in shown)
    more = f" (and {len(images) - len(shown)} more)" if len(images) > len(shown) else ""
    eps = float(torch.finfo(dtype).eps)
    smallest = max(float(gap[bad].min()), 1e-300)
    precision = (
        "float64 features (`features.double()`: eps 2.2e-16), " if dtype != torch.float64 else ""
    )
    message = (
        f"normalized cuts: relative eigengap (λ_k − λ_(k+1)) / λ_1 below eigengap_rtol="
        f"{rtol:.3g} for {details}{more}. The top-k eigenspace is ill-defined there: in "
        f"{str(dtype).removeprefix('torch.')} the embedding and its gradient carry relative "
        f"errors of about eps/gap = {eps / smallest:.2g}. Remedies: {precision}a larger gap "
        "(features that separate the segments better, or a k where λ_k − λ_(k+1) is larger), "
        "or a smaller k."
    )
    if strict:
        raise ValueError(message)
    warnings.warn(message, EigengapWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """``stacklevel`` pointing at the first frame outside this package and torch (the user's
    call of the layer), so the warning names the user's line however deep the call chain."""
    internal = (os.path.dirname(__file__), os.path.dirname(torch.__file__))
    # the caller of this helper, i.e. stacklevel 1 of its warn()
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(internal):
        frame = frame.f_back
        level += 1
    return level


def column_signs(Z: Tensor) -> Tensor:
    """``±1 (B, 1, K)`` that make each column's largest-magnitude entry positive.

    One read of ``Z`` and no ``|Z|`` temporary: that entry is the column's max or its min (the
    positive one wins a tie of magnitudes).
    """
    lo, hi = torch.aminmax(Z, dim=-2, keepdim=True)
    return torch.where(hi >= -lo, 1.0, -1.0).to(Z.dtype)


def finalize(
    Z: Tensor,
    eigenvalues: Tensor,
    degrees: Tensor,
    k: Tensor,
    gap: Tensor,
    *,
    signs_fixed: bool = False,
    all_columns_kept: bool = False,
) -> NCutsResult:
    """Mask columns ``j >= k[b]``, fix signs, and pack the result (``Z (B, m, K)`` descending).

    ``signs_fixed``: the solver already applied :func:`column_signs`; ``all_columns_kept``:
    every image uses all ``K`` columns (known on the host, e.g. an int ``k``). With both, ``Z``
    is returned as it is (no ``(B, m, K)`` pass forward or backward).
    """
    K = Z.shape[-1]
    if all_columns_kept and signs_fixed:
        return NCutsResult(Z, eigenvalues, degrees, k, gap)
    keep = (torch.arange(K, device=Z.device) < k.unsqueeze(-1)).to(Z.dtype)  # (B, K)
    scale = keep.unsqueeze(-2)
    if not signs_fixed:
        with torch.no_grad():
            scale = scale * column_signs(Z)
    return NCutsResult(Z * scale, eigenvalues * keep, degrees, k, gap)
