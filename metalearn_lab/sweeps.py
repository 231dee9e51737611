"""Grids of short registered runs: how a result depends on hyper-parameters, tasks and their number.

A :class:`Sweep` takes one registered experiment (:data:`metalearn_lab.experiments.EXPERIMENTS`),
the fields it varies (every combination of the values in ``grid`` is one run), the fields every run
shares (``fixed``: usually a shorter budget), and, optionally, other task distributions to test
each trained model on (``test_on``). :func:`run_sweep` trains every point with the experiment
runner (seeded, the test tasks locked while it trains), scores it on validation tasks (what a
choice between points may read) and records the runner's one final test evaluation. The result is
a plain dict that :func:`save_sweep` writes as JSON.

The sweeps a lesson shows are run once (``metalearn-lab sweep NAME``) and their JSON ships in
``metalearn_lab/results/sweeps/``; :func:`sweep_results` loads it, or, in quick mode, computes a
tiny version of the grid live (the same code path in seconds; its numbers are not results).

Choosing a point reads validation scores only (:func:`best_point`); a lesson then reports that
point's test score, once. This is the honest-evaluation rule of the experiment runner, applied to
hyper-parameters (Finn et al. 2017 tuned on validation tasks; Oliver et al. 2018 show what goes
wrong when a benchmark's test set picks the settings).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from metalearn_lab import paths
from metalearn_lab.validation import check_int

#: Where shipped sweep results live (one JSON per sweep).
SHIPPED_SWEEPS_DIR = Path(__file__).parent / "results" / "sweeps"
#: The keys of a results summary that a sweep keeps (per-task values are dropped).
SUMMARY_KEYS = ("metric", "mean", "ci95", "median", "n_diverged", "n_tasks", "mean_without_diverged", "protocol")


@dataclass(frozen=True)
class Sweep:
    """A grid of short runs of one registered experiment.

    Parameters
    ----------
    name : str
        The sweep's name (``metalearn-lab sweep NAME``; its JSON is ``NAME.json``).
    experiment : str
        The registered experiment every point starts from.
    grid : dict field -> tuple of values
        The fields varied; every combination is one run (order: the dict's, the last field fastest).
    fixed : dict field -> value
        Changes every run shares (a shorter budget, no periodic evaluation).
    per_point : callable ``(values) -> dict``, optional
        Further changes that depend on the point (e.g. evaluate with the number of inner steps the
        point trains with).
    test_on : dict label -> dict of config changes
        Extra test evaluations of each trained model, on another task distribution (read once).
    validation_tasks : int >= 2
        Validation tasks per point (what choosing between points may read).
    train_tasks : int, 0 or >= 2
        If > 0, also score each model on that many tasks drawn from what it trained on (the pool
        of a pool-limited run): the other half of a generalisation gap. Needs a config with
        ``training_tasks()``.
    quick_grid : dict field -> tuple of values
        The tiny grid of quick mode (default: the first two values of each field).
    note : str
        What the sweep measures and how it differs from a full run, in words.

    Examples
    --------
    >>> sweep = Sweep("demo", "sinusoid-maml", grid={"inner_lr": (0.01, 0.1), "inner_steps": (1, 2)})
    >>> [p for p in sweep.points()][:2]
    [{'inner_lr': 0.01, 'inner_steps': 1}, {'inner_lr': 0.01, 'inner_steps': 2}]
    >>> len(sweep.points()), len(sweep.points(quick=True))
    (4, 4)
    >>> Sweep("bad", "sinusoid-maml", grid={"inner_lr": ()})
    Traceback (most recent call last):
    ...
    ValueError: grid['inner_lr'] must hold at least one value, got ()
    """

    name: str
    experiment: str
    grid: dict[str, tuple] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    per_point: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    test_on: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation_tasks: int = 200
    train_tasks: int = 0
    quick_grid: dict[str, tuple] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not self.grid:
            raise ValueError(f"sweep {self.name!r} needs a grid: a dict field -> values")
        for key, values in {**self.grid, **(self.quick_grid or {})}.items():
            if not isinstance(values, (tuple, list)) or not values:
                raise ValueError(f"grid[{key!r}] must hold at least one value, got {values!r}")
        # a 95% interval needs 2 tasks; train_tasks 0: no score on training tasks
        object.__setattr__(self, "validation_tasks", check_int("validation_tasks", self.validation_tasks, minimum=2))
        train_tasks = check_int("train_tasks", self.train_tasks, minimum=0)
        if train_tasks == 1:
            raise ValueError("train_tasks must be 0 (no score on training tasks) or an integer >= 2, got 1")
        object.__setattr__(self, "train_tasks", train_tasks)

    def points(self, *, quick: bool = False) -> list[dict[str, Any]]:
        """Every combination of the grid's values (the quick grid's when ``quick``), as dicts."""
        grid = (self.quick_grid or {k: tuple(v[:2]) for k, v in self.grid.items()}) if quick else self.grid
        keys = list(grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]

    def config(self, values: dict[str, Any], *, quick: bool = False):
        """The experiment config of one point (the quick config, with the point's values, when ``quick``)."""
        from metalearn_lab.experiments import get_config

        base = get_config(self.experiment, quick=False).replace(**self.fixed)
        changes = {**values, **(self.per_point(values) if self.per_point else {})}
        config = base.replace(name=f"{self.name}/{point_label(values)}", **changes)
        if quick:
            config = config.quick().replace(**changes)
        return config


def point_label(values: dict[str, Any]) -> str:
    """A point's values as a short, file-safe label.

    >>> point_label({"inner_lr": 0.01, "inner_steps": 2, "amplitude": (0.1, 2.5)})
    'inner_lr=0.01,inner_steps=2,amplitude=0.1-2.5'
    """
    def text(v):
        if isinstance(v, (tuple, list)):
            return "-".join(text(x) for x in v)
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    return ",".join(f"{k}={text(v)}" for k, v in values.items())


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    kept = {k: result[k] for k in SUMMARY_KEYS if k in result}
    if "by_steps" in result:
        kept["by_steps"] = {s: {k: v[k] for k in SUMMARY_KEYS if k in v} for s, v in result["by_steps"].items()}
    return kept


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _train_task_score(config, model, n_tasks: int) -> dict[str, Any]:
    """Query MSE on tasks drawn from what the run trained on (its pool), adapted as at test time."""
    import torch.nn.functional as F

    from metalearn_lab.maml import adapt_and_predict
    from metalearn_lab.metrics import summarize_mse

    tasks = config.training_tasks().sample(n_tasks, config.eval_k_shot, config.eval_n_query,
                                           generator=torch.Generator().manual_seed(config.eval_seed + 2))
    batch = tasks.as_tuple()
    steps = max(config.eval_steps)
    prediction = adapt_and_predict(model, batch, F.mse_loss, inner_steps=steps, inner_lr=config.inner_lr)
    return _summary(summarize_mse(((prediction - batch[3]) ** 2).mean(dim=(1, 2))))


def run_point(sweep: Sweep, values: dict[str, Any], *, quick: bool = False) -> dict[str, Any]:
    """Train one point of ``sweep`` and score it: validation, the run's test evaluation, ``test_on``.

    Returns ``{"values", "config", "validation", "test", "test_on", "train_tasks", "final_loss",
    "train_cpu_s", "train_wall_s"}``.
    """
    from metalearn_lab.experiments import build_model, evaluate_experiment, train_experiment

    config = sweep.config(values, quick=quick)
    model = build_model(config)
    with tempfile.TemporaryDirectory() as out:
        result = train_experiment(config, out_dir=out, progress=False, model=model)
    losses = [v for v in result["history"].get("loss", []) if v is not None and math.isfinite(v)]
    tail = losses[-max(1, len(losses) // 10):] if losses else []
    point = {
        "values": values,
        "config": config.to_dict(),
        "validation": _summary(evaluate_experiment(config, model, split="validation", n_tasks=sweep.validation_tasks)),
        "test": _summary(result),
        "test_on": {label: _summary(evaluate_experiment(config.replace(**changes), model, split="test"))
                    for label, changes in sweep.test_on.items()},
        "final_loss": sum(tail) / len(tail) if tail else float("nan"),
        "train_cpu_s": result["train_cpu_s"],
        "train_wall_s": result["train_wall_s"],
    }
    if sweep.train_tasks:
        point["train_tasks"] = _train_task_score(config, model, sweep.train_tasks)
    return point


def run_sweep(sweep: Sweep | str, *, quick: bool = False, out: str | Path | None = None, progress: bool = True,
              threads: int | None = 1) -> dict[str, Any]:
    """Train and score every point of ``sweep``; return (and, with ``out``, keep writing) its results.

    With ``out`` the results are written after every point, and a later call with the same ``out``
    skips the points already there, so a long sweep can stop and go on. ``threads`` pins
    PyTorch's CPU threads (one is fastest for these small networks, and kind to a shared machine).

    Returns
    -------
    dict
        ``{"sweep", "experiment", "grid", "fixed", "quick", "higher_is_better", "points": [...],
        "torch", "commit", "machine", "note", "wall_s"}``; every point as :func:`run_point` gives it.
    """
    from metalearn_lab.experiments import recipe_for
    from metalearn_lab.experiments.runner import _commit, _machine_label

    threads = None if threads is None else check_int("threads", threads)
    sweep = get_sweep(sweep) if isinstance(sweep, str) else sweep
    points = sweep.points(quick=quick)
    results: dict[str, Any] = {
        "sweep": sweep.name, "experiment": sweep.experiment, "quick": quick,
        "fixed": _jsonable(sweep.fixed), "test_on": _jsonable(sweep.test_on),
        "higher_is_better": recipe_for(sweep.config(points[0]).algorithm).higher_is_better,
        "note": sweep.note, "points": [], "wall_s": 0.0,
    }
    results["grid"] = _jsonable({k: [p[k] for p in _unique(points, k)] for k in sweep.grid})
    out = Path(out) if out is not None else None
    if out is not None and out.exists():
        previous = json.loads(out.read_text())
        if previous.get("sweep") == sweep.name and previous.get("quick") == quick:
            results["points"] = previous["points"]
            results["wall_s"] = previous.get("wall_s", 0.0)
    done = {point_label(_untuple(p["values"], sweep)) for p in results["points"]}
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        from tqdm.auto import tqdm

        todo = [v for v in points if point_label(v) not in done]
        for values in tqdm(todo, desc=sweep.name, disable=not progress):
            start = time.perf_counter()
            results["points"].append(_jsonable(run_point(sweep, values, quick=quick)))
            results["wall_s"] += time.perf_counter() - start
            results.update({"torch": torch.__version__, "commit": _commit(), "machine": _machine_label(torch.device("cpu")),
                            "threads": torch.get_num_threads()})
            if out is not None:
                save_sweep(results, out)
    finally:
        torch.set_num_threads(previous_threads)
    results.setdefault("torch", torch.__version__)
    return results


def _unique(points: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    seen, kept = set(), []
    for p in points:
        if repr(p[key]) not in seen:
            seen.add(repr(p[key]))
            kept.append(p)
    return kept


def _untuple(values: dict[str, Any], sweep: Sweep) -> dict[str, Any]:
    """A point's values as read back from JSON (lists) with tuples where the grid has tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def save_sweep(results: dict[str, Any], path: str | Path) -> Path:
    """Write sweep results as JSON (``NaN``/``inf`` as strings, so any JSON reader takes it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(results), indent=1))
    return path


def load_sweep(name: str, directory: str | Path = SHIPPED_SWEEPS_DIR) -> dict[str, Any] | None:
    """The shipped results of sweep ``name`` (``directory/NAME.json``), or ``None`` if there are none."""
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        return None
    results = json.loads(path.read_text())
    if results.get("sweep") != name:
        raise ValueError(f"{path} holds the sweep {results.get('sweep')!r}, not {name!r}")
    return results


def sweep_results(name: str, *, quick: bool | None = None, progress: bool = False) -> dict[str, Any]:
    """The results a lesson shows: shipped ones in classroom mode, a tiny grid computed live in quick mode.

    Classroom mode without shipped results runs the whole sweep (minutes to an hour, see the sweep's
    note). The returned dict has ``"source"``: ``"shipped"``, ``"computed"`` or ``"quick"``.
    """
    quick = paths.is_quick() if quick is None else quick
    if not quick:
        shipped = load_sweep(name)
        if shipped is not None:
            return {**shipped, "source": "shipped"}
    results = run_sweep(name, quick=quick, progress=progress)
    return {**results, "source": "quick" if quick else "computed"}


def value(point: dict[str, Any], metric: str = "validation", *, statistic: str = "mean") -> float:
    """One number of a point: ``metric`` is "validation", "test", "train_tasks" or "test_on:LABEL".

    A diverged summary (mean above 1e3) counts as infinitely bad for choosing, but is returned as
    it is stored. Strings written for NaN/inf are read back as floats.

    >>> value({"validation": {"mean": 0.5}}), value({"test_on": {"high": {"mean": "inf"}}}, "test_on:high")
    (0.5, inf)
    """
    if metric.startswith("test_on:"):
        summary = point["test_on"][metric.split(":", 1)[1]]
    else:
        summary = point[metric]
    return float(summary[statistic])


def best_point(results: dict[str, Any], *, metric: str = "validation", where: dict[str, Any] | None = None) -> dict[str, Any]:
    """The point with the best ``metric`` (validation by default) among those matching ``where``.

    NaN counts as worst. Raises ``ValueError`` if no point matches ``where``.

    >>> results = {"higher_is_better": False, "points": [
    ...     {"values": {"a": 1}, "validation": {"mean": 0.4}, "test": {"mean": 0.1}},
    ...     {"values": {"a": 2}, "validation": {"mean": 0.3}, "test": {"mean": 0.9}}]}
    >>> best_point(results)["values"], best_point(results, metric="test")["values"]
    ({'a': 2}, {'a': 1})
    """
    points = select_points(results, where)
    if not points:
        raise ValueError(f"no point of the sweep matches where={where}")
    sign = -1.0 if results.get("higher_is_better", False) else 1.0

    def key(point):
        v = value(point, metric)
        return math.inf if math.isnan(v) else sign * v
    return min(points, key=key)


def select_points(results: dict[str, Any], where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The points whose values match every ``field: value`` of ``where`` (lists and tuples compare equal)."""
    where = where or {}

    def same(a, b):
        return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b
    return [p for p in results["points"] if all(same(p["values"].get(k), v) for k, v in where.items())]


def grid_table(results: dict[str, Any], rows: str, columns: str, *, metric: str = "validation",
               where: dict[str, Any] | None = None, statistic: str = "mean") -> tuple[list, list, list[list[float]]]:
    """A 2-D table of one metric: ``(row values, column values, table[row][column])`` for heat maps.

    Points matching ``where`` are arranged by their ``rows`` and ``columns`` fields; a missing
    combination is NaN. Raises ``ValueError`` if two matching points share a cell (fix the other
    fields with ``where``).

    >>> results = {"points": [{"values": {"a": a, "b": b}, "validation": {"mean": a * b}} for a in (1, 2) for b in (3, 4)]}
    >>> grid_table(results, "a", "b")
    ([1, 2], [3, 4], [[3.0, 4.0], [6.0, 8.0]])
    """
    points = select_points(results, where)
    row_values = sorted({_key(p["values"][rows]) for p in points})
    column_values = sorted({_key(p["values"][columns]) for p in points})
    table = [[math.nan] * len(column_values) for _ in row_values]
    filled = set()
    for p in points:
        i, j = row_values.index(_key(p["values"][rows])), column_values.index(_key(p["values"][columns]))
        if (i, j) in filled:
            raise ValueError(f"two points share the cell {rows}={row_values[i]}, {columns}={column_values[j]}: "
                             "fix the other fields with where={...}")
        filled.add((i, j))
        table[i][j] = value(p, metric, statistic=statistic)
    return [_unkey(v) for v in row_values], [_unkey(v) for v in column_values], table


def _key(v):
    return tuple(v) if isinstance(v, list) else v


def _unkey(v):
    return list(v) if isinstance(v, tuple) else v


# --- the sweeps the lessons show --------------------------------------------------------------------

def _evaluate_as_trained(values: dict[str, Any]) -> dict[str, Any]:
    """Score each point after the adaptation it trained for: its own number of inner steps."""
    return {"eval_steps": (values.get("inner_steps", 1),)}


SHORT_RUN = {"eval_every": 0, "checkpoint_every": 0, "eval_k_shot": 10, "eval_tasks": 600}

#: The sweeps of the lessons (``metalearn-lab sweep NAME`` runs one; its JSON ships in ``results/sweeps``).
SWEEPS: dict[str, Sweep] = {s.name: s for s in [
    Sweep(
        "sinusoid-sensitivity", "sinusoid-maml",
        grid={"meta_batch_size": (5, 25), "inner_steps": (1, 2, 5), "inner_lr": (0.003, 0.01, 0.03, 0.1)},
        fixed={**SHORT_RUN, "iterations": 1000, "seed": 0},
        per_point=_evaluate_as_trained,
        quick_grid={"meta_batch_size": (5,), "inner_steps": (1, 2), "inner_lr": (0.01, 0.1)},
        note="MAML on Finn et al.'s sinusoids, 1,000 meta-steps per point (lesson 04's runs take 70,000: "
             "these are short runs on a shared 2-core machine), K = 10 support points in training and "
             "evaluation; each point evaluated after the inner steps and with the inner learning rate it trained with",
    ),
    Sweep(
        "sinusoid-shift", "sinusoid-maml",
        grid={"amplitude": ((0.1, 5.0), (0.1, 2.5), (2.5, 5.0))},
        fixed={**SHORT_RUN, "iterations": 4000, "seed": 0, "eval_steps": (1, 10)},
        test_on={"A 0.1-2.5": {"amplitude": (0.1, 2.5)}, "A 2.5-5": {"amplitude": (2.5, 5.0)},
                 "A 5-10": {"amplitude": (5.0, 10.0)}},
        quick_grid={"amplitude": ((0.1, 5.0), (0.1, 2.5))},
        note="MAML trained on one range of sinusoid amplitudes, tested on others (phases U[0, pi] throughout); "
             "4,000 meta-steps of 25 tasks per run, K = 10, one inner step of 0.01 in training, 1 and 10 at test",
    ),
    Sweep(
        "sinusoid-task-pool", "sinusoid-maml",
        grid={"n_train_tasks": (1, 3, 10, 100, 1000, 0)},
        fixed={**SHORT_RUN, "iterations": 4000, "seed": 0, "eval_steps": (1, 10)},
        train_tasks=200,
        quick_grid={"n_train_tasks": (10, 0)},
        note="MAML on a pool of 1, 3, 10, 100 or 1,000 distinct sinusoid tasks, or a new task every time (0), "
             "with the same budget: 4,000 meta-steps of 25 tasks (100,000 task draws); validation and test on new tasks",
    ),
]}


def get_sweep(name: str) -> Sweep:
    """The sweep registered under ``name``; ``ValueError`` naming the valid ones otherwise."""
    if name not in SWEEPS:
        raise ValueError(f"unknown sweep {name!r}; choose one of {', '.join(SWEEPS)}")
    return copy.copy(SWEEPS[name])
