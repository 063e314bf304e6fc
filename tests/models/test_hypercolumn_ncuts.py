"""HypercolumnNCuts' test-time views: the affinity of the image and its mirror, averaged."""

from __future__ import annotations

import pytest
import torch

from matbackprop.models import HypercolumnEncoder, HypercolumnNCuts, NodeHead


def _blocks(H: int = 24, W: int = 32) -> torch.Tensor:
    """A 2 x 3 grid of nodes (not symmetric under the left-right flip: ids change)."""
    rows = torch.arange(H)[:, None] * 2 // H
    cols = torch.arange(W)[None, :] * 3 // W
    return rows * 3 + cols


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    encoder = HypercolumnEncoder(taps=(0, 2), pretrained=False).eval()
    head = NodeHead(encoder.out_dim, 4, 8).eval()
    return encoder, head


def _model(parts, views):
    encoder, head = parts
    return HypercolumnNCuts(encoder, head, views=views).eval()


def test_features_of_views_average_the_affinities(parts):
    torch.manual_seed(1)
    x0, x1 = torch.randn(6, parts[0].out_dim), torch.randn(6, parts[0].out_dim)
    two, one = _model(parts, 2), _model(parts, 1)
    with torch.no_grad():
        F = two.features_of_views([x0, x1])
        F0, F1 = one(x0), one(x1)
        torch.testing.assert_close(one.features_of_views([x0, x1]), F0)  # first view only
    assert F.shape == (6, 8) and F.dtype == torch.float64
    # independent: the mean of the two Gram matrices
    torch.testing.assert_close(F @ F.T, (F0 @ F0.T + F1 @ F1.T) / 2)
    with pytest.raises(ValueError, match="at least 2 views"):
        two.features_of_views([x0])


def test_two_views_make_the_affinity_flip_invariant(parts):
    """With the mirror as second view, an image and its mirror (same nodes) get one affinity;
    with one view they do not (the descriptors hold the centroid and the backbone is not
    flip-equivariant)."""
    image = torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(2))
    idx = _blocks()
    with torch.no_grad():
        for views, invariant in ((2, True), (1, False)):
            model = _model(parts, views)
            F = model.node_features(image, idx)
            G = model.node_features(image.flip(-1), idx.flip(-1))
            assert F.shape == (6, 4 * views)
            same = torch.allclose(F @ F.T, G @ G.T, rtol=1e-9, atol=1e-12)
            assert same is invariant
        # and view 2 is the encoder on the mirrored image and node map
        model = _model(parts, 2)
        mirrored = model(parts[0](image.flip(-1), idx.flip(-1)))
        torch.testing.assert_close(model.node_features(image, idx)[:, 4:], mirrored / 2**0.5)


@pytest.mark.parametrize("views", [0, 3, True, 1.5])
def test_rejects_bad_views(parts, views):
    with pytest.raises(ValueError, match="views"):
        HypercolumnNCuts(*parts, views=views)
