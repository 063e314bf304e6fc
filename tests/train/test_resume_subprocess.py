"""Kill a real training process (SIGKILL / SIGTERM) and resume it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from matbackprop.train import load_checkpoint

TOTAL = 30
K = 10

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def reference(toy_script, tmp_path_factory, run_script):
    """Final state of an uninterrupted run of TOTAL steps."""
    out = tmp_path_factory.mktemp("reference")
    proc = run_script(toy_script, str(out), "--steps", str(TOTAL))
    assert proc.returncode == 0, proc.stderr
    return {
        "hash": json.loads((out / "rank0.json").read_text())["hash"],
        "model": load_checkpoint(out / "toy" / "last.pt")["model"],
    }


def _start(script: Path, out: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), str(out), "--steps", str(TOTAL), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_checkpoint(run_dir: Path, step: int, proc: subprocess.Popen) -> int:
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended before checkpoint {step}: {proc.communicate()[1]}")
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("event") == "checkpoint" and record["step"] >= step:
                    return record["step"]
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no checkpoint at step >= {step} within 90 s")


def test_sigkill_then_resume_is_bitwise_identical(
    toy_script, tmp_path, reference, run_script, subprocess_env
):
    proc = _start(toy_script, tmp_path, subprocess_env, "--sleep", "0.005")
    _wait_for_checkpoint(tmp_path / "toy", K, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(tmp_path / "toy" / "last.pt")["step"]  # intact despite the kill
    assert K <= killed_at < TOTAL

    resumed = run_script(toy_script, str(tmp_path), "--steps", str(TOTAL), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((tmp_path / "rank0.json").read_text())
    assert result["summary"]["resumed_from"] == killed_at
    assert result["summary"]["step"] == TOTAL
    final = load_checkpoint(tmp_path / "toy" / "last.pt")["model"]
    assert final.keys() == reference["model"].keys()
    for key, value in reference["model"].items():
        assert torch.equal(final[key], value), key
    assert result["hash"] == reference["hash"]
    # the log was cut back to the checkpoint and continued: every step exactly once
    steps = [
        r["step"]
        for r in map(json.loads, (tmp_path / "toy" / "metrics.jsonl").read_text().splitlines())
        if r["event"] == "train"
    ]
    assert steps == list(range(1, TOTAL + 1))
    assert not list((tmp_path / "toy").glob(".*.tmp"))


def test_sigterm_exits_cleanly_with_checkpoint(toy_script, tmp_path, subprocess_env):
    proc = _start(toy_script, tmp_path, subprocess_env, "--sleep", "0.005")
    _wait_for_checkpoint(tmp_path / "toy", K, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Stopped by SIGTERM" in stderr and "resume=True" in stderr
    state = load_checkpoint(tmp_path / "toy" / "last.pt")
    assert K <= state["step"] < TOTAL
    summary = json.loads((tmp_path / "rank0.json").read_text())["summary"]
    assert summary["interrupted"] and summary["signal"] == "SIGTERM"
    assert summary["step"] == state["step"]
    assert summary["checkpoint"] == str(tmp_path / "toy" / "last.pt")
    records = [
        json.loads(x) for x in (tmp_path / "toy" / "metrics.jsonl").read_text().split("\n") if x
    ]
    stops = [r for r in records if r["event"] == "stop"]
    assert len(stops) == 1 and stops[0]["reason"] == "SIGTERM"
    assert stops[0]["step"] == state["step"]
