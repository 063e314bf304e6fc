"""Weight-delta files: only what differs from the base is stored, and loading checks the base."""

from __future__ import annotations

import pytest
import torch

from matbackprop.errors import DataFileError
from matbackprop.train import apply_weight_delta, save_weight_delta, weight_delta


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
    )


def _trained() -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in _net().state_dict().items()}
    state["2.weight"] += 0.5  # fine-tuned head
    state["1.running_mean"] += 1.0  # a buffer the training moved
    state["1.num_batches_tracked"] += 3
    return state


def test_delta_stores_exactly_the_changed_entries(tmp_path):
    base = _net().state_dict()
    trained = _trained()
    assert sorted(weight_delta(trained, base)) == [
        "1.num_batches_tracked",
        "1.running_mean",
        "2.weight",
    ]
    sizes = save_weight_delta(tmp_path / "w.pt", trained, base)
    assert sizes["stored"] == 3 and sizes["total"] == len(base)
    assert sizes["stored_parameters"] == 16 + 8 + 1


def test_apply_restores_the_trained_model_bitwise(tmp_path):
    trained = _trained()
    save_weight_delta(tmp_path / "w.pt", trained, _net().state_dict())
    model = apply_weight_delta(_net(), tmp_path / "w.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_a_different_base_is_refused(tmp_path):
    save_weight_delta(tmp_path / "w.pt", _trained(), _net().state_dict())
    with pytest.raises(DataFileError, match="base weights differ"):
        apply_weight_delta(_net(seed=1), tmp_path / "w.pt")


def test_another_architecture_is_refused(tmp_path):
    save_weight_delta(tmp_path / "w.pt", _trained(), _net().state_dict())
    with pytest.raises(DataFileError, match="another architecture"):
        apply_weight_delta(torch.nn.Linear(4, 2), tmp_path / "w.pt")


def test_not_a_delta_file_and_missing_file(tmp_path):
    torch.save({"model": {}}, tmp_path / "ckpt.pt")
    with pytest.raises(DataFileError, match="not a matbackprop.weights-delta"):
        apply_weight_delta(_net(), tmp_path / "ckpt.pt")
    with pytest.raises(FileNotFoundError):
        apply_weight_delta(_net(), tmp_path / "none.pt")


def test_base_with_extra_entries_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        save_weight_delta(tmp_path / "w.pt", {"a": torch.zeros(1)}, {"b": torch.zeros(1)})
