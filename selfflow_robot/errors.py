"""User-facing errors.

Raise `UserError` (or a subclass) for anything a user can fix: a missing file, a wrong
schema, a bad config value, a missing extra. The CLI prints its message on one line and
exits with status 2, without a traceback. The message says what is wrong, where, and the fix.
"""
from __future__ import annotations

import importlib


class UserError(Exception):
    """A failure caused by input, configuration or environment, with a message for the user."""


class ConfigError(UserError, ValueError):
    """A config value is invalid: says the key, the allowed values and what was given."""


class DataError(UserError):
    """A dataset, shard, episode or key is missing or malformed: names the file, episode and key."""


class MissingDependencyError(UserError, ImportError):
    """An optional extra is not installed: says which `pip install` fixes it."""


def require(module: str, extra: str):
    """Import an optional dependency, or raise `MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"'{module}' is needed here but is not installed ({e}); "
            f"install it with: pip install 'selfflow-robot[{extra}]'"
        ) from e
