"""Tests for metalearn_lab.siamese: the contrastive loss by hand, its gradient at d=0, errors, nearest support."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metalearn_lab.siamese import contrastive_loss, nearest_support, pair_distance, siamese_loss, verification_accuracy


def test_contrastive_loss_by_hand():
    z1 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    z2 = torch.tensor([[3.0, 4.0], [1.0, 2.0], [0.3, 0.4], [0.0, 0.0]])
    # distances 5, 1, 0.5, 2
    same = torch.tensor([1.0, 1.0, 0.0, 0.0])
    margin = 1.0
    expected = (5.0**2 + 1.0**2 + (1.0 - 0.5) ** 2 + 0.0) / 4  # the far different pair (d=2 > m) costs nothing
    assert float(contrastive_loss(z1, z2, same, margin)) == pytest.approx(expected)
    # flip the labels: same pairs become different ones and vice versa
    expected_flipped = (0.0 + 0.0 + 0.5**2 + 2.0**2) / 4
    assert float(contrastive_loss(z1, z2, 1 - same, margin)) == pytest.approx(expected_flipped)
    # a larger margin makes the d=2 different pair cost (3 - 2)^2
    expected_margin3 = (25 + 1 + (3 - 0.5) ** 2 + (3 - 2) ** 2) / 4
    assert float(contrastive_loss(z1, z2, same, margin=3.0)) == pytest.approx(expected_margin3)
    # integer / bool labels are accepted
    assert float(contrastive_loss(z1, z2, torch.tensor([1, 1, 0, 0]), margin)) == pytest.approx(expected)


def test_gradient_is_finite_for_identical_embeddings():
    z1 = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], requires_grad=True)
    z2 = z1.detach().clone().requires_grad_()
    for same in (torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])):
        loss = contrastive_loss(z1, z2, same)
        g1, g2 = torch.autograd.grad(loss, [z1, z2])
        assert torch.isfinite(loss) and torch.isfinite(g1).all() and torch.isfinite(g2).all()
    assert float(contrastive_loss(z1, z2, torch.tensor([0.0, 0.0])).detach()) == pytest.approx(1.0, abs=1e-5)
    assert float(pair_distance(z1, z2)[0].detach()) == pytest.approx(1e-6)


@pytest.mark.parametrize("z1, z2, same, margin, match", [
    (torch.zeros(3, 2), torch.zeros(3, 3), torch.ones(3), 1.0, "z1 and z2"),
    (torch.zeros(3), torch.zeros(3), torch.ones(3), 1.0, "z1 and z2"),
    (torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(2), 1.0, "same must have shape"),
    (torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([1.0, 0.5, 0.0]), 1.0, "same must hold only 1"),
    (torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([1.0, -1.0, 0.0]), 1.0, "same must hold only 1"),
    (torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3), 0.0, "margin"),
    (torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3), -1.0, "margin"),
    (torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(3), float("nan"), "margin"),
])
def test_contrastive_loss_errors(z1, z2, same, margin, match):
    with pytest.raises(ValueError, match=match):
        contrastive_loss(z1, z2, same, margin)


def test_siamese_loss_shares_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x1, x2 = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    same = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    expected = contrastive_loss(model(x1), model(x2), same, 2.0)
    torch.testing.assert_close(siamese_loss(model, x1, x2, same, margin=2.0), expected)


def test_nearest_support_with_identity_embedding():
    support = torch.zeros(4, 1, 3, 3)
    for c in range(4):
        support[c, 0].view(-1)[2 * c] = 1.0  # class c lights pixel 2c
    g = torch.Generator().manual_seed(0)
    order = torch.tensor([2, 0, 3, 1, 1, 2])
    queries = support[order] + 0.1 * torch.rand(6, 1, 3, 3, generator=g)
    picked = nearest_support(nn.Flatten(), support, queries)
    assert torch.equal(picked, order)
    assert verification_accuracy(nn.Flatten(), support[order], queries, torch.ones(6), threshold=1.0) == 1.0
    assert verification_accuracy(nn.Flatten(), support[order], queries, torch.zeros(6), threshold=1.0) == 0.0
