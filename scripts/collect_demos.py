#!/usr/bin/env python
"""Record scripted-expert demos as RT-1 RLDS: the same as `selfflow-robot collect` (configs/collect.yaml).

    python scripts/collect_demos.py task=close_top_drawer episodes=9 workers=2 output_dir=demos/close_top_drawer
    python scripts/collect_demos.py task=drawer_visual_matching episodes=36 action_noise_m=0.01 output_dir=demos/all

Takes the Hydra overrides of configs/collect.yaml (`--help` shows them). The scripted expert's success over
a whole grid, without recording demos: `selfflow-robot eval policy=expert suite=... video=false`.
"""
import sys

from selfflow_robot.cli import main

if __name__ == "__main__":
    sys.exit(main(["collect", *sys.argv[1:]]))
