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
    ("preference-maml", "personalisation (simulated users), MAML adapted to 5 ratings: MSE", "(no paper)", ()),
    ("preference-pooled", "personalisation, one model that ignores the user: MSE", "(baseline)", ()),
    ("point-robot-maml", "2-D point robot, MAML: return after 3 updates", "(no target)", ("maml-point-robot-3step",)),
    ("point-robot-scratch", "2-D point robot, a policy learning from scratch: return after 15 updates", "(baseline)", ()),
]


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


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table: experiment, reached (mean ± 95% CI), target, published, training cost."""
    rows = ["| experiment | reached (mean ± 95% CI) | target | published | training (wall time, where) | steps |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, label, target, keys in TARGETS:
        r = results.get(name)
        paper = published_cell(keys)
        if r is None:
            rows.append(f"| {label} | not trained yet | {target} | {paper} | | |")
            continue
        cost = training_cost(r)
        rows.append(f"| {label} | **{format_result(r)}** | {target} | {paper} | {cost} | {r['config']['iterations']} |")
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


def plot_learning_curves(results: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Save a figure of training loss (left) and periodic test metric (right) for every run."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        h = r.get("history") or {}
        if h.get("step"):
            x = [s / max(r["config"]["iterations"], 1) for s in h["step"]]
            axes[0].plot(x, h["loss"], label=name, lw=1)
        if h.get("eval_step") and r["metric"].startswith("accuracy"):
            axes[1].plot(h["eval_step"], [100 * v for v in h["eval_metric"]], marker="o", label=name)
    axes[0].set(xlabel="fraction of training", ylabel="training loss", yscale="log", title="Training loss")
    axes[1].set(xlabel="meta-training step", ylabel="accuracy on test tasks during training (%)", title="Test accuracy while training")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# The run-time line at the top of a lesson: "**Run time** (measured ...): classroom mode 12 s, ...".
RUN_TIME_LINE = re.compile(r"^[ \t>*_]*run[ -]?time(?![a-z])[*_:]*[ \t]*(?P<text>[^\n]*)$", re.IGNORECASE | re.MULTILINE)


def run_time_statement(text: str) -> str | None:
    r"""What a lesson's run-time line says, without its label and Markdown emphasis; None if it has none.

    Examples
    --------
    >>> run_time_statement("# 1. Title\n\n**Run time** (2-core CPU): classroom mode 12 s, quick mode 9 s.\n")
    '(2-core CPU): classroom mode 12 s, quick mode 9 s.'
    >>> run_time_statement("*Run-time:* about 3 min")
    'about 3 min'
    >>> run_time_statement("This cell reports the run time of each step.") is None
    True
    """
    match = RUN_TIME_LINE.search(text)
    if match is None:
        return None
    return match.group("text").strip() or None


def lesson_run_times(notebooks_dir: str | Path) -> list[tuple[str, str]]:
    """The measured run time each lesson states at its top: ``[(lesson, statement), ...]``.

    The statement is the lesson's run-time line without the "Run time" label and its bold markers
    (a table cell with a stray ``**`` would show it), with ``|`` escaped for a Markdown table.
    """
    out = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.md")):
        statement = run_time_statement(path.read_text(encoding="utf-8"))
        out.append((path.stem, statement.replace("|", "\\|") if statement else "not stated"))
    return out


def write_results_page(out_md: str | Path, *, results_dir: str | Path = RESULTS_DIR,
                       notebooks_dir: str | Path | None = None, benchmark_md: str | Path | None = None) -> Path:
    """Write the results page (Markdown) and its figure next to it; returns the page's path."""
    out_md = Path(out_md)
    results = load_results(results_dir)
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
        "Protocols: Omniglot experiments use the 1200/423 character split with rotations as new classes,",
        "28×28 images, Conv4, and 600 fixed test tasks (mean ± 95% interval over tasks). Lake's runs are",
        "the 20 runs × 20 trials of `all_runs.zip`, trained on the 30 background alphabets only.",
        "Most runs were trained on a 2-core CPU; the Omniglot MAML runs were continued, and the",
        "ProtoNet and Siamese runs trained, on one H100 GPU for a few minutes each (column 'training').",
        "Where a run is shorter than the paper's, its config says by how much:",
        "",
    ]
    for name, r in results.items():
        note = r["config"].get("note") or ""
        lines.append(f"- **{name}**: {r['protocol']}. {note}")
    lines += ["", "## Sinusoid regression (K = 5, query MSE after fine-tuning steps)", "", sinusoid_table(results), "",
              "## Learning curves", "", f"![learning curves]({figure.relative_to(out_md.parent).as_posix()})", ""]
    if notebooks_dir is not None:
        lines += ["## Lesson run times", "", "Measured by each lesson's author, executing it top to bottom from a fresh kernel:", "",
                  "| lesson | run time |", "| --- | --- |"]
        lines += [f"| {name} | {line} |" for name, line in lesson_run_times(notebooks_dir)]
        lines.append("")
    if benchmark_md is not None and Path(benchmark_md).exists():
        lines += ["## MAML throughput", "", Path(benchmark_md).read_text().split("\n", 1)[1].strip(), ""]
    out_md.write_text("\n".join(lines))
    return out_md
