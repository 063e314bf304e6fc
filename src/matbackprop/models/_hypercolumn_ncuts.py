"""Superpixel normalized cuts decoded into an ultrametric contour map: the BSDS500 segmenters.

Every method of the ``ncuts`` task shares the same nodes (SLIC superpixels at full resolution)
and the same decoding, :class:`UCMDecoder`::

    node features F (m × d; [F₁ F₂]/√2 with the mirrored view) ─ NCuts layer
        ─► top-k eigenvectors Z of M = D^-½ FFᵀ D^-½
        ─► row-normalized embedding xᵢ = Zᵢ,:k / ‖Zᵢ,:k‖          (Ng, Jordan & Weiss 2002)
        ─► greedy merging of adjacent regions by mean boundary strength ‖xᵢ − xⱼ‖ (OWT-UCM)
        ─► heights / last merge ("max" calibration), quantized to ``levels`` values
        ─► ucm2 (double size, values in [0, 1]) and its nested levels, coarse to fine

:class:`HypercolumnNCuts` is the learned segmenter: :class:`~matbackprop.models.HypercolumnEncoder`
descriptors of each superpixel, a head giving non-negative node features ``F`` (a trained
:class:`~matbackprop.models.NodeHead`, or :class:`FrozenTapFeatures` for the frozen-feature
baseline), the low-rank NCuts layer and the decoder. Its training objectives are
:func:`bach_jordan_objective` (DeepNCuts: through the eigendecomposition) and
:func:`local_objective` (the local-loss counterpart: on ``F`` itself, no eigendecomposition).

References
----------
Ionescu, Vantzos & Sminchisescu, ICCV 2015, Sec. 5 (the NCuts layer and the Bach–Jordan loss).
P. Arbeláez et al., "Contour Detection and Hierarchical Image Segmentation", TPAMI 2011, Sec. 4.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from matbackprop.data import IGNORE_INDEX, NodeSpec
from matbackprop.nn import NCutsResult, NormalizedCuts
from matbackprop.nn.functional import ncuts_loss, pairwise_affinity_loss

from ._hypercolumn import HypercolumnEncoder
from ._ucm_decoder import Hierarchy, UCMDecoder

__all__ = [
    "FrozenTapFeatures",
    "HypercolumnNCuts",
    "bach_jordan_objective",
    "local_objective",
    "spectral_edge_objective",
]


class FrozenTapFeatures(nn.Module):
    """Node features of the frozen-feature baseline: each tap rectified and L2-normalized.

    For a descriptor ``x = [x_t for t in taps] ⊕ rest`` (:class:`HypercolumnEncoder` layout;
    the Lab and centroid entries are dropped)::

        F = [ relu(x_t) / ‖relu(x_t)‖  for t in taps ]   (m × Σ C_t)

    so that every depth weighs the same in ``W = FFᵀ``. No parameters.

    Parameters
    ----------
    tap_channels : sequence of int
        Channels of each tap, in descriptor order.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import FrozenTapFeatures
    >>> features = FrozenTapFeatures([2, 3])
    >>> x = torch.tensor([[-1.0, 3.0, 4.0, 0.0, 5.0]])      # one node; taps of 2 and 3 channels
    >>> features(x)                                         # each tap rectified, unit length
    tensor([[0.0000, 1.0000, 0.6247, 0.0000, 0.7809]])
    """

    def __init__(self, tap_channels: Sequence[int]) -> None:
        super().__init__()
        channels = tuple(int(c) for c in tap_channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"`tap_channels` must be positive ints, got {tuple(tap_channels)}")
        self.tap_channels = channels
        self.feature_dim = sum(channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] < self.feature_dim:
            raise ValueError(
                f"`x` must have shape (m, >= {self.feature_dim}), got {tuple(x.shape)}"
            )
        parts, start = [], 0
        for c in self.tap_channels:
            p = torch.relu(x[:, start : start + c])
            parts.append(p / p.norm(dim=1, keepdim=True).clamp_min(1e-12))
            start += c
        return torch.cat(parts, dim=1)


def _ncuts_layer() -> NormalizedCuts:
    # the features are non-negative by construction; eigengaps are not checked (early in
    # training and on flat images the top eigenvalues can be close; decoding copes)
    return NormalizedCuts(nonneg="none", check_eigengap=False)


class HypercolumnNCuts(nn.Module):
    """Learned (or frozen) superpixel NCuts: encoder → head → NCuts layer → :class:`UCMDecoder`.

    Parameters
    ----------
    encoder : HypercolumnEncoder
        Node descriptors ``x (m, D)`` of an image's superpixels.
    head : nn.Module
        ``x ↦ F (m, d)``, non-negative: :class:`~matbackprop.models.NodeHead` (trained) or
        :class:`FrozenTapFeatures`.
    decoder : UCMDecoder
    superpixels : NodeSpec
        How :meth:`segment_hierarchy` cuts an image into nodes when it is given none (SLIC at
        the image's resolution).
    views : int
        Test-time views of an image: 1 (the image) or 2 (also its left-right mirror, the
        training augmentation). With ``V`` views the affinity is their mean,
        ``W = (1/V) Σᵥ Fᵥ Fᵥᵀ``, written as the low-rank ``W = F Fᵀ`` with
        ``F = [F₁ … F_V] / √V`` (``m × Vd``; see :meth:`features_of_views`).

    Notes
    -----
    The eigendecomposition runs in float64 on the low-rank route (``W = FFᵀ`` is never
    formed). Training works on descriptors (``forward(x) = head(x)``), so a cache of frozen
    descriptors trains the head without running the backbone.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import HypercolumnEncoder, HypercolumnNCuts, NodeHead
    >>> encoder = HypercolumnEncoder(taps=(0, 2), pretrained=False).eval()
    >>> model = HypercolumnNCuts(encoder, NodeHead(encoder.out_dim, 8, 16)).eval()
    >>> image = torch.rand(3, 32, 48)
    >>> idx = torch.arange(24).reshape(4, 6).repeat_interleave(8, 0).repeat_interleave(8, 1)
    >>> h = model.segment_hierarchy(image, idx)
    >>> h.ucm2.shape, h.levels[-1].shape
    (torch.Size([65, 97]), torch.Size([32, 48]))
    """

    def __init__(
        self,
        encoder: HypercolumnEncoder,
        head: nn.Module,
        *,
        decoder: UCMDecoder | None = None,
        superpixels: NodeSpec | None = None,
        views: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(views, bool) or views not in (1, 2):
            raise ValueError(f"`views` must be 1 or 2, got {views!r}")
        if not isinstance(encoder, HypercolumnEncoder):
            raise ValueError(
                f"`encoder` must be a HypercolumnEncoder, got {type(encoder).__name__}"
            )
        if not isinstance(head, nn.Module):
            raise ValueError(f"`head` must be an nn.Module, got {type(head).__name__}")
        self.encoder = encoder
        self.head = head
        self.decoder = decoder or UCMDecoder()
        self.superpixels = superpixels or NodeSpec("slic", n_segments=600, compactness=10.0)
        self.ncuts = _ncuts_layer()
        self.views = views

    def forward(self, descriptors: Tensor) -> Tensor:
        """Node features ``F = head(x)`` of descriptors ``(m, D)``, float64."""
        return self.head(descriptors).to(torch.float64)

    def features_of_views(self, descriptors: Sequence[Tensor]) -> Tensor:
        """``F = [head(x₁) … head(x_V)] / √V`` of the first :attr:`views` descriptor views.

        ``descriptors[v]`` ``(m, D)`` describes the same nodes in view ``v`` (view 1: the
        mirrored image and node map, as :class:`~matbackprop.tasks` caches them), so
        ``FFᵀ = (1/V) Σᵥ head(xᵥ) head(xᵥ)ᵀ``: the mean affinity, still of rank ``<= Vd``.
        """
        if len(descriptors) < self.views:
            raise ValueError(
                f"`descriptors` must hold at least {self.views} views, got {len(descriptors)}"
            )
        features = [self(x) for x in descriptors[: self.views]]
        if len(features) == 1:
            return features[0]
        return torch.cat(features, dim=1) / len(features) ** 0.5

    def node_features(self, image: Tensor, node_index: Tensor) -> Tensor:
        """``F`` of one image ``(3, H, W)`` with superpixels ``(H, W)``: ``(m, d)``, or
        ``(m, 2d)`` with ``views = 2`` (the image and its mirror, :meth:`features_of_views`)."""
        descriptors = [self.encoder(image, node_index)]
        if self.views == 2:
            descriptors.append(self.encoder(image.flip(-1), node_index.flip(-1)))
        return self.features_of_views(descriptors)

    def embed(self, features: Tensor, k: int | None = None) -> NCutsResult:
        """Top-``k`` (default ``decoder.k``) eigenvectors of ``D^-½ FFᵀ D^-½`` (batch of one)."""
        k = self.decoder.k if k is None else k
        return self.ncuts(features[None], k=min(int(k), *features.shape))

    @torch.no_grad()
    def segment_hierarchy(self, image: Tensor, node_index: Tensor | None = None) -> Hierarchy:
        """The hierarchy of one ``[0, 1]`` image ``(3, H, W)`` at its own resolution.

        ``node_index`` defaults to :attr:`superpixels` of the image.
        """
        if node_index is None:
            node_index = self.superpixels.node_index(image.cpu())
        features = self.node_features(image, node_index.to(image.device))
        return self.hierarchy_from_features(features, node_index)

    def hierarchy_from_features(self, features: Tensor, node_index: Tensor) -> Hierarchy:
        """Decode node features ``F (m, d)`` (e.g. of cached descriptors)."""
        return self.decoder.hierarchy(self.embed(features).Z[0].detach().cpu(), node_index)


def bach_jordan_objective(features: Tensor, labels: Tensor) -> Tensor:
    """DeepNCuts' loss: the normalized Bach–Jordan loss ``J / k`` of one image.

    ``J = ½‖ZZᵀ − Π(D^½E)‖²_F`` (Ionescu et al. 2015, Sec. 5) with ``Z`` the top-``k``
    eigenvectors of ``D^-½ FFᵀ D^-½``, ``k`` the number of segments of ``labels (m,)`` (nodes
    labelled :data:`~matbackprop.data.IGNORE_INDEX` are left out); the gradient flows through
    the eigendecomposition (matrix backpropagation).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import bach_jordan_objective
    >>> labels = torch.tensor([0, 0, 0, 1, 1, 1])
    >>> F = torch.nn.functional.one_hot(labels, 2).double()      # features that match the partition
    >>> round(bach_jordan_objective(F, labels).item(), 6)
    0.0
    >>> _ = torch.manual_seed(0)
    >>> F = torch.rand(6, 4, dtype=torch.float64, requires_grad=True)
    >>> bach_jordan_objective(F, labels).backward()
    >>> F.grad.shape
    torch.Size([6, 4])
    """
    result = _ncuts_layer()(features[None], labels=labels[None], ignore_index=IGNORE_INDEX)
    return ncuts_loss(result, labels[None], normalize=True, ignore_index=IGNORE_INDEX)


def local_objective(features: Tensor, pairs: Tensor, labels: Tensor) -> Tensor:
    """The local-loss counterpart: class-balanced binary cross-entropy of the cosine affinity
    ``⟨Fᵢ, Fⱼ⟩ / ‖Fᵢ‖‖Fⱼ‖`` of adjacent superpixels ``pairs (P, 2)`` against "same segment"
    (:func:`~matbackprop.nn.functional.pairwise_affinity_loss`); no eigendecomposition.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import local_objective
    >>> F = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    >>> pairs = torch.tensor([[0, 1], [1, 2], [2, 3]])
    >>> local_objective(F, pairs, torch.tensor([0, 0, 1, 1])).backward()
    >>> F.grad.shape
    torch.Size([4, 3])
    """
    return pairwise_affinity_loss(features, pairs, labels, ignore_index=IGNORE_INDEX)


def spectral_edge_objective(
    features: Tensor, pairs: Tensor, labels: Tensor, k: int, *, eps: float = 1e-6
) -> Tensor:
    """A pairwise objective on the NCuts layer's output: what the hierarchy decoder reads.

    With ``Z`` the top-``k`` eigenvectors of ``D^-½ FFᵀ D^-½`` and ``xᵢ = Zᵢ / ‖Zᵢ‖`` its
    row-normalized embedding (:class:`~matbackprop.models.UCMDecoder` merges superpixels by
    ``‖xᵢ − xⱼ‖``), the affinity of adjacent superpixels is ``aᵢⱼ = (1 + ⟨xᵢ, xⱼ⟩) / 2`` and the
    loss the class-balanced binary cross-entropy against "same segment"::

        ℓ = − Σ_{(i,j)} wᵢⱼ [ yᵢⱼ log aᵢⱼ + (1 − yᵢⱼ) log(1 − aᵢⱼ) ],   Σ w over each class = ½

    Its gradient flows through the eigendecomposition (unlike :func:`local_objective`, the same
    form on ``F``). It depends on ``Z`` only through its column space, so it is invariant to the
    signs and rotations of the eigenvectors.

    Parameters
    ----------
    features : Tensor, shape (m, d)
        Non-negative node features.
    pairs : Tensor, shape (P, 2)
        Adjacent node pairs.
    labels : Tensor, shape (m,)
        Ground-truth segments (:data:`~matbackprop.data.IGNORE_INDEX`: left out).
    k : int
        Eigenvectors (the decoder's ``k``; at most ``min(m, d)``).

    Returns
    -------
    Tensor
        Scalar loss (0 without a valid pair).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import spectral_edge_objective
    >>> _ = torch.manual_seed(0)
    >>> F = torch.rand(6, 4, dtype=torch.float64, requires_grad=True)
    >>> pairs = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]])
    >>> loss = spectral_edge_objective(F, pairs, torch.tensor([0, 0, 0, 1, 1, 1]), k=2)
    >>> loss.backward()
    >>> loss.ndim, F.grad.shape
    (0, torch.Size([6, 4]))
    """
    Z = _ncuts_layer()(features[None], k=min(int(k), *features.shape)).Z[0]
    x = Z / Z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(Z.dtype).tiny)
    pairs = pairs.long().to(Z.device)
    labels = labels.long().to(Z.device)
    i, j = pairs[:, 0], pairs[:, 1]
    keep = ((labels[i] != IGNORE_INDEX) & (labels[j] != IGNORE_INDEX)).to(Z.dtype)
    a = ((1 + (x[i] * x[j]).sum(1)) / 2).clamp(eps, 1 - eps)
    y = (labels[i] == labels[j]).to(Z.dtype)
    pos, neg = (keep * y).sum(), (keep * (1 - y)).sum()
    w = keep * torch.where(y > 0, 0.5 / pos.clamp_min(1e-12), 0.5 / neg.clamp_min(1e-12))
    w = w / w.sum().clamp_min(1e-12)
    return -(w * (y * a.log() + (1 - y) * (1 - a).log())).sum()
