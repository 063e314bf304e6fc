"""`matbackprop train|eval ncuts` end to end on a tiny BSDS-layout fixture (conftest.py)."""

from __future__ import annotations

import json

import torch

from matbackprop.cli import main


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
    record = json.loads((run / "run.json").read_text())  # the run's record (RunRecord)
    summary = record["methods"]["deep_ncuts"]
    assert summary["step"] == 3 and summary["resumed_from"]
    assert record["commands"][-1]["shell"] and record["environment"]["torch"] == torch.__version__
    eval_dir = tmp_path / "eval"
    args = _args(tiny_bsds, out)
    args[args.index("--out") + 1] = str(eval_dir)
    assert (
        main(["eval", "ncuts", "--checkpoint", str(run / "last.pt"), "--split", "val", *args]) == 0
    )
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"classic_ncuts", "frozen_feature_ncuts", "deep_ncuts"}
    # the report can name every command of the run: both training calls and this evaluation
    assert len(metrics["commands"]) == 3 and metrics["commands"][:2] == record["commands"]
    assert [c["command"] for c in metrics["commands"]] == ["train", "train", "eval"]
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
