"""HypercolumnEncoder (node descriptors) and NodeHead (standardize → MLP → softplus)."""

from __future__ import annotations

import pytest
import torch

from matbackprop.data import pool_to_superpixels, rgb_to_lab
from matbackprop.models._hypercolumn import HypercolumnEncoder, NodeHead


def quadrants(H: int = 24, W: int = 32) -> torch.Tensor:
    idx = torch.zeros(H, W, dtype=torch.long)
    idx[:, W // 2 :] += 1
    idx[H // 2 :] += 2
    return idx


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return HypercolumnEncoder(pretrained=False).eval()


def test_descriptor_layout(encoder):
    assert encoder.tap_channels == (16, 24, 40, 112, 320)
    assert encoder.out_dim == 512 + 3 + 2
    image = torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(1))
    idx = quadrants()
    with torch.no_grad():
        x = encoder(image, idx)
    assert x.shape == (4, encoder.out_dim)
    # colour block: mean Lab / 100 per node; position block: centroids / diagonal
    lab = pool_to_superpixels(rgb_to_lab(image) / 100, idx)
    torch.testing.assert_close(x[:, 512:515], lab)
    diag = (24**2 + 32**2) ** 0.5
    expected = torch.tensor([[5.5, 7.5], [5.5, 23.5], [17.5, 7.5], [17.5, 23.5]]) / diag
    torch.testing.assert_close(x[:, 515:], expected)


def test_taps_are_the_block_outputs(encoder):
    image = torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        maps = encoder.feature_maps(image)
        # an independent forward through the stem and blocks
        x = (image[None] - 127 / 255) / (128 / 255)
        x = encoder.backbone.stem(x)
        ref = []
        for i, block in enumerate(encoder.backbone.blocks):
            x = block(x)
            if i in encoder.taps:
                ref.append(x)
    assert [tuple(m.shape[-2:]) for m in maps] == [(12, 16), (6, 8), (3, 4), (2, 2), (1, 1)]
    for m, r in zip(maps, ref, strict=True):
        torch.testing.assert_close(m, r)


def test_input_size_resizes_only_the_backbone_input():
    enc = HypercolumnEncoder(taps=(0, 2), pretrained=False, input_size=16).eval()
    image = torch.rand(3, 24, 32)
    with torch.no_grad():
        maps = enc.feature_maps(image)
        x = enc(image, quadrants())
    assert tuple(maps[0].shape[-2:]) == (6, 8)  # 12 x 16 input, stride 2
    assert x.shape == (4, 16 + 24 + 5)


def test_gradients_reach_trainable_blocks():
    enc = HypercolumnEncoder(taps=(2, 4), pretrained=False, trainable=1)
    x = enc(torch.rand(3, 24, 32), quadrants())
    x.sum().backward()
    assert enc.backbone.blocks[4].project.conv.weight.grad is not None
    assert enc.backbone.blocks[3].project.conv.weight.grad is None


@pytest.mark.parametrize("taps", [(), (2, 1), (0, 16), (-1,)])
def test_rejects_bad_taps(taps):
    with pytest.raises(ValueError, match="taps"):
        HypercolumnEncoder(taps=taps, pretrained=False)


def test_rejects_mismatched_node_index(encoder):
    with pytest.raises(ValueError, match="node_index"):
        encoder(torch.rand(3, 24, 32), quadrants(24, 30))


def test_node_head_standardizes_and_is_nonnegative():
    g = torch.Generator().manual_seed(0)
    head = NodeHead(5, feature_dim=3, hidden=4)
    data = 10 + 3 * torch.randn(100, 5, generator=g)
    head.fit_normalization(data)
    torch.testing.assert_close(head.mean, data.mean(0))
    out = head(data)
    assert out.shape == (100, 3) and bool((out >= 0).all())
    # the MLP sees standardized input
    z = (data - data.mean(0)) / data.std(0)
    torch.testing.assert_close(out, torch.nn.functional.softplus(head.net(z)))
    # the normalization travels with the state dict
    other = NodeHead(5, feature_dim=3, hidden=4)
    other.load_state_dict(head.state_dict())
    torch.testing.assert_close(other(data), out)
    with pytest.raises(ValueError, match="x"):
        head(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="hidden"):
        NodeHead(5, 3, hidden=-1)
