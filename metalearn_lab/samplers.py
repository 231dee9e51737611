"""N-way K-shot episodes, same/different pairs and fixed evaluation sets.

All samplers take the data as one tensor of classes, ``classes[c, i]`` being the ``i``-th image of
class ``c`` (shape ``[n_classes, n_per_class, channels, height, width]``), the form returned by
:func:`metalearn_lab.data.rotation_split` and :func:`metalearn_lab.data.lake_split`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch

from metalearn_lab.validation import check_float, check_int


@dataclass
class Episode:
    """A batch of N-way K-shot classification tasks.

    Shapes (``B`` tasks, ``N`` = n_way, ``K`` = k_shot, ``Q`` = n_query):
    ``x_support`` ``[B, N*K, C, H, W]``, ``y_support`` ``[B, N*K]`` (labels 0..N-1),
    ``x_query`` ``[B, N*Q, C, H, W]``, ``y_query`` ``[B, N*Q]``, ``classes`` ``[B, N]`` (which
    dataset class got label 0, 1, ...). Support items are ordered class by class.
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    classes: torch.Tensor

    def __len__(self) -> int:
        return self.x_support.shape[0]

    @property
    def n_way(self) -> int:
        return self.classes.shape[1]

    def as_tuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_support, y_support, x_query, y_query)``."""
        return self.x_support, self.y_support, self.x_query, self.y_query

    def task(self, i: int) -> "Episode":
        """The ``i``-th task as an episode of one (``0 <= i < len(self)``)."""
        i = check_int("i", i, minimum=0, maximum=len(self) - 1)
        sl = slice(i, i + 1)
        return Episode(self.x_support[sl], self.y_support[sl], self.x_query[sl], self.y_query[sl], self.classes[sl])

    def to(self, device: torch.device | str) -> "Episode":
        return Episode(*(t.to(device) for t in (self.x_support, self.y_support, self.x_query, self.y_query, self.classes)))


class EpisodeSampler:
    """Sample N-way K-shot episodes from a tensor of classes.

    Parameters
    ----------
    classes : Tensor ``[n_classes, n_per_class, C, H, W]``
    n_way : int
        Classes per task, 1 <= n_way <= n_classes.
    k_shot : int
        Labelled examples per class in the support set (>= 1).
    n_query : int
        Examples per class in the query set (>= 1); ``k_shot + n_query <= n_per_class``
        (20 for Omniglot).

    Examples
    --------
    >>> classes = torch.arange(10 * 20, dtype=torch.float32).reshape(10, 20, 1, 1, 1)
    >>> sampler = EpisodeSampler(classes, n_way=5, k_shot=1, n_query=3)
    >>> episode = sampler.sample(4, generator=torch.Generator().manual_seed(0))
    >>> tuple(episode.x_support.shape), tuple(episode.y_query.shape)
    ((4, 5, 1, 1, 1), (4, 15))
    """

    def __init__(self, classes: torch.Tensor, n_way: int, k_shot: int, n_query: int) -> None:
        if not isinstance(classes, torch.Tensor) or classes.dim() < 3:
            raise ValueError(
                "classes must be a tensor [n_classes, n_per_class, ...] (e.g. [C, 20, 1, 28, 28]), "
                f"got {type(classes).__name__} with shape {getattr(classes, 'shape', None)}"
            )
        n_classes, n_per_class = classes.shape[:2]
        n_way, k_shot, n_query = check_int("n_way", n_way), check_int("k_shot", k_shot), check_int("n_query", n_query)
        if n_way > n_classes:
            raise ValueError(f"n_way must be <= {n_classes}, the number of classes available; got {n_way}")
        if k_shot + n_query > n_per_class:
            raise ValueError(
                f"k_shot + n_query must be <= {n_per_class}, the examples per class; got k_shot = {k_shot} and "
                f"n_query = {n_query}, {k_shot + n_query} in all"
            )
        self.classes = classes
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query

    def sample_indices(self, meta_batch_size: int = 1, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the index part of episodes: ``(class_ids [B, N], example_ids [B, N, K+Q])``."""
        meta_batch_size = check_int("meta_batch_size", meta_batch_size)
        n_classes, n_per_class = self.classes.shape[:2]
        class_ids = torch.stack([torch.randperm(n_classes, generator=generator)[: self.n_way] for _ in range(meta_batch_size)])
        per_task = self.k_shot + self.n_query
        example_ids = torch.stack(
            [torch.randperm(n_per_class, generator=generator)[:per_task] for _ in range(meta_batch_size * self.n_way)]
        ).reshape(meta_batch_size, self.n_way, per_task)
        return class_ids, example_ids

    def build(self, class_ids: torch.Tensor, example_ids: torch.Tensor) -> Episode:
        """Gather the images for given indices (see :meth:`sample_indices`)."""
        batch, n_way, _ = example_ids.shape
        images = self.classes[class_ids[:, :, None], example_ids]  # [B, N, K+Q, C, H, W]
        image_shape = images.shape[3:]
        k, q = self.k_shot, self.n_query
        labels = torch.arange(n_way)[None, :, None]
        x_support = images[:, :, :k].reshape(batch, n_way * k, *image_shape)
        x_query = images[:, :, k:].reshape(batch, n_way * q, *image_shape)
        y_support = labels.expand(batch, n_way, k).reshape(batch, n_way * k)
        y_query = labels.expand(batch, n_way, q).reshape(batch, n_way * q)
        return Episode(x_support, y_support, x_query, y_query, class_ids)

    def sample(self, meta_batch_size: int = 1, *, generator: torch.Generator | None = None) -> Episode:
        """Draw ``meta_batch_size`` independent episodes. Same generator state → same episodes."""
        return self.build(*self.sample_indices(meta_batch_size, generator=generator))


class FixedEpisodes:
    """A fixed, seeded set of evaluation episodes (e.g. the 600 test tasks of the MAML protocol).

    Only indices are stored; images are gathered batch by batch, so 600 20-way tasks cost little
    memory. The same ``seed`` always gives the same tasks.

    >>> classes = torch.randn(30, 20, 1, 4, 4)
    >>> tasks = FixedEpisodes(EpisodeSampler(classes, 5, 1, 5), n_tasks=10, seed=0)
    >>> [len(e) for e in tasks.batches(4)]
    [4, 4, 2]
    """

    def __init__(self, sampler: EpisodeSampler, n_tasks: int = 600, seed: int = 0) -> None:
        n_tasks, seed = check_int("n_tasks", n_tasks), check_int("seed", seed, minimum=0)
        self.sampler, self.n_tasks, self.seed = sampler, n_tasks, seed
        generator = torch.Generator().manual_seed(seed)
        self.class_ids, self.example_ids = sampler.sample_indices(n_tasks, generator=generator)

    def __len__(self) -> int:
        return self.n_tasks

    def batches(self, batch_size: int = 32, limit: int | None = None) -> Iterator[Episode]:
        """Yield the episodes in order, ``batch_size`` tasks at a time (the first ``limit`` only)."""
        batch_size = check_int("batch_size", batch_size)
        stop = self.n_tasks if limit is None else min(check_int("limit", limit), self.n_tasks)
        for start in range(0, stop, batch_size):
            end = min(start + batch_size, stop)
            yield self.sampler.build(self.class_ids[start:end], self.example_ids[start:end])


class PairSampler:
    """Balanced same/different pairs for Siamese networks (label ``same = 1`` for a same-class pair).

    >>> pairs = PairSampler(torch.randn(10, 20, 1, 4, 4))
    >>> x1, x2, same = pairs.sample(8, generator=torch.Generator().manual_seed(0))
    >>> tuple(x1.shape), int(same.sum())
    ((8, 1, 4, 4), 4)
    """

    def __init__(self, classes: torch.Tensor) -> None:
        if not isinstance(classes, torch.Tensor) or classes.dim() < 3 or classes.shape[0] < 2 or classes.shape[1] < 2:
            raise ValueError(
                "classes must be a tensor [n_classes >= 2, n_per_class >= 2, ...], "
                f"got shape {getattr(classes, 'shape', None)}"
            )
        self.classes = classes

    def sample(self, n_pairs: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(x1 [P, ...], x2 [P, ...], same [P])``: the first half same-class, the rest different."""
        n_pairs = check_int("n_pairs", n_pairs, 2)
        n_classes, n_per_class = self.classes.shape[:2]
        n_same = n_pairs // 2
        n_diff = n_pairs - n_same
        c_same = torch.randint(n_classes, (n_same,), generator=generator)
        i_same = torch.stack([torch.randperm(n_per_class, generator=generator)[:2] for _ in range(n_same)]) if n_same else torch.zeros(0, 2, dtype=torch.long)
        c1 = torch.randint(n_classes, (n_diff,), generator=generator)
        c2 = (c1 + torch.randint(1, n_classes, (n_diff,), generator=generator)) % n_classes
        i_diff = torch.randint(n_per_class, (n_diff, 2), generator=generator)
        x1 = torch.cat([self.classes[c_same, i_same[:, 0]], self.classes[c1, i_diff[:, 0]]])
        x2 = torch.cat([self.classes[c_same, i_same[:, 1]], self.classes[c2, i_diff[:, 1]]])
        same = torch.cat([torch.ones(n_same), torch.zeros(n_diff)])
        return x1, x2, same


def random_affine(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    max_rotation: float = 10.0,
    max_shear: float = 0.3,
    scale: tuple[float, float] = (0.8, 1.2),
    max_shift: float = 2 / 105,
) -> torch.Tensor:
    """Randomly rotate, shear, scale and shift each image ``[N, C, H, W]`` (ink 1 on background 0).

    The default ranges are those Koch et al. (2015) used to distort Omniglot pairs: rotation
    within ±10°, shear within ±0.3, scale in [0.8, 1.2] per axis, shift within ±2 pixels of a
    105-pixel image (given here as a fraction of the width). Each of the four distortions is applied
    to an image with probability 1/2, as in the paper. Pixels that come from outside the image are 0.

    >>> x = torch.zeros(3, 1, 28, 28); x[:, :, 10:18, 10:18] = 1
    >>> y = random_affine(x, generator=torch.Generator().manual_seed(0))
    >>> tuple(y.shape), bool((y >= 0).all() and (y <= 1).all())
    ((3, 1, 28, 28), True)
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor [N, C, H, W], got shape {getattr(images, 'shape', None)}")
    max_rotation = check_float("max_rotation", max_rotation, low=0)
    max_shear = check_float("max_shear", max_shear, low=0)
    max_shift = check_float("max_shift", max_shift, low=0)
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise ValueError(f"scale must be a pair (low, high) with 0 < low <= high, got {scale!r}")
    scale = (check_float("scale[0]", scale[0], low=0, low_open=True), check_float("scale[1]", scale[1], low=0, low_open=True))
    if scale[0] > scale[1]:
        raise ValueError(f"scale must be a pair (low, high) with 0 < low <= high, got {scale!r}")
    n = images.shape[0]

    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(n, *shape, generator=generator)

    def maybe(values, neutral):  # each distortion applies with probability 1/2
        keep = torch.rand(n, *([1] * (values.dim() - 1)), generator=generator) < 0.5
        return torch.where(keep, values, torch.full_like(values, neutral))

    angle = maybe(uniform(-max_rotation, max_rotation), 0.0) * math.pi / 180
    shear = maybe(uniform(-max_shear, max_shear, 2), 0.0)
    zoom = maybe(uniform(scale[0], scale[1], 2), 1.0)
    shift = maybe(uniform(-2 * max_shift, 2 * max_shift, 2), 0.0)  # grid units: the width is 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shearing = torch.eye(2).repeat(n, 1, 1)
    shearing[:, 0, 1], shearing[:, 1, 0] = shear[:, 0], shear[:, 1]
    # affine_grid maps output coordinates to input coordinates, so the matrix is the inverse map
    forward = rotation @ shearing @ torch.diag_embed(zoom)
    inverse = torch.linalg.inv(forward)
    theta = torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], -1).to(images.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid.to(images.device), align_corners=False, padding_mode="zeros").clamp(0, 1)
