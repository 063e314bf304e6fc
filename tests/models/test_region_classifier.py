"""Tests for matbackprop.models RegionClassifier (first-order / O2P / DeepO2P heads)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from matbackprop.models import EfficientNetLite0Backbone
from matbackprop.models._region_classifier import RegionClassifier, region_weights
from matbackprop.nn.functional import second_order_pooling


class PatchBackbone(nn.Module):
    """A linear "patchify" backbone: stride-s conv of kernel s, output ceil(H/s) x ceil(W/s)."""

    def __init__(self, channels: int = 6, stride: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, stride, stride=stride)
        self.out_channels = channels
        self.output_stride = stride

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images  # takes its input as it is

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.output_stride
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % s, 0, -h % s))
        return self.conv(x)


def box_masks(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        masks[k, y0:y1, x0:x1] = True
    return masks


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(3, 3, 18, 22)


@pytest.fixture
def mask_list() -> list[torch.Tensor]:
    return [
        box_masks(18, 22, [(0, 9, 0, 11), (5, 18, 3, 22)]),
        box_masks(18, 22, []),
        box_masks(18, 22, [(2, 3, 2, 3), (0, 18, 0, 22), (10, 14, 12, 20)]),
    ]


def _padded(mask_list: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    r = max(m.shape[0] for m in mask_list)
    padded = torch.zeros(len(mask_list), r, *mask_list[0].shape[1:], dtype=torch.bool)
    valid = torch.zeros(len(mask_list), r, dtype=torch.bool)
    for b, m in enumerate(mask_list):
        padded[b, : m.shape[0]] = m
        valid[b, : m.shape[0]] = True
    return padded, valid


# ------------------------------------------------------------------ region weights


def test_region_weights_are_cell_coverage_fractions():
    masks = torch.zeros(1, 2, 10, 7, dtype=torch.bool)
    masks[0, 0, 9, 6] = True  # one pixel in the bottom-right (padded) cell
    masks[0, 1, 0:4, 0:4] = True  # exactly the first cell
    w = region_weights(masks, (3, 2), 4)
    assert w.shape == (1, 2, 3, 2)
    expected0 = torch.zeros(3, 2)
    expected0[2, 1] = 1 / 16
    torch.testing.assert_close(w[0, 0], expected0)
    expected1 = torch.zeros(3, 2)
    expected1[0, 0] = 1.0
    torch.testing.assert_close(w[0, 1], expected1)
    # total weight times the cell area is the mask area
    torch.testing.assert_close(w.sum((-1, -2)) * 16, masks.sum((-1, -2)).float())


def test_region_weights_fall_back_to_area_interpolation():
    masks = torch.ones(1, 1, 8, 8)
    w = region_weights(masks, (3, 5), 4)  # not the ceil(H/s) grid
    assert w.shape == (1, 1, 3, 5)
    torch.testing.assert_close(w, torch.ones_like(w))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.ones(2, 8, 8), (2, 2), 4), "`masks`"),
        ((torch.ones(1, 1, 8, 8), (2,), 4), "`size`"),
        ((torch.ones(1, 1, 8, 8), (2, 2), 0), "`stride`"),
    ],
    ids=["masks-3d", "size-short", "stride-zero"],
)
def test_region_weights_validation(args, match):
    with pytest.raises(ValueError, match=match):
        region_weights(*args)


# ------------------------------------------------------------------ shapes and equivalences


@pytest.mark.parametrize("head", ["avg", "o2p"])
def test_list_and_padded_masks_give_the_same_logits(head, images, mask_list):
    torch.manual_seed(1)
    model = RegionClassifier(PatchBackbone(), head, num_classes=5, eps=0.1).eval()
    with torch.no_grad():
        from_list = model(images, mask_list)
        padded, valid = _padded(mask_list)
        from_padded = model(images, padded, valid)
    assert from_list.shape == (5, 5)
    assert torch.isfinite(from_list).all()
    torch.testing.assert_close(from_list, from_padded)


def test_avg_descriptor_is_the_weighted_feature_mean(images, mask_list):
    model = RegionClassifier(PatchBackbone(), "avg", num_classes=3)
    with torch.no_grad():
        got = model.descriptors(images, mask_list)
        features = model.backbone(images)
        expected = []
        for b, masks in enumerate(mask_list):
            if masks.shape[0] == 0:
                continue
            w = region_weights(masks[None], tuple(features.shape[-2:]), 4)[0]
            w = w / w.sum((-1, -2), keepdim=True)
            expected.append(torch.einsum("rhw,chw->rc", w, features[b]))
    torch.testing.assert_close(got, torch.cat(expected))


@pytest.mark.parametrize("normalization", ["log", "sqrt"])
def test_o2p_descriptor_is_second_order_pooling_per_image(normalization, images, mask_list):
    model = RegionClassifier(
        PatchBackbone(), "o2p", num_classes=3, eps=0.05, reduce_dim=4, normalization=normalization
    )
    assert model.pool.options.normalization == normalization
    with torch.no_grad():
        got = model.descriptors(images, mask_list)
        features = model.reduce(model.backbone(images))
        expected = []
        for b, masks in enumerate(mask_list):
            if masks.shape[0] == 0:
                continue
            w = region_weights(masks[None], tuple(features.shape[-2:]), 4)
            expected.append(
                second_order_pooling(
                    features[b : b + 1], w, normalization=normalization, eps=0.05
                )[0]
            )
    assert got.shape == (5, 10) and model.descriptor_dim == 10
    torch.testing.assert_close(got, torch.cat(expected), rtol=1e-5, atol=1e-5)
    # f(C + eps I): a region's descriptor is not the plain second moment
    assert not torch.allclose(got, torch.zeros_like(got))
    plain = RegionClassifier(
        PatchBackbone(), "o2p", num_classes=3, eps=0.05, reduce_dim=4, normalization=None
    )
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain.descriptors(images, mask_list), got, atol=1e-3)


@pytest.mark.parametrize("norm", ["batch", "l2", "none"])
def test_descriptor_norms(norm, images, mask_list):
    model = RegionClassifier(PatchBackbone(), "o2p", num_classes=4, descriptor_norm=norm, eps=0.1)
    model.train()
    logits = model(images, mask_list)
    assert logits.shape == (5, 4) and torch.isfinite(logits).all()
    assert (model.norm is not None) == (norm == "batch")
    # one region in train mode: batch norm falls back to its running statistics
    one = model(images[:1], [mask_list[0][:1]])
    assert one.shape == (1, 4) and torch.isfinite(one).all()


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("normalization", ["log", "sqrt"])
def test_gradcheck_o2p_head_through_the_features(normalization):
    torch.manual_seed(0)
    backbone = PatchBackbone(channels=3, stride=2).double()
    model = RegionClassifier(
        backbone, "o2p", num_classes=2, descriptor_norm="none", eps=0.1,
        normalization=normalization,
    ).double()  # fmt: skip
    masks = [box_masks(4, 4, [(0, 2, 0, 4), (1, 4, 1, 3)])]
    images = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model.descriptors(x, masks), (images,))


def test_gradients_reach_the_trainable_backbone_through_the_log_matrix():
    torch.manual_seed(0)
    backbone = EfficientNetLite0Backbone(output_stride=16, pretrained=False, trainable="last-2")
    model = RegionClassifier(backbone, "o2p", num_classes=4, eps=1.0, reduce_dim=24)
    model.train()
    images = torch.randn(2, 3, 64, 48)  # 4 x 3 feature grid: every region < 24 channels
    masks = [
        box_masks(64, 48, [(0, 30, 0, 20), (40, 64, 10, 48)]),
        box_masks(64, 48, [(5, 9, 5, 9), (0, 64, 0, 48), (20, 50, 0, 30)]),
    ]
    logits = model(images, masks)
    loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 1]))
    loss.backward()
    trainable = list(backbone.blocks[-2:].parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    assert sum(float(p.grad.abs().sum()) for p in trainable) > 0
    assert all(p.grad is None for p in backbone.blocks[0].parameters())
    assert all(p.grad is not None for p in model.reduce.parameters())


def test_frozen_batchnorm_and_parameter_groups():
    backbone = EfficientNetLite0Backbone(output_stride=16, pretrained=False, trainable="last-1")
    model = RegionClassifier(backbone, "avg", num_classes=3, reduce_dim=8).train()
    norms = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.training for m in norms)
    assert model.classifier.training
    before = backbone.blocks[-1].project.bn.running_mean.clone()
    model(torch.randn(2, 3, 32, 32), [box_masks(32, 32, [(0, 16, 0, 16)])] * 2)
    torch.testing.assert_close(backbone.blocks[-1].project.bn.running_mean, before)

    groups = model.parameter_groups(0.1, weight_decay=1e-4)
    backbone_ids = {id(p) for p in backbone.blocks[-1].parameters()}
    scaled = [p for g in groups if g["lr_scale"] == 0.1 for p in g["params"]]
    assert {id(p) for p in scaled} == backbone_ids
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    assert decayed and all(p.ndim >= 2 for p in decayed)

    frozen = RegionClassifier(
        EfficientNetLite0Backbone(16, pretrained=False), "o2p", reduce_dim=8,
        train_reduction=False, num_classes=3,
    )  # fmt: skip
    params = [p for g in frozen.parameter_groups() for p in g["params"]]
    assert {id(p) for p in params} == {id(p) for p in frozen.classifier.parameters()}


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"head": "max"}, "`head`"),
        ({"num_classes": 0}, "`num_classes`"),
        ({"reduce_dim": 0}, "`reduce_dim`"),
        ({"descriptor_norm": "layer"}, "`descriptor_norm`"),
        ({"dropout": 1.0}, "`dropout`"),
        ({"dropout": -0.1}, "`dropout`"),
        ({"dropout": float("nan")}, "`dropout`"),
        ({"eps": -1.0}, "`eps`"),
        ({"normalization": "exp"}, "`normalization`"),
        ({"freeze_batchnorm": 1}, "`freeze_batchnorm`"),
    ],
    ids=lambda v: str(v),
)
def test_constructor_validation(kwargs, match):
    args = {"head": "o2p", **kwargs}
    with pytest.raises(ValueError, match=match):
        RegionClassifier(PatchBackbone(), **args)


def test_backbone_must_expose_channels_and_stride():
    with pytest.raises(ValueError, match="out_channels"):
        RegionClassifier(nn.ReLU())
    with pytest.raises(ValueError, match="output_stride"):
        RegionClassifier(nn.Conv2d(3, 4, 1))  # has out_channels, no output_stride
    with pytest.raises(ValueError, match="`backbone` must be a torch.nn.Module"):
        RegionClassifier(lambda x: x)
    stride_only = nn.Conv2d(3, 4, 1)
    stride_only.output_stride = 1
    with pytest.raises(ValueError, match="normalize"):
        RegionClassifier(stride_only)


class ShiftedPatchBackbone(PatchBackbone):
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return 2 * images - 1


def test_models_apply_the_backbone_normalization(images, mask_list):
    """The backbone owns its input normalization; both models call it on [0, 1] images."""
    from matbackprop.models import DeepNCuts

    torch.manual_seed(0)
    model = RegionClassifier(ShiftedPatchBackbone(), "avg", num_classes=3)
    plain = RegionClassifier(PatchBackbone(), "avg", num_classes=3)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            model.descriptors(images, mask_list), plain.descriptors(2 * images - 1, mask_list)
        )
    ncuts = DeepNCuts(ShiftedPatchBackbone(), 4).eval()
    with torch.no_grad():
        expected = torch.nn.functional.softplus(
            ncuts.project(ncuts.backbone(2 * images - 1))
        )
        torch.testing.assert_close(ncuts.feature_map(images), expected)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, x, k: m(x[0], k), "`images`"),
        (lambda m, x, k: m(x.long(), k), "`images`"),
        (lambda m, x, k: m(x, k[:2]), "`masks`"),
        (lambda m, x, k: m(x, [k[0], k[1], k[2][:, :5]]), r"`masks\[2\]`"),
        (lambda m, x, k: m(x, torch.ones(3, 2, 18, 21)), "`masks`"),
        (lambda m, x, k: m(x, torch.ones(3, 2, 18, 22), torch.ones(3, 2)), "`valid`"),
        (lambda m, x, k: m(x, torch.ones(3, 1, 18, 22), torch.zeros(3, 1).bool()), "no"),
        (lambda m, x, k: m(x, [k[0], k[1], torch.zeros(1, 18, 22)]), "empty"),
        (lambda m, x, k: m(x, -torch.ones(3, 1, 18, 22)), "non-negative"),
        (lambda m, x, k: m(x, torch.full((3, 1, 18, 22), math.nan)), "finite"),
        (lambda m, x, k: m(x, "masks"), "`masks`"),
    ],
    ids=[
        "images-3d",
        "images-int",
        "list-length",
        "list-item-shape",
        "tensor-shape",
        "valid-dtype",
        "no-valid-region",
        "empty-mask",
        "negative",
        "nan",
        "string",
    ],
)
def test_forward_validation(call, match, images, mask_list):
    model = RegionClassifier(PatchBackbone(), "o2p", num_classes=3, eps=0.1)
    with pytest.raises(ValueError, match=match):
        call(model, images, mask_list)
