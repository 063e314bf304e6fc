"""`matbackprop segment`, shipped weights and their export (tasks._pretrained, _segment_images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from matbackprop.cli import main
from matbackprop.data import load_bsds_result
from matbackprop.tasks import (
    available_pretrained,
    export_pretrained,
    find_images,
    load_pretrained,
    load_trained,
    segment_image,
    segment_images,
)
from matbackprop.tasks.ncuts import Config, build_model
from matbackprop.train import config_to_dict


@pytest.fixture(scope="module")
def model():
    return load_pretrained("deepncuts-bsds500")


@pytest.fixture
def photos(tmp_path):
    """Two small photos (PNG, JPEG) with three flat regions each, and a broken file."""
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in (("a.png", (40, 64)), ("b.jpg", (50, 30))):
        array = np.zeros((h, w, 3), np.uint8)
        array[:, : w // 2] = (200, 40, 40)
        array[:, w // 2 :] = (30, 160, 60)
        array[h // 2 :, w // 3 :] = (20, 30, 200)
        noisy = array + rng.integers(0, 6, array.shape, dtype=np.uint8)
        Image.fromarray(noisy).save(folder / name)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_the_shipped_weights_are_listed_with_their_provenance():
    from matbackprop.tasks._pretrained import PRETRAINED_DIR

    assert "deepncuts-bsds500" in available_pretrained()
    meta = load_pretrained("deepncuts-bsds500").pretrained_info.metadata
    assert meta["task"] == "ncuts" and meta["method"] == "deep_ncuts"
    assert meta["training_commands"] and "matbackprop" in meta["training_commands"][0]
    assert " train ncuts " in meta["training_commands"][0]
    assert meta["evaluation_split"] == "val" and 0 < meta["scores"]["covering_ods"] < 1
    assert 0 < meta["default_threshold"] < 1
    # the encoder is the frozen ImageNet backbone: only the trained head is stored
    delta = torch.load(PRETRAINED_DIR / meta["weights"]["file"], weights_only=True)
    assert delta["tensors"] and all(key.startswith("head.") for key in delta["tensors"])
    assert meta["weights"]["stored_parameters"] < meta["weights"]["total_parameters"] / 10


def _assert_hierarchy(result, size):
    from matbackprop.nn.functional import ucm2_levels

    h, w = size
    assert tuple(result.ucm2.shape) == (2 * h + 1, 2 * w + 1)
    assert 0 <= float(result.ucm2.min()) and float(result.ucm2.max()) <= 1
    assert all(tuple(level.shape) == size for level in result.levels)
    counts = [int(torch.unique(level).numel()) for level in result.levels]
    assert counts == sorted(counts) and counts[-1] > counts[0]  # coarse to fine
    assert result.thresholds == sorted(result.thresholds, reverse=True)
    thresholds, levels = ucm2_levels(result.ucm2)  # the levels are the ucm2's own
    assert thresholds == result.thresholds
    assert all(torch.equal(a, b) for a, b in zip(levels, result.levels, strict=True))


def test_segment_image_gives_a_full_resolution_hierarchy(model):
    torch.manual_seed(0)
    image = torch.rand(3, 70, 45)
    image[:, :, 20:] *= 0.3
    _assert_hierarchy(segment_image(model, image), (70, 45))


def test_max_size_shrinks_what_the_network_sees_not_the_outputs(model):
    torch.manual_seed(1)
    image = torch.rand(3, 90, 120)
    image[:, 40:] = image[:, 40:] * 0.2 + 0.7
    result = segment_image(model, image, max_size=48)
    _assert_hierarchy(result, (90, 120))
    # every level is a union of the shrunk image's superpixels, enlarged (nearest)
    from matbackprop.data import keep_aspect_size, resize_image, resize_labels

    small = resize_image(image, keep_aspect_size(90, 120, max_side=48)).clamp(0, 1)
    nodes = model.pretrained_info.config.nodes.node_index(small)
    cells = resize_labels(nodes, (90, 120)).flatten()
    for level in result.levels:
        pairs = torch.unique(torch.stack([cells, level.flatten()]), dim=1)
        assert pairs.shape[1] == torch.unique(cells).numel()  # one label per enlarged cell
    with pytest.raises(ValueError, match="max_size"):
        segment_image(model, image, max_size=4)


def test_segment_writes_the_three_outputs(model, photos, tmp_path):
    from PIL import Image

    out = tmp_path / "out"
    summary = segment_images(model, [photos], out, threshold=0.0, progress=False)
    assert sorted(summary.written) == ["a.png", "b.jpg"]
    result = load_bsds_result(out / "a.mat")
    assert result["ucm2"].shape == (81, 129) and result["ucm2"].dtype == np.float64
    segs = result["segs"]
    assert len(segs) >= 2
    assert all(s.dtype == np.uint16 and s.shape == (40, 64) and s.min() == 1 for s in segs)
    with Image.open(out / "a.png") as png:
        assert png.mode.startswith("I;16") or png.mode == "I"
        labels = np.asarray(png).astype(np.int64)
    assert np.array_equal(labels, segs[-1].astype(np.int64))  # threshold 0: the finest level
    with Image.open(out / "b_overlay.png") as overlay:
        assert overlay.size == (30, 50) and overlay.mode == "RGB"
    assert not list(out.glob(".*"))  # no temporary files left
    assert "segmented 2 images" in summary.line(out)


def test_the_default_level_is_the_validation_ods_threshold(model, photos, tmp_path):
    from PIL import Image

    from matbackprop.nn.functional import ucm2_segmentation

    summary = segment_images(model, [photos / "a.png"], tmp_path / "o", progress=False)
    threshold = model.pretrained_info.default_threshold
    assert threshold is not None
    ucm2 = torch.from_numpy(load_bsds_result(summary.written["a.png"][0])["ucm2"])
    expected = ucm2_segmentation(ucm2, threshold).numpy()  # the benchmark's cut at t
    with Image.open(tmp_path / "o" / "a.png") as png:
        labels = np.asarray(png).astype(np.int64)
    # the same partition (labels may be numbered differently)
    pairs = np.unique(np.stack([labels.ravel(), expected.ravel()]), axis=1)
    assert pairs.shape[1] == len(np.unique(labels)) == len(np.unique(expected))


def test_a_bad_file_is_named_and_earlier_outputs_stay(model, photos, tmp_path):
    from matbackprop.errors import DataFileError

    out = tmp_path / "out"
    inputs = [photos / "a.png", tmp_path / "broken.png", photos / "b.jpg"]
    with pytest.raises(DataFileError, match="broken.png") as error:
        segment_images(model, inputs, out, progress=False)
    assert "1 image before it" in str(error.value)
    assert sorted(p.name for p in out.iterdir()) == ["a.mat", "a.png", "a_overlay.png"]
    summary = segment_images(model, inputs, out, skip_bad=True, progress=False)
    assert sorted(summary.written) == ["a.png", "b.jpg"]
    assert [p.name for p, _ in summary.skipped] == ["broken.png"]
    assert "broken.png" in summary.line(out)


def test_a_failure_while_writing_keeps_the_previous_outputs(model, photos, tmp_path, monkeypatch):
    import matbackprop.tasks._segment_images as seg

    out = tmp_path / "out"
    segment_images(model, [photos / "a.png"], out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(path, **_):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(seg, "save_bsds_result", fail)
    with pytest.raises(OSError, match="disk full"):
        segment_images(model, [photos / "a.png"], out, threshold=0.9, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, no temp file


def test_find_images(photos, tmp_path):
    assert [p.name for p in find_images([photos])] == ["a.png", "b.jpg"]
    with pytest.raises(FileNotFoundError, match="nothere"):
        find_images([tmp_path / "nothere.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .jpg"):
        find_images([tmp_path / "empty"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.jpg").write_bytes((photos / "b.jpg").read_bytes())
    with pytest.raises(ValueError, match="same outputs"):
        find_images([photos, tmp_path / "other"])


def test_export_then_load_reproduces_the_checkpoint_model(tmp_path):
    """A checkpoint of `train ncuts` (``<run>/deep_ncuts/last.pt``) -> export (delta: the head
    only) -> load_pretrained: the same tensors, and load_trained reads the checkpoint directly."""
    config = Config(feature_dim=8, hidden=8, k=4, superpixels=30)
    trained = build_model(config, "deep_ncuts")
    torch.manual_seed(0)
    trained.head.fit_normalization(torch.randn(50, trained.encoder.out_dim))
    with torch.no_grad():
        for p in trained.head.parameters():
            p.normal_()
    folder = tmp_path / "run" / "deep_ncuts"
    folder.mkdir(parents=True)
    torch.save(
        {"config": config_to_dict(config), "model": trained.state_dict()}, folder / "last.pt"
    )
    path = export_pretrained("ncuts", folder / "last.pt", "tiny", out_dir=tmp_path / "w")
    meta = json.loads(path.read_text())
    delta = torch.load(tmp_path / "w" / "tiny.pt", weights_only=True)
    assert delta["tensors"] and all(key.startswith("head.") for key in delta["tensors"])
    assert meta["checkpoint"] == str(folder / "last.pt") and meta["default_threshold"] is None
    for loaded in (load_pretrained(path), load_trained(tmp_path / "run")):
        assert not loaded.training and loaded.pretrained_info.config.k == 4
        state = loaded.state_dict()
        for key, value in trained.state_dict().items():
            assert torch.equal(state[key], value), key


def test_cli_export_from_a_run_folder(tmp_path, capsys):
    """`matbackprop export` with a seed's run folder layout: run.json and metrics.json of
    ``seed_0/`` are found from ``seed_0/deep_ncuts/last.pt``."""
    from matbackprop.train import RunRecord

    config = Config(feature_dim=8, hidden=8, k=4, superpixels=30)
    trained = build_model(config, "deep_ncuts")
    trained.head.fit_normalization(torch.randn(40, trained.encoder.out_dim))
    seed = tmp_path / "ncuts_bsds" / "seed_0"
    (seed / "deep_ncuts").mkdir(parents=True)
    checkpoint = seed / "deep_ncuts" / "last.pt"
    torch.save({"config": config_to_dict(config), "model": trained.state_dict()}, checkpoint)
    RunRecord(task="ncuts", methods={"deep_ncuts": {"step": 1}}).save(seed / "run.json")
    per_level = [0.1] * 99
    per_level[29] = 0.6  # the ODS threshold is 30 / 100
    RunRecord(
        task="ncuts",
        split="val",
        methods={"deep_ncuts": {"covering_ods": 0.6, "covering_per_level": per_level}},
    ).save(seed / "metrics.json")
    code = main(["export", "ncuts", "--checkpoint", str(checkpoint), "--name", "mine",
                 "--out", str(tmp_path / "w")])  # fmt: skip
    assert code == 0 and "mine.pt" in capsys.readouterr().out
    meta = json.loads((tmp_path / "w" / "mine.json").read_text())
    assert meta["evaluation_split"] == "val" and meta["scores"]["covering_ods"] == 0.6
    assert meta["default_threshold"] == pytest.approx(0.30)
    assert load_pretrained(tmp_path / "w" / "mine.json").pretrained_info.default_threshold == 0.3
    code = main(["export", "ncuts", "--checkpoint", str(tmp_path / "none.pt"), "--name", "x"])
    assert code == 2 and "none.pt" in capsys.readouterr().err


def test_unknown_weights_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="deepncuts-bsds500"):
        load_pretrained("no-such-weights")


def test_cli_segment(photos, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "segment",
            str(photos),
            "--out",
            str(out),
            "--max-size",
            "40",
            "--threshold",
            "0.3",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert "segmented 2 images" in capsys.readouterr().out
    assert (out / "b.mat").is_file() and (out / "b_overlay.png").is_file()
    code = main(["segment", str(photos / "a.png"), str(tmp_path / "broken.png"), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "--skip-bad" in err and "Traceback" not in err
    code = main(["segment", str(tmp_path / "broken.png"), "--out", str(out), "--skip-bad"])
    assert code == 0 and "skipped 1" in capsys.readouterr().out
