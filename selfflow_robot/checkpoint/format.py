"""The checkpoint format: atomic `step-NNNNNNN/` folders, keep-last-K, lookup, and reading each file back.

Layout (docs/architecture.md): `RUN/checkpoints/step-NNNNNNN/` holding `config.yaml` (the full
resolved train config), `model.safetensors`, `ema.safetensors`, `dataset_statistics.json`,
`language_table.safetensors`, `trainer_state.pt`. A step folder exists only once complete: it is
written as a hidden temp folder beside it, flushed to disk, then renamed in one `os.rename`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from selfflow_robot.constants import (
    CONFIG_FILE,
    EMA_FILE,
    LANGUAGE_TABLE_FILE,
    MODEL_FILE,
    STATS_FILE,
    TRAINER_STATE_FILE,
)
from selfflow_robot.data.language import save_language_table
from selfflow_robot.errors import UserError

CHECKPOINTS_DIR = "checkpoints"
REQUIRED_FILES = (CONFIG_FILE, MODEL_FILE, EMA_FILE, STATS_FILE, LANGUAGE_TABLE_FILE, TRAINER_STATE_FILE)
_STEP_RE = re.compile(r"^step-(\d+)$")


class CheckpointError(UserError):
    """A checkpoint path is missing, incomplete or does not match the model."""


def step_dir_name(step: int) -> str:
    """`step-0000200` for step 200."""
    return f"step-{step:07d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete step folders under `run_dir/checkpoints/`, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and all((p / f).is_file() for f in REQUIRED_FILES):
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete step folder of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def find_checkpoint(path: str | Path) -> Path:
    """Resolve `ckpt=`: a step folder as is, or a run folder (or its `checkpoints/`) to its newest step."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint path {p} does not exist; pass a run dir or a checkpoints/step-N dir")
    if (p / MODEL_FILE).is_file():
        missing = [f for f in REQUIRED_FILES if not (p / f).is_file()]
        if missing:
            raise CheckpointError(f"checkpoint {p} is incomplete (missing {missing}); use another step folder")
        return p
    run = p.parent if p.name == CHECKPOINTS_DIR else p
    newest = latest_checkpoint(run)
    if newest is None:
        raise CheckpointError(f"no complete checkpoint under {p}; expected {p}/{CHECKPOINTS_DIR}/step-NNNNNNN/ "
                              f"with {', '.join(REQUIRED_FILES)}")
    return newest


# ----------------------------------------------------------------------------- saving


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(path)


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Fresh contiguous copies: safetensors refuses tensors sharing storage, and the caller keeps training.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}


def _plain(obj: Any) -> Any:
    """Convert NumPy values inside a trainer state to tensors / Python, so `weights_only` loading works."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def save_checkpoint(run_dir: str | Path, step: int, *, config: DictConfig | Mapping[str, Any],
                    model_state: Mapping[str, torch.Tensor], ema_state: Mapping[str, torch.Tensor],
                    statistics: Mapping[str, Any], language_table: Mapping[str, Any],
                    trainer_state: Mapping[str, Any], keep_last: int) -> Path:
    """Write `RUN/checkpoints/step-NNNNNNN/` atomically and delete all but the newest `keep_last`.

    `statistics` is the `dataset_statistics.json` content; `language_table` maps instruction -> 512-d.
    Returns the final folder. A crash at any point leaves either the old set of complete
    checkpoints or the old set plus this one, never a half-written step folder.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    cfg = config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
    (tmp / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    save_file(_cpu_state(model_state), str(tmp / MODEL_FILE), metadata={"step": str(step)})
    save_file(_cpu_state(ema_state), str(tmp / EMA_FILE), metadata={"step": str(step)})
    (tmp / STATS_FILE).write_text(json.dumps(_jsonable(statistics), indent=2))
    save_language_table(language_table, tmp / LANGUAGE_TABLE_FILE)
    torch.save(_plain(dict(trainer_state)), tmp / TRAINER_STATE_FILE)
    _fsync_tree(tmp)
    if final.exists():  # re-saving a step (e.g. after a resume): swap, never delete first
        old = root / f".old-{final.name}-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    _fsync_dir(root)
    prune_checkpoints(run_dir, keep_last)
    return final


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return np.asarray(obj).tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete complete step folders beyond the newest `keep_last` and stale temp folders; returns deleted."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = list_checkpoints(run_dir)
    doomed = [p for _, p in found[:-keep_last]] if keep_last > 0 else []
    if root.is_dir():  # leftovers of a crash mid-save (other pids' temp folders)
        doomed += [p for p in root.iterdir() if p.name.startswith((".tmp-", ".old-"))
                   and not p.name.endswith(f"-{os.getpid()}")]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


# ----------------------------------------------------------------------------- loading


def load_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    """`trainer_state.pt` of a step folder (optimizer, scheduler, RNG, data position, step)."""
    return torch.load(Path(ckpt) / TRAINER_STATE_FILE, map_location="cpu", weights_only=True)


def load_weights(ckpt: str | Path, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The model (or EMA) state dict of a step folder, on CPU."""
    return load_file(str(Path(ckpt) / (EMA_FILE if use_ema else MODEL_FILE)))


def load_run_config(ckpt: str | Path) -> DictConfig:
    """The resolved train config stored with a checkpoint."""
    cfg = OmegaConf.load(Path(ckpt) / CONFIG_FILE)
    assert isinstance(cfg, DictConfig)
    return cfg


def load_statistics(ckpt: str | Path) -> dict[str, Any]:
    """`dataset_statistics.json` of a checkpoint, as a dict."""
    return json.loads((Path(ckpt) / STATS_FILE).read_text())


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str,
                     ignore: Sequence[str] = ()) -> None:
    """Raise `CheckpointError` listing missing / unexpected keys and shape mismatches (never a silent partial load)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state) - set(ignore))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"weights in {where} do not match the model built from its config.yaml: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''} ({len(unexpected)}), "
            f"shape mismatches {shapes[:5]} ({len(shapes)}); the checkpoint was written by another version")
