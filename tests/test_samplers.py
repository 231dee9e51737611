"""Tests for metalearn_lab.samplers: episodes, fixed task sets, pairs, confidence intervals."""

from __future__ import annotations

import pytest
import torch

from metalearn_lab.data import rotation_split
from metalearn_lab.samplers import EpisodeSampler, FixedEpisodes, PairSampler

N_CLASSES, N_PER_CLASS = 12, 20


def coded_classes() -> torch.Tensor:
    """``classes[c, i]`` is a 1×1×2 image holding ``(c, i)``: every image tells where it came from."""
    c = torch.arange(N_CLASSES, dtype=torch.float32)[:, None].expand(N_CLASSES, N_PER_CLASS)
    i = torch.arange(N_PER_CLASS, dtype=torch.float32)[None, :].expand(N_CLASSES, N_PER_CLASS)
    return torch.stack([c, i], -1).reshape(N_CLASSES, N_PER_CLASS, 1, 1, 2)


def ids(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(class id, example id) of images ``[..., 1, 1, 2]``."""
    return x[..., 0, 0, 0].long(), x[..., 0, 0, 1].long()


def test_episode_shapes_and_labels():
    sampler = EpisodeSampler(coded_classes(), n_way=5, k_shot=2, n_query=3)
    episode = sampler.sample(4, generator=torch.Generator().manual_seed(0))
    assert episode.x_support.shape == (4, 10, 1, 1, 2) and episode.x_query.shape == (4, 15, 1, 1, 2)
    assert episode.y_support.shape == (4, 10) and episode.y_query.shape == (4, 15)
    assert episode.classes.shape == (4, 5) and len(episode) == 4 and episode.n_way == 5
    for y, per_class in ((episode.y_support, 2), (episode.y_query, 3)):
        assert y.dtype == torch.long and int(y.min()) == 0 and int(y.max()) == 4
        assert torch.equal(torch.bincount(y[0]), torch.full((5,), per_class))


def test_support_and_query_come_from_the_same_classes_without_overlap():
    sampler = EpisodeSampler(coded_classes(), n_way=5, k_shot=3, n_query=4)
    episode = sampler.sample(6, generator=torch.Generator().manual_seed(1))
    for b in range(6):
        sc, si = ids(episode.x_support[b])
        qc, qi = ids(episode.x_query[b])
        # label k means dataset class classes[b, k], in support and query alike
        assert torch.equal(sc, episode.classes[b][episode.y_support[b]])
        assert torch.equal(qc, episode.classes[b][episode.y_query[b]])
        assert len(set(episode.classes[b].tolist())) == 5
        support = set(zip(sc.tolist(), si.tolist()))
        query = set(zip(qc.tolist(), qi.tolist()))
        assert len(support) == 15 and len(query) == 20 and not support & query


def test_episodes_are_seeded():
    sampler = EpisodeSampler(coded_classes(), 5, 1, 2)
    a = sampler.sample(3, generator=torch.Generator().manual_seed(7))
    b = sampler.sample(3, generator=torch.Generator().manual_seed(7))
    c = sampler.sample(3, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(s, t) for s, t in zip(a.as_tuple(), b.as_tuple()))
    assert not torch.equal(a.x_query, c.x_query)


def test_episode_task_and_to():
    episode = EpisodeSampler(coded_classes(), 3, 1, 1).sample(4, generator=torch.Generator().manual_seed(0))
    one = episode.task(2)
    assert len(one) == 1 and torch.equal(one.x_support[0], episode.x_support[2])
    assert torch.equal(episode.to("cpu").x_query, episode.x_query)


def test_fixed_episodes():
    sampler = EpisodeSampler(coded_classes(), 5, 1, 3)
    a, b = FixedEpisodes(sampler, n_tasks=10, seed=3), FixedEpisodes(sampler, n_tasks=10, seed=3)
    other = FixedEpisodes(sampler, n_tasks=10, seed=4)
    assert len(a) == 10
    batches = list(a.batches(4))
    assert [len(e) for e in batches] == [4, 4, 2]
    for x, y in zip(batches, b.batches(4)):
        assert torch.equal(x.x_support, y.x_support) and torch.equal(x.x_query, y.x_query)
    # iterating twice gives the same tasks, and a different batch size the same tasks in order
    again = torch.cat([e.x_query for e in a.batches(3)])
    assert torch.equal(again, torch.cat([e.x_query for e in batches]))
    assert not torch.equal(torch.cat([e.x_query for e in other.batches(10)]), again)
    assert [len(e) for e in a.batches(4, limit=6)] == [4, 2]
    assert [len(e) for e in a.batches(4, limit=100)] == [4, 4, 2]
    with pytest.raises(ValueError, match="limit"):
        list(a.batches(4, limit=0))
    with pytest.raises(ValueError, match="n_tasks"):
        FixedEpisodes(sampler, n_tasks=0)


def test_pairs_are_balanced_and_labelled_right():
    classes = coded_classes()
    x1, x2, same = PairSampler(classes).sample(41, generator=torch.Generator().manual_seed(0))
    assert x1.shape == x2.shape == (41, 1, 1, 2) and same.shape == (41,)
    assert int(same.sum()) == 20
    c1, i1 = ids(x1)
    c2, i2 = ids(x2)
    is_same = same.bool()
    assert torch.equal(c1[is_same], c2[is_same])
    assert not torch.equal(i1[is_same], i2[is_same]) and bool((i1[is_same] != i2[is_same]).all())  # two different drawings
    assert bool((c1[~is_same] != c2[~is_same]).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_way=13, k_shot=1, n_query=1), "n_way"),
        (dict(n_way=5, k_shot=5, n_query=16), "k_shot \\+ n_query"),
        (dict(n_way=5, k_shot=0, n_query=1), "k_shot"),
        (dict(n_way=5, k_shot=-1, n_query=1), "k_shot"),
        (dict(n_way=5, k_shot=1, n_query=0), "n_query"),
        (dict(n_way=0, k_shot=1, n_query=1), "n_way"),
        (dict(n_way=5, k_shot=1.0, n_query=1), "k_shot"),
    ],
)
def test_episode_sampler_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EpisodeSampler(coded_classes(), **kwargs)


@pytest.mark.parametrize("bad", [torch.zeros(5, 20), [[0.0] * 20] * 5, None])
def test_bad_classes_tensor(bad):
    with pytest.raises(ValueError, match="classes"):
        EpisodeSampler(bad, 2, 1, 1)
    with pytest.raises(ValueError, match="classes"):
        PairSampler(bad)
    with pytest.raises(ValueError, match="classes"):
        PairSampler(torch.zeros(1, 20, 1, 2, 2))  # one class: no different pairs


def _image_keys(images: torch.Tensor) -> set[bytes]:
    return {img.numpy().tobytes() for img in images.flatten(0, 1)}


def test_rotation_split_episodes_never_contain_train_characters(omniglot):
    train, test = rotation_split(omniglot)
    train_images = _image_keys(train)  # all 4800 x 20 training images (characters x 4 rotations)
    assert len(train_images) > 90_000
    sampler = EpisodeSampler(test, n_way=20, k_shot=1, n_query=19)
    episode = sampler.sample(10, generator=torch.Generator().manual_seed(0))
    assert int(episode.classes.max()) < test.shape[0]
    episode_images = _image_keys(torch.cat([episode.x_support, episode.x_query], 1))
    assert len(episode_images) > 3000
    assert not episode_images & train_images
    # the check can fail: a sampler built on the training part does share its images
    leaky = EpisodeSampler(train, 5, 1, 1).sample(1, generator=torch.Generator().manual_seed(0))
    assert _image_keys(leaky.x_support) <= train_images


def test_random_affine_identity_ranges_change_nothing():
    from metalearn_lab.samplers import random_affine

    x = torch.rand(5, 1, 28, 28)
    y = random_affine(x, max_rotation=0, max_shear=0, scale=(1, 1), max_shift=0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_random_affine_is_seeded_bounded_and_applies_each_distortion_half_the_time():
    from metalearn_lab.samplers import random_affine

    x = torch.zeros(400, 1, 28, 28)
    x[:, :, 9:19, 9:19] = 1.0
    a = random_affine(x, generator=torch.Generator().manual_seed(3))
    b = random_affine(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    unchanged = (a - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    # all four distortions skipped with probability 1/16: about 25 of 400 images
    assert 8 <= int(unchanged.sum()) <= 50
    # ink stays on the canvas: a centred square keeps most of its mass after a small distortion
    assert float(a.sum((1, 2, 3)).min()) > 0.5 * 100


@pytest.mark.parametrize("kwargs, match", [
    ({"max_rotation": -1}, "max_rotation"),
    ({"scale": (1.2, 0.8)}, "scale"),
])
def test_random_affine_errors(kwargs, match):
    from metalearn_lab.samplers import random_affine

    with pytest.raises(ValueError, match=match):
        random_affine(torch.zeros(2, 1, 8, 8), **kwargs)
    with pytest.raises(ValueError, match="images must be a tensor \\[N, C, H, W\\]"):
        random_affine(torch.zeros(8, 8))
