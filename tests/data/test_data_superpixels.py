"""Superpixels and grid nodes: SLIC, pooling (with gradients), lifting, majority votes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from matbackprop.data import (
    TextureMosaics,
    grid_majority_labels,
    grid_superpixels,
    lift_grid_labels,
    lift_to_pixels,
    majority_labels,
    pool_to_grid,
    pool_to_superpixels,
    relabel_contiguous,
    slic_superpixels,
)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return TextureMosaics(1, (48, 64), seed=5, noise_std=0.0)[0].image


def test_slic_is_deterministic_and_contiguous(image):
    a = slic_superpixels(image, n_segments=40, compactness=10.0)
    b = slic_superpixels(image.clone(), n_segments=40, compactness=10.0)
    assert torch.equal(a, b)
    assert a.shape == (48, 64) and a.dtype == torch.int64
    s = int(a.max()) + 1
    assert torch.equal(a.unique(), torch.arange(s))
    assert 10 <= s <= 80
    # the numpy (H, W, 3) form gives the same superpixels
    c = slic_superpixels(image.permute(1, 2, 0).numpy(), n_segments=40, compactness=10.0)
    assert torch.equal(a, c)
    # more segments requested -> more superpixels
    assert int(slic_superpixels(image, n_segments=150).max()) + 1 > s


def test_slic_grey_and_bad_inputs(image):
    grey = slic_superpixels(image.mean(0, keepdim=True), n_segments=20)
    assert grey.shape == (48, 64)
    with pytest.raises(ValueError, match="image"):
        slic_superpixels(image * 3.0)
    with pytest.raises(ValueError, match="image"):
        slic_superpixels(image[:2])
    with pytest.raises(ValueError, match="n_segments"):
        slic_superpixels(image, n_segments=0)


def test_relabel_contiguous_keeps_order():
    labels = torch.tensor([[7, 7, 3], [100, 3, 7]])
    assert relabel_contiguous(labels).tolist() == [[1, 1, 0], [2, 0, 1]]


def _manual_means(features: torch.Tensor, sp: torch.Tensor) -> torch.Tensor:
    s = int(sp.max()) + 1
    return torch.stack([features[:, sp == k].mean(dim=1) for k in range(s)])


def test_pooling_at_image_resolution_is_the_superpixel_mean(image):
    sp = slic_superpixels(image, n_segments=30)
    feats = torch.randn(5, 48, 64, dtype=torch.float64)
    out = pool_to_superpixels(feats, sp)
    assert out.shape == (int(sp.max()) + 1, 5) and out.dtype == torch.float64
    torch.testing.assert_close(out, _manual_means(feats, sp))
    batched = pool_to_superpixels(torch.stack([feats, 2 * feats]), sp)
    assert batched.shape == (2, *out.shape)
    torch.testing.assert_close(batched[1], 2 * out)


def test_pooling_coarse_features_both_modes():
    sp = grid_superpixels((12, 16), (3, 4))
    feats = torch.randn(2, 6, 8, dtype=torch.float64)
    up_bilinear = F.interpolate(feats[None], size=(12, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(pool_to_superpixels(feats, sp), _manual_means(up_bilinear[0], sp))
    up_nearest = F.interpolate(feats[None], size=(12, 16), mode="nearest")
    torch.testing.assert_close(
        pool_to_superpixels(feats, sp, mode="nearest"), _manual_means(up_nearest[0], sp)
    )
    # constant features stay constant
    const = torch.full((3, 6, 8), 2.5)
    assert torch.allclose(pool_to_superpixels(const, sp), torch.full((12, 3), 2.5))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_pooling_gradcheck(mode):
    sp = torch.tensor(
        [[0, 0, 1, 1, 1, 2], [0, 3, 3, 1, 2, 2], [3, 3, 3, 4, 4, 2], [3, 3, 4, 4, 4, 4]]
    )
    feats = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: pool_to_superpixels(f, sp, mode=mode), (feats,))
    batched = torch.randn(2, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: pool_to_superpixels(f, sp, mode=mode), (batched,))


def test_pooling_follows_features_dtype_and_validates():
    sp = torch.tensor([[0, 1], [1, 2]], dtype=torch.int32)
    out = pool_to_superpixels(torch.ones(4, 2, 2, dtype=torch.float16), sp)
    assert out.dtype == torch.float16 and out.shape == (3, 4)
    with pytest.raises(ValueError, match="superpixels"):
        pool_to_superpixels(torch.ones(4, 2, 2), torch.tensor([[0, 2], [2, 2]]))
    with pytest.raises(ValueError, match="features"):
        pool_to_superpixels(torch.ones(2, 2), sp)
    with pytest.raises(ValueError, match="features"):
        pool_to_superpixels(torch.ones(4, 2, 2, dtype=torch.int64), sp)
    with pytest.raises(ValueError, match="superpixels"):
        pool_to_superpixels(torch.ones(4, 2, 2), sp.float())
    with pytest.raises(ValueError, match="finite"):
        pool_to_superpixels(torch.full((4, 2, 2), float("nan")), sp)


def test_lift_and_majority_round_trip(image):
    sp = slic_superpixels(image, n_segments=30)
    s = int(sp.max()) + 1
    node_labels = torch.randint(0, 4, (s,), generator=torch.Generator().manual_seed(0))
    painted = lift_to_pixels(node_labels, sp)
    assert painted.shape == sp.shape
    assert torch.equal(majority_labels(painted, sp), node_labels)
    # node vectors lift too, with gradients
    vec = torch.randn(s, 3, requires_grad=True)
    lifted = lift_to_pixels(vec, sp)
    assert lifted.shape == (*sp.shape, 3)
    lifted.sum().backward()
    assert torch.equal(vec.grad[:, 0], torch.bincount(sp.reshape(-1), minlength=s).float())
    with pytest.raises(ValueError, match="superpixels"):
        lift_to_pixels(node_labels[:-1], sp)


def test_majority_matches_a_direct_count(image):
    sp = slic_superpixels(image, n_segments=30)
    labels = TextureMosaics(1, (48, 64), seed=5, noise_std=0.0)[0].labels
    got = majority_labels(labels, sp)
    for k in range(int(sp.max()) + 1):
        values, counts = np.unique(labels[sp == k].numpy(), return_counts=True)
        assert int(got[k]) == int(values[counts == counts.max()].min())


def test_majority_ties_go_to_the_smallest_label():
    sp = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]])
    labels = torch.tensor([[9, 4, 9, 4], [2, 5, 5, 7]])
    assert majority_labels(labels, sp).tolist() == [4, 5]


def test_majority_ignore_index():
    sp = torch.tensor([[0, 0, 0], [1, 1, 1]])
    labels = torch.tensor([[255, 255, 3], [255, 255, 255]])
    assert majority_labels(labels, sp, ignore_index=255).tolist() == [3, 255]
    with pytest.raises(ValueError, match="superpixels"):
        majority_labels(labels, sp, num_superpixels=3)
    assert majority_labels(labels, sp, num_superpixels=3, ignore_index=255).tolist() == [
        3,
        255,
        255,
    ]
    with pytest.raises(ValueError, match="superpixels"):
        majority_labels(labels, sp[:, :2])


# -- grid nodes ----------------------------------------------------------------------------------


def test_grid_superpixels_match_nearest_upsampling():
    grid = grid_superpixels((10, 14), (3, 4))
    cells = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)
    expected = F.interpolate(cells, size=(10, 14), mode="nearest")[0, 0].long()
    assert torch.equal(grid, expected)
    with pytest.raises(ValueError, match="grid_size"):
        grid_superpixels((4, 4), (5, 2))


def test_pool_to_grid_equals_average_pooling_when_divisible():
    feats = torch.randn(2, 5, 12, 8)
    nodes = pool_to_grid(feats, (3, 2))
    expected = F.avg_pool2d(feats, (4, 4)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(nodes, expected)


def test_grid_lift_and_majority_round_trip():
    node_labels = torch.tensor([[1, 2, 3], [4, 5, 6]])
    image_labels = lift_grid_labels(node_labels, (9, 11))
    assert image_labels.shape == (9, 11)
    expected = F.interpolate(node_labels[None, None].float(), size=(9, 11), mode="nearest")
    assert torch.equal(image_labels, expected[0, 0].long())
    assert torch.equal(lift_grid_labels(node_labels.reshape(-1), (9, 11), (2, 3)), image_labels)
    assert grid_majority_labels(image_labels, (2, 3)).tolist() == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="grid_size"):
        lift_grid_labels(node_labels.reshape(-1), (9, 11))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_superpixel_ops_follow_the_cuda_device():
    sp = grid_superpixels((12, 16), (3, 4))  # CPU map, CUDA features
    feats = torch.randn(2, 4, 6, 8, device="cuda", requires_grad=True)
    nodes = pool_to_superpixels(feats, sp)
    assert nodes.device.type == "cuda" and nodes.shape == (2, 12, 4)
    nodes.sum().backward()
    assert feats.grad is not None and feats.grad.device.type == "cuda"
    cpu = pool_to_superpixels(feats.detach().cpu(), sp)
    torch.testing.assert_close(nodes.detach().cpu(), cpu)
    labels = torch.randint(0, 3, (12, 16), device="cuda")
    votes = majority_labels(labels, sp)
    assert votes.device.type == "cuda"
    assert torch.equal(votes.cpu(), majority_labels(labels.cpu(), sp))
    assert lift_to_pixels(votes, sp).device.type == "cuda"
