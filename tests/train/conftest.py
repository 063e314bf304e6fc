"""Fixtures for the trainer tests: a toy dataset/model/loss and a standalone training script
run in subprocesses (SIGKILL/SIGTERM/DDP tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from matbackprop.errors import DataFileError

SRC = Path(__file__).resolve().parents[2] / "src"


class _ToyDataset:
    """Seeded regression-ish data; noise from the global torch RNG (reseeded per item)."""

    def __init__(self, n: int = 37, bad: tuple[int, ...] = (), dim: int = 6) -> None:
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(n, dim, generator=g)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()
        self.bad = set(bad)
        self.calls: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        self.calls.append(i)
        if i in self.bad:
            raise DataFileError(f"/data/broken_{i}.png", "truncated PNG")
        return self.x[i] + 0.05 * torch.randn(self.x.shape[1]), self.y[i]


def _toy_model(dim: int = 6) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(dim, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 2)
    )


def _toy_loss(model, batch):
    x, y = batch
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    return loss, {"acc": (logits.argmax(1) == y).float().mean()}


# A standalone training script run in subprocesses (SIGKILL/SIGTERM/DDP tests).
TOY_SCRIPT = textwrap.dedent(
    """
    import argparse, hashlib, json, os, time
    from pathlib import Path

    import torch
    from matbackprop.errors import DataFileError
    from matbackprop.train import (
        Trainer, TrainConfig, apply_overrides, get_rank, seed_everything, unwrap_model,
    )

    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--bad", type=int, default=-1)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args()

    class Data:
        def __init__(self, n=37):
            g = torch.Generator().manual_seed(99)
            self.x = torch.randn(n, 6, generator=g)
            self.y = (self.x[:, 0] - self.x[:, 2] > 0).long()
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            if args.sleep:
                time.sleep(args.sleep)
            if i == args.bad:
                raise DataFileError(f"/data/bad_{i}.png", "cannot decode")
            return self.x[i] + 0.1 * torch.randn(6), self.y[i], i

    seen = []

    def loss_fn(model, batch):
        x, y, idx = batch
        seen.extend(int(i) for i in idx)
        logits = model(x)
        acc = (logits.argmax(1) == y).float().mean()
        return torch.nn.functional.cross_entropy(logits, y), {"acc": acc}

    cfg = TrainConfig(name="toy", out_dir=args.out_dir, steps=args.steps, batch_size=4,
                      checkpoint_every=1, log_every=1, progress=False, device="cpu")
    cfg = apply_overrides(cfg, [
        "optim.name=sgd", "optim.lr=0.2", "optim.momentum=0.9", "optim.weight_decay=0.01",
        "schedule.name=cosine", "schedule.warmup_steps=3", "grad_clip=5.0", *args.set,
    ])
    seed_everything(cfg.seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 2))
    summary = Trainer(cfg, model, Data(), loss_fn).fit(resume=args.resume)
    rank = get_rank()
    h = hashlib.sha256()
    for k, v in sorted(unwrap_model(model).state_dict().items()):
        h.update(k.encode()); h.update(v.detach().cpu().numpy().tobytes())
    out = Path(args.out_dir)
    (out / f"rank{rank}.json").write_text(json.dumps(
        {"hash": h.hexdigest(), "seen": seen, "summary": summary,
         "world": int(os.environ.get("WORLD_SIZE", "1"))}))
    """
)


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_script(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def toy_dataset():
    """The toy dataset class: ``toy_dataset(n=37, bad=(), dim=6)``, ``DataFileError`` for the
    indices in ``bad``; records the indices it was asked for in ``.calls``."""
    return _ToyDataset


@pytest.fixture(scope="session")
def toy_model():
    """``toy_model(dim=6)``: a small MLP with dropout (draws from the global torch RNG)."""
    return _toy_model


@pytest.fixture(scope="session")
def toy_loss():
    """The cross-entropy ``loss_fn`` of the toy model, with an accuracy metric."""
    return _toy_loss


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment of the subprocesses: ``src`` on ``PYTHONPATH``, one OpenMP thread."""
    return _subprocess_env()


@pytest.fixture(scope="session")
def run_script():
    """``run_script(script, *args, timeout=120)``: run a Python script in a subprocess."""
    return _run_script


@pytest.fixture(scope="session")
def toy_script(tmp_path_factory) -> Path:
    """The standalone toy training script (see TOY_SCRIPT), written once."""
    path = tmp_path_factory.mktemp("script") / "toy_train.py"
    path.write_text(TOY_SCRIPT)
    return path
