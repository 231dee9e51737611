r"""Siamese networks and the contrastive loss.

Two inputs go through the *same* embedding network (shared weights); the Euclidean distance
:math:`d = \lVert f(x_1) - f(x_2)\rVert` between the embeddings should be small for a pair of the
same class and at least a margin :math:`m` for a pair of different classes.

Label convention: as in the source text of this course, ``same = 1`` marks a same-class pair and
``same = 0`` a different-class pair, so the loss is

.. math:: L = \text{mean over pairs of } \; y\,d^2 + (1 - y)\,\max(0,\, m - d)^2 .

Hadsell, Chopra & LeCun (2006) write the same loss with the opposite convention
(``Y = 0`` for similar pairs); only the labels swap.
"""

from __future__ import annotations

import torch

from metalearn_lab.models import unchanged
from metalearn_lab.validation import check_float

_EPS = 1e-12


def pair_distance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between rows, ``[P, D]`` × ``[P, D]`` → ``[P]``, with a finite gradient at 0.

    The square root is taken of ``max(d², 1e-12)``, so identical embeddings give ``d = 1e-6`` and a
    zero (not NaN) gradient.
    """
    return torch.sqrt(torch.clamp(((z1 - z2) ** 2).sum(-1), min=_EPS))


def contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, same: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Contrastive loss ``same·d² + (1 − same)·max(0, margin − d)²``, averaged over pairs.

    Parameters
    ----------
    z1, z2 : Tensor ``[P, D]``
        Embeddings of the two members of each pair.
    same : Tensor ``[P]``
        1 for a same-class pair, 0 for a different-class pair (the source text's convention).
    margin : float > 0

    Examples
    --------
    >>> z1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    >>> z2 = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    >>> float(contrastive_loss(z1, z2, torch.tensor([1.0, 0.0]), margin=1.0))  # (25 + 0.25) / 2
    12.625
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"z1 and z2 must both be [pairs, dim] with equal shapes, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    same = torch.as_tensor(same, dtype=z1.dtype, device=z1.device)
    if same.shape != z1.shape[:1]:
        raise ValueError(f"same must have shape [{z1.shape[0]}] (one label per pair), got {tuple(same.shape)}")
    if not bool(((same == 0) | (same == 1)).all()):
        raise ValueError("same must hold only 1 (same class) and 0 (different classes)")
    margin = check_float("margin", margin, low=0, low_open=True)
    d = pair_distance(z1, z2)
    return (same * d**2 + (1 - same) * torch.clamp(margin - d, min=0) ** 2).mean()


def siamese_loss(model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor, same: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Embed both members of each pair with the same ``model`` (shared weights) and apply the loss."""
    margin = check_float("margin", margin, low=0, low_open=True)
    z = model(torch.cat([x1, x2]))
    return contrastive_loss(z[: len(x1)], z[len(x1) :], same, margin)


def nearest_support(model: torch.nn.Module, x_support: torch.Tensor, x_query: torch.Tensor) -> torch.Tensor:
    """One-shot classification: for each query, the index of the nearest support embedding.

    ``x_support`` ``[S, C, H, W]`` (one image per class), ``x_query`` ``[Q, C, H, W]`` → ``[Q]``.
    An evaluation: no gradient, and ``model`` is left as it was (batch-norm running statistics that a
    forward pass in training mode would update are restored; evaluate in eval mode so that each query
    is embedded on its own rather than with the batch's statistics).
    """
    with torch.no_grad(), unchanged(model):
        z = model(torch.cat([x_support, x_query]))
    z_support, z_query = z[: len(x_support)], z[len(x_support) :]
    return torch.cdist(z_query, z_support).argmin(-1)


def verification_accuracy(model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor, same: torch.Tensor, threshold: float) -> float:
    """Share of pairs classified correctly by "same if distance < threshold" (``threshold`` >= 0)."""
    threshold = check_float("threshold", threshold, low=0)
    with torch.no_grad(), unchanged(model):  # an evaluation: the model is left as it was
        z = model(torch.cat([x1, x2]))
    d = pair_distance(z[: len(x1)], z[len(x1) :])
    return float(((d < threshold).float() == same).float().mean())


def best_threshold(d: torch.Tensor, same: torch.Tensor) -> float:
    """The threshold ``t`` for which "same if ``d < t``" is right on the most pairs.

    The accuracy only changes when ``t`` passes one of the distances, so the candidates are the
    midpoints between consecutive sorted distances, plus one below the smallest and one above the
    largest; the first best candidate is returned. Choose it on training pairs, then measure the
    accuracy on held-out ones.

    Parameters
    ----------
    d : Tensor ``[P]``
        Distances of the pairs.
    same : Tensor ``[P]``
        1 for a same-class pair, 0 otherwise.

    Examples
    --------
    >>> round(best_threshold(torch.tensor([0.1, 0.2, 0.9, 1.1]), torch.tensor([1, 1, 0, 0])), 6)
    0.55
    """
    d = torch.as_tensor(d, dtype=torch.float64).flatten()
    same = torch.as_tensor(same, dtype=torch.float64).flatten()
    if d.numel() == 0 or d.shape != same.shape:
        raise ValueError(f"d and same must be non-empty with one label per distance, got shapes {tuple(d.shape)} and {tuple(same.shape)}")
    values = torch.unique(d)  # sorted
    candidates = torch.cat([values[:1] - 1.0, (values[1:] + values[:-1]) / 2, values[-1:] + 1.0])
    right = ((d[None, :] < candidates[:, None]).double() == same[None, :]).double().mean(1)
    return float(candidates[int(right.argmax())])
