#!/usr/bin/env python
"""Convert your trajectories to the RT-1 RLDS schema (same as `selfflow-robot data convert ...`).

    python scripts/convert_dataset.py format=folder input=my_episodes output_dir=data/mine
"""
import sys

from selfflow_robot.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "convert", *sys.argv[1:]]))
