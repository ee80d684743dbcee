"""`ObjectiveConfig`: the `objective` config group; `objective=<name>` selects `ObjectiveConfig(name=<name>)`."""
from __future__ import annotations

from dataclasses import dataclass

from selfflow_robot.config import check_choice
from selfflow_robot.errors import ConfigError

OBJECTIVES = ("selfflow", "vanilla")
TIME_DISTRIBUTIONS = ("uniform", "logit_normal", "shifted")


@dataclass
class ObjectiveConfig:
    """Training objective. Noise levels follow t=1 = noise; x_t = (1-t)·x0 + t·eps, target eps - x0.

    Args:
        name: `selfflow` (Dual-Timestep Scheduling + EMA-teacher representation loss) or `vanilla`
            (plain flow matching, one timestep per example, no teacher).
        time_dist: p(t): `uniform`, `logit_normal` (sigmoid of N(time_mean, time_std)), or `shifted`
            (uniform u mapped to shift·u / (1 + (shift-1)·u); shift > 1 = noisier).
        time_mean, time_std: logit-normal parameters.
        time_shift: the shift of `shifted` (ignored by the other two).
        mask_ratio_video: R_M for future frames when the window has more than one (paper: video 0.1).
        mask_ratio_image: R_M for future frames when the window has one (paper: images 0.25).
        mask_ratio_actions: R_M for action tokens (our choice; the paper gives none).
        student_layer: l, the student block whose output goes through the projector (None = round(0.3·depth)).
        teacher_layer: k, the teacher block whose raw output is the target (None = round(0.7·depth)).
        gamma: weight of the representation loss mean(1 - cos).
        ema_decay: decay of the EMA weights (the teacher, saved as ema.safetensors), updated every step.
        future_weight, action_weight: weights of the per-group flow losses (each a mean over its noisy tokens).
        aux_state_weight: weight of the auxiliary state-prediction MSE (models with `model.aux_state_dim > 0`;
            mean over the batch and the normalised state dims).
    """

    name: str = "selfflow"
    time_dist: str = "uniform"
    time_mean: float = 0.0
    time_std: float = 1.0
    time_shift: float = 1.0
    mask_ratio_video: float = 0.1
    mask_ratio_image: float = 0.25
    mask_ratio_actions: float = 0.1
    student_layer: int | None = None
    teacher_layer: int | None = None
    gamma: float = 0.8
    ema_decay: float = 0.9999
    future_weight: float = 1.0
    action_weight: float = 1.0
    aux_state_weight: float = 1.0

    def __post_init__(self) -> None:
        check_choice("objective.name", self.name, OBJECTIVES)
        check_choice("objective.time_dist", self.time_dist, TIME_DISTRIBUTIONS)
        for key in ("mask_ratio_video", "mask_ratio_image", "mask_ratio_actions"):
            if not 0.0 <= getattr(self, key) <= 0.5:
                raise ConfigError(f"objective.{key} must be in [0, 0.5] (the paper's R_M <= 0.5), "
                                  f"got {getattr(self, key)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"objective.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.aux_state_weight < 0:
            raise ConfigError(f"objective.aux_state_weight must be >= 0, got {self.aux_state_weight}")
        if self.time_std <= 0 or self.time_shift <= 0:
            raise ConfigError("objective.time_std and objective.time_shift must be > 0, "
                              f"got {self.time_std} and {self.time_shift}")

    def layers(self, depth: int) -> tuple[int, int]:
        """(l, k) for a backbone of `depth` blocks, with the defaults filled in and checked."""
        student = self.student_layer if self.student_layer is not None else max(1, round(0.3 * depth))
        teacher = self.teacher_layer if self.teacher_layer is not None else max(1, round(0.7 * depth))
        for key, v in (("student_layer", student), ("teacher_layer", teacher)):
            if not 1 <= v <= depth:
                raise ConfigError(f"objective.{key}={v} must be in 1..{depth} (model.depth)")
        return student, teacher
