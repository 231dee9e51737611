"""Companion of the lesson "The ecosystem, and the source's questions answered".

What the libraries the source text names are and what state they are in (with sources and the
date they were looked up), how this course's functions map to their calls, a meta-gradient
computed with ``higher`` when it is installed (it is optional: never a dependency of the package)
and with ``torch.func`` alone, the figure and Try-it that compare them, and the exercises' checks.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from metalearn_lab.autodiff import compare_gradients
from metalearn_lab.controls import RATES_1_2_5
from metalearn_lab.data.sinusoid import SinusoidTasks
from metalearn_lab.exercises import WrongAnswer, checker, expect, require_answer
from metalearn_lab.maml import adapt_and_predict, meta_gradient
from metalearn_lab.models import SineMLP

#: When the facts below were looked up.
CHECKED_ON = "2026-11-30"

#: The libraries and data set of the source text's §7, and torch.func: what each is and its state.
#: Every fact has a source; PyPI dates are upload dates of the release files (pypi.org/pypi/NAME/json),
#: repository dates are commit dates of the default branch's last commit.
ECOSYSTEM: list[dict[str, str]] = [
    {"name": "learn2learn",
     "what": "PyTorch library for meta-learning research: MAML, Meta-SGD, ANIL, ProtoNets; task samplers "
             "(Taskset with NWays, KShots, LoadData, RemapLabels); vision benchmarks (Arnold et al. 2020)",
     "release": "0.2.0, 2023-06-03 (source only: compiles Cython at install)",
     "last_commit": "2023-07-04 (learnables/learn2learn; tag v0.2.1 of 2023-06-27 was not released on PyPI)",
     "pytorch": "setup.py asks torch>=1.1.0 and torchvision>=0.3.0, gym>=0.14.0, gsutil, qpth; no upper bound, "
                "no statement about PyTorch 2",
     "state": "no release or commit since mid-2023; needs torchvision, which does not install beside this course's "
              "CPU torch here, and gym, which its maintainers replaced by Gymnasium",
     "sources": "pypi.org/project/learn2learn (release history); learn2learn-0.2.0 sdist setup.py; "
                "github.com/learnables/learn2learn commit db5cee3"},
    {"name": "higher",
     "what": "turns a torch.nn.Module into a functional one and makes optimisers differentiable, so an unrolled "
             "inner loop can be differentiated (Grefenstette et al. 2019)",
     "release": "0.2.1, 2020-07-14 (pure-Python wheel)",
     "last_commit": "2021-10-26 (facebookresearch/higher, a README fix)",
     "pytorch": "install_requires ['torch'], README: PyTorch >= 1.3; it installs beside torch 2.13.0 and gives "
                "MAML's meta-gradient to rounding error (measured in this lesson)",
     "state": "unmaintained: no release since 2020; projects have moved to torch.func (e.g. ContinualAI/avalanche "
              "issue #1318, 2023-03-12: 'higher (which is not maintained anymore)')",
     "sources": "pypi.org/project/higher; github.com/facebookresearch/higher commit 15a247a, setup.py, README"},
    {"name": "torchmeta",
     "what": "data loaders for few-shot benchmarks (Omniglot, miniImageNet, ...) and MetaModule layers that take "
             "their weights as an argument (Deleu et al. 2019)",
     "release": "1.8.0, 2021-09-20",
     "last_commit": "2021-09-20 (tristandeleu/pytorch-meta, 'Bump version to 1.8.0')",
     "pytorch": "requires torch>=1.4.0,<1.10.0 and torchvision>=0.5.0,<0.11.0: cannot be installed with any "
                "PyTorch 2 release",
     "state": "inactive since 2021",
     "sources": "pypi.org/project/torchmeta (requires_dist of 1.8.0); github.com/tristandeleu/pytorch-meta commit d55d89e"},
    {"name": "torch.func",
     "what": "PyTorch's composable function transforms: grad, vmap, vjp, jvp, functional_call (formerly the "
             "functorch package, merged into PyTorch 2.0)",
     "release": "part of every PyTorch release since 2.0.0 (2023-03-15); this course pins 2.13.0 (2026-07-08), "
                "PyPI's newest is 2.15.0",
     "last_commit": "developed inside PyTorch itself",
     "pytorch": "ships with PyTorch",
     "state": "maintained; what this course's library is built on",
     "sources": "pypi.org/project/torch (release dates); docs.pytorch.org/docs/stable/func.html and "
                "func.migrating.html (functorch's APIs deprecated in favour of torch.func as of PyTorch 2.0)"},
    {"name": "Meta-Dataset",
     "what": "a benchmark, not a library: few-shot episodes drawn from 10 data sets (ILSVRC, Omniglot, Aircraft, "
             "Birds, Textures, QuickDraw, Fungi, VGG Flower, Traffic Signs, MSCOCO) with varying ways and shots; "
             "Omniglot split by alphabet (25/5/20) (Triantafillou et al. 2020)",
     "release": "not on PyPI; code and TensorFlow Datasets (TFDS) pipeline in google-research/meta-dataset",
     "last_commit": "2024-05-24 (leaderboard update; last code change 2022-12-22)",
     "pytorch": "none: a TensorFlow input pipeline (its setup.py installs tensorflow-gpu and tensorflow-datasets); "
                "the repository has no PyTorch loader",
     "state": "the reference implementation of a benchmark still in use; MD-v2 merged with VTAB (Dumoulin et al. 2021)",
     "sources": "github.com/google-research/meta-dataset README and setup.py, commit 1676095; arXiv:1903.03096"},
    {"name": "supervised-reptile",
     "what": "the source text's 'Few-Shot Learning with Reptile' is not a library: it is the TensorFlow reference "
             "code of the Reptile algorithm (Nichol et al. 2018), lesson 07",
     "release": "none (a research repository)",
     "last_commit": "2020-08-31 (openai/supervised-reptile, 'fix omniglot URL')",
     "pytorch": "none: TensorFlow 1 style code (tf.Session)",
     "state": "archived: its README says 'Status: Archive (code is provided as-is, no updates expected)'; the "
              "algorithm is ten lines in any framework (metalearn_lab.reptile)",
     "sources": "github.com/openai/supervised-reptile README and run_omniglot.py, commit 8f2b71c; arXiv:1803.02999"},
]

#: How this course's functions map to the libraries' calls (None: the library has no such piece).
MAPPING: list[dict[str, str | None]] = [
    {"course": "maml.adapt(model, params, x, y, loss_fn, inner_steps=, inner_lr=)",
     "learn2learn": "learner = l2l.algorithms.MAML(model, lr=α).clone(); learner.adapt(loss)",
     "higher": "with higher.innerloop_ctx(model, SGD(lr=α)) as (fmodel, diffopt): diffopt.step(loss)",
     "torchmeta": "params = gradient_update_parameters(model, loss, params, step_size=α) (model: a MetaModule)",
     "torch.func": "grads = grad(lambda p: loss_fn(functional_call(model, p, (x,)), y))(params); p - α·g"},
    {"course": "adapt(..., first_order=True)",
     "learn2learn": "MAML(model, lr, first_order=True)",
     "higher": "innerloop_ctx(..., track_higher_grads=False)",
     "torchmeta": "gradient_update_parameters(..., first_order=True)",
     "torch.func": "detach the inner gradients"},
    {"course": "maml.meta_loss(..., vectorize=True): a batch of tasks",
     "learn2learn": "a Python loop over tasks, one clone each",
     "higher": "a Python loop over tasks, one innerloop_ctx each",
     "torchmeta": "a loop over the batch of BatchMetaDataLoader",
     "torch.func": "vmap over the task dimension"},
    {"course": "maml.meta_gradient / meta_train_step",
     "learn2learn": "evaluation_loss.backward(); optimizer.step()",
     "higher": "query_loss.backward() inside the context; optimizer.step()",
     "torchmeta": "outer_loss.backward(); optimizer.step()",
     "torch.func": "grad of the whole meta-loss with respect to θ"},
    {"course": "adapt(..., inner_lr={name: tensor}) (Meta-SGD)",
     "learn2learn": "l2l.algorithms.MetaSGD(model, lr)",
     "higher": "innerloop_ctx(..., override={'lr': [tensors]})",
     "torchmeta": None,
     "torch.func": "a dict of learnable rates in the update"},
    {"course": "reptile.reptile_step",
     "learn2learn": "examples/vision/reptile_miniimagenet.py (an example, not an API)",
     "higher": None, "torchmeta": None,
     "torch.func": "plain SGD steps on a copy, then θ + ε(θ' − θ)"},
    {"course": "protonet.prototypes / protonet_logits",
     "learn2learn": "l2l.nn.PrototypicalClassifier, l2l.nn.protonet.compute_prototypes",
     "higher": None,
     "torchmeta": "torchmeta.utils.prototype.get_prototypes, prototypical_loss",
     "torch.func": "not needed (no inner loop)"},
    {"course": "samplers.EpisodeSampler(classes, n_way, k_shot, n_query)",
     "learn2learn": "l2l.data.Taskset(dataset, [NWays(n), KShots(k + q), LoadData, RemapLabels])",
     "higher": None,
     "torchmeta": "torchmeta.datasets.helpers.omniglot(folder, shots=k, ways=n) + BatchMetaDataLoader",
     "torch.func": None},
    {"course": "data.load_omniglot / experiments.omniglot_splits",
     "learn2learn": "l2l.vision.datasets.FullOmniglot",
     "higher": None,
     "torchmeta": "torchmeta.datasets.Omniglot",
     "torch.func": None},
    {"course": "autodiff.hessian_vector_product",
     "learn2learn": None, "higher": None, "torchmeta": None,
     "torch.func": "vjp(grad(f), params)[1](v)"},
]


def ecosystem_table() -> str:
    """The libraries' state as a Markdown table (columns: library, latest release, last commit, PyTorch, state)."""
    rows = ["| | what it is | latest release | last commit | PyTorch | state |", "| --- | --- | --- | --- | --- | --- |"]
    for e in ECOSYSTEM:
        rows.append(f"| **{e['name']}** | {e['what']} | {e['release']} | {e['last_commit']} | {e['pytorch']} | {e['state']} |")
    return "\n".join(rows)


def mapping_table() -> str:
    """:data:`MAPPING` as a Markdown table."""
    columns = ["course", "learn2learn", "higher", "torchmeta", "torch.func"]
    rows = ["| " + " | ".join(["this course"] + columns[1:]) + " |", "|" + " --- |" * len(columns)]
    for m in MAPPING:
        rows.append("| " + " | ".join(f"`{m[c]}`" if m[c] else "—" for c in columns) + " |")
    return "\n".join(rows)


def sources_list() -> str:
    """Where each row of :func:`ecosystem_table` comes from, with the date the facts were looked up."""
    return "\n".join(f"- **{e['name']}**: {e['sources']} (looked up {CHECKED_ON})." for e in ECOSYSTEM)


# --- meta-gradients from other implementations --------------------------------------------------------


def higher_installed() -> bool:
    """Whether the optional ``higher`` package can be imported here."""
    return importlib.util.find_spec("higher") is not None


def higher_meta_gradient(model: torch.nn.Module, batch, loss_fn, *, inner_steps: int, inner_lr: float) -> dict[str, torch.Tensor]:
    """MAML's meta-gradient computed with ``higher`` (Grefenstette et al. 2019): a differentiable SGD inner loop.

    The mean over the batch's tasks of the query loss after ``inner_steps`` SGD steps of size
    ``inner_lr`` on the support loss, differentiated with respect to the model's weights, as
    :func:`metalearn_lab.maml.meta_gradient` computes it. Leaves the model's weights and ``.grad``
    as they were. Raises ``ModuleNotFoundError`` (with how to install it) when ``higher`` is not
    installed: it is optional, never a dependency of this package.
    """
    if not higher_installed():
        raise ModuleNotFoundError("higher is not installed (it is optional): pip install higher")
    import higher

    params = list(model.parameters())
    saved = [None if p.grad is None else p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    inner_optimizer = torch.optim.SGD(params, lr=inner_lr)
    n_tasks = batch[0].shape[0]
    try:
        for x_support, y_support, x_query, y_query in zip(*batch):
            with higher.innerloop_ctx(model, inner_optimizer, copy_initial_weights=False) as (fmodel, diffopt):
                for _ in range(inner_steps):
                    diffopt.step(loss_fn(fmodel(x_support), y_support))
                (loss_fn(fmodel(x_query), y_query) / n_tasks).backward()
        return {name: p.grad.detach().clone() for (name, _), p in zip(model.named_parameters(), params)}
    finally:
        for p, g in zip(params, saved):
            p.grad = g


def torch_func_meta_gradient(model: torch.nn.Module, batch, loss_fn, *, inner_steps: int, inner_lr: float) -> dict[str, torch.Tensor]:
    """MAML's meta-gradient with ``torch.func`` alone: ``grad`` of a function of the weights that adapts and scores.

    A second implementation of :func:`metalearn_lab.maml.meta_gradient` (no autograd.grad, no
    create_graph: ``torch.func.grad`` nests), used to test the comparison in this lesson.
    """
    buffers = dict(model.named_buffers())

    def loss_of(p, x, y):
        return loss_fn(functional_call(model, (p, buffers), (x,)), y)

    def meta_loss_of(params):
        total = 0.0
        for x_support, y_support, x_query, y_query in zip(*batch):
            adapted = params
            for _ in range(inner_steps):
                g = grad(loss_of)(adapted, x_support, y_support)
                adapted = {k: adapted[k] - inner_lr * g[k] for k in adapted}
            total = total + loss_of(adapted, x_query, y_query)
        return total / batch[0].shape[0]

    params = {k: v.detach() for k, v in model.named_parameters()}
    return grad(meta_loss_of)(params)


def implementations() -> dict[str, Any]:
    """The meta-gradient implementations compared in this lesson (``higher`` only where installed)."""
    found: dict[str, Any] = {
        "ours, vmap": lambda m, b, f, **kw: meta_gradient(m, dict(m.named_parameters()), b, f, vectorize=True, **kw),
        "ours, loop": lambda m, b, f, **kw: meta_gradient(m, dict(m.named_parameters()), b, f, vectorize=False, **kw),
        "torch.func only": torch_func_meta_gradient,
    }
    if higher_installed():
        found["higher"] = higher_meta_gradient
    found["first-order MAML (not the same)"] = lambda m, b, f, **kw: meta_gradient(m, dict(m.named_parameters()), b, f,
                                                                                  first_order=True, **kw)
    return found


def compare_implementations(reference, others: dict[str, Any], model: torch.nn.Module, batch, loss_fn, *,
                            inner_steps: int, inner_lr: float) -> dict[str, dict[str, float]]:
    """Relative error and cosine of each implementation's meta-gradient against ``reference``'s.

    Every implementation is called as ``fn(model, batch, loss_fn, inner_steps=, inner_lr=)`` and
    returns a dict name -> tensor. Returns ``{name: {"relative_error", "cosine"}}``.
    """
    truth = reference(model, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr)
    out = {}
    for name, fn in others.items():
        cos, rel = compare_gradients(truth, fn(model, batch, loss_fn, inner_steps=inner_steps, inner_lr=inner_lr))
        out[name] = {"relative_error": rel, "cosine": cos}
    return out


def comparison_setup(seed: int = 0, n_tasks: int = 4):
    """A float64 sine network and a batch of sinusoid tasks (K = 5 support, 5 query points)."""
    torch.manual_seed(seed)
    model = SineMLP().double()
    batch = SinusoidTasks().sample(n_tasks, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return model, batch.as_tuple()


def draw_agreement(inner_steps: int, inner_lr: float, *, setup=None):
    """The Try-it figure: each implementation's relative difference from ``maml.meta_gradient`` (log scale)."""
    model, batch = setup or comparison_setup()
    found = implementations()
    reference = found.pop("ours, loop")
    errors = compare_implementations(reference, found, model, batch, F.mse_loss, inner_steps=inner_steps, inner_lr=inner_lr)
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    names = list(errors)
    values = [max(errors[n]["relative_error"], 1e-17) for n in names]
    colors = ["tab:red" if "first-order" in n else "tab:blue" for n in names]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(1e-17, 10)
    ax.axvline(1e-12, color="0.5", ls=":", lw=1)
    for i, v in enumerate(values):
        ax.text(v * 1.5, i, f"{errors[names[i]]['relative_error']:.1e}", va="center", fontsize=8)
    ax.set(xlabel="relative difference from metalearn_lab.maml.meta_gradient (float64)",
           title=f"MAML meta-gradient, {inner_steps} inner step{'s' if inner_steps > 1 else ''}, α = {inner_lr:g}")
    ax.title.set_fontsize(9)
    fig.subplots_adjust(left=0.3, right=0.97, bottom=0.2, top=0.88)
    return fig


#: The inner learning rates the agreement Try-it offers: at 0.5, four or five inner steps overflow (NaN) on its task.
AGREEMENT_RATES = tuple(r for r in RATES_1_2_5 if 0.001 <= r <= 0.2)


def agreement_widget(setup=None):
    """Live Try-it: inner steps and inner learning rate; every implementation recomputed."""
    import ipywidgets as widgets
    from IPython.display import display

    from metalearn_lab.controls import fit_labels, rate_slider, show_png

    setup = setup or comparison_setup()
    steps = widgets.IntSlider(value=1, min=1, max=5, description="inner steps")
    lr = rate_slider(0.1, AGREEMENT_RATES, description="inner lr α")
    fit_labels(steps, lr)
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            show_png(draw_agreement(steps.value, lr.value, setup=setup))

    steps.observe(redraw, "value")
    lr.observe(redraw, "value")
    redraw()
    display(widgets.VBox([steps, lr, out]))


def agreement_explorer(setup=None):
    """The book's twin of :func:`agreement_widget` (pre-rendered: 3 step counts × 3 of its rates)."""
    from metalearn_lab.tryit import explorer

    setup = setup or comparison_setup()
    return explorer(lambda inner_steps, inner_lr: draw_agreement(inner_steps, inner_lr, setup=setup),
                    {"inner_steps": [1, 2, 5], "inner_lr": [0.01, 0.1, 0.2]}, initial={"inner_steps": 1, "inner_lr": 0.1},
                    labels={"inner_steps": "inner steps", "inner_lr": "inner lr α"},
                    title="Which implementations compute MAML's meta-gradient? (pre-rendered)")


# --- exercises ---------------------------------------------------------------------------------------


@checker("Exercise 1: MAML's meta-gradient with torch.func")
def check_torch_func_meta_gradient(meta_gradient_func):
    """``meta_gradient_func(model, params, batch, inner_steps, inner_lr) -> {name: tensor}`` (MSE loss)."""
    model, batch = comparison_setup(seed=1, n_tasks=3)
    params = {k: v.detach() for k, v in model.named_parameters()}
    got = require_answer(meta_gradient_func(model, params, batch, 2, 0.1), "meta_gradient_func(model, params, batch, 2, 0.1)")
    expect(isinstance(got, dict) and set(got) == set(params),
           f"return a dict with one gradient per parameter ({sorted(params)[:2]}...), as torch.func.grad of a "
           "function of the params dict does")
    truth = meta_gradient(model, dict(model.named_parameters()), batch, F.mse_loss, inner_steps=2, inner_lr=0.1)
    first = meta_gradient(model, dict(model.named_parameters()), batch, F.mse_loss, inner_steps=2, inner_lr=0.1, first_order=True)
    one_step = meta_gradient(model, dict(model.named_parameters()), batch, F.mse_loss, inner_steps=1, inner_lr=0.1)
    if compare_gradients(first, got)[1] < 1e-9:
        raise WrongAnswer("this is first-order MAML: the inner gradient was detached (or computed outside the function "
                          "that grad differentiates); compute it with grad(...) inside meta_loss_of(params)")
    if compare_gradients(one_step, got)[1] < 1e-9:
        raise WrongAnswer("this is the meta-gradient after ONE inner step: loop inner_steps times")
    cos, rel = compare_gradients(truth, got)
    if cos < -0.99:
        raise WrongAnswer("the gradient points the wrong way: the inner step is p - inner_lr * g, and the answer is "
                          "the gradient of the loss, not its negative")
    if cos > 1 - 1e-9 and rel > 1e-6:
        raise WrongAnswer(f"the direction is right but the size is off by a constant factor ({1 + rel:.3g} or "
                          f"{1 - rel:.3g}): average the query losses over the tasks (divide the sum by the number of "
                          "tasks), and use the mean squared error")
    expect(rel < 1e-9, f"not MAML's meta-gradient (relative error {rel:.2g}, cosine {cos:.4f})")
    return f"equals metalearn_lab.maml.meta_gradient to {rel:.0e} (float64)"


def faq_tasks(n_tasks: int = 100):
    """The tasks of Exercise 2: ``n_tasks`` sinusoid tasks with K = 5 support and 100 query points (seed 77)."""
    return SinusoidTasks().sample(n_tasks, 5, 100, generator=torch.Generator().manual_seed(77))


def query_mse(model, tasks, steps: int) -> float:
    """Mean query MSE over ``tasks`` after ``steps`` gradient steps of 0.01 on each task's support set."""
    batch = tasks.as_tuple()
    prediction = adapt_and_predict(model, batch, F.mse_loss, inner_steps=steps, inner_lr=0.01)
    return float(((prediction - batch[3]) ** 2).mean())


@checker("Exercise 2: the evidence for meta-learning versus transfer learning")
def check_transfer_evidence(evidence):
    """``evidence(maml_model, pretrained_model, tasks) -> (MAML after 1 step, pretrained after 10 steps)``."""
    from metalearn_lab.experiments import load_experiment

    maml_model, _ = load_experiment("sinusoid-maml", progress=False)
    pretrained_model, _ = load_experiment("sinusoid-pretrain", progress=False)
    tasks = faq_tasks()
    got = require_answer(evidence(maml_model, pretrained_model, tasks), "evidence(maml_model, pretrained_model, tasks)")
    expect(isinstance(got, (tuple, list)) and len(got) == 2, "return two numbers: (MAML after 1 step, pretrained after 10 steps)")
    maml_1, pretrained_10 = (float(v) for v in got)
    truth = {(m, s): query_mse(model, tasks, s) for m, model in (("maml", maml_model), ("pretrained", pretrained_model))
             for s in (0, 1, 10)}

    def near(a, b):
        return abs(a - b) <= 1e-4 * max(1.0, abs(b))

    if near(maml_1, truth["pretrained", 1]) or near(pretrained_10, truth["maml", 10]):
        raise WrongAnswer("the two models are swapped: the first number is MAML's, the second the pretrained model's")
    if near(maml_1, truth["maml", 10]):
        raise WrongAnswer("MAML's number is after 10 steps: the evidence is MAML after ONE step against the pretrained model after ten")
    if near(pretrained_10, truth["pretrained", 1]) or near(pretrained_10, truth["pretrained", 0]):
        raise WrongAnswer("the pretrained model's number is not after 10 steps of α = 0.01 on the support set")
    if near(maml_1, truth["maml", 0]):
        raise WrongAnswer("MAML's number is before adaptation (0 steps)")
    expect(near(maml_1, truth["maml", 1]), f"MAML's query MSE after one step of α = 0.01 should be {truth['maml', 1]:.3f}, "
                                           f"got {maml_1:.3f}: adapt on the support set, score on the query points")
    expect(near(pretrained_10, truth["pretrained", 10]), f"the pretrained model's query MSE after 10 steps should be "
                                                        f"{truth['pretrained', 10]:.3f}, got {pretrained_10:.3f}")
    return (f"MAML after 1 step {maml_1:.3f}, pretrained after 10 steps {pretrained_10:.3f}: "
            f"{pretrained_10 / maml_1:.1f} times MAML's error")


# --- the FAQ's evidence ---------------------------------------------------------------------------------

#: Which lesson trained each shipped experiment (by name prefix), for the evidence table.
LESSON_OF = {"sinusoid-maml": "04", "sinusoid-pretrain": "04", "omniglot-maml": "06", "omniglot-fomaml": "06",
             "omniglot-protonet": "06", "omniglot-reptile": "07", "omniglot-siamese": "05", "sinusoid-bayes": "08",
             "sinusoid-cnp": "09", "sinusoid-transformer": "09", "preference": "10", "point-robot": "10"}


def results_rows(results: dict[str, dict[str, Any]]) -> str:
    """The shipped results (``metalearn_lab.report.load_results()``) as a Markdown table: lesson, run, metric, value."""
    rows = ["| lesson | run | what is measured | result |", "| --- | --- | --- | --- |"]
    for name, r in sorted(results.items(), key=lambda kv: (_lesson_of(kv[0]), kv[0])):
        metric = str(r.get("metric", ""))
        scale, unit = (100.0, "%") if metric.startswith("accuracy") else (1.0, "")
        value = f"{scale * float(r['mean']):.3g}{unit} ± {scale * float(r.get('ci95', float('nan'))):.2g}{unit}"
        rows.append(f"| {_lesson_of(name)} | `{name}` | {metric} | {value} |")
    return "\n".join(rows)


def _lesson_of(name: str) -> str:
    return next((lesson for prefix, lesson in LESSON_OF.items() if name.startswith(prefix)), "–")


def limitations_summary(directory=None) -> str:
    """Lesson 11's measured limitations, from its shipped sweeps, as Markdown bullet points."""
    from metalearn_lab import sweeps

    kwargs = {} if directory is None else {"directory": directory}
    lines = ["- **Compute** ([lesson 11](11_challenges.md) §1, lessons 03 and 07): the memory of a meta-step grows in "
             "proportion to the tasks per step and to the network's activations; second-order MAML's also with the "
             "inner steps."]
    sensitivity = sweeps.load_sweep("sinusoid-sensitivity", **kwargs)
    if sensitivity is not None:
        values = sorted(sweeps.value(p) for p in sensitivity["points"])
        blown = sum(1 for v in values if not v < 20)
        kept = [v for v in values if v < 20]
        best = sweeps.best_point(sensitivity)
        lines.append(f"- **Hyper-parameters** (lesson 11 §2): over {len(values)} short MAML runs on sinusoids (one "
                     f"setting each) the validation MSE ranged from {values[0]:.2f} to {kept[-1]:.2f}"
                     + (f", and {blown} run(s) diverged" if blown else "")
                     + f" (median {values[len(values) // 2]:.2f}); the best setting was {best['values']}.")
    shift = sweeps.load_sweep("sinusoid-shift", **kwargs)
    if shift is not None:
        by = {tuple(p["values"]["amplitude"]): p for p in shift["points"]}
        low, high = by.get((0.1, 2.5)), by.get((2.5, 5.0))
        if low and high:
            a = float(low["test_on"]["A 2.5-5"]["by_steps"]["1"]["mean"])
            b = float(high["test_on"]["A 2.5-5"]["by_steps"]["1"]["mean"])
            lines.append(f"- **Task distribution** (lesson 11 §3): on amplitudes 2.5-5, a model meta-trained on "
                         f"amplitudes 0.1-2.5 had {a / b:.1f} times the one-step error of one trained on 2.5-5 "
                         f"({a:.2f} against {b:.2f}).")
    pool = sweeps.load_sweep("sinusoid-task-pool", **kwargs)
    if pool is not None:
        rows = sorted(pool["points"], key=lambda p: p["values"]["n_train_tasks"] or math.inf)
        smallest = rows[0]
        lines.append(f"- **Number of tasks** (lesson 11 §4): meta-trained on {smallest['values']['n_train_tasks']} "
                     f"task(s), MAML's error on new tasks was {float(smallest['test']['by_steps']['10']['mean']):.2f} "
                     f"against {float(smallest['train_tasks']['mean']):.2f} on its training task(s); with a new task "
                     f"every time, {float(rows[-1]['test']['by_steps']['10']['mean']):.2f}.")
    lines.append("- **Debugging** (lesson 11 §5): three planted bugs (a first-order meta-gradient, running statistics "
                 "written during evaluation, query data in the inner loop) run without an error; five checks that can "
                 "fail find them.")
    return "\n".join(lines)
