r"""Reptile (Nichol, Achiam & Schulman 2018): first-order meta-learning without a query loss.

For each task, start from :math:`\theta`, take ``inner_steps`` plain gradient steps on the task's
data to reach :math:`\phi`, then move the initialisation towards the result:

.. math:: \theta \leftarrow \theta + \epsilon \,\frac{1}{B}\sum_i (\phi_i - \theta).

No second derivatives and no support/query split are needed. At test time a Reptile model is
adapted exactly like a MAML model (:func:`metalearn_lab.maml.adapt_and_predict`).

Two implementations:

- :func:`reptile_step`: the inner loop is plain gradient descent on the whole task, written as a
  pure function (:func:`metalearn_lab.maml.functional_adapt`) and mapped over tasks.
- :func:`reptile_optimizer_step`: the inner loop is any ``torch.optim`` optimizer taking
  mini-batch steps on the model in place, as in Nichol et al.'s code (openai/supervised-reptile,
  ``reptile.py``: Adam with β1 = 0, one optimizer whose state carries over from task to task).
  :func:`fine_tune` and :func:`predict_non_transductive` are its test-time half.

:func:`reptile_update` is the rule itself on parameter dicts, and :func:`reptile_step_cost`
measures time and memory of one meta-step, like :func:`metalearn_lab.maml.meta_gradient_cost`.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch.func import functional_call, vmap

from metalearn_lab.autodiff import step_cost
from metalearn_lab.maml import (
    InnerLR,
    LossFn,
    Params,
    adapt,
    check_inner_loop,
    check_vectorizable,
    functional_adapt,
    prefers_vmap,
)
from metalearn_lab.validation import check_float, check_int

#: ``make_optimizer(parameters) -> torch.optim.Optimizer``, e.g. :func:`nichol_adam`.
MakeOptimizer = Callable[..., torch.optim.Optimizer]


def _check_outer_lr(outer_lr: float) -> float:
    # the fraction of the way towards the adapted weights
    return check_float("outer_lr", outer_lr, low=0, high=1, low_open=True)


def reptile_update(params: Mapping[str, torch.Tensor], adapted: list[Mapping[str, torch.Tensor]], outer_lr: float) -> Params:
    r"""The Reptile rule on parameter dicts: :math:`\theta + \epsilon\,(\frac1B\sum_i \phi_i - \theta)`.

    Parameters
    ----------
    params : dict name → Tensor, :math:`\theta`
    adapted : list of dicts name → Tensor, the task-adapted :math:`\phi_i` (one per task, ``B >= 1``)
    outer_lr : float in (0, 1], :math:`\epsilon`

    Examples
    --------
    >>> reptile_update({"w": torch.tensor([0.0])}, [{"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])}], 0.5)
    {'w': tensor([1.])}
    """
    outer_lr = _check_outer_lr(outer_lr)
    if not adapted:
        raise ValueError("adapted must hold at least one task's adapted parameters, got an empty list")
    for i, phi in enumerate(adapted):
        if set(phi) != set(params):
            raise ValueError(f"adapted[{i}] must have the keys of params; missing {sorted(set(params) - set(phi))}, "
                             f"unexpected {sorted(set(phi) - set(params))}")
    return {k: v + outer_lr * (torch.stack([phi[k] for phi in adapted]).mean(0) - v) for k, v in params.items()}


def reptile_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    outer_lr: float,
    vectorize: bool | None = None,
) -> float:
    r"""One Reptile meta-update on a batch of tasks, in place on ``model``'s parameters.

    Parameters
    ----------
    x, y : Tensor ``[meta_batch_size, n_examples, ...]``
        Each task's training data (Reptile uses all of it in the inner loop).
    inner_steps : int >= 1
    inner_lr : float > 0
        Step size :math:`\alpha` of the inner gradient descent.
    outer_lr : float in (0, 1]
        :math:`\epsilon`, how far to move towards the adapted weights.
    vectorize : bool or None
        Map the inner loops over tasks with :func:`torch.func.vmap` (``None``: the faster path,
        :func:`~metalearn_lab.maml.prefers_vmap` with ``meta_gradient=False``: the loop for conv
        nets on the CPU, vmap otherwise).

    Returns
    -------
    float
        Mean squared distance :math:`\frac{1}{B}\sum_i\lVert\phi_i-\theta\rVert^2` moved by the inner loops.

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> model = SineMLP()
    >>> batch = SinusoidTasks().sample(5, 10, generator=torch.Generator().manual_seed(0))
    >>> moved = reptile_step(model, batch.x_support, batch.y_support, torch.nn.functional.mse_loss,
    ...                      inner_steps=3, inner_lr=0.01, outer_lr=0.1)
    >>> moved > 0
    True
    """
    inner_steps = check_int("inner_steps", inner_steps, minimum=1)  # 0 steps would never move
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr)
    # the fraction of the way towards the adapted weights
    outer_lr = check_float("outer_lr", outer_lr, low=0, high=1, low_open=True)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must share the task dimension, got {x.shape[0]} and {y.shape[0]}")
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    adapt_fn = functional_adapt(model, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)
    if vectorize is None:  # adaptation only: no meta-gradient through the inner loops
        vectorize = prefers_vmap(model, x.device, meta_gradient=False)
    if vectorize:
        check_vectorizable(model)
    with torch.no_grad():
        if vectorize:
            adapted = vmap(adapt_fn, in_dims=(None, None, 0, 0), randomness="different")(params, buffers, x, y)
        else:
            per_task = [adapt_fn(params, buffers, xi, yi) for xi, yi in zip(x, y)]
            adapted = {k: torch.stack([a[k] for a in per_task]) for k in params}
        moved = 0.0
        for name, p in model.named_parameters():
            delta = adapted[name].mean(0) - p
            moved += float(((adapted[name] - p) ** 2).sum() / x.shape[0])
            p.add_(outer_lr * delta)
    return moved


# --- Reptile with an optimizer in the inner loop (Nichol et al.'s code) ---


def nichol_adam(parameters, lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam with β1 = 0 (no momentum), the inner optimizer of Nichol et al.'s code (``models.py``).

    With β1 = 0 each step is the gradient divided by a running root-mean-square of past gradients.
    ``lr`` is 1e-3 for 5-way Omniglot in their commands (5e-4 for 20-way).

    >>> nichol_adam([torch.nn.Parameter(torch.zeros(2))]).defaults["betas"]
    (0.0, 0.999)
    """
    return torch.optim.Adam(parameters, lr=check_float("lr", lr, low=0, low_open=True), betas=(0.0, 0.999))


def inner_minibatches(n_examples: int, inner_batch_size: int, inner_steps: int, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of the inner loop's mini-batches, ``[inner_steps, inner_batch_size]``.

    Without replacement, as in Nichol et al.'s ``_mini_batches``: shuffle the task's examples,
    cut them into batches in order, reshuffle when they run out (a batch may straddle two passes).
    With 50 examples, batches of 10 and 5 steps, every example is used exactly once.

    >>> idx = inner_minibatches(50, 10, 5, generator=torch.Generator().manual_seed(0))
    >>> tuple(idx.shape), sorted(idx.flatten().tolist()) == list(range(50))
    ((5, 10), True)
    """
    n_examples = check_int("n_examples", n_examples)
    inner_batch_size = check_int("inner_batch_size", inner_batch_size, maximum=n_examples)
    inner_steps = check_int("inner_steps", inner_steps)
    total = inner_batch_size * inner_steps
    passes = -(-total // n_examples)
    order = torch.cat([torch.randperm(n_examples, generator=generator) for _ in range(passes)])
    return order[:total].reshape(inner_steps, inner_batch_size)


def train_on_task(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: LossFn, *, inner_steps: int, inner_batch_size: int | None = None,
                  generator: torch.Generator | None = None) -> float:
    """Train ``model`` in place on one task: ``inner_steps`` optimizer steps on mini-batches of ``(x, y)``.

    ``inner_batch_size=None`` uses the whole task at every step. Returns the last mini-batch loss.

    >>> model = torch.nn.Linear(2, 1)
    >>> x, y = torch.randn(8, 2), torch.randn(8, 1)
    >>> before = torch.nn.functional.mse_loss(model(x), y).item()
    >>> _ = train_on_task(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y,
    ...                   torch.nn.functional.mse_loss, inner_steps=20)
    >>> torch.nn.functional.mse_loss(model(x), y).item() < before
    True
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have one row per example; got {x.shape[0]} inputs and {y.shape[0]} targets")
    inner_steps = check_int("inner_steps", inner_steps)
    batch = x.shape[0] if inner_batch_size is None else check_int("inner_batch_size", inner_batch_size, maximum=x.shape[0])
    batches = inner_minibatches(x.shape[0], batch, inner_steps, generator=generator)
    loss = torch.zeros(())
    with torch.enable_grad():
        for idx in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
    return float(loss.detach())


def reptile_optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_batch_size: int | None,
    outer_lr: float,
    generator: torch.Generator | None = None,
) -> float:
    r"""One Reptile meta-update with ``optimizer`` (e.g. :func:`nichol_adam`) in the inner loop, in place.

    For each task: start the model at :math:`\theta`, take ``inner_steps`` optimizer steps on
    mini-batches of the task's examples (:func:`train_on_task`), record :math:`\phi_i`. Then
    :math:`\theta \leftarrow \theta + \epsilon(\frac1B\sum_i\phi_i - \theta)`. As in Nichol et
    al.'s code (openai/supervised-reptile, ``reptile.py`` ``train_step``), the optimizer's state
    (Adam's running averages) is *not* reset between tasks or meta-steps: only the weights are.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Built on ``model.parameters()``.
    x, y : Tensor ``[meta_batch_size, n_examples, ...]``
        Each task's training examples (Nichol et al.: 5 classes × 10 "train shots" = 50).
    inner_batch_size : int or None
        Examples per inner step (their 10); ``None`` = the whole task.
    outer_lr : float in (0, 1]
    generator : torch.Generator, optional
        Shuffles the mini-batches (same generator state → same update).

    Returns
    -------
    float
        Mean squared distance moved by the inner loops, :math:`\frac1B\sum_i\lVert\phi_i-\theta\rVert^2`.

    Examples
    --------
    >>> torch.manual_seed(0) is not None
    True
    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.randn(4, 10, 3), torch.randint(0, 2, (4, 10))
    >>> moved = reptile_optimizer_step(model, nichol_adam(model.parameters()), x, y, torch.nn.functional.cross_entropy,
    ...                                inner_steps=5, inner_batch_size=2, outer_lr=1.0)
    >>> 0 < moved < 1
    True
    """
    outer_lr = _check_outer_lr(outer_lr)
    inner_steps = check_int("inner_steps", inner_steps)
    if inner_batch_size is not None:  # at most the examples of a task
        inner_batch_size = check_int("inner_batch_size", inner_batch_size, maximum=x.shape[1])
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must share the task dimension, got {x.shape[0]} and {y.shape[0]}")
    named = dict(model.named_parameters())
    theta = {k: v.detach().clone() for k, v in named.items()}
    total = {k: torch.zeros_like(v) for k, v in theta.items()}
    moved = 0.0
    for xi, yi in zip(x, y):
        train_on_task(model, optimizer, xi, yi, loss_fn, inner_steps=inner_steps, inner_batch_size=inner_batch_size,
                      generator=generator)
        with torch.no_grad():
            for k, p in named.items():
                total[k] += p
                moved += float(((p - theta[k]) ** 2).sum())
                p.copy_(theta[k])
    with torch.no_grad():
        for k, p in named.items():
            p.add_(outer_lr * (total[k] / x.shape[0] - theta[k]))
    return moved / x.shape[0]


def fine_tune(model: torch.nn.Module, x_support: torch.Tensor, y_support: torch.Tensor, loss_fn: LossFn, *,
              inner_steps: int, inner_batch_size: int | None = None, make_optimizer: MakeOptimizer = nichol_adam,
              generator: torch.Generator | None = None) -> Params:
    """Test-time adaptation of one task with a fresh optimizer; returns the adapted parameters.

    ``model``'s own weights are left as they were. Nichol et al. test with 50 steps of Adam
    (β1 = 0) on mini-batches of 5 (the whole support set of a 5-way 1-shot task).

    >>> model = torch.nn.Linear(2, 3)
    >>> adapted = fine_tune(model, torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]),
    ...                     torch.nn.functional.cross_entropy, inner_steps=3)
    >>> sorted(adapted), torch.equal(adapted["weight"], model.weight)
    (['bias', 'weight'], False)
    """
    inner_steps = check_int("inner_steps", inner_steps)
    if inner_batch_size is not None:  # at most the support set
        inner_batch_size = check_int("inner_batch_size", inner_batch_size, maximum=x_support.shape[0])
    named = dict(model.named_parameters())
    theta = {k: v.detach().clone() for k, v in named.items()}
    try:
        train_on_task(model, make_optimizer(named.values()), x_support, y_support, loss_fn, inner_steps=inner_steps,
                      inner_batch_size=inner_batch_size, generator=generator)
        return {k: v.detach().clone() for k, v in named.items()}
    finally:
        with torch.no_grad():
            for k, p in named.items():
                p.copy_(theta[k])


def predict_non_transductive(model: torch.nn.Module, params: Mapping[str, torch.Tensor], x_support: torch.Tensor,
                             x_query: torch.Tensor) -> torch.Tensor:
    """Classify each query in a batch of its own with the support set: ``[n_query, n_outputs]``.

    With batch statistics in batch norm, a prediction depends on what else is in the batch.
    Classifying all queries together lets them inform each other (transduction); Nichol et al.
    (2018, code ``reptile.py`` ``_test_predictions``) classify each query in a batch made of the
    support set plus that one query, so no query sees another. Mapped over the queries with
    :func:`torch.func.vmap`.

    >>> from metalearn_lab.models import Conv4
    >>> model = Conv4(hidden=4, out_features=5, track_running_stats=False)
    >>> params = dict(model.named_parameters())
    >>> predict_non_transductive(model, params, torch.randn(5, 1, 28, 28), torch.randn(7, 1, 28, 28)).shape
    torch.Size([7, 5])
    """
    buffers = dict(model.named_buffers())
    support = x_support.unsqueeze(0).expand(x_query.shape[0], *x_support.shape)
    batches = torch.cat([support, x_query.unsqueeze(1)], dim=1)  # [n_query, n_support + 1, ...]

    def last_row(batch):
        return functional_call(model, (dict(params), buffers), (batch,))[-1]

    with torch.no_grad():
        return vmap(last_row)(batches)


def reptile_step_cost(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: float,
    repeats: int = 3,
    threads: int | None = 1,
) -> dict[str, float]:
    """Wall time and graph memory of computing one Reptile update (SGD inner loop, as in :func:`reptile_step`).

    The counterpart of :func:`metalearn_lab.maml.meta_gradient_cost`, measured the same way: the
    per-task loop (:func:`metalearn_lab.maml.adapt` without an outer graph, then
    :func:`reptile_update`), the fastest of ``repeats``, ``threads`` CPU threads, and the peak memory
    autograd holds for backward passes (:func:`metalearn_lab.autodiff.peak_saved_tensor_bytes`).
    Each inner gradient's graph is freed before the next step, so memory does not grow with
    ``inner_steps``. ``model`` is not changed. Returns ``{"seconds", "saved_mb"}``.

    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> batch = SinusoidTasks().sample(2, 5, generator=torch.Generator().manual_seed(0))
    >>> cost = reptile_step_cost(SineMLP(), batch.x_support, batch.y_support, torch.nn.functional.mse_loss,
    ...                          inner_steps=2, inner_lr=0.01, repeats=1)
    >>> sorted(cost), cost["saved_mb"] > 0
    (['saved_mb', 'seconds'], True)
    """
    inner_steps, inner_lr = check_inner_loop(inner_steps, inner_lr)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    return step_cost(lambda: reptile_update(params, [
        adapt(model, params, xi, yi, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, buffers=buffers)
        for xi, yi in zip(x, y)], 1.0), repeats=repeats, threads=threads)


# --- Nichol et al.'s analysis (§5): the three updates as functions of k mini-batch losses ---

#: A mini-batch loss as a function of the parameters, ``L_i(params) -> scalar``.
BatchLoss = Callable[[Params], torch.Tensor]
#: The methods of :func:`update_directions`, in the order the lessons show them.
METHODS = ("MAML", "first-order MAML", "Reptile")


def _check_batches(batch_losses) -> list:
    batch_losses = list(batch_losses)
    if not batch_losses or not all(callable(f) for f in batch_losses):
        raise ValueError("batch_losses must be a non-empty sequence of functions params -> scalar loss, "
                         f"got {batch_losses!r}")
    return batch_losses


def update_directions(batch_losses, params: Mapping[str, torch.Tensor], inner_lr: float) -> dict[str, Params]:
    r"""The MAML, first-order MAML and Reptile update directions for one task and :math:`k` mini-batches.

    In Nichol et al.'s (2018, §5) notation: :math:`\phi_1 = \theta`, :math:`\phi_{i+1} = \phi_i - \alpha
    L_i'(\phi_i)` with mini-batch losses :math:`L_1, \dots, L_k`, and

    - MAML: :math:`g_\text{MAML} = \partial L_k(\phi_k) / \partial\phi_1`: :math:`k-1` inner steps on
      :math:`L_1..L_{k-1}`, then the gradient of the last batch's loss, back through the steps;
    - first-order MAML: :math:`g_\text{FOMAML} = L_k'(\phi_k)`, the same gradient taken at the adapted point;
    - Reptile: :math:`g_\text{Reptile} = (\phi_1 - \phi_{k+1}) / \alpha = \sum_{i=1}^k L_i'(\phi_i)`, all
      :math:`k` batches used as inner steps.

    Each is a direction :math:`g` for an outer step :math:`\theta \leftarrow \theta - \beta g`. With
    :math:`k = 2` (a support batch and a query batch) the MAML and first-order MAML directions are
    the usual one-inner-step meta-gradients (:func:`metalearn_lab.maml.meta_gradient`).

    Parameters
    ----------
    batch_losses : sequence of callables ``params -> scalar``, length k >= 1
    params : dict name → Tensor, :math:`\theta` (use float64 to study small :math:`\alpha`)
    inner_lr : float > 0, :math:`\alpha`

    Returns
    -------
    dict method → (dict name → Tensor), methods as in :data:`METHODS`

    Examples
    --------
    >>> a = torch.tensor([1.0, 3.0], dtype=torch.float64)
    >>> losses = [lambda p: 0.5 * (a * p["w"] ** 2).sum(), lambda p: 0.5 * (a * (p["w"] - 1) ** 2).sum()]
    >>> g = update_directions(losses, {"w": torch.zeros(2, dtype=torch.float64)}, inner_lr=0.1)
    >>> g["first-order MAML"]["w"], g["MAML"]["w"], g["Reptile"]["w"]
    (tensor([-1., -3.], dtype=torch.float64), tensor([-0.9000, -2.1000], dtype=torch.float64), tensor([-1., -3.], dtype=torch.float64))
    """
    batch_losses = _check_batches(batch_losses)
    _, inner_lr = check_inner_loop(len(batch_losses), inner_lr)
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    names = list(theta)
    with torch.enable_grad():
        # MAML: differentiate through the k-1 inner steps
        phi = dict(theta)
        for loss_fn in batch_losses[:-1]:
            grads = torch.autograd.grad(loss_fn(phi), [phi[k] for k in names], create_graph=True)
            phi = {k: phi[k] - inner_lr * g for k, g in zip(names, grads)}
        maml = torch.autograd.grad(batch_losses[-1](phi), [theta[k] for k in names], allow_unused=True)
        # first-order MAML and Reptile: the same trajectory without a graph through it
        phi, reptile = {k: v.detach() for k, v in theta.items()}, {k: torch.zeros_like(v) for k, v in theta.items()}
        last = None
        for loss_fn in batch_losses:
            leaves = {k: v.requires_grad_() for k, v in phi.items()}
            grads = torch.autograd.grad(loss_fn(leaves), [leaves[k] for k in names], allow_unused=True)
            grads = [torch.zeros_like(leaves[k]) if g is None else g for k, g in zip(names, grads)]
            last = grads
            reptile = {k: reptile[k] + g for k, g in zip(names, grads)}
            phi = {k: (leaves[k] - inner_lr * g).detach() for k, g in zip(names, grads)}
    maml = [torch.zeros_like(theta[k]) if g is None else g for k, g in zip(names, maml)]
    return {"MAML": {k: g.detach() for k, g in zip(names, maml)},
            "first-order MAML": {k: g.detach() for k, g in zip(names, last)},
            "Reptile": {k: g.detach() for k, g in reptile.items()}}


def _check_tasks(tasks, n_batches: int | None = None) -> list[list]:
    tasks = [_check_batches(t) for t in tasks]
    if not tasks:
        raise ValueError("tasks must hold at least one task (a sequence of mini-batch losses)")
    sizes = {len(t) for t in tasks}
    if n_batches is not None:
        smallest = min(sizes)
        check_int("n_batches", n_batches, maximum=smallest)
    elif min(sizes) < 2:
        raise ValueError(f"each task needs at least 2 mini-batches (distinct pairs), got sizes {sorted(sizes)}")
    return tasks


def gradient_inner_product_terms(tasks, params: Mapping[str, torch.Tensor]) -> dict[str, Params]:
    r"""Nichol et al.'s AvgGrad and AvgGradInner, exactly, for a finite family of tasks.

    .. math::
        \text{AvgGrad} = \mathbb{E}_{\tau, i}[\bar g_i], \qquad
        \text{AvgGradInner} = \mathbb{E}_{\tau,\, i \ne j}[\bar H_i \bar g_j]
        = \tfrac12\, \mathbb{E}_{\tau,\, i \ne j}\big[\nabla_\theta (\bar g_i \cdot \bar g_j)\big],

    where :math:`\bar g_i = \nabla L_i(\theta)` and :math:`\bar H_i = \nabla^2 L_i(\theta)` are taken at
    the initial point, the expectation is uniform over ``tasks`` and over the ordered pairs of
    *distinct* mini-batches of a task (so :math:`\mathbb{E}[\bar H_i\bar g_j] = \mathbb{E}[\bar H_j\bar g_i]`
    holds exactly). AvgGrad is the gradient of joint training; :math:`-`AvgGradInner is the direction
    that increases the inner product between gradients of different batches of the same task, which
    is what makes a step on one batch help on another (Nichol et al. 2018, §5). Hessian-vector
    products come from :func:`metalearn_lab.autodiff.hessian_vector_product`.

    Parameters
    ----------
    tasks : sequence of sequences of callables ``params -> scalar``
        Each task's mini-batch losses (at least 2 per task).
    params : dict name → Tensor

    Returns
    -------
    ``{"avg_grad": Params, "avg_grad_inner": Params}``

    Examples
    --------
    >>> a = torch.tensor([1.0, 3.0], dtype=torch.float64)
    >>> task = [lambda p: 0.5 * (a * p["w"] ** 2).sum(), lambda p: 0.5 * (a * (p["w"] - 1) ** 2).sum()]
    >>> terms = gradient_inner_product_terms([task], {"w": torch.zeros(2, dtype=torch.float64)})
    >>> terms["avg_grad"]["w"], terms["avg_grad_inner"]["w"]
    (tensor([-0.5000, -1.5000], dtype=torch.float64), tensor([-0.5000, -4.5000], dtype=torch.float64))
    """
    from metalearn_lab.autodiff import hessian_vector_product

    tasks = _check_tasks(tasks)
    theta = {k: v.detach() for k, v in params.items()}
    avg_grad = {k: torch.zeros_like(v) for k, v in theta.items()}
    avg_inner = {k: torch.zeros_like(v) for k, v in theta.items()}
    for task in tasks:
        grads = [torch.func.grad(f)(theta) for f in task]
        total = {k: sum(g[k] for g in grads) for k in theta}
        n = len(task)
        for f, g in zip(task, grads):
            others = {k: total[k] - g[k] for k in theta}  # sum of the other batches' gradients
            hv = hessian_vector_product(f, theta, others)
            for k in theta:
                avg_grad[k] += g[k] / (n * len(tasks))
                avg_inner[k] += hv[k] / (n * (n - 1) * len(tasks))
    return {"avg_grad": avg_grad, "avg_grad_inner": avg_inner}


def expected_update_directions(tasks, params: Mapping[str, torch.Tensor], inner_lr: float,
                               n_batches: int) -> dict[str, Params]:
    r""":func:`update_directions` averaged exactly over ``tasks`` and all ordered ``n_batches``-tuples of distinct batches.

    This is the expectation :math:`\mathbb{E}[g]` of Nichol et al.'s §5 for a finite family of
    tasks with mini-batches drawn without replacement, computed by enumeration (a task with
    :math:`B` batches has :math:`B!/(B-k)!` ordered tuples: keep :math:`B` and :math:`k` small).

    >>> a = torch.tensor([1.0, 3.0], dtype=torch.float64)
    >>> task = [lambda p: 0.5 * (a * p["w"] ** 2).sum(), lambda p: 0.5 * (a * (p["w"] - 1) ** 2).sum()]
    >>> e = expected_update_directions([task], {"w": torch.zeros(2, dtype=torch.float64)}, 0.1, 2)
    >>> e["first-order MAML"]["w"]  # the order (1, 2) gives [-1, -3], the order (2, 1) gives [0.1, 0.9]
    tensor([-0.4500, -1.0500], dtype=torch.float64)
    """
    import itertools

    _, inner_lr = check_inner_loop(1, inner_lr)
    tasks = _check_tasks(tasks, n_batches)
    n_batches = check_int("n_batches", n_batches)
    total = {m: {k: torch.zeros_like(v) for k, v in params.items()} for m in METHODS}
    count = 0
    for task in tasks:
        for order in itertools.permutations(range(len(task)), n_batches):
            directions = update_directions([task[i] for i in order], params, inner_lr)
            for m in METHODS:
                for k in params:
                    total[m][k] += directions[m][k]
            count += 1
    return {m: {k: v / count for k, v in total[m].items()} for m in METHODS}


def taylor_coefficients(method: str, n_batches: int) -> tuple[float, float]:
    r"""The coefficients :math:`(a, b)` of :math:`\mathbb{E}[g] = a\,\text{AvgGrad} - b\,\alpha\,\text{AvgGradInner} + O(\alpha^2)`.

    With :math:`k` mini-batches (Nichol et al. 2018, §5, give k = 2; the general case is derived in lesson ``reptile_first_order``):
    MAML :math:`(1, 2(k-1))`, first-order MAML :math:`(1, k-1)`, Reptile :math:`(k, k(k-1)/2)`.

    >>> [taylor_coefficients(m, 2) for m in METHODS]
    [(1.0, 2.0), (1.0, 1.0), (2.0, 1.0)]
    """
    k = check_int("n_batches", n_batches)
    table = {"MAML": (1.0, 2.0 * (k - 1)), "first-order MAML": (1.0, float(k - 1)), "Reptile": (float(k), k * (k - 1) / 2)}
    if method not in table:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return table[method]


def _direction_fn(model: torch.nn.Module, loss_fn: LossFn, method: str, inner_lr: float):
    """A pure ``(params, buffers, xs [k, n, ...], ys [k, n, ...]) -> (direction, last-batch loss after k-1 steps)``."""
    from torch.func import grad

    def batch_loss(p, b, x, y):
        return loss_fn(functional_call(model, (p, b), (x,)), y)

    def trajectory(p, b, xs, ys, steps, detach):
        total = {k: torch.zeros_like(v) for k, v in p.items()}
        for i in range(steps):
            g = grad(batch_loss)(p, b, xs[i], ys[i])
            if detach:
                g = {k: v.detach() for k, v in g.items()}
            total = {k: total[k] + g[k] for k in p}
            p = {k: p[k] - inner_lr * g[k] for k in p}
        return p, total

    def direction(params, buffers, xs, ys):
        k = xs.shape[0]
        if method == "MAML":
            def through(p):
                phi, _ = trajectory(p, buffers, xs, ys, k - 1, detach=False)
                loss = batch_loss(phi, buffers, xs[k - 1], ys[k - 1])
                return loss, loss
            g, loss = grad(through, has_aux=True)(params)
            return g, loss
        phi, total = trajectory(params, buffers, xs, ys, k - 1, detach=True)
        last_grad = grad(batch_loss)(phi, buffers, xs[k - 1], ys[k - 1])
        loss = batch_loss(phi, buffers, xs[k - 1], ys[k - 1])
        if method == "first-order MAML":
            return last_grad, loss
        return {n: total[n] + last_grad[n] for n in params}, loss

    return direction


def meta_directions(
    model: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    x_batches: torch.Tensor,
    y_batches: torch.Tensor,
    loss_fn: LossFn,
    *,
    method: str,
    inner_lr: float,
) -> tuple[Params, torch.Tensor]:
    r"""The task-averaged update direction of MAML, first-order MAML or Reptile, vectorised over tasks.

    The batch version of :func:`update_directions` for a network: each task brings :math:`k`
    mini-batches; MAML and first-order MAML take :math:`k-1` inner steps on the first ones and use
    the last as the query batch; Reptile takes :math:`k` steps and returns
    :math:`(\theta - \phi_{k+1})/\alpha`. Mapped over tasks with :func:`torch.func.vmap`.

    Parameters
    ----------
    x_batches, y_batches : Tensor ``[meta_batch_size, k, n, ...]``
        Task ``t``'s mini-batch ``i`` is ``(x_batches[t, i], y_batches[t, i])``; ``k >= 1``.
    method : one of :data:`METHODS`
    inner_lr : float > 0

    Returns
    -------
    directions : dict name → Tensor, averaged over tasks (feed it to an optimizer as a gradient)
    loss : Tensor, scalar
        Mean over tasks of the last batch's loss after :math:`k-1` inner steps (the query loss of
        MAML; the same number for the three methods, so their training curves compare).

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> model = SineMLP()
    >>> b = SinusoidTasks().sample(4, 10, 10, generator=torch.Generator().manual_seed(0))
    >>> xs, ys = torch.stack([b.x_support, b.x_query], 1), torch.stack([b.y_support, b.y_query], 1)
    >>> g, loss = meta_directions(model, dict(model.named_parameters()), xs, ys, torch.nn.functional.mse_loss,
    ...                           method="Reptile", inner_lr=0.01)
    >>> g["net.0.weight"].shape, loss.shape
    (torch.Size([40, 1]), torch.Size([]))
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _, inner_lr = check_inner_loop(1, inner_lr)
    if x_batches.dim() < 3 or x_batches.shape[:2] != y_batches.shape[:2]:
        raise ValueError("x_batches and y_batches must be [meta_batch_size, k, n, ...] with the same first two sizes, "
                         f"got {tuple(x_batches.shape)} and {tuple(y_batches.shape)}")
    params = {k: v.detach() for k, v in params.items()}
    buffers = dict(model.named_buffers())
    fn = _direction_fn(model, loss_fn, method, inner_lr)
    directions, losses = vmap(fn, in_dims=(None, None, 0, 0), randomness="different")(params, buffers, x_batches, y_batches)
    return {k: v.mean(0) for k, v in directions.items()}, losses.mean()


def meta_direction_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x_batches: torch.Tensor,
                        y_batches: torch.Tensor, loss_fn: LossFn, *, method: str, inner_lr: float) -> float:
    """One outer step: :func:`meta_directions` as the gradient of ``model``'s parameters, then ``optimizer.step()``.

    With the same optimizer (e.g. Adam) for all three methods, only the direction differs, which
    is how lesson ``reptile_first_order`` compares them; Nichol et al. note that Reptile's
    :math:`\\theta - \\phi` can be fed to Adam as a gradient. Returns the loss of :func:`meta_directions`.
    """
    directions, loss = meta_directions(model, dict(model.named_parameters()), x_batches, y_batches, loss_fn,
                                       method=method, inner_lr=inner_lr)
    optimizer.zero_grad(set_to_none=True)
    for name, p in model.named_parameters():
        p.grad = directions[name].clone()
    optimizer.step()
    return float(loss)
