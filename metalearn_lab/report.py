"""The results page: measured numbers next to the targets and the papers, from the results files.

``write_results_page`` turns ``metalearn_lab/results/*.json`` (written by ``metalearn-lab ship``)
into Markdown with tables and a figure of learning curves; ``book/build.py`` calls it on every
build, so the page never holds a number typed by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from metalearn_lab.metrics import format_mse
from metalearn_lab.validation import check_int

RESULTS_DIR = Path(__file__).parent / "results"

# experiment, what is measured, our target, the published numbers it is compared with (keys of the
# table of published results, metalearn_lab.experiments.published)
TARGETS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("sinusoid-maml", "sinusoid MAML, K=5, MSE after 10 steps", "≤ 0.40", ("sinusoid-maml-k5-10step",)),
    ("sinusoid-pretrain", "sinusoid pretrained + fine-tune, K=5, MSE after 10 steps", "(baseline)", ("sinusoid-pretrain-k5-10step",)),
    ("omniglot-maml-5w1s", "Omniglot 5-way 1-shot, MAML", "≥ 98.0%", ("maml-omniglot-5w1s",)),
    ("omniglot-fomaml-5w1s", "Omniglot 5-way 1-shot, first-order MAML", "≥ 97.5%", ("fomaml-omniglot-5w1s",)),
    ("omniglot-protonet-5w1s", "Omniglot 5-way 1-shot, ProtoNets", "≥ 98.5%", ("protonet-omniglot-5w1s",)),
    ("omniglot-protonet-20w1s", "Omniglot 20-way 1-shot, ProtoNets", "≥ 95.0%", ("protonet-omniglot-20w1s",)),
    ("omniglot-reptile-5w1s", "Omniglot 5-way 1-shot, Reptile", "(no target)", ("reptile-omniglot-5w1s", "reptile-transductive-omniglot-5w1s")),
    ("omniglot-siamese", "Lake's 20-way within-alphabet one-shot runs, Siamese", "≥ 92%", ("siamese-koch", "humans-lake-runs")),
    ("omniglot-reptile-5w1s-nichol", "Omniglot 5-way 1-shot, Reptile with Nichol et al.'s protocol (each query alone)",
     "(no target: 4% of their steps)", ("reptile-omniglot-5w1s", "reptile-transductive-omniglot-5w1s")),
    ("sinusoid-bayes-sine", "sinusoid, Bayes on (sin x, cos x), prior by empirical Bayes, K=5 MSE", "(reference)", ()),
    ("sinusoid-bayes-rbf", "sinusoid, RBF Gaussian process by empirical Bayes, K=5 MSE", "(reference)", ()),
    ("sinusoid-bayes-features", "sinusoid, Bayes on meta-learned features (ALPaCA-style), K=5 MSE", "(no target)", ()),
    ("sinusoid-cnp", "sinusoid, conditional neural process, K=5 MSE", "(no target)", ()),
    ("sinusoid-transformer", "sinusoid, in-context transformer, K=5 MSE", "(no target)", ()),
    ("preference-maml", "personalisation (simulated users), MAML adapted to 5 ratings: MSE", "(no paper)", ()),
    ("preference-pooled", "personalisation, one model that ignores the user: MSE", "(baseline)", ()),
    ("point-robot-maml", "2-D point robot, MAML: return after 3 updates", "(no target)", ("maml-point-robot-3step",)),
    ("point-robot-scratch", "2-D point robot, a policy learning from scratch: return after 15 updates", "(baseline)", ()),
]

#: How each shipped run's protocol differs from the paper it is compared with (the papers' protocols
#: are in the table of published results, :mod:`metalearn_lab.experiments.published`). Facts from
#: the papers and their authors' code; our side from the run's config.
PROTOCOL_DIFFERENCES: dict[str, list[str]] = {
    "sinusoid-maml": [
        "Finn et al. (2017, Appendix C.1, Table 2) meta-train with K = 10 and report K = 5 and 10; we train with K = 10 "
        "and test at K = 5 only, on 600 tasks with 100 query points each",
        "the seed was chosen among three on 600 validation tasks; the paper reports one run",
    ],
    "sinusoid-pretrain": [
        "Finn et al. fine-tune the pretrained network with an automatically tuned step size (0.01 at K = 5 in their "
        "Fig. 2); we use the fixed inner_lr 0.01",
        "the seed was chosen among three on 600 validation tasks",
    ],
    "omniglot-maml-5w1s": [
        "Conv4 with 2×2 max-pooling; Finn et al.'s Omniglot network uses stride-2 convolutions (§5.2, A.1)",
        "meta-batch 8 for 7,400 steps (59,200 tasks); theirs 32 for 60,000 (1.9 million tasks)",
        "inner_lr 0.4 on the mean cross-entropy; their code sums the support losses, so their 0.4 is 2.0 on a mean",
        "15 queries a class at test (batch norm normalises 75 queries together); their code uses 1 a class "
        "(the row below evaluates the same weights with 1 query a class)",
        "1,200/423 characters, no validation characters (old protocol); their code holds out 100 for validation",
    ],
    "omniglot-fomaml-5w1s": [
        "the published 98.3% is Nichol et al.'s (2018, their Omniglot table, transductive), not Finn et al.'s (who report "
        "first-order MAML on MiniImagenet only)",
        "Conv4 with max-pooling, meta-batch 8 for 34,044 steps, 15 queries a class at test; 1,200/423 characters, "
        "no validation characters (old protocol)",
    ],
    "omniglot-protonet-5w1s": [
        "Snell et al. (2017, §3.1) choose the training length on Vinyals' 172 validation characters, then retrain on "
        "all 1,200; we train on the 1,200 for a fixed schedule with no validation characters (old protocol)",
        "Snell et al. average 1,000 test episodes with no interval; we use 600 fixed tasks with a Student-t interval",
    ],
    "omniglot-protonet-20w1s": [
        "as the 5-way row: no validation characters (old protocol); 600 test tasks instead of 1,000 episodes",
    ],
    "omniglot-reptile-5w1s": [
        "plain SGD in the inner loop, queries classified together (transductive), 600 steps; Nichol et al. "
        "(2018) use Adam (β1 = 0) on mini-batches for 100,000 steps and report both batchings",
        "no validation characters (old protocol)",
    ],
    "omniglot-reptile-5w1s-nichol": [
        "4,000 of Nichol et al.'s 100,000 meta-steps (their schedule compressed: the outer step is annealed over 4,000)",
        "100 of the 1,200 training characters held out for validation (their code has no validation set)",
        "tested on 600 tasks of rotated test characters with 15 queries a class, each query alone; their code "
        "tests unrotated characters with 1 query a class over 10,000 tasks (our 200-task run of that protocol is "
        "in the results file as unrotated_test_1_query)",
    ],
    "omniglot-siamese": [
        "Koch et al. (2015) report 92.0% on 400 one-shot trials they drew themselves from 10 evaluation alphabets "
        "and 4 drawers, with 105×105 images and early stopping on 320 validation trials; we test on Lake's 20 runs "
        "(all_runs.zip) with 28×28 images and no validation alphabets (old protocol)",
        "Koch et al. train on 12 of the 20 drawers; we train on all drawers of the 30 background alphabets",
    ],
}


def selection_cell(result: dict[str, Any]) -> str:
    """What was chosen on what: the validation-selected step, the old protocol, or the last step.

    >>> selection_cell({"seed_selection": {"chosen_seed": 1, "seeds": [0, 1, 2], "on": "600 validation tasks"}})
    'seed 1 (against 0, 2), chosen on 600 validation tasks; last step of each run'
    >>> selection_cell({"selected_step": 400, "config": {"iterations": 500}})
    'weights of step 400 of 500, best on validation tasks'
    >>> selection_cell({"config": {"iterations": 10, "validation_characters": 0}})
    'last step; **old protocol**: no validation split'
    >>> selection_cell({"config": {"iterations": 10, "validation_characters": 100}})
    'last step; validation tasks only during training'
    """
    config = result.get("config", {})
    seeds = result.get("seed_selection")
    if seeds is not None:
        others = ", ".join(str(s) for s in seeds["seeds"] if s != seeds["chosen_seed"])
        return f"seed {seeds['chosen_seed']} (against {others}), chosen on {seeds['on']}; last step of each run"
    if "selected_step" in result:
        return f"weights of step {result['selected_step']:,} of {config.get('iterations', 0):,}, best on validation tasks"
    if is_old_protocol(result):
        return "last step; **old protocol**: no validation split"
    return "last step; validation tasks only during training"


def is_old_protocol(result: dict[str, Any]) -> bool:
    """A run trained before validation splits existed (its progress was watched on test tasks).

    The run's config is read as the registry reads it, so a config written before the validation
    fields existed gets their legacy value (0: no validation split).
    """
    config = result.get("config", {})
    if "algorithm" in config:
        from metalearn_lab.experiments import ExperimentConfig

        try:
            config = ExperimentConfig.from_dict(config).to_dict()
        except (KeyError, TypeError, ValueError):
            pass
    return config.get("validation_characters") == 0 or config.get("validation_alphabets") == 0


#: Experiments evaluated at several K (``by_k_shot`` in their results), for :func:`k_shot_table`.
K_SHOT_EXPERIMENTS = ("sinusoid-bayes-sine", "sinusoid-bayes-rbf", "sinusoid-bayes-features", "sinusoid-cnp",
                      "sinusoid-transformer")


def published_cell(keys: tuple[str, ...]) -> str:
    """The published numbers of a row, each with its paper, table and evaluation mode."""
    from metalearn_lab.experiments.published import published

    return "; ".join(published(key).citation() for key in keys)


def load_results(results_dir: str | Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """Every ``<experiment>.json`` in ``results_dir``, keyed by experiment name."""
    results = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        data = json.loads(path.read_text())
        if "experiment" in data:
            results[data["experiment"]] = data
    return results


def format_result(result: dict[str, Any]) -> str:
    mean, half = result["mean"], result["ci95"]
    if result["metric"].startswith("accuracy"):
        return f"{100 * mean:.1f} ± {100 * half:.1f}%"
    return format_mse(result)


def _seconds(seconds: float) -> str:
    """``52.4`` -> ``"52 s"``; from two minutes on, as :func:`_hours` writes it."""
    return f"{seconds:.0f} s" if seconds < 120 else _hours(seconds)


def _hours(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def training_cost(r: dict[str, Any]) -> str:
    """Wall time of training and where it ran; a run that used a GPU names the card and its share.

    Takes a results dict (``train_wall_s``, ``device``, ``machine``, ``threads``) or a checkpoint's
    metrics (``wall_s``, ``devices``, ``machines``).

    >>> training_cost({"train_wall_s": 1200, "device": "cpu", "threads": 1})
    '20 min on cpu, 1 thread(s)'
    >>> training_cost({"wall_s": 600, "devices": ["cuda"], "machines": ["cuda: NVIDIA H100 80GB HBM3, torch 2.11.0+cu130"]})
    '10 min: NVIDIA H100 80GB HBM3'
    >>> training_cost({"wall_s": 900, "devices": ["cpu", "cuda"], "machines": ["cpu: x86_64 4 cores, torch 2.13.0 (steps 0-10, 5 min)",
    ...                                                                    "cuda: A100, torch 2.11.0 (steps 10-20, 10 min)"]})
    '15 min: 4-core CPU (steps 0-10, 5 min) + A100 (steps 10-20, 10 min)'
    """
    wall = r.get("train_wall_s", r.get("wall_s", float("nan")))
    device = r.get("device") or "+".join(r.get("devices", [])) or "cpu"
    machine = r.get("machine") or "; ".join(r.get("machines", []))
    if "cuda" not in device:
        threads = f", {r['threads']} thread(s)" if "threads" in r else ""
        return f"{_hours(wall)} on {device}{threads}"
    parts = []
    for entry in (machine or device).split("; "):
        kind, _, rest = entry.partition(": ")
        cores = re.search(r"(\d+) cores", rest)
        name = rest.split(", torch")[0] if kind == "cuda" else f"{cores.group(1)}-core CPU" if cores else "CPU"
        detail = rest[rest.index("(") :] if "(" in rest else ""
        parts.append(f"{name} {detail}".strip())
    return f"{_hours(wall)}: " + " + ".join(parts)


def transductive_cell(result: dict[str, Any]) -> str:
    """Whether our evaluation used the test batch's statistics in batch norm, as the results file records it.

    >>> transductive_cell({"transductive": True}), transductive_cell({"transductive": False}), transductive_cell({})
    ('yes', 'no', 'not recorded')
    """
    return {True: "yes", False: "no"}.get(result.get("transductive"), "not recorded")


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table: experiment, reached (mean ± 95% CI), transductive, what was chosen on what, target,
    published, training cost, steps. A results file's ``one_query_per_class_result`` (the same weights
    with Finn et al.'s test batching) gets a row of its own under its experiment.

    One row per entry of :data:`TARGETS`, then one for every shipped result that :data:`TARGETS`
    lacks (labelled with its experiment name), so that no shipped run is left off the page.
    """
    rows = ["| experiment | reached (mean ± 95% CI) | transductive | chosen | target | published "
            "| training (wall time, where) | steps |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    listed = {name for name, *_ in TARGETS}
    extra = [(name, name, "(no target)", ()) for name in results if name not in listed]
    for name, label, target, keys in TARGETS + extra:
        r = results.get(name)
        paper = published_cell(keys)
        if r is None:
            rows.append(f"| {label} | not trained yet | | | {target} | {paper} | | |")
            continue
        cost = training_cost(r)
        rows.append(f"| {label} | **{format_result(r)}** | {transductive_cell(r)} | {selection_cell(r)} | {target} "
                    f"| {paper} | {cost} | {r['config']['iterations']} |")
        other = r.get("one_query_per_class_result")
        if other is not None:
            rows.append(f"| {label}, the same weights tested with 1 query a class (Finn et al.'s batching) "
                        f"| {format_result({**r, **other})} | {transductive_cell(other)} | (as above) | | {paper} | | |")
    return "\n".join(rows)


def sinusoid_table(results: dict[str, dict[str, Any]]) -> str:
    """Query MSE (K=5) after 0, 1, 5, 10 fine-tuning steps for MAML and the pretrained baseline."""
    from metalearn_lab.experiments.published import published

    paper = {name: [""] + [published(f"{name}-k5-{s}step").text() for s in (1, 5, 10)]
             for name in ("sinusoid-maml", "sinusoid-pretrain")}
    rows = ["| model | 0 steps | 1 step | 5 steps | 10 steps |", "| --- | --- | --- | --- | --- |"]
    for name in ("sinusoid-maml", "sinusoid-pretrain"):
        r = results.get(name)
        if r is None or "by_steps" not in r:
            continue
        cells = [format_mse(r["by_steps"][s]) for s in ("0", "1", "5", "10")]
        rows.append(f"| {name} (ours) | " + " | ".join(cells) + " |")
        rows.append(f"| {name} (Finn et al. 2017, Appendix C.1, Table 2) | " + " | ".join(paper[name]) + " |")
    return "\n".join(rows)


def mse_by_k_table(rows: dict[str, dict[int, Any]], k_shots: tuple[int, ...] = (1, 2, 5, 10), digits: int = 3, *,
                   gradient_based: tuple[str, ...] = ("MAML",)) -> str:
    """Markdown table of query MSE (mean ± 95% CI over tasks) per learner and K, for lessons.

    ``rows``: learner -> {K: per-task MSE ``[tasks]``}. For learners whose name contains one of
    ``gradient_based`` a cell also counts the tasks on which gradient descent blew up
    (:func:`metalearn_lab.metrics.format_mse`); for the others a large error is a poor fit, not a
    divergence (a 1-nearest-neighbour guess on a wave of amplitude 5 can cost more than 25), and
    the cell is the plain mean ± interval.

    >>> import torch
    >>> print(mse_by_k_table({"zero": {1: torch.tensor([1.0, 3.0])}}, k_shots=(1,), digits=1))
    | learner | K = 1 |
    | --- | --- |
    | zero | 2.0 ± 12.7 |
    """
    from metalearn_lab.metrics import mean_confidence_interval, summarize_mse

    digits = check_int("digits", digits, minimum=0)

    def cell(name, values):
        if any(tag in name for tag in gradient_based):
            return format_mse(summarize_mse(values), digits)
        mean, half = mean_confidence_interval(values)
        return f"{mean:.{digits}f} ± {half:.{digits}f}"

    lines = ["| learner | " + " | ".join(f"K = {k}" for k in k_shots) + " |", "| --- |" + " --- |" * len(k_shots)]
    for name, by_k in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(name, by_k[k]) for k in k_shots) + " |")
    return "\n".join(lines)


def k_shot_table(results: dict[str, dict[str, Any]]) -> str:
    """Query MSE at every K of the sinusoid learners that adapt without gradient steps (``by_k_shot``)."""
    shots = sorted({int(k) for name in K_SHOT_EXPERIMENTS if name in results for k in results[name].get("by_k_shot", {})})
    rows = ["| experiment | " + " | ".join(f"K = {k}" for k in shots) + " | chosen at step |",
            "| --- |" + " --- |" * (len(shots) + 1)]
    for name in K_SHOT_EXPERIMENTS:
        r = results.get(name)
        if r is None or "by_k_shot" not in r:
            continue
        cells = [format_mse(r["by_k_shot"][str(k)]) if str(k) in r["by_k_shot"] else "" for k in shots]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {r.get('selected_step', r['config']['iterations']):,} |")
    return "\n".join(rows)


def load_sweeps(sweeps_dir: str | Path = RESULTS_DIR / "sweeps") -> dict[str, dict[str, Any]]:
    """Every shipped sweep ``sweeps_dir/<sweep>.json`` (written by ``metalearn-lab sweep``), keyed by its name."""
    sweeps = {}
    for path in sorted(Path(sweeps_dir).glob("*.json")):
        data = json.loads(path.read_text())
        if "sweep" in data:
            sweeps[data["sweep"]] = data
    return sweeps


def _point_label(values: dict[str, Any]) -> str:
    """``{"inner_lr": 0.01, "amplitude": [0.1, 5.0]}`` -> ``"inner_lr=0.01, amplitude=0.1-5"``."""
    def text(value):
        if isinstance(value, (list, tuple)):
            return "-".join(f"{v:g}" for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{key}={text(value)}" for key, value in values.items())


def _mse_cell(r: dict[str, Any]) -> str:
    """:func:`format_mse` of a summary read from JSON, where a mean over no tasks was written as ``"nan"``.

    >>> _mse_cell({"mean": 1e30, "ci95": 0.0, "median": 1e30, "n_diverged": 200, "n_tasks": 200, "mean_without_diverged": "nan"})
    'diverged on all 200 tasks'
    """
    r = {k: float(v) if isinstance(v, str) and k != "metric" and k != "protocol" else v for k, v in r.items()}
    if r.get("n_diverged") and r.get("n_diverged") == r.get("n_tasks"):
        return f"diverged on all {r['n_tasks']} tasks"
    return format_mse(r)


def sweeps_table(sweeps: dict[str, dict[str, Any]]) -> str:
    """Markdown table of the shipped sweeps, one row per point: validation and test values of its run.

    When every point of a sweep was validated on the same tasks, the best point on validation
    (``higher_is_better`` says which way) is marked; a sweep whose points validate on different task
    families (trained on different ranges, say) has no such mark. Test
    values are the ones each run read once, at its end; ``test_on`` adds the other task families a
    run was tested on.

    >>> point = lambda lr, val, test: {"values": {"inner_lr": lr}, "train_wall_s": 60, "train_cpu_s": 30,
    ...     "validation": {"metric": "MSE", "mean": val, "ci95": 0.02, "protocol": "200 tasks"},
    ...     "test": {"mean": test, "ci95": 0.01}}
    >>> print(sweeps_table({"s": {"experiment": "e", "points": [point(0.01, 0.5, 0.52), point(0.1, 0.3, 0.31)]}}))
    | sweep (experiment) | point | validation | test | tested also on | training (wall, CPU) |
    | --- | --- | --- | --- | --- | --- |
    | s (e) | inner_lr=0.01 | MSE: 0.500 ± 0.020 | 0.520 ± 0.010 |  | 60 s (30 s CPU) |
    | s (e) | inner_lr=0.1 (best on validation) | MSE: 0.300 ± 0.020 | 0.310 ± 0.010 |  | 60 s (30 s CPU) |
    """
    rows = ["| sweep (experiment) | point | validation | test | tested also on | training (wall, CPU) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, sweep in sweeps.items():
        points = sweep["points"]
        validated = [p for p in points if p.get("validation")]
        # the validation tasks themselves (the protocol's text before the adaptation settings)
        protocols = {str(p["validation"].get("protocol", "")).split(";")[0] for p in validated}
        chosen = None
        if validated and len(validated) == len(points) and len(protocols) == 1 and len(points) > 1:
            sign = -1 if sweep.get("higher_is_better") else 1
            chosen = min(validated, key=lambda p: sign * p["validation"]["mean"])
        for point in points:
            label = _point_label(point["values"]) + (" (best on validation)" if point is chosen else "")
            val = point.get("validation") or {}
            val_text = f"{val.get('metric', '')}: {_mse_cell(val)}".strip() if "mean" in val else ""
            test = point.get("test") or {}
            test_text = _mse_cell(test) if "mean" in test else "not tested"
            also = "; ".join(f"{family}: {_mse_cell(r)}" for family, r in (point.get("test_on") or {}).items())
            cost = ""
            if "train_wall_s" in point:
                cost = f"{_seconds(point['train_wall_s'])} ({_seconds(point.get('train_cpu_s', 0.0))} CPU)"
            rows.append(f"| {name} ({sweep['experiment']}) | {label} | {val_text} | {test_text} | {also} | {cost} |")
    return "\n".join(rows)


def plot_learning_curves(results: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Save a figure of training loss (left) and periodic test metric (right) for every run."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    left_out = []
    for i, (name, r) in enumerate(results.items()):
        h = r.get("history") or {}
        style = {"color": f"C{i % 10}", "ls": ("-", "--")[i // 10 % 2]}  # 10 colours, then dashed
        if h.get("step"):
            if min(h["loss"]) <= 0:  # a negative log-likelihood: no log axis; its lesson shows it
                left_out.append(name)
            else:
                x = [s / max(r["config"]["iterations"], 1) for s in h["step"]]
                axes[0].plot(x, h["loss"], label=name, lw=1, **style)
        if h.get("eval_step") and r["metric"].startswith("accuracy"):
            axes[1].plot(h["eval_step"], [100 * v for v in h["eval_metric"]], marker="o", label=name, **style)
    axes[0].set(xlabel="fraction of training", ylabel="training loss", yscale="log",
                title="Training loss" + (f"\n({len(left_out)} runs whose loss goes below 0 left out: see their lessons)"
                                         if left_out else ""))
    axes[1].set(xlabel="meta-training step", ylabel="accuracy during training (%)",
                title="Accuracy while training\n(validation tasks; test tasks in old-protocol runs)")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=6.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def lesson_run_times(notebooks_dir: str | Path) -> list[tuple[str, str, str, str, str]]:
    """The lesson run-time table's rows, from the measurements in ``notebooks_dir/run_times.json``.

    One row per lesson ``(lesson, classroom, quick, kernel CPU, measured)``: wall-clock seconds in
    each mode, the kernel's own CPU seconds in both, and the date and load average of the
    measurement (see :mod:`metalearn_lab.run_times`). A lesson the file lacks says so and names
    the command that measures it; the lessons' own run-time lines are generated from the same file.
    """
    from metalearn_lab import run_times

    try:
        measured = run_times.load_run_times(notebooks_dir)
    except run_times.RunTimesError:
        measured = {}
    rows = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.md")):
        try:
            entry = run_times.lesson_entry(measured, path.stem)
        except run_times.RunTimesError:
            rows.append((path.stem, "not measured", "not measured", "",
                         f"run `{run_times.SCRIPT} {path.stem}`"))
            continue
        classroom, quick = (entry[mode] for mode in run_times.MODES)
        dates = sorted({m["date"][:10] for m in (classroom, quick)})
        rows.append((path.stem, f"{classroom['wall_seconds']:.0f} s", f"{quick['wall_seconds']:.0f} s",
                     f"{classroom['kernel_cpu_seconds']:.0f} s, {quick['kernel_cpu_seconds']:.0f} s",
                     f"{' and '.join(dates)}, {classroom.get('cores', '?')} cores, load average "
                     f"{classroom['load_average']:.1f} and {quick['load_average']:.1f}"))
    return rows


def write_results_page(out_md: str | Path, *, results_dir: str | Path = RESULTS_DIR,
                       notebooks_dir: str | Path | None = None, benchmark_md: str | Path | None = None,
                       sweeps_dir: str | Path | None = None) -> Path:
    """Write the results page (Markdown) and its figure next to it; returns the page's path.

    ``sweeps_dir`` defaults to ``results_dir/sweeps`` (the shipped sweeps of ``metalearn-lab sweep``).
    """
    out_md = Path(out_md)
    results = load_results(results_dir)
    sweeps = load_sweeps(Path(results_dir) / "sweeps" if sweeps_dir is None else sweeps_dir)
    figure = plot_learning_curves(results, out_md.parent / "_generated" / "learning_curves.png")
    lines = [
        "# Results",
        "",
        "Every number on this page is read from the results files that training wrote",
        "(`metalearn_lab/results/*.json`, one per shipped checkpoint); none is typed by hand.",
        "The trained weights are shipped in `metalearn_lab/checkpoints/` with their sha256 in",
        "`manifest.json`, and the test suite re-evaluates each of them.",
        "",
        "## Reached, target and published",
        "",
        results_table(results),
        "",
        "Protocols: every number is on **test** tasks, evaluated once at the end of training: Omniglot",
        "experiments on 600 fixed tasks of the 423 test characters with rotations as new classes, 28×28",
        "images (mean ± Student's t 95% interval over tasks); Lake's runs are the 20 runs × 20 trials of",
        "`all_runs.zip`, trained on the 30 background alphabets only (interval over the 20 runs). Each",
        "results file states its protocol in full (below).",
        "",
        "*Chosen* (column 4) says what was selected on what. Runs of the current protocol watch their",
        "training on validation tasks (100 training characters held out for Omniglot, background alphabets",
        "for Lake's runs, other seeds of the task distribution for sinusoids) and, where marked, keep the",
        "weights that did best there. Rows marked **old protocol** were trained before the validation split",
        "existed: their progress during training was measured on the test tasks, and the decision to train",
        "some of them longer saw those numbers (the last step is shipped, no checkpoint was picked); they",
        "are to be retrained under the current protocol when machine time allows.",
        "",
        "*Transductive* (column 3) means that batch norm normalised each test task's queries with their own",
        "statistics, so that a query's prediction depends on the other queries of its task: MAML and Reptile",
        "are evaluated that way, as in their authors' code; ProtoNets and the Siamese net use the running",
        "statistics of training and classify each query on its own. The published column says the same of",
        "each paper's number; compare transductive numbers with transductive ones.",
        "Most runs were trained on a 2-core CPU; the Omniglot MAML runs were continued, and the",
        "ProtoNet and Siamese runs trained, on one H100 GPU for a few minutes each (column 'training').",
        "Where a run is shorter than the paper's, its config says by how much:",
        "",
    ]
    for name, r in results.items():
        note = r["config"].get("note") or ""
        lines.append(f"- **{name}**: {r['protocol']}. {note}")
    lines += ["", "## Differences from the papers' protocols", "",
              "Where a row stands next to a published number, these are the ways our protocol differs",
              "from the paper's (and its authors' code); compare the numbers with them in mind.", ""]
    for name, differences in PROTOCOL_DIFFERENCES.items():
        if name in results:
            lines.append(f"- **{name}**: " + "; ".join(differences) + ".")
    lines += ["", "## Sinusoid regression (K = 5, query MSE after fine-tuning steps)", "", sinusoid_table(results), "",
              "## Sinusoid learners without gradient steps (query MSE at each K, 600 test tasks)", "",
              "Empirical-Bayes priors (lesson 08) and black-box learners (lesson 09), each on the same fixed test tasks",
              "at every K; the weights were chosen on validation tasks (MSE averaged over K = 1, 2, 5, 10).", "",
              k_shot_table(results), "",
              "## Sweeps: grids of short runs",
              "",
              "Each sweep (`metalearn_lab/sweeps.py`, shipped in `metalearn_lab/results/sweeps/`) trains one short run",
              "per point of a grid; the lesson on the challenges of meta-learning draws them. Where all points were",
              "validated on the same tasks, the best on validation is marked; every run read its test tasks",
              "once, at its end. Query MSE, mean ± 95% interval over tasks.", "",
              sweeps_table(sweeps), "",
              ]
    for name, sweep in sweeps.items():
        lines.append(f"- **{name}**: {sweep.get('note', '')}")
    lines += ["",
              "## Learning curves", "", f"![learning curves]({figure.relative_to(out_md.parent).as_posix()})", ""]
    if notebooks_dir is not None:
        lines += ["## Lesson run times", "",
                  "Measured by `scripts/measure_run_times.py`, which runs each lesson top to bottom from a fresh",
                  "kernel in both modes with the shipped checkpoints and writes `notebooks/run_times.json`; each",
                  "lesson's run-time line is generated from the same file. Wall-clock time grows with the load",
                  "of the machine; the kernel's own CPU time hardly does.", "",
                  "| lesson | classroom mode | quick mode | kernel CPU time (classroom, quick) | measured |",
                  "| --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(row) + " |" for row in lesson_run_times(notebooks_dir)]
        lines.append("")
    if benchmark_md is not None and Path(benchmark_md).exists():
        lines += ["## MAML throughput", "", Path(benchmark_md).read_text().split("\n", 1)[1].strip(), ""]
    out_md.write_text("\n".join(lines))
    return out_md
