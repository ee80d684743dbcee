"""Serve a policy checkpoint: the same as `selfflow-robot serve`, as a script.

    python scripts/serve_policy.py ckpt=runs/demo port=8000
    SELFFLOW_ROBOT_SERVE_TOKEN=secret python scripts/serve_policy.py ckpt=runs/demo host=0.0.0.0

Any `configs/serve.yaml` key can be overridden with key=value; `--help` prints the config.
"""
from __future__ import annotations

import sys

from selfflow_robot.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
