#!/usr/bin/env python
"""Fidelity of the ManiSkill3 port against real SimplerEnv, over the visual-matching grid (docs/simpler_fidelity.md).

    # 0. the controller alone: the same 10 actions printed in the port and (in SimplerEnv's env) in SimplerEnv
    python scripts/simpler_fidelity.py controller
    python scripts/simpler_fidelity.py controller --sim simpler --simpler-dir /path/to/SimplerEnv
    # 1. our environment: the grid, first frames of every grid episode, expert episodes (actions + outcome)
    python scripts/simpler_fidelity.py port --out runs/fidelity --workers 2
    # 2. SimplerEnv's environment (CPU: `. /tmp/vkl/env.sh` first, see docs/simpler.md)
    python scripts/simpler_fidelity.py simpler --out runs/fidelity --simpler-dir /path/to/SimplerEnv
    # 3. our environment: figures, small PNGs and the markdown section for docs/simpler_fidelity.md
    python scripts/simpler_fidelity.py report --out runs/fidelity --img-dir docs/img/fidelity

Our phases are `selfflow_robot.evaluation.fidelity`; in SimplerEnv's environment, where selfflow-robot is
usually not installed, the SimplerEnv phases run from `selfflow_robot/evaluation/simpler/fidelity.py`,
loaded by file path. `--help` lists the options.
"""
import importlib.util
import sys
from pathlib import Path

SIMPLER_SIDE = Path(__file__).resolve().parents[1] / "selfflow_robot" / "evaluation" / "simpler" / "fidelity.py"

try:
    from selfflow_robot.evaluation.fidelity import main
except ImportError as err:  # SimplerEnv's environment: only its phases can run
    _spec = importlib.util.spec_from_file_location("simpler_fidelity", SIMPLER_SIDE)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _why = f"selfflow-robot does not import: {err}"

    def main(argv=None):
        """The SimplerEnv phases (`simpler`, `simpler_traj`, `controller --sim simpler`)."""
        return _module.main(argv, unavailable=_why)

if __name__ == "__main__":
    sys.exit(main())
