"""The `selfflow-robot train` schema: `TrainRunConfig` (the run and its config groups) and `TrainConfig`.

`TrainConfig` is the `train` group (optimiser, schedule, modes mix, precision, cadence, logging): its
defaults are `train=default`, and `configs/train/cpu.yaml` holds only what `train=cpu` changes.
`TrainRunConfig` is the whole composed config (`configs/train.yaml` selects its groups); the model,
objective and data groups are validated by their owners' dataclasses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from selfflow_robot.data.dataset import DataConfig
from selfflow_robot.errors import ConfigError
from selfflow_robot.model.config import SIZES, DiTConfig
from selfflow_robot.objective.config import OBJECTIVES, ObjectiveConfig


class Precision(str, Enum):
    """Compute precision: `auto` = bf16 autocast on CUDA, fp32 on CPU."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Parallelism(str, Enum):
    """How the model is replicated: `auto` = FSDP2 for `xl`, DDP otherwise (when world size > 1)."""

    auto = "auto"
    none = "none"
    ddp = "ddp"
    fsdp = "fsdp"


class Schedule(str, Enum):
    """Learning-rate schedule after the linear warmup."""

    cosine = "cosine"
    constant = "constant"


@dataclass
class ModesConfig:
    """Per-example probabilities of the three training modes (normalised to sum to 1).

    Args:
        world_model: p(future frames | context, actions, text): actions clean, frames noisy.
        policy: p(actions | context, text): actions noisy, future frames absent.
        joint: p(frames, actions | context, text): both noisy.
    """

    world_model: float = 0.4
    policy: float = 0.4
    joint: float = 0.2

    def __post_init__(self) -> None:
        probs = self.probabilities()
        if any(p < 0 for p in probs.values()) or sum(probs.values()) <= 0:
            raise ConfigError(f"train.modes probabilities must be >= 0 and not all 0, got {probs}")

    def probabilities(self) -> dict[str, float]:
        """Raw (unnormalised) probabilities keyed by mode name."""
        return {"world_model": self.world_model, "policy": self.policy, "joint": self.joint}


@dataclass
class OptimConfig:
    """AdamW with global-norm gradient clipping and linear warmup + cosine decay.

    Args:
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay (applied to >=2-D weights only).
        betas: Adam betas.
        eps: Adam epsilon.
        grad_clip: max global gradient norm (<= 0 disables clipping).
        warmup_steps: linear warmup from 0 to `lr` over this many optimiser steps.
        schedule: what follows the warmup (`cosine` to `min_lr_ratio * lr` at the last step, or `constant`).
        min_lr_ratio: the cosine floor as a fraction of `lr`.
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float = 1.0
    warmup_steps: int = 1000
    schedule: Schedule = Schedule.cosine
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"train.optim.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.optim.betas must be two values in [0, 1), got {self.betas}")
        if self.warmup_steps < 0:
            raise ConfigError(f"train.optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"train.optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class WandbConfig:
    """Optional Weights & Biases mirror of the TensorBoard scalars (needs `pip install wandb`)."""

    enabled: bool = False
    project: str = "selfflow-robot"
    entity: str | None = None
    name: str | None = None
    mode: str = "online"  # online | offline | disabled (wandb's own modes)


@dataclass
class ValidationConfig:
    """Periodic validation on held-out episodes.

    Args:
        batches: number of held-out batches per validation (each of `train.batch_size` windows).
        sample_steps: denoising steps of the sampler for actions and frames.
        world_model: also sample future frames and score PSNR/SSIM (slower than the action check).
        one_step: also score the one-step prediction (the model's conditional-mean estimate), keys `*_1step`.
        one_step_draws: noise draws the one-step estimate is averaged over (1 = a single draw). The ideal
            conditional-mean estimate does not depend on the noise; a briefly trained model leaves some of
            its input noise in the output, and averaging draws removes that part (a Monte-Carlo mean).
        at_start: also validate before the first step (logged at the start step): the untrained reference.
    """

    batches: int = 4
    sample_steps: int = 20
    world_model: bool = True
    one_step: bool = True
    one_step_draws: int = 4
    at_start: bool = False

    def __post_init__(self) -> None:
        if self.one_step_draws < 1:
            raise ConfigError(f"train.validation.one_step_draws must be >= 1, got {self.one_step_draws}")


@dataclass
class TrainConfig:
    """One fine-tuning run.

    Args:
        steps: optimiser steps in total (a resumed run continues up to this number).
        batch_size: windows per process per micro-batch.
        grad_accum: micro-batches per optimiser step; global batch = batch_size * grad_accum * world size.
        seed: master seed. Each micro-batch's noise, modes and text dropout are drawn from an RNG seeded
            by (seed, step, global micro-batch index), so a run is reproducible, resumes exactly, and
            gives the same result for any split of the global batch over processes and accumulation.
        text_dropout: probability of the learned null text per example (classifier-free guidance).
        state_dropout: probability of the learned null state per policy/joint example (models with
            `model.state_dim > 0`): the policy also learns to act from the image alone, so it keeps reading
            the image for what the state cannot tell (where the drawer is). 0 = always the state.
        state_noise: std of Gaussian noise on the normalised state during training (0 = none).
        world_model_state: world-model examples get the robot state too (at the last context frame, with the
            same dropout and noise), so the world model is told where the arm is instead of inferring it from
            a few blurred tokens. Off (the default): they get the null state. A checkpoint trained with it
            takes the state in `WorldModel.rollout(states=...)`.
        random_shift: random-shift augmentation (DrQ, Diffusion Policy): each training window, context and
            future frames alike, is translated by up to this many cells of the codec's map per axis (latent cells
            with the autoencoder, one cell = `codec.downsample` px; pixels with pixel patches), edges
            replicated (`train/augment.py`). 0 = off. Validation and inference see the frames as they are.
        context_noise: the largest std of Gaussian noise added to the context tokens of world-model and joint
            examples (uniform per example in [0, context_noise], in the tokens' units; 0 = none): the world model
            learns to imagine from imperfect past frames, as in a long rollout from its own (`train/modes.py`).
        draws_per_window: independent noise draws (noise, timesteps) of each window's targets per step. With
            `model.attention=prefix` the draws share one pass over the clean context, which dominates the
            cost, so k draws give k training signals for much less than k windows cost.
        precision: `auto` (bf16 autocast on CUDA, fp32 on CPU), `fp32` or `bf16` (also on a CPU with
            AVX512-BF16 or AMX: matmuls ~2.5x faster than fp32, attention kept in fp32; the demo's recipe).
        parallel: `auto` (DDP, FSDP2 for `xl`), `none`, `ddp` or `fsdp` (only used under torchrun).
        compile: `torch.compile` the model (CUDA runs).
        activation_checkpointing: recompute each block in backward to save memory.
        save_every: checkpoint every this many steps (and always at the end); 0 = only at the end.
        keep_last: complete checkpoints kept on disk (older ones are deleted).
        val_every: validate every this many steps (and at the end); 0 = never.
        log_every: write scalars every this many steps.
        deterministic: `torch.use_deterministic_algorithms(True)` (exact reproducibility, slower on GPU).
        ema_warmup: ramp the EMA decay as min(objective.ema_decay, (1 + n) / (10 + n)) at update n (0-based), so
            the EMA weights (the Self-Flow teacher, validation, `load_pretrained(use_ema=True)`) track the
            student early on instead of staying near the initial weights for ~1/(1 - decay) steps;
            it only changes short runs (the ramp reaches 0.9999 after ~90,000 steps, 0.999 after ~9,000).
    """

    steps: int = 100_000
    batch_size: int = 32
    grad_accum: int = 1
    seed: int = 0
    text_dropout: float = 0.1
    state_dropout: float = 0.0
    state_noise: float = 0.0
    world_model_state: bool = False
    random_shift: int = 0
    context_noise: float = 0.0
    draws_per_window: int = 1
    precision: Precision = Precision.auto
    parallel: Parallelism = Parallelism.auto
    compile: bool = False
    activation_checkpointing: bool = False
    save_every: int = 5000
    keep_last: int = 3
    val_every: int = 5000
    log_every: int = 50
    deterministic: bool = False
    ema_warmup: bool = True
    modes: ModesConfig = field(default_factory=ModesConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "keep_last", "log_every", "draws_per_window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("save_every", "val_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("text_dropout", "state_dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"train.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.state_noise < 0:
            raise ConfigError(f"train.state_noise must be >= 0, got {self.state_noise}")
        if self.context_noise < 0:
            raise ConfigError(f"train.context_noise must be >= 0, got {self.context_noise}")
        if self.random_shift < 0:
            raise ConfigError(f"train.random_shift must be >= 0 (map cells), got {self.random_shift}")


@dataclass
class TrainRunConfig:
    """`selfflow-robot train`: one run, composed from the config groups `configs/train.yaml` selects.

    Args:
        model: the backbone, `model=tiny|small|base|xl` (the size table `selfflow_robot.model.config.SIZES`).
        objective: the training objective, `objective=selfflow|vanilla`.
        data: the dataset and how windows are cut, `data=synth|rt1` (configs/data/).
        train: optimiser, schedule, cadence, `train=default|cpu` (configs/train/cpu.yaml).
        output_dir: run dir: checkpoints/step-NNNNNNN/, tb/, metrics.jsonl, curves.png.
        resume: continue exactly from the newest complete checkpoint in `output_dir` (none: start fresh).
        init_from: start a NEW run from weights: a checkpoint or run dir, or (xl) the released
            selfflow_imagenet256.pt.
        init_from_key: which entry of a released `.pt` file that holds several (`model`, `ema`) to import;
            `model` is what the official Self-Flow sample script loads. The import report names the entry.
        device: `auto` (cuda:LOCAL_RANK if available, else cpu), `cpu` or `cuda`.
    """

    model: DiTConfig = field(default_factory=DiTConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs/train"
    resume: bool = False
    init_from: str | None = None
    init_from_key: str = "model"
    device: str = "auto"

    # Group options stored from the dataclasses; `data=` and `train=cpu` are YAML files under configs/.
    config_groups: ClassVar[dict[str, dict[str, Any]]] = {
        "model": SIZES,
        "objective": {name: ObjectiveConfig(name=name) for name in OBJECTIVES},
        "train": {"default": TrainConfig()},
    }
