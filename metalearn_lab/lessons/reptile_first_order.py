"""Companion of lesson ``07_reptile_first_order``: a 2-D landscape of the three update rules (the Try-it
explorer and its static twin), the figures of the Taylor check, the side-by-side runs and the cost
table, and the checkers of the exercises (the first-order MAML gradient, a Reptile meta-step, the
coefficients of Nichol et al.'s expansion).

The lesson imports this module as ``lesson``; nothing in the core library imports it. The update
rules themselves live in :mod:`metalearn_lab.reptile` (``update_directions``, ``meta_directions``,
``gradient_inner_product_terms``, ``expected_update_directions``, ``taylor_coefficients``).
"""

from __future__ import annotations

import itertools
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from metalearn_lab.controls import fit_labels, rate_slider, show_png
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer
from metalearn_lab.reptile import METHODS, taylor_coefficients

#: One colour per method, the same in every figure of the lesson.
COLORS = {"MAML": "tab:blue", "first-order MAML": "tab:orange", "Reptile": "tab:green", "joint training": "0.4"}


def as_minibatches(batch, n_batches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A sinusoid batch's support and query sets as ``n_batches`` mini-batches a task: support, query, support, ...

    Returns ``(x_batches, y_batches)`` shaped ``[meta_batch_size, n_batches, n, 1]`` for
    :func:`metalearn_lab.reptile.meta_directions`. With ``n_batches = 2`` MAML and first-order MAML
    take one inner step on the support set and use the query set, as in lesson ``maml_sinusoid``;
    Reptile takes its steps on the two sets in turn, cycling through the task's data as Nichol et
    al.'s code does. Support and query must have the same size.

    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> b = SinusoidTasks().sample(3, 10, 10, generator=torch.Generator().manual_seed(0))
    >>> xs, ys = as_minibatches(b, 4)
    >>> tuple(xs.shape), torch.equal(xs[:, 2], b.x_support)
    ((3, 4, 10, 1), True)
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    if batch.x_support.shape != batch.x_query.shape:
        raise ValueError(f"support and query sets must have the same shape to alternate, got "
                         f"{tuple(batch.x_support.shape)} and {tuple(batch.x_query.shape)}")
    xs = [batch.x_support, batch.x_query] * ((n_batches + 1) // 2)
    ys = [batch.y_support, batch.y_query] * ((n_batches + 1) // 2)
    return torch.stack(xs[:n_batches], 1), torch.stack(ys[:n_batches], 1)


# --- a toy family of 2-D quadratic tasks, in closed form (the Try-it explorer) ---


class QuadraticTasks:
    r"""A finite family of tasks with two parameters, each with ``n_batches`` quadratic mini-batch losses.

    Mini-batch :math:`i` of task :math:`\tau` has :math:`L_i(w) = \tfrac12 (w - c_i)^\top A_i (w - c_i)`:
    its own minimum :math:`c_i` (the task's centre plus noise) and its own curvature :math:`A_i`
    (eigenvalues in [0.3, 3], a random orientation). Gradients :math:`A_i(w - c_i)` and Hessians
    :math:`A_i` are exact, so the three update rules cost microseconds in NumPy
    (:func:`toy_directions`) and agree with :func:`metalearn_lab.reptile.update_directions` on
    :meth:`batch_losses` (the tests check it).

    Attributes
    ----------
    centers : ndarray ``[n_tasks, n_batches, 2]``;  curvatures : ndarray ``[n_tasks, n_batches, 2, 2]``
    """

    def __init__(self, n_tasks: int = 8, n_batches: int = 4, seed: int = 0, spread: float = 1.5, noise: float = 0.6):
        if n_tasks < 1 or n_batches < 2:
            raise ValueError(f"need n_tasks >= 1 and n_batches >= 2, got {n_tasks} and {n_batches}")
        rng = np.random.default_rng(seed)
        task_centers = rng.normal(0.0, spread, size=(n_tasks, 1, 2)) + np.array([2.0, 1.0])
        self.centers = task_centers + rng.normal(0.0, noise, size=(n_tasks, n_batches, 2))
        angles = rng.uniform(0, np.pi, size=(n_tasks, n_batches))
        eigen = rng.uniform(0.3, 3.0, size=(n_tasks, n_batches, 2))
        rot = np.stack([np.stack([np.cos(angles), -np.sin(angles)], -1), np.stack([np.sin(angles), np.cos(angles)], -1)], -2)
        self.curvatures = rot @ (eigen[..., :, None] * np.swapaxes(rot, -1, -2))
        self.n_tasks, self.n_batches = n_tasks, n_batches

    def batch_losses(self, task: int) -> list:
        """Task ``task``'s mini-batch losses as torch functions of ``{"w": Tensor [2]}`` (float64)."""
        out = []
        for c, a in zip(self.centers[task], self.curvatures[task]):
            c_t, a_t = torch.tensor(c), torch.tensor(a)
            out.append(lambda p, c_t=c_t, a_t=a_t: 0.5 * (p["w"] - c_t) @ a_t @ (p["w"] - c_t))
        return out

    def task_loss(self, task: int, w: np.ndarray) -> np.ndarray:
        """The task's mean mini-batch loss at points ``w [..., 2]`` (for contour plots)."""
        d = w[..., None, :] - self.centers[task]
        return 0.5 * np.einsum("...bi,bij,...bj->...b", d, self.curvatures[task], d).mean(-1)


def toy_directions(curvatures: np.ndarray, centers: np.ndarray, theta: np.ndarray, inner_lr: float) -> dict:
    """The three update directions for quadratic mini-batches ``curvatures [k, 2, 2]``, ``centers [k, 2]``, in closed form.

    Also returns ``"path"``, the points :math:`\\phi_1 .. \\phi_{k+1}` of Reptile's inner loop.

    >>> a = np.stack([np.diag([1.0, 3.0])] * 2); c = np.array([[0.0, 0.0], [1.0, 1.0]])
    >>> g = toy_directions(a, c, np.zeros(2), 0.1)
    >>> np.round(g["MAML"], 3).tolist(), np.round(g["Reptile"], 3).tolist()
    ([-0.9, -2.1], [-1.0, -3.0])
    """
    phi = np.asarray(theta, dtype=float)
    path, grads, jacobian = [phi], [], np.eye(2)
    k = len(centers)
    for i in range(k):
        g = curvatures[i] @ (phi - centers[i])
        grads.append(g)
        if i < k - 1:
            jacobian = (np.eye(2) - inner_lr * curvatures[i]) @ jacobian
        phi = phi - inner_lr * g
        path.append(phi)
    # the last batch's gradient is taken at phi_k (path[k - 1]), after k - 1 steps
    return {"MAML": jacobian.T @ grads[-1], "first-order MAML": grads[-1], "Reptile": np.sum(grads, 0),
            "path": np.array(path)}


def toy_expectations(family: QuadraticTasks, theta: np.ndarray, inner_lr: float, n_batches: int) -> dict:
    """Exact expectations over the family's tasks and ordered ``n_batches``-tuples of distinct batches.

    Returns the three expected directions and ``"avg_grad"``, ``"avg_grad_inner"`` (Nichol et al.'s terms).
    """
    theta = np.asarray(theta, dtype=float)
    totals = {m: np.zeros(2) for m in METHODS}
    count = 0
    avg_grad, avg_inner = np.zeros(2), np.zeros(2)
    for t in range(family.n_tasks):
        a, c = family.curvatures[t], family.centers[t]
        grads = np.einsum("bij,bj->bi", a, theta - c)
        avg_grad += grads.mean(0) / family.n_tasks
        b = family.n_batches
        others = grads.sum(0) - grads
        avg_inner += np.einsum("bij,bj->i", a, others) / (b * (b - 1) * family.n_tasks)
        for order in itertools.permutations(range(b), n_batches):
            d = toy_directions(a[list(order)], c[list(order)], theta, inner_lr)
            for m in METHODS:
                totals[m] += d[m]
            count += 1
    return {**{m: v / count for m, v in totals.items()}, "avg_grad": avg_grad, "avg_grad_inner": avg_inner}


def measured_inner_coefficient(expected, avg_grad, avg_grad_inner, inner_lr: float, leading: float) -> float:
    r"""The coefficient :math:`\hat b` with :math:`\mathbb{E}[g] \approx a\,\text{AvgGrad} - \hat b\,\alpha\,\text{AvgGradInner}`.

    The component of :math:`\mathbb{E}[g] - a\,\text{AvgGrad}` along AvgGradInner, divided by
    :math:`-\alpha\lVert\text{AvgGradInner}\rVert^2`; it tends to Nichol et al.'s coefficient as
    :math:`\alpha \to 0`. Works on NumPy arrays or flat tensors.

    >>> measured_inner_coefficient(np.array([1.0, -0.2]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.1, 1.0)
    2.0
    """
    e, g, h = (np.asarray(v, dtype=float).ravel() for v in (expected, avg_grad, avg_grad_inner))
    return float(-((e - leading * g) @ h) / (inner_lr * (h @ h)))


def _init_landscape(ax, family, task, theta, extent):
    xs = np.linspace(extent[0], extent[1], 80)
    ys = np.linspace(extent[2], extent[3], 80)
    grid = np.stack(np.meshgrid(xs, ys), -1)
    ax.contour(xs, ys, np.log1p(family.task_loss(task, grid)), levels=14, cmap="Greys", linewidths=0.7)
    ax.scatter(*family.centers[task].T, marker="x", color="0.45", s=25, label="mini-batch minima")
    ax.scatter(*theta, color="k", s=30, zorder=5, label="θ (initialisation)")
    lines = {"path": ax.plot([], [], "-o", color=COLORS["Reptile"], ms=3, lw=1, alpha=0.6,
                             label="Reptile's inner steps")[0]}
    ax.set(xlim=extent[:2], ylim=extent[2:], xlabel="$w_1$", ylabel="$w_2$", aspect="equal")
    return lines


def _draw_arrows(ax, theta, directions, length):
    """Unit arrows from θ along −g for each method (the outer step goes against g)."""
    artists = []
    for m in METHODS:
        g = directions[m]
        u = -g / max(np.linalg.norm(g), 1e-12) * length
        artists.append(ax.annotate("", xy=theta + u, xytext=theta,
                                   arrowprops=dict(arrowstyle="-|>", color=COLORS[m], lw=2)))
    return artists


def _coefficient_curves(family, theta, n_batches, alphas):
    """Measured coefficients b̂(α) of the three methods on the toy family."""
    curves = {m: [] for m in METHODS}
    for alpha in alphas:
        e = toy_expectations(family, theta, alpha, n_batches)
        for m in METHODS:
            a, _ = taylor_coefficients(m, n_batches)
            curves[m].append(measured_inner_coefficient(e[m], e["avg_grad"], e["avg_grad_inner"], alpha, a))
    return curves


class UpdateDirectionsView:
    """The Try-it's figure: inner step size α, number of mini-batches k, and the task, against the three updates.

    Left: one task of a family of 2-D quadratic tasks (:class:`QuadraticTasks`), its loss contours,
    Reptile's k inner steps for one ordering of the mini-batches, and the directions
    :math:`-g` of MAML, first-order MAML and Reptile from θ (unit length; the angles between them
    are printed in the title). Right: for the whole family, the measured coefficient of
    :math:`\\alpha\\,\\text{AvgGradInner}` in each expected update against α (computed once per k,
    up front), with Nichol et al.'s predictions as dashed lines and the chosen α marked.
    Everything is closed-form NumPy, and :meth:`draw` only moves the artists a change concerns (the
    contours are redrawn when the task changes), so the figure follows a slider within a fraction
    of a second. The live widget (:class:`UpdateDirectionsExplorer`) and the book's pre-rendered
    explorer (:func:`update_directions_explorer`) both draw with it.

    Examples
    --------
    >>> view = UpdateDirectionsView()
    >>> fig = view.draw(inner_lr=0.01, n_batches=2, task=0)
    >>> fig is view.fig, len(fig.axes), view.ax_map.get_title().startswith("task 0, k = 2, α = 0.010")
    (True, 2, True)
    """

    def __init__(self, family: QuadraticTasks | None = None):
        from matplotlib.figure import Figure

        self.family = family or QuadraticTasks()
        self.theta = np.zeros(2)
        self.alphas = np.logspace(-3, np.log10(0.3), 25)
        self._curves = {k: _coefficient_curves(self.family, self.theta, k, self.alphas)
                        for k in range(2, self.family.n_batches + 1)}
        self.fig = Figure(figsize=(10, 4.2))
        self.ax_map, self.ax_coef = self.fig.subplots(1, 2)
        self._arrows: list = []
        self._lines: dict = {}
        self._drawn_task = None
        self._laid_out = False
        self._init_coefficients()

    def curves(self, n_batches: int) -> dict:
        """The measured coefficients b̂(α) of the three methods for ``n_batches`` mini-batches."""
        if n_batches not in self._curves:
            self._curves[n_batches] = _coefficient_curves(self.family, self.theta, n_batches, self.alphas)
        return self._curves[n_batches]

    def _init_coefficients(self) -> None:
        ax = self.ax_coef
        for m in METHODS:
            self._lines[m] = ax.plot(self.alphas, np.zeros_like(self.alphas), color=COLORS[m], lw=2,
                                     ls="-." if m == "Reptile" else "-", label=f"{m}: measured")[0]
            self._lines[m, "predicted"] = ax.axhline(0.0, color=COLORS[m], ls="--", lw=1)
        self._lines["alpha"] = ax.axvline(1.0, color="k", ls=":", lw=1)
        ax.set(xscale="log", xlabel="inner step size α", ylabel="coefficient of α·AvgGradInner")
        _plain_log_ticks(ax, [0.001, 0.003, 0.01, 0.03, 0.1, 0.3])
        ax.set_title(f"all {self.family.n_tasks} tasks, exact expectations (dashed: Nichol et al.'s prediction)",
                     fontsize=8.5)
        ax.legend(fontsize=7)

    def _draw_task(self, task: int) -> None:
        ax = self.ax_map
        ax.clear()
        c = self.family.centers[task]
        extent = (min(c[:, 0].min(), 0) - 1.5, max(c[:, 0].max(), 0) + 1.5, min(c[:, 1].min(), 0) - 1.5,
                  max(c[:, 1].max(), 0) + 1.5)
        self._map_lines = _init_landscape(ax, self.family, task, self.theta, extent)
        for m in METHODS:
            ax.plot([], [], color=COLORS[m], lw=2, label=f"−g, {m}")
        ax.legend(fontsize=6.5, loc="lower right")
        self._arrow_length = 0.35 * (extent[1] - extent[0])
        self._arrows = []
        self._drawn_task = task

    def draw(self, *, inner_lr: float, n_batches: int, task: int):
        """Move the artists to ``inner_lr``, ``n_batches`` and ``task``; returns :attr:`fig`."""
        task, k, alpha = int(task), int(n_batches), float(inner_lr)
        if task != self._drawn_task:
            self._draw_task(task)
        order = list(range(k))
        d = toy_directions(self.family.curvatures[task][order], self.family.centers[task][order], self.theta, alpha)
        self._map_lines["path"].set_data(d["path"][:, 0], d["path"][:, 1])
        for arrow in self._arrows:
            arrow.remove()
        self._arrows = _draw_arrows(self.ax_map, self.theta, d, self._arrow_length)
        self.ax_map.set_title(_angles_title(task, k, alpha, d), fontsize=8.5)
        curves = self.curves(k)
        values = []
        for m in METHODS:
            b = taylor_coefficients(m, k)[1]
            self._lines[m].set_ydata(curves[m])
            self._lines[m, "predicted"].set_ydata([b, b])
            values += [*curves[m], b]
        self._lines["alpha"].set_xdata([alpha, alpha])
        low, high = min(values), max(values)
        self.ax_coef.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.05 * (high - low + 1e-9))
        if not self._laid_out:  # once: the layout does not change afterwards
            self.fig.tight_layout()
            self._laid_out = True
        return self.fig


#: The inner step sizes the Try-it offers (1, 2, 3 and 5 per decade, up to the 0.3 its right panel reaches).
UPDATE_DIRECTIONS_RATES = (0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3)


class UpdateDirectionsExplorer:
    """The live Try-it: sliders for α, k and the task over an :class:`UpdateDirectionsView`, shown as one PNG.

    Attributes
    ----------
    inner_lr, n_batches, task : ipywidgets sliders;  view : the figure;  ax_map, ax_coef : its axes;
    ui : the widget to display
    """

    def __init__(self, *, inner_lr: float = 0.05, n_batches: int = 3, task: int = 0, family: QuadraticTasks | None = None):
        import ipywidgets as widgets

        self.view = UpdateDirectionsView(family)
        self.family, self.fig, self.ax_map, self.ax_coef = self.view.family, self.view.fig, self.view.ax_map, self.view.ax_coef
        self._curves = self.view._curves
        self.inner_lr = rate_slider(inner_lr, UPDATE_DIRECTIONS_RATES, description="inner step size α")
        self.n_batches = widgets.IntSlider(value=n_batches, min=2, max=self.family.n_batches, description="mini-batches k")
        self.task = widgets.IntSlider(value=task, min=0, max=self.family.n_tasks - 1, description="task")
        fit_labels(self.inner_lr, self.n_batches, self.task)
        self.output = widgets.Output()
        for slider in (self.inner_lr, self.n_batches, self.task):
            slider.observe(self.update, names="value")
        self.ui = widgets.VBox([widgets.HBox([self.inner_lr, self.n_batches, self.task]), self.output])
        self.update()

    def curves(self, n_batches: int) -> dict:
        return self.view.curves(n_batches)

    def update(self, _change=None) -> None:
        """Redraw the view for the sliders' values and show it."""
        from IPython.display import clear_output

        self.view.draw(inner_lr=float(self.inner_lr.value), n_batches=int(self.n_batches.value), task=int(self.task.value))
        with self.output:
            clear_output(wait=True)
            show_png(self.fig, close=False)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def _plain_log_ticks(ax, ticks) -> None:
    """Log-scale x ticks labelled as plain numbers (mathtext labels make each redraw slower)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def _angle(a, b) -> float:
    return math.degrees(math.acos(float(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))))


def _angles_title(task, k, alpha, d) -> str:
    return (f"task {task}, k = {k}, α = {alpha:.3f}: angle MAML–FOMAML {_angle(d['MAML'], d['first-order MAML']):.1f}°, "
            f"MAML–Reptile {_angle(d['MAML'], d['Reptile']):.1f}°")


def update_directions_widget(**kwargs) -> UpdateDirectionsExplorer:
    """Build the Try-it explorer; display it by leaving it last in a cell. ``kwargs`` go to :class:`UpdateDirectionsExplorer`."""
    return UpdateDirectionsExplorer(**kwargs)


def update_directions_explorer(*, inner_lrs=(0.003, 0.01, 0.05, 0.1, 0.2), n_batches=(2, 3, 4), tasks=(0, 1),
                               initial=None):
    """The Try-it for the book: :class:`UpdateDirectionsView` pre-rendered for every combination of the values
    (:func:`metalearn_lab.tryit.explorer`), with sliders that work without a kernel. The values must be ones the
    live widget offers (:data:`UPDATE_DIRECTIONS_RATES`, k from 2 to 4, tasks 0-7); the first frame is the middle
    α and k and the first task, where the widget starts (α = 0.05, k = 3, task 0) with the default values."""
    from metalearn_lab.tryit import explorer

    view = UpdateDirectionsView()
    inner_lrs, n_batches, tasks = list(inner_lrs), list(n_batches), list(tasks)
    outside = [a for a in inner_lrs if a not in UPDATE_DIRECTIONS_RATES]
    if outside:
        raise ValueError(f"inner_lrs {outside} are not offered by the live widget; choose from {UPDATE_DIRECTIONS_RATES}")
    initial = initial or {"inner_lr": inner_lrs[len(inner_lrs) // 2], "n_batches": n_batches[len(n_batches) // 2],
                          "task": tasks[0]}
    return explorer(view.draw, {"inner_lr": inner_lrs, "n_batches": n_batches, "task": tasks}, initial=initial,
                    labels={"inner_lr": "inner step size α", "n_batches": "mini-batches k", "task": "task"},
                    title="The three update directions against α and k (pre-rendered)")


# --- figures of the Taylor check, the side-by-side runs and the cost table ---


def _flat(d) -> torch.Tensor:
    return torch.cat([d[k].reshape(-1) for k in sorted(d)])


def taylor_check(tasks, params, alphas, n_batches_list) -> dict:
    """Run Nichol et al.'s expansion against exact expectations, for each k and α.

    Returns ``{"terms": {...}, (k, method): {"rel_leading": [..], "rel_taylor": [..], "coefficient": [..]}}``:
    the relative error of the leading term alone, of the leading plus the AvgGradInner term, and
    the measured coefficient :func:`measured_inner_coefficient`, one value per α.
    """
    from metalearn_lab.reptile import expected_update_directions, gradient_inner_product_terms

    terms = gradient_inner_product_terms(tasks, params)
    grad, inner = _flat(terms["avg_grad"]), _flat(terms["avg_grad_inner"])
    out: dict = {"terms": terms, "alphas": list(alphas)}
    for k in n_batches_list:
        rows = {m: {"rel_leading": [], "rel_taylor": [], "coefficient": []} for m in METHODS}
        for alpha in alphas:
            expected = expected_update_directions(tasks, params, alpha, k)
            for m in METHODS:
                a, b = taylor_coefficients(m, k)
                e = _flat(expected[m])
                rows[m]["rel_leading"].append(float((e - a * grad).norm() / e.norm()))
                rows[m]["rel_taylor"].append(float((e - a * grad + b * alpha * inner).norm() / e.norm()))
                rows[m]["coefficient"].append(measured_inner_coefficient(e.numpy(), grad.numpy(), inner.numpy(), alpha, a))
        for m in METHODS:
            out[k, m] = rows[m]
    return out


def plot_taylor_check(results, n_batches_list):
    """Left: relative error of the leading term alone (∝ α) and with the AvgGradInner term (∝ α²).
    Right: the measured coefficient of α·AvgGradInner against α, with the predictions dashed."""
    alphas = np.asarray(results["alphas"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    styles = dict(zip(n_batches_list, ["-", "-."]))
    for k in n_batches_list:
        for m in METHODS:
            r = results[k, m]
            left.plot(alphas, r["rel_leading"], styles.get(k, "-"), color=COLORS[m], lw=1, alpha=0.6)
            left.plot(alphas, r["rel_taylor"], styles.get(k, "-"), color=COLORS[m], lw=2,
                      label=f"{m}, k = {k}")
            right.plot(alphas, r["coefficient"], styles.get(k, "-"), color=COLORS[m], lw=2, label=f"{m}, k = {k}")
            right.axhline(taylor_coefficients(m, k)[1], color=COLORS[m], ls="--", lw=0.8)
    left.plot(alphas, alphas / alphas[0] * 1e-3, "k:", lw=1, label="slope 1 (∝ α)")
    left.plot(alphas, (alphas / alphas[0]) ** 2 * 1e-6, "k--", lw=1, label="slope 2 (∝ α²)")
    left.set(xscale="log", yscale="log", xlabel="inner step size α", ylabel="relative error of the prediction",
             title="thin: leading term only; thick: with the α·AvgGradInner term")
    left.title.set_fontsize(9)
    right.set(xscale="log", xlabel="inner step size α", ylabel="coefficient of α·AvgGradInner",
              title="measured (solid) against Nichol et al.'s expansion (dashed)")
    right.title.set_fontsize(9)
    left.legend(fontsize=6.5, ncol=2)
    right.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    return fig


def plot_training_curves(curves: dict, *, smooth: int = 50):
    """The post-adaptation query loss of each side-by-side run against the step (running mean of ``smooth``)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for label, values in curves.items():
        v = torch.tensor(values, dtype=torch.float64)
        if len(v) >= smooth:
            v = F.avg_pool1d(v[None, None], smooth, stride=1)[0, 0]
        method = next((m for m in METHODS if label.startswith(m)), "joint training")
        ax.plot(np.arange(len(v)) + (smooth - 1 if len(values) >= smooth else 0), v, label=label,
                color=COLORS[method], ls="--" if "k = 8" in label else "-")
    ax.set(yscale="log", xlabel="meta-training step", ylabel="last mini-batch's loss after k−1 steps",
           title=f"Same tasks, same Adam, different directions (running mean of {smooth})")
    ax.legend(fontsize=8)
    return fig


def plot_costs(inner_steps, costs: dict):
    """Time and saved-tensor memory of one meta-step against the inner steps, one line per method."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for m, rows in costs.items():
        left.plot(inner_steps, [1e3 * r["seconds"] for r in rows], "o-", color=COLORS[m], label=m)
        right.plot(inner_steps, [r["saved_mb"] for r in rows], "o-", color=COLORS[m], label=m)
    left.set(xlabel="inner steps", ylabel="ms per meta-step (fastest run)", xscale="log", yscale="log",
             title="time")
    right.set(xlabel="inner steps", ylabel="MB kept for backward", xscale="log", yscale="log", title="memory")
    for ax in (left, right):
        ax.set_xticks(list(inner_steps), [str(k) for k in inner_steps])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- Omniglot: the shipped runs of the three methods, and Reptile's protocol ---


def _inner_loop_text(config) -> str:
    if getattr(config, "inner_optimizer", "sgd") == "adam":
        return (f"{config.inner_steps} Adam steps (β1 = 0, lr {config.inner_lr:g}) on batches of {config.inner_batch_size} "
                f"from {config.n_query} images a class; test: {config.eval_inner_steps} Adam steps")
    shots = f" on {config.n_query} images a class" if config.algorithm == "reptile" else ""
    return (f"{config.inner_steps} SGD step(s) of {config.inner_lr:g}{shots}; "
            f"test: {config.eval_inner_steps} steps")


def _batch_norm_text(config) -> str:
    if config.algorithm == "reptile" and not config.transductive:
        return "each query alone with the support set"
    return f"all {config.n_way * config.eval_n_query} queries of a task together (transductive)"


def omniglot_table(names: dict, papers: dict, results: dict, live: dict) -> str:
    """The Markdown table of the lesson's Omniglot section.

    Parameters
    ----------
    names : dict label -> experiment name;  papers : dict label -> key of :func:`metalearn_lab.experiments.published`
    results : dict experiment -> shipped results (:func:`metalearn_lab.report.load_results`)
    live : dict label -> a live re-evaluation (:func:`metalearn_lab.experiments.evaluate_experiment`) on a few tasks
    """
    from metalearn_lab.experiments import get_config, published
    from metalearn_lab.report import training_cost

    rows = ["| method | inner loop | batch norm at test | meta-steps × tasks | ours, 600 test tasks | live re-check | "
            "published | training |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, name in names.items():
        config = get_config(name, quick=False)
        r = results.get(name)
        paper = published(papers[label]).citation()
        steps = f"{config.iterations:,} × {config.meta_batch_size}"
        if r is None:
            rows.append(f"| {label} | {_inner_loop_text(config)} | {_batch_norm_text(config)} | {steps} | not shipped yet | "
                        f"| {paper} | |")
            continue
        ours = f"{100 * r['mean']:.1f} ± {100 * r['ci95']:.1f}%"
        check = live.get(label)
        check_text = f"{100 * check['mean']:.1f}% ({check['n_tasks']} tasks)" if check else ""
        rows.append(f"| {label} | {_inner_loop_text(config)} | {_batch_norm_text(config)} | {steps} | {ours} | "
                    f"{check_text} | {paper} | {training_cost(r)} |")
    return "\n".join(rows)


#: Nichol et al.'s 1-shot 5-way Omniglot protocol, from their README command and code (openai/supervised-reptile).
NICHOL_PROTOCOL = {
    "inner loop (training)": "Adam, β1 = 0, lr 0.001, state kept across tasks (`models.py`, `reptile.py`)",
    "images a class in a training task": "10 (`--train-shots 10`)",
    "inner steps × batch": "5 × 10: one pass over the 50 images (`--inner-iters 5 --inner-batch 10`)",
    "meta-batch": "5 tasks",
    "outer step ε": "1 → 0, linear over the run (`--meta-step 1 --meta-step-final 0`, `train.py`)",
    "meta-steps (tasks seen)": "100,000 (500,000)",
    "network": "Conv4, stride-2 convolutions, batch statistics, flatten 2×2×64 → linear",
    "test fine-tuning": "50 Adam steps on the 5 support images (`--eval-iters 50 --eval-batch 5`)",
    "batch norm at test": "each query alone with the support set (non-transductive)",
    "characters": "random 1,200 train / 423 test, no validation; test characters not rotated",
    "test tasks": "10,000 by default (`--eval-samples`), 1 query a class",
}


def reptile_protocol_table(configs: dict) -> str:
    """Markdown: Nichol et al.'s protocol (:data:`NICHOL_PROTOCOL`) beside our Reptile configs (dict label -> config)."""
    def ours(config):
        adam = getattr(config, "inner_optimizer", "sgd") == "adam"
        validation = config.validation_characters
        return {
            "inner loop (training)": (f"Adam, β1 = 0, lr {config.inner_lr:g}, state kept across tasks" if adam
                                      else f"plain SGD, step {config.inner_lr:g}"),
            "images a class in a training task": str(config.n_query),
            "inner steps × batch": (f"{config.inner_steps} × {config.inner_batch_size}" if adam
                                    else f"{config.inner_steps} × all {config.n_way * config.n_query}"),
            "meta-batch": f"{config.meta_batch_size} tasks",
            "outer step ε": f"{config.outer_lr:g} → 0, linear over the run",
            "meta-steps (tasks seen)": f"{config.iterations:,} ({config.iterations * config.meta_batch_size:,})",
            "network": ("Conv4, stride-2 convolutions, batch statistics, flatten 2×2×64 → linear"
                        if config.downsample == "stride" else "Conv4, 2×2 max-pooling, batch statistics, 64 → linear"),
            "test fine-tuning": (f"{config.eval_inner_steps} Adam steps on the {config.n_way * config.k_shot} support "
                                 "images, a fresh Adam for each task" if adam
                                 else f"{config.eval_inner_steps} SGD steps of {config.inner_lr:g}"),
            "batch norm at test": _batch_norm_text(config),
            "characters": (f"{1200 - validation:,} train / {validation} validation / 423 test; test characters rotated "
                           "(our protocol)" if validation else "1,200 train / 423 test, no validation (test tasks "
                                                               "monitored during training); test characters rotated"),
            "test tasks": f"{config.eval_tasks} fixed, {config.eval_n_query} queries a class",
        }
    columns = {label: ours(c) for label, c in configs.items()}
    rows = ["| | Nichol et al. 2018 | " + " | ".join(columns) + " |", "| --- | --- |" + " --- |" * len(columns)]
    for key, theirs in NICHOL_PROTOCOL.items():
        rows.append(f"| {key} | {theirs} | " + " | ".join(col[key] for col in columns.values()) + " |")
    return "\n".join(rows)


def nichol_run_summary(result: dict, paper, paper_transductive) -> str:
    """Markdown: what the Nichol-protocol run reached, next to the paper's numbers, and how far it went."""
    config = result["config"]
    steps, tasks_seen = config["iterations"], config["iterations"] * config["meta_batch_size"]
    history = result.get("history", {})
    curve = ", ".join(f"{100 * v:.1f}% at step {s:,}" for s, v in zip(history.get("eval_step", []), history.get("eval_metric", [])))
    lines = [f"**The run with Nichol et al.'s protocol** trained {steps:,} meta-steps ({tasks_seen:,} tasks, "
             f"{100 * steps / 100_000:.0f}% of their 100,000 steps) in {result['train_wall_s'] / 3600:.1f} h of wall time "
             f"({result['train_cpu_s'] / 3600:.1f} h of CPU time, one thread, niced, on a 2-core machine shared with other "
             f"jobs), its outer step annealed from 1 to 0 over those steps."]
    if curve:
        lines.append(f"Validation accuracy (held-out characters, each query alone): {curve}.")
    lines.append(f"On the 600 test tasks it reaches **{100 * result['mean']:.1f} ± {100 * result['ci95']:.1f}%** classifying "
                 f"each query alone with the support set, against {paper.citation()}.")
    if "transductive_result" in result:
        t = result["transductive_result"]
        lines.append(f"Classifying a task's queries together (transductive batch norm) the same fine-tuned models reach "
                     f"{100 * t['mean']:.1f} ± {100 * t['ci95']:.1f}% (paper: {paper_transductive.citation()}).")
    if "unrotated_test_1_query" in result:
        u = result["unrotated_test_1_query"]
        lines.append(f"On tasks built as Nichol et al.'s code builds them (the 423 test characters without rotations, "
                     f"one query a class; {u.get('n_tasks', '')} tasks) it reaches {100 * u['mean']:.1f} ± {100 * u['ci95']:.1f}%.")
    evals = history.get("eval_metric", [])
    trend = ""
    if len(evals) >= 2:
        trend = (f" Validation accuracy was still rising when the run ended ({100 * evals[-2]:.1f}% → {100 * evals[-1]:.1f}% "
                 "over the last interval)." if evals[-1] > evals[-2] else
                 f" Validation accuracy had levelled off by the end ({100 * evals[-2]:.1f}% → {100 * evals[-1]:.1f}% over the last interval).")
    per_step = result["train_wall_s"] / steps
    remains = [
        f"**What remains between this run and the paper.** (1) *Steps*: {steps:,} of 100,000 meta-steps, with the outer "
        f"step annealed over those {steps:,}; at this run's pace ({per_step:.1f} s a meta-step on one shared thread) "
        f"the full schedule would take about {100_000 * per_step / 86400:.0f} days.{trend}",
        "(2) *Characters*: 1,100 for training, since 100 are held out to validate on; Nichol et al. train on all 1,200 "
        "and have no validation set.",
        "(3) *Test tasks*: ours keep the rotated test characters and 15 queries a class; the line on unrotated "
        "characters is built as their code builds it, from fewer tasks than their 10,000.",
        "(4) *Test-time Adam*: their code restores the training run's Adam statistics before fine-tuning each test "
        "task; we start each task with a fresh Adam, because shipped checkpoints hold weights only.",
        "(5) *Details of network and data*: PyTorch's default initialisation instead of TensorFlow's Glorot, batch-norm "
        "ε = 1e-5 instead of 1e-3, symmetric instead of TensorFlow's 'same' padding, and our 28 × 28 images "
        "(Lanczos-resized, ink = 1) instead of theirs.",
        "We expect (1) to matter by far the most.",
    ]
    return " ".join(lines) + "\n\n" + " ".join(remains)


# --- exercises ---


def _tiny_setup(seed: int = 0, n_tasks: int = 3):
    """A small sine MLP (a few joint-training steps, so its gradients are not tiny) and a batch of sinusoid tasks."""
    from metalearn_lab.data.sinusoid import SinusoidTasks
    from metalearn_lab.models import SineMLP

    torch.manual_seed(seed)
    model = SineMLP(hidden=16)
    batch = SinusoidTasks().sample(n_tasks, 10, 10, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        F.mse_loss(model(batch.x_query.reshape(-1, 1)), batch.y_query.reshape(-1, 1)).backward()
        optimizer.step()
    return model, batch


def _close(a, b, rtol=1e-4, atol=1e-6) -> bool:
    return all(torch.allclose(a[k].detach().float(), b[k].detach().float(), rtol=rtol, atol=atol) for k in b)


def _as_dict(answer, names, what):
    if isinstance(answer, (list, tuple)):
        answer = dict(zip(names, answer))
    if not isinstance(answer, dict):
        raise WrongAnswer(f"{what} should return a dict name -> tensor (like dict(model.named_parameters())), "
                          f"got {type(answer).__name__}")
    missing = sorted(set(names) - set(answer))
    expect(not missing, f"{what} misses the parameters {missing}: return one tensor per parameter")
    for k in names:
        expect(isinstance(answer[k], torch.Tensor), f"{what}[{k!r}] should be a tensor, got {type(answer[k]).__name__}")
    return answer


@checker("Exercise 1: the first-order MAML gradient")
def check_first_order_gradient(first_order_gradient) -> str:
    """Compare ``first_order_gradient(model, params, x_support, y_support, x_query, y_query, inner_steps, inner_lr)`` with the library.

    The right answer is :func:`metalearn_lab.maml.meta_gradient` with ``first_order=True`` on one task.
    """
    from metalearn_lab.maml import adapt, meta_gradient

    model, batch = _tiny_setup()
    params = dict(model.named_parameters())
    names = list(params)
    xs, ys, xq, yq = (t[0] for t in batch.as_tuple())
    inner_steps, inner_lr = 2, 0.05
    got = require_answer(first_order_gradient(model, params, xs, ys, xq, yq, inner_steps, inner_lr),
                         f"{first_order_gradient.__name__}(...)")
    got = _as_dict(got, names, f"{first_order_gradient.__name__}(...)")
    for k in names:
        expect(got[k].shape == params[k].shape, f"the gradient of {k!r} has shape {tuple(got[k].shape)}; it should "
                                                  f"have the parameter's shape {tuple(params[k].shape)}")
    one = (xs[None], ys[None], xq[None], yq[None])
    right = meta_gradient(model, params, one, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)
    if _close(got, right):
        return "matches metalearn_lab.maml.meta_gradient(first_order=True): the query gradient at the adapted weights"
    second = meta_gradient(model, params, one, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
    expect(not _close(got, second), "this is the second-order MAML gradient: you differentiated back through the "
                                    "inner steps. First-order MAML treats the adapted weights as a new leaf: take "
                                    "the gradient of the query loss with respect to the adapted weights themselves")
    expect(not _close(got, {k: -v for k, v in right.items()}), "right size, wrong sign: return the gradient of the "
                                                                "query loss, not the step (the outer optimiser subtracts it)")

    def grad_at(p, x, y):
        leaves = {k: v.detach().requires_grad_() for k, v in p.items()}
        loss = F.mse_loss(torch.func.functional_call(model, leaves, (x,)), y)
        return dict(zip(names, torch.autograd.grad(loss, list(leaves.values()))))

    adapted = adapt(model, params, xs, ys, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)
    expect(not _close(got, grad_at(params, xq, yq)), "this is the query gradient at θ, before adaptation (joint "
                                                     "training on the queries): adapt first, then take the gradient at the adapted weights")
    expect(not _close(got, grad_at(adapted, xs, ys)), "this is the gradient of the *support* loss at the adapted "
                                                      "weights: the outer gradient uses the query set")
    one_step = adapt(model, params, xs, ys, F.mse_loss, inner_steps=1, inner_lr=inner_lr, first_order=True)
    expect(not _close(got, grad_at(one_step, xq, yq)), f"you took one inner step; the check asks for inner_steps={inner_steps}")
    raise WrongAnswer("not the query gradient at the adapted weights (off by more than rounding); compare with "
                      "metalearn_lab.maml.adapt(..., first_order=True) followed by the query loss's gradient")


@checker("Exercise 2: a Reptile meta-step")
def check_reptile_meta_step(reptile_meta_step) -> str:
    """Compare ``reptile_meta_step(model, x, y, inner_steps, inner_lr, outer_lr)`` (new params dict) with :func:`metalearn_lab.reptile.reptile_step`."""
    import copy

    from metalearn_lab.maml import adapt
    from metalearn_lab.reptile import reptile_step

    model, batch = _tiny_setup(n_tasks=4)
    x, y = batch.x_support, batch.y_support
    inner_steps, inner_lr, outer_lr = 3, 0.05, 0.5
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    names = list(before)
    got = require_answer(reptile_meta_step(model, x, y, inner_steps, inner_lr, outer_lr), f"{reptile_meta_step.__name__}(...)")
    got = _as_dict(got, names, f"{reptile_meta_step.__name__}(...)")
    expect(all(torch.equal(v.detach(), before[k]) for k, v in model.named_parameters()),
           "the model's own weights changed: compute the new parameters without touching the model "
           "(adapt copies with metalearn_lab.maml.adapt, then build a new dict)")
    reference = copy.deepcopy(model)
    reptile_step(reference, x, y, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr, vectorize=False)
    right = dict(reference.named_parameters())
    if _close(got, right):
        return "matches metalearn_lab.reptile.reptile_step: θ moves a fraction ε of the way to the average adapted weights"
    phis = [adapt(model, before, xi, yi, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr) for xi, yi in zip(x, y)]
    mean_phi = {k: torch.stack([p[k] for p in phis]).mean(0) for k in names}
    expect(not _close(got, before), "the parameters did not move: θ + ε (mean φ − θ)")
    expect(not _close(got, {k: before[k] - outer_lr * (mean_phi[k] - before[k]) for k in names}),
           "wrong sign: Reptile moves θ *towards* the adapted weights, θ + ε (φ̄ − θ)")
    expect(not _close(got, mean_phi), "you moved all the way to the average adapted weights: scale the move by outer_lr (ε)")
    expect(not _close(got, {k: before[k] + outer_lr * (phis[-1][k] - before[k]) for k in names}),
           "only the last task counts: average φ − θ over all tasks of the batch")
    expect(not _close(got, {k: before[k] + outer_lr * sum(p[k] - before[k] for p in phis) for k in names}),
           "you summed φ_i − θ over the tasks; Reptile averages them (the step would grow with the meta-batch size)")
    one = [adapt(model, before, xi, yi, F.mse_loss, inner_steps=1, inner_lr=inner_lr) for xi, yi in zip(x, y)]
    expect(not _close(got, {k: before[k] + outer_lr * (torch.stack([p[k] for p in one]).mean(0) - before[k]) for k in names}),
           f"you took one inner step per task; the check asks for inner_steps={inner_steps}")
    raise WrongAnswer("not θ + ε (mean over tasks of φ_i − θ) with φ_i from inner_steps gradient steps on task i "
                      "(off by more than rounding)")


@checker("Exercise 3: the gradient-inner-product term")
def check_taylor_coefficients(coefficients) -> str:
    """``coefficients(method, k) -> (a, b)`` with E[g] = a·AvgGrad − b·α·AvgGradInner + O(α²); checked for k = 1..6."""
    name = getattr(coefficients, "__name__", "coefficients")
    for k in range(1, 7):
        for m in METHODS:
            got = require_answer(coefficients(m, k), f"{name}({m!r}, {k})")
            expect(isinstance(got, (tuple, list)) and len(got) == 2,
                   f"{name}({m!r}, {k}) should return a pair (a, b), got {got!r}")
            a, b = (float(v) for v in got)
            right_a, right_b = taylor_coefficients(m, k)
            if math.isclose(a, right_a) and math.isclose(b, right_b):
                continue
            if m == "Reptile" and not math.isclose(a, right_a):
                expect(False, f"Reptile with k = {k}: a = {a:g}. g_Reptile = (φ₁ − φ_(k+1))/α is the sum of the k "
                              "inner gradients, each ≈ ḡ_i, so a = k")
            expect(math.isclose(a, right_a), f"{m} with k = {k}: a = {a:g}. The gradient g_k of the last batch is the "
                                             "leading term: a = 1")
            if m == "MAML" and math.isclose(b, k - 1):
                expect(False, f"MAML with k = {k}: b = {b:g} counts only the change of the gradient along the path "
                              "(that is first-order MAML). MAML also multiplies by the Jacobian Π(I − αH̄_j), whose "
                              "expectation adds another (k − 1)·α·AvgGradInner")
            if m == "Reptile" and math.isclose(b, k * (k - 1)):
                expect(False, f"Reptile with k = {k}: b = {b:g} counts each pair twice. The term is "
                              "Σ_i Σ_(j<i) H̄_i ḡ_j: one term per pair j < i, k(k − 1)/2 of them")
            if math.isclose(b, -right_b):
                expect(False, f"{m} with k = {k}: b has the wrong sign (with E[g] = a·AvgGrad − b·α·AvgGradInner, b > 0 for k > 1)")
            expect(False, f"{m} with k = {k}: (a, b) = ({a:g}, {b:g}) is not right. Expand g_i = ḡ_i − α H̄_i Σ_(j<i) ḡ_j "
                          "and count the terms E[H̄_i ḡ_j] = AvgGradInner (i ≠ j)")
    return "MAML (1, 2(k−1)), first-order MAML (1, k−1), Reptile (k, k(k−1)/2), for k = 1 to 6"
