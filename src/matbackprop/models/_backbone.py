"""What every backbone provides, and the two things backbones own: input normalization and the
``trainable`` grammar.

A *backbone* is an ``nn.Module`` mapping images ``(B, C, H, W)`` to a feature map
``(B, out_channels, ceil(H / s), ceil(W / s))`` with

- ``out_channels`` and ``output_stride`` (``s``): int attributes, all the structured layers on
  top (normalized cuts, second-order pooling) need to know;
- ``normalize(images)``: the input normalization its weights expect, applied by the *models*
  (:class:`~matbackprop.models.DeepNCuts`, :class:`~matbackprop.models.RegionClassifier`) to
  RGB images in ``[0, 1]`` before calling the backbone. A pretrained backbone fixes it (the
  statistics it was trained with); a backbone trained from scratch takes it as an option.

:class:`ImageNormalization` is that normalization, written once: ``y_c = (x_c - mu_c) / sigma_c``.

The ``trainable`` grammar says which trailing blocks of a pretrained backbone are fine-tuned:
``True`` / ``"all"``, ``False`` / ``"none"``, an int ``k`` or ``"last-<k>"``. It is parsed in one
place, :func:`parse_trainable`, which configs use to validate it before a backbone exists.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

__all__ = [
    "EFFICIENTNET_LITE_NORMALIZATION",
    "IMAGENET_NORMALIZATION",
    "ImageNormalization",
    "check_backbone",
    "check_images",
    "parse_trainable",
]


def check_images(x: object, channels: int, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a non-empty float tensor ``(B, channels, H, W)``."""
    if not isinstance(x, Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"`{name}` must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor, got {x.dtype}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"`{name}` must have a non-empty image, got {tuple(x.shape)}")


def check_backbone(backbone: object, attributes: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``backbone`` is a module with the given positive int
    attributes and a callable ``normalize``."""
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"`backbone` must be a torch.nn.Module, got {type(backbone).__name__}")
    for attr in attributes:
        value = getattr(backbone, attr, None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`backbone` must have a positive int attribute `{attr}`, got {value!r}"
            )
    if not callable(getattr(backbone, "normalize", None)):
        raise ValueError(
            "`backbone` must have a `normalize(images)` method: the input normalization its "
            "weights expect (see matbackprop.models.ImageNormalization)"
        )


@dataclass(frozen=True)
class ImageNormalization:
    """Per-channel standardization of images in ``[0, 1]``: ``y_c = (x_c - mu_c) / sigma_c``.

    Parameters
    ----------
    mean, std : tuple of float
        ``mu`` and ``sigma``, one per channel (``std > 0``).

    Raises
    ------
    ValueError
        For lengths that differ or are 0, non-finite values or a non-positive ``std``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import EFFICIENTNET_LITE_NORMALIZATION as lite
    >>> x = torch.full((1, 3, 2, 2), 127 / 255)
    >>> lite(x).abs().max().item(), torch.allclose(lite.inverse(lite(x)), x)
    (0.0, True)
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean, std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
        if not mean or len(mean) != len(std):
            raise ValueError(
                f"`mean` and `std` must have one entry per channel, got {mean} and {std}"
            )
        if not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
            raise ValueError(f"`mean` must be finite and `std` finite and > 0, got {mean}, {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def channels(self) -> int:
        return len(self.mean)

    def _stats(self, images: object) -> tuple[Tensor, Tensor]:
        if not isinstance(images, Tensor):
            raise ValueError(f"`images` must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim not in (3, 4) or images.shape[-3] != self.channels:
            raise ValueError(
                f"`images` must have shape (C, H, W) or (B, C, H, W) with {self.channels} "
                f"channels, got shape {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ValueError(f"`images` must have a floating dtype, got {images.dtype}")
        shape = (self.channels, 1, 1)
        return images.new_tensor(self.mean).view(shape), images.new_tensor(self.std).view(shape)

    def __call__(self, images: Tensor, *, check_range: bool = True) -> Tensor:
        """``(images - mean) / std``, same shape, dtype and device; differentiable.

        Parameters
        ----------
        images : Tensor, shape (C, H, W) or (B, C, H, W)
            Float images in ``[0, 1]``.
        check_range : bool
            Raise ``ValueError`` unless the values are finite and in ``[0, 1]`` (up to 1e-3 of
            resampling overshoot). Costs one host sync; models call it with ``False``.
        """
        mean, std = self._stats(images)
        if check_range:
            lo, hi = (float(v) for v in images.detach().aminmax())
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
                raise ValueError(
                    "`images` must hold finite values in [0, 1] before normalization, "
                    f"got range [{lo:.4g}, {hi:.4g}]"
                )
        return (images - mean) / std

    def inverse(self, images: Tensor) -> Tensor:
        """``images * std + mean`` (not clamped): normalized images back to ``[0, 1]``."""
        mean, std = self._stats(images)
        return images * std + mean


IMAGENET_NORMALIZATION = ImageNormalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""torchvision's ImageNet statistics of RGB images in ``[0, 1]``."""
EFFICIENTNET_LITE_NORMALIZATION = ImageNormalization((127.0 / 255.0,) * 3, (128.0 / 255.0,) * 3)
"""The TF-Lite EfficientNet-Lite convention, mean 127 and std 128 on the 0..255 scale (``(255 x -
127) / 128``), which the Lite weights were trained with. The ``efficientnet-lite-pytorch`` port
shows ImageNet constants in a usage example inherited from ``efficientnet_pytorch``; the stem's
batch-norm statistics agree with 127/128 only (tested).
"""


def parse_trainable(trainable: bool | int | str) -> int | Literal["all"]:
    """Parse the ``trainable`` grammar of pretrained backbones.

    Parameters
    ----------
    trainable : bool, int or str
        ``True`` / ``"all"`` / ``"true"``: everything (the stem too); ``False`` / ``"none"`` /
        ``"false"`` / ``"frozen"``: nothing; ``k`` or ``"last-<k>"``: the last ``k`` blocks.

    Returns
    -------
    int or "all"
        The number of trailing blocks to fine-tune, or ``"all"``. Whether the backbone has that
        many blocks is checked by the backbone.

    Raises
    ------
    ValueError
        For anything else, or a negative ``k``.

    Examples
    --------
    >>> parse_trainable("last-3"), parse_trainable(False), parse_trainable("all")
    (3, 0, 'all')
    """
    if isinstance(trainable, bool):
        return "all" if trainable else 0
    if isinstance(trainable, int):
        k = trainable
    elif isinstance(trainable, str):
        text = trainable.strip().lower()
        if text in ("all", "true"):
            return "all"
        if text in ("none", "false", "frozen"):
            return 0
        match = re.fullmatch(r"last-(\d+)", text)
        if match is None:
            raise ValueError(
                "`trainable` must be a bool, 'all', 'none', 'last-<k>' or an int k, "
                f"got {trainable!r}"
            )
        k = int(match.group(1))
    else:
        raise ValueError(f"`trainable` must be a bool, int or str, got {type(trainable).__name__}")
    if k < 0:
        raise ValueError(f"`trainable` must ask for k >= 0 blocks, got {trainable!r}")
    return k
