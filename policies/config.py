"""`PolicyConfig`: the inference settings of `SelfFlowPolicy` (none of them change the weights)."""
from __future__ import annotations

from dataclasses import dataclass

from selfflow_robot.errors import ConfigError


@dataclass
class PolicyConfig:
    """Inference settings (none of them change the weights).

    Args:
        steps: denoising steps of the sampler per chunk.
        sampler: `ode` (deterministic Euler) or `sde`.
        cfg_scale: classifier-free guidance on the instruction (1.0 = off; >1 costs a second forward).
        execute_horizon: actions executed from each chunk before predicting a new one (None = the whole chunk).
        ensemble: temporal ensembling of overlapping chunks (use with a small `execute_horizon`).
        ensemble_temp: ensembling weight exp(-temp * rank), rank 0 = the oldest prediction.
        action_scale: multiplies `world_vector` and `rot_axangle` (SimplerEnv's --action-scale).
        gripper_deadzone: |gripper| below this is sent as 0 (RT-1's small-action filter).
        seed: seeds the sampler's noise at every `reset`, so an episode is reproducible.
        use_ema: load the EMA weights (the ones to deploy).
        device: torch device for the model; `auto` = CUDA when available, else CPU.
        precision: `auto` (bf16 autocast on CUDA, fp32 on CPU), `fp32` or `bf16`.
        text_encoder: optional local dir of a Hugging Face text model for instructions not in the table.
        text_fallback: how encoder outputs map to the table's space: `nearest` or `ridge` (see language.py).
        use_state: for a checkpoint trained with proprioception (`model.state_dim > 0`): False = ignore the
            robot state and act from the image alone through the learned null state, so no `state` is needed
            (meaningful for checkpoints trained with `train.state_dropout > 0`, which learned that case).
        state_scale: guidance on the robot state against the learned null state, like `cfg_scale` for the
            instruction (1.0 = off; > 1 leans harder on the state; costs a second forward). For checkpoints
            trained with `train.state_dropout > 0`.
    """

    steps: int = 10
    sampler: str = "ode"
    cfg_scale: float = 1.0
    execute_horizon: int | None = None
    ensemble: bool = False
    ensemble_temp: float = 0.0
    action_scale: float = 1.0
    gripper_deadzone: float = 1e-2
    seed: int = 0
    use_ema: bool = True
    device: str = "auto"
    precision: str = "auto"
    text_encoder: str | None = None
    text_fallback: str = "nearest"
    use_state: bool = True
    state_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"policy steps must be >= 1, got {self.steps}")
        if self.sampler not in ("ode", "sde"):
            raise ConfigError(f"policy sampler must be one of ['ode', 'sde'], got {self.sampler!r}")
        if self.text_fallback not in ("nearest", "ridge"):
            raise ConfigError(f"policy text_fallback must be one of ['nearest', 'ridge'], got {self.text_fallback!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"policy precision must be one of ['auto', 'fp32', 'bf16'], got {self.precision!r}")
        if self.cfg_scale < 0:
            raise ConfigError(f"policy cfg_scale must be >= 0, got {self.cfg_scale}")
        if self.state_scale < 0:
            raise ConfigError(f"policy state_scale must be >= 0, got {self.state_scale}")
