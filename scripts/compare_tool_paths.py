#!/usr/bin/env python
"""How does a policy miss? Its tool paths against the scripted expert's, from the same grid starts
(selfflow_robot.evaluation.tool_paths).

    selfflow-robot eval policy=expert suite=drawer_visual_matching max_episodes=9 workers=2 output_dir=runs/eval_expert
    python scripts/compare_tool_paths.py --policy runs/demo/eval --expert runs/eval_expert --out runs/demo/tool_paths

Prints, per task and outcome, how far the policy's tool came from the point where the expert's tool started to
move the drawer (the hook of open-drawer, the push of close-drawer), and writes `tool_paths.md`,
`tool_paths.json` and one side-view plot per task into --out.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from selfflow_robot.errors import UserError
from selfflow_robot.evaluation.tool_paths import compare_tool_paths, plot_tool_paths, read_tool_paths, tool_path_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--policy", required=True, help="`selfflow-robot eval` output dir of the policy")
    p.add_argument("--expert", required=True, help="`selfflow-robot eval policy=expert` output dir, same episodes")
    p.add_argument("--checkpoint", default=None, help="only this checkpoint's episodes (its name in the records)")
    p.add_argument("--moved", type=float, default=0.01, help="drawer travel (m) that marks the contact")
    p.add_argument("--out", default=None, help="folder for tool_paths.md/.json and the plots (default: none)")
    args = p.parse_args(argv)
    try:
        policy = read_tool_paths(args.policy, args.checkpoint)
        expert = read_tool_paths(args.expert)
        rows = compare_tool_paths(policy, expert, args.moved)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = tool_path_table(rows)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tool_paths.md").write_text(table + "\n")
        (out / "tool_paths.json").write_text(json.dumps([{**asdict(r), "distance": r.distance} for r in rows],
                                                        indent=1))
        for task in sorted({r.task for r in rows}):
            print(plot_tool_paths(policy, expert, task, out / f"tool_paths_{task}.png", args.moved))
    return 0


if __name__ == "__main__":
    sys.exit(main())
