"""The o2p task (train / evaluate / CLI) on a tiny COCO tree (tests/tasks/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from matbackprop.cli import main
from matbackprop.data import RegionItems
from matbackprop.tasks import o2p as task
from matbackprop.train import RunRecord, apply_overrides, config_from_dict, load_checkpoint

TINY = [
    "train.name=tiny",
    "train.steps=2",
    "train.batch_size=2",
    "train.checkpoint_every=1",
    "train.log_every=1",
    "train.device=cpu",
    "train.schedule.warmup_steps=0",
    "image_size=64",
    "min_area=20",
    "model.pretrained=false",
    "model.trainable=last-1",
    "model.reduce_dim=8",
    "model.eps=0.1",
    "figure_images=2",
    "eval_batch_size=2",
]


def tiny_config(coco, out: Path, *extra: str) -> task.Config:
    overrides = [f"data_root={coco.root}", f"train.out_dir={out}", *TINY, *extra]
    return apply_overrides(config_from_dict(task.Config, {}), overrides)


@pytest.fixture(scope="module")
def trained(coco_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    config = tiny_config(coco_tiny, out)
    summary = task.train(config, resume=False)
    return config, summary


# ------------------------------------------------------------------ train


def test_train_writes_one_run_per_method(trained):
    config, summary = trained
    run_dir = config.train.out_dir / "tiny"
    assert summary.run_dir == str(run_dir) and not summary.interrupted
    assert list(summary.methods) == list(task.METHODS)
    for method in task.METHODS:
        folder = run_dir / method
        assert (folder / "config.yaml").is_file()
        state = load_checkpoint(folder / "last.pt")
        assert state["step"] == 2
        assert state["config"]["methods"] == [method]
        records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records if r["event"] == "train"] == [1, 2]
        assert all(np.isfinite(r["loss"]) for r in records if r["event"] == "train")
    # the run's record (run.json) names the train call, its methods and its wall time
    saved = RunRecord.load(run_dir / "run.json")
    (record,) = saved.commands
    assert record.command == "train" and isinstance(record.argv, list)
    assert set(saved.methods) == set(task.METHODS) and record.wall_time > 0


def test_o2p_trains_only_the_classifier_and_deepo2p_the_backbone(trained):
    config, _ = trained
    run_dir = config.train.out_dir / "tiny"
    torch.manual_seed(config.train.seed)  # the trainer seeds like this before building
    initial = task.build_model(config, "o2p", num_classes=3).state_dict()
    o2p = load_checkpoint(run_dir / "o2p" / "last.pt")["model"]
    last = "backbone.blocks.10.project.conv.weight"
    first = "backbone.blocks.0.depthwise.conv.weight"
    torch.testing.assert_close(o2p[last], initial[last])
    torch.testing.assert_close(o2p["reduce.weight"], initial["reduce.weight"])
    assert not torch.equal(o2p["classifier.weight"], initial["classifier.weight"])
    for method in ("deepo2p", "deepo2p_sqrt"):  # fine-tuned through logm / sqrtm
        deep = load_checkpoint(run_dir / method / "last.pt")["model"]
        assert not torch.equal(deep[last], initial[last])
        torch.testing.assert_close(deep[first], initial[first])


def test_the_sqrt_method_pools_with_the_matrix_square_root(coco_tiny):
    config = tiny_config(coco_tiny, Path("unused"))
    models = {m: task.build_model(config, m, num_classes=3) for m in task.METHODS}
    assert models["avg"].pool is None
    assert {m: models[m].pool.options.normalization for m in task.METHODS[1:]} == {
        "o2p": "log",
        "deepo2p": "log",
        "deepo2p_sqrt": "sqrt",
    }
    trainable = {m: any(p.requires_grad for p in models[m].backbone.parameters()) for m in models}
    assert trainable == {"avg": True, "o2p": False, "deepo2p": True, "deepo2p_sqrt": True}


def test_resume_continues_every_method_and_holdout_eval(coco_tiny, tmp_path):
    config = tiny_config(coco_tiny, tmp_path, "holdout_images=1", "train.eval_every=1")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        task.train(config, resume=True)
    task.train(config)
    longer = tiny_config(
        coco_tiny, tmp_path, "holdout_images=1", "train.eval_every=1", "train.steps=3"
    )
    summary = task.train(longer, resume=True)
    for method in task.METHODS:
        assert summary.methods[method]["resumed_from"] == 2
        assert summary.methods[method]["step"] == 3
        assert load_checkpoint(tmp_path / "tiny" / method / "last.pt")["step"] == 3
        log = (tmp_path / "tiny" / method / "metrics.jsonl").read_text()
        records = [json.loads(x) for x in log.splitlines()]
        evals = [r for r in records if r["event"] == "eval"]
        assert [r["step"] for r in evals] == [1, 2, 3]
        assert 0 <= evals[-1]["metrics"]["holdout_accuracy"] <= 1
    commands = RunRecord.load(tmp_path / "tiny" / "run.json").commands
    assert [c.details["resume"] for c in commands] == [False, True]

    result = task.evaluate(
        longer, checkpoint=tmp_path / "tiny", split="holdout", out_dir=tmp_path / "eval"
    )
    assert result.split == "holdout" and result.details["images"] == 1
    assert all(m["step"] == 3 for m in result.methods.values())


# ------------------------------------------------------------------ evaluate


def test_evaluate_writes_metrics_and_picture(trained, coco_tiny, tmp_path):
    from PIL import Image

    config, _ = trained
    checkpoint = config.train.out_dir / "tiny" / "deepo2p" / "last.pt"
    result = task.evaluate(config, checkpoint=checkpoint, split=None, out_dir=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["task"] == "o2p" and saved["split"] == "val2017"
    assert list(saved["methods"]) == list(task.METHODS)
    for entry in saved["methods"].values():
        assert 0 <= entry["accuracy"] <= 1 and 0 <= entry["mean_class_accuracy"] <= 1
        assert entry["num_regions"] == coco_tiny.val_regions and entry["step"] == 2
    assert saved["config"]["image_size"] == 64
    assert [c["command"] for c in saved["commands"]] == ["train", "eval"]
    assert all(isinstance(c["argv"], list) and c["wall_time"] > 0 for c in saved["commands"])
    assert result.methods == saved["methods"]
    # every region's label, image and predicted class, from which the scores follow
    regions = np.load(tmp_path / "regions.npz")
    assert regions["labels"].shape == regions["image_ids"].shape == (coco_tiny.val_regions,)
    assert sorted(set(regions["image_ids"].tolist())) == [11, 12]
    for method in task.METHODS:
        correct = regions[f"predicted_{method}"] == regions["labels"]
        assert correct.mean() == pytest.approx(saved["methods"][method]["accuracy"])
    # deepo2p − each other method, both metrics, with a bootstrap interval over the 2 images
    comparisons = {(c["baseline"], c["metric"]): c for c in saved["comparisons"]}
    assert set(comparisons) == {
        (b, m) for b in ("avg", "o2p", "deepo2p_sqrt") for m in ("accuracy", "mean_class_accuracy")
    }
    for (baseline, metric), c in comparisons.items():
        expected = saved["methods"]["deepo2p"][metric] - saved["methods"][baseline][metric]
        assert c["method"] == "deepo2p" and c["difference"] == pytest.approx(expected)
        assert c["low"] <= c["difference"] <= c["high"] and c["clusters"] == 2
        assert (c["seeds"], c["confidence"], c["resamples"]) == (1, 0.95, 10_000)
    with Image.open(tmp_path / "predictions.png") as picture:
        assert picture.width > 3 * 48 and picture.height > 2 * 48


def test_evaluate_one_method_and_checkpoint_errors(trained, tmp_path):
    config, _ = trained
    run_dir = config.train.out_dir / "tiny"
    one = apply_overrides(config, ["methods=o2p", "figure_images=0"])
    result = task.evaluate(one, checkpoint=run_dir / "o2p" / "last.pt", out_dir=tmp_path)
    assert list(result.methods) == ["o2p"] and result.figures == []
    with pytest.raises(ValueError, match="is a 'avg' checkpoint"):
        task.evaluate(one, checkpoint=run_dir / "avg" / "last.pt", out_dir=tmp_path)
    with pytest.raises(ValueError, match="method folder"):
        task.evaluate(config, checkpoint=run_dir / "run.json", out_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="missing checkpoint"):
        task.evaluate(config, checkpoint=tmp_path, out_dir=tmp_path)
    with pytest.raises(ValueError, match="holdout_images"):
        task.evaluate(config, checkpoint=run_dir, split="holdout", out_dir=tmp_path)
    with pytest.raises(ValueError, match="`split`"):
        task.evaluate(config, checkpoint=run_dir, split="a/b", out_dir=tmp_path)


# ------------------------------------------------------------------ several seeds


def test_seeds_run_once_per_seed_and_combine(trained, coco_tiny, tmp_path):
    """``train.seeds``: one run folder per seed, each the run a single ``train.seed`` gives,
    and a combined record (each seed's values, mean ± std, n) for train and evaluate."""
    config, _ = trained
    methods = ["methods=avg,deepo2p", "figure_images=0"]
    seeded = tiny_config(coco_tiny, tmp_path, "train.seeds=0,3", *methods)
    summary = task.train(seeded)
    run_dir = tmp_path / "tiny"
    assert summary.seeds == [0, 3] and not summary.interrupted
    assert set(summary.per_seed["deepo2p"]) == {"0", "3"}
    saved = RunRecord.load(run_dir / "run.json")
    assert (saved.per_seed, saved.aggregate) == (summary.per_seed, summary.aggregate)
    for seed in (0, 3):
        own = RunRecord.load(run_dir / f"seed_{seed}" / "run.json")
        assert own.seeds == [] and own.config["train"]["seed"] == seed
        assert summary.per_seed["avg"][str(seed)] == own.methods["avg"]
    # seed 0 of the seeded run is the single run with seed 0 (the module's `trained` run)
    single = load_checkpoint(config.train.out_dir / "tiny" / "deepo2p" / "last.pt")["model"]
    seed0 = load_checkpoint(run_dir / "seed_0" / "deepo2p" / "last.pt")["model"]
    seed3 = load_checkpoint(run_dir / "seed_3" / "deepo2p" / "last.pt")["model"]
    torch.testing.assert_close(seed0, single)
    assert not torch.equal(seed3["classifier.weight"], seed0["classifier.weight"])

    with pytest.raises(ValueError, match="must be the run folder"):
        task.evaluate(seeded, checkpoint=run_dir / "seed_0" / "avg" / "last.pt")
    result = task.evaluate(seeded, out_dir=tmp_path / "eval")
    saved = RunRecord.load(tmp_path / "eval" / "metrics.json")
    assert (saved.methods, saved.per_seed, saved.seeds) == (result.methods, result.per_seed, [0, 3])
    assert result.seeds == [0, 3] and list(result.methods) == ["avg", "deepo2p"]
    per_seed = {s: RunRecord.load(tmp_path / "eval" / f"seed_{s}" / "metrics.json") for s in (0, 3)}
    for method in ("avg", "deepo2p"):
        values = [per_seed[s].methods[method]["accuracy"] for s in (0, 3)]
        spread = result.aggregate[method]["accuracy"]
        assert spread["n"] == 2 and spread["mean"] == pytest.approx(np.mean(values))
        assert spread["std"] == pytest.approx(np.std(values, ddof=1))
        assert result.per_seed[method]["3"] == per_seed[3].methods[method]
    assert [c.command for c in result.commands] == ["train", "eval"]
    # the intervals are those of the seed-averaged difference: their centre is the difference
    # of the means over the seeds
    assert {(c["baseline"], c["metric"]) for c in result.comparisons} == {
        ("avg", "accuracy"),
        ("avg", "mean_class_accuracy"),
    }
    for c in result.comparisons:
        means = {m: result.methods[m][c["metric"]] for m in ("deepo2p", "avg")}
        assert c["difference"] == pytest.approx(means["deepo2p"] - means["avg"])
        assert c["seeds"] == 2 and c["low"] <= c["difference"] <= c["high"]
    assert "region_predictions" not in result.details  # one file per seed
    assert saved.comparisons == result.comparisons

    resumed = task.train(
        tiny_config(coco_tiny, tmp_path, "train.seeds=0,3,5", "train.steps=3", *methods),
        resume=True,
    )
    assert resumed.per_seed["avg"]["3"]["resumed_from"] == 2
    assert resumed.per_seed["avg"]["5"]["resumed_from"] is None  # a new seed starts fresh
    with pytest.raises(FileNotFoundError, match="no seed folder"):
        task.train(tiny_config(coco_tiny, tmp_path / "none", "train.seeds=1"), resume=True)


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("methods=avg,fancy", "unknown method"),
        ("methods=avg,avg", "repeat"),
        ("methods=[]", "non-empty"),
        ("image_size=16", "`image_size`"),
        ("min_area=-1", "`min_area`"),
        ("class_balance=2", "`class_balance`"),
        ("holdout_images=-1", "`holdout_images`"),
        ("eval_split=a/b", "`eval_split`"),
        ("train_split=holdout", "`train_split`"),
        ("model.output_stride=4", "`model.output_stride`"),
        ("model.trainable=some", "`model.trainable`"),
        ("model.eps=0", "`model.eps`"),
        ("model.descriptor_norm=layer", "model.descriptor_norm"),
        ("compare_method=best", "`compare_method`"),
        ("confidence=1", "`confidence`"),
        ("bootstrap_resamples=0", "`bootstrap_resamples`"),
        ("nonsense=1", "unknown config key"),
    ],
)
def test_config_validation(override, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(config_from_dict(task.Config, {}), [override])


def test_class_weights_favour_rare_classes(coco_tiny):
    from matbackprop.tasks._regions import class_weights

    config = tiny_config(coco_tiny, Path("unused"))
    dataset = task.train_data(config)
    assert isinstance(dataset, RegionItems) and dataset.hflip
    counts = dataset.label_counts()
    assert counts.tolist() == [2, 2, 2]  # person, car, dog (tiny and crowd skipped)
    assert class_weights(dataset, 0.0) is None
    dataset.indices = [0, 1]  # images 1 and 2: person x2, car x1, dog x1
    weights = class_weights(dataset, 1.0)
    counts = torch.tensor([2.0, 1.0, 1.0])
    torch.testing.assert_close((weights * counts).sum() / counts.sum(), torch.tensor(1.0))
    assert weights[1] == weights[2] > weights[0]


# ------------------------------------------------------------------ CLI


def test_cli_train_and_eval(coco_tiny, tmp_path, capsys):
    common = ["--data-root", str(coco_tiny.root)]
    sets = [x for item in TINY for x in ("--set", item)] + ["--set", "train.name=cli"]
    assert main(["train", "o2p", *common, "--out", str(tmp_path), *sets]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["task"] == "o2p" and set(summary["methods"]) == set(task.METHODS)
    checkpoint = tmp_path / "cli" / "avg" / "last.pt"
    args = ["eval", "o2p", "--checkpoint", str(checkpoint), *common, *sets]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["methods"]["deepo2p"]["num_regions"] == coco_tiny.val_regions
    assert main(["train", "o2p", *common, "--set", "methods=fancy"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_cli_seeds_and_report(coco_tiny, tmp_path, capsys):
    common = ["--data-root", str(coco_tiny.root), "--seeds", "1,2"]
    sets = [x for item in TINY for x in ("--set", item)]
    sets += ["--set", "methods=o2p", "--set", "figure_images=0"]
    assert main(["train", "o2p", *common, "--out", str(tmp_path), *sets]) == 0
    assert json.loads(capsys.readouterr().out)["seeds"] == [1, 2]
    args = ["eval", "o2p", "--checkpoint", str(tmp_path / "tiny"), *common, *sets]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    report = tmp_path / "report.md"
    assert main(["report", str(tmp_path / "eval" / "metrics.json"), "--output", str(report)]) == 0
    text = report.read_text()
    record = RunRecord.load(tmp_path / "eval" / "metrics.json")
    mean, std = (record.aggregate["o2p"]["accuracy"][k] for k in ("mean", "std"))
    assert "over 2 seeds (1, 2)" in text and f"| o2p | {mean:.3f} ± {std:.3f} |" in text
    runs = record.per_seed["o2p"]
    assert f"| o2p | {runs['1']['accuracy']:.3f}, {runs['2']['accuracy']:.3f} |" in text


def test_region_predictions_files_and_comparison_errors(tmp_path):
    from matbackprop.errors import DataFileError
    from matbackprop.tasks._regions import (
        bootstrap_comparisons,
        read_region_predictions,
        save_region_predictions,
    )

    labels, images = torch.tensor([0, 1, 1, 2]), torch.tensor([5, 5, 9, 9])
    path = save_region_predictions(
        tmp_path / "r.npz", labels, images, {"a": torch.tensor([0, 1, 0, 2]), "b": labels}
    )
    run = read_region_predictions(path)
    assert run["predicted_a"].tolist() == [0, 1, 0, 2] and run["image_ids"].tolist() == [5, 5, 9, 9]
    kw = {"split": "val", "n_resamples": 50, "confidence": 0.9, "seed": 0}
    (acc, mca) = bootstrap_comparisons([run], "a", ["a", "b"], **kw)
    assert (acc["metric"], acc["difference"]) == ("accuracy", pytest.approx(-0.25))
    assert mca["difference"] == pytest.approx((1 + 1 + 0.5) / 3 - 1)
    assert "over the 2 val images" in acc["procedure"]
    assert bootstrap_comparisons([run], "c", ["a", "b"], **kw) == []  # not evaluated
    other = {**run, "labels": np.array([0, 1, 1, 1])}
    with pytest.raises(ValueError, match="same regions"):
        bootstrap_comparisons([run, other], "a", ["a", "b"], **kw)
    with pytest.raises(FileNotFoundError):
        read_region_predictions(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFileError):
        read_region_predictions(tmp_path / "bad.npz")
