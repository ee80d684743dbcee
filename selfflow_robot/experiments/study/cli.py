"""The study's command line (`scripts/study_selfflow_vs_vanilla.py`): run or resume every arm, then compare.

    python scripts/study_selfflow_vs_vanilla.py --out runs/study            # 3 seeds x 2 objectives, demo defaults
    python scripts/study_selfflow_vs_vanilla.py --out runs/study --seeds 0 --steps 2000 --workers 1 --parallel 2 \\
        --demos runs/demo/demos --set 'train_overrides=["model=tiny","train.val_every=250","train.save_every=500"]'
    python scripts/study_selfflow_vs_vanilla.py --out runs/study --compare-only   # report what is on disk now

The demos are collected once into `<out>/demos` (or `--demos DIR` reuses a demos dir that has
`collect.json`). Each arm is one `selfflow-robot demo` output dir, `<out>/<objective>-seed<s>/`, whose
`demos` links to the shared demos; it runs the demo phases train, eval, imagine, report with
`objective=<objective> seed=<s>` and everything else identical. Every phase resumes, so rerunning the
same command finishes an interrupted study and reuses finished arms; an arm another process is running
(a second study run, or a `selfflow-robot demo` started by hand) is skipped and reported busy. At the end (and with
`--compare-only` at any time, from whatever is on disk) it writes `study.md`, `study.json`,
`study_curves.png` and `study_success.png` into `<out>` (or `--report-dir`).

Its flags are the inverse of `config.study_command`, which prints the command that reproduces a study.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selfflow_robot.errors import UserError
from selfflow_robot.experiments.study.config import demo_config
from selfflow_robot.experiments.study.demos import prepare_demos
from selfflow_robot.experiments.study.report import write_study_report
from selfflow_robot.experiments.study.run import run_arms
from selfflow_robot.objective.config import OBJECTIVES

# Set per arm by the study itself, never through --set.
PER_ARM = ("output_dir", "objective", "seed", "phases")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The study's flags (`--help` prints them with this module's docstring)."""
    p = argparse.ArgumentParser(prog="study_selfflow_vs_vanilla.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", type=Path, required=True, help="study directory (arms, shared demos, the comparison)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per objective (default: 0 1 2)")
    p.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    p.add_argument("--steps", type=int, help="training steps per arm (default: configs/demo.yaml)")
    p.add_argument("--batch-size", type=int, help="windows per step (default: configs/demo.yaml)")
    p.add_argument("--demos-per-task", type=int, help="expert demos per task (default: configs/demo.yaml)")
    p.add_argument("--eval-episodes-per-task", type=int,
                   help="suite episodes per task per arm (default: configs/demo.yaml)")
    p.add_argument("--workers", type=int, help="processes for collect and eval in each arm (0 = all cores)")
    p.add_argument("--demos", type=Path, help="reuse this demos dir (must hold collect.json) instead of collecting")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other `selfflow-robot demo` override, shared by every arm (repeatable), e.g. "
                        "--set 'train_overrides=[\"model=tiny\"]' --set lr=1e-3")
    p.add_argument("--parallel", type=int, default=1, help="arms run at once, as processes (default 1)")
    p.add_argument("--compare-only", action="store_true", help="run nothing; compare the arms found under --out")
    p.add_argument("--report-dir", type=Path, help="write the comparison here instead of --out (--out is only read)")
    return p.parse_args(argv)


def shared_overrides(args: argparse.Namespace) -> list[str]:
    """The demo overrides every arm shares: the flags that were given, then the `--set` ones."""
    flags = {"steps": args.steps, "batch_size": args.batch_size, "demos_per_task": args.demos_per_task,
             "eval_episodes_per_task": args.eval_episodes_per_task, "workers": args.workers}
    out = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.overrides)
    for o in out:
        key = o.split("=", 1)[0].lstrip("+~")
        if "=" not in o or key in PER_ARM:
            raise SystemExit(f"error: --set {o!r}: give KEY=VALUE; output_dir, objective, seed and phases are set by "
                             "the study per arm (use --out, --objectives, --seeds)")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) the study, then write its comparison and print `study.md`.

    Exit status: 0, 1 when an arm failed, 2 on a user error (bad flags, no arms to compare, wrong demos).
    """
    args = parse_args(argv)
    out = args.out.resolve()
    failed: dict[str, str] = {}
    try:
        if not args.compare_only:
            shared = shared_overrides(args)
            demo_config(shared)  # fail on a bad override before collecting anything
            out.mkdir(parents=True, exist_ok=True)
            demos = prepare_demos(shared, out, args.demos)
            status = run_arms(out, shared, args.seeds, args.objectives, demos, parallel=args.parallel)
            failed = {k: v for k, v in status.items() if v.startswith("failed")}
            for k, v in status.items():
                if v not in ("done", "reused"):  # failed, or busy in another process: the comparison is partial
                    print(f"arm {k}: {v}", file=sys.stderr)
        paths = write_study_report(out, args.seeds, args.objectives, report_dir=args.report_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(Path(paths["md"]).read_text())
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    return 1 if failed else 0


__all__ = ["PER_ARM", "main", "parse_args", "shared_overrides"]
