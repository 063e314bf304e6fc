"""Graph nodes of an image and the training items of spectral segmentation.

A *node index map* ``(H, W)`` says which graph node each pixel belongs to: a grid of feature
cells or SLIC superpixels (:class:`NodeSpec`). Human segmentations become node labels by
majority vote; :class:`NodeLabelItems` serves ``(image, node index, node labels)`` items, one
annotator drawn per item and epoch (:func:`pick_annotator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._superpixels import grid_superpixels, majority_labels, slic_superpixels

__all__ = ["IGNORE_INDEX", "NodeLabelItems", "NodeSpec", "annotator_node_labels", "pick_annotator"]

IGNORE_INDEX = -1
"""Label of a node (or pixel) that is not part of a training target."""


@dataclass(frozen=True)
class NodeSpec:
    """How an image is cut into graph nodes.

    ``mode="grid"``: cells of ``cell`` × ``cell`` pixels (use the backbone's output stride);
    ``mode="slic"``: SLIC superpixels (``n_segments``, ``compactness``).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import NodeSpec
    >>> spec = NodeSpec("grid", cell=4)
    >>> spec.node_index(torch.rand(3, 8, 12))
    tensor([[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
            [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
            [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
            [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],
            [3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5],
            [3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5],
            [3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5],
            [3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5]])
    """

    mode: Literal["grid", "slic"] = "grid"
    cell: int = 4
    n_segments: int = 200
    compactness: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("grid", "slic"):
            raise ValueError(f"`mode` must be 'grid' or 'slic', got {self.mode!r}")
        if self.cell < 1 or self.n_segments < 2 or self.compactness <= 0:
            raise ValueError(f"invalid node settings: {self}")

    def node_index(self, image: Tensor) -> Tensor:
        """The node index map ``(H, W)`` (int64) of an image ``(3, H, W)``."""
        H, W = image.shape[-2:]
        if self.mode == "grid":
            grid = (-(-H // self.cell), -(-W // self.cell))
            return grid_superpixels((H, W), grid).long()
        return slic_superpixels(image, self.n_segments, self.compactness).long()


def annotator_node_labels(segmentations: Sequence[Tensor], node_index: Tensor) -> list[Tensor]:
    """Node labels (majority vote) of every human segmentation.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import annotator_node_labels, grid_superpixels
    >>> node_index = grid_superpixels((4, 4), (2, 2))
    >>> left_right = torch.tensor([[0, 0, 1, 1]] * 4)
    >>> everything = torch.zeros(4, 4, dtype=torch.long)
    >>> annotator_node_labels([left_right, everything], node_index)
    [tensor([0, 1, 0, 1]), tensor([0, 0, 0, 0])]
    """
    return [majority_labels(seg, node_index) for seg in segmentations]


def pick_annotator(
    candidates: Sequence[Tensor], max_segments: int, generator: torch.Generator
) -> Tensor:
    """One annotator's node labels, drawn at random among those with at most ``max_segments``
    segments. If none qualifies, the coarsest one is used with only its ``max_segments``
    largest segments; nodes of the others get :data:`IGNORE_INDEX` (left out of the loss).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import pick_annotator
    >>> coarse, fine = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3])
    >>> pick_annotator([coarse, fine], max_segments=2, generator=torch.Generator().manual_seed(0))
    tensor([0, 0, 1, 1])
    """
    counts = [int(torch.unique(c).numel()) for c in candidates]
    ok = [i for i, c in enumerate(counts) if c <= max_segments]
    if ok:
        return candidates[ok[int(torch.randint(len(ok), (1,), generator=generator))]]
    labels = candidates[min(range(len(counts)), key=counts.__getitem__)]
    values, sizes = torch.unique(labels, return_counts=True)
    keep = values[torch.argsort(sizes, descending=True, stable=True)[:max_segments]]
    return torch.where(torch.isin(labels, keep), labels, torch.full_like(labels, IGNORE_INDEX))


class NodeLabelItems(Dataset):
    """Items ``(image, node index, node labels of one annotator)`` for training on partitions.

    Parameters
    ----------
    samples : sequence
        Each ``sample`` has ``.image (3, H, W)`` and either ``.segmentations`` (a list of label
        maps, BSDS) or ``.labels`` (one label map, mosaics).
    nodes : NodeSpec
    max_segments : int
        Annotators with more segments (at node level) are not used for training, since
        ``k`` cannot exceed the feature dimension; one qualifying annotator is drawn per item
        and epoch from torch's global generator, which the trainer seeds per item
        (deterministic, resumable); see :func:`pick_annotator`.

    Notes
    -----
    Node index maps and the annotators' node labels are computed once per image and cached.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import NodeLabelItems, NodeSpec, TextureMosaics
    >>> items = NodeLabelItems(TextureMosaics(2, size=32), NodeSpec("grid", cell=8))
    >>> image, node_index, node_labels = items[0]
    >>> image.shape, node_index.shape, node_labels.shape         # 4 x 4 grid cells: 16 nodes
    (torch.Size([3, 32, 32]), torch.Size([32, 32]), torch.Size([16]))
    """

    def __init__(self, samples, nodes: NodeSpec, max_segments: int = 16) -> None:
        self.samples = samples
        self.nodes = nodes
        self.max_segments = max_segments
        self._cache: dict[int, tuple[Tensor, list[Tensor]]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        sample = self.samples[i]
        if i not in self._cache:
            index = self.nodes.node_index(sample.image)
            segs = getattr(sample, "segmentations", None) or [sample.labels]
            self._cache[i] = (index, annotator_node_labels(segs, index))
        index, candidates = self._cache[i]
        labels = pick_annotator(candidates, self.max_segments, torch.default_generator)
        return sample.image, index, labels
