"""Tests for metalearn_lab.blackbox: shapes, invariances the architectures promise, the loss, errors."""

from __future__ import annotations

import math

import pytest
import torch

from metalearn_lab.blackbox import ConditionalNeuralProcess, InContextTransformer, gaussian_nll, predict


def models():
    torch.manual_seed(0)
    return [ConditionalNeuralProcess(hidden=16, min_std=0.05),
            InContextTransformer(d_model=16, n_heads=2, n_layers=2, dim_feedforward=32, min_std=0.05)]


def data(tasks=3, k=5, q=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tasks, k, 1, generator=g), torch.randn(tasks, k, 1, generator=g), torch.randn(tasks, q, 1, generator=g)


@pytest.mark.parametrize("model", models(), ids=["cnp", "transformer"])
def test_shapes_and_the_std_floor(model):
    xs, ys, xq = data()
    mean, std = model(xs, ys, xq)
    assert mean.shape == std.shape == (3, 4, 1)
    assert bool((std >= 0.05).all())


@pytest.mark.parametrize("model", models(), ids=["cnp", "transformer"])
def test_the_order_of_the_support_set_does_not_matter(model):
    xs, ys, xq = data()
    order = torch.tensor([4, 2, 0, 3, 1])
    torch.testing.assert_close(model(xs, ys, xq)[0], model(xs[:, order], ys[:, order], xq)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", models(), ids=["cnp", "transformer"])
def test_a_duplicated_support_set_gives_the_same_prediction(model):
    # mean aggregation (CNP) and softmax attention (transformer) both weigh a doubled set the same
    xs, ys, xq = data()
    doubled = model(torch.cat([xs, xs], 1), torch.cat([ys, ys], 1), xq)[0]
    torch.testing.assert_close(model(xs, ys, xq)[0], doubled, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", models(), ids=["cnp", "transformer"])
def test_queries_are_predicted_independently(model):
    xs, ys, xq = data()
    moved = xq.clone()
    moved[:, 0] += 3.0
    a, b = model(xs, ys, xq)[0], model(xs, ys, moved)[0]
    torch.testing.assert_close(a[:, 1:], b[:, 1:], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:, 0], b[:, 0])


@pytest.mark.parametrize("model", models(), ids=["cnp", "transformer"])
def test_the_support_set_changes_the_prediction(model):
    xs, ys, xq = data()
    assert not torch.allclose(model(xs, ys, xq)[0], model(xs, ys + 1.0, xq)[0])


def test_the_transformer_mask_blocks_exactly_the_query_keys():
    mask = InContextTransformer.attention_mask(3, 2)
    assert mask.shape == (5, 5) and mask.dtype == torch.bool
    assert not mask[:, :3].any() and mask[:, 3:].all()


def test_any_k_works_including_more_than_in_training():
    for model in models():
        for k in (1, 7, 40):
            xs, ys, xq = data(k=k)
            assert model(xs, ys, xq)[0].shape == (3, 4, 1)


def test_gaussian_nll_by_hand():
    mean, std, y = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0])
    want = sum(0.5 * math.log(2 * math.pi) + math.log(s) + (yy - m) ** 2 / (2 * s * s)
               for m, s, yy in zip(mean.tolist(), std.tolist(), y.tolist())) / 2
    assert float(gaussian_nll(mean, std, y)) == pytest.approx(want)
    with pytest.raises(ValueError, match="same shape"):
        gaussian_nll(mean, std, y[:1])


def test_predict_in_chunks_equals_one_call():
    model = models()[1]
    xs, ys, xq = data(tasks=5)
    with torch.no_grad():
        whole = model(xs, ys, xq)
    chunked = predict(model, xs, ys, xq, chunk=2)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m(torch.zeros(2, 0, 1), torch.zeros(2, 0, 1), torch.zeros(2, 3, 1)), "K = 0"),
        (lambda m: m(torch.zeros(2, 3, 2), torch.zeros(2, 3, 1), torch.zeros(2, 3, 2)), "feature"),
        (lambda m: m(torch.zeros(2, 3, 1), torch.zeros(2, 4, 1), torch.zeros(2, 3, 1)), "agree"),
        (lambda m: m(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 1)), r"\[tasks, points, features\]"),
    ],
)
def test_bad_inputs_are_refused(call, message):
    for model in models():
        with pytest.raises(ValueError, match=message):
            call(model)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        InContextTransformer(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="min_std"):
        ConditionalNeuralProcess(min_std=1.0)
    with pytest.raises(ValueError, match="hidden"):
        ConditionalNeuralProcess(hidden=0)
