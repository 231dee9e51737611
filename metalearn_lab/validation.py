"""Argument checks shared by the library: each error names the argument, the value and what is valid."""

from __future__ import annotations


def check_int(name: str, value: int, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum`` (bools refused); else raise ``ValueError``.

    >>> check_int("k_shot", 5)
    5
    >>> check_int("k_shot", 0)
    Traceback (most recent call last):
    ...
    ValueError: k_shot must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
