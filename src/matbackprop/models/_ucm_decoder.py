"""The hierarchy decoder every BSDS500 method shares: spectral embedding → ucm2 → levels.

::

    top-k eigenvectors Z of M = D^-½ W D^-½ (m × k)
        ─► row-normalized embedding xᵢ = Zᵢ,:k / ‖Zᵢ,:k‖          (Ng, Jordan & Weiss 2002)
        ─► greedy merging of adjacent regions A, B by
           δ(A, B) = α · mean_{∂AB} ‖xᵢ − xⱼ‖ + (1 − α) · ‖x̄_A − x̄_B‖
           (α = 1: mean boundary strength, OWT-UCM, Arbeláez et al. 2011, Sec. 4.2)
        ─► heights / last merge ("max" calibration), quantized to ``levels`` values
        ─► ucm2 (double size, values in [0, 1]) and its nested levels, coarse to fine
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from torch import Tensor

from matbackprop.nn.functional import spectral_node_embedding, ucm2_levels, ultrametric_contour_map
from matbackprop.validation import check_number

__all__ = ["Hierarchy", "UCMDecoder"]


class Hierarchy(NamedTuple):
    """A segmentation hierarchy of one image.

    Attributes
    ----------
    ucm2 : Tensor, shape (2H+1, 2W+1), float64
        Ultrametric contour map in the BSDS ``doubleSize`` layout, values in ``[0, 1]``.
    levels : list of Tensor, each (H, W), long
        Its distinct segmentations, coarse to fine (nested), labels ``0 .. R-1``.
    thresholds : list of float
        The ``ucm2`` threshold of each level (decreasing).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import ClassicLabNCuts, UCMDecoder
    >>> image = torch.zeros(3, 16, 16)
    >>> image[0, :, 8:] = 1.0
    >>> idx = torch.arange(16).reshape(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)
    >>> classic = ClassicLabNCuts(10.0, 0.5, radius=None, decoder=UCMDecoder(k=2))
    >>> h = classic.segment_hierarchy(image, idx)
    >>> h.ucm2.shape                                            # (2H + 1, 2W + 1)
    torch.Size([33, 33])
    >>> h.levels[0].shape, len(h.levels) == len(h.thresholds)
    (torch.Size([16, 16]), True)
    """

    ucm2: Tensor
    levels: list[Tensor]
    thresholds: list[float]


@dataclass(frozen=True)
class UCMDecoder:
    """The hierarchy decoder shared by every method: spectral embedding → ucm2 → levels.

    Parameters
    ----------
    k : int
        Eigenvectors used (the first ``k`` columns of ``Z``; fewer if ``Z`` has fewer).
    levels : int
        Distinct ucm values kept (:func:`~matbackprop.nn.functional.quantize_levels`), so at
        most ``levels`` segmentations; ``None`` keeps every merge height.
    calibration : {"max", "exp"}
        Heights to ``[0, 1]``: ``(h / h_max)^scale`` per image, or ``1 − exp(−h / scale)``.
    scale : float
    alpha : float in [0, 1]
        Merge criterion of :func:`~matbackprop.nn.functional.agglomerate`: weight of the mean
        boundary strength against the distance of the region means (1: boundary only).

    Raises
    ------
    ValueError
        For a non-positive ``k`` or ``levels``, a ``scale`` that is not a finite positive
        number, an ``alpha`` outside [0, 1] or an unknown calibration.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import UCMDecoder
    >>> idx = torch.tensor([[0, 1], [3, 2]])  # node 0 touches 1 and 3
    >>> Z = torch.tensor([[1.0, 0.30], [1.0, 0.25], [1.0, -0.25], [1.0, -0.30]])
    >>> h = UCMDecoder(k=2).hierarchy(Z, idx)
    >>> h.ucm2.shape, [int(level.max()) + 1 for level in h.levels]
    (torch.Size([5, 5]), [2, 4])
    """

    k: int = 8
    levels: int | None = 32
    calibration: Literal["max", "exp"] = "max"
    scale: float = 1.0
    alpha: float = 1.0

    def __post_init__(self) -> None:
        for name in ("k", "levels"):
            value = getattr(self, name)
            if value is None and name == "levels":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        if self.calibration not in ("max", "exp"):
            raise ValueError(f"`calibration` must be 'max' or 'exp', got {self.calibration!r}")
        check_number(self.scale, "scale", positive=True)
        check_number(self.alpha, "alpha", minimum=0, maximum=1)

    def ucm2(self, Z: Tensor, node_index: Tensor) -> Tensor:
        """``ucm2 (2H+1, 2W+1)`` of one image from its eigenvectors ``Z (m, K)`` on the
        superpixels ``node_index (H, W)``."""
        if not isinstance(Z, Tensor) or Z.ndim != 2:
            shape = tuple(Z.shape) if isinstance(Z, Tensor) else type(Z).__name__
            raise ValueError(f"`Z` must have shape (m, K), got {shape}")
        x = spectral_node_embedding(Z, k=min(self.k, Z.shape[1]))
        return ultrametric_contour_map(
            node_index.cpu(),
            x,
            calibration=self.calibration,
            scale=self.scale,
            levels=self.levels,
            alpha=self.alpha,
        )

    def hierarchy(self, Z: Tensor, node_index: Tensor) -> Hierarchy:
        """:meth:`ucm2` and its levels (coarse to fine)."""
        u = self.ucm2(Z, node_index)
        thresholds, levels = ucm2_levels(u)
        return Hierarchy(u, levels, thresholds)
