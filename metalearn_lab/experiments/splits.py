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
from metalearn_lab.validation import check_int

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


def _optional_count(name: str, value: Any) -> int | None:
    """None (the config's default), or an integer >= 1."""
    return None if value is None else check_int(name, value, minimum=1)


def omniglot_splits(n_validation: int = 0) -> tuple[torch.Tensor, ...]:
    """The 1200/423-character split with rotations as classes (see :func:`metalearn_lab.data.rotation_split`).

    ``n_validation = 0``: ``(train [4800, 20, 1, 28, 28], test [1692, ...])``, the split the first
    shipped runs trained on. ``n_validation > 0``: ``(train, validation, test)``, the last
    ``n_validation`` of the 1200 training characters held out for validation, as Finn et al.'s
    code does with 100 (cbfinn/maml, data_generator.py); the test characters are the same 423.
    """
    n_validation = check_int("n_validation", n_validation, minimum=0, maximum=1199)
    key = ("rotation", n_validation)
    if key not in _DATA_MEMO:
        from metalearn_lab.data.omniglot import load_omniglot, rotation_split_indices

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


def background_classes(n_validation_alphabets: int = 0) -> torch.Tensor:
    """The characters of the background alphabets that training may use, ``[n, 20, 1, 28, 28]``.

    All 964 characters of the 30 background alphabets when ``n_validation_alphabets = 0`` (the first
    shipped Siamese run); otherwise those of the alphabets that :func:`lake_validation_runs` does not
    hold out.
    """
    n_validation_alphabets = check_int("n_validation_alphabets", n_validation_alphabets, minimum=0, maximum=10)
    key = ("background", n_validation_alphabets)
    if key not in _DATA_MEMO:
        from metalearn_lab.data.omniglot import load_omniglot

        data = load_omniglot()
        held = set(validation_alphabets(n_validation_alphabets))
        keep = torch.tensor([bool(b) and a not in held for a, b in zip(data.alphabets, data.background.tolist())])
        _DATA_MEMO[key] = data.images.unsqueeze(2)[keep]
    return _DATA_MEMO[key]


def validation_alphabets(n: int, seed: int = 0) -> list[str]:
    """``n`` background alphabets (with at least 20 characters) held out for validating one-shot models.

    Chosen by a seeded permutation, so every run holds out the same ones. Lake's test runs come from
    the evaluation alphabets, so validation never touches them (Koch et al. 2015 validated on 10
    evaluation alphabets instead, which Lake's runs also use).
    """
    from metalearn_lab.data.omniglot import load_omniglot

    n, seed = check_int("n", n, minimum=0, maximum=10), check_int("seed", seed, minimum=0)
    if n == 0:
        return []
    data = load_omniglot()
    counts: dict[str, int] = {}
    for alphabet, background in zip(data.alphabets, data.background.tolist()):
        if background:
            counts[alphabet] = counts.get(alphabet, 0) + 1
    eligible = sorted(a for a, c in counts.items() if c >= 20)
    order = torch.randperm(len(eligible), generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(eligible[i] for i in order[:n])


def lake_validation_runs(n_validation_alphabets: int, runs_per_alphabet: int = 4, seed: int = 0):
    """Lake-style 20-way within-alphabet one-shot runs from the held-out background alphabets."""
    from metalearn_lab.data.lake_runs import sample_within_alphabet_runs
    from metalearn_lab.data.omniglot import load_omniglot

    n_validation_alphabets = check_int("n_validation_alphabets", n_validation_alphabets, minimum=0, maximum=10)
    runs_per_alphabet = check_int("runs_per_alphabet", runs_per_alphabet, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    key = ("lake-validation", n_validation_alphabets, runs_per_alphabet, seed)
    if key not in _DATA_MEMO:
        data = load_omniglot()
        names = validation_alphabets(n_validation_alphabets)
        images = data.images.unsqueeze(2)
        per_alphabet = [images[torch.tensor([a == name for a in data.alphabets])] for name in names]
        _DATA_MEMO[key] = sample_within_alphabet_runs(per_alphabet, runs_per_alphabet, seed=seed, names=names)
    return _DATA_MEMO[key]


def omniglot_test_tasks(config: Any, n_tasks: int | None = None, *, n_query: int | None = None) -> FixedEpisodes:
    """The fixed, seeded test tasks of an Omniglot experiment (``config.eval_tasks``, 600 by default).

    ``n_query`` overrides the queries per class (``config.eval_n_query``); Finn et al.'s code tests
    with one query per class.
    """
    n_tasks, n_query = _optional_count("n_tasks", n_tasks), _optional_count("n_query", n_query)
    _check_unlocked("Omniglot test tasks")
    test = omniglot_splits()[-1]
    sampler = EpisodeSampler(test, config.n_way, config.k_shot, n_query or config.eval_n_query)
    return FixedEpisodes(sampler, n_tasks or config.eval_tasks, seed=config.eval_seed)


def omniglot_validation_tasks(config: Any, n_tasks: int | None = None) -> FixedEpisodes:
    """Fixed validation tasks from the held-out training characters (``config.validation_characters``)."""
    n_tasks = _optional_count("n_tasks", n_tasks)
    n_validation = getattr(config, "validation_characters", 0)
    if not n_validation:
        raise ValueError(f"{config.name} has no validation characters (validation_characters=0): it follows the "
                         "old protocol, which monitored test tasks; set validation_characters (e.g. 100) to hold some out")
    _, validation, _ = omniglot_splits(n_validation)
    sampler = EpisodeSampler(validation, config.n_way, config.k_shot, config.eval_n_query)
    return FixedEpisodes(sampler, n_tasks or config.eval_tasks_during_training, seed=config.eval_seed + 1)


def sinusoid_test_tasks(config: Any, n_tasks: int | None = None) -> SinusoidBatch:
    """Fixed test tasks for sinusoid experiments: ``eval_k_shot`` support and ``eval_n_query`` query points."""
    n_tasks = _optional_count("n_tasks", n_tasks)
    _check_unlocked("sinusoid test tasks")
    generator = torch.Generator().manual_seed(config.eval_seed)
    return _sinusoid_distribution(config).sample(n_tasks or config.eval_tasks, config.eval_k_shot, config.eval_n_query,
                                                 generator=generator)


def sinusoid_validation_tasks(config: Any, n_tasks: int | None = None) -> SinusoidBatch:
    """Validation tasks: the same distribution as the test tasks (the config's), drawn with another seed."""
    n_tasks = _optional_count("n_tasks", n_tasks)
    generator = torch.Generator().manual_seed(config.eval_seed + 1)
    return _sinusoid_distribution(config).sample(n_tasks or config.eval_tasks_during_training, config.eval_k_shot,
                                                 config.eval_n_query, generator=generator)


def _sinusoid_distribution(config: Any) -> SinusoidTasks:
    """The config's task distribution (``amplitude``, ``phase``), Finn et al.'s when it has none."""
    default = SinusoidTasks()
    return SinusoidTasks(amplitude=tuple(getattr(config, "amplitude", default.amplitude)),
                         phase=tuple(getattr(config, "phase", default.phase)))
