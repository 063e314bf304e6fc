"""DeepNCuts: a conv backbone whose features define a normalized-cuts affinity, trained end to end.

Pipeline (Ionescu, Vantzos & Sminchisescu 2015, Sec. 5)::

    image → backbone → 1×1 projection to d channels → non-negativity φ   (feature map)
          → node features F (m × d): the mean of the map over each node  (grid cells or SLIC)
          → W = FFᵀ, M = D^-½ W D^-½, top-k eigenvectors Z               (NormalizedCuts,
                                                                         low-rank route)
          → loss ½‖ZZᵀ − Π(D^½E)‖² against a human partition E          (ncuts_loss)

Nodes are given by a *node index map* ``(H, W)`` at image resolution (a grid of feature cells,
or superpixels), so pooling, labels and lifting back to pixels are one mechanism for both.
Training uses ``k = `` the number of ground-truth segments of each image; inference decodes a
hierarchy ``k = 2 .. K`` from the top-``K`` eigenvectors of one decomposition.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matbackprop.data import IGNORE_INDEX, majority_labels, pool_to_superpixels
from matbackprop.models._backbone import check_backbone
from matbackprop.nn import NormalizedCuts
from matbackprop.nn.functional import lift_labels, ncuts_hierarchy, ncuts_loss

NONNEG = ("softplus", "relu", "none")



class DeepNCuts(nn.Module):
    """Backbone + 1×1 projection + non-negativity + the normalized-cuts layer.

    Parameters
    ----------
    backbone : nn.Module
        Maps normalized images ``(B, 3, H, W)`` to ``(B, C, h, w)``; must have ``out_channels``,
        ``output_stride`` and ``normalize(images)`` (the input normalization it owns, applied
        here to ``[0, 1]`` images first).
    feature_dim : int, optional
        ``d``, channels of the learned 1×1 projection. ``None``: no projection (the backbone's
        own features, e.g. frozen pretrained ones).
    nonneg : {"softplus", "relu", "none"}
        Non-negativity ``φ`` making ``W = FFᵀ`` a valid (non-negative) affinity. Softplus keeps a
        gradient everywhere (no dead units); ``"none"`` requires a non-negative backbone output
        (e.g. ReLU6 features).
    eigen_dtype : torch.dtype, optional
        Run the normalized-cuts layer in this dtype (e.g. float64 for stability), cast back.

    Raises
    ------
    ValueError
        For an unknown ``nonneg``, a non-positive ``feature_dim`` or a backbone without
        ``out_channels``, ``output_stride`` or ``normalize``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import grid_superpixels
    >>> from matbackprop.models import DeepNCuts, VGGTrunk
    >>> _ = torch.manual_seed(0)
    >>> model = DeepNCuts(VGGTrunk(widths=(8, 16), output_stride=2), feature_dim=8)
    >>> images = torch.rand(2, 3, 16, 16)
    >>> node_index = grid_superpixels((16, 16), (4, 4))
    >>> labels = (torch.arange(16) % 2,) * 2                       # a 2-way partition of 16 nodes
    >>> loss = model(images, [node_index, node_index], labels)
    >>> loss.backward()
    >>> loss.ndim
    0
    >>> levels = model.segment_hierarchy(images[0], node_index, k_max=3)
    >>> [int(level.unique().numel()) for level in levels]
    [2, 3]
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int | None = 32,
        *,
        nonneg: str = "softplus",
        eigen_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if nonneg not in NONNEG:
            raise ValueError(f"`nonneg` must be one of {NONNEG}, got {nonneg!r}")
        check_backbone(backbone, ("out_channels",))
        channels: int = backbone.out_channels  # type: ignore[assignment]  # nn.Module attributes are typed Tensor | Module
        if feature_dim is not None and (isinstance(feature_dim, bool) or feature_dim < 1):
            raise ValueError(f"`feature_dim` must be a positive int or None, got {feature_dim!r}")
        self.backbone = backbone
        self.project = nn.Conv2d(channels, feature_dim, 1) if feature_dim else None
        self.nonneg = nonneg
        self.eigen_dtype = eigen_dtype
        self.feature_dim = feature_dim or channels
        # The layer itself validates shapes; eigengap warnings are expected early in training.
        self.ncuts = NormalizedCuts(nonneg="none", check_eigengap=False)

    def feature_map(self, images: Tensor) -> Tensor:
        """Non-negative features ``(B, d, h, w)`` of ``[0, 1]`` images ``(B, 3, H, W)``."""
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"`images` must have shape (B, 3, H, W), got {shape}")
        x = self.backbone(self.backbone.normalize(images))  # type: ignore[operator]
        if self.project is not None:
            x = self.project(x)
        if self.nonneg == "softplus":
            x = F.softplus(x)
        elif self.nonneg == "relu":
            x = F.relu(x)
        return x

    def node_features(self, feature_map: Tensor, node_index: Tensor) -> Tensor:
        """Mean feature per node ``(S, d)`` of one image's map ``(d, h, w)``."""
        return pool_to_superpixels(feature_map, node_index, mode="bilinear")

    def _embed(self, nodes: Tensor, k: int | None, labels: Tensor | None):
        x = nodes.unsqueeze(0)
        if self.eigen_dtype is not None:
            x = x.to(self.eigen_dtype)
        if labels is None:
            return self.ncuts(x, k=k)
        return self.ncuts(x, labels=labels.unsqueeze(0), ignore_index=IGNORE_INDEX)

    def forward(
        self, images: Tensor, node_indices: Sequence[Tensor], node_labels: Sequence[Tensor]
    ) -> Tensor:
        """The training loss (see :meth:`loss`); ``forward`` so that DDP wrapping works."""
        return self.loss(images, node_indices, node_labels)

    def loss(
        self,
        images: Tensor,
        node_indices: Sequence[Tensor],
        node_labels: Sequence[Tensor],
    ) -> Tensor:
        """Mean over images of the normalized Bach–Jordan loss ``J/k`` (in ``[0, 1]``).

        ``node_labels[i] (S_i,)`` are the ground-truth segments of the nodes of image ``i``
        (e.g. :func:`node_targets`; ``-1`` marks nodes left out of the target); ``k`` is their
        number of segments.
        """
        if len(node_indices) != images.shape[0] or len(node_labels) != images.shape[0]:
            raise ValueError(
                "`node_indices` and `node_labels` must have one entry per image: got "
                f"{len(node_indices)} and {len(node_labels)} for {images.shape[0]} images"
            )
        fmap = self.feature_map(images)
        losses = []
        for b in range(images.shape[0]):
            nodes = self.node_features(fmap[b], node_indices[b])
            labels = node_labels[b].to(nodes.device)
            result = self._embed(nodes, None, labels)
            losses.append(
                ncuts_loss(result, labels.unsqueeze(0), normalize=True, ignore_index=IGNORE_INDEX)
            )
        return torch.stack(losses).mean().to(images.dtype)

    @torch.no_grad()
    def segment_hierarchy(
        self,
        image: Tensor,
        node_index: Tensor,
        k_max: int,
        *,
        k_min: int = 2,
        seed: int = 0,
    ) -> list[Tensor]:
        """Pixel label maps for ``k = k_min .. k_max`` (coarse to fine) of one image ``(3, H, W)``.

        One decomposition (top ``k_max`` eigenvectors); level ``k`` discretizes its first ``k``
        columns (k-means on row-normalized embeddings) and lifts node labels to pixels.
        """
        fmap = self.feature_map(image.unsqueeze(0))[0]
        nodes = self.node_features(fmap, node_index)
        k_top = min(k_max, nodes.shape[0], nodes.shape[1])
        result = self._embed(nodes, k_top, None)
        levels = ncuts_hierarchy(
            result.Z[0].to(torch.float64), k_top, k_min=min(k_min, k_top), seed=seed
        )
        return [lift_labels(level, node_index) for level in levels]


def node_targets(label_map: Tensor, node_index: Tensor) -> Tensor:
    """Ground-truth segment of each node: the majority label of its pixels ``(S,)``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import node_targets
    >>> label_map = torch.tensor([[0, 0, 1, 1],
    ...                       [0, 1, 1, 1]])
    >>> node_index = torch.tensor([[0, 0, 1, 1],
    ...                        [0, 0, 1, 1]])
    >>> node_targets(label_map, node_index)                     # each node's majority label
    tensor([0, 1])
    """
    return majority_labels(label_map, node_index)
