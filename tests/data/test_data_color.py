"""rgb_to_lab against scikit-image's rgb2lab (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matbackprop.data._color import rgb_to_lab


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_scikit_image(dtype):
    from skimage.color import rgb2lab

    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 17, 13, generator=g, dtype=torch.float64)
    image[:, 0, :4] = 0.0  # black and near-black: the linear branch of f
    image[:, 1, :4] = 0.002
    image[:, 2, :4] = 1.0
    expected = rgb2lab(image.permute(1, 2, 0).numpy())
    got = rgb_to_lab(image.to(dtype)).permute(1, 2, 0).double().numpy()
    atol = 1e-8 if dtype == torch.float64 else 1e-3  # float32: ~1e-7 relative on values ~100
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)


def test_batches_and_known_values():
    white = torch.ones(2, 3, 1, 1, dtype=torch.float64)
    lab = rgb_to_lab(white)
    assert lab.shape == (2, 3, 1, 1)
    torch.testing.assert_close(lab[:, 0], torch.full((2, 1, 1), 100.0, dtype=torch.float64))
    # white is neutral (up to the rounding of the matrix rows against the white point)
    assert float(lab[:, 1:].abs().max()) < 1e-2
    assert float(rgb_to_lab(torch.zeros(3, 1, 1)).abs().max()) == 0.0


@pytest.mark.parametrize("bad", [torch.zeros(4, 2, 2), torch.zeros(3, 2, 2, dtype=torch.long)])
def test_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="image"):
        rgb_to_lab(bad)
