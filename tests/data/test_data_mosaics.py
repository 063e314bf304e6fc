"""TextureMosaics: determinism, structure, speed, and proof that colour alone does not solve it."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from matbackprop.data import (
    TEXTURE_FAMILIES,
    MosaicBatch,
    MosaicSample,
    TextureMosaics,
    collate_mosaics,
    mosaic_splits,
)

# -- small independent tools: adjusted Rand index, seeded k-means, Gaussian blur ----------------


def adjusted_rand_index(a: torch.Tensor, b: torch.Tensor) -> float:
    a = torch.unique(a.reshape(-1), return_inverse=True)[1]
    b = torch.unique(b.reshape(-1), return_inverse=True)[1]
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    table = torch.bincount(a * nb + b, minlength=na * nb).view(na, nb).double()

    def pairs(x: torch.Tensor) -> torch.Tensor:
        return (x * (x - 1) / 2).sum()

    n = table.sum()
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    return float((index - expected) / ((rows + cols) / 2 - expected))


def kmeans(x: torch.Tensor, k: int, iters: int = 30, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    first = int(torch.randint(x.shape[0], (1,), generator=g))
    centres = [first]
    dist = (x - x[first]).square().sum(1)
    for _ in range(k - 1):  # k-means++ seeding
        j = int(torch.multinomial(dist / dist.sum(), 1, generator=g))
        centres.append(j)
        dist = torch.minimum(dist, (x - x[j]).square().sum(1))
    c = x[centres].clone()
    for _ in range(iters):
        assign = torch.cdist(x, c).argmin(1)
        for j in range(k):
            members = assign == j
            if members.any():
                c[j] = x[members].mean(0)
    return torch.cdist(x, c).argmin(1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    w = torch.exp(-(t**2) / (2 * sigma**2))
    w = w / w.sum()
    c = x.shape[0]
    y = F.pad(x.unsqueeze(0), (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(y, w.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="reflect")
    y = F.conv2d(y, w.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return y[0]


def orientation_energy(image: torch.Tensor) -> torch.Tensor:
    """Local gradient-orientation energy (structure tensor in doubled-angle form), two scales."""
    lum = image.mean(0, keepdim=True)
    feats = []
    for scale in (0.0, 1.5):
        smooth = gaussian_blur(lum, scale) if scale else lum
        gx = torch.zeros_like(smooth)
        gy = torch.zeros_like(smooth)
        gx[:, :, 1:-1] = (smooth[:, :, 2:] - smooth[:, :, :-2]) / 2
        gy[:, 1:-1] = (smooth[:, 2:] - smooth[:, :-2]) / 2
        feats.append(torch.cat([gx * gx + gy * gy, gx * gx - gy * gy, 2 * gx * gy]))
    return gaussian_blur(torch.cat(feats), 4.0)


# -- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_identical_tensors():
    a = TextureMosaics(5, 48, seed=7)
    b = TextureMosaics(5, 48, seed=7)
    for i in (0, 3, 4):
        x, y = a[i], b[i]
        assert torch.equal(x.image, y.image)
        assert torch.equal(x.labels, y.labels)
        assert torch.equal(x.region_classes, y.region_classes)
        assert torch.equal(x.region_colour_groups, y.region_colour_groups)
    # item generation does not depend on access order or on the global RNG
    torch.manual_seed(123)
    assert torch.equal(a[3].image, TextureMosaics(5, 48, seed=7)[3].image)


def test_different_seeds_and_indices_differ():
    a, b = TextureMosaics(4, 48, seed=0), TextureMosaics(4, 48, seed=1)
    for i in range(4):
        assert not torch.equal(a[i].image, b[i].image)
    assert not torch.equal(a[0].image, a[1].image)


def test_splits_use_disjoint_seeds():
    splits = mosaic_splits(4, 3, 2, seed=1, size=32)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [4, 3, 2]
    assert [splits[k].seed for k in ("train", "val", "test")] == [3, 4, 5]
    assert mosaic_splits(1, 1, seed=0)["test"].seed == 2
    images = [splits[k][i].image for k in splits for i in range(len(splits[k]))]
    for a in range(len(images)):
        for b in range(a + 1, len(images)):
            assert not torch.equal(images[a], images[b])
    with pytest.raises(ValueError, match="n_val"):
        mosaic_splits(1, -1)


# -- structure -----------------------------------------------------------------------------------


def test_sample_structure():
    ds = TextureMosaics(12, (40, 56), n_regions=(3, 6), seed=3)
    assert len(ds) == 12
    for i in range(len(ds)):
        s = ds[i]
        assert isinstance(s, MosaicSample) and s.index == i
        assert s.image.shape == (3, 40, 56) and s.image.dtype == torch.float32
        assert float(s.image.min()) >= 0.0 and float(s.image.max()) <= 1.0
        assert s.labels.shape == (40, 56) and s.labels.dtype == torch.int64
        r = s.num_regions
        assert 2 <= r <= 6
        # labels 0..R-1, every one present
        assert torch.equal(s.labels.unique(), torch.arange(r))
        assert s.region_classes.shape == (r,) and s.region_classes.dtype == torch.int64
        assert int(s.region_classes.min()) >= 0
        assert int(s.region_classes.max()) < len(TEXTURE_FAMILIES)
        assert s.region_colour_groups.shape == (r,)
        masks = s.masks
        assert masks.shape == (r, 40, 56) and bool((masks.sum(0) == 1).all())
        assert torch.equal(s.class_map, s.region_classes[s.labels])
    with pytest.raises(IndexError):
        ds[12]
    assert ds[-1].index == 11


def test_all_families_occur_and_subset_is_respected():
    ds = TextureMosaics(20, 32, seed=0)
    seen = torch.cat([ds[i].region_classes for i in range(len(ds))]).unique().tolist()
    assert seen == list(range(len(TEXTURE_FAMILIES)))
    sub = TextureMosaics(10, 32, n_regions=(2, 4), seed=0, families=("grating", "dots"))
    allowed = {TEXTURE_FAMILIES.index("grating"), TEXTURE_FAMILIES.index("dots")}
    for i in range(len(sub)):
        assert set(sub[i].region_classes.tolist()) <= allowed


def test_transform_and_stacking_collate():
    ds = TextureMosaics(6, 32, seed=2)
    loader = DataLoader(ds, batch_size=4, collate_fn=collate_mosaics)
    batch = next(iter(loader))
    assert isinstance(batch, MosaicBatch)
    assert batch.images.shape == (4, 3, 32, 32) and batch.labels.shape == (4, 32, 32)
    assert batch.indices.tolist() == [0, 1, 2, 3]
    assert torch.equal(batch.images[2], ds[2].image)
    assert len(batch.region_classes) == 4
    t = TextureMosaics(2, 32, seed=2, transform=lambda s: s.num_regions)
    assert t[1] == ds[1].num_regions
    with pytest.raises(ValueError, match="batch"):
        collate_mosaics([])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_images": -1}, "n_images"),
        ({"size": 8}, "size"),
        ({"size": (32, 32, 3)}, "size"),
        ({"n_regions": 1}, "n_regions"),
        ({"n_regions": (6, 4)}, "n_regions"),
        ({"n_regions": 5, "families": ("checkerboard", "dots")}, "n_regions"),
        ({"families": ("plaid",)}, "families"),
        ({"seed": -3}, "seed"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": True}, "noise_std"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"border_warp": 0.6}, "border_warp"),
        ({"n_colour_groups": 0}, "n_colour_groups"),
    ],
)
def test_invalid_parameters(kwargs, match):
    args = {"n_images": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        TextureMosaics(**args)


@pytest.mark.slow  # a timed test: out of the default run, which shares the CPUs (see the guide)
def test_generation_is_fast():
    ds = TextureMosaics(64, 96, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds[0]  # warm-up
        start = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 2.0, f"64 images of 96x96 took {elapsed:.2f} s"


# -- colour alone does not solve it --------------------------------------------------------------


def _region_mean_colours(s: MosaicSample) -> torch.Tensor:
    flat = s.image.reshape(3, -1)
    counts = torch.bincount(s.labels.reshape(-1), minlength=s.num_regions).float()
    sums = torch.zeros(3, s.num_regions).index_add_(1, s.labels.reshape(-1), flat)
    return (sums / counts).T


@pytest.mark.parametrize(("noise_std", "tol"), [(0.0, 1e-4), (0.02, 0.01)])
def test_regions_of_a_colour_group_share_their_mean_colour(noise_std, tol):
    ds = TextureMosaics(16, 96, seed=11, noise_std=noise_std)
    shared = 0
    for i in range(len(ds)):
        s = ds[i]
        means = _region_mean_colours(s)
        groups = s.region_colour_groups
        for g in groups.unique():
            members = means[groups == g]
            if members.shape[0] > 1:
                shared += 1
                assert float((members - members[0]).abs().max()) < tol
    assert shared >= 12  # most images hold a group with several regions


def test_neighbouring_regions_mostly_share_their_colour():
    ds = TextureMosaics(48, 64, seed=4)
    same = total = 0
    for i in range(len(ds)):
        s = ds[i]
        y, g = s.labels, s.region_colour_groups
        pairs = set()
        for a, b in ((y[:, :-1], y[:, 1:]), (y[:-1], y[1:])):
            diff = a != b
            pairs |= {
                tuple(sorted(p)) for p in zip(a[diff].tolist(), b[diff].tolist(), strict=True)
            }
        total += len(pairs)
        same += sum(int(g[p] == g[q]) for p, q in pairs)
    assert same / total > 0.45


def test_colour_kmeans_fails_where_texture_statistics_succeed():
    ds = TextureMosaics(16, 96, seed=21)
    colour_within, texture_within, colour_all, texture_all = [], [], [], []
    for i in range(len(ds)):
        s = ds[i]
        y = s.labels.reshape(-1)
        colour = gaussian_blur(s.image, 2.0).reshape(3, -1).T  # local mean colour
        texture = orientation_energy(s.image).reshape(6, -1).T
        texture = (texture - texture.mean(0)) / texture.std(0)
        colour_all.append(adjusted_rand_index(kmeans(colour, s.num_regions), y))
        texture_all.append(adjusted_rand_index(kmeans(texture, s.num_regions), y))
        group_map = s.region_colour_groups[s.labels].reshape(-1)
        for g in group_map.unique():
            inside = group_map == g
            k = int(y[inside].unique().numel())
            if k < 2:
                continue
            t = texture[inside]
            t = (t - t.mean(0)) / t.std(0)
            colour_within.append(adjusted_rand_index(kmeans(colour[inside], k), y[inside]))
            texture_within.append(adjusted_rand_index(kmeans(t, k), y[inside]))
    mean = lambda v: sum(v) / len(v)
    assert len(colour_within) >= 12
    # Inside a colour group colour k-means is at chance, texture energy separates the regions.
    assert mean(colour_within) < 0.15, colour_within
    assert mean(texture_within) > 0.35, texture_within
    # On whole images colour only recovers the colour groups.
    assert mean(colour_all) < 0.45
    assert mean(texture_all) > mean(colour_all) + 0.15
