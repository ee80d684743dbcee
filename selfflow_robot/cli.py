"""`selfflow-robot <command> [key=value ...]`: the one entry point.

Each command composes `configs/<config>.yaml` with Hydra overrides and calls one library
function `fn(cfg: DictConfig) -> int | None`, imported lazily so heavy optional stacks load
only when used. `--help` after a command prints its description and its composed config.
`--some-flag` is shorthand for `some_flag=true`.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from selfflow_robot.errors import UserError


@dataclass(frozen=True)
class Command:
    target: str  # "module:function"
    config: str  # name of configs/<config>.yaml
    help: str


COMMANDS: dict[str, Command] = {
    "demo": Command("selfflow_robot.experiments.demo.run:main", "demo",
                    "The main job: expert demos in the drawer suite -> train `tiny` (world model + policy) -> "
                    "score it in the suite -> imagine -> report (2-core CPU, under 2 hours)."),
    "train": Command("selfflow_robot.train.cli:main", "train",
                     "Fine-tune a Self-Flow DiT into a world model / policy (single process or torchrun)."),
    "imagine": Command("selfflow_robot.world_model.cli:main", "imagine",
                       "Roll out the world model from context frames + actions; writes mp4/gif and PSNR/SSIM."),
    "eval": Command("selfflow_robot.evaluation.evaluate:main", "eval",
                    "Score checkpoints (or the scripted expert) on SIMPLER suites in the ManiSkill3 port."),
    "collect": Command("selfflow_robot.envs.collect:main", "collect",
                       "Record scripted-expert demos as RLDS in the RT-1 schema."),
    "data synth": Command("selfflow_robot.data.synth:main", "data_synth",
                          "Write a small synthetic dataset in the exact fractal20220817_data schema."),
    "data convert": Command("selfflow_robot.data.convert:main", "data_convert",
                            "Convert your own trajectories (HDF5, folder, LeRobot) to the RT-1 RLDS schema."),
    "data stats": Command("selfflow_robot.data.statistics:main", "data_stats",
                          "Compute and cache dataset_statistics.json for an RLDS dataset."),
    "serve": Command("selfflow_robot.policies.serving.server:main", "serve",
                     "Serve a policy checkpoint over WebSocket (msgpack + numpy)."),
    "export": Command("selfflow_robot.policies.export:main", "export",
                      "Export the policy denoiser (torchscript | onnx | torch_export) with a parity check."),
    "assets fetch": Command("selfflow_robot.envs.assets:main", "assets_fetch",
                            "Download and verify the ManiSkill2_real2sim assets the SIMPLER port needs."),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: selfflow-robot <command> [key=value ...] [--help]", "", "commands:"]
    lines += [f"  {name:<{width}}  {c.help}" for name, c in COMMANDS.items()]
    lines += ["", "Run `selfflow-robot <command> --help` to see a command's config and its keys."]
    return "\n".join(lines)


def _split(argv: list[str]) -> tuple[str | None, list[str]]:
    """Find the (possibly two-word) command at the start of argv."""
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in COMMANDS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:]
    return None, argv


def _overrides(args: list[str]) -> list[str]:
    out = []
    for a in args:
        if a.startswith("--") and "=" not in a:
            out.append(a[2:].replace("-", "_") + "=true")
        elif a.startswith("--"):
            key, val = a[2:].split("=", 1)
            out.append(key.replace("-", "_") + "=" + val)
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = _split(argv)
    if name is None:
        import difflib

        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"error: unknown command '{argv[0]}'.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    cmd = COMMANDS[name]
    want_help = any(a in ("-h", "--help") for a in rest)
    rest = [a for a in rest if a not in ("-h", "--help")]
    from selfflow_robot.config import load_config, to_yaml

    try:
        cfg = load_config(cmd.config, _overrides(rest))
        if want_help:
            print(f"selfflow-robot {name}: {cmd.help}\n")
            print("Override any key below with key=value (Hydra syntax). Current config:\n")
            print(to_yaml(cfg))
            return 0
        module, fn = cmd.target.split(":")
        rc = getattr(importlib.import_module(module), fn)(cfg)
        return int(rc or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
