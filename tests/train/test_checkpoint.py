"""Atomic checkpoint writes, checkpoint reading and RNG state capture."""

# ruff: noqa: NPY002  (the legacy global NumPy RNG is what is being checkpointed)

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from matbackprop.errors import DataFileError
from matbackprop.train import (
    _checkpoint,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    load_model_weights,
    remove_stale_temporaries,
    restore_rng_state,
)


def test_atomic_save_roundtrip(tmp_path):
    path = tmp_path / "sub" / "last.pt"
    atomic_save({"step": 3, "w": torch.arange(4.0)}, path)
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


@pytest.mark.parametrize("error", [OSError("disk on fire"), KeyboardInterrupt()])
def test_failure_before_rename_keeps_previous(tmp_path, monkeypatch, error):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)

    def crash(src, dst):
        raise error

    monkeypatch.setattr(_checkpoint.os, "replace", crash)
    with pytest.raises(type(error)):
        atomic_save({"step": 2, "big": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # temp file cleaned


def test_failure_during_write_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)

    def partial_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(_checkpoint.torch, "save", partial_save)
    with pytest.raises(RuntimeError, match="mid-write"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_hard_crash_between_write_and_rename(tmp_path, subprocess_env):
    """A process dying (os._exit) after writing the temp file but before renaming it."""
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)
    code = textwrap.dedent(
        f"""
        import os
        from matbackprop.train import _checkpoint
        _checkpoint.os.replace = lambda src, dst: os._exit(3)
        _checkpoint.atomic_save({{"step": 2}}, {str(path)!r})
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env, capture_output=True, timeout=120
    )
    assert proc.returncode == 3, proc.stderr
    assert load_checkpoint(path)["step"] == 1
    stale = [p for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert len(stale) == 1 and stale[0].name.startswith(".last.pt.")
    assert remove_stale_temporaries(tmp_path) == stale
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 not torch")
    with pytest.raises(DataFileError, match="garbage.pt") as info:
        load_checkpoint(garbage)
    assert info.value.path == garbage
    listing = tmp_path / "list.pt"
    torch.save([1, 2], listing)
    with pytest.raises(DataFileError, match="must hold a dict"):
        load_checkpoint(listing)


def test_load_model_weights(tmp_path):
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    atomic_save({"model": a.state_dict(), "step": 5}, tmp_path / "c.pt")
    assert load_model_weights(b, tmp_path / "c.pt")["step"] == 5
    assert torch.equal(a.weight, b.weight)
    atomic_save({"step": 5}, tmp_path / "d.pt")
    with pytest.raises(DataFileError, match="no `model` entry"):
        load_model_weights(b, tmp_path / "d.pt")


def _draw():
    return (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())


def test_rng_capture_restore_through_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in the numpy state
    state = capture_rng_state()
    expected = [_draw() for _ in range(3)]
    atomic_save({"rng": state}, tmp_path / "rng.pt")
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])  # weights_only=True load
    assert [_draw() for _ in range(3)] == expected
    with pytest.raises(ValueError, match="not an RNG snapshot"):
        restore_rng_state({"python": 1})


def test_the_trainer_checkpoint_format_is_built_and_checked_in_one_place(tmp_path):
    from matbackprop.train import TrainConfig

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = _checkpoint.trainer_checkpoint(
        step=3,
        total_steps=5,
        model=model,
        optimizer=optimizer,
        extra_state=None,
        rng=[capture_rng_state()],
        data={"world_size": 1, "num_items": 4, "seed": 0, "positions": [[0, 3]]},
        run_config=TrainConfig(steps=5),
        train_config=TrainConfig(steps=5),
        last_loss=0.5,
        elapsed=1.0,
        reason="periodic",
    )
    assert (state["format"], state["version"]) == ("matbackprop.train", 1)
    assert state["config"]["steps"] == 5 and state["train_config"] == state["config"]
    _checkpoint.write_checkpoint(state, tmp_path / "last.pt", keep_as=tmp_path / "step_3.pt")
    assert _checkpoint.read_trainer_checkpoint(tmp_path / "step_3.pt")["step"] == 3
    assert _checkpoint.read_trainer_checkpoint(tmp_path / "last.pt")["step"] == 3
    atomic_save({**state, "format": "other"}, tmp_path / "other.pt")
    with pytest.raises(DataFileError, match=r"not a matbackprop.train v1 checkpoint"):
        _checkpoint.read_trainer_checkpoint(tmp_path / "other.pt")
