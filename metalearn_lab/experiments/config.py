"""What defines a run: the fields every experiment has, and how a recipe adds its own.

Each algorithm's recipe (``metalearn_lab/experiments/recipes/<algorithm>.py``) subclasses
:class:`ExperimentConfig` with the fields it needs (``n_way``, ``inner_lr``, ``margin``, ...), and
sets the default of ``algorithm`` to its registry name. :meth:`ExperimentConfig.from_dict` reads a
checkpoint's config back into the right subclass. Checkpoints written before the registry existed
stored one flat dict with every field of every algorithm; the fields a recipe does not use are
dropped when they are among those old names (:data:`FLAT_FIELDS`), and a field the recipe added
later takes its ``legacy_defaults`` value (what older runs did) rather than today's default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from metalearn_lab.validation import check_float, check_int


@dataclass(frozen=True)
class Int:
    """The valid range of an integer config field: ``minimum <= value <= maximum`` (None: unbounded)."""

    minimum: int | None = 0
    maximum: int | None = None

    def check(self, name: str, value: Any) -> int:
        return check_int(name, value, minimum=self.minimum, maximum=self.maximum)


@dataclass(frozen=True)
class Float:
    """The valid range of a float config field (bounds inclusive unless ``low_open``/``high_open``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, name: str, value: Any) -> float:
        return check_float(name, value, low=self.low, high=self.high, low_open=self.low_open, high_open=self.high_open)


@dataclass(frozen=True)
class Ints:
    """A non-empty tuple of integers, each in the range of ``each``."""

    each: Int = Int(0)

    def check(self, name: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not len(value):
            raise ValueError(f"{name} must be a non-empty sequence of integers, got {value!r}")
        return tuple(self.each.check(f"{name}[{i}]", v) for i, v in enumerate(value))


@dataclass(frozen=True)
class Floats:
    """A tuple of floats, each in the range of ``each``; empty only when ``allow_empty``."""

    each: Float = Float()
    allow_empty: bool = False

    def check(self, name: str, value: Any) -> tuple[float, ...]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not (len(value) or self.allow_empty):
            what = "a sequence" if self.allow_empty else "a non-empty sequence"
            raise ValueError(f"{name} must be {what} of finite numbers, got {value!r}")
        return tuple(self.each.check(f"{name}[{i}]", v) for i, v in enumerate(value))


@dataclass(frozen=True)
class Interval:
    """A pair ``(low, high)`` of finite numbers with ``low <= high``, each in the range of ``each``."""

    each: Float = Float()

    def check(self, name: str, value: Any) -> tuple[float, float]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
            raise ValueError(f"{name} must be a pair (low, high) of finite numbers with low <= high, got {value!r}")
        low, high = self.each.check(f"{name}[0]", value[0]), self.each.check(f"{name}[1]", value[1])
        if low > high:
            raise ValueError(f"{name} must be a pair (low, high) of finite numbers with low <= high, got {value!r}")
        return low, high


Range = Int | Float | Ints | Floats | Interval


def field_ranges(config_class: type) -> dict[str, Range]:
    """The valid range of every numeric field of a config class (its own ``ranges`` and its bases')."""
    merged: dict[str, Range] = {}
    for klass in reversed(config_class.__mro__):
        merged.update(vars(klass).get("ranges", {}))
    return merged

#: The fields of the flat config that checkpoints stored before recipes had their own configs.
FLAT_FIELDS = frozenset({
    "name", "algorithm", "iterations", "seed", "meta_batch_size", "outer_lr", "lr_decay_every", "n_way", "k_shot",
    "n_query", "train_way", "inner_steps", "inner_lr", "first_order", "eval_inner_steps", "eval_tasks",
    "eval_n_query", "eval_seed", "eval_every", "eval_tasks_during_training", "checkpoint_every", "eval_k_shot",
    "eval_steps", "margin", "embedding_dim", "augment", "note",
})


@dataclass(frozen=True)
class ExperimentConfig:
    """The fields every experiment has. A recipe's config class adds its own.

    Attributes
    ----------
    name : str
        The experiment's name (``metalearn-lab train NAME``) and its run folder.
    algorithm : str
        The recipe that trains it (a key of :data:`metalearn_lab.experiments.RECIPES`).
    iterations : int
        Meta-training steps (outer updates).
    seed : int
        Seeds the initial weights and every training task: step ``i`` of run ``seed`` always
        sees the same tasks.
    meta_batch_size : int
        Tasks (or pairs, for the Siamese net) per outer update.
    outer_lr : float
        The outer (meta) learning rate.
    lr_decay_every : int
        Halve the outer learning rate every so many steps (0: never).
    eval_tasks : int
        Test tasks of the final evaluation (600 in Finn et al. 2017's code).
    eval_seed : int
        Seed of the fixed test tasks; validation tasks use another seed or other classes.
    eval_every : int
        Evaluate on validation tasks every so many steps (0: never).
    eval_tasks_during_training : int
        Validation tasks per periodic evaluation.
    checkpoint_every : int
        Write a resumable checkpoint every so many steps (0: only at the end).
    note : str
        How this run differs from the paper's protocol, in words.
    select_on_validation : bool
        Keep the weights with the best validation metric (of the evaluations every ``eval_every``
        steps, and of the last weights) instead of the last ones; the test tasks see only the
        chosen weights, and the results record the step they come from.
    """

    name: str
    algorithm: str = ""
    iterations: int = 1000
    seed: int = 0
    meta_batch_size: int = 32
    outer_lr: float = 1e-3
    lr_decay_every: int = 0
    eval_tasks: int = 600
    eval_seed: int = 1234
    eval_every: int = 0
    eval_tasks_during_training: int = 100
    checkpoint_every: int = 200
    note: str = ""
    select_on_validation: bool = False

    #: The valid range of each numeric field; a recipe's config class adds its own fields' ranges
    #: (checked on construction: NumPy and 0-d tensor numbers become Python numbers, bad values raise ``ValueError``).
    ranges: ClassVar[dict[str, Range]] = {
        "iterations": Int(0), "seed": Int(0), "meta_batch_size": Int(1), "outer_lr": Float(0, low_open=True),
        "lr_decay_every": Int(0), "eval_tasks": Int(2), "eval_seed": Int(0), "eval_every": Int(0),
        "eval_tasks_during_training": Int(2), "checkpoint_every": Int(0),
    }
    #: Values for fields a checkpoint lacks because it predates them (what older runs did).
    legacy_defaults: ClassVar[dict[str, Any]] = {}
    #: Fields that may change between a paused run and its continuation without changing what the
    #: run is (how long it runs and how often it reports).
    schedule_fields: ClassVar[frozenset[str]] = frozenset({"iterations", "eval_every", "checkpoint_every", "note"})
    #: Why a field is part of what the run is, where that is not obvious (said when a continuation is refused).
    identity_reasons: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        ranges = field_ranges(type(self))
        for field in dataclasses.fields(self):
            if field.name in ranges:
                object.__setattr__(self, field.name, ranges[field.name].check(field.name, getattr(self, field.name)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExperimentConfig":
        """A config from a checkpoint's (or a file's) dict, as an instance of its recipe's config class."""
        from metalearn_lab.experiments.registry import recipe_for

        if "algorithm" not in data:
            raise ValueError(f"a config needs an 'algorithm' field; got the fields {sorted(data)}")
        recipe = recipe_for(data["algorithm"])
        config_class = recipe.config_class
        fields = {f.name: f for f in dataclasses.fields(config_class)}
        unknown = sorted(set(data) - set(fields) - FLAT_FIELDS)
        if unknown:
            raise ValueError(f"unknown config fields {unknown} for algorithm {data['algorithm']!r}: the checkpoint "
                             "comes from a newer metalearn-lab, or the dict is not a metalearn-lab config")
        values = {k: v for k, v in data.items() if k in fields}
        for name, value in {**config_class.legacy_defaults, **recipe.legacy_defaults}.items():
            values.setdefault(name, value)
        for name, field in fields.items():
            if str(field.type).startswith("tuple[") and name in values:
                values[name] = tuple(values[name])
        return config_class(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for tuples), as stored in checkpoints and results files."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with some fields changed; an unknown field name raises ``TypeError``."""
        return dataclasses.replace(self, **changes)

    def quick(self) -> "ExperimentConfig":
        """A tiny version for quick mode and tests: same code path, seconds instead of hours."""
        return self.replace(
            iterations=min(self.iterations, 8),
            meta_batch_size=min(self.meta_batch_size, 8),
            eval_tasks=min(self.eval_tasks, 20),
            eval_tasks_during_training=10,
            eval_every=0,
            checkpoint_every=0,
            note="quick mode: a few steps only, to run the code path; not a result",
        )

    def run_identity(self) -> dict[str, Any]:
        """Everything that defines what the run computes: all fields but :attr:`schedule_fields`."""
        return {k: v for k, v in self.to_dict().items() if k not in self.schedule_fields}
