"""Thin interactive views for the lessons (ipywidgets) and the static figures they redraw."""


# --- lessons 01 and 02 (a net overfitting five points; N-way K-shot episodes) ---
import functools as _functools

import matplotlib.pyplot as _plt
import torch as _torch


@_functools.lru_cache(maxsize=32)
def _overfit_run(k_shot: int, seed: int, task_seed: int, max_steps: int, lr: float, record_every: int):
    from metalearn_lab.data import SinusoidTasks

    tasks = SinusoidTasks()
    task = tasks.sample(1, k_shot, 200, generator=_torch.Generator().manual_seed(task_seed))
    x_grid = tasks.grid(200)
    run = fit_from_scratch(task.x_support[0], task.y_support[0], x_grid[:, None], steps=max_steps, lr=lr,
                           seed=seed, record_every=record_every,
                           x_test=task.x_query[0], y_test=task.y_query[0])
    return task, x_grid, run


def fit_from_scratch(x_support, y_support, x_grid, *, steps: int = 300, lr: float = 1e-2, seed: int = 0,
                     record_every: int = 25, x_test=None, y_test=None, hidden: int = 40) -> dict:
    """Train a fresh 1-40-40-1 :class:`~metalearn_lab.models.SineMLP` with Adam on a few points.

    Plain supervised learning on one task, as in lesson 01: mean squared error on the support
    points, full batch, ``steps`` Adam updates.

    Parameters
    ----------
    x_support, y_support : Tensor ``[K, 1]``
    x_grid : Tensor ``[P, 1]``
        Inputs where predictions are recorded (for plotting).
    steps, lr, seed : int, float, int
        Adam steps, learning rate, and the seed of the initial weights.
    record_every : int
        Record predictions and errors every this many steps (and at step 0 and at the end).
    x_test, y_test : Tensor ``[M, 1]``, optional
        Held-out points of the same task; their MSE is recorded as ``test_mse``.
    hidden : int
        Width of the two hidden layers.

    Returns
    -------
    dict
        ``{"step": [R], "predictions": Tensor [R, P], "train_mse": [R], "test_mse": [R] or None,
        "model": the trained SineMLP}``.

    Examples
    --------
    >>> import torch
    >>> x = torch.linspace(-3, 3, 5)[:, None]
    >>> run = fit_from_scratch(x, torch.sin(x), x, steps=50, record_every=25)
    >>> run["step"], run["train_mse"][-1] < run["train_mse"][0]
    ([0, 25, 50], True)
    """
    from metalearn_lab.models import SineMLP

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    _torch.manual_seed(seed)
    model = SineMLP(hidden=hidden)
    optimizer = _torch.optim.Adam(model.parameters(), lr=lr)
    record = {"step": [], "predictions": [], "train_mse": [], "test_mse": [] if x_test is not None else None}

    def log(step):
        with _torch.no_grad():
            record["step"].append(step)
            record["predictions"].append(model(x_grid).flatten())
            record["train_mse"].append(float(((model(x_support) - y_support) ** 2).mean()))
            if x_test is not None:
                record["test_mse"].append(float(((model(x_test) - y_test) ** 2).mean()))

    log(0)
    for step in range(1, steps + 1):
        loss = ((model(x_support) - y_support) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % record_every == 0 or step == steps:
            log(step)
    record["predictions"] = _torch.stack(record["predictions"])
    record["model"] = model
    return record


def sine_overfit_view(k_shot: int = 5, steps: int = 300, seed: int = 0, task_seed: int = 0, *,
                      max_steps: int = 500, lr: float = 1e-2, record_every: int = 25):
    """Static view: a net trained from scratch on ``k_shot`` points of one sine, after ``steps`` steps.

    Left: the fit against the true curve. Right: support and held-out MSE against steps.
    Runs are cached, so moving ``steps`` only redraws.

    Returns
    -------
    matplotlib Figure
    """
    from metalearn_lab.plotting import plot_sinusoid_fit

    if not 0 <= steps <= max_steps:
        raise ValueError(f"steps must be in 0..{max_steps}, got {steps}")
    task, x_grid, run = _overfit_run(int(k_shot), int(seed), int(task_seed), int(max_steps), float(lr), int(record_every))
    i = min(range(len(run["step"])), key=lambda j: abs(run["step"][j] - steps))
    fig, (ax_fit, ax_err) = _plt.subplots(1, 2, figsize=(10, 3.6))
    plot_sinusoid_fit(ax_fit, x_grid, task.true_curve(x_grid)[0], task.x_support[0], task.y_support[0],
                      {f"net after {run['step'][i]} steps": run["predictions"][i]},
                      title=f"trained from scratch on K = {k_shot} points")
    ax_fit.set_ylim(-6, 6)
    ax_err.semilogy(run["step"], run["train_mse"], label="support (training) MSE")
    ax_err.semilogy(run["step"], run["test_mse"], label="held-out MSE (200 points)")
    ax_err.axvline(run["step"][i], color="0.5", ls=":")
    ax_err.set_xlabel("Adam steps")
    ax_err.set_ylabel("mean squared error")
    ax_err.set_title(f"held-out MSE at step {run['step'][i]}: {run['test_mse'][i]:.2f}")
    ax_err.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sine_overfit_widget(max_steps: int = 500):
    """Sliders for K (support points), Adam steps and the weight seed; redraws :func:`sine_overfit_view`."""
    import ipywidgets as widgets

    def update(k_shot, steps, seed):
        sine_overfit_view(k_shot, steps, seed, max_steps=max_steps)
        _plt.show()

    return widgets.interactive(
        update,
        k_shot=widgets.IntSlider(value=5, min=2, max=40, description="K points"),
        steps=widgets.IntSlider(value=300, min=0, max=max_steps, step=25, description="Adam steps"),
        seed=widgets.IntSlider(value=0, min=0, max=9, description="init seed"),
    )


def episode_view(classes, n_way: int = 5, k_shot: int = 1, n_query: int = 2, seed: int = 0):
    """Static view: draw one N-way K-shot episode from ``classes`` with :func:`~metalearn_lab.plotting.show_episode`.

    Raises the sampler's ``ValueError`` (with its message) for an impossible choice.

    Returns
    -------
    matplotlib Figure
    """
    from metalearn_lab.plotting import show_episode
    from metalearn_lab.samplers import EpisodeSampler

    sampler = EpisodeSampler(classes, n_way=n_way, k_shot=k_shot, n_query=n_query)
    episode = sampler.sample(1, generator=_torch.Generator().manual_seed(seed))
    return show_episode(episode, max_per_class=10, size=0.45 if n_way > 8 else 0.7)


def episode_widget(classes, seed: int = 0):
    """Sliders for ``n_way``, ``k_shot``, ``n_query`` and the seed; redraws an episode or prints why not."""
    import ipywidgets as widgets

    def update(n_way, k_shot, n_query, seed):
        try:
            episode_view(classes, n_way, k_shot, n_query, seed)
        except ValueError as err:
            print(f"ValueError: {err}")
            return
        _plt.show()

    return widgets.interactive(
        update,
        n_way=widgets.IntSlider(value=5, min=1, max=20, description="n_way"),
        k_shot=widgets.IntSlider(value=1, min=1, max=20, description="k_shot"),
        n_query=widgets.IntSlider(value=2, min=1, max=20, description="n_query"),
        seed=widgets.IntSlider(value=seed, min=0, max=20, description="seed"),
    )


# --- lesson 04 ---
# "Try it" for MAML on sinusoids: adapt MAML and the pretrained baseline to one task, live.


def _sine_task(tasks, seed, max_k=20):
    """One sinusoid task with ``max_k`` support points (the first K are used) from ``seed``."""
    import torch

    return tasks.sample(1, max_k, 1, generator=torch.Generator().manual_seed(int(seed)))


def _sine_panel_data(model, task, x_grid, *, k_shot, inner_steps, inner_lr):
    """Pre-update and adapted predictions of ``model`` on ``x_grid`` and the adapted MSE against the true curve."""
    from metalearn_lab.plotting import adapted_sine_predictions

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
    import math

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


class SineAdaptationExplorer:
    """Sliders for inner steps, inner learning rate and K, a "new task" button, and one figure.

    Each model (e.g. MAML and the pretrained baseline) gets a panel with the task's true curve,
    its K support points, the model's prediction before adaptation and after ``inner steps``
    steps of gradient descent with step size α on the support MSE. One matplotlib figure is
    created once; a slider change only recomputes the curves (a 1-40-40-1 net adapts in
    milliseconds), sets the lines' data and redraws it into an ``Output`` widget.

    Parameters
    ----------
    models : dict name -> nn.Module
    tasks : SinusoidTasks or None
        The task distribution "new task" draws from (default: Finn et al.'s).
    inner_steps, inner_lr, k_shot, seed : starting values.

    Attributes
    ----------
    steps, inner_lr, k_shot : ipywidgets sliders;  new_task : ipywidgets.Button
    fig : matplotlib Figure;  lines : dict name -> dict of artists;  ui : the widget to display
    """

    def __init__(self, models, *, tasks=None, inner_steps=1, inner_lr=0.01, k_shot=5, seed=0, max_k=20):
        import ipywidgets as widgets
        import torch
        from matplotlib.figure import Figure

        from metalearn_lab.data.sinusoid import SinusoidTasks

        if not models:
            raise ValueError("models must hold at least one model, e.g. {'MAML': maml_model}")
        self.models = dict(models)
        self.tasks = tasks if tasks is not None else SinusoidTasks()
        self.max_k = max_k
        self.seed = seed
        self.task = _sine_task(self.tasks, seed, max_k)
        self.x_grid = torch.linspace(*self.tasks.x_range, 200)
        style = {"description_width": "110px"}
        self.steps = widgets.IntSlider(value=inner_steps, min=0, max=20, description="inner steps", style=style)
        self.inner_lr = widgets.FloatLogSlider(value=inner_lr, base=10, min=-4, max=0, step=0.1,
                                               description="inner lr α", readout_format=".4f", style=style)
        self.k_shot = widgets.IntSlider(value=k_shot, min=1, max=max_k, description="K (support points)", style=style)
        self.new_task = widgets.Button(description="new task", icon="refresh")
        self.output = widgets.Output()
        self.fig = Figure(figsize=(4.2 * len(self.models), 3.4))
        axes = self.fig.subplots(1, len(self.models), squeeze=False)[0]
        self.axes = dict(zip(self.models, axes))
        self.lines = {name: _init_sine_panel(ax) for name, ax in self.axes.items()}
        axes[0].set_ylabel("y")
        axes[-1].legend(fontsize=7, loc="lower right")
        self.data = {}
        self._laid_out = False
        for slider in (self.steps, self.inner_lr, self.k_shot):
            slider.observe(self.update, names="value")
        self.new_task.on_click(self.next_task)
        self.ui = widgets.VBox([widgets.HBox([self.steps, self.inner_lr]), widgets.HBox([self.k_shot, self.new_task]),
                                self.output])
        self.update()

    def next_task(self, _button=None) -> None:
        """Draw the next task (seed + 1) and redraw."""
        self.seed += 1
        self.task = _sine_task(self.tasks, self.seed, self.max_k)
        self.update()

    def update(self, _change=None) -> None:
        """Recompute every panel for the current slider values and redraw the figure."""
        from IPython.display import clear_output, display

        settings = {"inner_steps": int(self.steps.value), "inner_lr": float(self.inner_lr.value)}
        for name, model in self.models.items():
            self.data[name] = _sine_panel_data(model, self.task, self.x_grid, k_shot=int(self.k_shot.value), **settings)
            _set_sine_panel(self.axes[name], self.lines[name], name, self.data[name], self.x_grid, **settings)
        if not self._laid_out:  # once: tight_layout costs more than the whole adaptation
            self.fig.tight_layout()
            self._laid_out = True
        with self.output:
            clear_output(wait=True)
            display(self.fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def sine_adaptation_widget(models, **kwargs) -> SineAdaptationExplorer:
    """Build the "Try it" explorer for sinusoid adaptation; display it by leaving it last in a cell.

    ``kwargs`` go to :class:`SineAdaptationExplorer` (``inner_steps``, ``inner_lr``, ``k_shot``, ``seed``, ``tasks``).
    """
    return SineAdaptationExplorer(models, **kwargs)


def sine_adaptation_figure(models, settings, *, tasks=None, seed=0, max_k=20):
    """The explorer's view as a static figure, for the book: one row per setting, one column per model.

    Parameters
    ----------
    models : dict name -> nn.Module
    settings : sequence of dicts with keys ``inner_steps``, ``inner_lr``, ``k_shot``
        (and optionally ``seed``, the task; default ``seed``).

    Returns
    -------
    matplotlib Figure (pyplot-managed, so it shows inline)

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> fig = sine_adaptation_figure({"net": SineMLP()}, [{"inner_steps": 1, "inner_lr": 0.01, "k_shot": 5}])
    >>> len(fig.axes)
    1
    """
    import matplotlib.pyplot as plt
    import torch

    from metalearn_lab.data.sinusoid import SinusoidTasks

    tasks = tasks if tasks is not None else SinusoidTasks()
    x_grid = torch.linspace(*tasks.x_range, 200)
    settings = list(settings)
    if not settings:
        raise ValueError("settings must hold at least one dict with inner_steps, inner_lr and k_shot")
    fig, axes = plt.subplots(len(settings), len(models), figsize=(4.2 * len(models), 3.0 * len(settings)), squeeze=False)
    for row, setting in enumerate(settings):
        task = _sine_task(tasks, setting.get("seed", seed), max_k)
        for col, (name, model) in enumerate(models.items()):
            ax = axes[row, col]
            lines = _init_sine_panel(ax)
            kw = {"inner_steps": int(setting["inner_steps"]), "inner_lr": float(setting["inner_lr"])}
            data = _sine_panel_data(model, task, x_grid, k_shot=int(setting["k_shot"]), **kw)
            _set_sine_panel(ax, lines, name, data, x_grid, **kw)
        axes[row, 0].set_ylabel("y")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# --- lesson 05 ---
# Siamese networks: the margin of the contrastive loss, the verification threshold, one-shot trials.


def contrastive_margin_explorer(points=None):
    """A margin slider redrawing the contrastive loss of one pair against d, for both labels.

    ``points``: optional ``(d, same)`` pairs drawn as markers (e.g. the hand-computed pairs).
    The static twin for the book is :func:`metalearn_lab.plotting.plot_contrastive_margins`.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from metalearn_lab.plotting import plot_contrastive_loss

    def show(margin=1.0):
        fig = plot_contrastive_loss(margin, points=points, d_max=2.5)
        plt.show(fig)

    slider = widgets.FloatSlider(value=1.0, min=0.2, max=2.0, step=0.1, description="margin m", continuous_update=False)
    return widgets.interactive(show, margin=slider)


def threshold_explorer(d_train, same_train, d_test, same_test):
    """A threshold slider over the distance histograms; prints training and held-out verification accuracy.

    ``d_*`` ``[P]`` pair distances, ``same_*`` ``[P]`` labels (1 = same class). The static twin is
    :func:`metalearn_lab.plotting.plot_distance_histogram` with the chosen threshold.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch

    from metalearn_lab.plotting import plot_distance_histogram

    d_train, d_test = torch.as_tensor(d_train), torch.as_tensor(d_test)
    same_train, same_test = torch.as_tensor(same_train).float(), torch.as_tensor(same_test).float()

    def accuracy(d, same, t):
        return float(((d < t).float() == same).float().mean())

    def show(threshold):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), sharex=True)
        plot_distance_histogram(d_train, same_train, threshold, ax=axes[0],
                                title=f"training pairs: accuracy {100 * accuracy(d_train, same_train, threshold):.1f}%")
        plot_distance_histogram(d_test, same_test, threshold, ax=axes[1],
                                title=f"held-out pairs: accuracy {100 * accuracy(d_test, same_test, threshold):.1f}%")
        fig.tight_layout()
        plt.show(fig)

    top = float(torch.quantile(torch.cat([d_train, d_test]).float(), 0.99))
    slider = widgets.FloatSlider(value=top / 3, min=0.0, max=top, step=top / 100, description="threshold",
                                 readout_format=".2f", continuous_update=False)
    return widgets.interactive(show, threshold=slider)


def one_shot_trial_browser(model, runs):
    """Browse Lake's runs: pick a run and a trial, see the query, the 20 candidates and the model's choice.

    ``model`` maps images ``[B, 1, S, S]`` to embeddings; ``runs`` from
    :func:`metalearn_lab.data.load_lake_runs`. The static twin is
    :func:`metalearn_lab.plotting.plot_one_shot_trial`.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    import torch

    from metalearn_lab.plotting import plot_one_shot_trial

    model.eval()
    cache = {}

    def distances(run_index):
        if run_index not in cache:
            run = runs[run_index]
            with torch.no_grad():
                cache[run_index] = torch.cdist(model(run.query), model(run.support))
        return cache[run_index]

    def show(run=1, trial=1):
        r = runs[run - 1]
        d = distances(run - 1)[trial - 1]
        fig = plot_one_shot_trial(r.query[trial - 1], r.support, int(d.argmin()), int(r.labels[trial - 1]), d,
                                  title=f"{r.name}, trial {trial}: the model picks the candidate at the smallest distance")
        plt.show(fig)

    return widgets.interactive(
        show,
        run=widgets.IntSlider(value=1, min=1, max=len(runs), description="run", continuous_update=False),
        trial=widgets.IntSlider(value=1, min=1, max=len(runs[0].query), description="trial", continuous_update=False),
    )


# --- lesson 06 ---
# "Try it" for MAML on Omniglot: adapt a meta-trained Conv4 to one fresh 5-way 1-shot episode, live.


def adapt_episode(model, episode, *, inner_steps: int, inner_lr: float):
    """Adapt ``model`` to one episode's support set and predict its queries.

    Parameters
    ----------
    model : nn.Module
        A MAML-style classifier (e.g. ``Conv4(out_features=5, track_running_stats=False)``).
    episode : :class:`metalearn_lab.samplers.Episode`
        One task (``len(episode) == 1``); only its first task is used otherwise.
    inner_steps : int >= 0
    inner_lr : float > 0

    Returns
    -------
    dict
        ``predicted`` ``[N*Q]`` labels, ``logits`` ``[N*Q, N]``, ``accuracy`` (float in [0, 1]) and
        ``seconds`` (the time the adaptation and prediction took).

    Examples
    --------
    >>> import torch
    >>> from metalearn_lab.models import Conv4
    >>> from metalearn_lab.samplers import EpisodeSampler
    >>> episode = EpisodeSampler(torch.rand(8, 20, 1, 28, 28), 5, 1, 2).sample(1, generator=torch.Generator().manual_seed(0))
    >>> out = adapt_episode(Conv4(out_features=5, track_running_stats=False), episode, inner_steps=1, inner_lr=0.4)
    >>> tuple(out["predicted"].shape), 0 <= out["accuracy"] <= 1
    ((10,), True)
    """
    import time

    import torch.nn.functional as F

    from metalearn_lab.maml import adapt_and_predict

    one = episode.task(0)
    start = time.perf_counter()
    logits = adapt_and_predict(model, one.as_tuple(), F.cross_entropy, inner_steps=int(inner_steps),
                               inner_lr=float(inner_lr))[0]
    seconds = time.perf_counter() - start
    predicted = logits.argmax(-1)
    return {"predicted": predicted, "logits": logits, "accuracy": float((predicted == one.y_query[0]).float().mean()),
            "seconds": seconds}


class OmniglotAdaptationExplorer:
    """Sliders for inner steps (0-10) and inner learning rate, a model menu, a "new episode" button.

    Each change adapts the chosen meta-trained model to the current episode's support set
    (:func:`adapt_episode`) and redraws :func:`metalearn_lab.plotting.plot_episode_predictions`:
    the support images with their labels and every query with its predicted label, green when
    right and red when wrong. One 5-way 1-shot adaptation of Conv4 takes milliseconds on a CPU.

    Parameters
    ----------
    models : dict name -> nn.Module
        e.g. ``{"MAML": maml_model, "first-order MAML": fomaml_model}``.
    classes : Tensor ``[n_classes, 20, 1, 28, 28]``
        Where new episodes come from (the test characters).
    n_way, k_shot, n_query : int
        Episode shape (``n_query`` queries per class are shown).
    inner_steps, inner_lr, seed : starting values.

    Attributes
    ----------
    steps, inner_lr : sliders;  model : dropdown;  new_episode : button;  fig : matplotlib Figure;
    result : the last :func:`adapt_episode` output;  ui : the widget to display
    """

    def __init__(self, models, classes, *, n_way=5, k_shot=1, n_query=5, inner_steps=3, inner_lr=0.4, seed=0):
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        from metalearn_lab.samplers import EpisodeSampler

        if not models:
            raise ValueError("models must hold at least one model, e.g. {'MAML': maml_model}")
        self.models = dict(models)
        self.sampler = EpisodeSampler(classes, n_way, k_shot, n_query)
        self.seed = int(seed)
        self.episode = self._draw()
        style = {"description_width": "90px"}
        self.steps = widgets.IntSlider(value=inner_steps, min=0, max=10, description="inner steps", style=style)
        self.inner_lr = widgets.FloatLogSlider(value=inner_lr, base=10, min=-2, max=0.5, step=0.05,
                                               description="inner lr α", readout_format=".3f", style=style)
        self.model = widgets.Dropdown(options=list(self.models), description="model", style=style)
        self.new_episode = widgets.Button(description="new episode", icon="refresh")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        from metalearn_lab.plotting import episode_figsize

        self.fig = Figure(figsize=episode_figsize(k_shot, n_query, n_way))
        self.result = None
        for control in (self.steps, self.inner_lr, self.model):
            control.observe(self.update, names="value")
        self.new_episode.on_click(self.next_episode)
        self.ui = widgets.VBox([widgets.HBox([self.model, self.new_episode]), widgets.HBox([self.steps, self.inner_lr]),
                                self.status, self.output])
        self.update()

    def _draw(self):
        import torch

        return self.sampler.sample(1, generator=torch.Generator().manual_seed(self.seed))

    def next_episode(self, _button=None) -> None:
        """Draw a fresh episode (seed + 1) and redraw."""
        self.seed += 1
        self.episode = self._draw()
        self.update()

    def update(self, _change=None) -> None:
        """Adapt the chosen model with the current settings and redraw the figure."""
        from IPython.display import clear_output, display

        from metalearn_lab.plotting import plot_episode_predictions

        steps, lr, name = int(self.steps.value), float(self.inner_lr.value), self.model.value
        self.result = adapt_episode(self.models[name], self.episode, inner_steps=steps, inner_lr=lr)
        e = self.episode
        plot_episode_predictions(e.x_support[0], e.y_support[0], e.x_query[0], e.y_query[0], self.result["predicted"],
                                 fig=self.fig, title=f"{name}, {steps} inner step{'s' if steps != 1 else ''}, α = {lr:.3g}: "
                                                     f"accuracy {100 * self.result['accuracy']:.0f}%")
        self.status.value = (f"episode {self.seed}: adapted and predicted in {1000 * self.result['seconds']:.0f} ms")
        with self.output:
            clear_output(wait=True)
            display(self.fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.ui)


def omniglot_adaptation_widget(models, classes, **kwargs) -> OmniglotAdaptationExplorer:
    """Build the "Try it" explorer for MAML on Omniglot; display it by leaving it last in a cell.

    ``kwargs`` go to :class:`OmniglotAdaptationExplorer` (``n_way``, ``k_shot``, ``n_query``,
    ``inner_steps``, ``inner_lr``, ``seed``).
    """
    return OmniglotAdaptationExplorer(models, classes, **kwargs)


def omniglot_adaptation_figure(model, classes, *, steps=(0, 1, 3, 10), inner_lr=0.4, n_way=5, k_shot=1, n_query=5,
                               seed=0, title=None):
    """The explorer's view as a static figure, for the book: one episode, one query panel per number of inner steps.

    Parameters
    ----------
    model : nn.Module
    classes : Tensor ``[n_classes, 20, 1, 28, 28]``
    steps : sequence of int
        Numbers of inner steps, one panel each.
    inner_lr : float
    n_way, k_shot, n_query, seed : the episode (``seed`` as in the explorer).
    title : str, optional

    Returns
    -------
    (matplotlib Figure, dict ``{steps: accuracy}``)
    """
    import torch

    from metalearn_lab.plotting import plot_adaptation_panels
    from metalearn_lab.samplers import EpisodeSampler

    episode = EpisodeSampler(classes, n_way, k_shot, n_query).sample(1, generator=torch.Generator().manual_seed(int(seed)))
    results = {k: adapt_episode(model, episode, inner_steps=k, inner_lr=inner_lr) for k in steps}
    predictions = {f"{k} step{'s' if k != 1 else ''}": r["predicted"] for k, r in results.items()}
    fig = plot_adaptation_panels(episode.x_support[0], episode.y_support[0], episode.x_query[0], episode.y_query[0],
                                 predictions, title=title or f"One test episode after k inner steps (α = {inner_lr:g})")
    return fig, {k: r["accuracy"] for k, r in results.items()}


# --- lesson 03 ---
# "Try it": the true meta-gradient vs the first-order one for linear regression, in closed form.


def _l03_gaps(task, alphas, inner_steps):
    import numpy as np

    from metalearn_lab.maml import compare_gradients, linear_regression_meta_gradient

    cos, rel = [], []
    for alpha in alphas:
        true = linear_regression_meta_gradient(*task, inner_lr=float(alpha), inner_steps=inner_steps)
        first = linear_regression_meta_gradient(*task, inner_lr=float(alpha), inner_steps=inner_steps, first_order=True)
        c, r = compare_gradients(true, first)
        cos.append(c)
        rel.append(r if np.isfinite(r) else np.nan)
    return np.asarray(cos), np.asarray(rel)


def first_order_gap_view(task, inner_lr: float = 0.05, inner_steps: int = 1, *, alphas=None):
    r"""One view of the first-order gap for linear regression: the two gradients, and the error against α.

    Left: the components of the true meta-gradient :math:`((I-\alpha A_s)^K)^\top g` and of the
    first-order one :math:`g = \nabla\mathcal{L}_q(\theta_K)`. Right: their relative error for every α
    (this ``inner_steps``), with a dot at ``inner_lr``. Everything is closed form
    (:func:`metalearn_lab.maml.linear_regression_meta_gradient`), so it redraws instantly.

    Parameters
    ----------
    task : (theta [d], x_support [n, d], y_support [n], x_query [m, d], y_query [m]), float64
    inner_lr, inner_steps : α and K
    alphas : the α grid of the right panel (default 60 values from 1e-3 to 1)

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    >>> task = (torch.zeros(3, dtype=torch.float64), x, x.sum(1), x, x.sum(1))
    >>> len(first_order_gap_view(task, 0.05, 2).axes)
    2
    """
    import numpy as np

    from metalearn_lab.maml import compare_gradients, linear_regression_meta_gradient

    theta, x_support = task[0], task[1]
    alphas = np.geomspace(1e-3, 1.0, 60) if alphas is None else np.asarray(alphas, dtype=float)
    a_support = 2.0 / x_support.shape[0] * x_support.T @ x_support
    limit = 2.0 / float(_torch.linalg.eigvalsh(a_support).max())
    true = linear_regression_meta_gradient(*task, inner_lr=inner_lr, inner_steps=inner_steps)
    first = linear_regression_meta_gradient(*task, inner_lr=inner_lr, inner_steps=inner_steps, first_order=True)
    cos, rel = compare_gradients(true, first)
    fig, (ax_bar, ax_rel) = _plt.subplots(1, 2, figsize=(9.5, 3.4))
    index = np.arange(theta.numel())
    ax_bar.bar(index - 0.2, true.numpy(), width=0.4, label="true (second-order)", color="C0")
    ax_bar.bar(index + 0.2, first.numpy(), width=0.4, label="first-order", color="C1")
    ax_bar.axhline(0, color="0.3", lw=0.8)
    ax_bar.set_xticks(index)
    ax_bar.set_xticklabels([f"θ{i}" for i in index])
    ax_bar.set_ylabel("meta-gradient component")
    ax_bar.set_title(f"α = {inner_lr:.3g}, K = {inner_steps}:  cos = {cos:.3f},  rel. error = {rel:.2g}", fontsize=10)
    ax_bar.legend(fontsize=8)
    _, rels = _l03_gaps(task, alphas, inner_steps)
    ax_rel.plot(alphas, rels, color="C2", label=f"K = {inner_steps}")
    ax_rel.plot([inner_lr], [rel], "o", color="C3", ms=7)
    if limit < alphas.max():
        ax_rel.axvspan(limit, alphas.max(), color="0.85", zorder=0)
        ax_rel.annotate("inner loop\ndiverges →", (limit, 0.05), xycoords=("data", "axes fraction"), xytext=(-3, 0),
                        textcoords="offset points", fontsize=8, color="0.3", ha="right")
    ax_rel.set_xscale("log")
    ax_rel.set_yscale("log")
    ax_rel.set_xlabel("inner learning rate α")
    ax_rel.set_ylabel("relative error of first-order")
    ax_rel.set_title("error against α (dot: the slider's α)", fontsize=10)
    ax_rel.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def first_order_gap_widget(task):
    """Sliders for α (log scale) and K; redraws :func:`first_order_gap_view` (a few milliseconds of maths)."""
    import ipywidgets as widgets

    def update(inner_lr, inner_steps):
        first_order_gap_view(task, inner_lr, inner_steps)
        _plt.show()

    return widgets.interactive(
        update,
        inner_lr=widgets.FloatLogSlider(value=0.05, base=10, min=-3, max=0, step=0.05, description="inner lr α",
                                        readout_format=".3f"),
        inner_steps=widgets.IntSlider(value=1, min=1, max=16, description="inner steps K"),
    )


def first_order_gap_figure(task, steps=(1, 2, 4, 8), *, alphas=None):
    """The widget's question as one static figure, for the book: cosine and relative error vs α, one line per K.

    Returns
    -------
    matplotlib Figure (from :func:`metalearn_lab.plotting.plot_gradient_agreement`)
    """
    import numpy as np

    from metalearn_lab.plotting import plot_gradient_agreement

    alphas = np.geomspace(1e-3, 1.0, 40) if alphas is None else np.asarray(alphas, dtype=float)
    curves = {f"K = {k}": _l03_gaps(task, alphas, k) for k in steps}
    a_support = 2.0 / task[1].shape[0] * task[1].T @ task[1]
    limit = 2.0 / float(_torch.linalg.eigvalsh(a_support).max())
    fig = plot_gradient_agreement(alphas, curves,
                                  title="Linear regression: first-order vs true meta-gradient (closed form)")
    if limit < alphas.max():
        for ax in fig.axes:
            ax.axvspan(limit, alphas.max(), color="0.85", zorder=0)
        fig.axes[1].annotate("inner loop\ndiverges →", (limit, 0.05), xycoords=("data", "axes fraction"),
                             xytext=(-3, 0), textcoords="offset points", fontsize=8, color="0.3", ha="right")
    return fig
