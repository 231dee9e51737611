"""Argument checks shared by the library: each error names the argument, the value and what is valid.

Numbers reach the library from Python, from NumPy arrays (``np.int64(5)``, ``np.float32(0.01)``),
from 0-d tensors, from config files and from widgets. :func:`check_int` and :func:`check_float`
accept all of these, return a plain Python ``int`` or ``float``, and refuse ``bool`` (``True`` is
not a number of shots), NaN, infinities and values outside the valid range.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch


def _scalar(value: Any) -> Any:
    """A 0-d tensor or NumPy array → its Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool)


def check_int(name: str, value: Any, minimum: int | None = 1, maximum: int | None = None) -> int:
    """Return ``value`` as a Python ``int`` if it is an integer in ``[minimum, maximum]``; else raise ``ValueError``.

    Accepts ``int``, NumPy integers and 0-d integer tensors; refuses ``bool`` and floats (even
    ``5.0``: a float where a count is expected is usually a mistake, such as a learning rate
    passed in the wrong place).

    >>> check_int("k_shot", 5), check_int("k_shot", np.int64(5)), check_int("k_shot", torch.tensor(5))
    (5, 5, 5)
    >>> check_int("k_shot", 0)
    Traceback (most recent call last):
    ...
    ValueError: k_shot must be an integer >= 1, got 0
    """
    if _is_bool(value):
        raise ValueError(f"{name} must be an integer{_range(minimum, maximum)}, got the bool {value!r}")
    v = _scalar(value)
    if isinstance(v, numbers.Integral):
        v = int(v)
    else:
        raise ValueError(f"{name} must be an integer{_range(minimum, maximum)}, got {value!r}")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be an integer{_range(minimum, maximum)}, got {v!r}")
    return v


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite Python ``float`` within the given bounds; else raise ``ValueError``.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``. Accepts Python, NumPy and 0-d
    tensor numbers of any float or integer type; refuses ``bool``, NaN and infinities.

    >>> check_float("inner_lr", np.float32(0.5), low=0, low_open=True)
    0.5
    >>> check_float("inner_lr", 0.0, low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: inner_lr must be a finite number > 0, got 0.0
    """
    bounds = _bounds(low, high, low_open, high_open)
    if _is_bool(value):
        raise ValueError(f"{name} must be a finite number{bounds}, got the bool {value!r}")
    v = _scalar(value)
    if not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")
    v = float(v)
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be a finite number{bounds}, got {v!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be a finite number{bounds}, got {v!r}")
    return v


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _bounds(low, high, low_open, high_open) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return (" " + " and ".join(parts)) if parts else ""
