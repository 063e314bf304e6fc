"""Config loading (TOML/YAML), overrides and validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest

from matbackprop.errors import ConfigError
from matbackprop.train import (
    Check,
    OptimConfig,
    Pattern,
    Range,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
    validate_fields,
)

TOML = """
name = "seg"
steps = 250
batch_size = 4
grad_clip = 1.5
skip_bad = true

[optim]
name = "sgd"
lr = 0.05
momentum = 0.8
betas = [0.8, 0.9]

[schedule]
name = "step"
step_size = 100
gamma = 0.5
warmup_steps = 10
"""

YAML = """
name: seg
epochs: 2.5
out_dir: /tmp/somewhere
optim:
  name: adamw
  lr: 3.0e-4
  weight_decay: 0.05
schedule: {name: cosine, min_lr_ratio: 0.1}
eval_every: null
progress: false
"""


def test_load_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    cfg = load_config(path)
    assert isinstance(cfg, TrainConfig)
    assert (cfg.name, cfg.steps, cfg.epochs, cfg.batch_size) == ("seg", 250, None, 4)
    assert cfg.grad_clip == 1.5 and cfg.skip_bad is True
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.05 and cfg.optim.momentum == 0.8
    assert cfg.optim.betas == (0.8, 0.9)
    assert (cfg.schedule.name, cfg.schedule.step_size, cfg.schedule.gamma) == ("step", 100, 0.5)
    assert cfg.checkpoint_every == TrainConfig().checkpoint_every  # default kept
    assert cfg.run_dir == Path("runs") / "seg"


def test_load_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(YAML)
    cfg = load_config(path)
    assert cfg.epochs == 2.5 and cfg.steps is None
    assert cfg.out_dir == Path("/tmp/somewhere")
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.optim.weight_decay == 0.05
    assert cfg.schedule.name == "cosine" and cfg.schedule.min_lr_ratio == 0.1
    assert cfg.progress is False and cfg.eval_every is None


def test_empty_yaml_gives_defaults(tmp_path):
    path = tmp_path / "empty.yml"
    path.write_text("")
    assert load_config(path) == TrainConfig()


def test_overrides_convert_by_field_type():
    cfg = TrainConfig(steps=10)
    new = apply_overrides(
        cfg,
        [
            "optim.lr=0.01",
            "steps=none",
            "epochs=3",
            "skip_bad=yes",
            "grad_clip=2",
            "optim.betas=[0.5, 0.6]",
            "schedule.name=cosine",
            "progress=null",
            "name=my-run_2",
            "out_dir=/x/y",
        ],
    )
    assert cfg.optim.lr == 1e-3 and cfg.steps == 10  # original untouched
    assert new.optim.lr == 0.01 and isinstance(new.optim.lr, float)
    assert new.steps is None and new.epochs == 3.0
    assert new.skip_bad is True and new.grad_clip == 2.0
    assert new.optim.betas == (0.5, 0.6) and new.schedule.name == "cosine"
    assert new.progress is None and new.name == "my-run_2" and new.out_dir == Path("/x/y")
    assert apply_overrides(new, ["optim.betas=0.1,0.2"]).optim.betas == (0.1, 0.2)
    seeded = apply_overrides(new, ["seeds=0,1,2"])
    assert seeded.seeds == [0, 1, 2] and apply_overrides(seeded, ["seeds=none"]).seeds is None
    assert apply_overrides(new, ["seeds=[7]"]).seeds == [7]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("optim.lrr=0.1", r"unknown config key `optim.lrr`.*valid keys in `optim`: name, lr"),
        ("stepz=3", r"unknown config key `stepz`"),
        ("steps=ten", r"`steps` must be int or None"),
        ("steps=1.5", r"`steps` must be int or None"),
        ("skip_bad=maybe", r"`skip_bad` must be a bool"),
        ("optim.name=adam", r"`optim.name` must be one of \['adamw', 'sgd'\]"),
        ("optim.lr=-1", r"`optim.lr` must be > 0"),
        ("optim.lr=nan", r"`optim.lr` must be finite"),
        ("optim=3", r"`optim` is a section"),
        ("steps.x=3", r"`steps` is not a section"),
        ("optim.betas=0.9", r"`optim.betas` must have 2 items"),
        ("epochs=2", r"set only one of `steps` \(5\) and `epochs`"),
        ("no_equals_sign", r"key=value"),
        ("name=a/b", r"`name` must be a non-empty file name"),
        ("device=gpu", r"`device` must be"),
        ("seeds=[]", r"`seeds` must list at least one seed"),
        ("seeds=0,1,0", r"`seeds` must not repeat a seed"),
        ("seeds=x", r"`seeds` must be list or None"),
    ],
)
def test_override_errors(override, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(TrainConfig(steps=5), [override])


def test_file_errors(tmp_path):
    bad_key = tmp_path / "k.toml"
    bad_key.write_text("[optim]\nlearning_rate = 0.1\n")
    with pytest.raises(ValueError, match=r"k.toml: unknown config key `optim.learning_rate`"):
        load_config(bad_key)
    bad_type = tmp_path / "t.yaml"
    bad_type.write_text("batch_size: '8'\n")
    with pytest.raises(ValueError, match=r"`batch_size` must be an int, got '8'"):
        load_config(bad_type)
    bool_for_int = tmp_path / "b.yaml"
    bool_for_int.write_text("steps: true\n")
    with pytest.raises(ValueError, match=r"`steps` must be int or None"):
        load_config(bool_for_int)
    not_mapping = tmp_path / "l.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(not_mapping)
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ValueError, match="cannot parse"):
        load_config(broken)
    other = tmp_path / "c.json"
    other.write_text("{}")
    with pytest.raises(ValueError, match=r"\.toml, \.yaml or \.yml"):
        load_config(other)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


def test_load_with_overrides_and_roundtrip(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    cfg = load_config(path, overrides=["optim.lr=0.5", "schedule.gamma=0.25"])
    assert cfg.optim.lr == 0.5 and cfg.schedule.gamma == 0.25
    save_config(cfg, tmp_path / "copy.yaml")
    assert load_config(tmp_path / "copy.yaml") == cfg
    assert config_from_dict(TrainConfig, config_to_dict(cfg)) == cfg


def test_constructor_validates_and_converts():
    cfg = TrainConfig(optim={"lr": 1}, out_dir="here")
    assert isinstance(cfg.optim, OptimConfig) and cfg.optim.lr == 1.0
    assert cfg.out_dir == Path("here")
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="`optim.momentum` must be in"):
        OptimConfig(momentum=1.0)


@dataclass
class ModelSection:
    widths: tuple[int, ...] = (32, 64)
    backbone: str = "vgg"


@dataclass
class Experiment:
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelSection = field(default_factory=ModelSection)
    tags: list[str] = field(default_factory=list)


def test_generic_experiment_dataclass(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train: {steps: 7, optim: {lr: 0.2}}\nmodel: {widths: [8, 16, 24]}\n")
    exp = load_config(path, Experiment, overrides=["model.backbone=lite0", "tags=a,b"])
    assert exp.train.steps == 7 and exp.train.optim.lr == 0.2
    assert exp.model.widths == (8, 16, 24) and exp.model.backbone == "lite0"
    assert exp.tags == ["a", "b"]
    with pytest.raises(ValueError, match=r"unknown config key `train.optim.momentun`"):
        apply_overrides(exp, ["train.optim.momentun=0.5"])
    with pytest.raises(ValueError, match=r"`model.widths\[1\]` must be an int"):
        apply_overrides(exp, ["model.widths=1,x"])


def _even(value: int) -> bool:
    if value % 2:
        raise ValueError("odd")
    return True


@dataclass(frozen=True)
class Section:
    fraction: Annotated[float, Range(ge=0, lt=1)] = 0.5
    positive: Annotated[int | None, Range(gt=0)] = None
    at_most: Annotated[float, Range(le=2)] = 1.0
    word: Annotated[str, Pattern(r"[a-z]+", "lower-case letters")] = "abc"
    even: Annotated[int, Check(_even, "an even int")] = 2

    def __post_init__(self) -> None:
        validate_fields(self, prefix="section.")


@dataclass
class Outer:
    section: Section = field(default_factory=Section)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("section.fraction=1", r"`section.fraction` must be in \[0, 1\), got 1.0"),
        ("section.fraction=-0.1", r"`section.fraction` must be in \[0, 1\)"),
        ("section.positive=0", r"`section.positive` must be > 0, got 0"),  # not "int or None"
        ("section.positive=x", r"`section.positive` must be int or None"),
        ("section.at_most=2.5", r"`section.at_most` must be <= 2, got 2.5"),
        ("section.word=Abc", r"`section.word` must be lower-case letters, got 'Abc'"),
        ("section.even=3", r"`section.even` must be an even int, got 3"),
    ],
)
def test_annotated_constraints_name_the_dotted_key(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Outer(), [override])


def test_annotated_constraints_accept_their_bounds_and_check_direct_construction():
    ok = apply_overrides(
        Outer(), ["section.fraction=0", "section.positive=none", "section.at_most=2"]
    )
    assert ok.section.fraction == 0.0 and ok.section.positive is None
    assert apply_overrides(Outer(), ["section.fraction=0.999"]).section.fraction == 0.999
    with pytest.raises(ConfigError, match="`section.even` must be an even int"):
        Section(even=5)  # the constructor runs the same validator (frozen dataclass too)
    with pytest.raises(ConfigError, match="`section.fraction` must be a float"):
        Section(fraction="half")
