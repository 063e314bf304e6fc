"""Classic normalized cuts (Shi & Malik 2000) on superpixels: the baseline without learning.

Nodes are superpixels; the affinity is the Gaussian kernel on mean colour and centroid
position (Shi & Malik, TPAMI 2000, eq. 11)::

    Wᵢⱼ = exp(−‖cᵢ − cⱼ‖² / σ_rgb²) · exp(−‖xᵢ − xⱼ‖² / σ_xy²)

with positions in units of the image diagonal (so ``σ_xy`` is scale free). The spectral
embedding uses the dense route of :func:`matbackprop.nn.functional.normalized_cuts_affinity`;
decoding is the same k-means hierarchy as DeepNCuts. ``σ_rgb`` and ``σ_xy`` are the only
parameters and are tuned on training images (see the experiment code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from matbackprop.nn.functional import (
    gaussian_affinity,
    lift_labels,
    ncuts_hierarchy,
    normalized_cuts_affinity,
)


@dataclass(frozen=True)
class ClassicNCuts:
    """Shi–Malik normalized cuts on superpixel colour and position.

    Parameters
    ----------
    sigma_rgb : float
        Colour bandwidth (colours in ``[0, 1]``).
    sigma_xy : float
        Position bandwidth as a fraction of the image diagonal.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import grid_superpixels
    >>> from matbackprop.models import ClassicNCuts
    >>> image = torch.zeros(3, 16, 16)
    >>> image[0, :, 8:] = 1.0                                  # a red right half
    >>> node_index = grid_superpixels((16, 16), (4, 4))
    >>> levels = ClassicNCuts(sigma_rgb=0.1, sigma_xy=0.5).segment_hierarchy(image, node_index, 3)
    >>> len(levels), levels[0].shape                            # k = 2 and k = 3, per pixel
    (2, torch.Size([16, 16]))
    >>> coarse = levels[0]
    >>> bool((coarse[:, :8] == coarse[0, 0]).all() and (coarse[:, 8:] != coarse[0, 0]).all())
    True
    """

    sigma_rgb: float = 0.1
    sigma_xy: float = 0.2

    def __post_init__(self) -> None:
        for name in ("sigma_rgb", "sigma_xy"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"`{name}` must be a positive float, got {value!r}")

    def node_descriptors(self, image: Tensor, node_index: Tensor) -> tuple[Tensor, Tensor]:
        """Mean colour ``(S, 3)`` and centroid ``(S, 2)`` (in diagonal units) of each node."""
        if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"`image` must have shape (3, H, W), got {shape}")
        H, W = image.shape[-2:]
        if tuple(node_index.shape) != (H, W):
            raise ValueError(
                f"`node_index` must have the image's size {(H, W)}, got {tuple(node_index.shape)}"
            )
        flat = node_index.reshape(-1).long()
        S = int(flat.max()) + 1
        counts = torch.zeros(S, dtype=torch.float64).index_add_(
            0, flat, torch.ones_like(flat, dtype=torch.float64)
        )
        colors = torch.zeros(S, 3, dtype=torch.float64).index_add_(
            0, flat, image.reshape(3, -1).T.to(torch.float64)
        )
        ys, xs = torch.meshgrid(
            torch.arange(H, dtype=torch.float64),
            torch.arange(W, dtype=torch.float64),
            indexing="ij",
        )
        pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1) / (H**2 + W**2) ** 0.5
        centroids = torch.zeros(S, 2, dtype=torch.float64).index_add_(0, flat, pos)
        return colors / counts[:, None], centroids / counts[:, None]

    def segment_hierarchy(
        self, image: Tensor, node_index: Tensor, k_max: int, *, k_min: int = 2, seed: int = 0
    ) -> list[Tensor]:
        """Pixel label maps for ``k = k_min .. k_max`` (coarse to fine)."""
        colors, centroids = self.node_descriptors(image, node_index)
        W = gaussian_affinity(centroids[None], colors[None], self.sigma_xy, self.sigma_rgb)
        k_top = min(k_max, colors.shape[0])
        result = normalized_cuts_affinity(W, k_top, check_eigengap=False)
        levels = ncuts_hierarchy(result.Z[0], k_top, k_min=min(k_min, k_top), seed=seed)
        return [lift_labels(level, node_index.long()) for level in levels]
