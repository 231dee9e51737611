r"""Scores and their uncertainty: accuracy, confidence intervals, MSE summaries, smoothing.

Every number the course reports goes through here: the accuracy of a classifier on a task, the
mean over many tasks with a 95% confidence interval, and, for regression, a summary of per-task
mean squared errors that says how many tasks diverged instead of letting one blow-up hide the rest.

The interval is Student's t interval for a mean,

.. math:: \bar x \pm t_{n-1,\,(1+c)/2}\, \frac{s}{\sqrt n},

with :math:`s` the sample standard deviation (``n - 1`` in the denominator) and the quantile taken
from :mod:`scipy.stats`. For 600 tasks :math:`t \approx 1.964`, the 1.96 of the normal
approximation that Finn et al. (2017) and Snell et al. (2017, miniImageNet) use; for Lake's 20
one-shot runs :math:`t_{19} = 2.093`, and 1.96 would cover the mean only about 93.5% of the time.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from metalearn_lab.validation import check_float, check_int

#: A per-task sinusoid MSE above this is a divergence, not a poor fit: predicting 0 everywhere
#: costs at most amplitude² / 2 <= 12.5 on Finn et al.'s tasks (amplitude <= 5).
DIVERGED_MSE = 25.0


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions per task: logits ``[..., n, C]``, labels ``[..., n]`` → ``[...]``.

    >>> float(accuracy(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])))
    0.5
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits [..., n, C] and labels [..., n] must agree; got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return (logits.argmax(-1) == labels).float().mean(-1)


def t_quantile(confidence: float, n: int) -> float:
    """The two-sided Student's t quantile for ``n`` samples: ``t_{n-1, (1 + confidence) / 2}``.

    >>> round(t_quantile(0.95, 20), 4), round(t_quantile(0.95, 600), 4)
    (2.093, 1.9639)
    """
    from scipy.stats import t

    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    n = check_int("n", n, minimum=2)
    return float(t.ppf((1 + confidence) / 2, n - 1))


def mean_confidence_interval(values: Sequence[float] | torch.Tensor | np.ndarray,
                             confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of Student's t confidence interval for the mean of ``values``.

    Parameters
    ----------
    values : sequence of float, ``[n]`` with n >= 2, all finite
        One number per task (accuracy, MSE) or per run.
    confidence : float in (0, 1)
        0.95 for the "mean ± 95% CI" of the MAML paper (Finn et al. 2017, Table 1 caption; 600 tasks in their code).

    Returns
    -------
    (mean, half_width) : tuple of float
        The interval is ``mean ± half_width``.

    Raises
    ------
    ValueError
        Fewer than 2 values, a NaN or infinite value, or ``confidence`` outside (0, 1).

    >>> mean, half = mean_confidence_interval([1.0, 0.0, 1.0, 1.0])
    >>> round(mean, 2), round(half, 3)
    (0.75, 0.796)
    """
    v = torch.as_tensor(np.asarray(values, dtype=np.float64) if not isinstance(values, torch.Tensor) else values,
                        dtype=torch.float64).flatten()
    if v.numel() < 2:
        raise ValueError(f"values needs at least 2 numbers for an interval, got {v.numel()}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"values contains NaN or infinity ({int((~torch.isfinite(v)).sum())} of {v.numel()})")
    q = t_quantile(confidence, v.numel())
    return float(v.mean()), float(q * v.std(unbiased=True) / math.sqrt(v.numel()))


def format_ci(values: Sequence[float] | torch.Tensor, *, percent: bool = True, digits: int | None = None) -> str:
    """``"mean ± half-width"`` with a 95% interval; accuracies in [0, 1] shown as percentages.

    >>> format_ci([1.0, 0.0, 1.0, 1.0])
    '75.0 ± 79.6%'
    """
    digits = None if digits is None else check_int("digits", digits, minimum=0)
    mean, half = mean_confidence_interval(values)
    if percent:
        digits = 1 if digits is None else digits
        return f"{100 * mean:.{digits}f} ± {100 * half:.{digits}f}%"
    digits = 3 if digits is None else digits
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def per_task_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each task: ``[T, Q, ...]`` predictions and targets → ``[T]``.

    >>> per_task_mse(torch.zeros(2, 3, 1), torch.tensor([[[1.0], [1.0], [1.0]], [[0.0], [3.0], [0.0]]])).tolist()
    [1.0, 3.0]
    """
    if prediction.shape != target.shape or prediction.dim() < 2:
        raise ValueError(f"prediction and target must have the same shape [tasks, points, ...]; got "
                         f"{tuple(prediction.shape)} and {tuple(target.shape)}")
    return ((prediction - target) ** 2).flatten(1).mean(1)


def diverged_tasks(mse: torch.Tensor) -> torch.Tensor:
    """Which per-task MSEs show gradient descent blowing up: NaN, infinite or above :data:`DIVERGED_MSE`.

    >>> diverged_tasks(torch.tensor([0.1, float("nan"), 30.0])).tolist()
    [False, True, True]
    """
    return ~torch.isfinite(mse) | (mse > DIVERGED_MSE)


def summarize_mse(mse: torch.Tensor) -> dict[str, Any]:
    """Per-task query MSEs ``[tasks]`` → mean ± 95% CI, median, how many diverged, mean of the rest.

    Diverged values (see :func:`diverged_tasks`) enter the mean capped at 1e30 so that the mean
    still says "something blew up" without being NaN.

    >>> s = summarize_mse(torch.tensor([0.1, 0.3, float("nan")]))
    >>> s["n_diverged"], s["n_tasks"], round(s["mean_without_diverged"], 3)
    (1, 3, 0.2)
    """
    mse = torch.as_tensor(mse).detach().cpu().double().flatten()
    diverged = diverged_tasks(mse)
    finite = torch.nan_to_num(mse, nan=1e30, posinf=1e30).clamp(max=1e30)
    mean, half = mean_confidence_interval(finite)
    kept = finite[~diverged]
    return {"mean": mean, "ci95": half, "median": float(finite.median()), "n_diverged": int(diverged.sum()),
            "n_tasks": len(mse), "mean_without_diverged": float(kept.mean()) if len(kept) else float("nan")}


def format_mse(r: dict[str, Any], digits: int = 3) -> str:
    """An MSE summary (:func:`summarize_mse`) as text: mean ± CI, and, when some tasks diverged,
    how many and the median and the mean of the rest.

    >>> format_mse({"mean": 0.5, "ci95": 0.1, "n_diverged": 0})
    '0.500 ± 0.100'
    >>> format_mse({"mean": 0.38, "ci95": 0.12, "n_diverged": 1, "n_tasks": 600, "median": 0.14, "mean_without_diverged": 0.33}, 2)
    '0.38 ± 0.12 (1 of 600 tasks above 25; median 0.14; mean of the rest 0.33)'
    """
    digits = check_int("digits", digits, minimum=0)
    if r.get("n_diverged"):
        of = f" of {r['n_tasks']}" if "n_tasks" in r else ""
        rest = f"; mean of the rest {r['mean_without_diverged']:.{digits}f}" if "mean_without_diverged" in r else ""
        if r["mean"] < 1e3:  # a few tasks went astray, but the mean still says something
            return (f"{r['mean']:.{digits}f} ± {r['ci95']:.{digits}f} ({r['n_diverged']}{of} tasks above {DIVERGED_MSE:g}; "
                    f"median {r['median']:.{digits}f}{rest})")
        return f"diverged on {r['n_diverged']}{of} tasks (median {r['median']:.{digits}f}{rest})"
    return f"{r['mean']:.{digits}f} ± {r['ci95']:.{digits}f}"


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Centred moving average over ``window`` points, ignoring NaNs; same length as ``values``.

    >>> moving_average([1.0, 2.0, float("nan"), 4.0], 2).tolist()
    [1.0, 1.5, 2.0, 4.0]
    """
    v = np.asarray(values, dtype=float)
    window = min(check_int("window", window, minimum=1), len(v))
    if window <= 1:
        return v
    ok = np.isfinite(v)
    kernel = np.ones(window)
    sums = np.convolve(np.where(ok, v, 0.0), kernel, mode="same")
    counts = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
