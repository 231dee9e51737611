"""Lesson 02's exercise checkers: right answers pass, typical wrong answers fail with a useful message."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from metalearn_lab.lessons import tasks_and_episodes as lesson
from metalearn_lab.metrics import mean_confidence_interval
from metalearn_lab.samplers import EpisodeSampler


def right_sampler(classes, n_way, k_shot, n_query, generator):
    chosen = torch.randperm(classes.shape[0], generator=generator)[:n_way]
    support, query = [], []
    for c in chosen:
        order = torch.randperm(classes.shape[1], generator=generator)[: k_shot + n_query]
        support.append(classes[c, order[:k_shot]])
        query.append(classes[c, order[k_shot:]])
    labels = torch.arange(n_way)
    return (torch.cat(support), labels.repeat_interleave(k_shot), torch.cat(query), labels.repeat_interleave(n_query))


def library_sampler(classes, n_way, k_shot, n_query, generator):
    episode = EpisodeSampler(classes, n_way, k_shot, n_query).sample(1, generator=generator)
    return tuple(t[0] for t in episode.as_tuple())


@pytest.mark.parametrize("sampler", [right_sampler, library_sampler])
def test_sampler_right(sampler, capsys):
    lesson.check_episode_sampler(sampler)
    assert "passes every check" in capsys.readouterr().out


def test_sampler_placeholder():
    with pytest.raises(AssertionError, match="returned None"):
        lesson.check_episode_sampler(lambda *args: None)


def test_sampler_dataset_class_ids_as_labels():
    def wrong(classes, n_way, k_shot, n_query, generator):
        xs, ys, xq, yq = right_sampler(classes, n_way, k_shot, n_query, generator)
        class_ids = xs[:, 0, 0, 0].long()  # the dataset's class numbers instead of 0..N-1
        return xs, class_ids, xq, xq[:, 0, 0, 0].long()

    with pytest.raises(AssertionError, match="labels must be 0"):
        lesson.check_episode_sampler(wrong)


def test_sampler_overlap_between_support_and_query():
    def wrong(classes, n_way, k_shot, n_query, generator):
        chosen = torch.randperm(classes.shape[0], generator=generator)[:n_way]
        support, query = [], []
        for c in chosen:  # support and query drawn separately: the same image can land in both
            support.append(classes[c, torch.randperm(classes.shape[1], generator=generator)[:k_shot]])
            query.append(classes[c, torch.randperm(classes.shape[1], generator=generator)[:n_query]])
        labels = torch.arange(n_way)
        return torch.cat(support), labels.repeat_interleave(k_shot), torch.cat(query), labels.repeat_interleave(n_query)

    with pytest.raises(AssertionError, match="appears twice"):
        lesson.check_episode_sampler(wrong)


def test_sampler_global_random_state():
    def wrong(classes, n_way, k_shot, n_query, generator):
        return right_sampler(classes, n_way, k_shot, n_query, None)

    with pytest.raises(AssertionError, match="same seed gave two different episodes"):
        lesson.check_episode_sampler(wrong)


def test_sampler_always_first_classes():
    def wrong(classes, n_way, k_shot, n_query, generator):
        return right_sampler(classes[:n_way], n_way, k_shot, n_query, generator)

    with pytest.raises(AssertionError, match="choose the classes at random"):
        lesson.check_episode_sampler(wrong)


def test_sampler_batch_dimension_kept():
    with pytest.raises(AssertionError, match="no batch dimension"):
        lesson.check_episode_sampler(
            lambda c, n, k, q, g: EpisodeSampler(c, n, k, q).sample(1, generator=g).as_tuple()
        )


def test_sampler_mixed_up_labels():
    def wrong(classes, n_way, k_shot, n_query, generator):
        xs, ys, xq, yq = right_sampler(classes, n_way, k_shot, n_query, generator)
        return xs, ys, xq, yq.flip(0)  # query labels no longer match their images

    with pytest.raises(AssertionError, match="two different classes"):
        lesson.check_episode_sampler(wrong)


def test_ci95_right(capsys):
    lesson.check_ci95(mean_confidence_interval)
    assert "Right" in capsys.readouterr().out


def _t(values):
    return scipy.stats.t.ppf(0.975, len(values) - 1)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda v: (float(v.mean()), 1.96 * float(v.std()) / math.sqrt(len(v))), "normal approximation"),
        (lambda v: (float(v.mean()), _t(v) * float(v.std(unbiased=False)) / math.sqrt(len(v))), "population standard deviation"),
        (lambda v: (float(v.mean()), _t(v) * float(v.std()) / len(v)), "divides by √n"),
        (lambda v: (float(v.mean()), float(v.std()) / math.sqrt(len(v))), "without the factor t"),
        (lambda v: (float(v.mean()), _t(v) * float(v.std())), "spread of single tasks"),
        (lambda v: None, "returned None"),
    ],
)
def test_ci95_wrong(wrong, message):
    with pytest.raises(AssertionError, match=message):
        lesson.check_ci95(wrong)
