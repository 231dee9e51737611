"""Companion of the lesson "The challenges, measured": costs, heat maps, shift, task pools, the debugging checklist.

The sweeps themselves live in :mod:`metalearn_lab.sweeps` (training and caching), the checks in
:mod:`metalearn_lab.diagnostics`; this module draws what the lesson shows, holds the planted-bug
script's reference answers, and checks the exercises.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metalearn_lab import diagnostics, sweeps
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer
from metalearn_lab.maml import meta_gradient as library_meta_gradient
from metalearn_lab.models import Conv4

# --- compute ------------------------------------------------------------------------------------


def omniglot_shaped_batch(meta_batch_size: int, *, n_way: int = 5, k_shot: int = 1, n_query: int = 1, seed: int = 0,
                          dtype: torch.dtype = torch.float32, side: int = 28):
    """Random ``side``×``side`` "images" in the shapes of an Omniglot N-way K-shot batch (cost does not depend on the pixels)."""
    gen = torch.Generator().manual_seed(seed)
    b = meta_batch_size
    return (torch.rand(b, n_way * k_shot, 1, side, side, generator=gen, dtype=dtype),
            torch.arange(n_way).repeat_interleave(k_shot).repeat(b, 1),
            torch.rand(b, n_way * n_query, 1, side, side, generator=gen, dtype=dtype),
            torch.arange(n_way).repeat_interleave(n_query).repeat(b, 1))


def plot_costs(x_values, costs: dict[str, list[dict[str, float]]], *, xlabel: str, title: str, logx: bool = False):
    """Time and saved-tensor memory of one meta-gradient (one curve per method) against ``x_values``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    for label, rows in costs.items():
        style = "-" if "second" in label else "--"
        left.plot(x_values, [1e3 * r["seconds"] for r in rows], style, marker="o", label=label)
        right.plot(x_values, [r["saved_mb"] for r in rows], style, marker="o", label=label)
    left.set(xlabel=xlabel, ylabel="ms per meta-gradient (fastest run)", title="time")
    right.set(xlabel=xlabel, ylabel="MB autograd keeps for backward", title="memory")
    for ax in (left, right):
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_xticks(list(x_values), [str(v) for v in x_values])
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# --- sensitivity heat maps ------------------------------------------------------------------------

FIELD_LABELS = {"inner_lr": "inner learning rate α", "inner_steps": "inner steps", "meta_batch_size": "meta-batch size",
                "n_train_tasks": "distinct training tasks"}


def draw_heatmap(results: dict[str, Any], rows: str, columns: str, *, where: dict[str, Any] | None = None,
                 metric: str = "validation", ax=None, vmin: float = 0.05, vmax: float = 20.0, title: str | None = None):
    """A heat map of one metric of a sweep (log colour scale), each cell annotated; best cell framed.

    Cells whose mean is above ``vmax`` (diverged tasks) show "div." and the top colour.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    row_values, column_values, table = sweeps.grid_table(results, rows, columns, metric=metric, where=where)
    values = np.array(table, dtype=float)
    shown = np.clip(np.nan_to_num(values, nan=vmax, posinf=vmax), vmin, vmax)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(column_values) + 2.2, 0.7 * len(row_values) + 1.4))
    image = ax.imshow(shown, norm=LogNorm(vmin=vmin, vmax=vmax), cmap="viridis_r", aspect="auto")
    for i in range(len(row_values)):
        for j in range(len(column_values)):
            v = values[i, j]
            text = "div." if not math.isfinite(v) or v > vmax else f"{v:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if shown[i, j] > 1.0 else "black")
    finite = np.where(np.isfinite(values), values, np.inf)
    if np.isfinite(finite).any():
        i, j = np.unravel_index(np.argmin(finite), finite.shape)
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2.5))
    ax.set_xticks(range(len(column_values)), [f"{v:g}" for v in column_values])
    ax.set_yticks(range(len(row_values)), [f"{v:g}" for v in row_values])
    ax.set(xlabel=FIELD_LABELS.get(columns, columns), ylabel=FIELD_LABELS.get(rows, rows))
    if title:
        ax.set_title(title, fontsize=9)
    return ax, image


def draw_sensitivity(results: dict[str, Any], meta_batch_size: int, metric: str = "validation"):
    """The Try-it figure: query MSE (validation tasks) over inner learning rate × inner steps, at one meta-batch size."""
    fig, ax = plt.subplots(figsize=(6.2, 2.9))
    name = {"validation": "validation", "test": "test"}[metric]
    _, image = draw_heatmap(results, "inner_steps", "inner_lr", where={"meta_batch_size": meta_batch_size}, metric=metric,
                            ax=ax, title=f"{name} query MSE after adaptation, meta-batch size {meta_batch_size} "
                                         "(red: lowest)")
    fig.colorbar(image, ax=ax, label="query MSE (log scale)")
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.18, top=0.88)
    return fig


def sensitivity_widget(results: dict[str, Any]):
    """Live Try-it: choose the meta-batch size and whether the map shows validation or test scores."""
    import ipywidgets as widgets
    from IPython.display import display

    from metalearn_lab.controls import fit_labels, show_png

    sizes = sorted({p["values"]["meta_batch_size"] for p in results["points"]})
    size = widgets.SelectionSlider(options=sizes, value=sizes[-1], description="meta-batch size")
    shown = widgets.ToggleButtons(options=[("validation", "validation"), ("test (read once, for the record)", "test")],
                                  value="validation", description="scores")
    fit_labels(size, shown)
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            show_png(draw_sensitivity(results, size.value, shown.value))

    size.observe(redraw, "value")
    shown.observe(redraw, "value")
    redraw()
    display(widgets.VBox([size, shown, out]))


def sensitivity_explorer(results: dict[str, Any]):
    """The book's twin of :func:`sensitivity_widget`: every meta-batch size, validation and test, pre-rendered."""
    from metalearn_lab.tryit import explorer

    sizes = sorted({p["values"]["meta_batch_size"] for p in results["points"]})
    return explorer(lambda meta_batch_size, scores: draw_sensitivity(results, meta_batch_size, scores),
                    {"meta_batch_size": sizes, "scores": ["validation", "test"]},
                    initial={"meta_batch_size": sizes[-1], "scores": "validation"},
                    labels={"meta_batch_size": "meta-batch size", "scores": "scores"},
                    title="Sensitivity of MAML to its inner loop (pre-rendered)")


def spread(results: dict[str, Any], metric: str = "validation") -> tuple[float, float]:
    """The best and the median score over all points of a sweep (diverged points count as +inf)."""
    values = sorted(sweeps.value(p, metric) for p in results["points"])
    values = [v if math.isfinite(v) else math.inf for v in values]
    return values[0], values[len(values) // 2]


# --- shift and task pools -----------------------------------------------------------------------------


def shift_table(results: dict[str, Any], *, steps: str = "10") -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Query MSE after ``steps`` test steps: rows = trained amplitude range, columns = tested range.

    Returns ``(rows, columns, mean MSE, number of diverged tasks)``; a mean above 1e3 (some tasks
    diverged) is returned as ``inf``.
    """
    labels = list(results["points"][0]["test_on"])
    rows, table, diverged = [], [], []
    for p in results["points"]:
        low, high = p["values"]["amplitude"]
        rows.append(f"trained on A {low:g}-{high:g}")
        cells = [p["test_on"][label]["by_steps"][steps] for label in labels]
        table.append([float(c["mean"]) if float(c["mean"]) < 1e3 else math.inf for c in cells])
        diverged.append([int(c.get("n_diverged", 0)) for c in cells])
    return rows, labels, np.array(table), np.array(diverged)


def plot_shift(results: dict[str, Any], *, steps: tuple[str, ...] = ("1", "10")):
    """Heat maps of :func:`shift_table` after each number of test steps (log colour scale)."""
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(1, len(steps), figsize=(5.6 * len(steps), 2.7), squeeze=False)
    for ax, k in zip(axes[0], steps):
        rows, columns, table, diverged = shift_table(results, steps=k)
        shown = np.clip(np.nan_to_num(table, nan=100, posinf=100), 0.03, 100)
        image = ax.imshow(shown, norm=LogNorm(vmin=0.03, vmax=100), cmap="viridis_r", aspect="auto")
        for i in range(len(rows)):
            for j in range(len(columns)):
                text = f"{table[i, j]:.2f}" if math.isfinite(table[i, j]) else f"diverged\n({diverged[i, j]} > 25)"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if shown[i, j] > 1 else "black")
        ax.set_xticks(range(len(columns)), [f"tested on\n{c}" for c in columns], fontsize=8)
        ax.set_yticks(range(len(rows)), rows if ax is axes[0][0] else [""] * len(rows), fontsize=8)
        ax.set_title(f"query MSE after {k} test step{'s' if k != '1' else ''} (K = 10, 600 tasks a cell)", fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), label="MSE (log)")
    return fig


def pool_rows(results: dict[str, Any], *, steps: str = "10") -> list[dict[str, Any]]:
    """Per pool size: MSE on the training tasks, on new (validation and test) tasks, and the gap."""
    rows = []
    for p in sorted(results["points"], key=lambda p: p["values"]["n_train_tasks"] or math.inf):
        rows.append({"n_train_tasks": p["values"]["n_train_tasks"] or math.inf,
                     "train_tasks": float(p["train_tasks"]["mean"]),
                     "validation": float(p["validation"]["mean"]),
                     "test": float(p["test"]["by_steps"][steps]["mean"]),
                     "test_ci95": float(p["test"]["by_steps"][steps]["ci95"])})
    return rows


def plot_pool(results: dict[str, Any]):
    """Query MSE on the training tasks and on new tasks against the number of distinct training tasks."""
    rows = pool_rows(results)
    labels = ["∞ (new task\nevery time)" if math.isinf(r["n_train_tasks"]) else f"{r['n_train_tasks']:,}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6.5, 3))
    ax.plot(x, [r["train_tasks"] for r in rows], "o-", label="the training tasks (fresh points)")
    ax.errorbar(x, [r["test"] for r in rows], yerr=[r["test_ci95"] for r in rows], fmt="s-", capsize=3,
                label="new tasks (test, 95% interval)")
    ax.set_xticks(x, labels)
    ax.set(yscale="log", xlabel="distinct tasks seen in meta-training (same budget: 4,000 steps × 25 tasks)",
           ylabel="query MSE after 10 steps", title="Meta-overfitting: a small pool of tasks is memorised")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- the exercise on choosing a grid point -----------------------------------------------------------

_CHOICE_RESULTS = {"higher_is_better": False, "points": [
    {"values": {"inner_lr": 0.01, "inner_steps": 1}, "validation": {"mean": 0.52}, "test": {"mean": 0.61}, "final_loss": 0.40},
    {"values": {"inner_lr": 0.03, "inner_steps": 1}, "validation": {"mean": 0.47}, "test": {"mean": 0.58}, "final_loss": 0.45},
    {"values": {"inner_lr": 0.1, "inner_steps": 1}, "validation": {"mean": 0.71}, "test": {"mean": 0.44}, "final_loss": 0.30},
    {"values": {"inner_lr": 0.1, "inner_steps": 5}, "validation": {"mean": 9.3}, "test": {"mean": 8.8}, "final_loss": 7.0},
]}


@checker("Exercise 1: choose a grid point on validation tasks")
def check_choose_point(choose_point):
    """``choose_point(results) -> values dict`` must return the values of the lowest validation MSE."""
    got = require_answer(choose_point(_CHOICE_RESULTS), "choose_point(results)")
    expect(isinstance(got, dict), f"choose_point should return the chosen point's values, a dict like "
                                  f"{{'inner_lr': 0.03, 'inner_steps': 1}}; got {type(got).__name__}")
    by = {repr(p["values"]): p for p in _CHOICE_RESULTS["points"]}
    expect(repr(got) in by, f"{got} is not one of the points' values; return point['values'] of the point you choose")
    if got == _CHOICE_RESULTS["points"][2]["values"]:
        raise WrongAnswer("you chose the point with the lowest TEST score: the test tasks must not choose anything, "
                          "or the reported test score is no longer an unbiased estimate. Choose by point['validation']")
    if got == _CHOICE_RESULTS["points"][3]["values"]:
        raise WrongAnswer("you chose the highest MSE: for an error, lower is better (results['higher_is_better'] is False)")
    if got == _CHOICE_RESULTS["points"][0]["values"]:
        raise WrongAnswer("you chose the first point, not the best: compare point['validation']['mean'] over all points")
    expect(got == _CHOICE_RESULTS["points"][1]["values"], "choose the point with the lowest point['validation']['mean']")
    # the same on the real sweep, whatever it holds: agrees with the library
    real = sweeps.load_sweep("sinusoid-sensitivity")
    if real is not None:
        expect(choose_point(real) == sweeps.best_point(real)["values"],
               "on the shipped sweep your choice differs from the lowest validation MSE (sweeps.best_point)")
    return "chosen on validation tasks; the test score of that one point is what you report"


# --- the planted-bug script: reference answers and checks ----------------------------------------------


def debugging_model(seed: int = 0) -> torch.nn.Module:
    """The script's network: a narrow Conv4 (8 channels) with batch norm that keeps running statistics, float64."""
    torch.manual_seed(seed)
    return Conv4(hidden=8, out_features=5).double()


def debugging_batch(meta_batch_size: int = 2, seed: int = 0):
    """Random 5-way 1-shot tasks with 2 queries a class, 16×16 pixels, float64 (the checks do not depend on the pixels;
    four 2×2 poolings still leave one)."""
    return omniglot_shaped_batch(meta_batch_size, n_query=2, seed=seed, dtype=torch.float64, side=16)


def reference_evaluate(model, x_support, y_support, x_query, y_query, inner_steps, inner_lr):
    """What a right evaluation returns: eval mode (running statistics), support set only, model left as it was."""
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    params = {k: p.detach().requires_grad_() for k, p in model.named_parameters()}
    for _ in range(inner_steps):
        loss = F.cross_entropy(functional_call(model, params, (x_support,)), y_support)
        grads = torch.autograd.grad(loss, list(params.values()))
        params = {k: (p - inner_lr * g).detach().requires_grad_() for (k, p), g in zip(params.items(), grads)}
    with torch.no_grad():
        logits = functional_call(model, params, (x_query,))
    for m, mode in was_training.items():
        m.training = mode
    return logits


def in_place_meta_gradient(model, batch, inner_steps, inner_lr):
    """Lesson ``maml_math``'s trap in the script's signature: inner steps written into the model by an optimiser."""
    params = dict(model.named_parameters())
    inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)
    total, grads_sum = 0.0, {k: torch.zeros_like(p) for k, p in params.items()}
    for x_support, y_support, x_query, y_query in zip(*batch):
        for _ in range(inner_steps):
            inner_optimizer.zero_grad()
            F.cross_entropy(model(x_support), y_support).backward()
            inner_optimizer.step()
        loss = F.cross_entropy(model(x_query), y_query)
        for k, g in zip(params, torch.autograd.grad(loss, list(params.values()))):
            grads_sum[k] += g / len(batch[0])
        total = total + loss.detach() / len(batch[0])
    return total, grads_sum


def run_checklist(meta_gradient, evaluate, *, inner_steps: int = 1, inner_lr: float = 0.4) -> list[diagnostics.Diagnosis]:
    """Run the five checks on a training script's ``meta_gradient`` and ``evaluate``; return the diagnoses.

    ``meta_gradient(model, batch, inner_steps, inner_lr) -> (meta_loss, {name: gradient})`` and
    ``evaluate(model, x_support, y_support, x_query, y_query, inner_steps, inner_lr) -> query logits``.
    """
    model, batch = debugging_model(), debugging_batch()
    params = dict(model.named_parameters())
    task = tuple(t[0] for t in batch)

    def predict(m, xs, ys, xq, yq):
        return evaluate(m, xs, ys, xq, yq, inner_steps, inner_lr)

    results = [
        diagnostics.check_gradient(lambda: meta_gradient(model, batch, inner_steps, inner_lr), params, directions=2,
                                   name="1. meta-gradient matches finite differences"),
        diagnostics.check_leaves_model_unchanged(lambda m: meta_gradient(m, batch, inner_steps, inner_lr), debugging_model(),
                                                 buffers=False, name="2. meta-gradient leaves the weights alone"),
        diagnostics.check_leaves_model_unchanged(lambda m: predict(m, *task), debugging_model().eval(),
                                                 name="3. evaluation writes nothing into the model"),
        diagnostics.check_queries_independent(predict, debugging_model().eval(), *task,
                                              name="4. each query classified on its own"),
        diagnostics.check_no_label_leak(predict, debugging_model().eval(), *task, name="5. query labels unused"),
    ]
    return results


def checklist_table(diagnoses: list[diagnostics.Diagnosis]) -> str:
    """The diagnoses as a Markdown table."""
    rows = ["| check | result | what was measured |", "| --- | --- | --- |"]
    rows += [f"| {d.check} | {'✓ passed' if d.passed else '✗ failed'} | {d.detail} |" for d in diagnoses]
    return "\n".join(rows)


@checker("Exercise 2: fix the meta-gradient")
def check_fixed_meta_gradient(meta_gradient_fixed):
    """The fixed ``meta_gradient`` must return MAML's full meta-gradient and leave the weights alone."""
    model, batch = debugging_model(), debugging_batch()
    params = dict(model.named_parameters())
    got = require_answer(meta_gradient_fixed(model, batch, 1, 0.4), "meta_gradient_fixed(model, batch, 1, 0.4)")
    expect(isinstance(got, tuple) and len(got) == 2, "return (meta_loss, {name: gradient}), as the script's meta_gradient does")
    loss, grads = got
    expect(isinstance(grads, dict) and set(grads) == set(params),
           f"the gradient must be a dict with one entry per parameter, {sorted(params)[:2]}...")
    unchanged = diagnostics.check_leaves_model_unchanged(lambda m: meta_gradient_fixed(m, batch, 1, 0.4),
                                                         debugging_model(), buffers=False)
    expect(unchanged.passed, f"your meta_gradient moves the model's weights ({unchanged.detail}): build adapted "
                             "weights as new tensors and use functional_call, never optimizer.step() inside")
    truth = library_meta_gradient(model, params, batch, F.cross_entropy, inner_steps=1, inner_lr=0.4, vectorize=False)
    first = library_meta_gradient(model, params, batch, F.cross_entropy, inner_steps=1, inner_lr=0.4, first_order=True,
                                  vectorize=False)
    from metalearn_lab.autodiff import compare_gradients

    if compare_gradients(first, grads)[1] < 1e-8:
        raise WrongAnswer("this is first-order MAML: the inner gradients are treated as constants. Take them with "
                          "torch.autograd.grad(..., create_graph=True) so the meta-gradient goes through the inner step")
    cos, rel = compare_gradients(truth, grads)
    if cos < -0.99:
        raise WrongAnswer("your gradient points the opposite way: descend with p - inner_lr * g in the inner loop, "
                          "and return the gradient of the loss, not its negative")
    expect(rel < 1e-6, f"your gradient differs from MAML's meta-gradient (relative error {rel:.2g}, cosine {cos:.3f}); "
                       "average the query losses over the tasks and differentiate through every inner step")
    expect(abs(float(torch.as_tensor(loss).detach()) - float(library_meta_loss(model, batch).detach())) < 1e-8,
           "the returned meta-loss is not the mean query loss after adaptation over the batch's tasks")
    check = diagnostics.check_gradient(lambda: meta_gradient_fixed(model, batch, 1, 0.4), params, directions=2)
    expect(check.passed, check.detail)
    return f"matches MAML's meta-gradient (relative error {rel:.0e}) and finite differences; weights untouched"


def library_meta_loss(model, batch, inner_steps: int = 1, inner_lr: float = 0.4) -> torch.Tensor:
    """The library's MAML meta-loss of ``batch`` (the reference for the exercise)."""
    from metalearn_lab.maml import meta_loss

    params = dict(model.named_parameters())
    return meta_loss(model, params, batch, F.cross_entropy, inner_steps=inner_steps, inner_lr=inner_lr, vectorize=False)[0]


@checker("Exercise 3: fix the evaluation")
def check_fixed_evaluate(evaluate_fixed):
    """The fixed ``evaluate`` must pass checks 3-5 and give the reference evaluation's logits."""
    model, batch = debugging_model().eval(), debugging_batch()
    task = tuple(t[0] for t in batch)
    got = require_answer(evaluate_fixed(model, *task, 1, 0.4), "evaluate_fixed(model, x_support, ..., 1, 0.4)")
    got = torch.as_tensor(got)
    expect(got.shape == (task[2].shape[0], 5), f"return one row of 5 logits per query, shape {(task[2].shape[0], 5)}; "
                                               f"got {tuple(got.shape)}")

    def predict(m, xs, ys, xq, yq):
        return evaluate_fixed(m, xs, ys, xq, yq, 1, 0.4)

    for check, hint in (
        (diagnostics.check_leaves_model_unchanged(lambda m: predict(m, *task), debugging_model().eval()),
         "evaluate in eval mode (running statistics are read, not written) and put the model back in the mode it was in"),
        (diagnostics.check_no_label_leak(predict, debugging_model().eval(), *task),
         "adapt on the support set only: the query labels are what the evaluation scores"),
        (diagnostics.check_queries_independent(predict, debugging_model().eval(), *task),
         "in training mode batch norm normalises the queries together; evaluate in eval mode"),
    ):
        expect(check.passed, f"{check.detail}. Hint: {hint}")
    reference = reference_evaluate(debugging_model().eval(), *task, 1, 0.4)
    gap = float((got.double() - reference).abs().max())
    expect(gap < 1e-8, f"your logits differ from a right evaluation by up to {gap:.2g}: adapt with inner_steps "
                       "plain gradient steps of inner_lr on the support cross-entropy, then predict the queries")
    trained = debugging_model().train()
    evaluate_fixed(trained, *task, 1, 0.4)
    expect(trained.training, "after evaluating, put the model back in training mode if it was in training mode")
    return "nothing written, each query on its own, query labels unused, and the right logits"
