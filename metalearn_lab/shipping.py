"""Shipped checkpoints: trained weights that travel inside the package, with a manifest.

``metalearn_lab/checkpoints/manifest.json`` lists, for each shipped experiment, the file, its
sha256, the config, the seed, the metric reached (mean ± 95% CI on the full test protocol) and
the training cost. :func:`verify_shipped` checks every file against its sha256; the test suite
also re-evaluates each one on a subset of test tasks. :func:`reevaluate_shipped` evaluates a shipped
checkpoint again with the current code (when what an evaluation records has grown) and rewrites
the evaluation's fields, keeping the training record.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from metalearn_lab.training import SHIPPED_DIR, load_checkpoint, save_checkpoint
from metalearn_lab.validation import check_int

MANIFEST = SHIPPED_DIR / "manifest.json"
CHECK_TASKS = 40
#: What a run reached, as the manifest and the results file record it (a shipped checkpoint holds a
#: copy written when it was shipped; the manifest's record is the current one).
RECORD_FIELDS = ("metric", "mean", "ci95", "n_tasks", "protocol", "transductive", "by_steps", "transductive_result",
                 "unrotated_test_1_query", "one_query_per_class_result")
#: What a results file keeps from training when its evaluation is redone (everything else is the evaluation's).
TRAINING_RECORD = ("experiment", "config", "history", "train_cpu_s", "train_wall_s", "device", "threads", "machine",
                   "torch", "commit", "selected_step", "selected_validation")
#: Why the shipped results were evaluated again (the "reevaluated" record's default reason).
REEVALUATION_REASON = "per-task values and the transductive field added; same checkpoint, same test tasks"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest() -> dict[str, Any]:
    """The manifest as a dict ``{experiment: entry}`` (empty if nothing is shipped)."""
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def verify_shipped() -> dict[str, str]:
    """Check every shipped file against the manifest's sha256; raise ``ValueError`` on a mismatch."""
    checked = {}
    for name, entry in read_manifest().items():
        path = SHIPPED_DIR / entry["file"]
        if not path.is_file():
            raise ValueError(f"manifest lists {path.name} for {name}, but the file is missing")
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise ValueError(f"{path} has sha256 {digest}, manifest says {entry['sha256']}: the file is damaged or was replaced")
        checked[name] = digest
    return checked


def without_values(results: dict[str, Any]) -> dict[str, Any]:
    """A results dict without its per-task ``values``, at any depth (``by_steps``, ``by_k_shot``, ...), for the manifest and printing.

    >>> without_values({"mean": 0.5, "values": [0.0, 1.0], "by_steps": {"1": {"mean": 0.5, "values": [0.0, 1.0]}}})
    {'mean': 0.5, 'by_steps': {'1': {'mean': 0.5}}}
    """
    if not isinstance(results, dict):
        return results
    return {k: without_values(v) for k, v in results.items() if k != "values"}


def downsample_history(history: dict[str, list], max_points: int = 400) -> dict[str, list]:
    """Average the per-step series into at most ``max_points`` bins (evaluations are kept as they are).

    >>> downsample_history({"step": list(range(10)), "loss": [float(i) for i in range(10)], "metric": [0.0] * 10}, 5)["loss"]
    [0.5, 2.5, 4.5, 6.5, 8.5]
    """
    max_points = check_int("max_points", max_points, minimum=1)
    steps = history.get("step", [])
    n = len(steps)
    if n <= max_points:
        return {k: list(v) for k, v in history.items()}
    out = {k: list(v) for k, v in history.items() if not isinstance(v, list) or len(v) != n}
    edges = [round(i * n / max_points) for i in range(max_points + 1)]
    for key in ("step", "loss", "metric"):
        values = history.get(key, [])
        if len(values) != n:
            continue
        out[key] = [sum(values[a:b]) / (b - a) for a, b in zip(edges[:-1], edges[1:])]
    return out


def ship_run(experiment: str, run: Path | None = None, *, overwrite: bool = False) -> dict[str, Any]:
    """Copy a finished run's weights (without optimizer state) into the package and record them.

    Refuses a run that has not finished (step < iterations) and, unless ``overwrite``, an
    experiment that is already shipped with different weights. A run that is the registry's run
    of ``experiment`` (:func:`~metalearn_lab.experiments.same_run`, with the same ``iterations``
    and ``eval_every``) is recorded with the registry's config: the same run, described with the
    fields and note the registry has now (a run may predate fields whose defaults it used).
    """
    from metalearn_lab.experiments import (
        EXPERIMENTS,
        ExperimentConfig,
        build_model,
        evaluate_experiment,
        run_dir,
        same_run,
    )

    run = Path(run) if run is not None else run_dir(experiment)
    ckpt = load_checkpoint(run / "checkpoint.pt")
    results_file = run / "results.json"
    if not results_file.exists() or ckpt["step"] < ckpt["config"]["iterations"]:
        raise ValueError(f"{run} is not a finished run (step {ckpt['step']} of {ckpt['config']['iterations']}); train it to the end first")
    if ckpt["config"]["name"] != experiment:
        raise ValueError(f"{run} holds a run of {ckpt['config']['name']!r}, not {experiment!r}")
    results = json.loads(results_file.read_text())
    registered = EXPERIMENTS.get(experiment)
    if (registered is not None and same_run(ckpt["config"], registered.to_dict())
            and all(ckpt["config"].get(k) == getattr(registered, k) for k in ("iterations", "eval_every"))):
        ckpt["config"] = results["config"] = registered.to_dict()
    config = ExperimentConfig.from_dict(ckpt["config"])
    model = build_model(config)
    model.load_state_dict(ckpt["model"])
    manifest = read_manifest()
    dest = SHIPPED_DIR / f"{experiment}.pt"
    tmp = SHIPPED_DIR / f".{experiment}.pt.new"
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    metrics = {k: v for k, v in without_values(results).items()
               if k in (*RECORD_FIELDS, "train_cpu_s", "train_wall_s", "device", "machine", "threads")}
    history = downsample_history(ckpt["history"])
    save_checkpoint(tmp, model, config=ckpt["config"], metrics=metrics, history=history, step=ckpt["step"], overwrite=True)
    if dest.exists() and not overwrite and experiment in manifest and sha256_of(dest) != manifest[experiment]["sha256"]:
        tmp.unlink()
        raise FileExistsError(f"{dest} exists and does not match the manifest; pass overwrite=True to replace it")
    shutil.move(tmp, dest)
    entry = {
        "file": dest.name, "sha256": sha256_of(dest), "bytes": dest.stat().st_size, "experiment": experiment,
        "seed": ckpt["config"]["seed"], "config": ckpt["config"], **metrics,
        "device": results.get("device"), "machine": results.get("machine"), "torch": results.get("torch"),
        "commit": results.get("commit"),
    }
    # A deterministic spot check: the metric on the first CHECK_TASKS test tasks, which the test
    # suite recomputes from the shipped file and compares to this number.
    n_check = min(CHECK_TASKS, config.eval_tasks)
    check = evaluate_experiment(config, model, n_tasks=n_check)
    entry["check_subset"] = {"n_tasks": check["n_tasks"], "mean": check["mean"]}
    manifest = read_manifest()  # read again: another experiment's entry may have changed meanwhile
    manifest[experiment] = entry
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    # the results page reads these
    results_dir = SHIPPED_DIR.parent / "results"
    results_dir.mkdir(exist_ok=True)
    shipped_results = dict(results)  # with the per-task values: anyone can recompute the interval
    shipped_results["history"] = history
    (results_dir / f"{experiment}.json").write_text(json.dumps(shipped_results, indent=1))
    return entry


def _shipped_entry(experiment: str) -> dict[str, Any]:
    """The manifest entry of a shipped experiment; ``ValueError`` naming the shipped ones otherwise."""
    manifest = read_manifest()
    if experiment not in manifest:
        shipped = ", ".join(sorted(manifest)) or "none"
        raise ValueError(f"experiment {experiment!r} is not shipped, so there is nothing to re-evaluate; "
                         f"shipped experiments: {shipped}")
    return manifest[experiment]


def reevaluate_shipped(experiment: str, *, reason: str = REEVALUATION_REASON, device: str = "cpu") -> dict[str, Any]:
    """Evaluate a shipped checkpoint once more on its experiment's test tasks and rewrite the evaluation's record.

    For when what an evaluation records has grown (per-task ``values``, ``transductive``, the
    protocol's batch-norm sentence) after a run was shipped: the same weights (checked against
    the manifest's sha256) and the same fixed test tasks, evaluated with the current code. The
    results file (``metalearn_lab/results/EXPERIMENT.json``) gets the new evaluation's fields and
    keeps its training record (:data:`TRAINING_RECORD`: history, training times, commit,
    config, ...); the manifest entry gets the new :data:`RECORD_FIELDS` and ``check_subset``. Both
    get a ``"reevaluated"`` record: commit, date, ``reason``, the evaluation's wall time, and the
    mean and interval recorded before, so that any change is visible. The checkpoint file itself
    is not touched.

    Returns the ``"reevaluated"`` record. Raises ``ValueError`` for an experiment that is not
    shipped (naming the shipped ones) and when the file does not match the manifest's sha256.
    """
    from metalearn_lab.experiments import ExperimentConfig, build_model, evaluate_experiment
    from metalearn_lab.experiments.runner import _commit

    entry = _shipped_entry(experiment)
    path = SHIPPED_DIR / entry["file"]
    if not path.is_file() or sha256_of(path) != entry["sha256"]:
        raise ValueError(f"{path} is missing or does not match the manifest's sha256; it is not the shipped checkpoint")
    results_file = SHIPPED_DIR.parent / "results" / f"{experiment}.json"
    if not results_file.is_file():
        raise ValueError(f"{experiment} is shipped without its results file {results_file}; ship the run again")
    old = json.loads(results_file.read_text())
    ckpt = load_checkpoint(path)
    config = ExperimentConfig.from_dict(ckpt["config"])
    model = build_model(config)
    model.load_state_dict(ckpt["model"])
    start = time.perf_counter()
    results = evaluate_experiment(config, model, device=device)  # the full test protocol
    wall_s = time.perf_counter() - start
    check = evaluate_experiment(config, model, n_tasks=min(CHECK_TASKS, config.eval_tasks), device=device)
    record = {
        "commit": _commit(), "date": datetime.date.today().isoformat(), "reason": reason,
        "eval_wall_s": round(wall_s, 1), "threads": _threads(),
        "previous": {k: old[k] for k in ("mean", "ci95", "n_tasks", "protocol") if k in old},
        "mean_change": results["mean"] - old["mean"] if isinstance(old.get("mean"), (int, float)) else None,
    }
    training = {k: old[k] for k in TRAINING_RECORD if k in old}
    dropped = sorted(set(old) - set(results) - set(training) - {"reevaluated"})
    if dropped:
        record["dropped"] = dropped  # fields of the old evaluation that the current one no longer writes
    results_file.write_text(json.dumps({**results, **training, "reevaluated": record}, indent=1))
    manifest = read_manifest()
    updated = {k: v for k, v in entry.items() if k not in RECORD_FIELDS}
    updated.update({k: v for k, v in without_values(results).items() if k in RECORD_FIELDS})
    updated["check_subset"] = {"n_tasks": check["n_tasks"], "mean": check["mean"]}
    updated["reevaluated"] = record
    manifest[experiment] = updated
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return record


def _threads() -> int:
    import torch

    return torch.get_num_threads()
