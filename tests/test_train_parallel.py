"""scripts/train_parallel.sh: several runs side by side, paused by the time limit, packed into one archive."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from metalearn_lab.training import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_parallel.sh"


def run_script(tmp_path, *experiments, limit="2"):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "METALEARN_LAB_RUNS": str(tmp_path / "runs"), "LIMIT": limit,
           "DEVICE": "cpu", "ITERATIONS": "100000", "THREADS": "1", "POLL": "1", "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *experiments], env=env, capture_output=True, text=True, timeout=300,
                          cwd=SCRIPT.parents[1])


def test_runs_pause_and_are_packed_then_resume(tmp_path):
    done = run_script(tmp_path, "sinusoid-maml", "sinusoid-pretrain")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "=== done after" in done.stdout and done.stdout.count("paused at step") >= 2
    with tarfile.open(tmp_path / "out" / "runs.tgz") as archive:
        names = set(archive.getnames())
    assert {"./sinusoid-maml/checkpoint.pt", "./sinusoid-pretrain/checkpoint.pt"} <= names
    first = load_checkpoint(tmp_path / "runs" / "sinusoid-maml" / "checkpoint.pt")["step"]
    assert 0 < first < 100000 and (tmp_path / "out" / "logs" / "sinusoid-maml.log").exists()

    again = run_script(tmp_path, "sinusoid-maml")  # the same call continues from the checkpoint
    assert again.returncode == 0, again.stdout + again.stderr
    assert load_checkpoint(tmp_path / "runs" / "sinusoid-maml" / "checkpoint.pt")["step"] > first


def test_asking_for_cuda_without_a_gpu_stops_at_once(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "METALEARN_LAB_RUNS": str(tmp_path / "runs"), "DEVICE": "cuda",
           "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, even on a GPU machine
    result = subprocess.run(["bash", str(SCRIPT), "sinusoid-maml"], capture_output=True, text=True, timeout=120,
                            cwd=SCRIPT.parents[1], env=env)
    assert result.returncode == 3 and "no CUDA device" in result.stdout
    assert not (tmp_path / "runs" / "sinusoid-maml").exists()
