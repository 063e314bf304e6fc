"""In-process tests of the Trainer: logs, checkpoints, resume, bad data, eval, schedule."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch

from matbackprop.errors import DataFileError
from matbackprop.train import (
    LRSchedule,
    ScheduleConfig,
    TrainConfig,
    Trainer,
    apply_overrides,
    build_optimizer,
    load_checkpoint,
    load_config,
    resolve_total_steps,
    seed_everything,
)


def make_config(tmp_path, **kw) -> TrainConfig:
    base = dict(
        name="t",
        out_dir=tmp_path,
        steps=12,
        batch_size=4,
        checkpoint_every=4,
        log_every=3,
        progress=False,
        device="cpu",
    )
    base.update(kw)
    cfg = TrainConfig(**base)
    return apply_overrides(
        cfg, ["optim.name=sgd", "optim.lr=0.1", "schedule.name=cosine", "schedule.warmup_steps=2"]
    )


def fresh_model(cfg, toy_model):
    seed_everything(cfg.seed)
    return toy_model()


def records(run_dir, event=None):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    out = [json.loads(line) for line in lines]
    return [r for r in out if event is None or r["event"] == event]


def params_of(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def assert_same_params(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_fit_writes_logs_checkpoint_and_config(tmp_path, toy_dataset, toy_model, toy_loss):
    cfg = make_config(tmp_path)
    model = fresh_model(cfg, toy_model)
    summary = Trainer(cfg, model, toy_dataset(), toy_loss).fit()
    run_dir = tmp_path / "t"
    assert summary["step"] == 12 and summary["total_steps"] == 12
    assert not summary["interrupted"] and summary["checkpoint"] == str(run_dir / "last.pt")
    assert math.isfinite(summary["last_loss"])
    train = records(run_dir, "train")
    assert [r["step"] for r in train] == [3, 6, 9, 12]
    for r in train:
        assert set(r) >= {"step", "loss", "lr", "metrics", "time", "epoch", "grad_norm"}
        assert 0.0 <= r["metrics"]["acc"] <= 1.0
    assert [r["step"] for r in records(run_dir, "checkpoint")] == [4, 8, 12]
    assert records(run_dir)[-1]["event"] == "end"
    state = load_checkpoint(run_dir / "last.pt")  # loads with weights_only=True
    assert state["step"] == 12 and state["reason"] == "final"
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value)
    assert load_config(run_dir / "config.yaml") == cfg
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "last.pt", "metrics.jsonl"]


def test_keep_checkpoints(tmp_path, toy_dataset, toy_model, toy_loss):
    cfg = make_config(tmp_path, steps=6, checkpoint_every=2, keep_checkpoints=True)
    Trainer(cfg, fresh_model(cfg, toy_model), toy_dataset(), toy_loss).fit()
    names = sorted(p.name for p in (tmp_path / "t").glob("*.pt"))
    assert names == ["last.pt", "step_00000002.pt", "step_00000004.pt", "step_00000006.pt"]
    assert load_checkpoint(tmp_path / "t" / "step_00000004.pt")["step"] == 4


def _signal_at(toy_loss, step_to_signal, signum=signal.SIGTERM):
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        if calls["n"] == step_to_signal:
            os.kill(os.getpid(), signum)
        return toy_loss(model, batch)

    return loss_fn


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_at_boundary_and_resume_is_exact(
    tmp_path, capsys, signum, toy_dataset, toy_model, toy_loss
):
    cfg = make_config(tmp_path / "a", checkpoint_every=100)
    reference = fresh_model(cfg, toy_model)
    Trainer(cfg, reference, toy_dataset(), toy_loss).fit()

    cfg_b = make_config(tmp_path / "b", checkpoint_every=100)
    model = fresh_model(cfg_b, toy_model)
    previous = signal.getsignal(signum)
    summary = Trainer(cfg_b, model, toy_dataset(), _signal_at(toy_loss, 5, signum)).fit()
    assert signal.getsignal(signum) is previous  # handlers restored
    assert summary["interrupted"] and summary["signal"] == signal.Signals(signum).name
    assert summary["step"] == 5
    err = capsys.readouterr().err
    assert "resume=True" in err and "step 5/12" in err
    state = load_checkpoint(tmp_path / "b" / "t" / "last.pt")
    assert state["step"] == 5 and state["reason"] == "signal"

    resumed_model = toy_model()  # different init: everything must come from the checkpoint
    summary = Trainer(cfg_b, resumed_model, toy_dataset(), toy_loss).fit(resume=True)
    assert summary["resumed_from"] == 5 and summary["step"] == 12
    assert_same_params(params_of(resumed_model), params_of(reference))
    steps = [r["step"] for r in records(tmp_path / "b" / "t", "train")]
    assert steps == [3, 6, 9, 12]


def test_resume_without_checkpoint(tmp_path, capsys, toy_dataset, toy_model, toy_loss):
    cfg = make_config(tmp_path, steps=2)
    trainer = Trainer(cfg, fresh_model(cfg, toy_model), toy_dataset(), toy_loss)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint to resume from: .*last.pt"):
        trainer.fit(resume=True)
    summary = trainer.fit(resume="auto")
    assert summary["resumed_from"] is None and summary["step"] == 2
    assert "starting a fresh run" in capsys.readouterr().err
    summary = trainer.fit(resume="auto")  # now there is one: already finished
    assert summary["resumed_from"] == 2 and summary["step"] == 2
    with pytest.raises(ValueError, match="`resume` must be"):
        trainer.fit(resume="yes")


@pytest.mark.parametrize("workers", [0, 1])
def test_bad_file_stops_with_error_after_checkpoint(
    tmp_path, workers, toy_dataset, toy_model, toy_loss
):
    cfg = make_config(tmp_path, steps=20, checkpoint_every=100, num_workers=workers)
    data = toy_dataset(n=37, bad=(17,))
    with pytest.raises(DataFileError, match="broken_17.png") as info:
        Trainer(cfg, fresh_model(cfg, toy_model), data, toy_loss).fit()
    assert str(info.value.path) == "/data/broken_17.png"
    assert "skip_bad=True" in "".join(info.value.__notes__)
    run_dir = tmp_path / "t"
    state = load_checkpoint(run_dir / "last.pt")
    assert state["reason"] == "error" and 0 <= state["step"] < 20
    stop = records(run_dir, "stop")
    assert len(stop) == 1 and "broken_17.png" in stop[0]["message"]
    # the file is "fixed": resuming continues from the checkpoint
    summary = Trainer(cfg, toy_model(), toy_dataset(n=37), toy_loss).fit(resume=True)
    assert summary["resumed_from"] == state["step"] and summary["step"] == 20


def test_skip_bad_logs_and_continues(tmp_path, toy_dataset, toy_model, toy_loss):
    cfg = make_config(tmp_path, steps=20, skip_bad=True)
    data = toy_dataset(n=37, bad=(17,))
    summary = Trainer(cfg, fresh_model(cfg, toy_model), data, toy_loss).fit()
    assert summary["step"] == 20 and summary["skipped"] >= 2  # 80 items = 2+ epochs of 37
    lines = (tmp_path / "t" / "skipped.txt").read_text().splitlines()
    assert len(lines) == summary["skipped"]
    assert all(line.startswith("/data/broken_17.png\ttruncated PNG\t") for line in lines)
    skips = records(tmp_path / "t", "skip")
    assert len(skips) == len(lines) and skips[0]["path"] == "/data/broken_17.png"


def test_eval_fn_is_called_logged_and_does_not_change_training(
    tmp_path, toy_dataset, toy_model, toy_loss
):
    cfg = make_config(tmp_path / "a", eval_every=5)
    plain = fresh_model(cfg, toy_model)
    Trainer(make_config(tmp_path / "b"), plain, toy_dataset(), toy_loss).fit()
    calls = []

    def eval_fn(model, step):
        assert not model.training and not torch.is_grad_enabled()
        calls.append(step)
        torch.rand(100)  # consumes RNG: must not leak into training
        return {"score": float(step)}

    model = fresh_model(cfg, toy_model)
    summary = Trainer(cfg, model, toy_dataset(), toy_loss, eval_fn=eval_fn).fit()
    assert calls == [5, 10, 12]
    assert summary["last_eval"] == {"score": 12.0}
    assert [r["metrics"]["score"] for r in records(tmp_path / "a" / "t", "eval")] == [5, 10, 12]
    assert_same_params(params_of(model), params_of(plain))


def _nan_at(toy_loss, step):
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss, metrics = toy_loss(model, batch)
        return (loss * float("nan") if calls["n"] == step else loss), metrics

    return loss_fn


def test_nonfinite_gradient_raise_and_skip(tmp_path, toy_dataset, toy_model, toy_loss):
    cfg = make_config(tmp_path / "a", steps=6)
    model = fresh_model(cfg, toy_model)
    with pytest.raises(FloatingPointError, match="non-finite gradient norm .* step 3"):
        Trainer(cfg, model, toy_dataset(), _nan_at(toy_loss, 3)).fit()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert load_checkpoint(tmp_path / "a" / "t" / "last.pt")["step"] == 2

    cfg = make_config(tmp_path / "b", steps=6, on_nonfinite="skip")
    model = fresh_model(cfg, toy_model)
    summary = Trainer(cfg, model, toy_dataset(), _nan_at(toy_loss, 3)).fit()
    assert summary["step"] == 6
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [r["step"] for r in records(tmp_path / "b" / "t", "nonfinite")] == [3]


def test_bad_loss_fn_results(tmp_path, toy_dataset, toy_model):
    cfg = make_config(tmp_path, steps=1)
    with pytest.raises(ValueError, match="scalar"):
        Trainer(cfg, fresh_model(cfg, toy_model), toy_dataset(), lambda m, b: m(b[0])).fit()
    with pytest.raises(ValueError, match="metric `x` must be a number"):
        bad_metric = lambda m, b: (m(b[0]).sum(), {"x": "high"})
        Trainer(cfg, fresh_model(cfg, toy_model), toy_dataset(), bad_metric).fit()
    with pytest.raises(ValueError, match="does not require grad"):
        constant = lambda m, b: torch.tensor(1.0)
        Trainer(cfg, fresh_model(cfg, toy_model), toy_dataset(), constant).fit()


def test_constructor_validation(tmp_path, toy_dataset, toy_model, toy_loss):
    cfg = make_config(tmp_path)
    model = toy_model()
    with pytest.raises(ValueError, match="`config` must be a TrainConfig"):
        Trainer({"steps": 3}, model, toy_dataset(), toy_loss)
    with pytest.raises(ValueError, match="a Trainer trains one seed"):
        Trainer(make_config(tmp_path, seeds=[0, 1]), model, toy_dataset(), toy_loss)
    with pytest.raises(ValueError, match="`model` must be a torch.nn.Module"):
        Trainer(cfg, lambda x: x, toy_dataset(), toy_loss)
    with pytest.raises(ValueError, match="map-style dataset"):
        Trainer(cfg, model, iter([1, 2]), toy_loss)
    with pytest.raises(ValueError, match="`loss_fn` must be callable"):
        Trainer(cfg, model, toy_dataset(), None)
    with pytest.raises(ValueError, match="extra_state"):
        Trainer(cfg, model, toy_dataset(), toy_loss, extra_state=object())
    no_length = make_config(tmp_path, steps=None)
    with pytest.raises(ValueError, match="exactly one of `steps` and `epochs`"):
        Trainer(no_length, model, toy_dataset(), toy_loss).fit()


def test_deterministic_flag_is_scoped(tmp_path, toy_dataset, toy_model, toy_loss):
    cfg = make_config(tmp_path, steps=2, deterministic=True)
    seen = []

    def loss_fn(model, batch):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return toy_loss(model, batch)

    before = torch.are_deterministic_algorithms_enabled()
    Trainer(cfg, fresh_model(cfg, toy_model), toy_dataset(), loss_fn).fit()
    assert seen == [True, True]
    assert torch.are_deterministic_algorithms_enabled() == before


def test_extra_state_and_param_groups(tmp_path, toy_dataset, toy_model, toy_loss):
    class Counter:
        def __init__(self):
            self.n = 0

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, d):
            self.n = d["n"]

    counter = Counter()
    current = {"counter": counter}

    def loss_fn(model, batch):
        current["counter"].n += 1
        return toy_loss(model, batch)

    cfg = make_config(tmp_path, steps=3, schedule={"name": "constant"})
    model = fresh_model(cfg, toy_model)
    groups = [
        {"params": list(model[0].parameters()), "lr_scale": 0.1},
        {"params": list(model[3].parameters())},
    ]
    Trainer(cfg, model, toy_dataset(), loss_fn, extra_state=counter, param_groups=groups).fit()
    state = load_checkpoint(tmp_path / "t" / "last.pt")
    assert state["extra"] == {"n": 3}
    lrs = [g["lr"] for g in state["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([0.01, 0.1])
    fresh = current["counter"] = Counter()
    Trainer(
        apply_overrides(cfg, ["steps=4"]),
        model,
        toy_dataset(),
        loss_fn,
        extra_state=fresh,
        param_groups=groups,
    ).fit(resume=True)
    assert fresh.n == 4  # restored 3, plus one more step


def test_lr_schedule():
    cos = LRSchedule(ScheduleConfig(name="cosine", warmup_steps=4, min_lr_ratio=0.1), 14)
    assert [cos(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cos(4) == 1.0 and cos(9) == pytest.approx(0.55) and cos(14) == pytest.approx(0.1)
    step = LRSchedule(ScheduleConfig(name="step", step_size=3, gamma=0.5), 10)
    assert [step(s) for s in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert LRSchedule(ScheduleConfig(), 5)(3) == 1.0


def test_optimizer_weight_decay_groups(toy_model):
    model = toy_model()
    cfg = TrainConfig(optim={"name": "adamw", "weight_decay": 0.1})
    opt = build_optimizer(model, cfg.optim)
    decays = sorted((g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 2), (0.1, 2)]  # biases undecayed, weights decayed
    assert isinstance(opt, torch.optim.AdamW)
    frozen = toy_model().requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        build_optimizer(frozen, cfg.optim)


def test_total_steps_from_epochs():
    cfg = TrainConfig(epochs=2.0, batch_size=4)
    assert resolve_total_steps(cfg, 37) == math.ceil(2 * 37 / 4)
    assert resolve_total_steps(cfg, 37, world_size=2) == math.ceil(2 * 19 / 4)
    assert resolve_total_steps(TrainConfig(steps=7), 37) == 7
