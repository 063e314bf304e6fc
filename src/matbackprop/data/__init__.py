"""Data sets, embedded synthetic data, superpixels and preprocessing (a leaf: it imports no
other matbackprop floor but the errors).

- data sets: :class:`BSDS500` (images and human segmentations), :class:`COCORegions` (images,
  instance masks, classes), :class:`TextureMosaics` (generated on the fly);
- graph nodes: :func:`slic_superpixels`, :func:`grid_superpixels`, pooling to and lifting from
  nodes, :func:`majority_labels`, :class:`NodeSpec`;
- training items: :class:`NodeLabelItems` (image, node index, one annotator's node labels) and
  :class:`RegionItems` with :func:`collate_regions`; :func:`collate_columns`,
  :func:`draw_holdout`;
- result files: :func:`save_bsds_result` / :func:`load_bsds_result` (the official ``segs`` /
  ``ucm2`` ``.mat`` format the BSDS benchmark reads);
- transforms: resizing images and label maps in step (input normalization belongs to each
  backbone, :class:`matbackprop.models.ImageNormalization`).

Heavy dependencies (scikit-image, pycocotools, scipy, Pillow) are imported lazily inside the
functions that need them, so ``import matbackprop.data`` stays light.
"""

from matbackprop.errors import DataFileError

from ._bsds import (
    BSDS500,
    BSDSFiles,
    BSDSSample,
    label_boundaries,
    read_bsds_ground_truth,
    save_bsds_ground_truth,
)
from ._bsds_results import load_bsds_result, save_bsds_result
from ._coco import COCORegions, COCOSample, decode_coco_segmentation, resize_masks
from ._collate import collate_columns, collate_list
from ._color import rgb_to_lab
from ._grid import grid_majority_labels, lift_grid_labels, pool_to_grid
from ._images import read_rgb_image
from ._mosaics import (
    TEXTURE_FAMILIES,
    MosaicBatch,
    MosaicSample,
    TextureMosaics,
    collate_mosaics,
    mosaic_splits,
)
from ._nodes import IGNORE_INDEX, NodeLabelItems, NodeSpec, annotator_node_labels, pick_annotator
from ._paths import default_bsds_root, default_coco_root, shared_root
from ._region_items import RegionItems, collate_regions, draw_holdout
from ._superpixels import (
    grid_superpixels,
    lift_to_pixels,
    majority_labels,
    pool_to_superpixels,
    relabel_contiguous,
    slic_superpixels,
)
from ._transforms import keep_aspect_size, resize_image, resize_keep_aspect, resize_labels

__all__ = [
    "BSDS500",
    "IGNORE_INDEX",
    "TEXTURE_FAMILIES",
    "BSDSFiles",
    "BSDSSample",
    "COCORegions",
    "COCOSample",
    "DataFileError",
    "MosaicBatch",
    "MosaicSample",
    "NodeLabelItems",
    "NodeSpec",
    "RegionItems",
    "TextureMosaics",
    "annotator_node_labels",
    "collate_columns",
    "collate_list",
    "collate_regions",
    "collate_mosaics",
    "decode_coco_segmentation",
    "default_bsds_root",
    "default_coco_root",
    "draw_holdout",
    "grid_majority_labels",
    "grid_superpixels",
    "keep_aspect_size",
    "load_bsds_result",
    "label_boundaries",
    "load_bsds_result",
    "lift_grid_labels",
    "lift_to_pixels",
    "majority_labels",
    "mosaic_splits",
    "pick_annotator",
    "pool_to_grid",
    "pool_to_superpixels",
    "read_bsds_ground_truth",
    "read_rgb_image",
    "relabel_contiguous",
    "resize_image",
    "resize_keep_aspect",
    "resize_labels",
    "resize_masks",
    "rgb_to_lab",
    "save_bsds_ground_truth",
    "save_bsds_result",
    "shared_root",
    "slic_superpixels",
]
