"""Evaluation metrics: the BSDS500 region and boundary benchmarks, and classification metrics.

A leaf package (numpy; scipy and scikit-image imported lazily inside functions). Torch tensors
are accepted wherever arrays are (they are converted with ``.detach().cpu().numpy()``).

BSDS benchmark (Arbelaez et al., TPAMI 2011, Sec. 3), validated against the official MATLAB
outputs:

* per image and threshold: :func:`segmentation_covering`, :func:`probabilistic_rand_index`,
  :func:`variation_of_information`, :func:`region_scores`, :func:`boundary_pr`;
* per image across thresholds: :func:`evaluate_hierarchy` (list of segmentations),
  :func:`evaluate_segmentation`, :func:`evaluate_ucm2`, :func:`evaluate_boundary_map`;
* data set: :func:`aggregate_boundary` (ODS/OIS/AP), :func:`aggregate_region`
  (covering ODS/OIS/Best, PRI and VoI ODS/OIS).

Region classification: :func:`accuracy`, :func:`mean_class_accuracy`,
:func:`per_class_accuracy`, :func:`confusion_matrix`; comparing two classifiers on the same
samples: :func:`paired_bootstrap_ci` (a paired cluster bootstrap interval of the difference).

Example
-------
>>> import numpy as np
>>> from matbackprop.metrics import evaluate_hierarchy, aggregate_region
>>> gt = np.repeat([[1, 1, 2, 2]], 4, axis=0)
>>> res = evaluate_hierarchy([gt], [gt], boundaries=False)
>>> float(aggregate_region([res]).covering_ods)
1.0
"""

from ._aggregate import (
    BoundaryBenchmark,
    RegionBenchmark,
    aggregate_boundary,
    aggregate_region,
    interpolated_best_f,
    pr_curve_area,
)
from ._benchmark import (
    BoundaryCurve,
    ImageEvaluation,
    RegionCurve,
    evaluate_boundary_map,
    evaluate_hierarchy,
    evaluate_segmentation,
    evaluate_ucm2,
    ucm_thresholds,
)
from ._bootstrap import BootstrapInterval, paired_bootstrap_ci
from ._boundaries import (
    BoundaryCounts,
    boundary_pr,
    correspond_pixels,
    f_measure,
    human_boundaries,
    segmentation_to_boundaries,
    thin_boundaries,
)
from ._classification import accuracy, confusion_matrix, mean_class_accuracy, per_class_accuracy
from ._regions import (
    RegionScores,
    contingency_table,
    probabilistic_rand_index,
    region_scores,
    relabel_contiguous,
    segmentation_covering,
    variation_of_information,
)

__all__ = [
    "BootstrapInterval",
    "BoundaryBenchmark",
    "BoundaryCounts",
    "BoundaryCurve",
    "ImageEvaluation",
    "RegionBenchmark",
    "RegionCurve",
    "RegionScores",
    "accuracy",
    "aggregate_boundary",
    "aggregate_region",
    "boundary_pr",
    "confusion_matrix",
    "contingency_table",
    "correspond_pixels",
    "evaluate_boundary_map",
    "evaluate_hierarchy",
    "evaluate_segmentation",
    "evaluate_ucm2",
    "f_measure",
    "human_boundaries",
    "interpolated_best_f",
    "mean_class_accuracy",
    "paired_bootstrap_ci",
    "per_class_accuracy",
    "pr_curve_area",
    "probabilistic_rand_index",
    "region_scores",
    "relabel_contiguous",
    "segmentation_covering",
    "segmentation_to_boundaries",
    "thin_boundaries",
    "ucm_thresholds",
    "variation_of_information",
]
