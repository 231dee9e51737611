r"""Prototypical networks (Snell, Swersky & Zemel 2017).

Embed every image with a shared network :math:`f_\phi`; the prototype of class :math:`c` is the
mean embedding of its support examples, :math:`\mathbf{c}_c = \frac{1}{K}\sum_i f_\phi(x_i)`; a
query is classified by a softmax over negative squared Euclidean distances to the prototypes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from metalearn_lab.models import unchanged
from metalearn_lab.validation import check_int


def prototypes(z_support: torch.Tensor, y_support: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means of support embeddings.

    Parameters
    ----------
    z_support : Tensor ``[B, N*K, D]``
    y_support : Tensor ``[B, N*K]`` with labels ``0..n_way-1``, every label present.

    Returns
    -------
    Tensor ``[B, n_way, D]``

    >>> z = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]]])
    >>> prototypes(z, torch.tensor([[0, 0, 1]]), 2)
    tensor([[[1., 0.],
             [0., 4.]]])
    """
    n_way = check_int("n_way", n_way, minimum=1)
    if z_support.dim() != 3 or y_support.shape != z_support.shape[:2]:
        raise ValueError(
            f"z_support must be [tasks, n_support, dim] and y_support [tasks, n_support]; got {tuple(z_support.shape)} and {tuple(y_support.shape)}"
        )
    if int(y_support.min()) < 0 or int(y_support.max()) >= n_way:
        raise ValueError(f"y_support labels must lie in 0..{n_way - 1} for n_way={n_way}")
    one_hot = F.one_hot(y_support, n_way).to(z_support.dtype)  # [B, NK, N]
    counts = one_hot.sum(1)  # [B, N]
    if (counts == 0).any():
        raise ValueError("every class 0..n_way-1 needs at least one support example")
    return one_hot.transpose(1, 2) @ z_support / counts[..., None]


def squared_distances(z_query: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``[B, Q, D]`` × ``[B, N, D]`` → ``[B, Q, N]`` squared Euclidean distances."""
    return ((z_query[:, :, None, :] - centres[:, None, :, :]) ** 2).sum(-1)


def protonet_logits(model: torch.nn.Module, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor, n_way: int) -> torch.Tensor:
    """Logits ``[B, N*Q, n_way]`` = minus squared distances from query embeddings to prototypes.

    ``x_support`` ``[B, N*K, C, H, W]``, ``x_query`` ``[B, N*Q, C, H, W]``. All images of all tasks go
    through ``model`` in one batch. This is the forward pass of training (:func:`protonet_loss`): in
    training mode, batch norm updates its running statistics, as any forward pass does. To evaluate,
    use :func:`protonet_predict`, which leaves the model as it was.
    """
    n_way = check_int("n_way", n_way, minimum=1)
    batch, n_support = x_support.shape[:2]
    n_query = x_query.shape[1]
    images = torch.cat([x_support.flatten(0, 1), x_query.flatten(0, 1)])
    z = model(images)
    z_support = z[: batch * n_support].reshape(batch, n_support, -1)
    z_query = z[batch * n_support :].reshape(batch, n_query, -1)
    return -squared_distances(z_query, prototypes(z_support, y_support, n_way))


def protonet_predict(model: torch.nn.Module, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
                     n_way: int) -> torch.Tensor:
    """Evaluation: :func:`protonet_logits` without gradient, leaving ``model`` exactly as it was.

    Batch-norm running statistics that a forward pass in training mode would update are restored
    afterwards (:func:`metalearn_lab.models.unchanged`). In eval mode each image is embedded on its
    own (not transductive); in training mode batch norm uses the statistics of all the images passed
    together (transductive; :func:`metalearn_lab.models.uses_batch_statistics` says which).

    >>> from metalearn_lab.models import Conv4
    >>> net = Conv4()
    >>> before = {k: v.clone() for k, v in net.state_dict().items()}
    >>> logits = protonet_predict(net, torch.rand(1, 2, 1, 28, 28), torch.tensor([[0, 1]]), torch.rand(1, 4, 1, 28, 28), 2)
    >>> tuple(logits.shape), all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    ((1, 4, 2), True)
    """
    with torch.no_grad(), unchanged(model):
        return protonet_logits(model, x_support, y_support, x_query, n_way)


def protonet_loss(model: torch.nn.Module, episode, n_way: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the query labels under :func:`protonet_logits`; returns ``(loss, accuracy [B])``."""
    x_support, y_support, x_query, y_query = episode.as_tuple() if hasattr(episode, "as_tuple") else episode
    n_way = check_int("n_way", n_way, minimum=1) if n_way is not None else int(y_support.max()) + 1
    logits = protonet_logits(model, x_support, y_support, x_query, n_way)
    loss = F.cross_entropy(logits.flatten(0, 1), y_query.flatten())
    acc = (logits.argmax(-1) == y_query).float().mean(-1)
    return loss, acc
