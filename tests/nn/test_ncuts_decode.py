"""Decoding: k-means, discretization, planted-cluster recovery, hierarchies, lifting."""

from __future__ import annotations

import pytest
import torch

from matbackprop.nn.functional import (
    decode_labels,
    gaussian_affinity,
    kmeans,
    lift_labels,
    ncuts_hierarchy,
    normalized_cuts,
    normalized_cuts_affinity,
    spectral_discretize,
)

F64 = torch.float64


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to a renaming of labels (a bijection between the label sets)."""
    pairs = torch.unique(torch.stack([a, b]), dim=1)
    return pairs.shape[1] == torch.unique(a).numel() == torch.unique(b).numel()


def planted_features(B: int, per_cluster: int, clusters: int, d: int, seed: int):
    """Near-one-hot features per cluster plus non-negative noise; nodes shuffled."""
    g = torch.Generator().manual_seed(seed)
    m = per_cluster * clusters
    truth = torch.arange(clusters).repeat_interleave(per_cluster)
    features, labels = [], []
    for _ in range(B):
        perm = torch.randperm(m, generator=g)
        t = truth[perm]
        F = torch.nn.functional.one_hot(t, d).to(F64) * (0.7 + 0.6 * torch.rand(m, 1, generator=g))
        F = F + 0.08 * torch.rand(m, d, generator=g, dtype=F64)
        features.append(F)
        labels.append(t)
    return torch.stack(features), torch.stack(labels)


@pytest.mark.parametrize("route", ["lowrank", "dense"])
def test_planted_clusters_are_recovered_exactly(route):
    F, truth = planted_features(B=2, per_cluster=25, clusters=4, d=8, seed=1)
    result = normalized_cuts(F, 4, route=route, nonneg="none")
    decoded = decode_labels(result, seed=0)
    assert decoded.shape == truth.shape and decoded.dtype == torch.long
    for b in range(2):
        assert same_partition(decoded[b], truth[b])


def test_planted_clusters_with_per_image_k():
    F1, t1 = planted_features(B=1, per_cluster=20, clusters=3, d=6, seed=2)
    F2, t2 = planted_features(B=1, per_cluster=15, clusters=4, d=6, seed=3)
    F = torch.cat([F1, F2])  # both m = 60
    truth = torch.cat([t1, t2])
    result = normalized_cuts(F, [3, 4], nonneg="none")
    decoded = decode_labels(result)
    assert same_partition(decoded[0], truth[0]) and same_partition(decoded[1], truth[1])
    assert int(decoded[0].max()) == 2 and int(decoded[1].max()) == 3


def test_shi_malik_baseline_separates_two_colour_regions():
    # A 6 x 8 image: left half dark, right half bright, plus noise.
    H, W = 6, 8
    g = torch.Generator().manual_seed(4)
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    positions = torch.stack([ys, xs], -1).reshape(1, -1, 2).to(F64)
    truth = (xs >= W // 2).reshape(-1).long()
    colors = (0.2 + 0.6 * truth.to(F64)).unsqueeze(-1) + 0.03 * torch.rand(H * W, 1, generator=g)
    Wt = gaussian_affinity(positions, colors.unsqueeze(0), sigma_xy=4.0, sigma_rgb=0.1, radius=5)
    assert Wt.shape == (1, H * W, H * W)
    torch.testing.assert_close(Wt, Wt.mT)
    far = (positions[0, :, None] - positions[0, None]).norm(dim=-1) >= 5
    assert bool((Wt[0][far] == 0).all())
    result = normalized_cuts_affinity(Wt, 2)
    decoded = decode_labels(result)[0]
    assert same_partition(decoded, truth)
    assert lift_labels(decoded, torch.arange(H * W).reshape(H, W)).shape == (H, W)


def test_kmeans_is_deterministic_and_finds_separated_blobs():
    g = torch.Generator().manual_seed(5)
    centers = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], dtype=F64)
    truth = torch.arange(3).repeat_interleave(30)
    X = centers[truth] + 0.3 * torch.randn(90, 2, generator=g, dtype=F64)
    first = kmeans(X, 3, seed=11)
    again = kmeans(X, 3, seed=11)
    assert torch.equal(first.labels, again.labels) and torch.equal(first.centers, again.centers)
    assert same_partition(first.labels, truth)
    # Inertia is the sum of squared distances to the assigned centres.
    want = (X - first.centers[first.labels]).square().sum()
    torch.testing.assert_close(first.inertia, want)
    gen = torch.Generator().manual_seed(11)
    assert torch.equal(kmeans(X, 3, generator=gen).labels, first.labels)


def test_kmeans_handles_duplicate_points_and_k_equal_n():
    X = torch.tensor([[0.0], [0.0], [0.0], [1.0]], dtype=F64)
    result = kmeans(X, 3, restarts=2)
    assert result.labels.shape == (4,)
    assert float(result.inertia) == 0.0
    assert kmeans(X, 4).labels.unique().numel() >= 2


def test_spectral_discretize_labels_by_first_appearance():
    F, truth = planted_features(B=1, per_cluster=10, clusters=3, d=5, seed=6)
    result = normalized_cuts(F, 3, nonneg="none")
    labels = spectral_discretize(result.Z[0])
    assert int(labels[0]) == 0
    firsts = [int((labels == c).nonzero()[0]) for c in range(3)]
    assert firsts == sorted(firsts)
    assert same_partition(labels, truth[0])


def test_hierarchy_levels_use_the_first_k_eigenvectors():
    F, truth = planted_features(B=2, per_cluster=12, clusters=4, d=6, seed=7)
    result = normalized_cuts(F, 4, nonneg="none")
    levels = ncuts_hierarchy(result.Z[0])
    assert levels.shape == (3, 48)  # k = 2, 3, 4
    for j, k in enumerate(range(2, 5)):
        assert int(levels[j].max()) + 1 == k
        assert torch.equal(levels[j], spectral_discretize(result.Z[0], k))
    assert same_partition(levels[-1], truth[0])
    batched = ncuts_hierarchy(result.Z, 3, k_min=1)
    assert batched.shape == (2, 3, 48)
    assert bool((batched[:, 0] == 0).all())  # k = 1: one segment


def test_lift_labels_paints_nodes_onto_pixels():
    node_index = torch.tensor([[0, 0, 1], [2, 2, 1]])
    node_labels = torch.tensor([5, 6, 7])
    torch.testing.assert_close(
        lift_labels(node_labels, node_index), torch.tensor([[5, 5, 6], [7, 7, 6]])
    )
    hierarchy = torch.tensor([[0, 0, 1], [0, 1, 2]])
    lifted = lift_labels(hierarchy, node_index)
    assert lifted.shape == (2, 2, 3)
    torch.testing.assert_close(lifted[1], torch.tensor([[0, 0, 1], [2, 2, 1]]))
