r"""Reptile (Nichol, Achiam & Schulman 2018): first-order meta-learning without a query loss.

For each task, start from :math:`\theta`, take ``inner_steps`` plain gradient steps on the task's
data to reach :math:`\phi`, then move the initialisation towards the result:

.. math:: \theta \leftarrow \theta + \epsilon \,\frac{1}{B}\sum_i (\phi_i - \theta).

No second derivatives and no support/query split are needed. At test time a Reptile model is
adapted exactly like a MAML model (:func:`metalearn_lab.maml.adapt_and_predict`).
"""

from __future__ import annotations

import math

import torch
from torch.func import vmap

from metalearn_lab.maml import InnerLR, LossFn, check_inner_loop, functional_adapt, prefers_vmap


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
    check_inner_loop(inner_steps, inner_lr)
    if inner_steps < 1:
        raise ValueError(f"inner_steps must be >= 1 for Reptile (0 steps never moves), got {inner_steps}")
    if not isinstance(outer_lr, (int, float)) or not math.isfinite(outer_lr) or not 0 < outer_lr <= 1:
        raise ValueError(f"outer_lr must be in (0, 1] (the fraction of the way towards the adapted weights), got {outer_lr!r}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must share the task dimension, got {x.shape[0]} and {y.shape[0]}")
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    adapt_fn = functional_adapt(model, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr, first_order=True)
    if vectorize is None:  # adaptation only: no meta-gradient through the inner loops
        vectorize = prefers_vmap(model, x.device, meta_gradient=False)
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
