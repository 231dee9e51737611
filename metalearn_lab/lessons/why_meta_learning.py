"""Companion of lesson ``01_why_meta_learning``: a net overfitting five points, the two loops of meta-learning, and the checkers of its exercises (roles of the sets, the map of the three families, counting parameters).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import torch

from metalearn_lab.baselines import fit_from_scratch
from metalearn_lab.controls import fit_labels, margins, show_png
from metalearn_lab.drawing import diagram_arrow, diagram_axes, diagram_box, plot_sinusoid_fit
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer


def draw_meta_learning_loops(ax=None):
    """A diagram of meta-learning's two loops: tasks from p(T), support/query, inner and outer loop.

    The meta-learner holds what is shared across tasks (``θ``); for each task the base learner
    adapts on the support set (inner loop) and is scored on the query set; the query losses
    update ``θ`` (outer loop). Meta-testing repeats the inner loop on new tasks, with ``θ`` frozen.

    Returns
    -------
    matplotlib Axes
    """
    ax = diagram_axes(ax, (10, 4.2), 4.7)
    diagram_box(ax, (0.1, 2.9), 1.9, 1.0, "task distribution\np(T)", "#e8e8e8")
    diagram_box(ax, (2.7, 2.9), 2.1, 1.0, "task $T_i$\nsupport $S_i$ (labelled)\nquery $Q_i$", "#fff2cc")
    diagram_box(ax, (5.6, 2.9), 2.0, 1.0, "base learner\nadapts: $\\phi_i = A(\\theta, S_i)$", "#d9ead3")
    diagram_box(ax, (8.1, 2.9), 1.8, 1.0, "query loss\n$L(\\phi_i, Q_i)$", "#f4cccc")
    diagram_box(ax, (4.2, 0.6), 2.6, 1.0, "meta-learner\nshared knowledge $\\theta$", "#cfe2f3", weight="bold")
    diagram_arrow(ax, (2.0, 3.4), (2.7, 3.4), "sample", offset=(0, 0.15))
    diagram_arrow(ax, (4.8, 3.55), (5.6, 3.55), "$S_i$", offset=(0, 0.15))
    diagram_arrow(ax, (7.6, 3.4), (8.1, 3.4))
    diagram_arrow(ax, (9.0, 2.9), (6.8, 1.1), "outer loop: update $\\theta$\nto lower the query loss", color="#990000",
           rad=-0.25, offset=(0.9, -0.1))
    diagram_arrow(ax, (5.5, 1.6), (6.3, 2.9), "start from $\\theta$", color="#1f4e79", offset=(-0.9, 0.1))
    ax.annotate("", xy=(6.9, 3.95), xytext=(6.3, 3.95),
                arrowprops=dict(arrowstyle="-|>", color="#38761d", lw=1.5, connectionstyle="arc3,rad=-1.2"))
    ax.text(6.6, 4.45, "inner loop (a few steps on $S_i$)", ha="center", fontsize=8, color="#38761d")
    ax.text(0.1, 1.6, "meta-training: many tasks,\nboth loops run.\n\nmeta-testing: new tasks,\n"
            "θ frozen, only the inner loop\nruns; score on $Q_i$.", fontsize=8, va="center")
    ax.set_title("Meta-learning: an inner loop per task, an outer loop across tasks")
    return ax


@functools.lru_cache(maxsize=32)
def _overfit_run(k_shot: int, seed: int, task_seed: int, max_steps: int, lr: float, record_every: int):
    from metalearn_lab.data import SinusoidTasks

    tasks = SinusoidTasks()
    task = tasks.sample(1, k_shot, 200, generator=torch.Generator().manual_seed(task_seed))
    x_grid = tasks.grid(200)
    run = fit_from_scratch(task.x_support[0], task.y_support[0], x_grid[:, None], steps=max_steps, lr=lr,
                           seed=seed, record_every=record_every,
                           x_test=task.x_query[0], y_test=task.y_query[0])
    return task, x_grid, run


def sine_overfit_view(k_shot: int = 5, steps: int = 300, seed: int = 0, task_seed: int = 0, *,
                      max_steps: int = 500, lr: float = 1e-2, record_every: int = 25, layout: dict | None = None):
    """Static view: a net trained from scratch on ``k_shot`` points of one sine, after ``steps`` steps.

    Left: the fit against the true curve. Right: support and held-out MSE against steps.
    Runs are cached, so moving ``steps`` only redraws. ``layout``: subplot margins to use
    instead of ``tight_layout`` (:func:`metalearn_lab.controls.margins` of an earlier view).

    Returns
    -------
    matplotlib Figure
    """

    if not 0 <= steps <= max_steps:
        raise ValueError(f"steps must be in 0..{max_steps}, got {steps}")
    task, x_grid, run = _overfit_run(int(k_shot), int(seed), int(task_seed), int(max_steps), float(lr), int(record_every))
    i = min(range(len(run["step"])), key=lambda j: abs(run["step"][j] - steps))
    fig, (ax_fit, ax_err) = plt.subplots(1, 2, figsize=(10, 3.6))
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
    if layout is None:
        fig.tight_layout()
    else:
        fig.subplots_adjust(**layout)
    return fig


def sine_overfit_widget(max_steps: int = 500):
    """Sliders for K (support points), Adam steps and the weight seed; redraws :func:`sine_overfit_view`."""
    import ipywidgets as widgets

    layout = {}  # the first figure's margins, reused: the figures keep their shape

    def update(k_shot, steps, seed):
        fig = sine_overfit_view(k_shot, steps, seed, max_steps=max_steps, layout=layout or None)
        if not layout:
            layout.update(margins(fig))
        show_png(fig)

    k_shot, steps, seed = fit_labels(
        # K and the seed train a new net (about 0.3 s each, then cached): only when the slider is let go
        widgets.IntSlider(value=5, min=2, max=40, description="K points", continuous_update=False),
        widgets.IntSlider(value=300, min=0, max=max_steps, step=25, description="Adam steps"),
        widgets.IntSlider(value=0, min=0, max=9, description="init seed", continuous_update=False),
    )
    return widgets.interactive(update, k_shot=k_shot, steps=steps, seed=seed)


#: The book's slider values: K from too few points to plenty, and training short, medium and long.
#: (Each K trains a net, about half a second; each frame costs a third of one.)
EXPLORER_VALUES = {"k_shot": (2, 5, 10, 20, 40), "steps": (50, 150, 500)}


def sine_overfit_explorer(values=None, *, seed: int = 0, max_steps: int = 500):
    """The Try-it for the book: :func:`sine_overfit_view` pre-rendered for every combination of slider values.

    ``values``: the ``k_shot`` and ``steps`` values (default :data:`EXPLORER_VALUES`, 5 × 3 = 15
    frames), for the weights initialised with ``seed``; the first frame is K = 5 after 150 steps
    when offered. Each K trains one net (cached), every step count only redraws.

    Returns
    -------
    metalearn_lab.tryit.StaticExplorer

    Examples
    --------
    >>> e = sine_overfit_explorer({"k_shot": (5,), "steps": (0, 100)}, max_steps=100)
    >>> len(e.frames), e.initial
    (2, {'k_shot': 5, 'steps': 100})
    """
    from metalearn_lab.tryit import explorer

    values = {name: list(v) for name, v in (values or EXPLORER_VALUES).items()}
    if set(values) != set(EXPLORER_VALUES):
        raise ValueError(f"values must give {sorted(EXPLORER_VALUES)}, got {sorted(values)}")
    start = {"k_shot": 5, "steps": 150}
    initial = {name: start[name] if start[name] in v else v[-1] for name, v in values.items()}
    layout = {}  # as in the widget: the first figure's margins, reused

    def draw(k_shot, steps):
        fig = sine_overfit_view(k_shot, steps, seed, max_steps=max_steps, layout=layout or None)
        if not layout:
            layout.update(margins(fig))
        return fig

    return explorer(draw, values, initial=initial, crop="first", labels={"k_shot": "K points", "steps": "Adam steps"},
                    title=f"A net trained from scratch on K points, init seed {seed} (pre-rendered)")


#: The answer to lesson 01's "place the methods on the map" exercise: the usual three-way taxonomy,
#: as Hospedales et al. (2021, §3.1 "Previous taxonomies") describe it before refining it.
FAMILY_OF = {
    "MAML": "optimisation",
    "first-order MAML": "optimisation",
    "Reptile": "optimisation",
    "Meta-SGD": "optimisation",
    "MANN": "model",
    "SNAIL": "model",
    "neural process": "model",
    "Siamese network": "metric",
    "Matching network": "metric",
    "ProtoNet": "metric",
}


_FAMILY_WHY = {
    "optimisation": "it meta-learns how a gradient-descent learner starts or steps (initial weights, learning rates)",
    "model": "a network reads the support set and predicts directly, with no gradient steps at test time",
    "metric": "it learns an embedding and classifies a query by comparing it with the support examples",
}


def _family(name) -> str | None:
    """Normalise a family name: 'Optimization-based' -> 'optimisation', 'black-box' -> 'model', ..."""
    if not isinstance(name, str):
        return None
    text = name.lower().replace("optimization", "optimisation")
    for key, words in (("optimisation", ("optimisation", "gradient")), ("model", ("model", "black")),
                       ("metric", ("metric", "non-parametric", "nonparametric"))):
        if any(w in text for w in words):
            return key
    return None


def _untouched(answer, keys) -> bool:
    """True when ``answer`` is the skeleton: None, or a dict whose entries for ``keys`` are all None."""
    return answer is None or (isinstance(answer, dict) and bool(answer)
                              and all(answer.get(k) is None for k in keys))


@checker("Exercise 2: place the methods on the map")
def check_family_map(family_of: dict) -> str:
    """``family_of`` maps each method of :data:`FAMILY_OF` to 'optimisation', 'model' or 'metric'.

    Spellings such as "Optimization-based" or "black-box" are accepted. The untouched skeleton
    (every family None) is reported as not attempted.

    >>> check_family_map(dict(FAMILY_OF))
    ✓ Exercise 2: place the methods on the map: All 10 methods are on the right branch of the map.
    >>> check_family_map(dict.fromkeys(FAMILY_OF))
    … Exercise 2: place the methods on the map: not attempted. every family in family_of is still None: fill it in
    """
    if _untouched(family_of, FAMILY_OF):
        require_answer(None, "every family in family_of")
    expect(isinstance(family_of, dict), f"family_of must be a dict {{method: family}}, got {type(family_of).__name__}")
    missing = [m for m in FAMILY_OF if m not in family_of]
    expect(not missing, f"family_of has no entry for {missing}; give every method a family")
    unknown = [m for m in FAMILY_OF if _family(family_of[m]) is None]
    if unknown:
        raise WrongAnswer(f"the family of {unknown[0]!r} is {family_of[unknown[0]]!r}; write 'optimisation', 'model' "
                          f"or 'metric' for every method")
    wrong = [m for m in FAMILY_OF if _family(family_of[m]) != FAMILY_OF[m]]
    if wrong:
        m = wrong[0]
        hint = ""
        if FAMILY_OF[m] == "optimisation" and _family(family_of[m]) == "model":
            hint = (" (the source text files 'learning the initial parameters' under model-based; the usual "
                    "three-way taxonomy, as described by Hospedales et al. 2021, §3.1, calls it optimisation-based)")
        elif m == "neural process" and _family(family_of[m]) != "model":
            hint = (" (a neural process encodes the support set into a representation and predicts the query "
                    "in one forward pass: a black box)")
        raise WrongAnswer(
            f"{len(wrong)} of {len(FAMILY_OF)} misplaced, e.g. {m!r} is {FAMILY_OF[m]}-based, not "
            f"{_family(family_of[m])}-based: {_FAMILY_WHY[FAMILY_OF[m]]}{hint}."
        )
    return f"All {len(FAMILY_OF)} methods are on the right branch of the map."


def _mlp_parameter_count(widths) -> int:
    """The number of weights and biases of ``nn.Linear`` layers with these widths, counted by PyTorch."""
    from torch import nn

    return sum(p.numel() for a, b in zip(widths[:-1], widths[1:]) for p in nn.Linear(a, b).parameters())


@checker("Exercise 3: count the parameters")
def check_parameter_count(count_mlp_parameters) -> str:
    """``count_mlp_parameters(widths) -> int`` for a fully connected net with biases.

    Compared with PyTorch's own count of ``nn.Linear`` layers on five width lists. A skeleton
    that returns None is reported as not attempted; the usual slips (weights only, a bias for
    every unit, biases for the inputs of a layer instead of its outputs, a number that does not
    depend on ``widths``) are named.

    >>> check_parameter_count(lambda w: sum(a * b + b for a, b in zip(w[:-1], w[1:])))
    ✓ Exercise 3: count the parameters: Right: a 1-40-40-1 net has 1761 parameters, 352 per support point when K = 5.
    >>> check_parameter_count(lambda w: None)
    … Exercise 3: count the parameters: not attempted. count_mlp_parameters([1, 40, 40, 1]) returned None: fill in the skeleton (or, if you did, end it with a return statement)
    """
    cases = [[1, 40, 40, 1], [1, 40, 1], [3, 5, 2], [2, 1], [1, 100, 100, 100, 1]]
    first = cases[0]
    for widths in cases:
        got = count_mlp_parameters(list(widths))
        if widths is first:
            got = require_answer(got, f"count_mlp_parameters({widths})")
        expect(got is not None, f"count_mlp_parameters({widths}) returned None; it must return a number for every width list")
        want = _mlp_parameter_count(widths)
        try:
            right = got == want
            right = bool(right)
        except (TypeError, RuntimeError, ValueError):
            raise WrongAnswer(f"count_mlp_parameters({widths}) returned {got!r}; return one whole number") from None
        if right:
            continue
        weights = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        hint = ""
        if got == weights:
            hint = " That is the number of weights alone: each layer also has one bias per output unit."
        elif got == weights + sum(widths):
            hint = " You gave every unit a bias, the inputs too: only the units a layer computes (its outputs) have one."
        elif got == weights + sum(widths[:-1]):
            hint = " You counted one bias per *input* of each layer: a bias belongs to each output unit."
        elif widths is not first and got == _mlp_parameter_count(first):
            hint = f" That is the count for {first}: the answer must depend on widths."
        raise WrongAnswer(f"for widths {widths} you return {got}, the net has {want} parameters.{hint}")
    n = _mlp_parameter_count(first)
    return f"Right: a 1-40-40-1 net has {n} parameters, {n // 5} per support point when K = 5."


#: Lesson 01's "which set is which" puzzle: set B is the support set.
ROLES_PUZZLE = {"n_way": 4, "k_shot": 3, "n_query": 2, "support": "B", "seed": 11}
_ROLE_KEYS = ("support", "n_way", "k_shot", "n_query")


def roles_puzzle(classes: torch.Tensor) -> dict:
    """Lesson 01: an episode shown as two unnamed sets, ``{"A": (images, titles), "B": (images, titles)}``.

    Set A holds the query images in shuffled order with hidden labels ("?"); set B holds the
    labelled support images. Parameters in :data:`ROLES_PUZZLE`.
    """
    from metalearn_lab.samplers import EpisodeSampler

    p = ROLES_PUZZLE
    generator = torch.Generator().manual_seed(p["seed"])
    episode = EpisodeSampler(classes, p["n_way"], p["k_shot"], p["n_query"]).sample(1, generator=generator)
    order = torch.randperm(p["n_way"] * p["n_query"], generator=generator)
    query = episode.x_query[0][order]
    support = episode.x_support[0]
    return {"A": (query, ["?"] * len(query)),
            "B": (support, [f"label {int(y)}" for y in episode.y_support[0]])}


@checker("Exercise 1: which set is the support set?")
def check_episode_roles(episode_roles: dict) -> str:
    """``episode_roles = {"support": "A" or "B", "n_way": int, "k_shot": int, "n_query": int}``.

    The untouched skeleton (every entry None) is reported as not attempted. Typical slips are
    named: the query set taken for the support set, ``k_shot`` or ``n_query`` counted over the
    whole set instead of per class, the two swapped, ``n_way`` counted as images.

    >>> check_episode_roles({"support": "B", "n_way": 4, "k_shot": 3, "n_query": 2})
    ✓ Exercise 1: which set is the support set?: Right: set B is the support set of a 4-way 3-shot episode with 2 queries per class.
    >>> check_episode_roles(dict.fromkeys(["support", "n_way", "k_shot", "n_query"]))
    … Exercise 1: which set is the support set?: not attempted. every entry of episode_roles is still None: fill it in
    """
    p = ROLES_PUZZLE
    if _untouched(episode_roles, _ROLE_KEYS):
        require_answer(None, "every entry of episode_roles")
    expect(isinstance(episode_roles, dict), f"episode_roles must be a dict, got {type(episode_roles).__name__}")
    for key in _ROLE_KEYS:
        expect(episode_roles.get(key) is not None, f"episode_roles[{key!r}] is missing: fill it in")
    for key in _ROLE_KEYS[1:]:
        value = episode_roles[key]
        expect(isinstance(value, int) and not isinstance(value, bool),
               f"episode_roles[{key!r}] must be a whole number (a count), got {value!r}")
    support = str(episode_roles["support"]).strip().upper().removeprefix("SET").strip()
    expect(support in ("A", "B"), f"episode_roles['support'] must be 'A' or 'B', got {episode_roles['support']!r}")
    expect(support == p["support"],
           f"set {support} is not the support set: the support set is the one whose labels the learner is given "
           f"(it adapts on it); the query set's labels are hidden and only used to score the adapted learner")
    n_way, k_shot, n_query = (episode_roles[k] for k in _ROLE_KEYS[1:])
    if n_way != p["n_way"]:
        hint = ""
        if n_way == p["n_way"] * p["k_shot"]:
            hint = " (that is the number of support images: n_way counts the different labels)"
        elif n_way == p["n_way"] * p["n_query"]:
            hint = " (that is the number of query images: n_way counts the different labels)"
        raise WrongAnswer(f"n_way = {n_way} is not right: count the different labels in the support set{hint}")
    if (k_shot, n_query) == (p["n_query"], p["k_shot"]):
        raise WrongAnswer(f"k_shot and n_query are swapped: k_shot counts the support images per class "
                          f"({p['k_shot']}), n_query the query images per class ({p['n_query']})")
    if k_shot != p["k_shot"]:
        hint = " (that is the whole support set: k_shot counts examples per class)" if k_shot == p["n_way"] * p["k_shot"] else ""
        raise WrongAnswer(f"k_shot = {k_shot} is not right: how many support images per label?{hint}")
    if n_query != p["n_query"]:
        hint = (" (that is the whole query set: n_query counts images per class, so divide by n_way)"
                if n_query == p["n_way"] * p["n_query"] else "")
        raise WrongAnswer(f"n_query = {n_query} is not right: how many query images per class?{hint}")
    return (f"Right: set B is the support set of a {p['n_way']}-way {p['k_shot']}-shot episode "
            f"with {p['n_query']} queries per class.")
