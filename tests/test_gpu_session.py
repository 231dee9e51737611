"""scripts/gpu_session.py in its CPU dry run: benchmark rows for every option, training that pauses
at the time limit, the run packed into runs.tgz, and a second session that continues it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from metalearn_lab.training import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_session.py"
RUN = "omniglot-maml-5w1s-finn"


def run_session(tmp_path, out, *extra, timeout=400):
    command = [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), "--runs", str(tmp_path / "runs"),
               "--budget", "300", "--reserve", "15", "--min-train", "20", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=SCRIPT.parents[1])


def test_dry_run_benchmarks_trains_pauses_packs_and_resumes(tmp_path, omniglot_root):
    first = run_session(tmp_path, tmp_path / "out1", "--train-limit", "5")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    table = (tmp_path / "out1" / "throughput_cpu.md").read_text()
    assert "| vmap + CUDA graph " in table and "not available on cpu" in table
    assert "skipped (--no-compile)" in table
    assert "CUDA graphs are not available on cpu" in first.stdout
    check = json.loads((tmp_path / "out1" / "graph_check.json").read_text())
    assert check["dry_run"] and check["sgd_grad_gap"] < 1e-5 and not check["use_graphs"]  # eager twice: rounding at most
    with tarfile.open(tmp_path / "out1" / "runs.tgz") as archive:
        assert f"./{RUN}/checkpoint.pt" in archive.getnames()
    paused = load_checkpoint(tmp_path / "runs" / RUN / "checkpoint.pt")
    assert 0 < paused["step"] < 40 and paused["config"]["meta_batch_size"] == 4
    assert json.loads((tmp_path / "out1" / "session.json").read_text())["step"] == paused["step"]

    # a new machine: only the archive comes along, the run continues from its step
    (tmp_path / "runs").rename(tmp_path / "old-runs")
    second = run_session(tmp_path, tmp_path / "out2", "--no-benchmark", "--train-limit", "5",
                         "--resume-from", str(tmp_path / "out1" / "runs.tgz"))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"unpacked {tmp_path / 'out1' / 'runs.tgz'}: {RUN} at step {paused['step']}" in second.stdout
    assert load_checkpoint(tmp_path / "runs" / RUN / "checkpoint.pt")["step"] > paused["step"]
    assert not (tmp_path / "out2" / "throughput_cpu.md").exists()


def test_session_without_a_gpu_stops_at_once(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")],
                            env=env, capture_output=True, text=True, timeout=120, cwd=SCRIPT.parents[1])
    assert result.returncode == 3 and "no CUDA device" in result.stdout
    assert not (tmp_path / "runs" / RUN).exists()
