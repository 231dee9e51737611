"""Data for the lessons: sinusoid tasks, users' preference curves, Omniglot (find, check, download, cache) and Lake's one-shot runs."""

from metalearn_lab.data.lake_runs import (
    LakeRun,
    load_lake_runs,
    score_lake_runs,
    validate_lake_runs_zip,
)
from metalearn_lab.data.omniglot import (
    OMNIGLOT_MD5,
    OMNIGLOT_URLS,
    Omniglot,
    OmniglotDataError,
    download_omniglot,
    find_omniglot,
    lake_split,
    load_omniglot,
    rotation_split,
    rotation_split_indices,
    validate_omniglot_zip,
)
from metalearn_lab.data.preferences import PreferenceBatch, PreferenceTasks, preference_curve
from metalearn_lab.data.sinusoid import SinusoidBatch, SinusoidTaskPool, SinusoidTasks, sinusoid

__all__ = [
    "SinusoidBatch",
    "SinusoidTasks",
    "SinusoidTaskPool",
    "sinusoid",
    "OMNIGLOT_MD5",
    "OMNIGLOT_URLS",
    "LakeRun",
    "Omniglot",
    "OmniglotDataError",
    "download_omniglot",
    "find_omniglot",
    "lake_split",
    "load_lake_runs",
    "load_omniglot",
    "rotation_split",
    "rotation_split_indices",
    "score_lake_runs",
    "validate_lake_runs_zip",
    "validate_omniglot_zip",
    "PreferenceBatch",
    "PreferenceTasks",
    "preference_curve",
]
