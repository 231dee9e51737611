"""Companion of lesson ``02_tasks_and_episodes``: an N-way K-shot episode viewer, one of Lake's one-shot trials, and the checkers of its exercises (an episode sampler, a 95% interval).

The lesson imports this module as ``lesson``; nothing in the core library imports it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import scipy.stats
import torch

from metalearn_lab.controls import fit_labels, show_png
from metalearn_lab.drawing import show_episode, show_images
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer


def plot_lake_trial(run, query_index=0, predicted=None, *, size=0.75):
    """One trial of a Lake one-shot run: the query, then the 20 candidates, the answer framed green.

    Parameters
    ----------
    run : :class:`metalearn_lab.data.LakeRun`
    query_index : int
        Which of the 20 queries (0..19).
    predicted : int, optional
        A classifier's choice; framed red when wrong.

    Returns
    -------
    matplotlib Figure
    """
    n = len(run.support)
    if not 0 <= query_index < len(run.query):
        raise ValueError(f"query_index must be in 0..{len(run.query) - 1}, got {query_index}")
    answer = int(run.labels[query_index])
    images = torch.cat([run.query[query_index: query_index + 1], run.support])
    titles = ["query"] + [str(i) for i in range(n)]
    frames = [None] + [None] * n
    frames[1 + answer] = "#2e7d32"
    if predicted is not None and int(predicted) != answer:
        frames[1 + int(predicted)] = "#c62828"
    ncols = 11
    fig, axes = plt.subplots(2, ncols, figsize=(size * ncols, size * 2.6), squeeze=False)
    layout = [axes[0, 0]] + list(axes[0, 1:]) + [axes[1, 0]] + list(axes[1, 1:])
    # query in the first cell of row 0; candidates fill the rest; first cell of row 1 stays blank
    order = [layout[0]] + layout[1:11] + layout[12:22]
    show_images(images, titles, axes=order + [layout[11]], frame_colors=frames)
    layout[11].axis("off")
    verdict = ""
    if predicted is not None:
        verdict = " — pixel 1-NN " + ("right" if int(predicted) == answer else f"wrong (chose {int(predicted)})")
    fig.suptitle(f"Lake {run.name}, query {query_index + 1}: which candidate is the same character? "
                 f"(answer framed green{verdict})", fontsize=9)
    return fig


def episode_view(classes, n_way: int = 5, k_shot: int = 1, n_query: int = 2, seed: int = 0):
    """Static view: draw one N-way K-shot episode from ``classes`` with :func:`~metalearn_lab.drawing.show_episode`.

    Raises the sampler's ``ValueError`` (with its message) for an impossible choice.

    Returns
    -------
    matplotlib Figure
    """
    from metalearn_lab.samplers import EpisodeSampler

    sampler = EpisodeSampler(classes, n_way=n_way, k_shot=k_shot, n_query=n_query)
    episode = sampler.sample(1, generator=torch.Generator().manual_seed(seed))
    return show_episode(episode, max_per_class=10, size=0.45 if n_way > 8 else 0.7)


def episode_try_it_view(classes, n_way: int = 5, k_shot: int = 1, n_query: int = 2, seed: int = 0):
    """The Try-it's figure: :func:`episode_view`, or, for an impossible choice, the sampler's message.

    What the live widget (:func:`episode_widget`) and the book's explorer (:func:`episode_explorer`)
    both draw: an impossible episode (``k_shot + n_query`` above the 20 drawings of a character, or
    more classes than there are) shows the ``ValueError`` the sampler raises, in a small figure.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = episode_try_it_view(torch.rand(6, 20, 1, 8, 8), n_way=3, k_shot=15, n_query=10)
    >>> fig.texts[0].get_text().startswith("ValueError: k_shot + n_query")
    True
    """
    import textwrap

    try:
        return episode_view(classes, n_way, k_shot, n_query, seed)
    except ValueError as err:
        fig = plt.figure(figsize=(7.5, 1.4))
        fig.text(0.02, 0.5, textwrap.fill(f"ValueError: {err}", 80), color="#b00020", fontsize=9, va="center",
                 family="monospace")
        return fig


def episode_widget(classes, seed: int = 0):
    """Sliders for ``n_way``, ``k_shot``, ``n_query`` and the seed; redraws :func:`episode_try_it_view`."""
    import ipywidgets as widgets

    def update(n_way, k_shot, n_query, seed):
        show_png(episode_try_it_view(classes, n_way, k_shot, n_query, seed))

    n_way, k_shot, n_query, seed_slider = fit_labels(
        widgets.IntSlider(value=5, min=1, max=20, description="n_way"),
        widgets.IntSlider(value=1, min=1, max=20, description="k_shot"),
        widgets.IntSlider(value=2, min=1, max=20, description="n_query"),
        widgets.IntSlider(value=seed, min=0, max=20, description="seed"),
    )
    return widgets.interactive(update, n_way=n_way, k_shot=k_shot, n_query=n_query, seed=seed_slider)


#: The book's slider values: a few ways, shots and queries, one pair of them more than 20 drawings.
EXPLORER_VALUES = {"n_way": (2, 5, 20), "k_shot": (1, 5, 15), "n_query": (2, 10)}


def episode_explorer(classes, values=None, *, seed: int = 0):
    """The Try-it for the book: :func:`episode_try_it_view` pre-rendered for every combination of values.

    ``values``: the ``n_way``, ``k_shot`` and ``n_query`` values (default :data:`EXPLORER_VALUES`,
    3 × 3 × 2 = 18 frames, one combination impossible), for the episode drawn with ``seed``.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> e = episode_explorer(torch.rand(6, 20, 1, 8, 8), {"n_way": (2,), "k_shot": (1, 15), "n_query": (10,)})
    >>> len(e.frames), e.initial
    (2, {'n_way': 2, 'k_shot': 1, 'n_query': 10})
    """
    from metalearn_lab.tryit import explorer

    values = {name: list(v) for name, v in (values or EXPLORER_VALUES).items()}
    if set(values) != set(EXPLORER_VALUES):
        raise ValueError(f"values must give {sorted(EXPLORER_VALUES)}, got {sorted(values)}")
    start = {"n_way": 5, "k_shot": 1, "n_query": 2}  # where the widget starts
    initial = {name: start[name] if start[name] in v else v[0] for name, v in values.items()}
    return explorer(lambda n_way, k_shot, n_query: episode_try_it_view(classes, n_way, k_shot, n_query, seed), values,
                    initial=initial, title="An N-way K-shot episode of test characters (pre-rendered)")


def _coded_classes(n_classes: int = 12, n_per_class: int = 20) -> torch.Tensor:
    """Fake images whose pixels say where they came from: ``[c, i, 0, 0, 0] = c``, ``[c, i, 0, 0, 1] = i``."""
    classes = torch.zeros(n_classes, n_per_class, 1, 2, 2)
    classes[:, :, 0, 0, 0] = torch.arange(n_classes, dtype=torch.float32)[:, None]
    classes[:, :, 0, 0, 1] = torch.arange(n_per_class, dtype=torch.float32)[None, :]
    classes[:, :, 0, 1, :] = 1.0
    return classes


@checker("Exercise 1: write an episode sampler")
def check_episode_sampler(sample_episode) -> str:
    """``sample_episode(classes, n_way, k_shot, n_query, generator)`` returns one episode.

    Expected: ``(x_support [N*K, C, H, W], y_support [N*K], x_query [N*Q, C, H, W], y_query [N*Q])``
    with integer labels 0..N-1, K support and Q query images per label, each label one class
    (the same in support and query), no image twice, and the same episode for the same seed.
    The checker samples from fake images whose pixels record their class and example index, so
    it can tell where every returned image came from. A skeleton that returns None is reported as
    not attempted.

    >>> from metalearn_lab.samplers import EpisodeSampler
    >>> def library(classes, n_way, k_shot, n_query, generator):
    ...     e = EpisodeSampler(classes, n_way, k_shot, n_query).sample(1, generator=generator)
    ...     return tuple(t[0] for t in e.as_tuple())
    >>> check_episode_sampler(library)
    ✓ Exercise 1: write an episode sampler: Your sampler passes every check (shapes, labels, classes, no overlap, seeds), like EpisodeSampler.
    >>> check_episode_sampler(lambda *args: None)
    … Exercise 1: write an episode sampler: not attempted. sample_episode(classes, 5, 1, 3, generator) returned None: fill in the skeleton (or, if you did, end it with a return statement)
    """
    from metalearn_lab.samplers import EpisodeSampler

    classes = _coded_classes()
    configs = [(5, 1, 3), (3, 4, 2), (12, 2, 18), (1, 1, 1)]
    for n_way, k_shot, n_query in configs:
        where = f"for n_way={n_way}, k_shot={k_shot}, n_query={n_query}"
        out = sample_episode(classes, n_way, k_shot, n_query, torch.Generator().manual_seed(0))
        if (n_way, k_shot, n_query) == configs[0]:
            out = require_answer(out, f"sample_episode(classes, {n_way}, {k_shot}, {n_query}, generator)")
        expect(out is not None, f"sample_episode returned None {where}: it must return an episode for every choice")
        expect(isinstance(out, (tuple, list)) and len(out) == 4,
               f"return a tuple (x_support, y_support, x_query, y_query), got {type(out).__name__}"
               + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
        x_support, y_support, x_query, y_query = (torch.as_tensor(t) for t in out)
        library = EpisodeSampler(classes, n_way, k_shot, n_query).sample(1)
        want = {"x_support": library.x_support[0], "y_support": library.y_support[0],
                "x_query": library.x_query[0], "y_query": library.y_query[0]}
        swapped = {"x_support": "x_query", "x_query": "x_support", "y_support": "y_query", "y_query": "y_support"}
        for name, got in (("x_support", x_support), ("y_support", y_support), ("x_query", x_query), ("y_query", y_query)):
            if tuple(got.shape) == tuple(want[name].shape):
                continue
            hint = "one task, no batch dimension: [N*K, C, H, W] images and [N*K] labels"
            if tuple(got.shape) == tuple(want[swapped[name]].shape):
                hint = (f"it has the shape {swapped[name]} should have: support and query swapped? The order is "
                        f"(x_support, y_support, x_query, y_query), and the support set has k_shot images per class")
            raise WrongAnswer(f"{name} has shape {tuple(got.shape)} {where}; expected {tuple(want[name].shape)} ({hint})")
        for name, y in (("y_support", y_support), ("y_query", y_query)):
            expect(not y.dtype.is_floating_point and y.dtype != torch.bool,
                   f"{name} must hold integer labels (torch.long), got {y.dtype}")
            expect(int(y.min()) >= 0 and int(y.max()) <= n_way - 1,
                   f"{name} holds labels {sorted(set(y.tolist()))} {where}; labels must be 0..{n_way - 1} "
                   f"(episode labels, not the dataset's class numbers)")
        for name, y, per in (("y_support", y_support, k_shot), ("y_query", y_query, n_query)):
            counts = torch.bincount(y, minlength=n_way).tolist()
            expect(counts == [per] * n_way, f"{name} has label counts {counts} {where}; every label needs {per}")
        source_class = {}
        for x, y in ((x_support, y_support), (x_query, y_query)):
            for image, label in zip(x, y.tolist()):
                c = int(image[0, 0, 0])
                if source_class.setdefault(label, c) != c:
                    raise WrongAnswer(
                        f"label {label} is given to images of two different classes ({source_class[label]} and {c}) "
                        f"{where}: in an episode each label stands for one class, in support and query alike"
                    )
        expect(len(set(source_class.values())) == n_way,
               f"two labels share one class {where}: pick {n_way} different classes (without replacement)")
        ids = [(int(img[0, 0, 0]), int(img[0, 0, 1])) for img in torch.cat([x_support, x_query])]
        expect(len(set(ids)) == len(ids),
               f"the same image appears twice {where} (e.g. in both support and query): draw the K + Q "
               f"examples of a class without replacement, then split them")
    n_way, k_shot, n_query = configs[0]

    def draw(seed):
        return [torch.as_tensor(t) for t in sample_episode(classes, n_way, k_shot, n_query, torch.Generator().manual_seed(seed))]

    first, again = draw(0), draw(0)
    expect(all(torch.equal(a, b) for a, b in zip(first, again)),
           "the same seed gave two different episodes: draw every random number from the generator argument "
           "(torch.randperm(..., generator=generator)), not from the global random state")
    episodes = [draw(seed) for seed in range(12)]
    used_classes = {int(img[0, 0, 0]) for e in episodes for img in e[0]}
    used_examples = {int(img[0, 0, 1]) for e in episodes for img in e[0]}
    expect(len(used_classes) > n_way,
           f"over 12 seeds your episodes only use classes {sorted(used_classes)}: choose the classes at random")
    expect(len(used_examples) > k_shot + n_query,
           f"over 12 seeds your support sets only use examples {sorted(used_examples)} of each class: "
           f"choose the examples at random")
    return "Your sampler passes every check (shapes, labels, classes, no overlap, seeds), like EpisodeSampler."


@checker("Exercise 2: a 95% interval by hand")
def check_ci95(ci95) -> str:
    """``ci95(values) -> (mean, half_width)``: Student's t 95% interval for the mean of per-task accuracies.

    Compared with :func:`metalearn_lab.metrics.mean_confidence_interval` on three sets of values
    (n = 5, 7 and 30). A skeleton that returns None is reported as not attempted; the usual slips
    are named: 1.96 instead of t, the one-sided quantile, n degrees of freedom instead of n - 1,
    the population standard deviation, s / n, no quantile, no √n, the whole width or the interval's
    two ends instead of its half-width, percentages.

    >>> from metalearn_lab.metrics import mean_confidence_interval
    >>> check_ci95(mean_confidence_interval)
    ✓ Exercise 2: a 95% interval by hand: Right: mean ± t · s / √n, with t = t_{n-1}(0.975) and s the sample standard deviation (n - 1).
    >>> check_ci95(lambda values: None)
    … Exercise 2: a 95% interval by hand: not attempted. ci95(values) returned None: fill in the skeleton (or, if you did, end it with a return statement)
    """
    from metalearn_lab.metrics import mean_confidence_interval

    cases = [[1.0, 0.0, 1.0, 1.0, 1.0], [0.8, 0.6, 1.0, 0.8, 0.4, 1.0, 0.6], [0.2 * i for i in range(6)] * 5]
    for number, values in enumerate(cases):
        out = ci95(torch.tensor(values, dtype=torch.float64))
        if number == 0:
            out = require_answer(out, "ci95(values)")
        expect(out is not None, f"ci95 returned None for {len(values)} values; it must return (mean, half_width) every time")
        expect(isinstance(out, (tuple, list)) and len(out) == 2, f"return (mean, half_width), got {out!r}")
        try:
            mean, half = (float(v) for v in out)
        except (TypeError, ValueError, RuntimeError):
            raise WrongAnswer(f"return two numbers (mean, half_width), got {out!r}") from None
        want_mean, want_half = mean_confidence_interval(values)
        n = len(values)
        if math.isclose(mean, want_mean - want_half, rel_tol=1e-6, abs_tol=1e-9) and math.isclose(half, want_mean + want_half, rel_tol=1e-6):
            raise WrongAnswer("you return the interval's two ends (mean - h, mean + h); return (mean, h), the half-width")
        if not math.isclose(mean, want_mean, rel_tol=1e-6, abs_tol=1e-9):
            hint = ""
            if math.isclose(mean, 100 * want_mean, rel_tol=1e-6):
                hint = ": that is a percentage; return the mean in the units of the values"
            raise WrongAnswer(f"mean {mean} should be {want_mean} for {values}{hint}")
        if math.isclose(half, want_half, rel_tol=1e-3):
            continue
        array = torch.tensor(values, dtype=torch.float64)
        s, s_pop = float(array.std(unbiased=True)), float(array.std(unbiased=False))
        t = scipy.stats.t.ppf(0.975, n - 1)
        guesses = (
            (1.96 * s / math.sqrt(n), "1.96, the normal approximation: with n values use Student's t quantile, "
                                      "scipy.stats.t.ppf(0.975, n - 1)"),
            (scipy.stats.t.ppf(0.95, n - 1) * s / math.sqrt(n), "the 0.95 quantile: a two-sided 95% interval leaves "
                                                               "2.5% in each tail, so use ppf(0.975, n - 1)"),
            (scipy.stats.t.ppf(0.975, n) * s / math.sqrt(n), "n degrees of freedom: the t quantile for a mean of n "
                                                             "values has n - 1"),
            (t * s_pop / math.sqrt(n), "the population standard deviation (dividing by n): use n - 1"),
            (t * s / n, "s / n: the standard error divides by √n"),
            (s / math.sqrt(n), "the standard error s / √n without the factor t"),
            (t * s, "t · s, without dividing by √n: that is the spread of single tasks, not of the mean"),
            (2 * want_half, "the width of the whole interval: return half of it"),
        )
        hint = next((text for guess, text in guesses if math.isclose(half, guess, rel_tol=1e-3)),
                    "a formula we do not recognise")
        raise WrongAnswer(f"half-width {half:.4f} should be {want_half:.4f} for n = {n} values; looks like {hint}")
    return "Right: mean ± t · s / √n, with t = t_{n-1}(0.975) and s the sample standard deviation (n - 1)."
