"""A small VGG-style convolutional trunk to train from scratch (the CPU demo).

References
----------
K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (VGG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from matbackprop.models._backbone import ImageNormalization, check_images

__all__ = ["VGGTrunk"]

def _norm_layer(kind: str | None, channels: int) -> nn.Module:
    if kind is None:
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    # group norm: at most 8 groups, a divisor of the channel count
    return nn.GroupNorm(math.gcd(8, channels), channels)


class VGGTrunk(nn.Module):
    """Small VGG-style convolutional trunk to train from scratch.

    Stage ``i`` is ``convs_per_stage`` blocks of ``3x3 conv (padding 1) -> norm -> ReLU`` with
    ``widths[i]`` channels; a 2x2 max-pool (stride 2, ceil mode) follows each of the first
    ``log2(output_stride)`` stages, so the output is
    ``(B, widths[-1], ceil(H / s), ceil(W / s))`` for ``s = output_stride``.

    Parameters
    ----------
    in_channels : int
        Input channels (3 for RGB).
    widths : sequence of int
        Channels of each stage, e.g. ``(32, 64, 96)``.
    output_stride : int
        Power of two ``2**p`` with ``0 <= p <= len(widths)``; 4 or 8 with three stages.
    norm : {"batch", "group", None}
        Normalisation after each conv: BatchNorm2d, GroupNorm (``gcd(8, C)`` groups), or none
        (then the convs have a bias).
    convs_per_stage : int
        Convolutions per stage (default 2).
    normalization : ImageNormalization, optional
        The input normalization applied by :meth:`normalize`; default mean 0.5 and std 0.25 in
        every channel (images in ``[0, 1]`` to about ``[-2, 2]``).

    Attributes
    ----------
    out_channels : int
        ``widths[-1]``.
    output_stride : int
    normalization : ImageNormalization

    Raises
    ------
    ValueError
        For non-positive channel counts, an empty ``widths``, an ``output_stride`` that is not a
        power of two reachable with ``len(widths)`` pools, or an unknown ``norm``.

    Notes
    -----
    Convolutions are He-normal initialised (fan-out, ReLU gain) with zero bias; the weights are
    therefore a deterministic function of the torch seed at construction.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import VGGTrunk
    >>> trunk = VGGTrunk(widths=(8, 16), output_stride=2)
    >>> trunk(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 16, 16, 16])
    >>> trunk.out_channels
    16
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 96),
        output_stride: int = 4,
        norm: Literal["batch", "group"] | None = "batch",
        convs_per_stage: int = 2,
        normalization: ImageNormalization | None = None,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"`in_channels` must be a positive int, got {in_channels!r}")
        widths = tuple(widths)
        if not widths or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths
        ):
            raise ValueError(
                f"`widths` must be a non-empty sequence of positive ints, got {widths}"
            )
        if norm not in ("batch", "group", None):
            raise ValueError(f"`norm` must be 'batch', 'group' or None, got {norm!r}")
        if (
            isinstance(convs_per_stage, bool)
            or not isinstance(convs_per_stage, int)
            or convs_per_stage < 1
        ):
            raise ValueError(f"`convs_per_stage` must be a positive int, got {convs_per_stage!r}")
        if (
            isinstance(output_stride, bool)
            or not isinstance(output_stride, int)
            or output_stride < 1
            or output_stride & (output_stride - 1)
            or output_stride.bit_length() - 1 > len(widths)
        ):
            raise ValueError(
                f"`output_stride` must be a power of two at most 2**len(widths) = "
                f"{2 ** len(widths)}, got {output_stride!r}"
            )
        if normalization is None:
            normalization = ImageNormalization((0.5,) * in_channels, (0.25,) * in_channels)
        if not isinstance(normalization, ImageNormalization):
            raise ValueError(
                f"`normalization` must be an ImageNormalization, got {type(normalization).__name__}"
            )
        if normalization.channels != in_channels:
            raise ValueError(
                f"`normalization` has {normalization.channels} channels, the trunk takes "
                f"{in_channels}"
            )
        self.normalization = normalization
        num_pools = output_stride.bit_length() - 1
        layers: list[nn.Module] = []
        cin = in_channels
        for stage, width in enumerate(widths):
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv2d(cin, width, 3, padding=1, bias=norm is None),
                    _norm_layer(norm, width),
                    nn.ReLU(inplace=True),
                ]
                cin = width
            if stage < num_pools:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.out_channels = widths[-1]
        self.output_stride = output_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def normalize(self, images: Tensor) -> Tensor:
        """``(images - mean) / std`` of images in ``[0, 1]`` ``(B, in_channels, H, W)``."""
        check_images(images, self.in_channels, "images")
        return self.normalization(images, check_range=False)

    def forward(self, x: Tensor) -> Tensor:
        """Feature map of normalized images (see :meth:`normalize`).

        Parameters
        ----------
        x : Tensor, shape (B, in_channels, H, W)

        Returns
        -------
        Tensor, shape (B, out_channels, ceil(H / output_stride), ceil(W / output_stride))
        """
        check_images(x, self.in_channels, "x")
        return self.features(x)
