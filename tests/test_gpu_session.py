"""scripts/gpu_session.py in its CPU dry run, the way a lent-GPU session uses it: --prepare fills the
folder that travels (Omniglot, its decoded cache, the commit), a session benchmarks (a row for every
option), checks the graph step's code, trains until its time limit, packs the run into runs.tgz;
the next --prepare brings that archive and the next session continues the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from metalearn_lab import paths
from metalearn_lab.training import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_session.py"
RUN = "omniglot-maml-5w1s-finn"


def script(*arguments, env=None, timeout=400):
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=timeout,
                          cwd=SCRIPT.parents[1], env=env)


def test_prepare_then_two_dry_run_sessions(tmp_path, omniglot_root):
    gpu = tmp_path / "gpu"
    cached = sorted(paths.cache_dir().glob("omniglot_v1_28px.npz"))
    if cached:  # saves decoding the zips again; prepare checks the cache against them either way
        (gpu / "cache").mkdir(parents=True)
        shutil.copy2(cached[0], gpu / "cache" / cached[0].name)
    prepared = script("--prepare", "--gpu-dir", str(gpu))
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert {p.name for p in gpu.iterdir()} >= {"omniglot", "cache", "COMMIT"}
    assert (gpu / "omniglot" / "images_background.zip").stat().st_size > 1_000_000

    # the device machine has no METALEARN_LAB_DATA: the session finds Omniglot in the carried folder
    device_env = {k: v for k, v in os.environ.items() if k not in ("METALEARN_LAB_DATA", "METALEARN_LAB_CACHE")}
    common = ["--dry-run", "--gpu-dir", str(gpu), "--runs", str(tmp_path / "runs"), "--budget", "300",
              "--reserve", "15", "--min-train", "1", "--train-limit", "3"]  # paused well before the 400 steps on any CPU
    first = script(*common, "--out", str(tmp_path / "out1"), env=device_env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"data {gpu / 'omniglot'}, cache {gpu / 'cache'}" in first.stdout
    table = (tmp_path / "out1" / "throughput_cpu.md").read_text()
    assert "| 6 vmap + CUDA graph " in table and "not available on cpu" in table
    assert "skipped (--no-compile)" in table
    assert "CUDA graphs are not available on cpu" in first.stdout
    check = json.loads((tmp_path / "out1" / "graph_check.json").read_text())
    assert check["dry_run"] and check["sgd_grad_gap"] < 1e-5 and not check["use_graphs"]  # eager twice: rounding at most
    with tarfile.open(tmp_path / "out1" / "runs.tgz") as archive:
        assert f"./{RUN}/checkpoint.pt" in archive.getnames()
    paused = load_checkpoint(tmp_path / "runs" / RUN / "checkpoint.pt")
    assert 0 < paused["step"] < 400 and paused["config"]["meta_batch_size"] == 4
    assert json.loads((tmp_path / "out1" / "session.json").read_text())["step"] == paused["step"]

    # the next session: a fresh machine, only the prepared folder with the archive comes along
    shutil.rmtree(tmp_path / "runs")
    again = script("--prepare", "--gpu-dir", str(gpu), "--runs-archive", str(tmp_path / "out1" / "runs.tgz"))
    assert again.returncode == 0, again.stdout + again.stderr
    second = script(*common, "--out", str(tmp_path / "out2"), "--no-benchmark", env=device_env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"unpacked {gpu / 'runs.tgz'}: {RUN} at step {paused['step']}" in second.stdout
    assert load_checkpoint(tmp_path / "runs" / RUN / "checkpoint.pt")["step"] > paused["step"]
    assert not (tmp_path / "out2" / "throughput_cpu.md").exists()


def test_prepare_refuses_a_folder_with_runs_it_would_hide(tmp_path):
    (tmp_path / "gpu" / "runs" / RUN).mkdir(parents=True)
    result = script("--prepare", "--gpu-dir", str(tmp_path / "gpu"), timeout=120)
    assert result.returncode == 2 and "holds run folders" in result.stderr


def test_session_without_a_gpu_stops_at_once(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = script("--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs"), env=env, timeout=120)
    assert result.returncode == 3 and "no CUDA device" in result.stdout
    assert not (tmp_path / "runs" / RUN).exists()
