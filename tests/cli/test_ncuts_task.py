"""`matbackprop train|eval ncuts` end to end on a tiny BSDS-layout fixture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from matbackprop.cli import main
from matbackprop.cli._ncuts_common import IGNORE, annotator_node_labels, pick_annotator
from matbackprop.data import save_bsds_ground_truth


def _write_split(root, split, n, rng):
    from PIL import Image

    (root / "data" / "images" / split).mkdir(parents=True)
    (root / "data" / "groundTruth" / split).mkdir(parents=True)
    for i in range(n):
        h, w = 40, 56
        seg = np.ones((h, w), dtype=np.uint16)
        seg[:, w // 2 :] = 2
        seg[h // 2 :, : w // 3] = 3
        colours = rng.uniform(30, 220, size=(4, 3))
        image = colours[seg] + rng.normal(0, 5, size=(h, w, 3))
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(
            root / "data" / "images" / split / f"{i}.jpg", quality=95
        )
        coarse = np.where(seg == 3, 1, seg).astype(np.uint16)
        save_bsds_ground_truth(root / "data" / "groundTruth" / split / f"{i}.mat", [seg, coarse])


@pytest.fixture
def tiny_bsds(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "BSDS500"
    _write_split(root, "train", 3, rng)
    _write_split(root, "val", 2, rng)
    return root


def _args(root, out):
    return [
        "--data-root", str(root), "--out", str(out),
        "--set", "max_size=48", "--set", "superpixels=30", "--set", "k_max=4",
        "--set", "feature_dim=8", "--set", "tune_images=2", "--set", "eval_workers=1",
        "--set", "train.steps=2", "--set", "train.batch_size=2", "--set", "train.name=tiny",
        "--set", "train.checkpoint_every=1", "--set", "train.device=cpu",
    ]  # fmt: skip


def test_train_resume_and_eval(tiny_bsds, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "ncuts", *_args(tiny_bsds, out)]) == 0
    run = out / "tiny"
    assert (run / "last.pt").is_file() and (run / "classic_ncuts.json").is_file()
    # resume to a longer schedule continues from step 2
    resume_args = [*_args(tiny_bsds, out), "--set", "train.steps=3", "--resume"]
    assert main(["train", "ncuts", *resume_args]) == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["step"] == 3 and summary["resumed_from"]
    assert summary["command"] and summary["environment"]["torch"] == torch.__version__
    eval_dir = tmp_path / "eval"
    args = _args(tiny_bsds, out)
    args[args.index("--out") + 1] = str(eval_dir)
    assert (
        main(["eval", "ncuts", "--checkpoint", str(run / "last.pt"), "--split", "val", *args]) == 0
    )
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"classic_ncuts", "frozen_feature_ncuts", "deep_ncuts"}
    # the report can name both runs: the training command and this evaluation
    assert len(metrics["commands"]) == 2 and metrics["commands"][0] == summary["command"]
    for m in metrics["methods"].values():
        assert 0 <= m["covering_ods"] <= 1 and 0 <= m["boundary_ods_f"] <= 1
    assert (eval_dir / "segmentations_val.png").is_file()


def test_bad_data_root_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "ncuts", "--data-root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err


def test_bad_config_value_is_a_clear_error(tiny_bsds, capsys):
    assert main(["train", "ncuts", "--data-root", str(tiny_bsds), "--set", "k_max=99"]) == 2
    assert "k_max" in capsys.readouterr().err


def test_corrupt_ground_truth_names_the_file_and_skip_bad_continues(tiny_bsds, tmp_path, capsys):
    bad = tiny_bsds / "data" / "groundTruth" / "train" / "1.mat"
    bad.write_bytes(b"not a mat file")
    args = _args(tiny_bsds, tmp_path / "runs")
    args[args.index("tune_images=2")] = "tune_images=1"
    assert main(["train", "ncuts", *args]) == 2
    assert "1.mat" in capsys.readouterr().err
    assert main(["train", "ncuts", *args, "--skip-bad"]) == 0
    skipped = (tmp_path / "runs" / "tiny" / "skipped.txt").read_text()
    assert "1.mat" in skipped


def test_pick_annotator_caps_segments():
    index = torch.arange(6).reshape(2, 3)
    fine = torch.tensor([[0, 1, 2], [3, 3, 3]])
    candidates = annotator_node_labels([fine], index)
    labels = pick_annotator(candidates, 2, torch.Generator().manual_seed(0))
    assert (labels == IGNORE).sum() == 2  # two singleton segments dropped
    assert set(labels[labels != IGNORE].tolist()) == {3, labels[labels != IGNORE][0].item()}
