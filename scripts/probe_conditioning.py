#!/usr/bin/env python
"""Which inputs does a policy act on? Swap the frames, instruction or robot state of one task's demo frames
for another task's and print how much the predicted chunk moves (selfflow_robot.policies.probe).

    python scripts/probe_conditioning.py --ckpt runs/demo/run/checkpoints/step-0003000
    python scripts/probe_conditioning.py --ckpt runs/state/run --pair "close middle drawer" "open middle drawer" \\
        --episodes 9 --steps 0 4 8 12 --json probe.json

The demos default to the checkpoint's own training data (`data.path` in its config.yaml). A policy that uses
an input moves its chunk by a sizeable share of the demos' own gap when that input is swapped; one that
ignores it stays near 0%.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from selfflow_robot.checkpoint import find_checkpoint, load_run_config
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.errors import UserError
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.policies.probe import episodes_by_instruction, probe_conditioning


def parse_probe_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--ckpt", required=True, help="checkpoint step dir or run dir (its latest step)")
    p.add_argument("--data", help="RLDS demos (builder dir or a parent; default: the checkpoint's data.path)")
    p.add_argument("--pair", nargs=2, default=["close top drawer", "open top drawer"], metavar=("A", "B"),
                   help="the instruction probed (A) and the one whose inputs are swapped in (B)")
    p.add_argument("--episodes", type=int, default=4, help="episode pairs (the first N of each instruction)")
    p.add_argument("--steps", type=int, nargs="+", default=[0, 3, 6], help="episode steps probed")
    p.add_argument("--sample-steps", type=int, default=1,
                   help="denoising steps per chunk (default 1: the conditional-mean chunk, as the demo evaluates)")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_probe_args(argv)
    try:
        ckpt = find_checkpoint(args.ckpt)
        data = args.data or str(load_run_config(ckpt).data.path)
        policy = SelfFlowPolicy.from_pretrained(ckpt, steps=args.sample_steps)
        eps_a, eps_b = episodes_by_instruction(RLDSReader(data), args.pair, args.episodes)
        result = probe_conditioning(policy, eps_a, eps_b, args.steps)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{ckpt} on {data}")
    print(result.to_markdown())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"checkpoint": str(ckpt), "data": data, **result.to_dict()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
