"""Every invalid input to the normalized-cuts API raises ValueError naming the argument."""

from __future__ import annotations

import pytest
import torch

from matbackprop.nn import NormalizedCuts
from matbackprop.nn.functional import (
    decode_labels,
    gaussian_affinity,
    kmeans,
    lift_labels,
    ncuts_hierarchy,
    ncuts_loss,
    normalized_cuts,
    normalized_cuts_affinity,
    segment_counts,
    spectral_discretize,
)

F64 = torch.float64


def features(B=2, m=10, d=4):
    return torch.rand(B, m, d, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.1


def affinity(B=2, m=6):
    A = torch.rand(B, m, m, generator=torch.Generator().manual_seed(1), dtype=F64)
    return A + A.mT


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.rand(10, 4, dtype=F64), r"`features` must have shape \(B, m, d\)"),
        (torch.rand(1, 2, 10, 4, dtype=F64), r"`features` must have shape \(B, m, d\)"),
        (torch.ones(2, 10, 4, dtype=torch.int64), "`features` must have dtype"),
        (torch.rand(2, 0, 4, dtype=F64), "`features` must have non-empty"),
        ([[1.0]], "`features` must be a torch.Tensor"),
    ],
)
def test_features_shape_and_dtype(bad, match):
    with pytest.raises(ValueError, match=match):
        normalized_cuts(bad, 2)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("route", ["lowrank", "dense"])
def test_non_finite_features(value, route):
    F = features()
    F[1, 2, 3] = value
    with pytest.raises(ValueError, match="`features` must be finite"):
        normalized_cuts(F, 2, route=route)


def test_negative_features_with_nonneg_none():
    F = features()
    F[0, 0, 0] = -0.5
    with pytest.raises(ValueError, match="`features` must be non-negative"):
        normalized_cuts(F, 2, nonneg="none")
    normalized_cuts(F, 2, nonneg="relu", check_eigengap=False)  # mapped: fine


@pytest.mark.parametrize(
    ("k", "match"),
    [
        (0, r"`k` must be >= 1"),
        (-1, r"`k` must be >= 1"),
        (5, r"`k` must be <= 4 \(min\(m, d\)"),  # k > d on the low-rank route (m = 10 > d)
        ([2, 3, 4], "one per image"),
        (torch.tensor([2, 2, 2]), "one per image"),
        (torch.tensor([2.0, 2.0]), "`k` must have an integer dtype"),
        (2.5, "`k` must be an int"),
        (True, "`k` must be an int"),
        (None, "`k` must be given"),
    ],
)
def test_invalid_k_features(k, match):
    with pytest.raises(ValueError, match=match):
        normalized_cuts(features(), k)


def test_k_larger_than_m():
    with pytest.raises(ValueError, match=r"`k` must be <= 3"):
        normalized_cuts(features(m=3, d=8), 4)
    with pytest.raises(ValueError, match=r"`k` must be <= 6 \(the number of nodes"):
        normalized_cuts_affinity(affinity(), 7)
    with pytest.raises(ValueError, match=r"`k` must be <= 4"):
        normalized_cuts(features(), 5, route="dense")  # same rule on the dense feature route


def test_invalid_affinity():
    A = affinity()
    with pytest.raises(ValueError, match=r"`affinity` must have shape \(B, m, m\)"):
        normalized_cuts_affinity(A[:, :, :5], 2)
    with pytest.raises(ValueError, match=r"`affinity` must have shape \(B, m, m\)"):
        normalized_cuts_affinity(A[0], 2)
    asym = A.clone()
    asym[0, 0, 1] += 0.5
    with pytest.raises(ValueError, match="`affinity` must be symmetric"):
        normalized_cuts_affinity(asym, 2)
    neg = A.clone()
    neg[1, 2, 3] = neg[1, 3, 2] = -0.1
    with pytest.raises(ValueError, match="`affinity` must be non-negative"):
        normalized_cuts_affinity(neg, 2)
    nan = A.clone()
    nan[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="`affinity` must be finite"):
        normalized_cuts_affinity(nan, 2)
    with pytest.raises(ValueError, match="`affinity` must have dtype"):
        normalized_cuts_affinity(A.long(), 2)


def test_invalid_options():
    F = features()
    for kwargs, match in [
        (dict(route="sparse"), "`route` must be one of"),
        (dict(nonneg="abs"), "`nonneg` must be one of"),
        (dict(solver="lanczos"), "`solver` must be one of"),
        (dict(degree_floor=-1.0), "`degree_floor` must be a finite number >= 0"),
        (dict(degree_floor_abs=0.0), "`degree_floor_abs` must be a finite number > 0"),
        (dict(eigengap_rtol=float("nan")), "`eigengap_rtol`"),
        (dict(policy="zero"), "`policy` must be a DegeneracyPolicy"),
    ]:
        with pytest.raises(ValueError, match=match):
            normalized_cuts(F, 2, **kwargs)
    with pytest.raises(ValueError, match="`route` must be one of"):
        NormalizedCuts(route="dense-ish")
    with pytest.raises(ValueError, match="`k` must be a positive int or None"):
        NormalizedCuts(k=0)


def test_invalid_labels_and_loss_arguments():
    F = features()
    result = normalized_cuts(F, 2, check_eigengap=False)
    labels = torch.zeros(2, 10, dtype=torch.long)
    labels[:, 5:] = 1
    ncuts_loss(result, labels)  # valid
    for bad, match in [
        (labels[:, :9], r"`labels` must have shape \(B, m\) = \(2, 10\)"),
        (labels.reshape(2, 2, 5), r"`labels` must have shape"),
        (labels.double(), "`labels` must have an integer dtype"),
        (labels - 1, "`labels` must be non-negative"),
    ]:
        with pytest.raises(ValueError, match=match):
            ncuts_loss(result, bad)
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        ncuts_loss(result, labels, reduction="max")
    with pytest.raises(ValueError, match="`degrees` and `k` must be None"):
        ncuts_loss(result, labels, degrees=result.degrees)
    with pytest.raises(ValueError, match=r"`degrees` \(B, m\) must be given"):
        ncuts_loss(result.Z, labels)
    with pytest.raises(ValueError, match="`degrees` must be positive"):
        ncuts_loss(result.Z, labels, degrees=torch.zeros(2, 10, dtype=F64))
    with pytest.raises(ValueError, match=r"`degrees` must have shape"):
        ncuts_loss(result.Z, labels, degrees=torch.ones(2, 9, dtype=F64))
    with pytest.raises(ValueError, match=r"`k` must be <= 2"):
        ncuts_loss(result.Z, labels, degrees=result.degrees, k=3)
    with pytest.raises(ValueError, match="`Z` must be finite"):
        ncuts_loss(result.Z * float("nan"), labels, degrees=result.degrees)
    with pytest.raises(ValueError, match="`ignore_index` must be an int"):
        segment_counts(labels, ignore_index=1.5)
    with pytest.raises(ValueError, match=r"`labels` must have shape \(B, m\)"):
        NormalizedCuts()(F, labels=labels[:, :9])


def test_invalid_decoding_inputs():
    Z = torch.rand(12, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"`k` must be <= min\(m, K\) = 3"):
        spectral_discretize(Z, 4)
    with pytest.raises(ValueError, match=r"`Z` must have shape \(m, K\)"):
        spectral_discretize(Z.unsqueeze(0))
    with pytest.raises(ValueError, match=r"`Z` must have shape \(B, m, K\)"):
        decode_labels(Z)
    with pytest.raises(ValueError, match="`k_max` must satisfy"):
        ncuts_hierarchy(Z, 5)
    with pytest.raises(ValueError, match="`k_min` must be a positive int"):
        ncuts_hierarchy(Z, 3, k_min=0)
    with pytest.raises(ValueError, match="`k` must be <= the number of points"):
        kmeans(torch.rand(3, 2, dtype=F64), 4)
    with pytest.raises(ValueError, match="`X` must be finite"):
        kmeans(torch.full((3, 2), float("nan")), 2)
    with pytest.raises(ValueError, match="`restarts` must be a positive int"):
        kmeans(torch.rand(3, 2), 2, restarts=0)
    with pytest.raises(ValueError, match=r"`node_index` values must lie in \[0, S\)"):
        lift_labels(torch.tensor([0, 1]), torch.tensor([[0, 2]]))
    with pytest.raises(ValueError, match=r"`node_index` must have shape \(H, W\)"):
        lift_labels(torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="`node_index` must have an integer dtype"):
        lift_labels(torch.tensor([0, 1]), torch.zeros(2, 2))


def test_invalid_gaussian_affinity_inputs():
    pos, col = torch.rand(5, 2, dtype=F64), torch.rand(5, 3, dtype=F64)
    with pytest.raises(ValueError, match="`sigma_xy` must be a finite number > 0"):
        gaussian_affinity(pos, col, 0.0, 1.0)
    with pytest.raises(ValueError, match="`radius` must be a finite number > 0"):
        gaussian_affinity(pos, col, 1.0, 1.0, radius=-2.0)
    with pytest.raises(ValueError, match="must share leading shape"):
        gaussian_affinity(pos, col[:4], 1.0, 1.0)
    with pytest.raises(ValueError, match="`colors` must have the dtype"):
        gaussian_affinity(pos, col.float(), 1.0, 1.0)
    assert gaussian_affinity(pos, col, 1.0, 1.0).shape == (5, 5)


@pytest.mark.parametrize("nonneg", ["relu", "softplus", "square", "none"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_gram_solver_rejects_non_finite_features_found_on_its_first_pass(monkeypatch, nonneg, bad):
    """The Gram solver tests finiteness on the column sums of its first pass (also of F itself:
    relu and softplus map −inf to 0), in blocks; a huge finite value is no false alarm."""
    import matbackprop.nn._ncuts._gram as gram

    monkeypatch.setattr(gram, "BLOCK_ELEMENTS", 64)  # several blocks per image
    F = torch.rand(2, 40, 4, dtype=torch.float32) + 0.1
    F[1, 37, 2] = bad
    if nonneg == "none" and bad < 0:
        match = "non-negative|finite"  # the sign check may see it first
    else:
        match = r"`features` must be finite, got 1 non-finite"
    with pytest.raises(ValueError, match=match):
        normalized_cuts(F, 2, solver="gram", nonneg=nonneg)
    F[1, 37, 2] = 3e38 if nonneg != "square" else 1e18  # finite; column sums overflow float32
    normalized_cuts(F, 2, solver="gram", nonneg=nonneg, check_eigengap=False)
