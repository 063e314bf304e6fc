"""The shared hierarchy decoder: its options reach the ucm, and bad options are refused."""

from __future__ import annotations

import pytest
import torch

from matbackprop.models import UCMDecoder
from matbackprop.nn.functional import spectral_node_embedding, ultrametric_contour_map

from ..builders import random_superpixels


def _eigenvectors(node_index: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    m = int(node_index.max()) + 1
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_decoder_is_the_documented_pipeline(alpha):
    """Row-normalized top-k embedding -> merging with the decoder's alpha -> "max" calibration
    -> quantized levels, step for step as written out with the functional pieces."""
    idx = random_superpixels(3)
    Z = _eigenvectors(idx, 6, seed=1)
    decoder = UCMDecoder(k=4, levels=8, alpha=alpha)
    x = spectral_node_embedding(Z, k=4)
    expected = ultrametric_contour_map(idx, x, calibration="max", levels=8, alpha=alpha)
    assert torch.equal(decoder.ucm2(Z, idx), expected)


def test_alpha_changes_the_hierarchy():
    """Boundary-only merging (alpha = 1) and region-mean merging (alpha = 0) build different
    hierarchies on some random maps (else the option would be a no-op)."""
    differ = 0
    for seed in range(6):
        idx = random_superpixels(seed)
        Z = _eigenvectors(idx, 4, seed=seed)
        u1 = UCMDecoder(k=4, levels=None, alpha=1.0).ucm2(Z, idx)
        u0 = UCMDecoder(k=4, levels=None, alpha=0.0).ucm2(Z, idx)
        differ += not torch.equal(u1, u0)
    assert differ > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "`k`"),
        ({"levels": 0}, "`levels`"),
        ({"scale": 0.0}, "`scale`"),
        ({"scale": float("inf")}, "`scale`"),
        ({"scale": True}, "`scale`"),
        ({"calibration": "log"}, "`calibration`"),
        ({"alpha": 1.5}, "`alpha`"),
        ({"alpha": -0.1}, "`alpha`"),
        ({"alpha": True}, "`alpha`"),
        ({"alpha": float("nan")}, "`alpha`"),
    ],
)
def test_decoder_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UCMDecoder(**kwargs)
