"""The transfer-learning baseline: train one network on all tasks pooled, then fine-tune.

This is the "pretrained" comparison of Finn et al. (2017, section 5.1): a regressor is trained to
fit random sinusoids (any task, no adaptation during training), and at test time it is fine-tuned
with gradient descent on the K support points of the new task, exactly like MAML's inner loop.
MAML differs only in *what the training optimises*: the loss after adaptation, not before.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from metalearn_lab.maml import LossFn


def pretrain(
    model: torch.nn.Module,
    sample_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    *,
    iterations: int,
    lr: float = 1e-3,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` on pooled data from many tasks with Adam; returns the loss of every step.

    ``sample_batch()`` returns ``(x, y)`` for one step, e.g. the support and query points of 25
    sinusoid tasks flattened together.

    >>> from metalearn_lab.models import SineMLP
    >>> from metalearn_lab.data.sinusoid import SinusoidTasks
    >>> tasks, model = SinusoidTasks(), SineMLP()
    >>> def sample():
    ...     b = tasks.sample(25, 10)
    ...     return b.x_support.reshape(-1, 1), b.y_support.reshape(-1, 1)
    >>> losses = pretrain(model, sample, torch.nn.functional.mse_loss, iterations=5, progress=False)
    >>> len(losses)
    5
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in tqdm(range(iterations), desc="pretrain", disable=not progress):
        x, y = sample_batch()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
