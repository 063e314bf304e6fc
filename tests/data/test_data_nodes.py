"""Graph nodes and the training items of spectral segmentation."""

from __future__ import annotations

import pytest
import torch

from matbackprop.data import (
    IGNORE_INDEX,
    NodeLabelItems,
    NodeSpec,
    annotator_node_labels,
    collate_columns,
    pick_annotator,
)


def test_pick_annotator_caps_segments():
    index = torch.arange(6).reshape(2, 3)
    fine = torch.tensor([[0, 1, 2], [3, 3, 3]])
    candidates = annotator_node_labels([fine], index)
    labels = pick_annotator(candidates, 2, torch.Generator().manual_seed(0))
    assert (labels == IGNORE_INDEX).sum() == 2  # two singleton segments dropped
    kept = labels[labels != IGNORE_INDEX]
    assert set(kept.tolist()) == {3, kept[0].item()}


def test_pick_annotator_draws_among_qualifying_annotators():
    index = torch.arange(4).reshape(2, 2)
    two = torch.tensor([[0, 0], [1, 1]])
    three = torch.tensor([[0, 1], [2, 2]])
    four = torch.tensor([[0, 1], [2, 3]])
    candidates = annotator_node_labels([two, three, four], index)
    drawn = {
        tuple(pick_annotator(candidates, 3, torch.Generator().manual_seed(s)).tolist())
        for s in range(20)
    }
    assert drawn == {tuple(candidates[0].tolist()), tuple(candidates[1].tolist())}


class _Mosaic:
    def __init__(self, labels):
        self.labels = labels
        self.image = torch.rand(3, *labels.shape)


def test_node_label_items_and_collate_columns():
    labels = torch.zeros(8, 8, dtype=torch.long)
    labels[:, 4:] = 1
    items = NodeLabelItems([_Mosaic(labels)] * 2, NodeSpec("grid", cell=4), max_segments=4)
    image, index, node_labels = items[0]
    assert image.shape == (3, 8, 8) and index.shape == (8, 8) and index.max() == 3
    assert node_labels.tolist() == [0, 1, 0, 1]  # 2 x 2 cells, left and right halves
    images, indices, batch_labels = collate_columns([items[0], items[1]])
    assert len(images) == len(indices) == len(batch_labels) == 2
    with pytest.raises(ValueError, match="mode"):
        NodeSpec("hexagons")
