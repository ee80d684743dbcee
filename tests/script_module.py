"""Load a file outside the package (a `scripts/` benchmark, the SIMPLER-side runner) as a module, for tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_script(path: Path, name: str | None = None) -> ModuleType:
    """Execute the Python file at `path` as a fresh module named `name` (default: its stem) and return it."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
