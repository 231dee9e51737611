"""Train, resume, evaluate and load any registered experiment, the same way for every algorithm.

Training is seeded (task ``step`` of run ``seed`` is always the same), resumable (a checkpoint
with the optimizer's and the schedule's state every ``checkpoint_every`` steps, or when a time
limit pauses the run) and writes ``<runs>/<name>/checkpoint.pt`` and ``<runs>/<name>/results.json``.
Periodic evaluations during training use validation tasks; the test tasks are evaluated once,
after the last step. A recipe with ``keep_best = True`` keeps the weights with the best validation
score, and those are the weights tested and saved at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from metalearn_lab import paths
from metalearn_lab.experiments.config import ExperimentConfig
from metalearn_lab.experiments.registry import get_config, recipe_for
from metalearn_lab.experiments.splits import test_tasks_locked
from metalearn_lab.training import History, load_checkpoint, meta_train, save_checkpoint, shipped_checkpoint


def build_model(config: ExperimentConfig) -> torch.nn.Module:
    """The network of an experiment, freshly initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    return recipe_for(config.algorithm).build_model(config)


def evaluate_experiment(config: ExperimentConfig, model: torch.nn.Module, *, n_tasks: int | None = None,
                        device: str | torch.device = "cpu", split: str = "test", progress: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` with the experiment's protocol on ``split`` ("test" or "validation").

    Omniglot: accuracy over fixed tasks with its mean ± 95% interval. Sinusoid: query MSE after each
    number of fine-tuning steps in ``config.eval_steps``. Siamese: accuracy on Lake's 20 runs.
    Returns a results dict (``"metric"``, ``"mean"``, ``"ci95"``, ``"n_tasks"``, ``"protocol"``, ...).
    """
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    device = torch.device(device)
    return recipe_for(config.algorithm).evaluate(config, model.to(device), split=split, n_tasks=n_tasks, device=device)


def _commit() -> str:
    """The git commit of the code that runs (``$METALEARN_LAB_COMMIT`` for copies without ``.git``)."""
    env = os.environ.get("METALEARN_LAB_COMMIT", "").strip()
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _machine_label(device: torch.device) -> str:
    """Where training ran, for results files: ``"cuda: NVIDIA H100 ..."`` or ``"cpu: x86_64 2 cores"``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"cpu: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, torch {torch.__version__}".replace("  ", " ")


def same_run(stored: dict[str, Any], requested: dict[str, Any]) -> bool:
    """Whether two configs describe the same run (they may differ only in how long it runs and reports)."""
    return ExperimentConfig.from_dict(stored).run_identity() == ExperimentConfig.from_dict(requested).run_identity()


def run_dir(name: str, runs: str | os.PathLike | None = None) -> Path:
    """The folder of a run: ``runs`` if given, else ``$METALEARN_LAB_RUNS/<name>`` (default ``./runs/<name>``)."""
    return Path(runs) if runs is not None else paths.runs_dir() / name


def _restore_schedule(scheduler, ckpt: dict[str, Any], config: ExperimentConfig, start: int) -> None:
    """Put the learning-rate schedule where the paused run left it.

    Checkpoints store the schedule's state. Older ones did not; their step count says where the
    schedule was, and the learning rate is set from it (their own stored rate may have been decayed
    twice by an earlier resume, the fault this replaces).
    """
    if scheduler is None:
        return
    if ckpt.get("scheduler"):
        scheduler.load_state_dict(ckpt["scheduler"])
        return
    scheduler.last_epoch = start
    for group in scheduler.optimizer.param_groups:
        group["lr"] = config.outer_lr * 0.5 ** (start // config.lr_decay_every)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def train_experiment(
    config: ExperimentConfig,
    *,
    device: str | torch.device = "cpu",
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    model: torch.nn.Module | None = None,
    time_limit: float | None = None,
) -> dict[str, Any]:
    """Train (or resume) an experiment, evaluate it on its test tasks, write ``checkpoint.pt`` and ``results.json``.

    Returns the results dict (also saved as JSON). With ``time_limit`` (seconds) training pauses
    at the first step past the limit: the checkpoint is written, nothing is evaluated, and the
    returned dict is ``{"paused": True, "step": ..., "iterations": ...}``; the same call resumes,
    and a paused-and-resumed run equals the uninterrupted one. A checkpoint of a different run
    (see :func:`same_run`) is never resumed or overwritten: ``FileExistsError`` says so.
    The devices a run trained on (``cpu``, ``cuda``) are kept in the checkpoint across resumes.
    """
    recipe = recipe_for(config.algorithm)
    device = torch.device(device)
    out = Path(out_dir) if out_dir is not None else run_dir(config.name)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    model = (model or build_model(config)).to(device)
    optimizer = recipe.make_optimizer(config, model)
    scheduler = recipe.make_scheduler(config, optimizer)
    start, history, spent = 0, History(), {"cpu_s": 0.0, "wall_s": 0.0}
    devices: list[str] = []
    machines: list[str] = []
    # recipes with keep_best: the weights with the best validation score so far (what is tested at the end)
    keep_best = bool(getattr(recipe, "keep_best", False) and config.eval_every)
    best: dict[str, Any] | None = None
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if not same_run(ckpt["config"], config.to_dict()):
            stored = ExperimentConfig.from_dict(ckpt["config"]).run_identity()
            changed = sorted(k for k, v in config.run_identity().items() if stored.get(k) != v)
            raise FileExistsError(f"{ckpt_path} belongs to a run with a different config (fields {changed} differ, "
                                  "and they change what the run computes); move it away or choose --out")
        if resume:
            model.load_state_dict(ckpt["model"])
            if optimizer is not None and ckpt.get("optimizer"):
                optimizer.load_state_dict(ckpt["optimizer"])
            start, history = min(ckpt["step"], config.iterations), History.from_dict(ckpt["history"])
            _restore_schedule(scheduler, ckpt, config, start)
            spent = {k: float(ckpt["metrics"].get(k, 0.0)) for k in spent}
            devices = list(ckpt["metrics"].get("devices", []))
            machines = list(ckpt["metrics"].get("machines", []))
            best = ckpt.get("best") or None
    step_core = recipe.make_step(config, model, optimizer, device)

    def step_fn(i):
        out_ = step_core(i)
        if scheduler is not None:
            scheduler.step()
        return out_

    t_cpu, t_wall = time.process_time(), time.perf_counter()
    if start < config.iterations and device.type not in devices:
        devices.append(device.type)
    if start < config.iterations and _machine_label(device) not in machines:
        machines.append(_machine_label(device))

    def timings():
        return {"cpu_s": spent["cpu_s"] + time.process_time() - t_cpu, "wall_s": spent["wall_s"] + time.perf_counter() - t_wall,
                "devices": list(devices), "machines": list(machines)}

    def on_checkpoint(step, hist):
        save_checkpoint(ckpt_path, model, config=config.to_dict(), metrics=timings(), history=hist,
                        optimizer=optimizer, step=step, overwrite=True,  # same run (checked above)
                        extra={"scheduler": scheduler.state_dict() if scheduler is not None else None,
                               **({"best": best} if best is not None else {})})

    def evaluate_fn():
        nonlocal best
        value = evaluate_experiment(config, model, n_tasks=config.eval_tasks_during_training, device=device,
                                    split="validation")["mean"]
        if keep_best and (best is None or (value > best["metric"] if recipe.higher_is_better else value < best["metric"])):
            best = {"step": history.step[-1] + 1, "metric": float(value),
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        return value

    lock = (test_tasks_locked(f"{config.name} was training") if recipe.has_validation(config)
            else contextlib.nullcontext())
    with lock:
        history = meta_train(step_fn, config.iterations, evaluate_fn=evaluate_fn if config.eval_every else None,
                             eval_every=config.eval_every, history=history, start=start, on_checkpoint=on_checkpoint,
                             checkpoint_every=config.checkpoint_every, progress=progress, desc=config.name,
                             time_limit=time_limit)
    reached = history.step[-1] + 1 if history.step else start
    if reached < config.iterations:
        return {"paused": True, "experiment": config.name, "step": reached, "iterations": config.iterations,
                "checkpoint": str(ckpt_path), **timings()}
    spent_now = timings()
    if keep_best and best is not None:  # test the weights that validation chose, as Finn et al. (2017, A.2) keep the best
        model.load_state_dict(best["model"])
    results = evaluate_experiment(config, model, device=device, progress=progress)
    if keep_best and best is not None:
        results["selected"] = {"step": best["step"], "validation_mean": best["metric"],
                               "rule": "the checkpoint with the best validation score"}
    results.update({
        "experiment": config.name, "config": config.to_dict(), "train_cpu_s": spent_now["cpu_s"],
        "train_wall_s": spent_now["wall_s"], "device": "+".join(devices) or device.type, "threads": torch.get_num_threads(),
        "machine": "; ".join(machines) or _machine_label(device),
        "torch": torch.__version__, "commit": _commit(), "history": history.as_dict(),
    })
    save_checkpoint(ckpt_path, model, config=config.to_dict(), metrics={**spent_now, "mean": results["mean"], "ci95": results["ci95"]},
                    history=history, optimizer=optimizer, step=config.iterations, overwrite=True,
                    extra={"scheduler": scheduler.state_dict() if scheduler is not None else None,
                           **({"best": best} if best is not None else {})})
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def load_experiment(name: str, *, quick: bool | None = None, device: str | torch.device = "cpu",
                    progress: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of an experiment, for lessons: the shipped checkpoint, else a run, else train.

    In quick mode (``METALEARN_LAB_QUICK=1``) a shipped checkpoint is still used when present
    (loading is the quickest path); otherwise the quick config is trained in seconds.
    Returns ``(model, info)`` with ``info["source"]`` one of ``"shipped"``, ``"run"``, ``"trained"``.
    """
    config = get_config(name, quick=False)
    model = build_model(config)
    shipped = shipped_checkpoint(name)
    if shipped is not None:
        ckpt = load_checkpoint(shipped, model)
        return model.to(device), {**ckpt, "source": "shipped", "path": str(shipped)}
    quick_mode = paths.is_quick() if quick is None else quick
    config = config.quick() if quick_mode else config
    out = run_dir(config.name) if not quick_mode else paths.runs_dir() / "quick" / config.name
    results_file = out / "results.json"
    if results_file.exists():
        ckpt = load_checkpoint(out / "checkpoint.pt", model)
        if same_run(ckpt["config"], config.to_dict()) and ckpt["step"] >= config.iterations:
            return model.to(device), {**ckpt, "source": "run", "path": str(out), "results": json.loads(results_file.read_text())}
    results = train_experiment(config, device=device, out_dir=out, progress=progress, model=model)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    return model, {**ckpt, "source": "trained", "path": str(out), "results": results}
