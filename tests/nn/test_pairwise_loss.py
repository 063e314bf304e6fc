"""The local counterpart of the NCuts loss: BCE of cosine affinities of node pairs."""

from __future__ import annotations

import math

import pytest
import torch

from matbackprop.nn.functional import pairwise_affinity_loss

F64 = torch.float64


def reference(features, pairs, labels, balance=True, ignore=None):
    """Loop over pairs, the formula written out."""
    terms = []
    for i, j in pairs.tolist():
        if ignore is not None and ignore in (int(labels[i]), int(labels[j])):
            continue
        a = float(features[i] @ features[j] / (features[i].norm() * features[j].norm()))
        a = min(max(a, 1e-6), 1 - 1e-6)
        y = float(labels[i] == labels[j])
        terms.append((y, -(y * math.log(a) + (1 - y) * math.log(1 - a))))
    if not balance:
        return sum(t for _, t in terms) / len(terms)
    pos = [t for y, t in terms if y == 1]
    neg = [t for y, t in terms if y == 0]
    parts = [sum(c) / len(c) for c in (pos, neg) if c]
    return sum(parts) / len(parts)


def random_problem(seed, m=12, d=5, P=30):
    g = torch.Generator().manual_seed(seed)
    features = torch.rand(m, d, generator=g, dtype=F64) + 0.05
    pairs = torch.randint(m, (P, 2), generator=g)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    labels = torch.randint(3, (m,), generator=g)
    return features, pairs, labels


@pytest.mark.parametrize("balance", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_matches_the_written_out_formula(seed, balance):
    features, pairs, labels = random_problem(seed)
    got = pairwise_affinity_loss(features, pairs, labels, balance=balance)
    assert float(got) == pytest.approx(reference(features, pairs, labels, balance), rel=1e-12)


def test_ignored_nodes_drop_their_pairs():
    features, pairs, labels = random_problem(4)
    labels[0] = -1
    labels[5] = -1
    got = pairwise_affinity_loss(features, pairs, labels, ignore_index=-1)
    assert float(got) == pytest.approx(reference(features, pairs, labels, ignore=-1), rel=1e-12)


def test_known_answers():
    e = torch.eye(2, dtype=F64)
    pair = torch.tensor([[0, 1]])
    # orthogonal features: affinity 0 (clamped to 1e-6)
    assert float(pairwise_affinity_loss(e, pair, torch.tensor([0, 1]))) == pytest.approx(
        -math.log(1 - 1e-6)
    )
    assert float(pairwise_affinity_loss(e, pair, torch.tensor([0, 0]))) == pytest.approx(
        -math.log(1e-6)
    )
    # equal directions, different norms: affinity 1
    same = torch.tensor([[1.0, 2.0], [3.0, 6.0]], dtype=F64)
    assert float(pairwise_affinity_loss(same, pair, torch.tensor([4, 4]))) < 1e-5


def test_gradient_matches_finite_differences():
    features, pairs, labels = random_problem(7, m=6, d=3, P=12)
    features.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda f: pairwise_affinity_loss(f, pairs, labels), (features,), eps=1e-6, atol=1e-7
    )


def test_rejects_bad_input():
    features, pairs, labels = random_problem(0)
    with pytest.raises(ValueError, match="non-negative"):
        pairwise_affinity_loss(-features, pairs, labels)
    with pytest.raises(ValueError, match=r"\(P, 2\)"):
        pairwise_affinity_loss(features, pairs[:, :1], labels)
    with pytest.raises(ValueError, match="labels"):
        pairwise_affinity_loss(features, pairs, labels[:-1])
    with pytest.raises(ValueError, match="index nodes"):
        pairwise_affinity_loss(features, pairs + 100, labels)
    with pytest.raises(ValueError, match="integer"):
        pairwise_affinity_loss(features, pairs.double(), labels)
