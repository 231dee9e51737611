"""The reproducible experiments: a registry of recipes and configs, training, evaluation, published results.

Each experiment has a name (``metalearn-lab train NAME``), a config (:data:`EXPERIMENTS`) and a
recipe for its algorithm (:data:`RECIPES`, one module each in ``recipes/``). The runner
(:func:`train_experiment`) trains any of them the same way: seeded, resumable, time-limited on
request, validated on validation tasks, tested once at the end; it writes
``<runs>/<name>/checkpoint.pt`` and ``<runs>/<name>/results.json``. :func:`load_experiment` gives a
lesson the shipped model. :func:`published` gives the papers' numbers with their sources.

The protocols follow the papers: Finn et al. (2017) for sinusoids and MAML on Omniglot, Snell et
al. (2017) for ProtoNets, Nichol et al. (2018) for Reptile, Koch et al. (2015) and Lake et al.
(2015) for the Siamese one-shot runs. Where a CPU budget forces a smaller run than the paper's,
the config says so in ``note``.
"""

from metalearn_lab.experiments.config import ExperimentConfig
from metalearn_lab.experiments.published import TABLE as PUBLISHED
from metalearn_lab.experiments.published import Published, published
from metalearn_lab.experiments.recipe import Recipe, step_generator
from metalearn_lab.experiments.recipes.point_robot import point_robot_goals
from metalearn_lab.experiments.recipes.preference import preference_users, user_mse
from metalearn_lab.experiments.registry import EXPERIMENTS, RECIPES, get_config, recipe_for
from metalearn_lab.experiments.runner import (
    build_model,
    evaluate_experiment,
    load_experiment,
    run_dir,
    same_run,
    train_experiment,
)
from metalearn_lab.experiments.splits import (
    TestSetLocked,
    background_classes,
    omniglot_splits,
    omniglot_test_tasks,
    omniglot_validation_tasks,
    sinusoid_test_tasks,
    sinusoid_validation_tasks,
)

__all__ = [
    "EXPERIMENTS", "PUBLISHED", "RECIPES", "ExperimentConfig", "Published", "Recipe", "TestSetLocked",
    "background_classes", "build_model", "evaluate_experiment", "get_config", "load_experiment", "omniglot_splits",
    "omniglot_test_tasks", "omniglot_validation_tasks", "published", "recipe_for", "run_dir", "same_run",
    "sinusoid_test_tasks", "sinusoid_validation_tasks", "step_generator", "train_experiment",
    "point_robot_goals", "preference_users", "user_mse",
]
