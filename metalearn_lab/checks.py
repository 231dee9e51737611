"""Exercise checkers for the lessons: each raises AssertionError saying what is wrong, or prints one success line."""


# --- lesson 01 ---

import torch as _torch

#: The answer to lesson 01's "place the methods on the map" exercise (Hospedales et al. 2021).
FAMILY_OF = {
    "MAML": "optimisation",
    "first-order MAML": "optimisation",
    "Reptile": "optimisation",
    "Meta-SGD": "optimisation",
    "MANN": "model",
    "SNAIL": "model",
    "neural process": "model",
    "Siamese network": "metric",
    "Matching network": "metric",
    "ProtoNet": "metric",
}

_FAMILY_WHY = {
    "optimisation": "it meta-learns how a gradient-descent learner starts or steps (initial weights, learning rates)",
    "model": "a network reads the support set and predicts directly, with no gradient steps at test time",
    "metric": "it learns an embedding and classifies a query by comparing it with the support examples",
}


def _family(name) -> str | None:
    """Normalise a family name: 'Optimization-based' -> 'optimisation', 'black-box' -> 'model', ..."""
    if not isinstance(name, str):
        return None
    text = name.lower().replace("optimization", "optimisation")
    for key, words in (("optimisation", ("optimisation", "gradient")), ("model", ("model", "black")),
                       ("metric", ("metric",))):
        if any(w in text for w in words):
            return key
    return None


def check_family_map(answer: dict) -> None:
    """Lesson 01: ``answer`` maps each method of :data:`FAMILY_OF` to 'optimisation', 'model' or 'metric'.

    >>> check_family_map(dict(FAMILY_OF))
    All 10 methods are on the right branch of the map.
    """
    assert isinstance(answer, dict), f"answer must be a dict {{method: family}}, got {type(answer).__name__}"
    missing = [m for m in FAMILY_OF if m not in answer]
    assert not missing, f"answer has no entry for {missing}; give every method a family"
    unknown = [m for m in FAMILY_OF if _family(answer[m]) is None]
    assert not unknown, (
        f"the family of {unknown[0]!r} is {answer[unknown[0]]!r}; write 'optimisation', 'model' or 'metric'"
    )
    wrong = [m for m in FAMILY_OF if _family(answer[m]) != FAMILY_OF[m]]
    if wrong:
        m = wrong[0]
        hint = ""
        if m in ("MAML", "first-order MAML", "Reptile") and _family(answer[m]) == "model":
            hint = (" (the source text files 'learning the initial parameters' under model-based; the common "
                    "taxonomy of Hospedales et al. 2021 calls it optimisation-based)")
        raise AssertionError(
            f"{len(wrong)} of {len(FAMILY_OF)} misplaced, e.g. {m!r} is {FAMILY_OF[m]}-based, not "
            f"{_family(answer[m])}-based: {_FAMILY_WHY[FAMILY_OF[m]]}{hint}."
        )
    print(f"All {len(FAMILY_OF)} methods are on the right branch of the map.")


def _mlp_parameter_count(widths) -> int:
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def check_parameter_count(count_mlp_parameters) -> None:
    """Lesson 01: ``count_mlp_parameters(widths) -> int`` for a fully connected net with biases.

    >>> check_parameter_count(lambda w: sum(a * b + b for a, b in zip(w[:-1], w[1:])))
    Right: a 1-40-40-1 net has 1761 parameters, 352 per support point when K = 5.
    """
    from torch import nn

    cases = [[1, 40, 40, 1], [1, 40, 1], [3, 5, 2], [2, 1], [1, 100, 100, 100, 1]]
    for widths in cases:
        got = count_mlp_parameters(list(widths))
        want = _mlp_parameter_count(widths)
        layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
        assert want == sum(p.numel() for layer in layers for p in layer.parameters())
        assert got is not None, "count_mlp_parameters returned None: replace the placeholder with your code"
        if got != want:
            weights_only = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
            hint = ""
            if got == weights_only:
                hint = " That is the number of weights alone: each layer also has one bias per output unit."
            elif got == weights_only + sum(widths):
                hint = " You gave the input units biases too: only the units a layer computes (its outputs) have one."
            raise AssertionError(f"for widths {widths} you return {got}, the net has {want} parameters.{hint}")
    n = _mlp_parameter_count([1, 40, 40, 1])
    print(f"Right: a 1-40-40-1 net has {n} parameters, {n // 5} per support point when K = 5.")


#: Lesson 01's "which set is which" puzzle: set B is the support set.
ROLES_PUZZLE = {"n_way": 4, "k_shot": 3, "n_query": 2, "support": "B", "seed": 11}


def roles_puzzle(classes: _torch.Tensor) -> dict:
    """Lesson 01: an episode shown as two unnamed sets, ``{"A": (images, titles), "B": (images, titles)}``.

    Set A holds the query images in shuffled order with hidden labels ("?"); set B holds the
    labelled support images. Parameters in :data:`ROLES_PUZZLE`.
    """
    from metalearn_lab.samplers import EpisodeSampler

    p = ROLES_PUZZLE
    generator = _torch.Generator().manual_seed(p["seed"])
    episode = EpisodeSampler(classes, p["n_way"], p["k_shot"], p["n_query"]).sample(1, generator=generator)
    order = _torch.randperm(p["n_way"] * p["n_query"], generator=generator)
    query = episode.x_query[0][order]
    support = episode.x_support[0]
    return {"A": (query, ["?"] * len(query)),
            "B": (support, [f"label {int(y)}" for y in episode.y_support[0]])}


def check_episode_roles(answer: dict) -> None:
    """Lesson 01: ``answer = {"support": "A" or "B", "n_way": int, "k_shot": int, "n_query": int}``.

    >>> check_episode_roles({"support": "B", "n_way": 4, "k_shot": 3, "n_query": 2})
    Right: set B is the support set of a 4-way 3-shot episode with 2 queries per class.
    """
    p = ROLES_PUZZLE
    assert isinstance(answer, dict), f"answer must be a dict, got {type(answer).__name__}"
    for key in ("support", "n_way", "k_shot", "n_query"):
        assert answer.get(key) is not None, f"answer[{key!r}] is missing: fill it in"
    support = str(answer["support"]).strip().upper()
    assert support == p["support"], (
        f"set {support} is not the support set: the support set is the one whose labels the learner is given "
        f"(it adapts on it); the query set's labels are hidden and only used to score the adapted learner"
    )
    assert answer["n_way"] == p["n_way"], (
        f"n_way = {answer['n_way']} is not right: count the different labels in the support set"
    )
    if answer["k_shot"] != p["k_shot"]:
        hint = " (that is the whole support set: k_shot counts examples per class)" if answer["k_shot"] == p["n_way"] * p["k_shot"] else ""
        raise AssertionError(f"k_shot = {answer['k_shot']} is not right: how many support images per label?{hint}")
    if answer["n_query"] != p["n_query"]:
        hint = (" (that is the whole query set: n_query counts images per class, so divide by n_way)"
                if answer["n_query"] == p["n_way"] * p["n_query"] else "")
        raise AssertionError(f"n_query = {answer['n_query']} is not right{hint}")
    print(f"Right: set B is the support set of a {p['n_way']}-way {p['k_shot']}-shot episode "
          f"with {p['n_query']} queries per class.")


# --- lesson 02 ---


def _coded_classes(n_classes: int = 12, n_per_class: int = 20) -> _torch.Tensor:
    """Fake images whose pixels say where they came from: ``[c, i, 0, 0, 0] = c``, ``[c, i, 0, 0, 1] = i``."""
    classes = _torch.zeros(n_classes, n_per_class, 1, 2, 2)
    classes[:, :, 0, 0, 0] = _torch.arange(n_classes, dtype=_torch.float32)[:, None]
    classes[:, :, 0, 0, 1] = _torch.arange(n_per_class, dtype=_torch.float32)[None, :]
    classes[:, :, 0, 1, :] = 1.0
    return classes


def check_episode_sampler(sample_episode) -> None:
    """Lesson 02: ``sample_episode(classes, n_way, k_shot, n_query, generator)`` returns one episode.

    Expected: ``(x_support [N*K, C, H, W], y_support [N*K], x_query [N*Q, C, H, W], y_query [N*Q])``
    with integer labels 0..N-1, K support and Q query images per label, each label one class
    (the same in support and query), no image twice, and the same episode for the same seed.

    >>> from metalearn_lab.samplers import EpisodeSampler
    >>> def library(classes, n_way, k_shot, n_query, generator):
    ...     e = EpisodeSampler(classes, n_way, k_shot, n_query).sample(1, generator=generator)
    ...     return tuple(t[0] for t in e.as_tuple())
    >>> check_episode_sampler(library)
    Your sampler passes every check (shapes, labels, classes, no overlap, seeds), like EpisodeSampler.
    """
    from metalearn_lab.samplers import EpisodeSampler

    classes = _coded_classes()
    configs = [(5, 1, 3), (3, 4, 2), (12, 2, 18), (1, 1, 1)]
    for n_way, k_shot, n_query in configs:
        where = f"for n_way={n_way}, k_shot={k_shot}, n_query={n_query}"
        out = sample_episode(classes, n_way, k_shot, n_query, _torch.Generator().manual_seed(0))
        assert out is not None, "sample_episode returned None: replace the placeholder with your code"
        assert isinstance(out, (tuple, list)) and len(out) == 4, (
            f"return a tuple (x_support, y_support, x_query, y_query), got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        )
        x_support, y_support, x_query, y_query = (_torch.as_tensor(t) for t in out)
        library = EpisodeSampler(classes, n_way, k_shot, n_query).sample(1)
        for name, got, want in (("x_support", x_support, library.x_support[0]), ("y_support", y_support, library.y_support[0]),
                                ("x_query", x_query, library.x_query[0]), ("y_query", y_query, library.y_query[0])):
            assert tuple(got.shape) == tuple(want.shape), (
                f"{name} has shape {tuple(got.shape)} {where}; expected {tuple(want.shape)} "
                f"(one task, no batch dimension: [N*K, C, H, W] images and [N*K] labels)"
            )
        for name, y in (("y_support", y_support), ("y_query", y_query)):
            assert not y.dtype.is_floating_point and y.dtype != _torch.bool, f"{name} must hold integer labels, got {y.dtype}"
            assert int(y.min()) >= 0 and int(y.max()) <= n_way - 1, (
                f"{name} holds labels {sorted(set(y.tolist()))} {where}; labels must be 0..{n_way - 1} "
                f"(episode labels, not the dataset's class numbers)"
            )
        for name, y, per in (("y_support", y_support, k_shot), ("y_query", y_query, n_query)):
            counts = _torch.bincount(y, minlength=n_way).tolist()
            assert counts == [per] * n_way, f"{name} has label counts {counts} {where}; every label needs {per}"
        source_class = {}
        for name, x, y in (("support", x_support, y_support), ("query", x_query, y_query)):
            for image, label in zip(x, y.tolist()):
                c = int(image[0, 0, 0])
                if source_class.setdefault(label, c) != c:
                    raise AssertionError(
                        f"label {label} is given to images of two different classes ({source_class[label]} and {c}) "
                        f"{where}: in an episode each label stands for one class, in support and query alike"
                    )
        assert len(set(source_class.values())) == n_way, (
            f"two labels share one class {where}: pick {n_way} different classes (without replacement)"
        )
        ids = [(int(img[0, 0, 0]), int(img[0, 0, 1])) for img in _torch.cat([x_support, x_query])]
        assert len(set(ids)) == len(ids), (
            f"the same image appears twice {where} (e.g. in both support and query): draw the K + Q "
            f"examples of a class without replacement, then split them"
        )
    n_way, k_shot, n_query = 5, 1, 3

    def draw(seed):
        return [_torch.as_tensor(t) for t in sample_episode(classes, n_way, k_shot, n_query, _torch.Generator().manual_seed(seed))]

    first, again = draw(0), draw(0)
    assert all(_torch.equal(a, b) for a, b in zip(first, again)), (
        "the same seed gave two different episodes: draw every random number from the generator argument "
        "(torch.randperm(..., generator=generator)), not from the global random state"
    )
    episodes = [draw(seed) for seed in range(12)]
    used_classes = {int(img[0, 0, 0]) for e in episodes for img in e[0]}
    used_examples = {int(img[0, 0, 1]) for e in episodes for img in e[0]}
    assert len(used_classes) > n_way, (
        f"over 12 seeds your episodes only use classes {sorted(used_classes)}: choose the classes at random"
    )
    assert len(used_examples) > k_shot + n_query, (
        f"over 12 seeds your support sets only use examples {sorted(used_examples)} of each class: "
        f"choose the examples at random"
    )
    print("Your sampler passes every check (shapes, labels, classes, no overlap, seeds), like EpisodeSampler.")


def check_ci95(ci95) -> None:
    """Lesson 02: ``ci95(values) -> (mean, half_width)``, the normal-approximation 95% interval.

    >>> from metalearn_lab.samplers import mean_confidence_interval
    >>> check_ci95(mean_confidence_interval)
    Right: mean ± 1.96 · s / √n, with s the sample standard deviation (n - 1).
    """
    import math

    from metalearn_lab.samplers import mean_confidence_interval

    cases = [[1.0, 0.0, 1.0, 1.0], [0.8, 0.6, 1.0, 0.8, 0.4, 1.0], [0.2 * i for i in range(6)] * 5]
    for values in cases:
        out = ci95(_torch.tensor(values, dtype=_torch.float64))
        assert out is not None, "ci95 returned None: replace the placeholder with your code"
        assert isinstance(out, (tuple, list)) and len(out) == 2, f"return (mean, half_width), got {out!r}"
        mean, half = (float(v) for v in out)
        want_mean, want_half = mean_confidence_interval(values)
        n = len(values)
        t = _torch.tensor(values, dtype=_torch.float64)
        s, s_pop = float(t.std(unbiased=True)), float(t.std(unbiased=False))
        assert math.isclose(mean, want_mean, rel_tol=1e-6, abs_tol=1e-9), f"mean {mean} should be {want_mean} for {values}"
        if not math.isclose(half, want_half, rel_tol=1e-3):
            hint = "a formula we do not recognise"
            for guess, text in ((1.96 * s_pop / math.sqrt(n), "the population standard deviation (dividing by n): use n - 1"),
                                (1.96 * s / n, "s / n: the standard error divides by √n"),
                                (s / math.sqrt(n), "the standard error s / √n without the factor 1.96"),
                                (1.96 * s, "1.96 · s, without dividing by √n: that is the spread of single tasks, not of the mean")):
                if math.isclose(half, guess, rel_tol=1e-3):
                    hint = text
                    break
            raise AssertionError(f"half-width {half:.4f} should be {want_half:.4f} for n = {n} values; looks like {hint}")
    print("Right: mean ± 1.96 · s / √n, with s the sample standard deviation (n - 1).")
