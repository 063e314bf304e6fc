"""Region classification with first-order or second-order (O2P / DeepO2P) pooling.

A :class:`RegionClassifier` labels given image regions (e.g. COCO instance masks)::

    F = reduce(backbone(normalize(images)))            (B, C, h, w) conv features
    w_r = area-downsampled mask of region r            (h, w) soft weights in [0, 1]
    avg:  d_r = Σ_p w_rp f_p / Σ_p w_rp                (first-order, C-dim)
    o2p:  d_r = vec(f(Σ_p w_rp f_p f_pᵀ / Σ_p w_rp + εI))     (C(C+1)/2-dim)
          f = log (DeepO2P) or f = sqrt (MPN-COV)
    logits_r = W · dropout(norm(d_r)) + b

The ``o2p`` head is :class:`matbackprop.nn.SecondOrderPooling`, by default with the matrix
logarithm (the log-Euclidean tangent-space mapping of O2P, Carreira et al. 2012), trained
end-to-end through the eigendecomposition by matrix backpropagation (Ionescu et al. 2015,
Sec. 4.1) when the backbone is trainable; ``normalization="sqrt"`` gives the matrix square root
of MPN-COV (Li et al. 2017), trained through the same backward.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matbackprop.models._backbone import check_backbone
from matbackprop.nn import SecondOrderPooling
from matbackprop.validation import check_number

__all__ = ["DESCRIPTOR_NORMS", "HEADS", "RegionClassifier", "region_weights"]

HEADS = ("avg", "o2p")
DESCRIPTOR_NORMS = ("batch", "l2", "none")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def region_weights(masks: Tensor, size: tuple[int, int], stride: int) -> Tensor:
    """Soft region weights on a feature grid: the fraction of each cell covered by the mask.

    ``w[r, i, j] = mean of masks[r]`` over the input pixels ``[s i, s (i + 1)) × [s j,
    s (j + 1))`` of feature cell ``(i, j)`` (``s = stride``; the masks are zero-padded at the
    bottom/right up to ``(h s, w s)``), which is the cell's input footprint for a backbone with
    "SAME" padding and output size ``ceil(H / s) × ceil(W / s)``. If ``size`` is not that
    grid, area interpolation (adaptive average pooling) to ``size`` is used instead. Every
    non-empty mask keeps a positive total weight.

    Parameters
    ----------
    masks : Tensor, shape (B, R, H, W)
        Binary (bool / 0-1) or soft non-negative masks at image resolution.
    size : tuple of int
        Feature grid ``(h, w)``.
    stride : int
        Backbone output stride ``s >= 1``.

    Returns
    -------
    Tensor, shape (B, R, h, w)
        Float weights in the masks' range (float32 unless ``masks`` is floating).

    Raises
    ------
    ValueError
        For a non-4-D or complex ``masks``, a bad ``size`` or ``stride``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import region_weights
    >>> masks = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    >>> masks[0, 0, :2, :3] = True
    >>> region_weights(masks, (2, 2), stride=2)                 # covered fraction of each 2x2 cell
    tensor([[[[1.0000, 0.5000],
              [0.0000, 0.0000]]]])
    """
    if not isinstance(masks, Tensor) or masks.ndim != 4:
        shape = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        raise ValueError(f"`masks` must have shape (B, R, H, W), got {shape}")
    if masks.is_complex():
        raise ValueError(f"`masks` must be real, got {masks.dtype}")
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(_is_int(s) and s >= 1 for s in size)
    ):
        raise ValueError(f"`size` must be a pair of positive ints (h, w), got {size!r}")
    if not _is_int(stride) or stride < 1:
        raise ValueError(f"`stride` must be a positive int, got {stride!r}")
    B, R, H, W = masks.shape
    h, w = int(size[0]), int(size[1])
    x = masks if masks.is_floating_point() else masks.float()
    x = x.reshape(B * R, 1, H, W)
    if math.ceil(H / stride) == h and math.ceil(W / stride) == w:
        x = F.pad(x, (0, w * stride - W, 0, h * stride - H))
        out = F.avg_pool2d(x, kernel_size=stride, stride=stride)
    else:
        out = F.interpolate(x, size=(h, w), mode="area")
    return out.reshape(B, R, h, w)


class RegionClassifier(nn.Module):
    """Backbone → 1×1 reduction → region pooling head → linear classifier.

    Parameters
    ----------
    backbone : nn.Module
        Maps normalized ``(B, 3, H, W)`` to ``(B, C, h, w)``; must have int attributes
        ``out_channels`` and ``output_stride`` and a ``normalize(images)`` method (e.g.
        :class:`~matbackprop.models.EfficientNetLite0Backbone`). Its ``requires_grad`` flags
        decide what of it is fine-tuned.
    head : {"avg", "o2p"}
        ``"avg"``: first-order (weighted average) pooling over each region, ``C``-dim.
        ``"o2p"``: :class:`~matbackprop.nn.SecondOrderPooling` with ``normalization``,
        ``C(C+1)/2``-dim.
    num_classes : int
        Number of classes (80 for COCO).
    reduce_dim : int, optional
        Channels ``C`` of a plain 1×1 convolution (with bias, no normalization or
        nonlinearity) applied to the backbone features before pooling; ``None``: no reduction
        (``C = backbone.out_channels``).
    train_reduction : bool
        Whether the reduction convolution is trained (False: frozen at its seeded random
        initialisation, a random projection).
    descriptor_norm : {"batch", "l2", "none"}
        Normalization of the pooled descriptors before the classifier. ``"batch"``:
        ``BatchNorm1d(affine=False)`` over the regions of the batch (running statistics in
        eval mode), i.e. a learned per-dimension standardization, divided by
        ``sqrt(descriptor_dim)`` (unit expected squared norm); ``"l2"``: unit L2 norm;
        ``"none"``. Both normalizations give descriptors of norm about 1 whatever their
        length, so that one learning rate suits the C-dim first-order and the
        C(C+1)/2-dim second-order heads alike.
    dropout : float
        Dropout probability on the normalized descriptors, in ``[0, 1)``.
    normalization, eps, center, signed_power, compute_dtype, route
        Options of :class:`~matbackprop.nn.SecondOrderPooling` (``"o2p"`` head only):
        ``f(C_r + εI)`` with ``f = normalization`` (``"log"``: DeepO2P, ``"sqrt"``: MPN-COV,
        or any other normalization the layer offers) and ``ε = eps``; ``center`` uses the
        covariance instead of the second moment (O2P uses the second moment);
        ``signed_power`` applies ``sign(x)|x|^α`` to the normalized matrix entries.
    freeze_batchnorm : bool
        Keep every batch-norm layer of the backbone in eval mode (running statistics, never
        updated), also in trainable blocks, when ``.train()`` is called. Their affine
        parameters are still trained when they require grad. Recommended with small batches.

    Attributes
    ----------
    descriptor_dim : int
        Length of a pooled descriptor.
    channels : int
        ``C``.

    Raises
    ------
    ValueError
        For a backbone without ``out_channels`` / ``output_stride`` / ``normalize`` or invalid
        options.

    Notes
    -----
    *Masks to the feature grid.* Region masks at image resolution become soft weights on the
    feature grid with :func:`region_weights` (cell coverage fractions), so every region keeps
    at least one cell, however small. Regions smaller than ``C`` cells have a rank-deficient
    second-moment matrix; ``eps > 0`` makes the logarithm finite, and
    :class:`~matbackprop.nn.SecondOrderPooling` then takes its exact low-rank (Gram) route.

    *Variable number of regions.* ``forward`` takes a list of per-image mask tensors or a
    padded tensor with a validity mask, and returns the logits of all valid regions in image
    order, flattened.

    References
    ----------
    C. Ionescu, O. Vantzos and C. Sminchisescu, "Matrix Backpropagation for Deep Networks with
    Structured Layers", ICCV 2015, Sec. 4.1 (DeepO2P). J. Carreira, R. Caseiro, J. Batista and
    C. Sminchisescu, "Semantic Segmentation with Second-Order Pooling", ECCV 2012 (O2P).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import RegionClassifier, VGGTrunk
    >>> model = RegionClassifier(VGGTrunk(widths=(8, 16), output_stride=4), "o2p", num_classes=5,
    ...                      reduce_dim=4)
    >>> images = torch.rand(2, 3, 32, 32)
    >>> masks = torch.zeros(2, 3, 32, 32, dtype=torch.bool)
    >>> masks[:, 0, :16], masks[:, 1, 16:], masks[:, 2, :, :16] = True, True, True
    >>> model(images, masks).shape                       # class scores of the B * R regions
    torch.Size([6, 5])
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: str = "o2p",
        *,
        num_classes: int = 80,
        reduce_dim: int | None = None,
        train_reduction: bool = True,
        descriptor_norm: str = "batch",
        dropout: float = 0.0,
        eps: float = 1e-3,
        center: bool = False,
        signed_power: float | None = None,
        compute_dtype: torch.dtype | None = None,
        route: str = "auto",
        freeze_batchnorm: bool = True,
        normalization: str | None = "log",
    ) -> None:
        super().__init__()
        check_backbone(backbone, ("out_channels", "output_stride"))
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}, got {head!r}")
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive int, got {num_classes!r}")
        if reduce_dim is not None and (not _is_int(reduce_dim) or reduce_dim < 1):
            raise ValueError(f"`reduce_dim` must be a positive int or None, got {reduce_dim!r}")
        if descriptor_norm not in DESCRIPTOR_NORMS:
            raise ValueError(
                f"`descriptor_norm` must be one of {DESCRIPTOR_NORMS}, got {descriptor_norm!r}"
            )
        dropout = check_number(dropout, "dropout", minimum=0, below=1)
        for name, flag in (
            ("train_reduction", train_reduction),
            ("freeze_batchnorm", freeze_batchnorm),
        ):
            if not isinstance(flag, bool):
                raise ValueError(f"`{name}` must be a bool, got {flag!r}")

        self.backbone = backbone
        self.head = head
        self.num_classes = int(num_classes)
        self.stride = int(backbone.output_stride)  # type: ignore[arg-type]  # nn.Module attributes are typed Tensor | Module
        self.freeze_batchnorm = freeze_batchnorm
        self.descriptor_norm = descriptor_norm
        in_channels = int(backbone.out_channels)  # type: ignore[arg-type]
        self.channels = int(reduce_dim) if reduce_dim is not None else in_channels
        self.reduce = nn.Conv2d(in_channels, reduce_dim, 1) if reduce_dim is not None else None
        if self.reduce is not None and not train_reduction:
            self.reduce.requires_grad_(False)
        if head == "o2p":
            # validates normalization, eps, signed_power, compute_dtype, route
            self.pool: SecondOrderPooling | None = SecondOrderPooling(
                normalization,
                eps=eps,
                center=center,
                signed_power=signed_power,
                in_channels=self.channels,
                route=route,
                compute_dtype=compute_dtype,
            )
            self.descriptor_dim = self.pool.descriptor_size()
        else:
            self.pool = None
            self.descriptor_dim = self.channels
        self.norm = (
            nn.BatchNorm1d(self.descriptor_dim, affine=False)
            if descriptor_norm == "batch"
            else None
        )
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(self.descriptor_dim, self.num_classes)
        self.train(self.training)

    # ------------------------------------------------------------------------------ modes

    def train(self, mode: bool = True) -> RegionClassifier:
        """Set train/eval mode; with ``freeze_batchnorm`` the backbone's BN stays in eval."""
        super().train(mode)
        if self.freeze_batchnorm:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters of the backbone."""
        return (p for p in self.backbone.parameters() if p.requires_grad)

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters outside the backbone (reduction, classifier)."""
        backbone = {id(p) for p in self.backbone.parameters()}
        return (p for p in self.parameters() if p.requires_grad and id(p) not in backbone)

    def parameter_groups(
        self, backbone_lr_scale: float = 1.0, weight_decay: float | None = None
    ) -> list[dict[str, Any]]:
        """Optimizer groups: backbone (``lr_scale = backbone_lr_scale``) and head.

        With ``weight_decay`` given, matrices and conv kernels get it and biases/norm scales
        get none; otherwise the optimizer's default applies to every group. Empty groups are
        left out.

        Raises
        ------
        ValueError
            For a non-positive ``backbone_lr_scale`` or negative ``weight_decay``.
        """
        if isinstance(backbone_lr_scale, bool) or not isinstance(backbone_lr_scale, int | float):
            raise ValueError(f"`backbone_lr_scale` must be a number > 0, got {backbone_lr_scale!r}")
        if not backbone_lr_scale > 0:
            raise ValueError(f"`backbone_lr_scale` must be > 0, got {backbone_lr_scale!r}")
        if weight_decay is not None and not weight_decay >= 0:
            raise ValueError(f"`weight_decay` must be >= 0 or None, got {weight_decay!r}")
        groups: list[dict[str, Any]] = []
        for params, scale in (
            (list(self.backbone_parameters()), float(backbone_lr_scale)),
            (list(self.head_parameters()), 1.0),
        ):
            if weight_decay is None:
                if params:
                    groups.append({"params": params, "lr_scale": scale})
                continue
            decay = [p for p in params if p.ndim >= 2]
            no_decay = [p for p in params if p.ndim < 2]
            if decay:
                groups.append({"params": decay, "lr_scale": scale, "weight_decay": weight_decay})
            if no_decay:
                groups.append({"params": no_decay, "lr_scale": scale, "weight_decay": 0.0})
        return groups

    # ------------------------------------------------------------------------------ inputs

    @staticmethod
    def _check_images(images: object) -> Tensor:
        if not isinstance(images, Tensor):
            raise ValueError(f"`images` must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"`images` must have shape (B, 3, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"`images` must be floating point, got {images.dtype}")
        if min(images.shape) < 1:
            raise ValueError(f"`images` must be non-empty, got {tuple(images.shape)}")
        return images

    @staticmethod
    def _padded_masks(
        masks: Tensor | Sequence[Tensor], valid: Tensor | None, images: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(B, R, H, W)`` masks and ``(B, R)`` bool validity from either input form."""
        B, _, H, W = images.shape
        if isinstance(masks, Tensor):
            if masks.ndim != 4 or masks.shape[0] != B or tuple(masks.shape[2:]) != (H, W):
                raise ValueError(
                    f"`masks` must have shape ({B}, R, {H}, {W}) to match `images` "
                    f"{tuple(images.shape)}, got {tuple(masks.shape)}"
                )
            if valid is None:
                valid = torch.ones(masks.shape[:2], dtype=torch.bool, device=masks.device)
            elif (
                not isinstance(valid, Tensor)
                or valid.dtype != torch.bool
                or tuple(valid.shape) != tuple(masks.shape[:2])
            ):
                got = (
                    f"{tuple(valid.shape)} {valid.dtype}"
                    if isinstance(valid, Tensor)
                    else type(valid).__name__
                )
                raise ValueError(
                    f"`valid` must be a bool tensor of shape {tuple(masks.shape[:2])}, got {got}"
                )
            padded = masks
        elif isinstance(masks, Sequence) and not isinstance(masks, str):
            if valid is not None:
                raise ValueError("`valid` must be None when `masks` is a list of tensors")
            if len(masks) != B:
                raise ValueError(
                    f"`masks` must hold one (R_b, H, W) tensor per image ({B}), got {len(masks)}"
                )
            counts = []
            for b, m in enumerate(masks):
                if not isinstance(m, Tensor) or m.ndim != 3 or tuple(m.shape[1:]) != (H, W):
                    shape = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
                    raise ValueError(f"`masks[{b}]` must have shape (R, {H}, {W}), got {shape}")
                counts.append(int(m.shape[0]))
            r_max = max(counts) if counts else 0
            dtype = masks[0].dtype if all(m.dtype == masks[0].dtype for m in masks) else None
            if dtype is None:
                dtype = torch.float32
            padded = images.new_zeros((B, max(r_max, 1), H, W), dtype=dtype)
            valid = torch.zeros((B, max(r_max, 1)), dtype=torch.bool, device=images.device)
            for b, m in enumerate(masks):
                padded[b, : counts[b]] = m.to(device=images.device, dtype=dtype)
                valid[b, : counts[b]] = True
        else:
            raise ValueError(
                "`masks` must be a (B, R, H, W) tensor or a list of (R_b, H, W) tensors, got "
                f"{type(masks).__name__}"
            )
        if padded.is_complex():
            raise ValueError(f"`masks` must be real, got {padded.dtype}")
        if padded.device != images.device:
            raise ValueError(f"`masks` must be on the device of `images` ({images.device})")
        if padded.is_floating_point():
            if not bool(torch.isfinite(padded).all()):
                raise ValueError("`masks` must be finite")
        if padded.dtype != torch.bool and bool((padded < 0).any()):
            raise ValueError("`masks` must be non-negative")
        if not bool(valid.any()):
            raise ValueError("`masks` must hold at least one (valid) region, got none")
        return padded, valid.to(images.device)

    # ------------------------------------------------------------------------------ forward

    def descriptors(
        self, images: Tensor, masks: Tensor | Sequence[Tensor], valid: Tensor | None = None
    ) -> Tensor:
        """Pooled region descriptors (before normalization), ``(Q, descriptor_dim)``.

        Parameters and errors as :meth:`forward`.
        """
        images = self._check_images(images)
        padded, valid = self._padded_masks(masks, valid, images)
        features = self.backbone(self.backbone.normalize(images))  # type: ignore[operator]
        if not isinstance(features, Tensor) or features.ndim != 4:
            raise ValueError("`backbone` must return a (B, C, h, w) tensor")
        if self.reduce is not None:
            features = self.reduce(features)
        weights = region_weights(padded, tuple(features.shape[-2:]), self.stride)
        weights = weights.to(features.dtype)
        totals = weights.flatten(2).sum(-1)  # (B, R)
        empty = valid & ~(totals > 0)
        if bool(empty.any()):
            b, r = (int(i) for i in empty.nonzero()[0])
            raise ValueError(f"`masks` must not be empty: region {r} of image {b} has no pixel")
        if self.head == "avg":
            normalized = (
                weights / totals.clamp_min(torch.finfo(weights.dtype).tiny)[..., None, None]
            )
            pooled = torch.einsum("brhw,bchw->brc", normalized, features)
        else:
            # padding slots get a one-cell dummy region (cheap, discarded below)
            weights = weights.clone()
            dummy = ~valid
            weights[..., 0, 0] = torch.where(dummy, 1.0, weights[..., 0, 0])
            pooled = self.pool(features, weights)  # type: ignore[misc]  # (B, R, D)
        return pooled[valid]

    def forward(
        self, images: Tensor, masks: Tensor | Sequence[Tensor], valid: Tensor | None = None
    ) -> Tensor:
        """Class logits of every region.

        Parameters
        ----------
        images : Tensor, shape (B, 3, H, W)
            Float RGB images in ``[0, 1]``; the backbone's ``normalize`` is applied here.
            Images of different sizes are padded to a common size (the masks are zero there);
            pad with the normalization's mean (e.g.
            ``matbackprop.data.collate_regions(items, fill=backbone.normalization.mean)``) so
            that the padding is zero once normalized.
        masks : Tensor of shape (B, R, H, W), or list of B Tensors of shape (R_b, H, W)
            Region masks at image resolution (bool, 0/1 or soft non-negative weights). A list
            may hold a different number ``R_b >= 0`` of regions per image.
        valid : Tensor of bool, shape (B, R), optional
            With a padded tensor ``masks``: which slots are real regions (default: all).

        Returns
        -------
        Tensor, shape (Q, num_classes)
            Logits of the ``Q`` valid regions, image by image, in region order.

        Raises
        ------
        ValueError
            For malformed ``images`` / ``masks`` / ``valid`` (shapes, dtypes, devices,
            negative or non-finite weights), no valid region, or an empty region mask.
        """
        d = self.descriptors(images, masks, valid)
        if self.norm is not None:
            if self.training and d.shape[0] < 2:  # batch statistics need two samples
                d = F.batch_norm(
                    d,
                    self.norm.running_mean,
                    self.norm.running_var,
                    training=False,
                    eps=self.norm.eps,
                )
            else:
                d = self.norm(d)
            d = d * (1.0 / math.sqrt(self.descriptor_dim))
        elif self.descriptor_norm == "l2":
            d = F.normalize(d, dim=-1)
        return self.classifier(self.dropout(d))

    def extra_repr(self) -> str:
        return (
            f"head={self.head!r}, channels={self.channels}, descriptor_dim={self.descriptor_dim}, "
            f"num_classes={self.num_classes}, descriptor_norm={self.descriptor_norm!r}, "
            f"freeze_batchnorm={self.freeze_batchnorm}"
        )
