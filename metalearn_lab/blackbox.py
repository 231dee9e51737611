r"""Model-based (black-box) meta-learners: networks that read the support set and predict.

In the common taxonomy (Hospedales et al. 2021, §3.1) a *model-based* or *black-box* meta-learner
is one network :math:`g_\theta` that takes a task's support set as input and returns a predictor
for its queries,

.. math:: p(y_* \mid x_*, S) = g_\theta\big(x_*, \{(x_i, y_i)\}_{i=1}^K\big),

so adapting to a new task is one forward pass: no gradient step, no stored copy of the weights.
The meta-learning is in how :math:`\theta` was trained: on many tasks, to predict each task's query
points from its support points. Memory-augmented networks (Santoro et al. 2016), SNAIL (Mishra et
al. 2018) and neural processes (Garnelo et al. 2018) are of this kind. This module has two, both
for regression with a Gaussian predictive distribution (a mean and a standard deviation per query):

* :class:`ConditionalNeuralProcess` (Garnelo et al. 2018, arXiv:1807.01613, §2): encode each
  pair :math:`r_i = h([x_i, y_i])`, average :math:`r = \frac1K\sum_i r_i`, decode
  :math:`(\mu_*, \sigma_*) = g([r, x_*])`. The average makes it blind to the order of the support
  points and lets it take any K.
* :class:`InContextTransformer`: a transformer over one token per support pair and one per query,
  in which every token attends to the support tokens only (no positional encoding, so it too is
  blind to order and takes any K). It is the set form of Garg et al. (2022)'s in-context learner
  and close to the transformer neural process (TNP-D) of Nguyen & Grover (2022).

Both are trained by :func:`gaussian_nll` on query points, as conditional neural processes are
(Garnelo et al. 2018, §2), and evaluated by the squared error of their mean. The ``sinusoid-blackbox`` recipe in
``metalearn_lab/experiments/recipes/blackbox.py`` trains them on Finn et al.'s sinusoid tasks.
"""

from __future__ import annotations

import torch
from torch import nn

from metalearn_lab.validation import check_float, check_int


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def check_context(x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor, x_dim: int, y_dim: int) -> None:
    """Raise ``ValueError`` unless the shapes are ``[T, K, x_dim]``, ``[T, K, y_dim]``, ``[T, Q, x_dim]`` with K >= 1."""
    x_dim, y_dim = check_int("x_dim", x_dim), check_int("y_dim", y_dim)
    if x_support.dim() != 3 or y_support.dim() != 3 or x_query.dim() != 3:
        raise ValueError(f"x_support, y_support, x_query must be [tasks, points, features]; got shapes "
                         f"{tuple(x_support.shape)}, {tuple(y_support.shape)}, {tuple(x_query.shape)}")
    if x_support.shape[:2] != y_support.shape[:2] or x_support.shape[0] != x_query.shape[0]:
        raise ValueError(f"x_support {tuple(x_support.shape)}, y_support {tuple(y_support.shape)} and x_query "
                         f"{tuple(x_query.shape)} must agree on the number of tasks (and support points)")
    if x_support.shape[1] < 1:
        raise ValueError("the support set is empty (K = 0): a black-box learner needs at least one (x, y) pair")
    if x_support.shape[-1] != x_dim or x_query.shape[-1] != x_dim or y_support.shape[-1] != y_dim:
        raise ValueError(f"the model takes x with {x_dim} feature(s) and y with {y_dim}; got x_support "
                         f"{tuple(x_support.shape)}, y_support {tuple(y_support.shape)}, x_query {tuple(x_query.shape)}")


def _gaussian_head(out: torch.Tensor, min_std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the last dimension into a mean and a raw scale; std = min_std + (1 - min_std) softplus(raw)."""
    mean, raw = out.chunk(2, dim=-1)
    return mean, min_std + (1 - min_std) * nn.functional.softplus(raw)


class ConditionalNeuralProcess(nn.Module):
    """A conditional neural process (Garnelo et al. 2018): encode pairs, average, decode queries.

    Parameters
    ----------
    x_dim, y_dim : int
        Sizes of an input and of an output (1 and 1 for sinusoids).
    hidden : int
        Width of every hidden layer and of the task representation ``r``.
    encoder_layers, decoder_layers : int
        Linear layers in the encoder ``h`` and the decoder ``g``. The 1-D regression notebook of
        Garnelo et al.'s code (deepmind/neural-processes) uses 4 of width 128 in the encoder and 3
        (128, 128, 2) in the decoder.
    min_std : float in [0, 1)
        Floor of the predicted standard deviation (their notebook uses 0.1; our sinusoids are
        noise-free, so a lower floor lets the uncertainty shrink further).

    Shapes: ``x_support`` ``[T, K, x_dim]``, ``y_support`` ``[T, K, y_dim]``, ``x_query`` ``[T, Q, x_dim]``
    → ``(mean, std)``, each ``[T, Q, y_dim]``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> cnp = ConditionalNeuralProcess(hidden=16)
    >>> mean, std = cnp(torch.randn(3, 5, 1), torch.randn(3, 5, 1), torch.randn(3, 7, 1))
    >>> tuple(mean.shape), bool((std > 0).all())
    ((3, 7, 1), True)
    """

    def __init__(self, x_dim: int = 1, y_dim: int = 1, hidden: int = 128, encoder_layers: int = 3,
                 decoder_layers: int = 3, min_std: float = 0.01) -> None:
        super().__init__()
        self.x_dim, self.y_dim = check_int("x_dim", x_dim), check_int("y_dim", y_dim)
        hidden = check_int("hidden", hidden)
        encoder_layers = check_int("encoder_layers", encoder_layers)
        # the decoder: at least one hidden layer and the output layer
        decoder_layers = check_int("decoder_layers", decoder_layers, minimum=2)
        x_dim, y_dim = self.x_dim, self.y_dim
        self.min_std = check_float("min_std", min_std, low=0, high=1, high_open=True)
        self.encoder = _mlp([x_dim + y_dim] + [hidden] * encoder_layers)
        self.decoder = _mlp([hidden + x_dim] + [hidden] * (decoder_layers - 1) + [2 * y_dim])

    def represent(self, x_support: torch.Tensor, y_support: torch.Tensor) -> torch.Tensor:
        """The task representation ``r``: the mean of the encoded pairs, ``[T, hidden]``."""
        return self.encoder(torch.cat([x_support, y_support], dim=-1)).mean(dim=1)

    def forward(self, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_context(x_support, y_support, x_query, self.x_dim, self.y_dim)
        r = self.represent(x_support, y_support)
        r = r[:, None, :].expand(-1, x_query.shape[1], -1)
        return _gaussian_head(self.decoder(torch.cat([r, x_query], dim=-1)), self.min_std)


class InContextTransformer(nn.Module):
    """A transformer that reads the (x, y) pairs of the support set and predicts the queries in context.

    Each support pair becomes one token (a linear embedding of ``[x, y]``), each query one token (a
    different linear embedding of ``x`` alone). A stack of pre-norm transformer encoder layers
    (:class:`torch.nn.TransformerEncoderLayer`) mixes them under an attention mask that lets every
    token attend to the support tokens only: support tokens build a representation of the task
    together, each query reads from it, and queries never see each other (so predictions do not
    depend on which other queries are asked). There is no positional encoding: the prediction is
    the same for any order of the support pairs, and the model runs for any K, including K larger
    than in training (whether it is any good there is an experiment, not a guarantee).

    Garg et al. (2022) train a GPT-2 decoder on the interleaved sequence
    ``x_1, y_1, x_2, y_2, ...`` with causal attention and learned positions; Nguyen & Grover (2022,
    TNP-D) use the masked, position-free form used here.

    Parameters
    ----------
    x_dim, y_dim : int
    d_model, n_heads, n_layers, dim_feedforward : int
        Transformer sizes (``d_model`` divisible by ``n_heads``).
    min_std : float in [0, 1)
        Floor of the predicted standard deviation.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model = InContextTransformer(d_model=16, n_heads=2, n_layers=1, dim_feedforward=32)
    >>> xs, ys, xq = torch.randn(2, 4, 1), torch.randn(2, 4, 1), torch.randn(2, 3, 1)
    >>> mean, std = model(xs, ys, xq)
    >>> tuple(mean.shape)
    (2, 3, 1)
    >>> order = torch.tensor([3, 1, 0, 2])  # the same support set, shuffled
    >>> torch.allclose(mean, model(xs[:, order], ys[:, order], xq)[0], atol=1e-5)
    True
    """

    def __init__(self, x_dim: int = 1, y_dim: int = 1, d_model: int = 64, n_heads: int = 4, n_layers: int = 4,
                 dim_feedforward: int = 128, min_std: float = 0.01) -> None:
        super().__init__()
        self.x_dim, self.y_dim = check_int("x_dim", x_dim), check_int("y_dim", y_dim)
        d_model, n_heads = check_int("d_model", d_model), check_int("n_heads", n_heads)
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads; got d_model={d_model}, n_heads={n_heads}")
        n_layers = check_int("n_layers", n_layers)
        dim_feedforward = check_int("dim_feedforward", dim_feedforward)
        x_dim, y_dim = self.x_dim, self.y_dim
        self.min_std = check_float("min_std", min_std, low=0, high=1, high_open=True)
        self.embed_pair = nn.Linear(x_dim + y_dim, d_model)
        self.embed_query = nn.Linear(x_dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 2 * y_dim)

    @staticmethod
    def attention_mask(k_shot: int, n_query: int) -> torch.Tensor:
        """``[K + Q, K + Q]`` boolean mask, True where attention is *blocked*: every key that is a query.

        >>> InContextTransformer.attention_mask(2, 1).int().tolist()
        [[0, 0, 1], [0, 0, 1], [0, 0, 1]]
        """
        mask = torch.zeros(k_shot + n_query, k_shot + n_query, dtype=torch.bool)
        mask[:, k_shot:] = True
        return mask

    def forward(self, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_context(x_support, y_support, x_query, self.x_dim, self.y_dim)
        k_shot, n_query = x_support.shape[1], x_query.shape[1]
        tokens = torch.cat([self.embed_pair(torch.cat([x_support, y_support], dim=-1)), self.embed_query(x_query)], dim=1)
        mask = self.attention_mask(k_shot, n_query).to(tokens.device)
        hidden = self.layers(tokens, mask=mask)
        return _gaussian_head(self.head(self.norm(hidden[:, k_shot:])), self.min_std)


def gaussian_nll(mean: torch.Tensor, std: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Mean negative log-likelihood of ``y`` under independent Gaussians :math:`\mathcal N(\text{mean}, \text{std}^2)`.

    The training loss of conditional neural processes (Garnelo et al. 2018, §2): it rewards a good mean and
    an honest standard deviation (too small is punished by the squared error over σ², too large by
    log σ). Shapes of the three tensors must agree.

    >>> round(float(gaussian_nll(torch.zeros(2), torch.ones(2), torch.zeros(2))), 4)  # log(2π)/2
    0.9189
    """
    if not (mean.shape == std.shape == y.shape):
        raise ValueError(f"mean, std and y must have the same shape; got {tuple(mean.shape)}, {tuple(std.shape)}, {tuple(y.shape)}")
    return -torch.distributions.Normal(mean, std).log_prob(y).mean()


def predict(model: nn.Module, x_support: torch.Tensor, y_support: torch.Tensor, x_query: torch.Tensor,
            *, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(x_support, y_support, x_query)`` without gradients, ``chunk`` tasks at a time; returns ``(mean, std)``.

    >>> cnp = ConditionalNeuralProcess(hidden=8)
    >>> mean, std = predict(cnp, torch.zeros(5, 2, 1), torch.zeros(5, 2, 1), torch.zeros(5, 3, 1), chunk=2)
    >>> tuple(std.shape)
    (5, 3, 1)
    """
    chunk = check_int("chunk", chunk)
    means, stds = [], []
    with torch.no_grad():
        for start in range(0, x_support.shape[0], chunk):
            sl = slice(start, start + chunk)
            m, s = model(x_support[sl], y_support[sl], x_query[sl])
            means.append(m)
            stds.append(s)
    return torch.cat(means), torch.cat(stds)
