"""Accuracy, per-class accuracy and confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest

from matbackprop.metrics import (
    accuracy,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
)


def test_confusion_matrix_and_accuracies():
    target = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    m = confusion_matrix(pred, target, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    assert accuracy(pred, target) == pytest.approx(4 / 6)
    np.testing.assert_allclose(per_class_accuracy(pred, target, 3), [1 / 2, 2 / 3, 1.0])
    assert mean_class_accuracy(pred, target, 3) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)


def test_classes_absent_from_targets_are_excluded():
    # class 2 never occurs as a target: the mean is over classes 0 and 1 only
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    acc = per_class_accuracy(pred, target, 3)
    assert np.isnan(acc[2])
    assert mean_class_accuracy(pred, target, 3) == pytest.approx(0.75)
    # a class that is only predicted still costs the class it was confused with
    assert mean_class_accuracy(np.array([2, 0]), np.array([0, 0]), 3) == pytest.approx(0.5)


def test_scores_ignore_index_and_tensors():
    torch = pytest.importorskip("torch")
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    target = torch.tensor([0, 2, 2, -1])
    assert accuracy(scores, target, ignore_index=-1) == pytest.approx(2 / 3)
    m = confusion_matrix(scores, target, 3, ignore_index=-1)
    assert m.sum() == 3 and m[2, 1] == 1
    # 2-D label maps work too (e.g. per-pixel classes)
    lab = np.array([[0, 1], [1, 1]])
    assert accuracy(lab, lab) == 1.0


def test_classification_errors():
    t = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="shape"):
        accuracy(np.array([0, 1]), t)
    with pytest.raises(ValueError, match="integer"):
        accuracy(np.array([0.5, 1, 2]), t)
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(t, t, 0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix(t, t, 2)
    with pytest.raises(ValueError, match="3 classes"):
        confusion_matrix(np.zeros((3, 4)), t, 3)
    with pytest.raises(ValueError, match="finite"):
        accuracy(np.full((3, 3), np.nan), t)
    with pytest.raises(ValueError, match="at least one"):
        accuracy(np.array([0]), np.array([5]), ignore_index=5)
