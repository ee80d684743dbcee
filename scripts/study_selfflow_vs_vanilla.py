#!/usr/bin/env python
"""Self-Flow vs vanilla flow matching, side by side: same demos, same steps, same seeds.

    python scripts/study_selfflow_vs_vanilla.py --out runs/study            # 3 seeds x 2 objectives, demo defaults
    python scripts/study_selfflow_vs_vanilla.py --out runs/study --compare-only   # report what is on disk now

The front end is `selfflow_robot.experiments.study.cli` (`--help` lists every flag).
"""
import sys

from selfflow_robot.experiments.study.cli import main

if __name__ == "__main__":
    sys.exit(main())
