"""Lesson 06's exercise checkers: the right answer passes, typical wrong answers fail with a helpful message."""

from __future__ import annotations

import math
import re

import pytest
import torch

from metalearn_lab import checks
from metalearn_lab.samplers import mean_confidence_interval


# ---------------------------------------------------------------- ProtoNet by hand

def make_protonet(*, proto="mean", logits="neg_sq"):
    def protonet_by_hand(z_support, y_support, z_query, n_way):
        if proto == "mean":
            p = torch.stack([z_support[y_support == c].mean(0) for c in range(n_way)])
        elif proto == "first":
            p = torch.stack([z_support[y_support == c][0] for c in range(n_way)])
        elif proto == "appearance":
            seen = list(dict.fromkeys(y_support.tolist()))
            p = torch.stack([z_support[y_support == c].mean(0) for c in seen])
        elif proto == "global":
            p = z_support.mean(0).expand(n_way, -1)
        d2 = ((z_query[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        out = {"neg_sq": -d2, "pos_sq": d2, "neg_dist": -d2.sqrt(),
               "log_softmax": torch.log_softmax(-d2, -1), "scaled": -2 * d2}[logits]
        return p, out

    return protonet_by_hand


def test_right_protonet_passes(capsys):
    checks.check_protonet_by_hand(make_protonet())
    assert "matches metalearn_lab.protonet" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (lambda *a: None, "returned None"),
    (lambda zs, ys, zq, n: zs, "pair (prototypes, logits)"),
    (make_protonet(proto="first"), "MEAN of the class"),
    (make_protonet(proto="appearance"), "order the labels first appear"),
    (make_protonet(proto="global"), "mean of the whole support set"),
    (make_protonet(logits="pos_sq"), "+squared distances"),
    (make_protonet(logits="neg_dist"), "not its square"),
    (make_protonet(logits="log_softmax"), "log-softmax"),
    (make_protonet(logits="scaled"), "logits differ from -squared distance"),
    (lambda zs, ys, zq, n: make_protonet()(zs, ys, zq, n)[::-1], "prototypes should have shape"),
])
def test_wrong_protonet_fails(wrong, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        checks.check_protonet_by_hand(wrong)


# ---------------------------------------------------------------- evaluation loop

def make_evaluate(kind="right"):
    def evaluate_tasks(predict, tasks, batch_size):
        per_task, per_batch, pooled = [], [], []
        for i, episode in enumerate(tasks.batches(batch_size)):
            right = (predict(episode).argmax(-1) == episode.y_query).float()
            if kind == "first_batch" and i > 0:
                break
            per_task.extend(right.mean(-1).tolist())
            per_batch.append(float(right.mean()))
            pooled.extend(right.flatten().tolist())
        v = torch.tensor(per_task, dtype=torch.float64)
        n = len(v)
        if kind == "right":
            return mean_confidence_interval(v)
        if kind == "first_batch":
            return mean_confidence_interval(v)
        if kind == "percent":
            m, h = mean_confidence_interval(v)
            return 100 * m, 100 * h
        if kind == "batch_means":
            return sum(per_batch) / len(per_batch), mean_confidence_interval(v)[1]
        if kind == "stderr":
            return float(v.mean()), float(v.std() / math.sqrt(n))
        if kind == "no_sqrt":
            return float(v.mean()), float(1.96 * v.std())
        if kind == "population_std":
            return float(v.mean()), float(1.96 * v.std(unbiased=False) / math.sqrt(n))
        if kind == "pooled":
            p = torch.tensor(pooled, dtype=torch.float64)
            return float(p.mean()), float(1.96 * p.std() / math.sqrt(len(p)))
        if kind == "low_high":
            m, h = mean_confidence_interval(v)
            return m, (m - h, m + h)
        raise ValueError(kind)

    return evaluate_tasks


def test_right_evaluation_loop_passes(capsys):
    checks.check_evaluation_loop(make_evaluate())
    assert "matches mean_confidence_interval" in capsys.readouterr().out


@pytest.mark.parametrize(("kind", "message"), [
    ("percent", "percentage"),
    ("batch_means", "averages the batch means"),
    ("first_batch", "only the first batch"),
    ("stderr", "1.96 times"),
    ("no_sqrt", "divide by sqrt"),
    ("population_std", "sample standard deviation"),
    ("pooled", "every query as independent"),
    ("low_high", "half-width"),
])
def test_wrong_evaluation_loop_fails(kind, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        checks.check_evaluation_loop(make_evaluate(kind))


def test_placeholder_evaluation_loop_fails():
    with pytest.raises(AssertionError, match="returned None"):
        checks.check_evaluation_loop(lambda predict, tasks, batch_size: None)


def test_fake_tasks_have_varied_accuracy():
    # the checker can only tell per-batch from per-task averaging if task accuracies differ
    tasks, predict = checks._l06_fake_tasks()
    per_task, per_batch, _ = checks._l06_reference_values(tasks, predict, 5)
    assert 0.3 < float(per_task.mean()) < 0.95
    assert float(per_task.std()) > 0.1
    assert not math.isclose(sum(per_batch) / len(per_batch), float(per_task.mean()), rel_tol=1e-6)
