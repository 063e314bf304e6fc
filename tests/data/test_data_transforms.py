"""Resizing; the package's import stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import matbackprop.data as data
from matbackprop.data import (
    keep_aspect_size,
    read_rgb_image,
    resize_image,
    resize_keep_aspect,
    resize_labels,
)


@pytest.mark.parametrize(
    ("size", "kwargs", "expected"),
    [
        ((481, 321), {"max_side": 160}, (160, 107)),
        ((321, 481), {"max_side": 160}, (107, 160)),
        ((321, 481), {"short_side": 100}, (100, 150)),
        ((50, 50), {"max_side": 200}, (200, 200)),
        ((1000, 3), {"max_side": 10}, (10, 1)),
    ],
)
def test_keep_aspect_size(size, kwargs, expected):
    assert keep_aspect_size(*size, **kwargs) == expected


def test_keep_aspect_size_needs_exactly_one_target():
    with pytest.raises(ValueError, match="exactly one"):
        keep_aspect_size(10, 10)
    with pytest.raises(ValueError, match="exactly one"):
        keep_aspect_size(10, 10, max_side=5, short_side=5)
    with pytest.raises(ValueError, match="max_side"):
        keep_aspect_size(10, 10, max_side=0)


def test_resize_keep_aspect_shapes_and_dtype():
    img = torch.rand(3, 30, 20, dtype=torch.float64)
    out = resize_keep_aspect(img, max_side=15)
    assert out.shape == (3, 15, 10) and out.dtype == torch.float64
    batch = torch.rand(2, 3, 30, 20)
    assert resize_keep_aspect(batch, short_side=40).shape == (2, 3, 60, 40)
    assert resize_image(img, (30, 20)) is img


def test_downscaling_is_antialiased():
    # a one-pixel checkerboard averages to grey; without antialiasing it would alias
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    board = ((yy + xx) % 2).float().expand(3, 64, 64)
    small = resize_keep_aspect(board, max_side=15)
    assert small.shape == (3, 15, 15)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.02)
    aliased = F.interpolate(board[None], size=(15, 15), mode="bilinear", align_corners=False)
    assert (aliased - 0.5).abs().max() > 0.2  # the check above is not trivially true
    const = torch.full((3, 31, 17), 0.3)
    assert torch.allclose(resize_image(const, (8, 5)), torch.full((3, 8, 5), 0.3))


def test_resize_labels_is_exact_nearest():
    labels = torch.arange(24).view(4, 6)
    down = resize_labels(labels, (2, 3))
    # pixel-centre nearest: output i samples input floor((i + .5) * 2) = 2 i + 1
    assert down.tolist() == [[7, 9, 11], [19, 21, 23]]
    up = resize_labels(labels, (8, 12))
    assert torch.equal(up, labels.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert up.dtype == torch.int64
    # the same convention as torch's "nearest-exact" mode
    odd = resize_labels(labels, (3, 5))
    ref = F.interpolate(labels[None, None].double(), size=(3, 5), mode="nearest-exact")
    assert torch.equal(odd, ref[0, 0].long())
    # stacks of boolean masks keep their dtype; huge labels are not rounded
    masks = torch.rand(3, 10, 10) > 0.5
    assert resize_labels(masks, (5, 5)).dtype == torch.bool
    big = torch.full((4, 4), 2**40 + 1)
    assert int(resize_labels(big, (3, 3)).max()) == 2**40 + 1
    with pytest.raises(ValueError, match="labels"):
        resize_labels(torch.arange(5), (2, 2))
    with pytest.raises(ValueError, match="size"):
        resize_labels(labels, (0, 2))


def test_read_rgb_image_converts_grey(tmp_path):
    from PIL import Image

    Image.new("L", (5, 3), color=128).save(tmp_path / "grey.png")
    img = read_rgb_image(tmp_path / "grey.png")
    assert img.shape == (3, 3, 5) and img.dtype == torch.float32
    assert torch.allclose(img, torch.full_like(img, 128 / 255))
    with pytest.raises(data.DataFileError, match="missing.png"):
        read_rgb_image(tmp_path / "missing.png")


def test_public_names_are_exported():
    for name in data.__all__:
        assert hasattr(data, name), name
    for name in ("DataFileError", "default_bsds_root", "default_coco_root"):
        assert name in data.__all__


def test_import_is_light():
    code = (
        "import sys, matbackprop.data; "
        "print(','.join(m for m in ('skimage', 'pycocotools', 'scipy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
