#!/usr/bin/env python
"""Thin wrapper: `python scripts/train.py key=value ...` == `selfflow-robot train key=value ...`.

Under torchrun: `torchrun --nproc_per_node=N scripts/train.py model=base data.path=DIR output_dir=RUN`.
"""
import sys

from selfflow_robot.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
