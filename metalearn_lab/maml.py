r"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine 2017) on :mod:`torch.func`.

The inner loop is a pure function of a parameter dict. One step is

.. math:: \theta' = \theta - \alpha \nabla_\theta \mathcal{L}_{\text{support}}(\theta),

and the meta-objective is the query loss at the adapted parameters, averaged over tasks,
:math:`\min_\theta \sum_i \mathcal{L}^{(i)}_{\text{query}}(\theta'_i)`. Its gradient passes back
through the inner steps: for one step it is
:math:`(I - \alpha \nabla^2 \mathcal{L}_{\text{support}}(\theta))\,\nabla \mathcal{L}_{\text{query}}(\theta')`.
First-order MAML drops the Hessian term and uses :math:`\nabla \mathcal{L}_{\text{query}}(\theta')`.

Two implementations of the batch meta-loss give the same numbers: a per-task Python loop over
:func:`adapt` (easy to read; the style of learn2learn and higher) and a vectorised one that maps
the whole inner loop over the task dimension with :func:`torch.func.vmap`.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
InnerLR = float | torch.Tensor | Mapping[str, torch.Tensor]


def check_inner_loop(inner_steps: int, inner_lr: InnerLR, params: Mapping[str, torch.Tensor] | None = None) -> None:
    """Raise ``ValueError`` for a negative/non-integer ``inner_steps`` or a non-positive ``inner_lr``."""
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
        raise ValueError(f"inner_steps must be an integer >= 0, got {inner_steps!r}")
    if isinstance(inner_lr, Mapping):
        if params is not None and set(inner_lr) != set(params):
            missing = sorted(set(params) - set(inner_lr))
            extra = sorted(set(inner_lr) - set(params))
            raise ValueError(f"inner_lr dict must have one entry per parameter; missing {missing}, unexpected {extra}")
        return
    value = float(inner_lr.detach()) if isinstance(inner_lr, torch.Tensor) and inner_lr.numel() == 1 else inner_lr
    if isinstance(value, torch.Tensor):
        raise ValueError(f"inner_lr must be a number, a scalar tensor or a dict of tensors, got a tensor of shape {tuple(value.shape)}")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"inner_lr must be a finite number > 0 (e.g. 0.01 for sinusoids, 0.4 for Omniglot), got {inner_lr!r}")


def _step(params: Params, grads: Mapping[str, torch.Tensor], inner_lr: InnerLR) -> Params:
    if isinstance(inner_lr, Mapping):
        return {name: p - inner_lr[name] * grads[name] for name, p in params.items()}
    return {name: p - inner_lr * grads[name] for name, p in params.items()}


def adapt(
    model: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    first_order: bool = False,
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> Params:
    r"""Adapt ``params`` to one task with ``inner_steps`` steps of gradient descent on ``(x, y)``.

    Parameters
    ----------
    model : nn.Module
        Evaluated with :func:`torch.func.functional_call`, so its own weights are never changed.
    params : dict name → Tensor
        Starting point :math:`\theta` (e.g. ``dict(model.named_parameters())``).
    x, y : Tensor
        The task's support set, ``[k_shot * n_way, ...]`` (no task dimension).
    loss_fn : callable ``(prediction, y) -> scalar``
    inner_steps : int >= 0
    inner_lr : float > 0, scalar tensor, or dict name → Tensor
        :math:`\alpha`; a dict gives one learning rate per parameter (as in Meta-SGD).
    first_order : bool
        ``False``: the result is differentiable back to ``params`` through every inner step
        (second-order MAML). ``True``: inner gradients are treated as constants, so the
        Jacobian :math:`\partial\theta'/\partial\theta` is the identity (first-order MAML).

    Returns
    -------
    dict name → Tensor
        The adapted parameters :math:`\theta'`.

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> model = SineMLP()
    >>> params = dict(model.named_parameters())
    >>> x = torch.linspace(-5, 5, 10)[:, None]
    >>> adapted = adapt(model, params, x, torch.sin(x), torch.nn.functional.mse_loss, inner_steps=1, inner_lr=0.01)
    >>> sorted(adapted) == sorted(params), adapted["net.0.weight"].requires_grad
    (True, True)
    """
    check_inner_loop(inner_steps, inner_lr, params)
    buffers = dict(buffers or {})
    outer = torch.is_grad_enabled() and any(p.requires_grad for p in params.values())
    adapted: Params = dict(params) if outer else {k: v.detach().requires_grad_() for k, v in params.items()}
    with torch.enable_grad():
        for _ in range(inner_steps):
            loss = loss_fn(functional_call(model, (adapted, buffers), (x,)), y)
            grads = torch.autograd.grad(loss, list(adapted.values()), create_graph=outer and not first_order)
            adapted = _step(adapted, dict(zip(adapted, grads)), inner_lr)
            if not outer:
                adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
    return adapted if outer else {k: v.detach() for k, v in adapted.items()}


def functional_adapt(model: torch.nn.Module, loss_fn: LossFn, *, inner_steps: int, inner_lr: InnerLR, first_order: bool = False):
    """Build a pure ``adapt_fn(params, buffers, x_support, y_support) -> adapted params``.

    The same inner loop as :func:`adapt`, written with :func:`torch.func.grad` so that it can be
    mapped over tasks with :func:`torch.func.vmap` (used by :func:`meta_loss` and Reptile).
    """

    def support_loss(p, b, x, y):
        return loss_fn(functional_call(model, (p, b), (x,)), y)

    def adapt_fn(params, buffers, x_support, y_support):
        adapted = dict(params)
        for _ in range(inner_steps):
            grads = grad(support_loss)(adapted, buffers, x_support, y_support)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            adapted = _step(adapted, grads, inner_lr)
        return adapted

    return adapt_fn


def _functional_task(model: torch.nn.Module, loss_fn: LossFn, inner_steps: int, inner_lr: InnerLR, first_order: bool):
    """Build ``task(params, buffers, x_support, y_support, x_query) -> query prediction``, pure and vmappable."""
    adapt_fn = functional_adapt(model, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order)

    def task(params, buffers, x_support, y_support, x_query):
        return functional_call(model, (adapt_fn(params, buffers, x_support, y_support), buffers), (x_query,))

    return task


def meta_loss(
    model: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    first_order: bool = False,
    vectorize: bool | None = None,
    buffers: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The MAML objective on a batch of tasks: mean query loss after adaptation.

    Parameters
    ----------
    batch : (x_support, y_support, x_query, y_query)
        Each with a leading task dimension ``[meta_batch_size, ...]`` (an
        :class:`~metalearn_lab.samplers.Episode` or a sinusoid batch's ``as_tuple()``).
    vectorize : bool or None
        ``True`` maps the inner loop over tasks with :func:`torch.func.vmap`; ``False`` loops over
        tasks in Python with :func:`adapt`. Both give the same loss and gradients. ``None`` picks
        the faster one measured on CPU (``benchmarks/maml_throughput.py``): vmap for MLPs, the loop
        for convolutional nets, whose per-task weights make vmapped convolutions slow.

    Returns
    -------
    loss : Tensor, scalar
        :math:`\frac{1}{B}\sum_i \mathcal{L}^{(i)}_{\text{query}}(\theta'_i)`, differentiable w.r.t. ``params``.
    predictions : Tensor ``[meta_batch_size, n_query_total, ...]``
        The adapted models' outputs on the query sets.

    Examples
    --------
    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> model = SineMLP()
    >>> batch = SinusoidTasks().sample(4, 5, generator=torch.Generator().manual_seed(0)).as_tuple()
    >>> loss, pred = meta_loss(model, dict(model.named_parameters()), batch, torch.nn.functional.mse_loss, inner_steps=1, inner_lr=0.01)
    >>> loss.shape, tuple(pred.shape)
    (torch.Size([]), (4, 5, 1))
    """
    check_inner_loop(inner_steps, inner_lr, params)
    x_support, y_support, x_query, y_query = batch
    sizes = {t.shape[0] for t in batch}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors must share the task dimension, got sizes {[t.shape[0] for t in batch]}")
    buffers = dict(buffers or {})
    if vectorize is None:
        vectorize = prefers_vmap(model)
    if vectorize:
        task = _functional_task(model, loss_fn, inner_steps, inner_lr, first_order)
        predictions = vmap(task, in_dims=(None, None, 0, 0, 0), randomness="different")(
            dict(params), buffers, x_support, y_support, x_query
        )
    else:
        predictions = torch.stack([
            functional_call(
                model,
                (adapt(model, params, xs, ys, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
                       first_order=first_order, buffers=buffers), buffers),
                (xq,),
            )
            for xs, ys, xq in zip(x_support, y_support, x_query)
        ])
    losses = torch.stack([loss_fn(p, y) for p, y in zip(predictions, y_query)])
    return losses.mean(), predictions


def meta_train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    first_order: bool = False,
    vectorize: bool | None = None,
) -> tuple[float, torch.Tensor]:
    """One outer update: meta-loss on ``batch``, backward through the inner loop, ``optimizer.step()``.

    Returns the meta-loss (a float) and the detached query predictions.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, predictions = meta_loss(
        model, dict(model.named_parameters()), batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr,
        first_order=first_order, vectorize=vectorize, buffers=dict(model.named_buffers()),
    )
    loss.backward()
    optimizer.step()
    return float(loss.detach()), predictions.detach()


def adapt_and_predict(
    model: torch.nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    *,
    inner_steps: int,
    inner_lr: InnerLR,
    vectorize: bool | None = None,
) -> torch.Tensor:
    """Test-time use of a meta-trained model: adapt to each task's support set, predict its queries.

    No meta-gradient is built (the inner gradients still are). Returns ``[meta_batch_size, n_query_total, ...]``.
    """
    with torch.no_grad():
        params = {k: v.detach() for k, v in model.named_parameters()}
        _, predictions = meta_loss(
            model, params, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True,
            vectorize=vectorize, buffers=dict(model.named_buffers()),
        )
    return predictions


def prefers_vmap(model: torch.nn.Module) -> bool:
    """Whether :func:`meta_loss` should vectorise over tasks for ``model``: no for conv nets on CPU."""
    return not any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions over the last-but-one dimension: ``[..., n, C]`` → ``[...]``.

    >>> float(accuracy(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])))
    0.5
    """
    return (logits.argmax(-1) == labels).float().mean(-1)
