"""Classic Shi–Malik normalized cuts on superpixels, as the literature tunes it.

Nodes are superpixels (e.g. SLIC ~600); descriptors their mean CIE-Lab colour ``cᵢ`` and centroid
``xᵢ`` (in units of the image diagonal); the affinity is a Gaussian restricted to a radius
(Shi & Malik, TPAMI 2000, eq. 11)::

    Wᵢⱼ = exp(−‖cᵢ − cⱼ‖² / σ_lab²) · exp(−‖xᵢ − xⱼ‖² / σ_xy²) · [‖xᵢ − xⱼ‖ < r]

and the spectral embedding is the top-``k`` eigenvectors of ``D^-½ W D^-½`` (dense route). It is
decoded with the same ultrametric contour map as the learned methods
(:class:`~matbackprop.models.UCMDecoder`). ``σ_lab``, ``σ_xy`` and ``r`` are
grid-searched on training images by covering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from matbackprop.data import NodeSpec, pool_to_superpixels, rgb_to_lab
from matbackprop.nn import NCutsResult
from matbackprop.nn.functional import gaussian_affinity, normalized_cuts_affinity

from ._ucm_decoder import Hierarchy, UCMDecoder

__all__ = ["ClassicLabNCuts"]


@dataclass(frozen=True)
class ClassicLabNCuts:
    """Shi–Malik NCuts on mean Lab colour and centroid with a radius-limited Gaussian affinity.

    Parameters
    ----------
    sigma_lab : float
        Colour bandwidth in Lab units (``L`` in [0, 100]).
    sigma_xy : float
        Position bandwidth, fraction of the image diagonal.
    radius : float, optional
        Affinity cut-off distance (fraction of the diagonal); ``None``: no cut-off.
    decoder : UCMDecoder
        The hierarchy decoding (its ``k``: eigenvectors used; 16 for this baseline).
    superpixels : NodeSpec
        Nodes :meth:`segment_hierarchy` uses when given none (SLIC 600 at the image size).

    Raises
    ------
    ValueError
        For non-positive bandwidths or radius.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import ClassicLabNCuts, UCMDecoder
    >>> image = torch.zeros(3, 16, 16)
    >>> image[0, :, 8:] = 1.0  # a red right half
    >>> idx = torch.arange(16).reshape(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)
    >>> classic = ClassicLabNCuts(10.0, 0.5, radius=None, decoder=UCMDecoder(k=2))
    >>> h = classic.segment_hierarchy(image, idx)
    >>> coarsest = h.levels[0]
    >>> bool((coarsest[:, :8] == coarsest[0, 0]).all()), int(coarsest.max()) + 1
    (True, 2)
    """

    sigma_lab: float = 5.0
    sigma_xy: float = 0.05
    radius: float | None = 0.1
    decoder: UCMDecoder = field(default=UCMDecoder(k=16))
    superpixels: NodeSpec = field(default=NodeSpec("slic", n_segments=600, compactness=10.0))

    def __post_init__(self) -> None:
        if not isinstance(self.decoder, UCMDecoder):
            raise ValueError(f"`decoder` must be a UCMDecoder, got {type(self.decoder).__name__}")
        for name in ("sigma_lab", "sigma_xy", "radius"):
            value = getattr(self, name)
            if value is None and name == "radius":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number, got {value!r}")

    def node_descriptors(self, image: Tensor, node_index: Tensor) -> tuple[Tensor, Tensor]:
        """Mean Lab colour ``(S, 3)`` and centroid ``(S, 2)`` (diagonal units), float64."""
        if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"`image` must have shape (3, H, W), got {shape}")
        H, W = image.shape[-2:]
        if tuple(node_index.shape) != (H, W):
            raise ValueError(
                f"`node_index` must have the image's size {(H, W)}, got {tuple(node_index.shape)}"
            )
        image = image.to(torch.float64)
        ys, xs = torch.meshgrid(
            torch.arange(H, dtype=torch.float64, device=image.device),
            torch.arange(W, dtype=torch.float64, device=image.device),
            indexing="ij",
        )
        grid = torch.stack([ys, xs]) / float(H**2 + W**2) ** 0.5
        index = node_index.long().to(image.device)
        return pool_to_superpixels(rgb_to_lab(image), index), pool_to_superpixels(grid, index)

    def affinity(self, image: Tensor, node_index: Tensor) -> Tensor:
        """The ``(S, S)`` affinity ``W`` above."""
        colours, centroids = self.node_descriptors(image, node_index)
        return gaussian_affinity(
            centroids, colours, self.sigma_xy, self.sigma_lab, radius=self.radius
        )

    def spectral_embedding(self, image: Tensor, node_index: Tensor, k: int) -> NCutsResult:
        """Top-``k`` eigenvectors of ``D^-½ W D^-½`` (batch of one; ``k`` capped at ``S``)."""
        W = self.affinity(image, node_index)
        return normalized_cuts_affinity(W[None], min(int(k), W.shape[-1]), check_eigengap=False)

    def segment_hierarchy(self, image: Tensor, node_index: Tensor | None = None) -> Hierarchy:
        """The hierarchy of one ``[0, 1]`` image ``(3, H, W)``: top ``decoder.k`` eigenvectors
        decoded by :attr:`decoder` (``node_index`` defaults to :attr:`superpixels`)."""
        if node_index is None:
            node_index = self.superpixels.node_index(image.cpu())
        result = self.spectral_embedding(image, node_index, self.decoder.k)
        return self.decoder.hierarchy(result.Z[0].cpu(), node_index)
