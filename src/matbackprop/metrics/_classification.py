r"""Classification metrics for region classification (e.g. COCO regions).

With predictions :math:`\hat y_n` and targets :math:`y_n` over the :math:`N` evaluated samples
and the confusion matrix :math:`M_{ij} = \#\{n : y_n = i, \hat y_n = j\}`:

* accuracy :math:`= \frac1N \sum_i M_{ii}`;
* per-class accuracy (recall of class ``i``) :math:`a_i = M_{ii} / \sum_j M_{ij}`;
* mean per-class accuracy :math:`= \frac{1}{|C|} \sum_{i \in C} a_i` over the set :math:`C` of
  classes **present in the targets**; classes that never occur as a target have an undefined
  accuracy and are excluded from the mean (a class that is only predicted still lowers the
  accuracy of the classes it was confused with).

Predictions may be integer labels (same shape as the targets) or scores/logits with one extra
trailing axis of size ``num_classes`` (the arg-max is taken). Samples whose target equals
``ignore_index`` are dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import to_numpy

__all__ = ["accuracy", "confusion_matrix", "mean_class_accuracy", "per_class_accuracy"]


def confusion_matrix(
    pred: Any, target: Any, num_classes: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """Confusion matrix ``M[i, j]`` = number of samples of target class ``i`` predicted ``j``.

    Parameters
    ----------
    pred : array_like of int, shape S; or array_like of float, shape S + (num_classes,)
        Predicted labels, or scores whose arg-max over the last axis is the prediction.
    target : array_like of int, shape S
        True labels in ``[0, num_classes)`` (or ``ignore_index``).
    num_classes : int
        Number of classes ``C >= 1``.
    ignore_index : int, optional
        Target value marking samples to skip.

    Returns
    -------
    ndarray of int64, shape (C, C)

    Raises
    ------
    ValueError
        On mismatched shapes, non-integer labels, labels outside ``[0, C)``, non-finite scores
        or a bad ``num_classes``.

    Examples
    --------
    >>> from matbackprop.metrics import confusion_matrix
    >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], num_classes=3)
    array([[1, 0, 0],
           [0, 1, 0],
           [0, 1, 1]])
    """
    p, t = _prepare(pred, target, num_classes, ignore_index)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def accuracy(pred: Any, target: Any, *, ignore_index: int | None = None) -> float:
    """Fraction of samples whose prediction equals the target.

    Parameters
    ----------
    pred : array_like of int, shape S; or array_like of float, shape S + (C,)
    target : array_like of int, shape S
    ignore_index : int, optional
        Target value marking samples to skip.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        On mismatched shapes, non-integer labels, or when no sample is left to evaluate.

    Examples
    --------
    >>> from matbackprop.metrics import accuracy
    >>> accuracy([0, 1, 1, 2], [0, 1, 2, 2])
    0.75
    >>> accuracy([0, 1, 1, 2], [0, 1, -1, 2], ignore_index=-1)
    1.0
    """
    p, t = _prepare(pred, target, None, ignore_index)
    return float(np.mean(p == t))


def per_class_accuracy(
    pred: Any, target: Any, num_classes: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """Accuracy (recall) of each class, ``M_ii / sum_j M_ij``; NaN for classes absent from
    the targets.

    Parameters and errors as :func:`confusion_matrix`.

    Returns
    -------
    ndarray of float64, shape (C,)

    Examples
    --------
    >>> from matbackprop.metrics import per_class_accuracy
    >>> per_class_accuracy([0, 1, 1, 1], [0, 0, 1, 1], num_classes=3)      # class 2 is absent
    array([0.5, 1. , nan])
    """
    m = confusion_matrix(pred, target, num_classes, ignore_index=ignore_index)
    support = m.sum(axis=1)
    out = np.full(num_classes, np.nan)
    present = support > 0
    out[present] = np.diag(m)[present] / support[present]
    return out


def mean_class_accuracy(
    pred: Any, target: Any, num_classes: int, *, ignore_index: int | None = None
) -> float:
    """Mean of the per-class accuracies over the classes present in the targets.

    Classes that never occur in ``target`` are excluded from the mean (their accuracy is
    undefined). Parameters and errors as :func:`confusion_matrix`.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> from matbackprop.metrics import mean_class_accuracy
    >>> mean_class_accuracy([0, 0, 0, 0], [0, 0, 0, 1], num_classes=2)   # accuracy 0.75
    0.5
    >>> mean_class_accuracy([0, 1, 1, 1], [0, 0, 1, 1], num_classes=2)
    0.75
    """
    acc = per_class_accuracy(pred, target, num_classes, ignore_index=ignore_index)
    return float(np.nanmean(acc))


# --------------------------------------------------------------------------------------------


def _as_int_labels(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
        return x.astype(np.int64, copy=False)
    if np.issubdtype(x.dtype, np.floating):
        if np.all(np.isfinite(x)) and np.array_equal(x, np.round(x)):
            return x.astype(np.int64)
        raise ValueError(f"`{name}` must hold integer labels, got non-integer values")
    raise ValueError(f"`{name}` must hold integer labels, got dtype {x.dtype}")


def _prepare(
    pred: Any, target: Any, num_classes: int | None, ignore_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if num_classes is not None and (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int | np.integer)
        or num_classes < 1
    ):
        raise ValueError(f"`num_classes` must be a positive integer, got {num_classes!r}")
    p = to_numpy(pred)
    t = _as_int_labels(to_numpy(target), "target")
    if p.shape == t.shape:
        p = _as_int_labels(p, "pred")
    elif p.ndim == t.ndim + 1 and p.shape[:-1] == t.shape:
        if not (np.issubdtype(p.dtype, np.floating) or np.issubdtype(p.dtype, np.integer)):
            raise ValueError(f"`pred` scores must be numeric, got dtype {p.dtype}")
        if num_classes is not None and p.shape[-1] != num_classes:
            raise ValueError(
                f"`pred` scores must have {num_classes} classes on the last axis, "
                f"got shape {tuple(p.shape)}"
            )
        if p.shape[-1] == 0:
            raise ValueError(f"`pred` scores must have at least one class, got {tuple(p.shape)}")
        if not np.all(np.isfinite(p)):
            raise ValueError("`pred` scores must be finite, got NaN or infinite values")
        p = np.argmax(p, axis=-1).astype(np.int64)
    else:
        raise ValueError(
            f"`pred` must have the shape of `target` {tuple(t.shape)} (labels) or "
            f"{tuple(t.shape) + ('C',)} (scores), got {tuple(p.shape)}"
        )
    p, t = p.ravel(), t.ravel()
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    if t.size == 0:
        raise ValueError("`target` must contain at least one (non-ignored) sample, got none")
    if num_classes is not None:
        for name, arr in (("target", t), ("pred", p)):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(
                    f"`{name}` labels must lie in [0, {num_classes}), got range [{lo}, {hi}]"
                )
    return p, t
