"""The checkpoint format: atomic `step-NNNNNNN/` folders, keep-last-K, lookup, and reading each file back.

Layout (docs/architecture.md): `RUN/checkpoints/step-NNNNNNN/` holding `config.yaml` (the full
resolved train config), `model.safetensors`, `ema.safetensors`, `dataset_statistics.json`,
`language_table.safetensors`, `trainer_state.pt`, and `manifest.json` (the size and SHA-256 of each
of those, written last). A step folder exists only once complete: it is written as a hidden temp
folder beside it, flushed to disk, then renamed in one `os.rename`. A save that runs out of space
removes its temp folder and says how much it needed and how much was free.

Reading back: a step folder whose files differ from its manifest (truncated or damaged after the
save) is refused with a `CheckpointError` naming the file; a run folder resolves to its newest
step folder that passes, with a warning for each newer one skipped. Step folders written before the
manifest existed have none and still load (only the presence of their files is checked).
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
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

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
REQUIRED_FILES = (CONFIG_FILE, MODEL_FILE, EMA_FILE, STATS_FILE, LANGUAGE_TABLE_FILE, TRAINER_STATE_FILE)
MANIFEST_FILE = "manifest.json"  # {"files": {name: {"bytes": n, "sha256": hex}}}; absent in older checkpoints
_STEP_RE = re.compile(r"^step-(\d+)$")
_SPACE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                 errno.EFBIG: "a file-size limit was hit"}


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_checkpoint(step_dir: str | Path, checksums: bool | Sequence[str] = False) -> None:
    """Raise `CheckpointError` unless the step folder's files are all there and match its manifest.

    Sizes are always compared (cheap: catches truncation); `checksums` also compares the SHA-256 of every
    file (True) or of the files named (e.g. the ones about to be loaded). A folder without a manifest (written
    before it existed) passes when its files are present.
    """
    p = Path(step_dir)
    missing = [f for f in REQUIRED_FILES if not (p / f).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {p} is incomplete (missing {missing}); use another step folder")
    if not (p / MANIFEST_FILE).is_file():
        return
    try:
        files = json.loads((p / MANIFEST_FILE).read_text())["files"]
        expected = {str(name): (int(v["bytes"]), str(v["sha256"])) for name, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {p}: {MANIFEST_FILE} is unreadable ({e}); the folder is damaged, "
                              "use another step folder") from e
    hashed = set(REQUIRED_FILES) if checksums is True else set(checksums or ())
    for name, (size, digest) in expected.items():
        f = p / name
        actual = f.stat().st_size if f.is_file() else None
        if actual != size:
            state = "missing" if actual is None else f"{actual} bytes"
            raise CheckpointError(f"checkpoint {p} is damaged: {name} is {state}, its manifest says {size} bytes "
                                  "(truncated by a copy or a full disk?); use another step folder")
        if name in hashed and _sha256(f) != digest:
            raise CheckpointError(f"checkpoint {p} is damaged: {name} does not match the SHA-256 in its manifest "
                                  "(corrupted after the save); use another step folder")


def latest_checkpoint(run_dir: str | Path, checksums: bool | Sequence[str] = False) -> Path | None:
    """The newest step folder of a run that passes `verify_checkpoint`, or None when the run has none.

    Newer damaged folders are skipped with a warning naming what is wrong; when every step folder is
    damaged, raises `CheckpointError` (never silently starting over).
    """
    found = list_checkpoints(run_dir)
    problems = []
    for step, path in reversed(found):
        try:
            verify_checkpoint(path, checksums)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        for problem in problems:
            log.warning("skipping a damaged checkpoint: %s; using %s (step %d)", problem, path, step)
        return path
    if problems:
        raise CheckpointError(f"every checkpoint under {Path(run_dir) / CHECKPOINTS_DIR} is damaged; the newest: "
                              f"{problems[0]}")
    return None


def find_checkpoint(path: str | Path, checksums: bool | Sequence[str] = False) -> Path:
    """Resolve `ckpt=`: a step folder as is, or a run folder (or its `checkpoints/`) to its newest good step.

    A step folder given explicitly must pass `verify_checkpoint` (else `CheckpointError`); a run folder falls
    back to its newest step folder that passes, with a warning (see `latest_checkpoint`).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"checkpoint path {p} does not exist; pass a run dir or a checkpoints/step-N dir")
    if (p / MODEL_FILE).is_file():
        verify_checkpoint(p, checksums)
        return p
    run = p.parent if p.name == CHECKPOINTS_DIR else p
    newest = latest_checkpoint(run, checksums)
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


def _nbytes(obj: Any) -> int:
    """Bytes of the tensors / arrays inside `obj` (nested mappings and sequences): what saving it writes, about."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, Mapping):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def _size(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.2f} MiB"


class _ErrorRecordingWriter(io.RawIOBase):
    """A binary file that remembers the `OSError` of a failed write: `torch.save` turns it into a bare
    `RuntimeError ... unexpected pos`, which says neither the disk nor the path."""

    def __init__(self, f: io.BufferedWriter):
        super().__init__()
        self.f, self.error = f, None

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = e
            raise


def _space_error(e: BaseException, recorded: OSError | None) -> int | None:
    """The errno when `e` is running out of space (disk full, quota, file-size limit), else None."""
    for c in (e, recorded, e.__cause__, e.__context__):
        if isinstance(c, OSError) and c.errno in _SPACE_ERRNOS:
            return c.errno
    m = re.search(r"os error (\d+)", str(e))  # safetensors (Rust) reports the OS error in its message
    return int(m.group(1)) if m and int(m.group(1)) in _SPACE_ERRNOS else None


def save_checkpoint(run_dir: str | Path, step: int, *, config: DictConfig | Mapping[str, Any],
                    model_state: Mapping[str, torch.Tensor], ema_state: Mapping[str, torch.Tensor],
                    statistics: Mapping[str, Any], language_table: Mapping[str, Any],
                    trainer_state: Mapping[str, Any], keep_last: int,
                    extra_files: Mapping[str, str | Path] | None = None) -> Path:
    """Write `RUN/checkpoints/step-NNNNNNN/` atomically and delete all but the newest `keep_last`.

    `statistics` is the `dataset_statistics.json` content; `language_table` maps instruction -> 512-d; `extra_files`
    (name -> source file) are copied in and listed in the manifest (the autoencoder of `model.codec=ae`).
    Returns the final folder. A crash at any point leaves either the old set of complete
    checkpoints or the old set plus this one, never a half-written step folder. Too little space
    (checked before writing, or a disk-full / quota / file-size error while writing) raises
    `CheckpointError` saying what happened, where, and how much was needed; the temp folder is removed.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    needed = _nbytes(model_state) + _nbytes(ema_state) + _nbytes(trainer_state) + _nbytes(language_table)
    free = shutil.disk_usage(root).free
    if free < needed:
        raise CheckpointError(f"cannot save checkpoint step {step} in {root}: it needs about {_size(needed)} and the "
                              f"disk has {_size(free)} free. {_space_advice(run_dir)}")
    tmp.mkdir()
    writing, recorder = tmp / CONFIG_FILE, None
    try:
        cfg = config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
        (tmp / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True))
        writing = tmp / MODEL_FILE
        save_file(_cpu_state(model_state), str(writing), metadata={"step": str(step)})
        writing = tmp / EMA_FILE
        save_file(_cpu_state(ema_state), str(writing), metadata={"step": str(step)})
        writing = tmp / STATS_FILE
        writing.write_text(json.dumps(_jsonable(statistics), indent=2))
        writing = tmp / LANGUAGE_TABLE_FILE
        save_language_table(language_table, writing)
        writing = tmp / TRAINER_STATE_FILE
        with open(writing, "wb") as f:
            recorder = _ErrorRecordingWriter(f)
            torch.save(_plain(dict(trainer_state)), recorder)
        for name, source in (extra_files or {}).items():
            writing = tmp / name
            shutil.copyfile(source, writing)
        writing = tmp / MANIFEST_FILE
        manifest = {"step": step, "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                                            for name in (*REQUIRED_FILES, *(extra_files or {}))}}
        writing.write_text(json.dumps(manifest, indent=1))
        _fsync_tree(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        code = _space_error(e, recorder.error if recorder is not None else None)
        if code is None and isinstance(e, Exception) and shutil.disk_usage(root).free < needed:
            code = errno.ENOSPC  # an opaque error, and the disk cannot hold the checkpoint: that was the cause
        if code is None:
            raise
        raise CheckpointError(f"cannot save checkpoint step {step}: {_SPACE_ERRNOS[code]} ({os.strerror(code)}) "
                              f"while writing {writing}. The checkpoint needs about {_size(needed)}; {root} has "
                              f"{_size(shutil.disk_usage(root).free)} free. The partial folder was removed. "
                              f"{_space_advice(run_dir)}") from e
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


def _space_advice(run_dir: str | Path) -> str:
    found = list_checkpoints(run_dir)
    kept = f"The newest complete checkpoint is still {found[-1][1]}. " if found else ""
    return f"{kept}Free some space, lower train.keep_last, or set another output_dir."


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
    """`trainer_state.pt` of a step folder (optimizer, scheduler, RNG, data position, step); `CheckpointError`
    naming the file when it cannot be read."""
    path = Path(ckpt) / TRAINER_STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}: {str(e).strip()[:200]}); the checkpoint "
                              "is damaged, use another step folder") from e


def load_weights(ckpt: str | Path, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The model (or EMA) state dict of a step folder, on CPU; `CheckpointError` naming the file when it cannot
    be read."""
    path = Path(ckpt) / (EMA_FILE if use_ema else MODEL_FILE)
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises SafetensorError (an Exception) for a damaged header or body
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}: {str(e).strip()[:200]}); the checkpoint "
                              "is damaged, use another step folder") from e


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
