"""`selfflow-robot <command> [key=value ...]`: the one entry point.

Each command has a schema dataclass (its keys, defaults and their documentation) and a YAML file,
`configs/<config>.yaml`, that selects config groups or sets what differs; `load_config` composes the
two with the Hydra overrides, and the command calls one library function `fn(cfg: DictConfig) -> int | None`.
Both are named by "module:name" strings and imported only when the command runs, so heavy optional
stacks load only when used. `--help` after a command prints its description, its schema's documentation,
its config groups and its composed config. `--some-flag` is shorthand for `some_flag=true`.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from dataclasses import dataclass
from typing import Any

from selfflow_robot.config import group_options, load_config, to_yaml
from selfflow_robot.errors import UserError


@dataclass(frozen=True)
class Command:
    """One CLI command: what it runs, the YAML it composes, the dataclass that is its schema, a one-line help."""

    target: str  # "module:function", called with the composed DictConfig
    config: str  # name of configs/<config>.yaml
    schema: str  # "module:Dataclass", the keys and defaults of the config
    help: str


def _resolve(ref: str) -> Any:
    """The object a "module:name" string names."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


COMMANDS: dict[str, Command] = {
    "demo": Command(
        "selfflow_robot.experiments.demo.run:main", "demo", "selfflow_robot.experiments.demo.config:DemoConfig",
        "The main job: expert demos in the drawer suite -> train `tiny` (world model + policy) -> "
        "score it in the suite -> imagine -> report (2-core CPU, under 2 hours)."),
    "train": Command(
        "selfflow_robot.train.cli:main", "train", "selfflow_robot.train.config:TrainRunConfig",
        "Fine-tune a Self-Flow DiT into a world model / policy (single process or torchrun)."),
    "imagine": Command(
        "selfflow_robot.world_model.cli:main", "imagine", "selfflow_robot.world_model.cli:ImagineConfig",
        "Roll out the world model from context frames + actions; writes mp4/gif and PSNR/SSIM."),
    "eval": Command(
        "selfflow_robot.evaluation.evaluate:main", "eval", "selfflow_robot.evaluation.config:EvalConfig",
        "Score checkpoints (or the scripted expert) on SIMPLER suites in the ManiSkill3 port."),
    "imagine-eval": Command(
        "selfflow_robot.evaluation.imagination.cli:main", "imagine_eval",
        "selfflow_robot.evaluation.imagination.cli:ImagineEvalConfig",
        "Score policy checkpoints in closed loop inside the world model, judge success, rank them against the port."),
    "judge train": Command(
        "selfflow_robot.evaluation.imagination.judge_train:main", "judge_train",
        "selfflow_robot.evaluation.imagination.judge_train:JudgeTrainConfig",
        "Train the success judge of imagined frames on the videos and drawer openings of eval sweeps."),
    "collect": Command(
        "selfflow_robot.envs.collect:main", "collect", "selfflow_robot.envs.collect:CollectConfig",
        "Record scripted-expert demos as RLDS in the RT-1 schema."),
    "data synth": Command(
        "selfflow_robot.data.synth:main", "data_synth", "selfflow_robot.data.synth:SynthConfig",
        "Write a small synthetic dataset in the exact fractal20220817_data schema."),
    "data convert": Command(
        "selfflow_robot.data.convert:main", "data_convert", "selfflow_robot.data.convert:ConvertConfig",
        "Convert your own trajectories (HDF5, folder, LeRobot) to the RT-1 RLDS schema."),
    "codec train": Command(
        "selfflow_robot.train.codec:main", "codec_train", "selfflow_robot.train.codec:CodecTrainConfig",
        "Fit the small frame autoencoder (model.codec=ae) to a dataset's frames; reports its reconstruction PSNR."),
    "data encode": Command(
        "selfflow_robot.train.latents:main", "train", "selfflow_robot.train.config:TrainRunConfig",
        "Encode every frame once through the model's codec into the latent cache `train` reads (train's overrides)."),
    "data stats": Command(
        "selfflow_robot.data.statistics:main", "data_stats", "selfflow_robot.data.statistics:StatsConfig",
        "Compute and cache dataset_statistics.json for an RLDS dataset."),
    "serve": Command(
        "selfflow_robot.policies.serving.cli:main", "serve", "selfflow_robot.policies.serving.config:ServeConfig",
        "Serve a policy checkpoint over WebSocket (msgpack + numpy)."),
    "export": Command(
        "selfflow_robot.policies.export:main", "export", "selfflow_robot.policies.export:ExportConfig",
        "Export the policy denoiser (torchscript | onnx | torch_export) with a parity check."),
    "assets fetch": Command(
        "selfflow_robot.envs.assets:main", "assets_fetch", "selfflow_robot.envs.assets:AssetsFetchConfig",
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


def _unknown_command(argv: list[str]) -> str:
    """The error for an unknown command, with the closest command (two words when the first one matches)."""
    words = " ".join(argv[:2]) if len(argv) >= 2 and any(n.startswith(f"{argv[0]} ") for n in COMMANDS) else argv[0]
    close = difflib.get_close_matches(words, list(COMMANDS), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"error: unknown command '{words}'.{hint}\n\n{_usage()}"


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


def _help(name: str, cmd: Command, schema: type, cfg: Any, overrides: list[str]) -> str:
    """`selfflow-robot <name> --help`: the command, its schema's documentation, its config groups, its config."""
    lines = [f"selfflow-robot {name}: {cmd.help}", "", f"Schema {cmd.schema} (configs/{cmd.config}.yaml):", "",
             inspect.getdoc(schema) or "", ""]
    groups = group_options(cmd.config, overrides, schema=schema)
    if groups:
        lines += ["Config groups (select an option with group=option; * = selected):"]
        lines += [f"  {group}: " + " | ".join(o + "*" * (o == chosen) for o in options)
                  for group, (options, chosen) in groups.items()] + [""]
    lines += ["Override any key below with key=value (Hydra syntax). Current config:", "", to_yaml(cfg)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run `selfflow-robot <command> [key=value ...]`; returns the exit status (2 for a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = _split(argv)
    if name is None:
        print(_unknown_command(argv), file=sys.stderr)
        return 2
    cmd = COMMANDS[name]
    want_help = any(a in ("-h", "--help") for a in rest)
    rest = [a for a in rest if a not in ("-h", "--help")]
    try:
        schema = _resolve(cmd.schema)
        overrides = _overrides(rest)
        cfg = load_config(cmd.config, overrides, schema=schema)
        if want_help:
            print(_help(name, cmd, schema, cfg, overrides))
            return 0
        rc = _resolve(cmd.target)(cfg)
        return int(rc or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
