"""Small file helpers shared by every layer: atomic writes, and checking that an output folder is writable."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from selfflow_robot.errors import UserError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and one `os.replace`: readers see the
    old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable_dir(path: str | Path, key: str = "output_dir") -> Path:
    """Raise `UserError` unless the folder `path` (existing or still to be made) can be written, before any work.

    Probes the folder, or its nearest existing parent when it does not exist yet, by creating and removing
    a temp file: that catches read-only mounts, missing permissions and a file in the way, where checking
    mode bits would not. Creates nothing that stays. `key` names the option in the message. Returns the
    absolute path.
    """
    target = Path(path).expanduser().absolute()
    probe = target
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{key}={target} cannot be created: {probe} is a file, not a folder; choose another {key}")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        where = "" if probe == target else f" (its parent {probe} exists, and"
        raise UserError(f"{key}={target} is not writable{where}{' is not writable)' if where else ''}: "
                        f"{e.strerror or e}; choose another {key} or fix its permissions") from e
    return target
