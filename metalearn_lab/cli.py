"""``metalearn-lab``: train, evaluate, list and ship the experiments; fetch Omniglot.

Examples::

    metalearn-lab list
    metalearn-lab train sinusoid-maml
    metalearn-lab train omniglot-protonet-5w1s --device cuda
    metalearn-lab train omniglot-maml-5w1s --time-limit 3600   # pause after an hour; run again to go on
    metalearn-lab evaluate omniglot-protonet-5w1s            # the run in ./runs, or the shipped one
    metalearn-lab evaluate runs/omniglot-maml-5w1s/checkpoint.pt --tasks 100
    metalearn-lab ship omniglot-protonet-5w1s                # copy a finished run into the package
    metalearn-lab ship omniglot-protonet-5w1s --reevaluate   # its test evaluation again, with today's code
    metalearn-lab select runs/sinusoid-maml-seed0 runs/sinusoid-maml-seed1   # choose on validation tasks
    metalearn-lab download                                   # needs internet
    metalearn-lab student-copy class/                        # the lessons without solutions, to hand out
    metalearn-lab grade class/*/*.ipynb --out grades.csv     # run students' notebooks, table of results
    metalearn-lab sweep sinusoid-sensitivity --ship          # a grid of short runs; its JSON into the package
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def _cmd_list(args) -> int:
    from metalearn_lab.experiments import EXPERIMENTS
    from metalearn_lab.training import shipped_checkpoint

    for name, config in EXPERIMENTS.items():
        shipped = "shipped" if shipped_checkpoint(name) else "-"
        print(f"{name:26s} {config.algorithm:18s} {config.iterations:>6d} steps  {shipped}")
    return 0


def _cmd_train(args) -> int:
    from metalearn_lab.experiments import get_config, run_dir, train_experiment

    config = get_config(args.experiment, quick=args.quick)
    changes = {k: v for k, v in {"iterations": args.iterations, "seed": args.seed}.items() if v is not None}
    if changes:
        config = config.replace(**changes)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else run_dir(config.name)
    results = train_experiment(config, device=args.device, out_dir=out, resume=not args.restart, progress=not args.no_progress,
                               time_limit=args.time_limit)
    if results.get("paused"):
        print(f"paused at step {results['step']} of {results['iterations']} after the time limit; "
              f"{out / 'checkpoint.pt'} holds the run: the same command continues it")
        return 0
    print(json.dumps({k: results[k] for k in ("experiment", "metric", "mean", "ci95", "n_tasks", "train_cpu_s", "train_wall_s")}, indent=1))
    print(f"wrote {out / 'checkpoint.pt'} and {out / 'results.json'}")
    return 0


def _cmd_evaluate(args) -> int:
    from metalearn_lab.experiments import EXPERIMENTS, ExperimentConfig, build_model, evaluate_experiment, run_dir
    from metalearn_lab.shipping import without_values
    from metalearn_lab.training import load_checkpoint, shipped_checkpoint

    target = args.checkpoint
    if target in EXPERIMENTS:
        path = run_dir(target) / "checkpoint.pt"
        if not path.exists():
            path = shipped_checkpoint(target)
        if path is None:
            print(f"no run or shipped checkpoint for {target}; train it with `metalearn-lab train {target}`", file=sys.stderr)
            return 2
    else:
        path = Path(target)
    ckpt = load_checkpoint(path)
    config = ExperimentConfig.from_dict(ckpt["config"])
    model = build_model(config)
    model.load_state_dict(ckpt["model"])
    if args.threads:
        torch.set_num_threads(args.threads)
    results = without_values(evaluate_experiment(config, model, n_tasks=args.tasks, device=args.device,
                                                 progress=not args.no_progress))
    print(json.dumps({"checkpoint": str(path), **results}, indent=1))
    return 0


def _cmd_ship(args) -> int:
    from metalearn_lab.shipping import REEVALUATION_REASON, read_manifest, reevaluate_shipped, ship_run

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run or not args.reevaluate:
        entry = ship_run(args.experiment, Path(args.run) if args.run else None, overwrite=args.overwrite)
    if args.reevaluate:
        reason = args.reason or (REEVALUATION_REASON if not args.run else (
            "the run's results predate per-task values and the transductive field; same checkpoint, same test tasks"))
        reevaluate_shipped(args.experiment, reason=reason, device=args.device)
        entry = read_manifest()[args.experiment]
    print(json.dumps(entry, indent=1))
    return 0


def _cmd_download(args) -> int:
    from metalearn_lab.data.omniglot import download_omniglot

    folder = download_omniglot(args.root)
    print(f"Omniglot is in {folder}")
    return 0


def _cmd_select(args) -> int:
    from metalearn_lab.experiments.selection import select_run

    if args.threads:
        torch.set_num_threads(args.threads)
    report = select_run(args.runs, n_tasks=args.tasks, device=args.device)
    print(f"{'run':40s} {'seed':>5s} {'validation':>12s} {'test':>12s}")
    for row in report["runs"]:
        mark = "  <- chosen" if row["run"] == report["chosen"] else ""
        print(f"{row['run']:40s} {row['seed']:5d} {row['validation']['mean']:12.4g} {row['test']['mean']:12.4g}{mark}")
    print(f"rule: {report['rule']}; test mean over runs {report['test_mean_over_runs']:.4g} "
          f"(standard deviation {report['test_stdev_over_runs']:.3g})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def _cmd_student_copy(args) -> int:
    from metalearn_lab.classroom import student_copy

    written = student_copy(args.out_dir, lessons=args.lessons or None, overwrite=args.force)
    for path in written:
        print(path)
    print(f"wrote {len(written)} student notebooks (solutions removed) to {args.out_dir}")
    return 0


def _cmd_grade(args) -> int:
    from metalearn_lab.classroom import grade, summary

    rows = grade(args.submissions, out_csv=args.out, timeout=args.timeout, quick=not args.classroom, overwrite=args.force)
    print(summary(rows))
    if args.out:
        print(f"wrote {len(rows)} rows to {args.out}")
    return 0


def _cmd_sweep(args) -> int:
    from metalearn_lab import sweeps

    sweep = sweeps.get_sweep(args.sweep)
    out = Path(args.out) if args.out else (sweeps.SHIPPED_SWEEPS_DIR if args.ship else Path("runs") / "sweeps") / f"{sweep.name}.json"
    results = sweeps.run_sweep(sweep, quick=args.quick, out=out, progress=not args.no_progress, threads=args.threads or None)
    best = sweeps.best_point(results)
    print(f"{len(results['points'])} points; best on validation: {best['values']} "
          f"(validation {sweeps.value(best):.4g}, test {sweeps.value(best, 'test'):.4g})")
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metalearn-lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments and which are shipped").set_defaults(func=_cmd_list)

    train = sub.add_parser("train", help="train (or resume) an experiment")
    train.add_argument("experiment")
    train.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    train.add_argument("--out", help="run folder (default: ./runs/EXPERIMENT or $METALEARN_LAB_RUNS/EXPERIMENT)")
    train.add_argument("--iterations", type=int, help="override the number of meta-training steps")
    train.add_argument("--seed", type=int)
    train.add_argument("--quick", action="store_true", help="a tiny run that only exercises the code path")
    train.add_argument("--restart", action="store_true", help="ignore an existing checkpoint of the same config")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                       help="pause (checkpoint, no evaluation) after this much wall time; the same command resumes")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="re-evaluate a checkpoint on its experiment's test tasks")
    ev.add_argument("checkpoint", help="an experiment name or a checkpoint path")
    ev.add_argument("--tasks", type=int, default=None, help="number of test tasks (default: the experiment's, 600)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)

    ship = sub.add_parser("ship", help="copy a finished run's weights into metalearn_lab/checkpoints with the manifest")
    ship.add_argument("experiment")
    ship.add_argument("--run", help="run folder (default ./runs/EXPERIMENT)")
    ship.add_argument("--overwrite", action="store_true", help="replace a shipped checkpoint that differs from the manifest")
    ship.add_argument("--reevaluate", action="store_true",
                      help="evaluate the shipped checkpoint again on its test tasks with the current code and rewrite "
                           "its results and manifest record (after --run: the checkpoint just shipped)")
    ship.add_argument("--reason", help="why the shipped result is evaluated again (for the 'reevaluated' record)")
    ship.add_argument("--device", default="cpu", help="device of the re-evaluation")
    ship.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ship.set_defaults(func=_cmd_ship)

    dl = sub.add_parser("download", help="download Omniglot from its official repository (needs internet)")
    dl.add_argument("--root", help="folder to put the zips in (default: $METALEARN_LAB_DATA or the user cache)")
    dl.set_defaults(func=_cmd_download)
    select = sub.add_parser("select", help="choose between finished runs (seeds) on validation tasks; report all on test")
    select.add_argument("runs", nargs="+", help="run folders of one experiment")
    select.add_argument("--tasks", type=int, default=None, help="validation tasks (default: the experiment's eval_tasks)")
    select.add_argument("--device", default="cpu")
    select.add_argument("--threads", type=int, default=0)
    select.add_argument("--json", help="write the full report to this file")
    select.set_defaults(func=_cmd_select)

    copy = sub.add_parser("student-copy", help="write the lessons as notebooks without their solutions")
    copy.add_argument("out_dir", help="folder for the notebooks (created if needed)")
    copy.add_argument("--lessons", nargs="*", help="lesson .md files (default: every lesson in notebooks/)")
    copy.add_argument("--force", action="store_true", help="replace notebooks that already exist in OUT_DIR")
    copy.set_defaults(func=_cmd_student_copy)

    grade = sub.add_parser("grade", help="run submitted notebooks and tabulate each exercise's result (runs students' code)")
    grade.add_argument("submissions", nargs="+", help="submitted notebooks (e.g. class/alice/04_maml_sinusoid.ipynb)")
    grade.add_argument("--out", help="CSV file for the table (student, lesson, exercise, status, message)")
    grade.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell (default 120)")
    grade.add_argument("--classroom", action="store_true", help="run in classroom mode (default: quick mode, faster)")
    grade.add_argument("--force", action="store_true", help="replace an existing --out file")
    grade.set_defaults(func=_cmd_grade)

    sweep = sub.add_parser("sweep", help="train a grid of short runs (metalearn_lab.sweeps) and write their scores as JSON")
    sweep.add_argument("sweep", help="a sweep name: " + ", ".join(__import__("metalearn_lab.sweeps", fromlist=["SWEEPS"]).SWEEPS))
    sweep.add_argument("--out", help="JSON file (default runs/sweeps/NAME.json; the points already in it are kept)")
    sweep.add_argument("--ship", action="store_true", help="write into metalearn_lab/results/sweeps/ (what lessons load)")
    sweep.add_argument("--quick", action="store_true", help="the tiny grid of quick mode")
    sweep.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    sweep.add_argument("--no-progress", action="store_true")
    sweep.set_defaults(func=_cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"metalearn-lab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
