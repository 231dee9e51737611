"""Choosing between runs (seeds, settings) on validation tasks, and reporting every run honestly.

The rule is lesson ``tasks_and_episodes``'s: a choice is made on validation tasks; the test tasks
only report. :func:`select_run` evaluates finished runs of one experiment on its validation tasks,
picks the best by a rule fixed in advance, and reports every run's test result too, so the spread
over seeds is visible next to the chosen one.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from metalearn_lab.experiments.config import ExperimentConfig
from metalearn_lab.experiments.registry import recipe_for
from metalearn_lab.experiments.runner import build_model, evaluate_experiment
from metalearn_lab.training import load_checkpoint
from metalearn_lab.validation import check_int


def _score(result: dict[str, Any], higher_is_better: bool) -> tuple[float, float]:
    """Sort key, smaller is better: diverged tasks first (fewer is better), then the mean."""
    diverged = float(result.get("n_diverged", 0))
    mean = result["mean"] if math.isfinite(result["mean"]) else math.inf
    return diverged, (-mean if higher_is_better else mean)


def select_run(runs: list[str | Path], *, n_tasks: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Evaluate finished runs of one experiment on validation tasks, pick one, and report all on test tasks.

    Parameters
    ----------
    runs : list of run folders (each with ``checkpoint.pt`` of a finished run)
        Runs of the same experiment that differ only in seed (or another setting).
    n_tasks : int, optional
        Validation tasks (default: the config's ``eval_tasks``, 600).

    Returns
    -------
    dict
        ``{"chosen": run folder, "rule": str, "runs": [{"run", "seed", "validation", "test"}...],
        "test_mean_over_runs", "test_stdev_over_runs"}``. The rule: fewest diverged validation tasks,
        then the best validation mean.

    Raises
    ------
    ValueError
        If a run is unfinished, if the runs belong to different experiments, or if the experiment
        has no validation tasks.
    """
    n_tasks = None if n_tasks is None else check_int("n_tasks", n_tasks, minimum=2)  # an interval needs 2
    if len(runs) < 2:
        raise ValueError(f"runs must name at least 2 run folders to choose between, got {len(runs)}")
    rows, name = [], None
    for run in map(Path, runs):
        ckpt = load_checkpoint(run / "checkpoint.pt")
        config = ExperimentConfig.from_dict(ckpt["config"])
        if ckpt["step"] < config.iterations:
            raise ValueError(f"{run} is not finished (step {ckpt['step']} of {config.iterations})")
        if name not in (None, config.name):
            raise ValueError(f"{run} is a run of {config.name!r}, the others of {name!r}")
        name = config.name
        recipe = recipe_for(config.algorithm)
        if not recipe.has_validation(config):
            raise ValueError(f"{config.name} has no validation tasks (old protocol): nothing to select on")
        model = build_model(config)
        model.load_state_dict(ckpt["model"])
        validation = evaluate_experiment(config, model, n_tasks=n_tasks or config.eval_tasks, device=device, split="validation")
        rows.append({"run": str(run), "seed": config.seed, "validation": validation, "config": config,
                     "higher_is_better": recipe.higher_is_better})
    chosen = min(rows, key=lambda r: _score(r["validation"], r["higher_is_better"]))
    for row in rows:  # the test tasks are read once per run, after the choice is made
        model = build_model(row["config"])
        model.load_state_dict(load_checkpoint(Path(row["run"]) / "checkpoint.pt")["model"])
        row["test"] = evaluate_experiment(row["config"], model, device=device, split="test")
        del row["config"], row["higher_is_better"]
    tests = [r["test"]["mean"] for r in rows]
    return {
        "chosen": chosen["run"],
        "rule": "fewest diverged validation tasks, then the best validation mean",
        "runs": rows,
        "test_mean_over_runs": statistics.fmean(tests),
        "test_stdev_over_runs": statistics.stdev(tests),
    }
