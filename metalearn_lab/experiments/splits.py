"""The data every experiment draws from, loaded once per process, and the lock on the test tasks.

Training reads training classes; progress, checkpoints and choices read validation tasks; the
test tasks are read once, by the final evaluation. :func:`test_tasks_locked` enforces the last
rule: while a run trains, asking for test tasks raises :class:`TestSetLocked` (honest evaluation,
lesson ``tasks_and_episodes``).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

import torch

from metalearn_lab.data.sinusoid import SinusoidBatch, SinusoidTasks
from metalearn_lab.samplers import EpisodeSampler, FixedEpisodes

_DATA_MEMO: dict[Any, Any] = {}
_LOCKED: contextvars.ContextVar[str | None] = contextvars.ContextVar("metalearn_lab_test_locked", default=None)


class TestSetLocked(RuntimeError):
    """Test tasks were asked for while a run was training (only the final evaluation may read them)."""

    __test__ = False  # not a pytest test class


@contextlib.contextmanager
def test_tasks_locked(reason: str) -> Iterator[None]:
    """Within this block, every request for test tasks raises :class:`TestSetLocked` naming ``reason``."""
    token = _LOCKED.set(reason)
    try:
        yield
    finally:
        _LOCKED.reset(token)


test_tasks_locked.__test__ = False  # type: ignore[attr-defined]


def _check_unlocked(what: str) -> None:
    reason = _LOCKED.get()
    if reason is not None:
        raise TestSetLocked(f"{what} were requested while {reason}: training may read validation tasks only; "
                            "test tasks are read once, by the final evaluation")


def omniglot_splits(n_validation: int = 0) -> tuple[torch.Tensor, ...]:
    """The 1200/423-character split with rotations as classes (see :func:`metalearn_lab.data.rotation_split`).

    ``n_validation = 0``: ``(train [4800, 20, 1, 28, 28], test [1692, ...])``, the split the first
    shipped runs trained on. ``n_validation > 0``: ``(train, validation, test)``, the last
    ``n_validation`` of the 1200 training characters held out for validation, as Finn et al.'s
    code does with 100 (cbfinn/maml, data_generator.py); the test characters are the same 423.
    """
    key = ("rotation", n_validation)
    if key not in _DATA_MEMO:
        from metalearn_lab.data.omniglot import load_omniglot, rotation_split_indices
        from metalearn_lab.validation import check_int

        check_int("n_validation", n_validation, minimum=0, maximum=1199)
        data = load_omniglot()
        train_idx, test_idx = rotation_split_indices(len(data))
        images = data.images.unsqueeze(2)

        def rotations(idx):
            x = images[idx]
            return torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])

        if n_validation:
            keep, held = train_idx[: len(train_idx) - n_validation], train_idx[len(train_idx) - n_validation:]
            _DATA_MEMO[key] = (rotations(keep), rotations(held), rotations(test_idx))
        else:
            _DATA_MEMO[key] = (rotations(train_idx), rotations(test_idx))
    return _DATA_MEMO[key]


def background_classes() -> torch.Tensor:
    """The 964 characters of the 30 background alphabets, ``[964, 20, 1, 28, 28]``."""
    if "background" not in _DATA_MEMO:
        from metalearn_lab.data.omniglot import lake_split, load_omniglot

        _DATA_MEMO["background"] = lake_split(load_omniglot())[0]
    return _DATA_MEMO["background"]


def omniglot_test_tasks(config: Any, n_tasks: int | None = None, *, n_query: int | None = None) -> FixedEpisodes:
    """The fixed, seeded test tasks of an Omniglot experiment (``config.eval_tasks``, 600 by default).

    ``n_query`` overrides the queries per class (``config.eval_n_query``); Finn et al.'s code tests
    with one query per class.
    """
    _check_unlocked("Omniglot test tasks")
    test = omniglot_splits()[-1]
    sampler = EpisodeSampler(test, config.n_way, config.k_shot, n_query or config.eval_n_query)
    return FixedEpisodes(sampler, n_tasks or config.eval_tasks, seed=config.eval_seed)


def omniglot_validation_tasks(config: Any, n_tasks: int | None = None) -> FixedEpisodes:
    """Fixed validation tasks from the held-out training characters (``config.validation_characters``)."""
    n_validation = getattr(config, "validation_characters", 0)
    if not n_validation:
        raise ValueError(f"{config.name} has no validation characters (validation_characters=0): it follows the "
                         "old protocol, which monitored test tasks; set validation_characters (e.g. 100) to hold some out")
    _, validation, _ = omniglot_splits(n_validation)
    sampler = EpisodeSampler(validation, config.n_way, config.k_shot, config.eval_n_query)
    return FixedEpisodes(sampler, n_tasks or config.eval_tasks_during_training, seed=config.eval_seed + 1)


def sinusoid_test_tasks(config: Any, n_tasks: int | None = None) -> SinusoidBatch:
    """Fixed test tasks for sinusoid experiments: ``eval_k_shot`` support and ``eval_n_query`` query points."""
    _check_unlocked("sinusoid test tasks")
    generator = torch.Generator().manual_seed(config.eval_seed)
    return SinusoidTasks().sample(n_tasks or config.eval_tasks, config.eval_k_shot, config.eval_n_query, generator=generator)


def sinusoid_validation_tasks(config: Any, n_tasks: int | None = None) -> SinusoidBatch:
    """Validation tasks: the same distribution as the test tasks, drawn with another seed."""
    generator = torch.Generator().manual_seed(config.eval_seed + 1)
    return SinusoidTasks().sample(n_tasks or config.eval_tasks_during_training, config.eval_k_shot,
                                  config.eval_n_query, generator=generator)
