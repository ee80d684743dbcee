#!/usr/bin/env python
"""Score checkpoints (or the scripted expert) on SIMPLER suites: the same as `selfflow-robot eval`.

    python scripts/eval_simpler.py ckpt=runs/demo suite=drawer_visual_matching
    python scripts/eval_simpler.py policy=expert suite=drawer_visual_matching workers=2 output_dir=runs/eval_expert
    python scripts/eval_simpler.py simpler_results=results_simpler output_dir=runs/simpler_report

Takes the Hydra overrides of configs/eval.yaml (`--help` shows them).
"""
import sys

from selfflow_robot.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
