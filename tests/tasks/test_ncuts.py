"""`matbackprop train|eval ncuts` end to end on a tiny BSDS-layout fixture (conftest.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from matbackprop.cli import main
from matbackprop.data import BSDS500, load_bsds_result
from matbackprop.metrics import aggregate_region, evaluate_ucm2
from matbackprop.tasks import get_task


def _args(root, out):
    return [
        "--data-root", str(root), "--out", str(out),
        "--set", "superpixels=30", "--set", "tune_images=2", "--set", "eval_workers=1",
        "--set", "classic_sigma_lab=[5.0,10.0]", "--set", "classic_sigma_xy=[0.05]",
        "--set", "classic_k=[4]", "--set", "k=4", "--set", "feature_dim=8", "--set", "hidden=8",
        "--set", "figure_images=2",
        "--set", "train.steps=2", "--set", "train.batch_size=2", "--set", "train.name=tiny",
        "--set", "train.checkpoint_every=1", "--set", "train.device=cpu",
    ]  # fmt: skip


@pytest.fixture
def trained(tiny_bsds, tmp_path):
    out = tmp_path / "runs"
    assert main(["train", "ncuts", *_args(tiny_bsds, out)]) == 0
    return out / "tiny"


def test_train_writes_every_method_and_resumes(trained, tiny_bsds):
    run = trained
    classic = json.loads((run / "classic_ncuts.json").read_text())
    assert len(classic["tuning"]) == 2 and classic["sigma_lab"] in (5.0, 10.0)
    for method in ("local_loss", "deep_ncuts"):
        assert (run / method / "last.pt").is_file()
    # resume to a longer schedule continues from step 2
    resume = [*_args(tiny_bsds, run.parent), "--set", "train.steps=3", "--resume"]
    assert main(["train", "ncuts", *resume]) == 0
    record = json.loads((run / "run.json").read_text())
    for method in ("local_loss", "deep_ncuts"):
        assert record["methods"][method]["step"] == 3
        assert record["methods"][method]["resumed_from"]
    assert record["details"]["seconds"]["nodes"] >= 0
    assert [c["command"] for c in record["commands"]] == ["train", "train"]


def test_classic_tuning_is_reused_only_with_the_same_decoder(trained, tiny_bsds):
    """The cached grid search is keyed by the decoder settings: another merge criterion
    re-tunes (it changes every ucm2), the same one reuses."""
    first = json.loads((trained / "classic_ncuts.json").read_text())
    assert first["grid"]["decoder"]["alpha"] == 1.0
    for name, alpha in (("other_alpha", 0.5), ("same_alpha", 1.0)):
        args = [*_args(tiny_bsds, trained.parent), "--set", "methods=[classic_ncuts]"]
        args += ["--set", f"train.name={name}", "--set", f"merge_alpha={alpha}"]
        assert main(["train", "ncuts", *args]) == 0
        tuned = json.loads((trained.parent / name / "classic_ncuts.json").read_text())
        assert tuned["grid"]["decoder"]["alpha"] == alpha
        assert (tuned == first) is (alpha == 1.0)


def test_eval_scores_all_methods_and_saves_official_results(trained, tiny_bsds, tmp_path):
    eval_dir, saved = tmp_path / "eval", tmp_path / "segs"
    args = _args(tiny_bsds, eval_dir) + ["--save-segmentations", str(saved)]
    assert main(["eval", "ncuts", "--checkpoint", str(trained), "--split", "val", *args]) == 0
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    methods = metrics["methods"]
    assert list(methods) == ["classic_ncuts", "frozen_feature_ncuts", "local_loss", "deep_ncuts"]
    for m in methods.values():
        for key in ("covering_ods", "covering_ois", "pri_ods", "boundary_ods_f", "boundary_ap"):
            assert 0 <= m[key] <= 1
        assert set(m["seconds"]) == {"spectra", "merging", "benchmark"}
    assert (eval_dir / "segmentations_val.png").is_file()
    # the saved files are the official format, and scoring their ucm2 gives the same numbers
    data = BSDS500(tiny_bsds, "val")
    for method in methods:
        evaluations = []
        for i in range(len(data)):
            sample = data[i]
            result = load_bsds_result(saved / method / f"{sample.image_id}.mat")
            segs, ucm2 = result["segs"], result["ucm2"]
            H, W = sample.image.shape[-2:]
            assert ucm2.shape == (2 * H + 1, 2 * W + 1) and 0 <= ucm2.min() <= ucm2.max() <= 1
            assert all(s.dtype == np.uint16 and s.shape == (H, W) and s.min() == 1 for s in segs)
            counts = [len(np.unique(s)) for s in segs]
            assert counts == sorted(counts)  # coarse to fine
            evaluations.append(evaluate_ucm2(ucm2, [g.numpy() for g in sample.segmentations]))
        covering = aggregate_region(evaluations).covering_ods
        assert covering == pytest.approx(methods[method]["covering_ods"], abs=1e-9)


def test_seeds_train_evaluate_and_save_without_overwriting(tiny_bsds, tmp_path):
    out, saved = tmp_path / "runs", tmp_path / "segs"
    args = [*_args(tiny_bsds, out), "--set", "methods=[classic_ncuts,deep_ncuts]", "--seeds", "0,1"]
    assert main(["train", "ncuts", *args]) == 0
    run = out / "tiny"
    assert (run / "seed_0" / "deep_ncuts" / "last.pt").is_file()
    assert (run / "seed_1" / "deep_ncuts" / "last.pt").is_file()
    eval_args = [*args[:-2], "--seeds", "0,1", "--save-segmentations", str(saved)]
    eval_args[eval_args.index("--out") + 1] = str(tmp_path / "eval")
    assert main(["eval", "ncuts", "--checkpoint", str(run), "--split", "val", *eval_args]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1]
    deep = metrics["aggregate"]["deep_ncuts"]["covering_ods"]
    per_seed = [metrics["per_seed"]["deep_ncuts"][s]["covering_ods"] for s in ("0", "1")]
    assert deep["n"] == 2 and deep["mean"] == pytest.approx(np.mean(per_seed))
    # the first seed writes DIR/<method>, the others DIR/seed_<s>/<method>
    first = sorted(p.name for p in (saved / "deep_ncuts").glob("*.mat"))
    second = sorted(p.name for p in (saved / "seed_1" / "deep_ncuts").glob("*.mat"))
    assert first and first == second


def test_save_segmentations_flag_needs_a_task_that_writes_them(tmp_path, capsys):
    code = main(["eval", "o2p", "--checkpoint", str(tmp_path), "--save-segmentations", "x"])
    assert code != 0 and "does not write segmentations" in capsys.readouterr().err


def test_any_split_in_the_official_layout(trained, tiny_bsds, tmp_path):
    """`--split test` reads data/images/test (absent from the real data: made here)."""
    import shutil

    for kind in ("images", "groundTruth"):
        shutil.copytree(tiny_bsds / "data" / kind / "val", tiny_bsds / "data" / kind / "test")
    eval_dir = tmp_path / "eval_test"
    args = _args(tiny_bsds, eval_dir) + ["--set", "methods=[classic_ncuts,deep_ncuts]"]
    assert main(["eval", "ncuts", "--checkpoint", str(trained), "--split", "test", *args]) == 0
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and list(metrics["methods"]) == [
        "classic_ncuts",
        "deep_ncuts",
    ]


def test_trained_model_segments_one_image(trained, tiny_bsds):
    """What `matbackprop segment` builds on: build_model + the checkpoint + segment_hierarchy."""
    from matbackprop.train import apply_overrides, load_model_weights

    task = get_task("ncuts")
    config = apply_overrides(task.Config(), ["superpixels=30", "k=4", "feature_dim=8", "hidden=8"])
    model = task.build_model(config, "deep_ncuts", pretrained=False)
    load_model_weights(model, trained / "deep_ncuts" / "last.pt")
    image = BSDS500(tiny_bsds, "val")[0].image
    hierarchy = model.eval().segment_hierarchy(image)
    H, W = image.shape[-2:]
    assert hierarchy.ucm2.shape == (2 * H + 1, 2 * W + 1)
    counts = [int(level.max()) + 1 for level in hierarchy.levels]
    assert counts == sorted(counts) and counts[-1] > 1


def test_objectives_differ_only_where_the_method_says(trained):
    """local_loss never runs the eigendecomposition; deep_ncuts' loss moves with the layer."""
    from matbackprop.train import apply_overrides

    task = get_task("ncuts")
    config = apply_overrides(task.Config(), ["feature_dim=8", "hidden=8", "k=4", "edge_weight=0"])
    torch.manual_seed(0)
    F = torch.rand(12, 8, dtype=torch.float64) + 0.1
    labels = torch.tensor([0] * 6 + [1] * 6)
    pairs = torch.tensor([[i, i + 1] for i in range(11)])
    model = torch.nn.Identity()
    batch = [(F, labels, pairs)]
    local, _ = task.objective(config, "local_loss")(model, batch)
    deep, parts = task.objective(config, "deep_ncuts")(model, batch)
    from matbackprop.models import bach_jordan_objective, local_objective

    torch.testing.assert_close(local, local_objective(F, pairs, labels))
    torch.testing.assert_close(deep, bach_jordan_objective(F, labels))
    assert parts["edge"] == 0.0
    edged = apply_overrides(config, ["edge_weight=0.5"])
    deep_edge, parts = task.objective(edged, "deep_ncuts")(model, batch)
    assert parts["edge"] > 0
    torch.testing.assert_close(deep_edge, deep + 0.5 * parts["edge"], rtol=1e-6, atol=1e-9)
    assert parts["local"] == 0.0
    hybrid = apply_overrides(config, ["local_weight=0.25"])
    deep_local, parts = task.objective(hybrid, "deep_ncuts")(model, batch)
    torch.testing.assert_close(deep_local, deep + 0.25 * local)
    assert parts["local"] == pytest.approx(float(local))


def test_bad_data_root_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "ncuts", "--data-root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err


def test_bad_config_value_is_a_clear_error(tiny_bsds, capsys):
    assert main(["train", "ncuts", "--data-root", str(tiny_bsds), "--set", "k=99"]) == 2
    assert "k" in capsys.readouterr().err
    assert main(["train", "ncuts", "--data-root", str(tiny_bsds), "--set", "methods=[nope]"]) == 2
    assert "methods" in capsys.readouterr().err


def test_corrupt_ground_truth_names_the_file(tiny_bsds, tmp_path, capsys):
    bad = tiny_bsds / "data" / "groundTruth" / "train" / "1.mat"
    bad.write_bytes(b"not a mat file")
    assert main(["train", "ncuts", *_args(tiny_bsds, tmp_path / "runs")]) == 2
    assert "1.mat" in capsys.readouterr().err
