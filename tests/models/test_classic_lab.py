"""ClassicLabNCuts: Lab/centroid descriptors, the radius-limited Gaussian affinity, embedding."""

from __future__ import annotations

import math

import pytest
import torch

from matbackprop.models._classic_lab import ClassicLabNCuts


def two_colour_image():
    """Left half red, right half blue; four 4 x 4 superpixels (quadrants)."""
    image = torch.zeros(3, 8, 8, dtype=torch.float64)
    image[0, :, :4] = 1.0
    image[2, :, 4:] = 1.0
    idx = torch.zeros(8, 8, dtype=torch.long)
    idx[:, 4:] += 1
    idx[4:] += 2
    return image, idx


def test_affinity_known_answer():
    from skimage.color import rgb2lab

    image, idx = two_colour_image()
    model = ClassicLabNCuts(sigma_lab=50.0, sigma_xy=0.5, radius=0.6)
    W = model.affinity(image, idx)
    red = rgb2lab(torch.tensor([[[1.0, 0.0, 0.0]]]).numpy())[0, 0]
    blue = rgb2lab(torch.tensor([[[0.0, 0.0, 1.0]]]).numpy())[0, 0]
    d_col = float(((red - blue) ** 2).sum())
    diag = math.hypot(8, 8)
    d_h = (4 / diag) ** 2  # node 0 to node 1: same row band, 4 px apart
    expected_01 = math.exp(-d_col / 50.0**2) * math.exp(-d_h / 0.5**2)
    assert float(W[0, 1]) == pytest.approx(expected_01, rel=1e-3)
    assert float(W[0, 2]) == pytest.approx(math.exp(-d_h / 0.5**2), rel=1e-6)  # same colour
    # node 0 to node 3: distance 4·√2 / diag = 0.5 < 0.6 kept; with radius 0.45 cut
    assert float(W[0, 3]) > 0
    W_cut = ClassicLabNCuts(sigma_lab=50.0, sigma_xy=0.5, radius=0.45).affinity(image, idx)
    assert float(W_cut[0, 3]) == 0.0
    torch.testing.assert_close(W, W.T)


def test_embedding_separates_the_colours():
    image, idx = two_colour_image()
    result = ClassicLabNCuts(sigma_lab=10.0, sigma_xy=1.0, radius=None).spectral_embedding(
        image, idx, k=2
    )
    z = result.Z[0, :, 1]  # second eigenvector: sign splits left (0, 2) from right (1, 3)
    assert torch.sign(z[0]) == torch.sign(z[2]) != torch.sign(z[1]) == torch.sign(z[3])


@pytest.mark.parametrize("kwargs", [{"sigma_lab": 0.0}, {"sigma_xy": -1.0}, {"radius": 0.0}])
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        ClassicLabNCuts(**kwargs)


def test_rejects_mismatched_sizes():
    image, idx = two_colour_image()
    with pytest.raises(ValueError, match="node_index"):
        ClassicLabNCuts().affinity(image, idx[:4])
