r"""Users' preference curves: a task family for personalised learning, one task per user.

A tutoring system sets the difficulty :math:`x \in [0, 10]` of the next exercise. Each user
(student) has a level at which exercises suit them best, and their rating of an exercise falls
off on either side of it: too easy is boring, too hard is discouraging. We model user :math:`u`'s
rating as a single-peaked ("ideal point") curve, the classic shape of a preference along one
dimension (Coombs 1964, *A Theory of Data*):

.. math:: r_u(x) = b_u + h_u \exp\!\Big(-\frac{(x - \mu_u)^2}{2 w_u^2}\Big) + \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, \sigma^2),

with a sweet spot :math:`\mu_u`, a tolerance :math:`w_u`, how much the right level matters
:math:`h_u`, a personal baseline :math:`b_u` (some users rate everything higher), and noise
:math:`\sigma` in every observed rating. The population is simulated: no real user data ship with
the course, and the point is the method, which is the same for real users.

A task is one user: the support set is the few exercises they have rated (noisy ratings), the
query set more exercises, whose *noise-free* curve :attr:`PreferenceBatch.true_query` is what a
personalised model should predict.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metalearn_lab.data.sinusoid import _check_range
from metalearn_lab.validation import check_float, check_int


def preference_curve(x: torch.Tensor, sweet_spot, width, height, baseline) -> torch.Tensor:
    """The noise-free rating ``baseline + height * exp(-(x - sweet_spot)**2 / (2 width**2))``; broadcasts.

    >>> float(preference_curve(torch.tensor(4.0), 4.0, 1.0, 2.0, 0.5))
    2.5
    """
    return baseline + height * torch.exp(-((x - sweet_spot) ** 2) / (2 * width**2))


@dataclass
class PreferenceBatch:
    """A batch of users, each split into rated exercises (support) and exercises to predict (query).

    Shapes: ``x_support``/``y_support`` ``[n_users, k_shot, 1]``, ``x_query``/``y_query``
    ``[n_users, n_query, 1]`` (``y`` are noisy ratings); the users' parameters ``sweet_spot``,
    ``width``, ``height``, ``baseline`` are ``[n_users]``.
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    sweet_spot: torch.Tensor
    width: torch.Tensor
    height: torch.Tensor
    baseline: torch.Tensor

    def __len__(self) -> int:
        return self.x_support.shape[0]

    def as_tuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_support, y_support, x_query, y_query)``, the form the MAML functions take."""
        return self.x_support, self.y_support, self.x_query, self.y_query

    def task(self, i: int) -> "PreferenceBatch":
        """User ``i`` as a batch of one (``0 <= i < len(self)``)."""
        i = check_int("i", i, minimum=0, maximum=len(self) - 1)
        sl = slice(i, i + 1)
        return PreferenceBatch(*(t[sl] for t in (*self.as_tuple(), self.sweet_spot, self.width, self.height, self.baseline)))

    def _params(self):
        return (self.sweet_spot[:, None], self.width[:, None], self.height[:, None], self.baseline[:, None])

    def true_curve(self, x: torch.Tensor) -> torch.Tensor:
        """The users' noise-free curves on inputs ``x [P]``: ``[n_users, P]``."""
        return preference_curve(x[None, :], *self._params())

    @property
    def true_query(self) -> torch.Tensor:
        """The noise-free ratings at the query difficulties, ``[n_users, n_query, 1]``: what to predict."""
        return preference_curve(self.x_query[..., 0], *self._params())[..., None]

    def regret(self, chosen: torch.Tensor) -> torch.Tensor:
        """How much rating each user loses when given difficulty ``chosen [n_users]`` instead of their sweet spot.

        ``height * (1 - exp(-(chosen - sweet_spot)**2 / (2 width**2)))``, ``[n_users]``, >= 0.
        """
        chosen = torch.as_tensor(chosen, dtype=self.sweet_spot.dtype).reshape(-1)
        if chosen.shape[0] != len(self):
            raise ValueError(f"chosen needs one difficulty per user ({len(self)}), got shape {tuple(chosen.shape)}")
        best = self.baseline + self.height
        return best - preference_curve(chosen, self.sweet_spot, self.width, self.height, self.baseline)


@dataclass(frozen=True)
class PreferenceTasks:
    """The population of users p(T), each a preference curve over difficulty (see the module docstring).

    Parameters
    ----------
    sweet_spot, width, height, baseline : (low, high)
        Uniform ranges of the users' parameters.
    noise : float >= 0
        Standard deviation of the noise in every observed rating.
    x_range : (low, high)
        Difficulties of the rated exercises (uniform).

    Examples
    --------
    >>> users = PreferenceTasks()
    >>> batch = users.sample(25, k_shot=5, n_query=10, generator=torch.Generator().manual_seed(0))
    >>> tuple(batch.x_support.shape), tuple(batch.true_query.shape)
    ((25, 5, 1), (25, 10, 1))
    """

    sweet_spot: tuple[float, float] = (2.0, 8.0)
    width: tuple[float, float] = (0.8, 2.5)
    height: tuple[float, float] = (1.0, 4.0)
    baseline: tuple[float, float] = (-1.0, 1.0)
    noise: float = 0.5
    x_range: tuple[float, float] = (0.0, 10.0)

    def __post_init__(self) -> None:
        for name in ("sweet_spot", "width", "height", "baseline", "x_range"):  # plain floats, whatever numbers came in
            object.__setattr__(self, name, _check_range(name, getattr(self, name)))
        if self.width[0] <= 0:
            raise ValueError(f"width must be a range of positive numbers, got {self.width!r}")
        object.__setattr__(self, "noise", check_float("noise", self.noise, low=0))

    def sample(self, n_users: int, k_shot: int, n_query: int | None = None, *,
               generator: torch.Generator | None = None) -> PreferenceBatch:
        """Draw ``n_users`` users with ``k_shot`` rated and ``n_query`` query exercises each (``n_query`` defaults to ``k_shot``)."""
        n_users, k_shot = check_int("n_users", n_users), check_int("k_shot", k_shot)
        n_query = k_shot if n_query is None else check_int("n_query", n_query)

        def uniform(shape, bounds):
            low, high = bounds
            return low + (high - low) * torch.rand(shape, generator=generator)

        sweet_spot, width = uniform((n_users,), self.sweet_spot), uniform((n_users,), self.width)
        height, baseline = uniform((n_users,), self.height), uniform((n_users,), self.baseline)
        x = uniform((n_users, k_shot + n_query, 1), self.x_range)
        clean = preference_curve(x, sweet_spot[:, None, None], width[:, None, None], height[:, None, None],
                                 baseline[:, None, None])
        y = clean + self.noise * torch.randn(clean.shape, generator=generator)
        return PreferenceBatch(x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:], sweet_spot, width, height,
                               baseline)

    def grid(self, points: int = 200) -> torch.Tensor:
        """Evenly spaced difficulties over ``x_range``, ``[points]``."""
        return torch.linspace(*self.x_range, check_int("points", points, 2))

    def noise_floor(self) -> float:
        """The MSE against *noisy* ratings that even a perfect model makes: ``noise**2``."""
        return float(self.noise) ** 2


__all__ = ["PreferenceBatch", "PreferenceTasks", "preference_curve"]
