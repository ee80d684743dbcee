"""`selfflow-robot data convert`: users' own trajectories -> fractal20220817_data 0.1.0 RLDS.

Sources (`format=`): `hdf5` (robomimic-style), `folder` (episode folders with a video or
images + actions as NPZ/JSON), `lerobot` (LeRobot v2.x/v3.0 parquet + mp4). Actions are
mapped to RT-1's 7-D convention by the explicit `actions.*` options (`ActionMapping`), the robot
state (when `state_key` names it) to RT-1's proprioception by `state.*` (`StateMapping`), frames
fitted into 256 x 320 (`fit=pad|stretch|crop`), instructions embedded by `embedding=hash|table`.
See docs/data.md for the field mapping of each source.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from selfflow_robot.config import check_choice, structured
from selfflow_robot.data import schema
from selfflow_robot.data.convert.folder import iter_folder
from selfflow_robot.data.convert.hdf5 import iter_hdf5
from selfflow_robot.data.convert.lerobot import iter_lerobot
from selfflow_robot.data.convert.mapping import FITS, ActionMapping, Embedder, StateMapping, fit_frame
from selfflow_robot.data.convert.source import SourceEpisode, SourceItem
from selfflow_robot.data.writer import DatasetWriter
from selfflow_robot.errors import ConfigError, DataError
from selfflow_robot.files import check_writable_dir

log = logging.getLogger(__name__)
FORMATS = ("hdf5", "folder", "lerobot")


@dataclass
class ConvertConfig:
    """`selfflow-robot data convert` options.

    Args:
        format: hdf5 | folder | lerobot.
        input: source file or folder.
        output_dir: TFDS data_dir to write (the dataset lands in output_dir/fractal20220817_data/0.1.0).
        instruction: instruction for episodes whose source has none.
        image_key: camera to use (hdf5: obs/<key>; lerobot: feature name); empty = the only camera.
        action_key: the actions dataset/column ("" = the format's default: actions | action).
        state_key: robot-state sources, concatenated along the last axis in this order (hdf5: obs/<key>
            datasets; folder: arrays in the episode's .npz/.json; lerobot: features, e.g. observation.state);
            [] = no state (base_pose_tool_reached / gripper_closed written as zeros).
        instruction_attr: hdf5 demo attribute holding the instruction.
        flip_vertical: flip frames upside down (robosuite renders them flipped).
        drop_last_frame: folder format: accept T+1 frames for T actions by dropping the last.
        fit: how frames become 256x320: pad (keep aspect, black bars), stretch, crop.
        embedding: hash (fixed vector per instruction) | table (from embedding_table).
        embedding_table: .safetensors / .npz / .json instruction -> 512 floats (for embedding=table).
        episodes_per_shard: episodes per TFRecord shard.
        jpeg_quality: JPEG quality of the stored frames.
        overwrite: replace an existing dataset at output_dir.
        skip_bad_episodes: skip (and count) source episodes that fail to convert instead of stopping.
        actions: the action mapping (see ActionMapping).
        state: the state mapping onto base_pose_tool_reached / gripper_closed (see StateMapping; used
            only with state_key).
    """

    format: str = "folder"
    input: str = ""
    output_dir: str = "data/converted"
    instruction: str = ""
    image_key: str = ""
    action_key: str = ""
    state_key: Any = field(default_factory=list)  # a list, or one key as a plain string (state_key=KEY)
    instruction_attr: str = "language_instruction"
    flip_vertical: bool = False
    drop_last_frame: bool = False
    fit: str = "pad"
    embedding: str = "hash"
    embedding_table: str = ""
    episodes_per_shard: int = 100
    jpeg_quality: int = 90
    overwrite: bool = False
    skip_bad_episodes: bool = False
    actions: ActionMapping = field(default_factory=ActionMapping)
    state: StateMapping = field(default_factory=StateMapping)

    def __post_init__(self) -> None:
        check_choice("format", self.format, FORMATS)
        check_choice("fit", self.fit, FITS)
        if not self.input:
            raise ConfigError("input= is required: the source file or folder to convert")
        self.state_key = key_list(self.state_key)


def key_list(keys: str | Sequence[str]) -> list[str]:
    """`state_key` as a list: one key may be given as a plain string ("" = none)."""
    if isinstance(keys, str):
        return [keys] if keys else []
    return list(keys)


def source_episodes(cfg: ConvertConfig) -> Iterator[SourceItem]:
    """The source reader chosen by `cfg.format`: its episodes, and a `DataError` in place of each unreadable one."""
    if cfg.format == "hdf5":
        return iter_hdf5(cfg.input, image_key=cfg.image_key, action_key=cfg.action_key or "actions",
                         instruction=cfg.instruction, instruction_attr=cfg.instruction_attr,
                         flip_vertical=cfg.flip_vertical, state_keys=cfg.state_key)
    if cfg.format == "folder":
        return iter_folder(cfg.input, instruction=cfg.instruction, drop_last_frame=cfg.drop_last_frame,
                           state_keys=cfg.state_key)
    return iter_lerobot(cfg.input, image_key=cfg.image_key, action_key=cfg.action_key or "action",
                        instruction=cfg.instruction, state_keys=cfg.state_key)


def to_rt1_episode(src: SourceEpisode, cfg: ConvertConfig, embed: Embedder) -> dict:
    """Map one source episode to the writer's RT-1 layout (see selfflow_robot/data/writer.py)."""
    T = len(src.actions)
    if T == 0:
        raise DataError(f"{src.name}: empty episode (0 steps)")
    if len(src.frames) != T:
        raise DataError(f"{src.name}: {len(src.frames)} frames but {T} actions")
    if not src.instruction:
        raise DataError(f"{src.name}: no instruction in the source; set instruction='...'")
    mapped = cfg.actions.apply(src.actions, src.name)
    if cfg.state_key:
        if src.state is None or len(src.state) != T:
            raise DataError(f"{src.name}: {0 if src.state is None else len(src.state)} state rows "
                            f"(state_key={cfg.state_key}) but {T} actions; they must match")
        mapped.update(cfg.state.apply(src.state, src.name))
    terminate = np.tile(np.array([0, 1, 0], np.int32), (T, 1))
    terminate[-1] = (1, 0, 0)
    ep = {
        **mapped,
        schema.TERMINATE: terminate,
        schema.IMAGE: np.stack([fit_frame(f, cfg.fit) for f in src.frames]),
        schema.INSTRUCTION: src.instruction,
        schema.EMBEDDING: np.tile(embed(src.instruction), (T, 1)),
        "is_terminal": np.arange(T) == T - 1,
        "reward": (np.arange(T) == T - 1).astype(np.float32),
        "attributes/data_type_name": f"converted:{cfg.format}",
        "attributes/task_family_name": src.instruction,
    }
    return ep


def convert(cfg: ConvertConfig, progress: bool = True) -> tuple[Path, int, int]:
    """Run the conversion; returns (builder dir, episodes written, episodes skipped).

    Every episode the source reader cannot read, or that does not map to RT-1, stops the conversion with its
    `DataError`, or with `skip_bad_episodes` is logged, counted and skipped. Nothing is created on disk
    before the first good episode (and `output_dir` is checked for writing before the input is read).
    """
    check_writable_dir(cfg.output_dir, "output_dir")
    embed = Embedder(cfg.embedding, cfg.embedding_table)
    skipped: list[DataError] = []

    def good_episodes() -> Iterator[dict]:
        items = source_episodes(cfg)
        for src in tqdm(items, desc=f"convert {cfg.format}", unit="ep", disable=not progress):
            error = src if isinstance(src, DataError) else None
            if error is None:
                try:
                    ep = to_rt1_episode(src, cfg, embed)
                except DataError as e:
                    error = e
            if error is None:
                yield ep
                continue
            if not cfg.skip_bad_episodes:
                raise error
            skipped.append(error)
            log.warning("skipping %s", error)

    episodes = good_episodes()
    first = next(episodes, None)  # fail on a bad input before anything is created on disk
    if first is None:
        raise DataError(f"{cfg.input}: no episodes found" if not skipped else
                        f"{cfg.input}: all {len(skipped)} episodes are bad (skipped); the first: {skipped[0]}")
    description = f"Converted from {cfg.format} source {cfg.input} (selfflow-robot data convert)"
    with DatasetWriter(cfg.output_dir, episodes_per_shard=cfg.episodes_per_shard, overwrite=cfg.overwrite,
                       jpeg_quality=cfg.jpeg_quality, description=description) as w:
        w.write(first)
        for ep in episodes:
            w.write(ep)
    return w.final, w.num_episodes, len(skipped)


def main(cfg: DictConfig) -> int:
    """CLI entry: `selfflow-robot data convert format=... input=... output_dir=... [actions.*=...]`."""
    if isinstance(cfg.get("state_key"), str):  # state_key=observation.state on the command line
        cfg.state_key = key_list(cfg.state_key)
    cc = structured(ConvertConfig, cfg)
    path, n, skipped = convert(cc)
    print(f"wrote {n} episodes to {path}" + (f"; skipped {skipped} bad source episode(s)" if skipped else ""))
    return 0
