"""NaN/inf guard: stop a diverging run with a clear message, before anything bad is saved."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from selfflow_robot.errors import UserError


class TrainingDivergedError(UserError):
    """The loss or gradient norm became NaN/inf; the run stopped without saving the bad state."""


def check_finite(step: int, values: Mapping[str, float], last_good: Path | None) -> None:
    """Raise `TrainingDivergedError` if any value (loss terms, grad norm) is NaN or inf.

    Called before the optimiser step, so the parameters of the failing step are never updated
    and never checkpointed: the newest checkpoint on disk stays the last good one.
    """
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if not bad:
        return
    where = (f"the last good checkpoint is {last_good} (continue with --resume)" if last_good
             else "no checkpoint was written yet")
    shown = ", ".join(f"{k}={v}" for k, v in bad.items())
    raise TrainingDivergedError(
        f"non-finite values at step {step}: {shown}; training stopped without saving this step, {where}; "
        "fix: lower train.optim.lr, keep train.optim.grad_clip at 1.0, or use precision=fp32")
