#!/usr/bin/env python3
"""One lent-GPU session in one command: benchmark on CUDA, check CUDA graphs, train MAML the way Finn et al. did.

In at most ``--budget`` seconds (default 530, inside the device tool's 10-minute command limit) it

1. prints the machine (GPU, torch, CUDA, TF32 defaults) and checks that ``metalearn_lab`` imports;
2. runs ``benchmarks/maml_throughput.py --device cuda`` (vmap against the per-task loop, CUDA
   graphs, channels-last, TF32, ``torch.compile``) and writes ``$OUT/throughput_cuda.md``
   (``--no-benchmark`` skips it, for sessions that only continue training);
3. checks a CUDA-graph training step against the eager one on Finn et al.'s batch shape (same
   losses, gradients and weights over several steps, and how many steps a second each does),
   writes ``$OUT/graph_check.json``, and lets training use graphs only when they agree;
4. trains ``omniglot-maml-5w1s-finn`` (Finn et al. 2017, §5.2 and their code: 5-way 1-shot,
   meta-batch 32, 60,000 steps, 1 inner step with α = 0.4, 3 steps at test, one query image per
   class at test, validation every 500 steps on 100 held-out characters) for the time left,
   pausing with a checkpoint (``--time-limit``); the run folder is packed into ``$OUT/runs.tgz``
   every 30 s and at the end. When the 60,000 steps are done, the run is evaluated once on the
   600 fixed test tasks and ``results.json`` is in the archive.

The test tasks are locked while the run trains (the library's validation protocol). Resumable: a
later session that brings the last ``runs.tgz`` as ``.gpu/runs.tgz`` continues the run where it
stopped.

On the developer machine, before the call::

    python3 scripts/gpu_session.py --prepare [--runs PATH/TO/runs.tgz]   # fills .gpu/ (git-ignored)

then, with the device tool::

    run(command="python3 scripts/gpu_session.py --out $OUT", carry=[".gpu"], timeout_s=600)

and afterwards copy ``runs.tgz`` from the returned files to ``.gpu/runs.tgz`` for the next session.

On a CPU, ``--dry-run`` runs every step with tiny settings (a quick benchmark without the
compile row, the graph check's code with eager steps on both sides, a few training steps) so the
script can be tried before a session.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPU_DIR = ROOT / ".gpu"
EXPERIMENT = "omniglot-maml-5w1s-finn"
POLL_S = 30
STARTUP_S = 20  # seconds for the training process to import torch, start CUDA and load Omniglot


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def finn_config(dry_run: bool = False):
    """Finn et al.'s Omniglot 5-way 1-shot protocol as an ``ExperimentConfig`` (tiny with ``dry_run``)."""
    from metalearn_lab.experiments import get_config

    config = get_config("omniglot-maml-5w1s", quick=False).replace(
        name=EXPERIMENT, validation_characters=100, meta_batch_size=32, iterations=60000, n_way=5, k_shot=1,
        n_query=1, inner_steps=1, inner_lr=0.4, first_order=False, outer_lr=1e-3, eval_inner_steps=3,
        eval_n_query=1, eval_tasks=600, eval_every=500, eval_tasks_during_training=100, checkpoint_every=1000,
        note=("Finn et al. 2017 (Sec. 5.2; cbfinn/maml usage line and main.py): meta-batch 32, 60,000 steps, 1 inner "
              "step alpha=0.4, 3 at test, 1 query per class at test, validation every 500 steps on 100 held-out "
              "characters; differences: Conv4 with max-pool (Finn's Omniglot net uses strided convolutions) and "
              "batch-norm scale and shift (Finn's has no scale), 1100/100/423 characters from our split"),
    )
    if dry_run:
        config = config.replace(meta_batch_size=4, iterations=400, checkpoint_every=5, eval_every=20,
                                eval_tasks_during_training=5, eval_tasks=10,
                                note="gpu_session.py --dry-run: a few steps to try the script, not a result")
    return config


# ------------------------------------------------------------------------------ on the developer machine


def prepare(runs_archive: str | None, gpu_dir: Path) -> int:
    """Fill ``.gpu/`` with what the device machine lacks: Omniglot, its decoded cache, the commit, runs."""
    from metalearn_lab import paths


    if (gpu_dir / "runs").exists() and any((gpu_dir / "runs").iterdir()):
        print(f"{gpu_dir / 'runs'} holds run folders from an earlier session on this machine; a session would continue "
              "them instead of the archive. Move the folder away (or pack it and pass --runs-archive).", file=sys.stderr)
        return 2
    data = paths.data_dir()
    zips = [data / "images_background.zip", data / "images_evaluation.zip"]
    missing = [str(z) for z in zips if not z.exists()]
    if missing:
        print(f"Omniglot zips not found: {missing}; set METALEARN_LAB_DATA to their folder", file=sys.stderr)
        return 2
    (gpu_dir / "omniglot").mkdir(parents=True, exist_ok=True)
    (gpu_dir / "cache").mkdir(parents=True, exist_ok=True)
    for z in zips:
        shutil.copy2(z, gpu_dir / "omniglot" / z.name)
    os.environ[paths.CACHE_ENV] = str(gpu_dir / "cache")
    from metalearn_lab.data.omniglot import load_omniglot

    load_omniglot()  # decodes once here, so the GPU machine only reads the cache
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    (gpu_dir / "COMMIT").write_text((commit or "unknown") + ("+changes" if dirty else "") + "\n")
    if runs_archive:
        shutil.copy2(runs_archive, gpu_dir / "runs.tgz")
    size = sum(f.stat().st_size for f in gpu_dir.rglob("*") if f.is_file())
    print(f"{gpu_dir} ready ({size / 2**20:.1f} MiB): {sorted(p.name for p in gpu_dir.iterdir())}")
    print('now: run(command="python3 scripts/gpu_session.py --out $OUT", carry=[".gpu"], timeout_s=600)')
    return 0


# ------------------------------------------------------------------------------ steps on the device


def describe_machine(device: str) -> dict:
    import torch

    info = {"torch": torch.__version__, "python": sys.version.split()[0], "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, memory_gib=round(props.total_memory / 2**30), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return info


def graph_check(out: Path, steps: int = 6, timed: int = 100, dry_run: bool = False) -> dict:
    """Eager and CUDA-graph training steps from the same weights on the same batches: do they agree?

    Correctness with plain SGD, whose update is proportional to the gradient, so rounding stays
    rounding (Adam's first updates are about lr * sign(gradient), which blows rounding differences
    in near-zero gradients up into different weights); then Adam, as training uses it: the losses
    must still agree closely, and each path is timed. ``dry_run``: on the CPU, 4 tasks, and the
    "graph" path is the eager step again (this tries the code, not CUDA graphs).
    """
    import copy

    import torch
    import torch.nn.functional as F

    from metalearn_lab.cuda_graphs import GraphedMetaTrainStep
    from metalearn_lab.maml import meta_train_step
    from metalearn_lab.models import Conv4

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from maml_throughput import conv_batch, relative_gap

    device = torch.device("cpu" if dry_run else "cuda")
    tasks, timed = (4, 2) if dry_run else (32, timed)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    torch.manual_seed(0)
    base = Conv4(out_features=5, track_running_stats=False).to(device)
    batches = [conv_batch(tasks, 5, 1, 1, device, seed=s) for s in range(steps)]
    kwargs = dict(inner_steps=1, inner_lr=0.4, first_order=False)

    def run(label, make_optimizer, time_it):
        model = copy.deepcopy(base)
        optimizer = make_optimizer(model.parameters())
        if label == "graph" and not dry_run:
            step = GraphedMetaTrainStep(model, optimizer, F.cross_entropy, vectorize=True, **kwargs)
        else:
            def step(b):
                return meta_train_step(model, optimizer, b, F.cross_entropy, vectorize=True, **kwargs)
        losses = [step(b)[0] for b in batches]
        result = dict(losses=losses, grads=[p.grad.detach().clone() for p in model.parameters()],
                      moved=[(p - p0).detach() for p, p0 in zip(model.parameters(), base.parameters())],
                      failed=getattr(step, "failed", None))
        if time_it:
            synchronize()
            start = time.perf_counter()
            for i in range(timed):
                step(batches[i % steps])
            synchronize()
            result["steps_per_s"] = timed / (time.perf_counter() - start)
        return result

    def loss_gap(a, b):
        return max(abs(x - y) / abs(x) for x, y in zip(a["losses"], b["losses"]))

    sgd = {label: run(label, lambda p: torch.optim.SGD(p, lr=0.05), False) for label in ("eager", "graph")}
    adam = {label: run(label, lambda p: torch.optim.Adam(p, lr=1e-3), True) for label in ("eager", "graph")}
    result = {
        "batch": f"{tasks} tasks, 5-way 1-shot, 1 query per class, second order, 1 inner step, alpha 0.4; "
                 f"{steps} steps on {steps} batches from the same weights",
        "dry_run": dry_run,
        "sgd_loss_gap": loss_gap(sgd["eager"], sgd["graph"]),
        "sgd_grad_gap": relative_gap(sgd["graph"]["grads"], sgd["eager"]["grads"]),
        "sgd_weight_move_gap": relative_gap(sgd["graph"]["moved"], sgd["eager"]["moved"]),
        "adam_loss_gap": loss_gap(adam["eager"], adam["graph"]),
        "adam_losses_eager": adam["eager"]["losses"], "adam_losses_graph": adam["graph"]["losses"],
        "eager_steps_per_s": adam["eager"]["steps_per_s"], "graph_steps_per_s": adam["graph"]["steps_per_s"],
        "graph_failed": sgd["graph"]["failed"] or adam["graph"]["failed"],
    }
    result["agree"] = (result["graph_failed"] is None and result["sgd_loss_gap"] < 1e-5 and result["sgd_grad_gap"] < 1e-4
                       and result["sgd_weight_move_gap"] < 1e-4 and result["adam_loss_gap"] < 1e-3)
    # a dry run replays the eager step as its "graph": the two timings differ by noise only, so it never chooses graphs
    result["use_graphs"] = (not dry_run and result["agree"]
                            and result["graph_steps_per_s"] > result["eager_steps_per_s"])
    (out / "graph_check.json").write_text(json.dumps(result, indent=1))
    return result


def train(args) -> int:
    """The training subprocess: ``train_experiment`` on the Finn config until done or the time limit."""
    import torch

    from metalearn_lab.experiments import train_experiment

    config = finn_config(args.dry_run)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = train_experiment(config, device=args.device, out_dir=Path(args.runs) / config.name,
                               progress=False, time_limit=args.time_limit)
    summary = {k: results.get(k) for k in ("paused", "step", "iterations", "mean", "ci95", "n_tasks", "wall_s",
                                           "train_wall_s", "metric", "protocol")}
    print("TRAIN RESULT " + json.dumps(summary), flush=True)
    return 0


def pack(runs: Path, out: Path) -> None:
    tmp = out / "runs.tgz.tmp"
    with tarfile.open(tmp, "w:gz") as archive:
        archive.add(runs, arcname=".")
    tmp.replace(out / "runs.tgz")


def checkpoint_step(runs: Path) -> int | None:
    path = runs / EXPERIMENT / "checkpoint.pt"
    if not path.exists():
        return None
    from metalearn_lab.training import load_checkpoint

    return int(load_checkpoint(path)["step"])


def session(args) -> int:
    gpu_dir = Path(args.gpu_dir)
    start = time.monotonic()
    deadline = start + args.budget
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(args.runs).resolve()
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PYTHONUNBUFFERED": "1"}
    if (gpu_dir / "omniglot").is_dir() and not os.environ.get("METALEARN_LAB_DATA"):
        env["METALEARN_LAB_DATA"] = str(gpu_dir / "omniglot")
    if (gpu_dir / "cache").is_dir() and not os.environ.get("METALEARN_LAB_CACHE"):
        env["METALEARN_LAB_CACHE"] = str(gpu_dir / "cache")
    if (gpu_dir / "COMMIT").exists() and not os.environ.get("METALEARN_LAB_COMMIT"):
        env["METALEARN_LAB_COMMIT"] = (gpu_dir / "COMMIT").read_text().strip()
    os.environ.update({k: v for k, v in env.items() if k.startswith("METALEARN_LAB_")})
    device = "cpu" if args.dry_run else "cuda"

    # 1. the machine
    import torch

    if args.dry_run:
        torch.set_num_threads(1)  # a shared CPU: one thread is the stable choice

    if device == "cuda" and not torch.cuda.is_available():
        log("no CUDA device: torch.cuda.is_available() is False (use --dry-run on a CPU)")
        return 3
    info = describe_machine(device)
    log(f"machine: {json.dumps(info)}")
    log(f"data {env.get('METALEARN_LAB_DATA', '(default)')}, cache {env.get('METALEARN_LAB_CACHE', '(default)')}, "
        f"commit {env.get('METALEARN_LAB_COMMIT', '(git)')}, runs {runs}")
    archive_in = Path(args.resume_from) if args.resume_from else gpu_dir / "runs.tgz"
    if archive_in.exists() and checkpoint_step(runs) is None:
        with tarfile.open(archive_in) as archive:
            archive.extractall(runs, filter="data")
        log(f"unpacked {archive_in}: {EXPERIMENT} at step {checkpoint_step(runs)}")
    else:
        log(f"{EXPERIMENT}: {'at step %s' % checkpoint_step(runs) if checkpoint_step(runs) is not None else 'a new run'}")

    # 2. the benchmark
    if args.benchmark:
        bench_limit = min(args.benchmark_limit, deadline - time.monotonic() - args.min_train)
        if bench_limit < 30:
            log(f"benchmark: skipped, only {bench_limit:.0f} s left before training needs its {args.min_train} s")
        else:
            command = [sys.executable, str(ROOT / "benchmarks" / "maml_throughput.py"), "--device", device,
                       "--out", str(out / f"throughput_{device}.md"), "--no-higher"]
            command += (["--quick", "--no-compile", "--tables", "options", "--threads", "1"] if args.dry_run
                        else ["--option-timeout", "60", "--repeats", "3", "--warmup", "1"])
            log(f"benchmark: {' '.join(command[1:])} (at most {bench_limit:.0f} s)")
            try:
                subprocess.run(command, env=env, timeout=bench_limit, cwd=ROOT)
            except subprocess.TimeoutExpired:
                log("benchmark: stopped at its time limit; the tables so far are in the file")

    # 3. CUDA graphs against eager steps
    use_graphs = False
    if args.graphs:
        if device == "cpu":
            log("graph check: CUDA graphs are not available on cpu; trying the check's code with eager steps on both sides")
        try:
            check = graph_check(out, dry_run=device == "cpu")
            use_graphs = check["use_graphs"] and device == "cuda"
            log("graph check: " + json.dumps({k: v for k, v in check.items() if not k.startswith("adam_losses")}))
        except Exception as exc:  # noqa: BLE001 - training goes on without graphs
            log(f"graph check failed ({type(exc).__name__}: {exc}); training without CUDA graphs")
    else:
        log("graph check: skipped (--no-graphs)")

    # 4. training, packed every POLL_S seconds
    # the trainer's clock starts after its imports and the data (STARTUP_S); it must be done by deadline - reserve
    time_limit = deadline - time.monotonic() - args.reserve - STARTUP_S
    if args.train_limit is not None:
        time_limit = min(time_limit, args.train_limit)
    if time_limit < 2:
        log(f"training: skipped, {time_limit:.0f} s left")
    else:
        train_env = {**env, "METALEARN_LAB_CUDA_GRAPHS": "1" if use_graphs else "0"}
        command = [sys.executable, str(Path(__file__).resolve()), "--train", "--device", device, "--runs", str(runs),
                   "--time-limit", f"{time_limit:.0f}"] + (["--dry-run", "--threads", "1"] if args.dry_run else [])
        log(f"training {EXPERIMENT} for {time_limit:.0f} s on {device}, CUDA graphs {'on' if use_graphs else 'off'}")
        before = checkpoint_step(runs) or 0
        t_train = time.monotonic()
        with open(out / "train.log", "w") as train_log:
            proc = subprocess.Popen(command, env=train_env, cwd=ROOT, stdout=train_log, stderr=subprocess.STDOUT)
            hard_stop = deadline - args.reserve / 2
            while proc.poll() is None:
                try:
                    proc.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    pass
                if (runs / EXPERIMENT).exists():
                    pack(runs, out)
                    log(f"training: {time.monotonic() - t_train:.0f} s, checkpoint at step {checkpoint_step(runs)}")
                if time.monotonic() > hard_stop and proc.poll() is None:
                    log("training: past its hard stop, terminating (the last checkpoint stays)")
                    proc.terminate()
                    proc.wait(timeout=20)
        reached = checkpoint_step(runs) or 0
        took = time.monotonic() - t_train
        tail = (out / "train.log").read_text().splitlines()[-5:]
        log(f"training exit code {proc.returncode}; steps {before} -> {reached} in {took:.0f} s "
            f"({(reached - before) / max(took, 1e-9):.1f} steps/s including start-up and saving)")
        for line in tail:
            log(f"  train.log: {line[:300]}")
    if (runs / EXPERIMENT).exists():
        pack(runs, out)
        results = runs / EXPERIMENT / "results.json"
        if results.exists():
            shutil.copy2(results, out / "results.json")
    (out / "session.json").write_text(json.dumps({**info, "budget_s": args.budget, "used_s": time.monotonic() - start,
                                                  "step": checkpoint_step(runs), "cuda_graphs": use_graphs}, indent=1))
    log(f"done in {time.monotonic() - start:.0f} s; {EXPERIMENT} at step {checkpoint_step(runs)} of "
        f"{finn_config(args.dry_run).iterations}. Next session: copy runs.tgz to .gpu/runs.tgz and run this again.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", ""), help="folder for what comes back ($OUT)")
    parser.add_argument("--runs", help="run folders (default .gpu/runs; with --dry-run OUT/dry-runs, so a dry run "
                        "never leaves a tiny run where a real session would continue it)")
    parser.add_argument("--budget", type=float, default=530, help="seconds for the whole session (default 530)")
    parser.add_argument("--reserve", type=float, default=40, help="seconds kept after training for packing (default 40)")
    parser.add_argument("--min-train", type=float, default=200, help="seconds the benchmark must leave to training")
    parser.add_argument("--benchmark-limit", type=float, default=240, help="at most this many seconds of benchmark")
    parser.add_argument("--train-limit", type=float, default=None, help="train at most this many seconds")
    parser.add_argument("--no-benchmark", dest="benchmark", action="store_false", help="only check graphs and train")
    parser.add_argument("--no-graphs", dest="graphs", action="store_false", help="train without CUDA graphs")
    parser.add_argument("--resume-from", help="a runs.tgz to continue from (default .gpu/runs.tgz)")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, tiny settings: try the script")
    parser.add_argument("--prepare", action="store_true", help="on the developer machine: fill .gpu/")
    parser.add_argument("--runs-archive", dest="runs_archive", help="with --prepare: the last session's runs.tgz")
    parser.add_argument("--gpu-dir", default=str(GPU_DIR), help="what travels to the GPU machine (default .gpu)")
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--time-limit", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.prepare:
        return prepare(args.runs_archive, Path(args.gpu_dir))
    if args.train:
        return train(args)
    if not args.out:
        parser.error("--out (or $OUT) is required")
    if args.budget < 60:
        parser.error(f"--budget must be at least 60 seconds, got {args.budget}")
    if args.runs is None:
        args.runs = str(Path(args.out) / "dry-runs") if args.dry_run else str(Path(args.gpu_dir) / "runs")
    return session(args)


if __name__ == "__main__":
    sys.exit(main())
