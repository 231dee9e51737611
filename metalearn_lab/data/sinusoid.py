"""Sinusoid regression tasks (Finn, Abbeel & Levine 2017, section 5.1).

Each task is a sine wave ``y = amplitude * sin(x - phase)``. The task family of the MAML paper
draws the amplitude from U[0.1, 5], the phase from U[0, π] and the inputs from U[-5, 5]; every
range can be changed, which the lessons use to build out-of-distribution tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from metalearn_lab.validation import check_float, check_int


def _check_scalar(name: str, value):
    """A tensor with dimensions broadcasts as it is; a 0-d tensor is checked and kept; a number becomes a float."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            check_float(name, value.detach())
        return value
    return check_float(name, value)


def sinusoid(x: torch.Tensor, amplitude: torch.Tensor | float, phase: torch.Tensor | float) -> torch.Tensor:
    """Evaluate ``amplitude * sin(x - phase)``; ``amplitude``/``phase`` broadcast against ``x``.

    >>> float(sinusoid(torch.tensor(math.pi / 2), 2.0, 0.0))
    2.0
    """
    amplitude, phase = _check_scalar("amplitude", amplitude), _check_scalar("phase", phase)
    return amplitude * torch.sin(x - phase)


def _check_range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high) of finite numbers with low <= high, got {value!r}")
    low, high = check_float(f"{name}[0]", value[0]), check_float(f"{name}[1]", value[1])
    if low > high:
        raise ValueError(f"{name} must be a pair (low, high) of finite numbers with low <= high, got {value!r}")
    return low, high



@dataclass
class SinusoidBatch:
    """A batch of sinusoid tasks, each split into a support set and a query set.

    Shapes: ``x_support``/``y_support`` ``[meta_batch_size, k_shot, 1]``, ``x_query``/``y_query``
    ``[meta_batch_size, n_query, 1]``, ``amplitude``/``phase`` ``[meta_batch_size]``.
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor

    def __len__(self) -> int:
        return self.x_support.shape[0]

    def task(self, i: int) -> "SinusoidBatch":
        """The ``i``-th task as a batch of one (``0 <= i < len(self)``)."""
        i = check_int("i", i, minimum=0, maximum=len(self) - 1)
        sl = slice(i, i + 1)
        return SinusoidBatch(*(t[sl] for t in self.as_tuple()), self.amplitude[sl], self.phase[sl])

    def as_tuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_support, y_support, x_query, y_query)``, the form the MAML functions take."""
        return self.x_support, self.y_support, self.x_query, self.y_query

    def true_curve(self, x: torch.Tensor) -> torch.Tensor:
        """The tasks' true functions on inputs ``x`` of shape ``[P]``: returns ``[meta_batch_size, P]``."""
        return sinusoid(x[None, :], self.amplitude[:, None], self.phase[:, None])


@dataclass(frozen=True)
class SinusoidTasks:
    """The sinusoid task distribution p(T).

    Parameters
    ----------
    amplitude, phase, x_range : (low, high)
        Uniform ranges for the amplitude, the phase and the inputs. Defaults are Finn et al.
        (2017): amplitude U[0.1, 5], phase U[0, π], x U[-5, 5].

    Examples
    --------
    >>> tasks = SinusoidTasks()
    >>> batch = tasks.sample(25, k_shot=10, generator=torch.Generator().manual_seed(0))
    >>> tuple(batch.x_support.shape), tuple(batch.y_query.shape)
    ((25, 10, 1), (25, 10, 1))
    """

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def __post_init__(self) -> None:
        for name in ("amplitude", "phase", "x_range"):  # plain floats, whatever numbers came in
            object.__setattr__(self, name, _check_range(name, getattr(self, name)))

    def sample(
        self,
        meta_batch_size: int,
        k_shot: int,
        n_query: int | None = None,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SinusoidBatch:
        """Draw ``meta_batch_size`` tasks with ``k_shot`` support and ``n_query`` query points each.

        ``n_query`` defaults to ``k_shot`` (the MAML paper uses K points for both).
        """
        meta_batch_size, k_shot = check_int("meta_batch_size", meta_batch_size), check_int("k_shot", k_shot)
        n_query = k_shot if n_query is None else check_int("n_query", n_query)

        def uniform(shape, bounds):
            low, high = bounds
            return low + (high - low) * torch.rand(shape, generator=generator, dtype=dtype)

        amplitude = uniform((meta_batch_size,), self.amplitude)
        phase = uniform((meta_batch_size,), self.phase)
        x = uniform((meta_batch_size, k_shot + n_query, 1), self.x_range)
        y = sinusoid(x, amplitude[:, None, None], phase[:, None, None])
        return SinusoidBatch(x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:], amplitude, phase)

    def grid(self, points: int = 200) -> torch.Tensor:
        """Evenly spaced inputs over ``x_range`` for plotting, shape ``[points]``."""
        return torch.linspace(*self.x_range, check_int("points", points, 2))
