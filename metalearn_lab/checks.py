"""Exercise checkers for the lessons: each raises AssertionError saying what is wrong, or prints one success line."""


# --- lesson 04 ---
# Exercise checkers for 04_maml_sinusoid: the inner loop with torch.func, and query MSE per task.


def _lesson04_setup(seed: int = 0):
    """A small SineMLP (a few pretraining steps, so its gradients are not tiny) and 6 sinusoid tasks."""
    import torch
    import torch.nn.functional as F

    from metalearn_lab.data.sinusoid import SinusoidTasks
    from metalearn_lab.models import SineMLP

    torch.manual_seed(seed)
    model = SineMLP()
    generator = torch.Generator().manual_seed(seed)
    batch = SinusoidTasks().sample(6, 5, 20, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        F.mse_loss(model(batch.x_query.reshape(-1, 1)), batch.y_query.reshape(-1, 1)).backward()
        optimizer.step()
    return model, batch


def _max_difference(a, b) -> tuple[float, str]:
    worst, name = 0.0, ""
    for k in b:
        d = float((a[k].detach() - b[k].detach()).abs().max())
        if d > worst:
            worst, name = d, k
    return worst, name


def check_sine_adapt(inner_loop) -> None:
    """Check an exercise's MAML inner loop against :func:`metalearn_lab.maml.adapt`.

    ``inner_loop(model, params, x_support, y_support, inner_steps, inner_lr)`` must return the
    dict of adapted parameters after ``inner_steps`` steps of gradient descent on the support MSE,
    without changing the model's weights and staying differentiable with respect to ``params``
    (second-order MAML). Raises ``AssertionError`` naming what differs; prints one line if right.
    """
    from collections.abc import Mapping

    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    from metalearn_lab.maml import adapt

    model, batch = _lesson04_setup()
    xs, ys, xq, yq = (t[0] for t in batch.as_tuple())
    params = dict(model.named_parameters())
    before = {k: v.detach().clone() for k, v in params.items()}
    inner_lr = 0.02

    def ref(steps, lr=inner_lr, first_order=False):
        return adapt(model, params, xs, ys, F.mse_loss, inner_steps=steps, inner_lr=lr, first_order=first_order)

    for steps in (1, 2, 0):
        got = inner_loop(model, params, xs, ys, steps, inner_lr)
        assert got is not None, ("inner_loop returned None: return the dict of adapted parameters "
                                 "{name: tensor}, like dict(model.named_parameters()) but moved")
        assert isinstance(got, Mapping), f"inner_loop should return a dict name -> tensor, got a {type(got).__name__}"
        assert set(got) == set(params), (f"the adapted dict needs the same keys as params; missing "
                                         f"{sorted(set(params) - set(got))}, unexpected {sorted(set(got) - set(params))}")
        changed = [k for k in params if not torch.equal(params[k].detach(), before[k])]
        assert not changed, (f"inner_loop changed the model's own weights in place ({changed[0]}, ...): "
                             "compute new tensors p - inner_lr * g instead of updating p")
        for k in params:
            assert got[k].shape == params[k].shape, f"adapted {k!r} has shape {tuple(got[k].shape)}, expected {tuple(params[k].shape)}"
        want = ref(steps)
        diff, name = _max_difference(got, want)
        if diff > 1e-5:
            if steps and _max_difference(got, ref(0))[0] < 1e-7:
                raise AssertionError(f"with inner_steps={steps} the parameters did not move: take the gradient "
                                     "steps and return the updated dict")
            for other in (steps - 1, steps + 1):
                if other >= 0 and _max_difference(got, ref(other))[0] < 1e-5:
                    raise AssertionError(f"with inner_steps={steps} your loop took {other} step(s)")
            uphill = {k: params[k] + (params[k] - want[k]) for k in params} if steps == 1 else None
            if uphill is not None and _max_difference(got, uphill)[0] < 1e-5:
                raise AssertionError("the step went uphill: theta' = theta - inner_lr * grad (minus, not plus)")
            if steps == 1 and _max_difference(got, ref(1, lr=inner_lr * 2))[0] < 1e-5:
                raise AssertionError("the step is twice too long: use inner_lr, not 2 * inner_lr")
            raise AssertionError(f"with inner_steps={steps}, inner_lr={inner_lr} your adapted {name!r} differs from "
                                 f"metalearn_lab.maml.adapt by {diff:.2e}: is the loss F.mse_loss on the support set?")

    # The meta-gradient: differentiate the query loss at theta' back to theta, through 2 inner steps.
    def meta_gradient(adapted):
        loss = F.mse_loss(functional_call(model, adapted, (xq,)), yq)
        return torch.autograd.grad(loss, list(params.values()), allow_unused=True)

    got = inner_loop(model, params, xs, ys, 2, inner_lr)
    assert any(v.requires_grad and v.grad_fn is not None for v in got.values()), (
        "the adapted parameters are detached from params, so no meta-gradient can flow back to theta: "
        "do not call .detach() or torch.no_grad() inside the inner loop")
    grads = meta_gradient(got)
    want = meta_gradient(ref(2))
    first = meta_gradient(ref(2, first_order=True))
    gap = max(float((g - w).abs().max()) if g is not None else float("inf") for g, w in zip(grads, want))
    if gap > 1e-5:
        gap_first = max(float((g - w).abs().max()) if g is not None else float("inf") for g, w in zip(grads, first))
        if gap_first < 1e-5:
            raise AssertionError("your meta-gradient is the first-order one: the inner gradients are constants. "
                                 "Pass create_graph=True to torch.autograd.grad so the meta-gradient sees the Hessian term")
        raise AssertionError(f"the meta-gradient through your inner loop differs from MAML's by {gap:.2e}")
    print("✓ inner_loop matches metalearn_lab.maml.adapt after 0, 1 and 2 steps, "
          "and gives the same second-order meta-gradient")


def check_query_mse(query_mse) -> None:
    """Check ``query_mse(model, batch, inner_steps, inner_lr) -> Tensor [n_tasks]``.

    The reference adapts to each task's support set with :func:`metalearn_lab.maml.adapt_and_predict`
    and averages the squared error over each task's query points. Raises ``AssertionError``
    naming the mistake; prints one line if right.
    """
    import torch
    import torch.nn.functional as F

    from metalearn_lab.maml import adapt_and_predict

    model, batch = _lesson04_setup(1)
    steps, lr = 3, 0.02

    def reference(b, inner_steps=steps, inner_lr=lr):
        pred = adapt_and_predict(model, b.as_tuple(), F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
        return ((pred - b.y_query) ** 2).mean(dim=(1, 2))

    got = query_mse(model, batch, steps, lr)
    assert got is not None, "query_mse returned None: return a tensor with one MSE per task, shape [n_tasks]"
    got = torch.as_tensor(got).detach().float()
    want = reference(batch)
    assert got.numel() != 1 or len(batch) == 1, (
        f"query_mse returned one number ({float(got.reshape(-1)[0]):.4f}); return one MSE per task, "
        f"shape [n_tasks] = [{len(batch)}], so that we can put a confidence interval on them")
    assert got.shape == want.shape, f"query_mse returned shape {tuple(got.shape)}; expected one MSE per task, {tuple(want.shape)}"

    def close(a, b):
        return torch.allclose(a, b, rtol=1e-4, atol=1e-6)

    if not close(got, want):
        if close(got, reference(batch, inner_steps=0)):
            raise AssertionError("these are the MSEs before adaptation: pass inner_steps to adapt_and_predict")
        if close(got, want.sqrt()):
            raise AssertionError("these are root-mean-square errors; drop the square root")
        swapped = type(batch)(batch.x_query, batch.y_query, batch.x_support, batch.y_support, batch.amplitude, batch.phase)
        pred_s = adapt_and_predict(model, batch.as_tuple()[:2] + batch.as_tuple()[:2], F.mse_loss, inner_steps=steps, inner_lr=lr)
        if close(got, ((pred_s - batch.y_support) ** 2).mean(dim=(1, 2))):
            raise AssertionError("you measured the error on the support points, which the model was just fitted to; "
                                 "measure it on the query points (x_query, y_query)")
        if close(got, reference(swapped)):
            raise AssertionError("support and query are swapped: adapt on (x_support, y_support), measure on (x_query, y_query)")
        raise AssertionError(f"per-task MSE differs from the reference (first task: yours {float(got[0]):.4f}, "
                             f"expected {float(want[0]):.4f}); average (prediction - y_query)**2 over each task's points")
    print(f"✓ query_mse gives the right per-task MSE on {len(batch)} tasks (mean {float(want.mean()):.4f} after {steps} steps)")


# --- lesson 05 ---
# Siamese networks: checkers for the contrastive loss, the verification threshold, one-shot prediction.


def _l05_as_float(value, what):
    import torch

    if value is None:
        raise AssertionError(f"{what} returned None: replace the placeholder ('# your code here') with your code")
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except Exception as err:  # noqa: BLE001 - any non-number is the learner's to fix
        raise AssertionError(f"{what} must return a number (a 0-d tensor or float), got {type(value).__name__}") from err
    if t.numel() != 1:
        raise AssertionError(f"{what} must return one number (a scalar), got shape {tuple(t.shape)}; "
                             "did you forget to average over the pairs?")
    return float(t)


def check_contrastive_loss(fn):
    """Check ``fn(z1, z2, same, margin)`` against :func:`metalearn_lab.siamese.contrastive_loss`.

    Tries random embeddings with all-same, all-different and mixed labels and two margins, then
    identical embeddings, whose gradient must be finite. A wrong answer raises ``AssertionError``
    saying what differs (labels swapped, d instead of d², a sum instead of a mean, a missing hinge,
    d² used as the distance, ...).
    """
    import torch

    from metalearn_lab.siamese import contrastive_loss, pair_distance

    def variants(z1, z2, same, margin):
        d = pair_distance(z1, z2)
        s = ((z1 - z2) ** 2).sum(-1)
        hinge = torch.clamp(margin - d, min=0)
        return {
            "the labels are swapped: same = 1 must pull the pair together (loss d²), same = 0 must push it apart "
            "(loss max(0, m − d)²); Hadsell et al. (2006) use the opposite convention, this course uses the source's":
                (1 - same) * d**2 + same * hinge**2,
            "you used d instead of d²: square the distance for same pairs and square the hinge max(0, m − d) for different pairs":
                same * d + (1 - same) * hinge,
            "the same-class term is d, not d²: square it": same * d + (1 - same) * hinge**2,
            "the different-class term is max(0, m − d), not its square: square the hinge": same * d**2 + (1 - same) * hinge,
            "the hinge is missing: use max(0, m − d)², so pairs already farther apart than the margin cost nothing":
                same * d**2 + (1 - same) * (margin - d) ** 2,
            "you used the squared distance d² where the formula has d (take the square root of the sum of squares)":
                same * s**2 + (1 - same) * torch.clamp(margin - s, min=0) ** 2,
            "the margin is ignored: the hinge must be max(0, m − d) with the given margin m":
                same * d**2 + (1 - same) * torch.clamp(1.0 - d, min=0) ** 2,
        }

    gen = torch.Generator().manual_seed(5)
    z1 = torch.randn(24, 6, generator=gen, dtype=torch.float64) * 0.35
    z2 = torch.randn(24, 6, generator=gen, dtype=torch.float64) * 0.35
    mixed = (torch.rand(24, generator=gen) < 0.5).double()
    cases = [("all pairs same = 1", torch.ones(24, dtype=torch.float64), 1.0),
             ("all pairs same = 0", torch.zeros(24, dtype=torch.float64), 1.0),
             ("mixed labels", mixed, 1.0),
             ("mixed labels, margin 2", mixed, 2.0)]

    def close(a, b):
        return abs(a - b) <= 1e-4 * max(1.0, abs(b))

    got = [_l05_as_float(fn(z1.clone(), z2.clone(), same.clone(), margin), "your contrastive loss") for _, same, margin in cases]
    want = [float(contrastive_loss(z1, z2, same, margin)) for _, same, margin in cases]
    if not all(close(g, w) for g, w in zip(got, want)):
        first = next(i for i, (g, w) in enumerate(zip(got, want)) if not close(g, w))
        name, _, margin = cases[first]
        where = f"On random embeddings ({name}, margin {margin:g}) you return {got[first]:.5f}, expected {want[first]:.5f}"
        if all(close(g, w * 24) for g, w in zip(got, want)):
            raise AssertionError(f"{where}: that is the sum over the 24 pairs; return the mean (the source writes a sum, the "
                                 "library averages, which keeps the learning rate independent of the number of pairs).")
        per_case = [variants(z1, z2, same, margin) for _, same, margin in cases]
        for message in per_case[0]:
            for reduce in ("mean", "sum"):
                values = [float(v[message].mean() if reduce == "mean" else v[message].sum()) for v in per_case]
                if all(close(g, v) for g, v in zip(got, values)):
                    extra = "" if reduce == "mean" else " (and you summed over pairs: take the mean)"
                    raise AssertionError(f"{where}: {message}{extra}.")
        raise AssertionError(f"{where}. Check the formula: mean over pairs of same·d² + (1 − same)·max(0, m − d)², "
                             "with d = ‖z1 − z2‖.")

    z = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    same = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    loss = fn(a, b, same, 1.0)
    value = _l05_as_float(loss.detach() if hasattr(loss, "detach") else loss, "your contrastive loss")
    if abs(value - 0.5) > 1e-3:
        raise AssertionError(f"For identical embeddings (d = 0) with labels [1, 0, 1, 0] and margin 1 the loss is "
                             f"(0 + 1 + 0 + 1) / 4 = 0.5, you return {value:.5f}.")
    if not getattr(loss, "requires_grad", False):
        raise AssertionError("your loss carries no gradient: compute it with torch operations on z1 and z2 "
                             "(no .item(), .detach() or NumPy), so that training can backpropagate through it")
    loss.backward()
    for name, t in (("z1", a), ("z2", b)):
        if t.grad is None or not bool(torch.isfinite(t.grad).all()):
            raise AssertionError(
                f"For identical embeddings (d = 0) the gradient with respect to {name} is {t.grad if t.grad is None else 'NaN or inf'}: "
                "the derivative of sqrt at 0 is infinite, and 0·∞ gives NaN. Keep it finite, e.g. take "
                "sqrt(clamp(d², min=1e-12)) as metalearn_lab.siamese.pair_distance does.")
    print("✓ contrastive loss: matches the library for same = 1, same = 0 and mixed labels, and identical "
          "embeddings give a finite gradient")


def _l05_best_accuracy(d, same):
    import torch

    order = torch.sort(torch.unique(d)).values
    candidates = torch.cat([order[:1] - 1.0, (order[1:] + order[:-1]) / 2, order[-1:] + 1.0])
    accuracies = torch.stack([((d < t).double() == same).double().mean() for t in candidates])
    best = int(accuracies.argmax())
    return float(candidates[best]), float(accuracies[best])


def check_threshold(fn):
    """Check ``fn(d, same) -> threshold``: "same if d < threshold" must reach the best accuracy on ``(d, same)``.

    Tested on made-up distances where the two histograms have different spreads, so that the midpoint
    between the two mean distances is *not* the best threshold.
    """
    import torch

    gen = torch.Generator().manual_seed(3)
    n = 400
    same = torch.cat([torch.ones(n), torch.zeros(n)]).double()
    d = torch.cat([(0.35 + 0.12 * torch.randn(n, generator=gen, dtype=torch.float64)).abs(),
                   (1.25 + 0.45 * torch.randn(n, generator=gen, dtype=torch.float64)).abs()])
    threshold = _l05_as_float(fn(d.clone(), same.clone()), "choose_threshold")
    _, best = _l05_best_accuracy(d, same)
    got = float(((d < threshold).double() == same).double().mean())
    if got >= best - 1e-9:
        print(f"✓ threshold {threshold:.3f} reaches the best accuracy on these pairs, {100 * best:.2f}%")
        return
    inverted = float(((d > threshold).double() == same).double().mean())
    midpoint = float((d[same == 1].mean() + d[same == 0].mean()) / 2)
    if abs(threshold - midpoint) < 1e-6:
        hint = ("it is the midpoint between the two mean distances, which is best only when both histograms have the "
                "same spread; try every candidate threshold (e.g. every distance in d) and keep the most accurate")
    elif inverted > got or not 0.05 < float((d < threshold).double().mean()) < 0.95:
        hint = ("it puts nearly every pair on one side, or suits the rule 'same if d > threshold'; same pairs have the "
                "*small* distances, so the rule is 'same if d < threshold'")
    else:
        hint = "try every candidate threshold (e.g. every distance in d, or midpoints between sorted distances) and keep the most accurate"
    raise AssertionError(f"With threshold {threshold:.3f} the rule 'same if d < threshold' is right on {100 * got:.2f}% of "
                         f"the pairs; the best threshold reaches {100 * best:.2f}%: {hint}.")


def check_one_shot_predict(fn):
    """Check ``fn(model, x_support, x_query) -> [Q]`` against :func:`metalearn_lab.siamese.nearest_support`."""
    import torch

    from metalearn_lab.siamese import nearest_support

    torch.manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    gen = torch.Generator().manual_seed(11)
    x_support = torch.randn(6, 1, 4, 4, generator=gen)
    x_query = torch.cat([x_support + 0.4 * torch.randn(6, 1, 4, 4, generator=gen),
                         torch.randn(6, 1, 4, 4, generator=gen)])
    with torch.no_grad():
        want = nearest_support(model, x_support, x_query)
        got = fn(model, x_support.clone(), x_query.clone())
    if got is None:
        raise AssertionError("one_shot_predict returned None: replace the placeholder ('# your code here') with your code")
    got = torch.as_tensor(got)
    if got.shape != want.shape:
        hint = (" — one per support image: is your distance matrix transposed? Rows must be queries, columns support images"
                if tuple(got.shape) == (len(x_support),) else "")
        raise AssertionError(f"one_shot_predict must return one support index per query, shape [{len(x_query)}]; "
                             f"got shape {tuple(got.shape)}{hint} (take argmin over the support axis of a "
                             "[queries, support] distance matrix)")
    if got.dtype.is_floating_point:
        raise AssertionError("one_shot_predict must return integer indices (e.g. from argmin), not distances")
    if torch.equal(got, want):
        print(f"✓ one-shot prediction: the nearest support embedding for all {len(want)} queries")
        return
    with torch.no_grad():
        z_s, z_q = model(x_support), model(x_query)
        farthest = torch.cdist(z_q, z_s).argmax(-1)
        pixels = torch.cdist(x_query.flatten(1), x_support.flatten(1)).argmin(-1)
    if torch.equal(got, farthest):
        hint = "you picked the *farthest* support image (argmax); the prediction is the nearest one (argmin)"
    elif torch.equal(got, pixels):
        hint = "you compared raw pixels; embed support and query with model(...) first and compare the embeddings"
    else:
        hint = "embed both sets with model(...), compute the [queries, support] Euclidean distances and take argmin per query"
    wrong = int((got != want).sum())
    raise AssertionError(f"one_shot_predict differs from the nearest support embedding on {wrong} of {len(want)} queries: {hint}.")


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


# --- lesson 03 ---
# Exercise checkers for 03_maml_math: a Hessian-vector product, and the fixed "find the bug" meta-gradient.


def _l03_tiny_task(seed: int = 0, hidden: int = 8):
    """A float64 SineMLP(hidden) and one sinusoid task: (model, x_support, y_support, x_query, y_query)."""
    import torch

    from metalearn_lab.models import SineMLP

    torch.manual_seed(seed)
    model = SineMLP(hidden=hidden).double()
    g = torch.Generator().manual_seed(seed)
    x_support = torch.rand(6, 1, generator=g, dtype=torch.float64) * 10 - 5
    x_query = torch.rand(8, 1, generator=g, dtype=torch.float64) * 10 - 5
    amplitude, phase = 1 + 3 * torch.rand(1, generator=g, dtype=torch.float64), torch.rand(1, generator=g, dtype=torch.float64)
    return model, x_support, amplitude * torch.sin(x_support - phase), x_query, amplitude * torch.sin(x_query - phase)


def _l03_as_dict(out, names, what):
    from collections.abc import Mapping

    import torch

    assert out is not None, f"{what} returned None: replace the placeholder with your code"
    if isinstance(out, Mapping):
        assert set(out) == set(names), (f"{what} must return a dict with one entry per parameter; missing "
                                        f"{sorted(set(names) - set(out))}, unexpected {sorted(set(out) - set(names))}")
        out = dict(out)
    elif isinstance(out, (tuple, list)) and len(out) == len(names) and all(isinstance(t, torch.Tensor) for t in out):
        out = dict(zip(names, out))
    else:
        raise AssertionError(f"{what} should return a dict name -> tensor (like dict(model.named_parameters())), "
                             f"got {type(out).__name__}")
    for k, v in out.items():
        assert isinstance(v, torch.Tensor), f"entry {k!r} should be a tensor, got {type(v).__name__}"
    return out


def _l03_rel(a, b) -> float:
    from metalearn_lab.maml import compare_gradients

    return compare_gradients(b, {k: a[k].to(b[k].dtype) for k in b})[1]


def check_hessian_vector_product(hvp) -> None:
    r"""Check ``hvp(f, params, v) -> dict``: :math:`\nabla^2 f(\theta)\,v` for a scalar ``f(params)``.

    Tested on the support loss of a small float64 sine MLP (``params`` are leaves with
    ``requires_grad=True``) and on a quadratic whose Hessian is known, against
    :func:`metalearn_lab.maml.hessian_vector_product`.

    >>> from metalearn_lab.maml import hessian_vector_product
    >>> check_hessian_vector_product(hessian_vector_product)
    ✓ H·v matches the library on a quadratic and on a sine MLP's support loss (never forming H).
    """
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    from metalearn_lab.maml import hessian_vector_product

    model, x_support, y_support, _, _ = _l03_tiny_task(1)
    matrix = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    cases = [
        ("the quadratic f(w) = ½ wᵀAw + bᵀw (Hessian A)",
         lambda p: 0.5 * p["w"] @ matrix @ p["w"] + p["w"].sum(),
         {"w": torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)}),
        ("a sine MLP's support loss",
         lambda p: F.mse_loss(functional_call(model, p, (x_support,)), y_support),
         {k: v.detach().clone() for k, v in model.named_parameters()}),
    ]
    for what, f, point in cases:
        g = torch.Generator().manual_seed(7)
        v = {k: torch.randn(t.shape, generator=g, dtype=torch.float64) for k, t in point.items()}
        params = {k: t.clone().requires_grad_() for k, t in point.items()}
        try:
            out = hvp(f, params, v)
        except RuntimeError as error:
            hint = ""
            if "does not require grad" in str(error):
                hint = (" The first torch.autograd.grad needs create_graph=True, so that the gradient can be "
                        "differentiated once more.")
            raise AssertionError(f"hvp raised RuntimeError on {what}: {error}.{hint}") from error
        got = _l03_as_dict(out, list(params), "hvp")
        want = hessian_vector_product(f, point, v)
        for k in want:
            assert tuple(got[k].shape) == tuple(want[k].shape), (
                f"entry {k!r} has shape {tuple(got[k].shape)}, expected {tuple(want[k].shape)} (the shape of the parameter)")
        rel = _l03_rel(got, want)
        if rel < 1e-8:
            continue
        gradient = dict(zip(params, torch.autograd.grad(f(params), list(params.values()))))
        if _l03_rel(got, gradient) < 1e-8:
            raise AssertionError(f"on {what} hvp returned the gradient ∇f, not H·v: differentiate the dot "
                                 "product ⟨∇f, v⟩ once more (a second torch.autograd.grad)")
        if _l03_rel(got, v) < 1e-8:
            raise AssertionError(f"on {what} hvp returned v itself: the result is the gradient of ⟨∇f(θ), v⟩ with respect to θ")
        for factor, text in ((-1.0, "has the wrong sign"), (2.0, "is twice too large"), (0.5, "is half as large as it should be")):
            if _l03_rel(got, {k: factor * t for k, t in want.items()}) < 1e-8:
                raise AssertionError(f"on {what} your H·v {text}")
        raise AssertionError(f"on {what} your H·v differs from the library's by a relative error of {rel:.2e}: "
                             "compute g = ∇f(θ) with create_graph=True, then the gradient of Σ_k ⟨g_k, v_k⟩ w.r.t. θ")
    print("✓ H·v matches the library on a quadratic and on a sine MLP's support loss (never forming H).")


def check_meta_gradient(meta_gradient_fn) -> None:
    r"""Check a fixed "find the bug" function against :func:`metalearn_lab.maml.meta_gradient`.

    ``meta_gradient_fn(model, x_support, y_support, x_query, y_query, loss_fn, inner_steps, inner_lr)``
    must return the MAML meta-gradient of one task, :math:`\nabla_\theta \mathcal{L}_{\text{query}}(\theta')`
    with :math:`\theta'` after ``inner_steps`` steps of gradient descent on the support loss, as a
    dict name → Tensor, and leave the model's weights :math:`\theta` unchanged.

    >>> import torch
    >>> from metalearn_lab.maml import meta_gradient
    >>> def fixed(model, xs, ys, xq, yq, loss_fn, inner_steps, inner_lr):
    ...     batch = (xs[None], ys[None], xq[None], yq[None])
    ...     return meta_gradient(model, dict(model.named_parameters()), batch, loss_fn,
    ...                          inner_steps=inner_steps, inner_lr=inner_lr)
    >>> check_meta_gradient(fixed)
    ✓ second-order meta-gradient through 1 and 3 inner steps, and θ is left untouched.
    """
    import torch
    import torch.nn.functional as F

    from metalearn_lab.maml import meta_gradient

    inner_lr = 0.05
    for inner_steps in (1, 3):
        model, xs, ys, xq, yq = _l03_tiny_task(2)
        names = [k for k, _ in model.named_parameters()]
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        batch = (xs[None], ys[None], xq[None], yq[None])

        def reference(first_order, params=None):
            params = before if params is None else params
            return meta_gradient(model, params, batch, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr,
                                 first_order=first_order)

        out = meta_gradient_fn(model, xs, ys, xq, yq, F.mse_loss, inner_steps, inner_lr)
        after = {k: v.detach().clone() for k, v in model.named_parameters()}
        changed = [k for k in names if not torch.equal(after[k], before[k])]
        got = _l03_as_dict(out, names, "your meta-gradient function")
        want = reference(False)
        for k in want:
            assert tuple(got[k].shape) == tuple(want[k].shape), (
                f"gradient {k!r} has shape {tuple(got[k].shape)}, expected {tuple(want[k].shape)}")
        if changed:
            raise AssertionError(
                f"your function changed the model's own weights in place ({changed[0]}, ...): the initialisation θ "
                "that MAML learns is lost after one task. Adapt a parameter dict instead "
                "(θ' = {k: p - inner_lr * g}) and evaluate it with torch.func.functional_call")
        rel = _l03_rel(got, want)
        if rel < 1e-8:
            continue
        if _l03_rel(got, reference(True)) < 1e-8:
            raise AssertionError(
                f"with inner_steps={inner_steps} you return the first-order gradient ∇L_query(θ'): the inner "
                "gradients were treated as constants. Compute them with torch.autograd.grad(..., create_graph=True) "
                "so the meta-gradient includes the (I - α∇²L_support) factors")
        fewer = meta_gradient(model, before, batch, F.mse_loss, inner_steps=inner_steps - 1, inner_lr=inner_lr)
        if _l03_rel(got, fewer) < 1e-8:
            raise AssertionError(f"with inner_steps={inner_steps} your inner loop took {inner_steps - 1} step(s)")
        raise AssertionError(f"with inner_steps={inner_steps}, inner_lr={inner_lr} your meta-gradient differs from "
                             f"metalearn_lab.maml.meta_gradient by a relative error of {rel:.2e}: query loss at θ', "
                             "differentiated with respect to the model's original parameters")
    print("✓ second-order meta-gradient through 1 and 3 inner steps, and θ is left untouched.")


# --- lesson 06 ---
# Exercise checkers for 06_maml_omniglot: ProtoNet prototypes and logits by hand; the evaluation
# loop that reports mean accuracy ± 95% CI over a fixed set of test tasks.


def _l06_close(a, b, tol=1e-5):
    import torch

    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol))


def check_protonet_by_hand(protonet_by_hand) -> None:
    """Check ``protonet_by_hand(z_support, y_support, z_query, n_way) -> (prototypes, logits)`` for one task.

    ``z_support`` ``[N*K, D]`` support embeddings in any order, ``y_support`` ``[N*K]``, ``z_query``
    ``[Q, D]``. Expected: ``prototypes`` ``[N, D]``, row ``c`` the mean embedding of class ``c``; ``logits``
    ``[Q, N]`` = minus the squared Euclidean distance from each query to each prototype, compared with
    :func:`metalearn_lab.protonet.prototypes` and :func:`metalearn_lab.protonet.squared_distances`.
    """
    import torch

    from metalearn_lab.protonet import prototypes, squared_distances

    for seed, (n_way, k_shot, dim, n_query) in enumerate([(3, 2, 4, 5), (5, 3, 6, 7)]):
        g = torch.Generator().manual_seed(100 + seed)
        y_support = torch.arange(n_way).repeat(k_shot)[torch.randperm(n_way * k_shot, generator=g)]
        y_support[: n_way] = torch.arange(n_way).flip(0)  # the first label seen is not 0
        z_support = torch.randn(n_way * k_shot, dim, generator=g)
        z_query = torch.randn(n_query, dim, generator=g)
        want_p = prototypes(z_support[None], y_support[None], n_way)[0]
        want_l = -squared_distances(z_query[None], want_p[None])[0]
        out = protonet_by_hand(z_support.clone(), y_support.clone(), z_query.clone(), n_way)
        assert out is not None, "protonet_by_hand returned None: replace the placeholder with your code"
        assert isinstance(out, (tuple, list)) and len(out) == 2, (
            f"protonet_by_hand should return a pair (prototypes, logits), got {type(out).__name__}")
        got_p, got_l = (torch.as_tensor(t).detach().double() for t in out)
        assert tuple(got_p.shape) == (n_way, dim), (
            f"prototypes should have shape [n_way, dim] = {(n_way, dim)}, got {tuple(got_p.shape)}")
        assert tuple(got_l.shape) == (n_query, n_way), (
            f"logits should have shape [n_query, n_way] = {(n_query, n_way)} (one row per query, one column per "
            f"class), got {tuple(got_l.shape)}")
        if not _l06_close(got_p, want_p):
            first = torch.stack([z_support[y_support == c][0] for c in range(n_way)])
            seen = list(dict.fromkeys(y_support.tolist()))
            if _l06_close(got_p, first):
                raise AssertionError(f"with k_shot={k_shot} your prototypes are the first support example of each class; "
                                     "a prototype is the MEAN of the class's K support embeddings")
            if _l06_close(got_p, want_p[seen]):
                raise AssertionError("your prototypes are in the order the labels first appear in y_support; row c must "
                                     "be the prototype of label c (the support set here is shuffled)")
            if _l06_close(got_p, z_support.double().mean(0).expand(n_way, dim)):
                raise AssertionError("every prototype is the mean of the whole support set; average only the embeddings "
                                     "whose label is c (z_support[y_support == c])")
            raise AssertionError(f"prototypes differ from the class means (max error "
                                 f"{float((got_p - want_p.double()).abs().max()):.3g}); row c = z_support[y_support == c].mean(0)")
        want_l = want_l.double()
        if not _l06_close(got_l, want_l, 1e-4):
            if _l06_close(got_l, -want_l, 1e-4):
                raise AssertionError("your logits are +squared distances: the nearest prototype would get the SMALLEST "
                                     "logit. ProtoNets use minus the squared distance")
            if _l06_close(got_l, -(-want_l).clamp_min(0).sqrt(), 1e-4) or _l06_close(got_l, (-want_l).sqrt(), 1e-4):
                raise AssertionError("your logits use the Euclidean distance, not its square; Snell et al. (2017) use "
                                     "the squared distance, -||z_query - c||^2")
            shift = got_l - want_l
            if _l06_close(shift - shift[:, :1], torch.zeros_like(shift), 1e-4):
                raise AssertionError("your logits differ from -d^2 by a constant per query: that is log-softmax (or "
                                     "another normalisation). Return the raw logits -d^2; cross_entropy normalises them")
            raise AssertionError(f"logits differ from -squared distance to the prototypes (max error "
                                 f"{float((got_l - want_l).abs().max()):.3g}); logits[q, c] = -((z_query[q] - prototypes[c])**2).sum()")
    print("✓ prototypes are class means and logits are minus squared distances: matches metalearn_lab.protonet.")


def _l06_fake_tasks(n_tasks=23):
    """A FixedEpisodes set on tiny random 'images' and a predictor (1-NN on pixels plus noise) with varied accuracy."""
    import torch

    from metalearn_lab.samplers import EpisodeSampler, FixedEpisodes

    g = torch.Generator().manual_seed(6)
    centres = torch.randn(12, 1, 1, 3, 3, generator=g)
    classes = centres + 0.9 * torch.randn(12, 20, 1, 3, 3, generator=g)
    tasks = FixedEpisodes(EpisodeSampler(classes, 4, 1, 3), n_tasks=n_tasks, seed=6)

    def predict(episode):
        xs = episode.x_support.flatten(2)
        xq = episode.x_query.flatten(2)
        return -torch.cdist(xq, xs) ** 2  # [B, N*Q, N]: one support image per class, ordered by label

    return tasks, predict


def _l06_reference_values(tasks, predict, batch_size):
    import torch

    per_task, per_batch, pooled = [], [], []
    for episode in tasks.batches(batch_size):
        right = (predict(episode).argmax(-1) == episode.y_query).float()  # [B, N*Q]
        per_task.extend(right.mean(-1).tolist())
        per_batch.append(float(right.mean()))
        pooled.extend(right.flatten().tolist())
    return torch.tensor(per_task, dtype=torch.float64), per_batch, torch.tensor(pooled, dtype=torch.float64)


def check_evaluation_loop(evaluate_tasks) -> None:
    """Check ``evaluate_tasks(predict, tasks, batch_size) -> (mean, ci95)``.

    ``predict(episode)`` returns logits ``[B, N*Q, N]`` for a batch of episodes; ``tasks`` is a
    :class:`~metalearn_lab.samplers.FixedEpisodes`. Expected: the accuracy of each task (fraction
    of its queries classified right), then their mean and the half-width of the 95% interval,
    ``1.96 * std / sqrt(n_tasks)`` with the sample standard deviation, as
    :func:`metalearn_lab.samplers.mean_confidence_interval` computes it. Checked on 23 toy tasks
    with ``batch_size=5``, so the last batch is short.
    """
    import math

    from metalearn_lab.samplers import mean_confidence_interval

    tasks, predict = _l06_fake_tasks()
    batch_size = 5
    per_task, per_batch, pooled = _l06_reference_values(tasks, predict, batch_size)
    want_mean, want_ci = mean_confidence_interval(per_task)
    out = evaluate_tasks(predict, tasks, batch_size)
    assert out is not None, "evaluate_tasks returned None: replace the placeholder with your code"
    assert isinstance(out, (tuple, list)) and len(out) == 2, (
        f"evaluate_tasks should return a pair (mean, ci95), got {out!r:.80}")
    mean, ci = out
    assert not isinstance(ci, (tuple, list)), (
        "the second value should be the half-width of the interval (one number, mean ± ci95), not the pair (low, high)")
    mean, ci = float(mean), float(ci)

    def near(a, b):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)

    if not near(mean, want_mean):
        if near(mean, 100 * want_mean):
            raise AssertionError("your mean is a percentage; return a fraction in [0, 1] (the lesson prints percentages)")
        if near(mean, sum(per_batch) / len(per_batch)):
            raise AssertionError(f"your mean averages the batch means; with {len(tasks)} tasks in batches of {batch_size} "
                                 "the last batch is shorter and gets too much weight. Collect one accuracy per TASK, "
                                 "then average those")
        first = per_task[:batch_size].mean().item()
        if near(mean, first):
            raise AssertionError("your mean uses only the first batch: loop over all of tasks.batches(batch_size)")
        raise AssertionError(f"mean accuracy is {mean:.4f}, expected {want_mean:.4f}: per task, the fraction of queries "
                             "whose argmax logit equals y_query; then the mean over all tasks")
    n = len(per_task)
    std = float(per_task.std(unbiased=True))
    if not near(ci, want_ci):
        if near(ci, std / math.sqrt(n)):
            raise AssertionError("your interval is the standard error std/sqrt(n); the 95% half-width is 1.96 times it")
        if near(ci, 1.96 * std):
            raise AssertionError("your interval is 1.96 * std; divide by sqrt(number of tasks) for the interval of the MEAN")
        if near(ci, 1.96 * float(per_task.std(unbiased=False)) / math.sqrt(n)):
            raise AssertionError("use the sample standard deviation (divide by n - 1: torch's std default, or "
                                 "unbiased=True), as mean_confidence_interval does")
        if near(ci, 1.96 * float(pooled.std(unbiased=True)) / math.sqrt(len(pooled))) or near(
                ci, 1.96 * float(pooled.std(unbiased=False)) / math.sqrt(len(pooled))):
            raise AssertionError("your interval treats every query as independent; the papers' interval is over "
                                 "TASKS (one accuracy per task), which is wider because queries of a task share its classes")
        if near(ci, 100 * want_ci):
            raise AssertionError("your interval is in percent; return a fraction like the mean")
        raise AssertionError(f"ci95 is {ci:.4f}, expected {want_ci:.4f} = 1.96 * std(per-task accuracies) / sqrt({n})")
    print(f"✓ mean {100 * want_mean:.1f}% ± {100 * want_ci:.1f}% over {n} tasks, batch by batch: matches "
          "mean_confidence_interval.")
