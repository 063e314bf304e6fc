"""The BSDS node cache: computed once, recomputed when settings change, views reused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from matbackprop.data import NodeSpec
from matbackprop.models import HypercolumnEncoder
from matbackprop.tasks._node_cache import NodeCache


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return HypercolumnEncoder(taps=(0,), pretrained=False).eval()


def _sample():
    seg = torch.ones(24, 32, dtype=torch.long)
    seg[:, 16:] = 2
    image = torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(1))
    return SimpleNamespace(image_id="7", image=image, segmentations=[seg])


def test_views_are_computed_once_and_more_views_serve_fewer(tmp_path, encoder):
    nodes = NodeSpec("slic", n_segments=12, compactness=10.0)
    cache = NodeCache(tmp_path, nodes, encoder)
    sample = _sample()
    two = cache.get("val", sample, views=2)
    assert cache.computed == 1 and len(two.descriptors) == 2
    # view 1 is the mirrored image with the mirrored node map (node ids shared)
    with torch.no_grad():
        mirrored = encoder(sample.image.flip(-1), two.node_index.flip(-1))
    torch.testing.assert_close(two.descriptors[1].float(), mirrored, atol=1e-2, rtol=1e-2)
    # a fresh cache on the same folder: the stored 2-view entry answers 1 and 2 views
    again = NodeCache(tmp_path, nodes, encoder)
    one = again.get("val", sample, views=1)
    assert len(one.descriptors) == 1 and again.computed == 0
    torch.testing.assert_close(one.descriptors[0], two.descriptors[0])
    assert len(again.get("val", sample, views=2).descriptors) == 2 and again.computed == 0


def test_fewer_views_or_other_settings_are_recomputed(tmp_path, encoder):
    sample = _sample()
    cache = NodeCache(tmp_path, NodeSpec("slic", n_segments=12, compactness=10.0), encoder)
    cache.get("val", sample, views=1)
    assert len(cache.get("val", sample, views=2).descriptors) == 2 and cache.computed == 2
    other = NodeCache(tmp_path, NodeSpec("slic", n_segments=20, compactness=10.0), encoder)
    other.get("val", sample, views=1)
    assert other.computed == 1
