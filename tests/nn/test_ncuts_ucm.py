"""Ultrametric contour maps: adjacency, greedy merging, the ucm2 format, nestedness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from matbackprop.metrics import aggregate_region, evaluate_hierarchy, evaluate_ucm2
from matbackprop.nn import RegionAdjacency
from matbackprop.nn.functional import (
    agglomerate,
    quantize_levels,
    region_adjacency,
    spectral_node_embedding,
    ucm2_from_heights,
    ucm2_segmentation,
    ultrametric_contour_map,
)

from ..builders import random_superpixels

F64 = torch.float64


def chain_map() -> torch.Tensor:
    """Four vertical stripes 0 | 1 | 2 | 3 of widths 2, 3, 2, 1 on a 4-row image."""
    return torch.tensor([0, 0, 1, 1, 1, 2, 2, 3]).repeat(4, 1)


def same_partition(a, b) -> bool:
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == np.unique(a).size == np.unique(b).size


def refines(fine, coarse) -> bool:
    """Every region of ``fine`` lies inside one region of ``coarse``."""
    fine, coarse = np.asarray(fine).ravel(), np.asarray(coarse).ravel()
    pairs = np.unique(np.stack([fine, coarse]), axis=1)
    return pairs.shape[1] == np.unique(fine).size


def benchmark_regions(ucm2: np.ndarray, t: float) -> np.ndarray:
    """Regions as the official benchmark reads them: 8-connected components of ucm2 <= t."""
    from scipy import ndimage

    labels, _ = ndimage.label(ucm2 <= t, structure=np.ones((3, 3), dtype=bool))
    return labels[1::2, 1::2]


def minimax_distances(graph: RegionAdjacency, heights: torch.Tensor) -> np.ndarray:
    """Floyd–Warshall on (max, min): the ultrametric an edge-weighted graph induces."""
    S = graph.num_nodes
    D = np.full((S, S), np.inf)
    np.fill_diagonal(D, 0.0)
    for (a, b), h in zip(graph.pairs.tolist(), heights.tolist(), strict=True):
        D[a, b] = D[b, a] = h
    for k in range(S):
        D = np.minimum(D, np.maximum(D[:, k : k + 1], D[k : k + 1, :]))
    return D


# ------------------------------------------------------------------------------- adjacency


def test_region_adjacency_known_answer():
    graph = region_adjacency(chain_map())
    assert graph.num_nodes == 4
    assert graph.pairs.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert graph.lengths.tolist() == [4.0, 4.0, 4.0]  # one element per row
    grid = torch.tensor([[0, 0, 1], [2, 2, 1], [2, 3, 3]])
    graph = region_adjacency(grid)
    # 0|1 in row 0 (1 element), 0/2 below row 0 (2), 1/2 (row 1: 1), 1/3 below row 1 (1),
    # 2/3 (row 2: 1; below row 1 at column 1: 1)
    got = dict(zip(map(tuple, graph.pairs.tolist()), graph.lengths.tolist(), strict=True))
    assert got == {(0, 1): 1.0, (0, 2): 2.0, (1, 2): 1.0, (1, 3): 1.0, (2, 3): 2.0}


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(3, 3), "integer dtype"),
        (torch.zeros(2, 3, 3, dtype=torch.long), r"shape \(H, W\)"),
        (-torch.ones(3, 3, dtype=torch.long), ">= 0"),
    ],
)
def test_region_adjacency_rejects_bad_maps(bad, match):
    with pytest.raises(ValueError, match=match):
        region_adjacency(bad)


# ------------------------------------------------------------------------------- merging


def test_agglomerate_boundary_and_mean_linkage_known_answers():
    graph = region_adjacency(chain_map())
    x = torch.tensor([[0.0], [1.0], [5.0], [6.0]], dtype=F64)
    # boundary linkage: (0,1) and (2,3) at 1, then the two halves at |1 - 5| = 4
    h = agglomerate(graph, x, alpha=1.0)
    assert h.tolist() == [1.0, 4.0, 1.0]
    # region means: {0,1} -> 0.5, {2,3} -> 5.5 (unit sizes)
    h = agglomerate(graph, x, alpha=0.0)
    assert h.tolist() == [1.0, 5.0, 1.0]
    # area weights move the means: sizes 2, 3, 2, 1 -> {0,1}: 0.6, {2,3}: 16/3
    h = agglomerate(graph, x, alpha=0.0, sizes=torch.tensor([2.0, 3.0, 2.0, 1.0]))
    assert h[1].item() == pytest.approx(16 / 3 - 0.6)


def test_agglomerate_uses_given_edge_strength():
    graph = region_adjacency(chain_map())
    h = agglomerate(graph, edge_strength=torch.tensor([3.0, 1.0, 2.0], dtype=F64))
    assert h.tolist() == [3.0, 1.0, 2.0]


def test_heights_are_monotone_when_a_merge_lowers_the_criterion():
    # centroid linkage is not monotone: 0 and 1 merge at distance 1, and their midpoint is
    # only 0.9 from node 2 (a triangle); the height is clamped to 1 (an ultrametric)
    grid = torch.tensor([[0, 1], [2, 2]])  # every pair adjacent
    graph = region_adjacency(grid)
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.9]], dtype=F64)
    h = agglomerate(graph, x, alpha=0.0)
    assert h.tolist() == [1.0, 1.0, 1.0]
    # without the clamp the last merge would be at 0.9
    assert float((x[:2].mean(0) - x[2]).norm()) == pytest.approx(0.9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_heights_are_an_ultrametric(seed, alpha):
    """Each RAG edge's height is the minimax path height: the contours are closed."""
    sp = random_superpixels(seed)
    graph = region_adjacency(sp)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(graph.num_nodes, 3, generator=g, dtype=F64)
    h = agglomerate(graph, x, alpha=alpha)
    D = minimax_distances(graph, h)
    a, b = graph.pairs[:, 0].numpy(), graph.pairs[:, 1].numpy()
    np.testing.assert_allclose(D[a, b], h.numpy(), rtol=0, atol=0)
    # ultrametric inequality on all triples
    S = graph.num_nodes
    for i, j, k in itertools.product(range(S), repeat=3):
        assert D[i, j] <= max(D[i, k], D[k, j])


def test_agglomerate_rejects_bad_input():
    graph = region_adjacency(chain_map())
    with pytest.raises(ValueError, match="neither"):
        agglomerate(graph)
    with pytest.raises(ValueError, match="alpha"):
        agglomerate(graph, torch.zeros(4, 1, dtype=F64), alpha=1.5)
    with pytest.raises(ValueError, match="embedding"):
        agglomerate(graph, torch.zeros(3, 1, dtype=F64))
    with pytest.raises(ValueError, match="non-negative"):
        agglomerate(graph, edge_strength=torch.tensor([1.0, -1.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match="alpha < 1"):
        agglomerate(graph, edge_strength=torch.ones(3, dtype=F64), alpha=0.5)


# ------------------------------------------------------------------------------- ucm2 format


def test_ucm2_known_answer_on_a_tiny_map():
    sp = torch.tensor([[0, 1], [2, 2]])
    graph = region_adjacency(sp)  # pairs (0,1), (0,2), (1,2)
    u = ucm2_from_heights(sp, graph.pairs, torch.tensor([0.2, 0.7, 0.7], dtype=F64))
    expected = torch.tensor(
        [
            [0.0, 0.0, 0.2, 0.0, 0.0],
            [0.0, 0.0, 0.2, 0.0, 0.0],
            [0.7, 0.7, 0.7, 0.7, 0.7],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ],
        dtype=F64,
    )
    torch.testing.assert_close(u, expected, rtol=0, atol=0)


def test_ucm2_layout_reproduces_the_official_files(bsds_reference):
    """Rebuild each official ucm2 from its finest partition and its arcs' values."""
    from scipy.io import loadmat

    for path in sorted((bsds_reference / "ucm2").glob("*.mat")):
        official = loadmat(path)["ucm2"]
        sp = torch.from_numpy(benchmark_regions(official, 0.0).astype(np.int64) - 1)
        graph = region_adjacency(sp)
        S = graph.num_nodes
        a = torch.cat([sp[:, :-1].reshape(-1), sp[:-1, :].reshape(-1)])
        b = torch.cat([sp[:, 1:].reshape(-1), sp[1:, :].reshape(-1)])
        values = torch.cat(
            [
                torch.from_numpy(official[1:-1:2, 2:-1:2]).reshape(-1),
                torch.from_numpy(official[2:-1:2, 1:-1:2]).reshape(-1),
            ]
        )
        differ = a != b
        keys = torch.minimum(a, b)[differ] * S + torch.maximum(a, b)[differ]
        pos = torch.searchsorted(graph.pairs[:, 0] * S + graph.pairs[:, 1], keys)
        heights = torch.zeros(S and graph.pairs.shape[0], dtype=F64).scatter_reduce(
            0, pos, values[differ], "amax"
        )
        ours = ucm2_from_heights(sp, graph.pairs, heights).numpy()
        np.testing.assert_array_equal(ours, official, err_msg=path.name)


def test_ucm2_rejects_missing_pairs():
    sp = torch.tensor([[0, 1], [2, 2]])
    with pytest.raises(ValueError, match="missing"):
        ucm2_from_heights(sp, torch.tensor([[0, 1]]), torch.tensor([0.5], dtype=F64))
    with pytest.raises(ValueError, match="heights"):
        ucm2_from_heights(sp, region_adjacency(sp).pairs, torch.zeros(2, dtype=F64))


@pytest.mark.parametrize("seed", range(3))
def test_levels_are_nested_and_match_the_benchmark_reading(seed):
    sp = random_superpixels(seed, S=25)
    g = torch.Generator().manual_seed(10 + seed)
    x = torch.rand(int(sp.max()) + 1, 4, generator=g, dtype=F64)
    u = ultrametric_contour_map(sp, x, alpha=0.5, scale=0.5)
    assert u.shape == (2 * sp.shape[0] + 1, 2 * sp.shape[1] + 1)
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0
    thresholds = torch.unique(u).tolist()[:-1]
    previous = None
    for t in thresholds:
        ours = ucm2_segmentation(u, t)
        assert same_partition(ours, benchmark_regions(u.numpy(), t))
        # the level is a union of superpixels
        assert refines(sp, ours)
        if previous is not None:
            assert refines(previous, ours)
        previous = ours
    # a region count per level: one merge per distinct height (ties merge together)
    assert int(ucm2_segmentation(u, 1.0).max()) == 0


def test_ucm2_scores_like_its_levels():
    """Region metrics of the ucm2 equal those of its segmentations as an explicit hierarchy."""
    sp = random_superpixels(7, S=20)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(int(sp.max()) + 1, 3, generator=g, dtype=F64)
    u = ultrametric_contour_map(sp, x, scale=0.3, levels=6)
    gt = [(sp.numpy() % 3) + 1, (sp.numpy() % 2) + 1]
    from matbackprop.metrics import ucm_thresholds

    t = ucm_thresholds(99)
    ev = evaluate_ucm2(u.numpy(), gt, nthresh=99, boundaries=False)
    levels = [ucm2_segmentation(u, float(ti)).numpy() for ti in t]
    ev2 = evaluate_hierarchy(levels, gt, boundaries=False)
    a, b = aggregate_region([ev]), aggregate_region([ev2])
    assert a.covering_ods == pytest.approx(b.covering_ods, abs=1e-12)
    assert a.pri_ods == pytest.approx(b.pri_ods, abs=1e-12)
    assert a.voi_ods == pytest.approx(b.voi_ods, abs=1e-12)


def test_output_index_draws_the_same_hierarchy_at_full_size():
    sp = random_superpixels(2, H=9, W=11, S=8)
    big = sp.repeat_interleave(2, 0).repeat_interleave(2, 1)
    x = torch.rand(int(sp.max()) + 1, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    u_small = ultrametric_contour_map(sp, x)
    u_big = ultrametric_contour_map(sp, x, output_index=big)
    assert u_big.shape == (2 * 18 + 1, 2 * 22 + 1)
    for t in torch.unique(u_small).tolist():
        small = ucm2_segmentation(u_small, t)
        assert same_partition(
            small.repeat_interleave(2, 0).repeat_interleave(2, 1), ucm2_segmentation(u_big, t)
        )


# ------------------------------------------------------------------------------- values


def test_quantize_levels_avoids_thresholds_and_keeps_order():
    v = torch.linspace(0, 1, 1001, dtype=F64)
    q = quantize_levels(v, 10, nthresh=99)
    assert q[0] == 0.0
    assert torch.all(q[1:] > 0) and torch.all(torch.diff(q) >= 0)
    assert torch.unique(q[1:]).numel() == 10
    t = torch.arange(1, 100, dtype=F64) / 100
    assert not bool(torch.isin(q, t).any())
    # nested in the input: v1 < v2 never swaps
    assert torch.all(q[torch.argsort(v)] == torch.sort(q).values)
    with pytest.raises(ValueError, match="levels"):
        quantize_levels(v, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quantize_levels(v + 1, 4)


def test_spectral_node_embedding_modes():
    g = torch.Generator().manual_seed(0)
    Z = torch.linalg.qr(torch.randn(30, 5, generator=g, dtype=F64)).Q
    x = spectral_node_embedding(Z, mode="rownorm", k=3)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(30, dtype=F64))
    assert x.shape == (30, 3)
    d = torch.rand(30, generator=g, dtype=F64) + 0.5
    mu = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.1], dtype=F64)
    # the trivial eigenvector √d is constant after D^-½: no distance from it
    Z1 = torch.cat([(d.sqrt() / d.sqrt().norm()).unsqueeze(1), Z[:, 1:]], 1)
    x = spectral_node_embedding(Z1, mu, d, mode="spb")
    assert float(x[:, 0].std()) < 1e-12
    # weights 1/sqrt(λ): the column for λ = 0.2 is scaled by sqrt(0.5/0.2) relative to λ = 0.5
    base = Z1 * (30 * d.mean() / d).sqrt().unsqueeze(1)
    ratio = (x[:, 1:] / base[:, 1:]).mean(0)
    torch.testing.assert_close(ratio, 1 / (1 - mu[1:] + 1e-3).sqrt())
    # scale free in W: degrees x 10 give the same vectors
    torch.testing.assert_close(spectral_node_embedding(Z1, mu, 10 * d, mode="spb"), x)
    with pytest.raises(ValueError, match="mode"):
        spectral_node_embedding(Z, mode="other")
    with pytest.raises(ValueError, match="eigenvalues"):
        spectral_node_embedding(Z, mode="spb")


def test_calibrations_keep_the_hierarchy_and_max_reaches_one():
    sp = random_superpixels(5, S=16)
    x = torch.rand(int(sp.max()) + 1, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    u_exp = ultrametric_contour_map(sp, x, calibration="exp")
    u_max = ultrametric_contour_map(sp, x, calibration="max", scale=2.0)
    assert float(u_max.max()) == pytest.approx(1.0)
    assert float(u_exp.max()) < 1.0
    # the same nested partitions, only the values move
    for t_exp, t_max in zip(
        torch.unique(u_exp).tolist(), torch.unique(u_max).tolist(), strict=True
    ):
        assert same_partition(ucm2_segmentation(u_exp, t_exp), ucm2_segmentation(u_max, t_max))
    with pytest.raises(ValueError, match="calibration"):
        ultrametric_contour_map(sp, x, calibration="rank")


# ------------------------------------------------------------------------------ ucm2_levels


def test_ucm2_levels_are_every_distinct_segmentation_coarse_to_fine():
    from matbackprop.nn.functional import ucm2_levels

    idx = random_superpixels(3)
    graph = region_adjacency(idx)
    x = torch.randn(graph.num_nodes, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    u = ultrametric_contour_map(idx, x, calibration="max", levels=6)
    thresholds, levels = ucm2_levels(u)
    values = sorted({float(v) for v in u.unique()} | {0.0})
    assert thresholds == values[-2::-1]  # every value but the top, decreasing
    assert len(levels) <= 6
    counts = [int(level.max()) + 1 for level in levels]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    for t, level in zip(thresholds, levels, strict=True):
        assert torch.equal(level, ucm2_segmentation(u, t))
    # nested: every finer region lies inside one coarser region
    for coarse, fine in itertools.pairwise(levels):
        pairs = torch.unique(torch.stack([fine.reshape(-1), coarse.reshape(-1)]), dim=1)
        assert pairs.shape[1] == int(fine.max()) + 1
    # the finest level at threshold 0 is the superpixel map up to zero-height merges
    assert counts[-1] <= graph.num_nodes


def test_ucm2_levels_of_a_flat_map_is_one_region():
    from matbackprop.nn.functional import ucm2_levels

    thresholds, levels = ucm2_levels(torch.zeros(5, 7, dtype=F64))
    assert thresholds == [0.0] and len(levels) == 1 and int(levels[0].max()) == 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(4, 5, dtype=F64), "shape"),
        (torch.zeros(5, 5, dtype=torch.long), "dtype|float"),
        (-torch.ones(5, 5, dtype=F64), "non-negative"),
        (torch.full((5, 5), float("nan"), dtype=F64), "finite"),
    ],
)
def test_ucm2_levels_rejects_bad_maps(bad, match):
    from matbackprop.nn.functional import ucm2_levels

    with pytest.raises(ValueError, match=match):
        ucm2_levels(bad)
