"""Two-process DDP run (gloo, CPU) under torchrun."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch.distributed as dist

from matbackprop.train import DataOrder, StreamPosition, load_checkpoint

STEPS = 8
BATCH = 4  # per rank, as in the toy script
N_ITEMS = 37  # the toy script's dataset
SEED = 0

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed/gloo"
)


def test_ddp_two_ranks_gloo(toy_script, tmp_path, subprocess_env):
    # a bad file that rank 1 meets in its first batch: rank 0 must log it
    bad = int(DataOrder(N_ITEMS, SEED, rank=1, world_size=2).shard(0)[1])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(toy_script),
        str(tmp_path),
        "--steps",
        str(STEPS),
        "--bad",
        str(bad),
        "--set",
        "skip_bad=true",
    ]
    proc = subprocess.run(cmd, env=subprocess_env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]  # both ranks ran, under torchrun
    assert ranks[0]["hash"] == ranks[1]["hash"]  # identical final parameters
    assert ranks[0]["summary"]["step"] == ranks[1]["summary"]["step"] == STEPS

    # each rank saw its own shard of the seeded order (minus the bad item), BATCH per step
    for rank, result in enumerate(ranks):
        order = DataOrder(N_ITEMS, SEED, rank=rank, world_size=2)
        stream = (i for _, i in order.iterate(StreamPosition()) if i != bad)
        assert result["seen"] == list(itertools.islice(stream, STEPS * BATCH))

    # only rank 0 wrote logs and checkpoints
    run_dir = tmp_path / "toy"
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    starts = [r for r in records if r["event"] == "start"]
    assert len(starts) == 1 and starts[0]["rank"] == 0 and starts[0]["world_size"] == 2
    assert [r["step"] for r in records if r["event"] == "train"] == list(range(1, STEPS + 1))
    assert [r["step"] for r in records if r["event"] == "checkpoint"] == list(range(1, STEPS + 1))
    skipped = (run_dir / "skipped.txt").read_text().splitlines()
    assert skipped == [f"/data/bad_{bad}.png\tcannot decode\t1\t{bad}\t1"]
    state = load_checkpoint(run_dir / "last.pt")
    assert state["step"] == STEPS
    assert state["data"]["world_size"] == 2 and len(state["data"]["positions"]) == 2
    assert len(state["rng"]) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.yaml",
        "last.pt",
        "metrics.jsonl",
        "skipped.txt",
    ]
