"""Companion of lesson ``04_maml_sinusoid``: sine tasks and adapted predictions, the adaptation explorer, and the checkers of its exercises (the inner loop, per-task query MSE).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from metalearn_lab.controls import RATES_1_2_5, fit_labels, rate_slider, show_png
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer


def adapted_sine_predictions(model, x_support, y_support, x_grid, *, steps=(0, 1, 10), inner_lr=0.01):
    """Predictions of ``model`` on ``x_grid`` after each number of inner steps in ``steps``.

    The model is adapted once, step by step, with plain gradient descent on the MSE of the
    support set (:func:`metalearn_lab.maml.adapt`, one step at a time), and its prediction is
    recorded whenever the step count is in ``steps``. The model's own weights are not changed.

    Parameters
    ----------
    model : nn.Module
        A regressor ``[P, 1] -> [P, 1]`` (e.g. :class:`~metalearn_lab.models.SineMLP`).
    x_support, y_support : Tensor ``[k_shot, 1]``
    x_grid : Tensor ``[P]``
    steps : iterable of int >= 0
    inner_lr : float > 0

    Returns
    -------
    dict int -> Tensor ``[P]``

    Examples
    --------
    >>> import torch
    >>> from metalearn_lab.models import SineMLP
    >>> x = torch.linspace(-5, 5, 5)[:, None]
    >>> out = adapted_sine_predictions(SineMLP(), x, torch.sin(x), torch.linspace(-5, 5, 7), steps=(0, 2))
    >>> sorted(out), tuple(out[2].shape)
    ([0, 2], (7,))
    """
    import torch.nn.functional as F

    from metalearn_lab.maml import adapt

    wanted = sorted({int(s) for s in steps})
    if not wanted or wanted[0] < 0:
        raise ValueError(f"steps must be a non-empty collection of integers >= 0, got {steps!r}")
    grid = torch.as_tensor(x_grid, dtype=torch.float32).reshape(-1, 1)
    params = {k: v.detach() for k, v in model.named_parameters()}
    out, done = {}, 0
    with torch.no_grad():
        for target in wanted:
            if target > done:
                params = adapt(model, params, x_support, y_support, F.mse_loss, inner_steps=target - done, inner_lr=inner_lr)
                done = target
            out[target] = torch.func.functional_call(model, params, (grid,)).reshape(-1)
    return out


def plot_sine_tasks(batch, *, n_tasks=4, ax=None, title="Sinusoid tasks and their support points"):
    """Draw the true curves of the first ``n_tasks`` tasks of a :class:`SinusoidBatch` and their support points.

    Returns the figure.
    """
    import torch

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.2))
    else:
        fig = ax.figure
    x_grid = torch.linspace(-5, 5, 200)
    true = batch.true_curve(x_grid)
    for i in range(min(n_tasks, len(batch))):
        (line,) = ax.plot(x_grid, true[i], lw=1.5, label=f"A={float(batch.amplitude[i]):.1f}, φ={float(batch.phase[i]):.1f}")
        ax.scatter(batch.x_support[i, :, 0], batch.y_support[i, :, 0], color=line.get_color(), s=25, zorder=3)
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    return fig


def plot_adapted_sines(models, batch, *, steps=(0, 1, 10), inner_lr=0.01, n_tasks=3, x_grid=None, title=None):
    """A grid like Finn et al. (2017), Fig. 2: one row per model, one column per task.

    Each panel shows the true curve, the support points, and the model's prediction before
    adaptation (step 0, dashed) and after each number of gradient steps in ``steps``.

    Parameters
    ----------
    models : dict name -> nn.Module
        E.g. ``{"MAML": maml_model, "pretrained": pretrained_model}``.
    batch : SinusoidBatch
        Its support sets are the fine-tuning data.
    steps, inner_lr : see :func:`adapted_sine_predictions`.

    Returns
    -------
    matplotlib Figure
    """
    import torch

    x_grid = torch.linspace(-5, 5, 200) if x_grid is None else torch.as_tensor(x_grid)
    n_tasks = min(n_tasks, len(batch))
    fig, axes = plt.subplots(len(models), n_tasks, figsize=(3.3 * n_tasks, 2.6 * len(models)),
                             sharex=True, squeeze=False)
    true = batch.true_curve(x_grid)
    colours = plt.cm.viridis_r(torch.linspace(0.15, 0.85, len(steps)).tolist())
    for row, (name, model) in enumerate(models.items()):
        for col in range(n_tasks):
            ax = axes[row, col]
            preds = adapted_sine_predictions(model, batch.x_support[col], batch.y_support[col], x_grid,
                                             steps=steps, inner_lr=inner_lr)
            ax.plot(x_grid, true[col], color="tab:red", lw=2, label="true")
            for colour, s in zip(colours, sorted(preds)):
                style = "--" if s == 0 else "-"
                label = "pre-update" if s == 0 else f"{s} step{'s' if s > 1 else ''}"
                ax.plot(x_grid, preds[s], style, color=colour, lw=1.5, label=label)
            ax.scatter(batch.x_support[col, :, 0], batch.y_support[col, :, 0], marker="^", color="k", s=30,
                       zorder=4, label=f"{batch.x_support.shape[1]} support points")
            ax.set_title(f"{name}, task {col + 1}", fontsize=10)
            if col == 0:
                ax.set_ylabel("y")
            if row == len(models) - 1:
                ax.set_xlabel("x")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _sine_task(tasks, seed, max_k=20):
    """One sinusoid task with ``max_k`` support points (the first K are used) from ``seed``."""

    return tasks.sample(1, max_k, 1, generator=torch.Generator().manual_seed(int(seed)))


def _sine_panel_data(model, task, x_grid, *, k_shot, inner_steps, inner_lr):
    """Pre-update and adapted predictions of ``model`` on ``x_grid`` and the adapted MSE against the true curve."""

    xs, ys = task.x_support[0, :k_shot], task.y_support[0, :k_shot]
    preds = adapted_sine_predictions(model, xs, ys, x_grid, steps=(0, inner_steps), inner_lr=inner_lr)
    true = task.true_curve(x_grid)[0]
    mse = float(((preds[inner_steps] - true) ** 2).mean())
    return {"pre": preds[0], "adapted": preds[inner_steps], "true": true, "mse": mse, "x_support": xs, "y_support": ys}


def _init_sine_panel(ax):
    """Create the artists of one panel (they get their data from :func:`_set_sine_panel`)."""
    lines = {
        "true": ax.plot([], [], color="tab:red", lw=2, label="true curve")[0],
        "pre": ax.plot([], [], "--", color="0.5", lw=1.2, label="pre-update")[0],
        "adapted": ax.plot([], [], color="tab:blue", lw=2, label="adapted")[0],
        "support": ax.scatter([], [], marker="^", color="k", s=35, zorder=4, label="support points"),
    }
    ax.set_xlabel("x")
    return lines


def _set_sine_panel(ax, lines, name, data, x_grid, *, inner_steps, inner_lr):

    import numpy as np

    x = np.asarray(x_grid, dtype=float)
    for key in ("true", "pre", "adapted"):
        lines[key].set_data(x, np.asarray(data[key], dtype=float))
    lines["support"].set_offsets(np.c_[data["x_support"][:, 0].numpy(), data["y_support"][:, 0].numpy()])
    mse = data["mse"]
    shown = f"{mse:.3f}" if math.isfinite(mse) and mse < 1e4 else "diverged"
    ax.set_title(f"{name}: {inner_steps} step{'s' if inner_steps != 1 else ''}, α={inner_lr:.3g}, "
                 f"K={len(data['x_support'])}\nMSE on the curve {shown}", fontsize=9)
    top = 1.3 * float(data["true"].abs().max()) + 0.5
    ax.set_xlim(float(x_grid[0]), float(x_grid[-1]))
    ax.set_ylim(-top, top)


class SineAdaptationView:
    """The Try-it's figure: one panel per model, redrawn by :meth:`draw` for new slider values.

    Each model (e.g. MAML and the pretrained baseline) gets a panel with the task's true curve,
    its K support points, the model's prediction before adaptation and after ``inner_steps``
    steps of gradient descent with step size α on the support MSE. The figure and its artists are
    made once; :meth:`draw` recomputes the curves (a 1-40-40-1 net adapts in milliseconds) and
    sets the artists' data. The live widget (:class:`SineAdaptationExplorer`) and the book's
    pre-rendered explorer (:func:`sine_adaptation_explorer`) both draw with it.

    Parameters
    ----------
    models : dict name -> nn.Module
    tasks : SinusoidTasks or None
        The task distribution (default: Finn et al.'s).
    seed : int
        Which task (:meth:`set_task` changes it).
    max_k : int
        Support points drawn per task; a drawing uses the first ``k_shot``.

    Attributes
    ----------
    fig : matplotlib Figure (not managed by pyplot);  lines : dict name -> dict of artists;
    data : dict name -> the last drawing's curves and MSE

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> view = SineAdaptationView({"net": SineMLP()}, seed=1)
    >>> fig = view.draw(inner_steps=2, inner_lr=0.01, k_shot=5)
    >>> fig is view.fig, len(view.lines["net"]["support"].get_offsets())
    (True, 5)
    """

    def __init__(self, models, *, tasks=None, seed=0, max_k=20):
        from matplotlib.figure import Figure

        from metalearn_lab.data.sinusoid import SinusoidTasks

        if not models:
            raise ValueError("models must hold at least one model, e.g. {'MAML': maml_model}")
        self.models = dict(models)
        self.tasks = tasks if tasks is not None else SinusoidTasks()
        self.max_k = max_k
        self.x_grid = torch.linspace(*self.tasks.x_range, 200)
        self.set_task(seed)
        self.fig = Figure(figsize=(4.2 * len(self.models), 3.4))
        axes = self.fig.subplots(1, len(self.models), squeeze=False)[0]
        self.axes = dict(zip(self.models, axes))
        self.lines = {name: _init_sine_panel(ax) for name, ax in self.axes.items()}
        axes[0].set_ylabel("y")
        axes[-1].legend(fontsize=7, loc="lower right")
        self.data = {}
        self._laid_out = False

    def set_task(self, seed: int) -> None:
        """Use the task drawn from ``seed`` (the next :meth:`draw` shows it)."""
        self.seed = int(seed)
        self.task = _sine_task(self.tasks, self.seed, self.max_k)

    def draw(self, *, inner_steps: int, inner_lr: float, k_shot: int):
        """Adapt every model to the first ``k_shot`` support points and redraw; returns :attr:`fig`."""
        if not 1 <= int(k_shot) <= self.max_k:
            raise ValueError(f"k_shot must be between 1 and max_k={self.max_k}, got {k_shot!r}")
        settings = {"inner_steps": int(inner_steps), "inner_lr": float(inner_lr)}
        for name, model in self.models.items():
            self.data[name] = _sine_panel_data(model, self.task, self.x_grid, k_shot=int(k_shot), **settings)
            _set_sine_panel(self.axes[name], self.lines[name], name, self.data[name], self.x_grid, **settings)
        if not self._laid_out:  # once: tight_layout costs more than the whole adaptation
            self.fig.tight_layout()
            self._laid_out = True
        return self.fig


class SineAdaptationExplorer:
    """Sliders for inner steps, inner learning rate and K, a "new task" button, and one figure.

    A slider change redraws the :class:`SineAdaptationView` (its ``draw``) and shows it as one PNG
    in an ``Output`` widget.

    Parameters
    ----------
    models : dict name -> nn.Module
    tasks : SinusoidTasks or None
        The task distribution "new task" draws from (default: Finn et al.'s).
    inner_steps, inner_lr, k_shot, seed : starting values.

    Attributes
    ----------
    steps, inner_lr, k_shot : ipywidgets sliders;  new_task : ipywidgets.Button;  view : the figure;
    fig, lines, data, task, seed : the view's;  ui : the widget to display
    """

    def __init__(self, models, *, tasks=None, inner_steps=1, inner_lr=0.01, k_shot=5, seed=0, max_k=20):
        import ipywidgets as widgets

        self.view = SineAdaptationView(models, tasks=tasks, seed=seed, max_k=max_k)
        self.models, self.fig, self.lines, self.data = self.view.models, self.view.fig, self.view.lines, self.view.data
        self.steps = widgets.IntSlider(value=inner_steps, min=0, max=20, description="inner steps")
        self.inner_lr = rate_slider(inner_lr, RATES_1_2_5, description="inner lr α")
        self.k_shot = widgets.IntSlider(value=k_shot, min=1, max=max_k, description="K (support points)")
        fit_labels(self.steps, self.inner_lr, self.k_shot)
        self.new_task = widgets.Button(description="new task", icon="refresh")
        self.output = widgets.Output()
        for slider in (self.steps, self.inner_lr, self.k_shot):
            slider.observe(self.update, names="value")
        self.new_task.on_click(self.next_task)
        self.ui = widgets.VBox([widgets.HBox([self.steps, self.inner_lr]), widgets.HBox([self.k_shot, self.new_task]),
                                self.output])
        self.update()

    @property
    def seed(self) -> int:
        return self.view.seed

    @property
    def task(self):
        return self.view.task

    def next_task(self, _button=None) -> None:
        """Draw the next task (seed + 1) and redraw."""
        self.view.set_task(self.view.seed + 1)
        self.update()

    def update(self, _change=None) -> None:
        """Redraw the view for the current slider values and show it."""
        from IPython.display import clear_output

        self.view.draw(inner_steps=int(self.steps.value), inner_lr=float(self.inner_lr.value),
                       k_shot=int(self.k_shot.value))
        with self.output:
            clear_output(wait=True)
            show_png(self.fig, close=False)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def sine_adaptation_widget(models, **kwargs) -> SineAdaptationExplorer:
    """Build the "Try it" explorer for sinusoid adaptation; display it by leaving it last in a cell.

    ``kwargs`` go to :class:`SineAdaptationExplorer` (``inner_steps``, ``inner_lr``, ``k_shot``, ``seed``, ``tasks``).
    """
    return SineAdaptationExplorer(models, **kwargs)


#: The book's slider values: what the lesson's "things to try" need (0 steps; α as trained, doubled and
#: ten times larger; K = 1 (exercise 5), the training K and more).
EXPLORER_VALUES = {"inner_steps": (0, 1, 3, 10), "inner_lr": (0.01, 0.02, 0.1), "k_shot": (1, 5, 10)}


def sine_adaptation_explorer(models, *, values=None, initial=None, seed=0, tasks=None):
    """The Try-it for the book: :class:`SineAdaptationView` pre-rendered for every combination of slider values.

    Parameters
    ----------
    models : dict name -> nn.Module
    values : dict slider -> sequence, optional
        Values of ``inner_steps``, ``inner_lr`` and ``k_shot`` (default :data:`EXPLORER_VALUES`:
        4 × 3 × 3 = 36 frames, about 1.1 MB).
    initial : dict, optional
        The first frame (default 1 step, α = 0.01, K = 5 when those values are offered).
    seed : int
        The task (as the widget's ``seed``).

    Returns
    -------
    metalearn_lab.tryit.StaticExplorer

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> e = sine_adaptation_explorer({"net": SineMLP()}, values={"inner_steps": (0, 1), "inner_lr": (0.01,), "k_shot": (5,)})
    >>> len(e.frames), e.initial
    (2, {'inner_steps': 1, 'inner_lr': 0.01, 'k_shot': 5})
    """
    from metalearn_lab.tryit import explorer

    values = {name: list(v) for name, v in (values or EXPLORER_VALUES).items()}
    if set(values) != set(EXPLORER_VALUES):
        raise ValueError(f"values must give {sorted(EXPLORER_VALUES)}, got {sorted(values)}")
    preferred = {"inner_steps": 1, "inner_lr": 0.01, "k_shot": 5}
    initial = dict(initial or {name: preferred[name] if preferred[name] in v else v[0] for name, v in values.items()})
    view = SineAdaptationView(models, tasks=tasks, seed=seed, max_k=max(20, *values["k_shot"]))
    return explorer(view.draw, values, initial=initial, crop="first",
                    labels={"inner_steps": "inner steps", "inner_lr": "inner lr α", "k_shot": "K (support points)"},
                    title="Adapting to one new task (pre-rendered)")


def _setup(seed: int = 0):
    """A small SineMLP (a few pretraining steps, so its gradients are not tiny) and 6 sinusoid tasks."""
    import torch.nn.functional as F

    from metalearn_lab.data.sinusoid import SinusoidTasks
    from metalearn_lab.models import SineMLP

    torch.manual_seed(seed)
    model = SineMLP()
    generator = torch.Generator().manual_seed(seed)
    batch = SinusoidTasks().sample(6, 5, 20, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        F.mse_loss(model(batch.x_query.reshape(-1, 1)), batch.y_query.reshape(-1, 1)).backward()
        optimizer.step()
    return model, batch


def _max_difference(a, b) -> tuple[float, str]:
    worst, name = 0.0, ""
    for k in b:
        d = float((a[k].detach() - b[k].detach()).abs().max())
        if d > worst:
            worst, name = d, k
    return worst, name


def _call_inner_loop(inner_loop, *args):
    """Run the student's inner loop; a loss that ignores the adapted parameters becomes a diagnosis."""
    try:
        return inner_loop(*args)
    except RuntimeError as error:
        if "not have been used in the graph" in str(error):
            raise WrongAnswer("torch.autograd.grad says the loss does not depend on the adapted parameters: evaluate the "
                              "network with functional_call(model, adapted, (x_support,)), not model(x_support), which "
                              "always uses the model's own weights") from None
        raise


@checker("Exercise 1: the inner loop, by hand")
def check_sine_adapt(inner_loop) -> str:
    """Check an exercise's MAML inner loop against :func:`metalearn_lab.maml.adapt`.

    ``inner_loop(model, params, x_support, y_support, inner_steps, inner_lr)`` must return the
    dict of adapted parameters after ``inner_steps`` steps of gradient descent on the support MSE,
    without changing the model's weights and staying differentiable with respect to ``params``
    (second-order MAML). The untouched skeleton (returning ``None``) is "not attempted"; a wrong
    answer raises :class:`~metalearn_lab.exercises.WrongAnswer` naming the mistake (uphill step,
    first-order graph, one step too many, support and query swapped, a summed loss, ...).
    """
    from collections.abc import Mapping

    import torch.nn.functional as F
    from torch.func import functional_call

    from metalearn_lab.maml import adapt

    model, batch = _setup()
    xs, ys, xq, yq = (t[0] for t in batch.as_tuple())
    params = dict(model.named_parameters())
    before = {k: v.detach().clone() for k, v in params.items()}
    inner_lr = 0.02

    def ref(steps, lr=inner_lr, first_order=False, x=xs, y=ys):
        return adapt(model, params, x, y, F.mse_loss, inner_steps=steps, inner_lr=lr, first_order=first_order)

    def same(a, b, tol=1e-5):
        return _max_difference(a, b)[0] < tol

    for steps in (1, 2, 0):
        got = require_answer(_call_inner_loop(inner_loop, model, params, xs, ys, steps, inner_lr),
                             "inner_loop(model, params, x_support, y_support, inner_steps, inner_lr)")
        expect(isinstance(got, Mapping), "inner_loop should return a dict name -> tensor (like "
                                         f"dict(model.named_parameters()), but moved), got a {type(got).__name__}")
        expect(set(got) == set(params), f"the adapted dict needs the same keys as params; missing "
                                        f"{sorted(set(params) - set(got))}, unexpected {sorted(set(got) - set(params))}")
        changed = [k for k in params if not torch.equal(params[k].detach(), before[k])]
        expect(not changed, f"inner_loop changed the model's own weights in place ({changed[0] if changed else ''}, ...): "
                            "compute new tensors p - inner_lr * g instead of updating p")
        for k in params:
            expect(got[k].shape == params[k].shape,
                   f"adapted {k!r} has shape {tuple(got[k].shape)}, expected {tuple(params[k].shape)}")
        want = ref(steps)
        diff, name = _max_difference(got, want)
        if diff <= 1e-5:
            continue
        if steps and same(got, ref(0), 1e-7):
            raise WrongAnswer(f"with inner_steps={steps} the parameters did not move: take the gradient "
                              "steps and return the updated dict")
        for other in (steps - 1, steps + 1):
            if other >= 0 and same(got, ref(other)):
                raise WrongAnswer(f"with inner_steps={steps} your loop took {other} step(s): loop exactly inner_steps times")
        if steps == 1:
            if same(got, {k: params[k] + (params[k] - want[k]) for k in params}):
                raise WrongAnswer("the step went uphill: theta' = theta - inner_lr * grad (minus, not plus)")
            if same(got, ref(1, x=xq, y=yq)):
                raise WrongAnswer("the inner step used the query set; adapt on (x_support, y_support): the query "
                                  "points are kept for the meta-loss")
            for factor, message in ((2.0, "the step is twice too long: use inner_lr, not 2 * inner_lr"),
                                    (0.5, "the step is half as long as it should be: the loss is F.mse_loss (the mean "
                                          "of the squared errors), not half of it, and the step is inner_lr * grad"),
                                    (float(len(xs)), f"the step is {len(xs)} times too long: the loss must be the MEAN "
                                                     "squared error over the support points (F.mse_loss), not the sum")):
                if same(got, ref(1, lr=inner_lr * factor)):
                    raise WrongAnswer(message)
        raise WrongAnswer(f"with inner_steps={steps}, inner_lr={inner_lr} your adapted {name!r} differs from "
                          f"metalearn_lab.maml.adapt by {diff:.2e}: is the loss F.mse_loss on the support set?")

    # The meta-gradient: differentiate the query loss at theta' back to theta, through 2 inner steps.
    def meta_gradient(adapted):
        loss = F.mse_loss(functional_call(model, adapted, (xq,)), yq)
        return torch.autograd.grad(loss, list(params.values()), allow_unused=True)

    got = _call_inner_loop(inner_loop, model, params, xs, ys, 2, inner_lr)
    expect(any(v.requires_grad and v.grad_fn is not None for v in got.values()),
           "the adapted parameters are detached from params, so no meta-gradient can flow back to theta: "
           "do not call .detach() or torch.no_grad() inside the inner loop")
    grads = meta_gradient(got)
    want = meta_gradient(ref(2))
    first = meta_gradient(ref(2, first_order=True))
    gap = max(float((g - w).abs().max()) if g is not None else float("inf") for g, w in zip(grads, want))
    if gap > 1e-5:
        gap_first = max(float((g - w).abs().max()) if g is not None else float("inf") for g, w in zip(grads, first))
        if gap_first < 1e-5:
            raise WrongAnswer("your meta-gradient is the first-order one: the inner gradients are constants. "
                              "Pass create_graph=True to torch.autograd.grad so the meta-gradient sees the Hessian term")
        raise WrongAnswer(f"the meta-gradient through your inner loop differs from MAML's by {gap:.2e}")
    return ("inner_loop matches metalearn_lab.maml.adapt after 0, 1 and 2 steps, "
            "and gives the same second-order meta-gradient")


@checker("Exercise 2: query MSE per task")
def check_query_mse(query_mse) -> str:
    """Check ``query_mse(model, batch, inner_steps, inner_lr) -> Tensor [n_tasks]`` against :func:`metalearn_lab.maml.query_mse`.

    The reference adapts to each task's support set with :func:`metalearn_lab.maml.adapt_and_predict`
    and averages the squared error over each task's query points. The untouched skeleton is "not
    attempted"; a wrong answer raises :class:`~metalearn_lab.exercises.WrongAnswer` naming the
    mistake (one number for all tasks, no adaptation, RMSE, support points, support and query
    swapped, a sum over points, ...).
    """
    import torch.nn.functional as F

    from metalearn_lab.maml import adapt_and_predict
    from metalearn_lab.maml import query_mse as reference_mse

    model, batch = _setup(1)
    steps, lr = 3, 0.02
    n_query = batch.x_query.shape[1]

    def reference(b, inner_steps=steps, inner_lr=lr):
        return reference_mse(model, b, inner_steps, inner_lr)

    got = require_answer(query_mse(model, batch, steps, lr), "query_mse(model, batch, inner_steps, inner_lr)")
    got = torch.as_tensor(got).detach().double()
    want = reference(batch).double()
    expect(got.numel() != 1 or len(batch) == 1,
           f"query_mse returned one number ({float(got.reshape(-1)[0]):.4f}); return one MSE per task, "
           f"shape [n_tasks] = [{len(batch)}], so that we can put a confidence interval on them")
    if got.shape == (len(batch), 1):
        raise WrongAnswer(f"query_mse returned shape {tuple(got.shape)}: average over the query points AND the output "
                          "dimension, .mean(dim=(1, 2)), to get shape [n_tasks]")
    expect(got.shape == want.shape, f"query_mse returned shape {tuple(got.shape)}; expected one MSE per task, {tuple(want.shape)}")

    def close(a, b):
        return torch.allclose(a, b.double(), rtol=1e-4, atol=1e-6)

    if close(got, want):
        return f"query_mse gives the right per-task MSE on {len(batch)} tasks (mean {float(want.mean()):.4f} after {steps} steps)"
    if close(got, reference(batch, inner_steps=0)):
        raise WrongAnswer("these are the MSEs before adaptation: pass inner_steps to adapt_and_predict")
    if close(got, want.sqrt()):
        raise WrongAnswer("these are root-mean-square errors; drop the square root")
    if close(got, want * n_query):
        raise WrongAnswer(f"these are sums of squared errors over the {n_query} query points; take the mean over them")
    if close(got, reference(batch, inner_lr=lr * 2)):
        raise WrongAnswer("the adaptation step is twice inner_lr: pass inner_lr unchanged to adapt_and_predict")
    swapped = type(batch)(batch.x_query, batch.y_query, batch.x_support, batch.y_support, batch.amplitude, batch.phase)
    on_support = adapt_and_predict(model, batch.as_tuple()[:2] * 2, F.mse_loss, inner_steps=steps, inner_lr=lr)
    if close(got, ((on_support - batch.y_support) ** 2).mean(dim=(1, 2))):
        raise WrongAnswer("you measured the error on the support points, which the model was just fitted to; "
                          "measure it on the query points (x_query, y_query)")
    if close(got, reference(swapped)):
        raise WrongAnswer("support and query are swapped: adapt on (x_support, y_support), measure on (x_query, y_query)")
    raise WrongAnswer(f"per-task MSE differs from the reference (first task: yours {float(got[0]):.4f}, "
                      f"expected {float(want[0]):.4f}); average (prediction - y_query)**2 over each task's points")
