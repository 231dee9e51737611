"""The one table of published results: every number the course quotes from a paper, with its source.

Lessons, the results page and checkers read numbers from here (:func:`published`), never type them.
Each entry names the paper, the table or section, the protocol and whether the evaluation is
transductive (batch norm using the statistics of the test batch), so that a comparison can say
which of our numbers is comparable with it and what differs.

Sources were read in: Finn, Abbeel & Levine (2017), arXiv:1703.03400v3, and github.com/cbfinn/maml;
Snell, Swersky & Zemel (2017), arXiv:1703.05175v2, and github.com/jakesnell/prototypical-networks;
Nichol, Achiam & Schulman (2018), arXiv:1803.02999v3 ("On First-Order Meta-Learning Algorithms")
and github.com/openai/supervised-reptile; Lake, Salakhutdinov & Tenenbaum (2015), Science
350(6266):1332-1338; Koch, Zemel & Salakhutdinov (2015), ICML Deep Learning Workshop. Matching
Networks' numbers (Vinyals et al. 2016) are as reprinted in Snell et al. Table 1 and Finn et al.
Table 1; Lake et al. (2013)'s baselines as listed in Koch et al. Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from metalearn_lab.validation import check_float, check_int


@dataclass(frozen=True)
class Published:
    """One published number.

    Attributes
    ----------
    key : str
        How the course refers to it (``published("maml-omniglot-5w1s")``).
    value : float
        The number as published: accuracy in percent, or a mean squared error.
    interval : float or None
        The published ± (a 95% confidence interval unless ``notes`` says otherwise); None if none was reported.
    unit : str
        ``"%"`` for accuracies, ``""`` for MSEs.
    paper : str
        Authors and year, as cited in the lessons (``"Finn et al. 2017"``).
    where : str
        Table, section or page of the paper.
    benchmark : str
        What was measured, in words.
    transductive : bool or None
        True when batch norm used the test batch's statistics; None when it does not apply.
    protocol : str
        The protocol and every difference from ours that matters when comparing.
    """

    key: str
    value: float
    interval: float | None
    unit: str
    paper: str
    where: str
    benchmark: str
    transductive: bool | None
    protocol: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_float("value", self.value))
        if self.interval is not None:
            object.__setattr__(self, "interval", check_float("interval", self.interval, low=0))

    def text(self, digits: int | None = None) -> str:
        """``"98.7 ± 0.4%"`` (or ``"0.35"``), as published; ``digits`` after the point (default 1 for %, 2 else)."""
        digits = (1 if self.unit == "%" else 2) if digits is None else check_int("digits", digits, minimum=0)
        number = f"{self.value:.{digits}f}"
        if self.interval is not None:
            number += f" ± {self.interval:.{digits}f}"
        return number + self.unit

    def citation(self) -> str:
        """``"98.7 ± 0.4% (Finn et al. 2017, Table 1; transductive)"``."""
        mode = {True: "; transductive", False: "; not transductive", None: ""}[self.transductive]
        return f"{self.text()} ({self.paper}, {self.where}{mode})"


_FINN_OMNIGLOT = ("rotation protocol; Finn's code: random 1100 train / 100 validation / 423 test characters, "
                  "Conv4 with stride-2 convolutions (no max-pooling), 1 query per class at test (batch norm sees the "
                  "N queries), inner loss summed over the support set (α = 0.4 on a sum is 2.0 on a mean), "
                  "meta-batch 32, 60,000 steps; 600 test tasks in the code")
_NICHOL_OMNIGLOT = ("Nichol et al.'s code: random 1200/423 split, no validation set, test characters not rotated, "
                    "Conv4 with stride-2 convolutions, 1 query per class at test; Adam inner loop")
_SNELL_OMNIGLOT = ("Vinyals' split file: 1028 train / 172 validation / 423 test characters, the test characters from "
                   "13 alphabets, 12 of them absent from training (Gurmukhi has 4 test and 41 training characters); "
                   "60-way training episodes; mean over 1,000 test episodes, no interval")

TABLE: tuple[Published, ...] = (
    # ---- Omniglot, rotation protocol
    Published("maml-omniglot-5w1s", 98.7, 0.4, "%", "Finn et al. 2017", "Table 1", "Omniglot 5-way 1-shot, MAML", True, _FINN_OMNIGLOT),
    Published("maml-omniglot-5w5s", 99.9, 0.1, "%", "Finn et al. 2017", "Table 1", "Omniglot 5-way 5-shot, MAML", True, _FINN_OMNIGLOT),
    Published("maml-omniglot-20w1s", 95.8, 0.3, "%", "Finn et al. 2017", "Table 1", "Omniglot 20-way 1-shot, MAML", True,
              _FINN_OMNIGLOT + "; 20-way: meta-batch 16, 5 inner steps of α = 0.1 in training and test"),
    Published("maml-omniglot-20w5s", 98.9, 0.2, "%", "Finn et al. 2017", "Table 1", "Omniglot 20-way 5-shot, MAML", True, _FINN_OMNIGLOT),
    Published("fomaml-omniglot-5w1s", 98.3, 0.5, "%", "Nichol et al. 2018", "Omniglot table (arXiv:1803.02999v3)",
              "Omniglot 5-way 1-shot, first-order MAML", True,
              "reported by Nichol et al. as '1st-order MAML + Transduction'; Finn et al. 2017 report first-order MAML "
              "on MiniImagenet only"),
    Published("fomaml-omniglot-20w1s", 89.4, 0.5, "%", "Nichol et al. 2018", "Omniglot table (arXiv:1803.02999v3)",
              "Omniglot 20-way 1-shot, first-order MAML", True, "as for 5-way"),
    Published("reptile-omniglot-5w1s", 95.39, 0.09, "%", "Nichol et al. 2018", "Omniglot table (arXiv:1803.02999v3)",
              "Omniglot 5-way 1-shot, Reptile", False, _NICHOL_OMNIGLOT + "; each query classified alone"),
    Published("reptile-transductive-omniglot-5w1s", 97.68, 0.04, "%", "Nichol et al. 2018",
              "Omniglot table (arXiv:1803.02999v3)", "Omniglot 5-way 1-shot, Reptile + transduction", True, _NICHOL_OMNIGLOT),
    Published("reptile-omniglot-20w1s", 88.14, 0.15, "%", "Nichol et al. 2018", "Omniglot table (arXiv:1803.02999v3)",
              "Omniglot 20-way 1-shot, Reptile", False, _NICHOL_OMNIGLOT),
    Published("protonet-omniglot-5w1s", 98.8, None, "%", "Snell et al. 2017", "Table 1 and §3.1",
              "Omniglot 5-way 1-shot, prototypical networks", False, _SNELL_OMNIGLOT),
    Published("protonet-omniglot-20w1s", 96.0, None, "%", "Snell et al. 2017", "Table 1 and §3.1",
              "Omniglot 20-way 1-shot, prototypical networks", False, _SNELL_OMNIGLOT),
    Published("matchingnet-omniglot-5w1s", 98.1, None, "%", "Vinyals et al. 2016", "Table 1 (as reprinted in Snell et al. 2017, Table 1)",
              "Omniglot 5-way 1-shot, matching networks", None, "no interval reported; cosine distance"),
    Published("matchingnet-omniglot-20w1s", 93.8, None, "%", "Vinyals et al. 2016", "Table 1 (as reprinted in Snell et al. 2017, Table 1)",
              "Omniglot 20-way 1-shot, matching networks", None, "no interval reported; cosine distance"),
    # ---- MiniImagenet, only for the first-order statement
    Published("maml-miniimagenet-5w1s", 48.70, 1.84, "%", "Finn et al. 2017", "Table 1", "MiniImagenet 5-way 1-shot, MAML", True,
              "5 inner steps of α = 0.01 in training, 10 at test"),
    Published("fomaml-miniimagenet-5w1s", 48.07, 1.75, "%", "Finn et al. 2017", "Table 1 and §5.2",
              "MiniImagenet 5-way 1-shot, first-order MAML", True, "about 33% faster than second-order MAML (§5.2)"),
    # ---- Lake's 20 within-alphabet one-shot runs (all_runs.zip)
    Published("humans-lake-runs", 95.5, None, "%", "Lake et al. 2015", "p. 1335 and Fig. 6A",
              "Lake's 20-way within-alphabet one-shot runs, people", None, "4.5% errors, 40 participants"),
    Published("bpl-lake-runs", 96.7, None, "%", "Lake et al. 2015", "p. 1335", "Lake's one-shot runs, Bayesian program learning",
              None, "3.3% errors: fewer than people's 4.5%; learns from the 30 background alphabets"),
    Published("hausdorff-lake-runs", 61.2, None, "%", "Lake et al. 2015", "p. 1335",
              "Lake's one-shot runs, modified Hausdorff distance on the images", None, "38.8% errors"),
    Published("pixel-nn-lake-runs", 21.7, None, "%", "Lake et al. 2013", "as listed by Koch et al. 2015, Table 2",
              "Lake's one-shot runs, nearest neighbour on raw pixels", None,
              "105 x 105 images; Koch et al. list the baselines of Lake et al. (2013)"),
    Published("siamese-koch", 92.0, None, "%", "Koch et al. 2015", "Table 2 and §4.3",
              "20-way within-alphabet one-shot trials, convolutional Siamese net", False,
              "not all_runs.zip: 400 trials Koch et al. generated themselves (10 evaluation alphabets, 4 held-out "
              "drawers); trained on 30 background alphabets x 12 drawers, model chosen on 320 trials of 10 other "
              "alphabets; 105 x 105 images, weighted-L1 verification head, affine distortions"),
    # ---- Sinusoid regression, K = 5 (Finn et al. 2017, Appendix C.1, Table 2)
    *(Published(f"sinusoid-maml-k5-{steps}step", value, None, "", "Finn et al. 2017", "Appendix C.1, Table 2 (arXiv v3)",
                f"sinusoid regression, K = 5, query MSE after {steps} gradient step(s), MAML", None,
                "meta-trained with K = 10, one inner step of α = 0.01, meta-batch 25; no interval reported")
      for steps, value in ((1, 0.67), (5, 0.38), (10, 0.35))),
    *(Published(f"sinusoid-pretrain-k5-{steps}step", value, None, "", "Finn et al. 2017", "Appendix C.1, Table 2 (arXiv v3)",
                f"sinusoid regression, K = 5, query MSE after {steps} gradient step(s), pretrained on all tasks", None,
                "fine-tuned with an automatically tuned step size (§5.1; the figures' legends show 0.01 at K = 5 and "
                "0.02 at K = 10); our baseline is fine-tuned with 0.01; no interval reported")
      for steps, value in ((1, 2.41), (5, 2.23), (10, 2.19))),
    # ---- 2-D point robot ("2D navigation"), meta-reinforcement learning (Finn et al. 2017, §5.3, Appendix C.2, Table 4)
    *(Published(f"maml-point-robot-{steps}step", value, None, "", "Finn et al. 2017", "Appendix C.2, Table 4 (arXiv v3)",
                f"2-D point robot, average return after {steps} policy-gradient update(s), MAML", None,
                "goals uniform in [-0.5, 0.5]^2, horizon 100, reward minus the distance to the goal (the paper's text says "
                "squared distance; the authors' code uses the distance); meta-trained with TRPO, meta-batch 20, one inner "
                "step of α = 0.1 on 20 episodes (Appendix A.2; their script uses 0.5), up to 500 meta-iterations, best "
                "model kept; tested with 40 episodes per update, α = 0.1 then 0.05; number of test goals and any "
                "interval not reported")
      for steps, value in ((0, -40.41), (1, -11.68), (2, -3.33), (3, -3.23))),
)

_BY_KEY = {entry.key: entry for entry in TABLE}
if len(_BY_KEY) != len(TABLE):  # pragma: no cover - caught by the tests
    raise RuntimeError("duplicate keys in the published results table")


def published(key: str) -> Published:
    """The published result called ``key``; ``KeyError`` lists the keys when there is none.

    >>> published("maml-omniglot-5w1s").citation()
    '98.7 ± 0.4% (Finn et al. 2017, Table 1; transductive)'
    """
    if key not in _BY_KEY:
        raise KeyError(f"no published result {key!r}; known: {', '.join(sorted(_BY_KEY))}")
    return _BY_KEY[key]
