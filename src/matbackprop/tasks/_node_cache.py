"""The per-image node cache of the BSDS500 task: superpixels, frozen descriptors, labels, graph.

Every method of ``ncuts`` works on the same SLIC superpixels at full resolution, and the learned
heads train on *frozen* :class:`~matbackprop.models.HypercolumnEncoder` descriptors, so each
image is processed once and stored in ``<cache_dir>/<split>/<image id>.pt``:

``node_index``
    ``(H, W)`` superpixel map (int32);
``descriptors``
    one ``(S, D)`` float16 descriptor matrix per view (view 0: the image, view 1: its
    left-right mirror, computed on the mirrored image and superpixel map; node ids are shared);
``labels``
    each human segmentation's node labels (majority vote);
``pairs``
    the ``(E, 2)`` adjacent superpixel pairs (:func:`~matbackprop.nn.functional.region_adjacency`);
``settings``
    what the entry depends on (superpixels, compactness, taps, views, format version); an entry
    with other settings is recomputed, never reused, except that an entry with more views
    serves a request for fewer (its first views).

Timings (seconds per piece: ``slic``, ``descriptors``) of the images computed in this process
are kept in :attr:`NodeCache.timings`.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from matbackprop.data import NodeSpec, annotator_node_labels, pick_annotator
from matbackprop.models import HypercolumnEncoder
from matbackprop.nn.functional import region_adjacency

FORMAT = 1


@dataclass
class NodeEntry:
    """One image's cached nodes (see the module docstring)."""

    image_id: str
    node_index: Tensor
    descriptors: list[Tensor]
    labels: list[Tensor]
    pairs: Tensor


class NodeCache:
    """Compute-once store of :class:`NodeEntry` per image (see the module docstring).

    Parameters
    ----------
    root : Path
        Folder of the cache (created on demand).
    nodes : NodeSpec
        The superpixels (SLIC at the image's resolution).
    encoder : HypercolumnEncoder
        Frozen descriptor network (used only for images not cached yet).
    """

    def __init__(self, root: Path, nodes: NodeSpec, encoder: HypercolumnEncoder) -> None:
        self.root = Path(root)
        self.nodes = nodes
        self.encoder = encoder.eval()
        self.timings: dict[str, float] = defaultdict(float)
        self.computed = 0

    def settings(self, views: int) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "superpixels": self.nodes.n_segments,
            "compactness": self.nodes.compactness,
            "taps": list(self.encoder.taps),
            "input_size": self.encoder.input_size,
            "views": views,
        }

    def get(self, split: str, sample: Any, views: int = 1) -> NodeEntry:
        """The entry of ``sample`` (a :class:`~matbackprop.data.BSDSSample`) with ``views``
        descriptor views (1: the image; 2: also its mirror), computed if missing or stale."""
        path = self.root / split / f"{sample.image_id}.pt"
        settings = self.settings(views)
        if path.is_file():
            stored = torch.load(path, weights_only=True)
            if _serves(stored.get("settings"), settings):
                return NodeEntry(
                    sample.image_id,
                    stored["node_index"].long(),
                    stored["descriptors"][:views],
                    stored["labels"],
                    stored["pairs"],
                )
        entry = self.compute(sample, views)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(
            {
                "settings": settings,
                "node_index": entry.node_index.to(torch.int32),
                "descriptors": entry.descriptors,
                "labels": entry.labels,
                "pairs": entry.pairs,
            },
            tmp,
        )
        os.replace(tmp, path)
        return entry

    @torch.no_grad()
    def compute(self, sample: Any, views: int) -> NodeEntry:
        start = time.perf_counter()
        node_index = self.nodes.node_index(sample.image)
        self.timings["slic"] += time.perf_counter() - start
        start = time.perf_counter()
        device = next(self.encoder.parameters()).device
        descriptors = []
        for view in range(views):
            image, index = sample.image, node_index
            if view == 1:
                image, index = image.flip(-1), index.flip(-1)
            x = self.encoder(image.to(device), index.to(device))
            descriptors.append(x.cpu().to(torch.float16))
        self.timings["descriptors"] += time.perf_counter() - start
        self.computed += 1
        return NodeEntry(
            sample.image_id,
            node_index,
            descriptors,
            annotator_node_labels(sample.segmentations, node_index),
            region_adjacency(node_index).pairs,
        )


def _serves(stored: Any, wanted: dict[str, Any]) -> bool:
    """Whether an entry stored with settings ``stored`` answers a request for ``wanted``: the
    same settings, with at least as many views."""
    if not isinstance(stored, dict) or stored.get("views", 0) < wanted["views"]:
        return False
    return {**stored, "views": wanted["views"]} == wanted


class CachedNodeItems(torch.utils.data.Dataset):
    """Training items ``(descriptors, node labels, pairs)`` of cached images.

    Each fetch draws one view and one annotator (among those with at most ``max_segments``
    segments, :func:`~matbackprop.data.pick_annotator`) from torch's global generator, which
    the trainer seeds per item (deterministic, resumable).
    """

    def __init__(self, entries: list[NodeEntry], max_segments: int) -> None:
        self.entries = entries
        self.max_segments = max_segments

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        entry = self.entries[i]
        view = int(torch.randint(len(entry.descriptors), (1,)))
        labels = pick_annotator(entry.labels, self.max_segments, torch.default_generator)
        return entry.descriptors[view].float(), labels, entry.pairs
