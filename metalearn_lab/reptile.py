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

import math
import time
from typing import Callable, Mapping

import torch
from torch.func import functional_call, vmap

from metalearn_lab.autodiff import peak_saved_tensor_bytes
from metalearn_lab.maml import InnerLR, LossFn, Params, adapt, check_inner_loop, functional_adapt, prefers_vmap
from metalearn_lab.validation import check_int

#: ``make_optimizer(parameters) -> torch.optim.Optimizer``, e.g. :func:`nichol_adam`.
MakeOptimizer = Callable[..., torch.optim.Optimizer]


def _check_outer_lr(outer_lr: float) -> None:
    if isinstance(outer_lr, bool) or not isinstance(outer_lr, (int, float)) or not math.isfinite(outer_lr) \
            or not 0 < outer_lr <= 1:
        raise ValueError(f"outer_lr must be in (0, 1] (the fraction of the way towards the adapted weights), got {outer_lr!r}")


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
    _check_outer_lr(outer_lr)
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
        Map the inner loops over tasks with :func:`torch.func.vmap` (``None``: only for non-conv nets).

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
    check_inner_loop(inner_steps, inner_lr)
    if inner_steps < 1:
        raise ValueError(f"inner_steps must be >= 1 for Reptile (0 steps never moves), got {inner_steps}")
    _check_outer_lr(outer_lr)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must share the task dimension, got {x.shape[0]} and {y.shape[0]}")
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    adapt_fn = functional_adapt(model, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)
    if vectorize is None:
        vectorize = prefers_vmap(model)
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
    return torch.optim.Adam(parameters, lr=lr, betas=(0.0, 0.999))


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
    batch = x.shape[0] if inner_batch_size is None else inner_batch_size
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
    _check_outer_lr(outer_lr)
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
    repeats = check_int("repeats", repeats)
    if threads is not None:
        threads = check_int("threads", threads)
    check_inner_loop(inner_steps, inner_lr)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    best, peak = math.inf, 0
    previous = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        for _ in range(repeats):
            start = time.perf_counter()
            _, saved = peak_saved_tensor_bytes(lambda: reptile_update(params, [
                adapt(model, params, xi, yi, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, buffers=buffers)
                for xi, yi in zip(x, y)], 1.0))
            best = min(best, time.perf_counter() - start)
            peak = max(peak, saved)
    finally:
        torch.set_num_threads(previous)
    return {"seconds": best, "saved_mb": peak / 2**20}
