"""Train, resume, evaluate and load any registered experiment, the same way for every algorithm.

Training is seeded (task ``step`` of run ``seed`` is always the same), resumable (a checkpoint
with the optimizer's and the schedule's state every ``checkpoint_every`` steps, or when a time
limit pauses the run) and writes ``<runs>/<name>/checkpoint.pt`` and ``<runs>/<name>/results.json``.
Periodic evaluations during training use validation tasks; the test tasks are evaluated once,
after the last step. A config with ``select_on_validation=True`` keeps the weights with the best
validation score (the last weights compete too), and those are the weights tested and saved at the end.
"""

from __future__ import annotations

import contextlib
import copy
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
from metalearn_lab.models import unchanged
from metalearn_lab.training import History, load_checkpoint, meta_train, save_checkpoint, shipped_checkpoint
from metalearn_lab.validation import check_float, check_int


def build_model(config: ExperimentConfig) -> torch.nn.Module:
    """The network of an experiment, freshly initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    return recipe_for(config.algorithm).build_model(config)


def evaluate_experiment(config: ExperimentConfig, model: torch.nn.Module, *, n_tasks: int | None = None,
                        device: str | torch.device = "cpu", split: str = "test", progress: bool = False) -> dict[str, Any]:
    """Evaluate ``model`` with the experiment's protocol on ``split`` ("test" or "validation").

    Omniglot: accuracy over fixed tasks with its mean ± 95% interval. Sinusoid: query MSE after each
    number of fine-tuning steps in ``config.eval_steps``. Siamese: accuracy on Lake's 20 runs.
    Returns a results dict (``"metric"``, ``"mean"``, ``"ci95"``, ``"n_tasks"``, ``"protocol"``,
    ``"transductive"``, ...): ``transductive`` is True when batch norm normalised each task's queries
    with their own statistics (MAML and Reptile, as in their authors' code), which the protocol says too.

    ``model`` is left exactly as it was: same weights, buffers (batch-norm running statistics),
    train/eval modes and device (a model on another device is evaluated as a copy).
    """
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    n_tasks = None if n_tasks is None else check_int("n_tasks", n_tasks, minimum=2)  # an interval needs 2
    device = torch.device(device)
    tensors = [*model.parameters(), *model.buffers()]
    if tensors and any(t.device != device and not (device.type == t.device.type and device.index is None) for t in tensors):
        model = copy.deepcopy(model).to(device)  # the caller's model stays where it is
    recipe = recipe_for(config.algorithm)
    with unchanged(model):
        results = recipe.evaluate(config, model, split=split, n_tasks=n_tasks, device=device)
    if "transductive" not in results:
        raise TypeError(f"the {config.algorithm!r} recipe's evaluate() must say whether its evaluation is transductive")
    return results


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


def _better(value: float, best: float | None, higher_is_better: bool) -> bool:
    """Whether a validation ``value`` beats the best so far (``None``: nothing yet); NaN never does.

    >>> _better(0.5, None, False), _better(0.4, 0.5, False), _better(0.4, 0.5, True), _better(float("nan"), None, True)
    (True, True, False, False)
    """
    if value != value:
        return False
    if best is None:
        return True
    return value > best if higher_is_better else value < best


def run_dir(name: str, runs: str | os.PathLike | None = None) -> Path:
    """The folder of a run: ``runs`` if given, else ``$METALEARN_LAB_RUNS/<name>`` (default ``./runs/<name>``)."""
    return Path(runs) if runs is not None else paths.runs_dir() / name


def _restore_schedule(scheduler, ckpt: dict[str, Any], start: int) -> None:
    """Put the learning-rate schedule where the paused run left it.

    Checkpoints store the schedule's state. Older ones did not; their step count says where the
    schedule was: the rates are reset to their initial values and the schedule is stepped ``start``
    times, as the uninterrupted run stepped it (their own stored rate may have been decayed twice
    by an earlier resume, the fault this replaces).
    """
    if scheduler is None:
        return
    if ckpt.get("scheduler"):
        scheduler.load_state_dict(ckpt["scheduler"])
        return
    import warnings

    for group, initial in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = initial
    scheduler.last_epoch = 0
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": no optimizer step is due here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start):
            scheduler.step()


@contextlib.contextmanager
def _step_random_state(config: ExperimentConfig, step: int, device: torch.device):
    """Training step ``step`` draws from global random generators seeded by the run's seed and the step.

    Recipes draw their tasks from :func:`step_generator`; anything that uses the global generators
    instead (dropout, a user's augmentation) then also gets the same numbers at step ``step`` whether
    the run paused before it or not. The caller's generators (torch, NumPy, ``random``) are restored.
    """
    import random

    import numpy as np

    seed = (config.seed * 1_000_003 + step) ^ 0x5DEECE66D  # not the stream of step_generator
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _refuse_a_different_run(ckpt_path: Path, ckpt: dict[str, Any], config: ExperimentConfig, *, resuming: bool) -> None:
    """Raise ``FileExistsError`` when the checkpoint belongs to another run, or continuing it with ``config`` would change what the run is."""
    stored_config = ExperimentConfig.from_dict(ckpt["config"])
    if not same_run(ckpt["config"], config.to_dict()):
        stored = stored_config.run_identity()
        changed = sorted(k for k, v in config.run_identity().items() if stored.get(k) != v)
        reasons = "".join(f"; {k}: {config.identity_reasons[k]}" for k in changed if k in config.identity_reasons)
        raise FileExistsError(
            f"{ckpt_path} belongs to a run with a different config (fields {changed} differ: "
            + ", ".join(f"{k}={stored.get(k)!r} there, {getattr(config, k)!r} here" for k in changed)
            + f"), and they change what the run computes{reasons}; move it away or choose --out")
    if resuming and ckpt["step"] > config.iterations:
        raise FileExistsError(
            f"{ckpt_path} holds a run that has trained {ckpt['step']} steps, more than iterations={config.iterations}: "
            "stopping it earlier would not undo those steps; ask for iterations >= "
            f"{ckpt['step']}, or move the run away and train a shorter one from the start")


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
    if time_limit is not None:
        time_limit = check_float("time_limit", time_limit, low=0, low_open=True)  # seconds
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
    select = bool(getattr(config, "select_on_validation", False))
    best: dict[str, Any] = {}  # with select_on_validation: the weights with the best validation metric so far
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        _refuse_a_different_run(ckpt_path, ckpt, config, resuming=resume)
        if resume:
            # a finished run that selected a checkpoint stores its last weights apart ("last_model")
            model.load_state_dict(ckpt.get("last_model") or ckpt["model"])
            if select and ckpt.get("best_model") is not None:
                best.update(model=ckpt["best_model"], step=int(ckpt["best_step"]), metric=float(ckpt["best_metric"]))
            if optimizer is not None and ckpt.get("optimizer"):
                optimizer.load_state_dict(ckpt["optimizer"])
            start, history = ckpt["step"], History.from_dict(ckpt["history"])
            _restore_schedule(scheduler, ckpt, start)
            spent = {k: float(ckpt["metrics"].get(k, 0.0)) for k in spent}
            devices = list(ckpt["metrics"].get("devices", []))
            machines = list(ckpt["metrics"].get("machines", []))
    step_core = recipe.make_step(config, model, optimizer, device)
    position = {"step": start}  # steps done so far, for the validation record

    def step_fn(i):
        with _step_random_state(config, i, device):
            out_ = step_core(i)
        if scheduler is not None:
            scheduler.step()
        position["step"] = i + 1
        return out_

    t_cpu, t_wall = time.process_time(), time.perf_counter()
    if start < config.iterations and device.type not in devices:
        devices.append(device.type)
    if start < config.iterations and _machine_label(device) not in machines:
        machines.append(_machine_label(device))

    def timings():
        return {"cpu_s": spent["cpu_s"] + time.process_time() - t_cpu, "wall_s": spent["wall_s"] + time.perf_counter() - t_wall,
                "devices": list(devices), "machines": list(machines)}

    def extra():
        out_ = {"scheduler": scheduler.state_dict() if scheduler is not None else None}
        if best:
            out_.update(best_model=best["model"], best_step=best["step"], best_metric=best["metric"])
        return out_

    def on_checkpoint(step, hist):
        save_checkpoint(ckpt_path, model, config=config.to_dict(), metrics=timings(), history=hist,
                        optimizer=optimizer, step=step, overwrite=True,  # same run (checked above)
                        extra=extra())

    def evaluate_fn():
        value = evaluate_experiment(config, model, n_tasks=config.eval_tasks_during_training, device=device,
                                    split="validation")["mean"]
        if select and _better(value, best.get("metric"), recipe.higher_is_better):
            best.update(model={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                        step=position["step"], metric=float(value))
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
    last_model = None
    if select:  # the last weights are a candidate too; the test tasks see only the chosen ones
        if not history.eval_step or history.eval_step[-1] != config.iterations:
            evaluate_fn()
        last_model = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(best["model"])
    results = evaluate_experiment(config, model, device=device, progress=progress)
    if select:
        results.update(selected_step=best["step"], selected_validation=best["metric"])
    results.update({
        "experiment": config.name, "config": config.to_dict(), "train_cpu_s": spent_now["cpu_s"],
        "train_wall_s": spent_now["wall_s"], "device": "+".join(devices) or device.type, "threads": torch.get_num_threads(),
        "machine": "; ".join(machines) or _machine_label(device),
        "torch": torch.__version__, "commit": _commit(), "history": history.as_dict(),
    })
    save_checkpoint(ckpt_path, model, config=config.to_dict(), metrics={**spent_now, "mean": results["mean"], "ci95": results["ci95"]},
                    history=history, optimizer=optimizer, step=config.iterations, overwrite=True,
                    extra={**extra(), **({"last_model": last_model} if last_model is not None else {})})
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def load_experiment(name: str, *, quick: bool | None = None, device: str | torch.device = "cpu",
                    progress: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of an experiment, for lessons: the shipped checkpoint, else a run, else train.

    In quick mode (``METALEARN_LAB_QUICK=1``) a shipped checkpoint is still used when present
    (loading is the quickest path); otherwise the quick config is trained in seconds.
    Returns ``(model, info)`` with ``info["source"]`` one of ``"shipped"``, ``"run"``, ``"trained"``.
    For a shipped checkpoint, ``info["metrics"]`` is the manifest's record (the file's own copy is
    left as it was written, so that its sha256 holds, and predates Student's t intervals and the
    ``transductive`` field).
    """
    config = get_config(name, quick=False)
    model = build_model(config)
    shipped = shipped_checkpoint(name)
    if shipped is not None:
        from metalearn_lab.shipping import RECORD_FIELDS, read_manifest

        ckpt = load_checkpoint(shipped, model)
        entry = read_manifest().get(name, {})
        ckpt["metrics"] = {**ckpt["metrics"], **{k: entry[k] for k in RECORD_FIELDS if k in entry}}
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
