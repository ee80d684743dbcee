"""The training loop: one process or many under torchrun, exact resume, EMA teacher, validation, NaN guard.

Reproducibility: every micro-batch draws its modes, text dropout, timesteps and noise from
generators seeded by (seed, step, global micro-batch index). So a run resumed from a
checkpoint continues bit-for-bit (on CPU), and 2 processes x 1 micro-batch compute the same
update as 1 process x 2 accumulated micro-batches on the same global batch.
"""
from __future__ import annotations

import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from selfflow_robot import checkpoint as ckpt_io
from selfflow_robot import constants as C
from selfflow_robot.config import structured
from selfflow_robot.errors import ConfigError
from selfflow_robot.files import check_writable_dir
from selfflow_robot.model.autoencoder import CONFIG_FILE as AUTOENCODER_CONFIG
from selfflow_robot.model.autoencoder import WEIGHTS_FILE as AUTOENCODER_WEIGHTS
from selfflow_robot.model.build import build_model, model_config
from selfflow_robot.model.device import cpu_has_bf16_matmul, precision_autocast
from selfflow_robot.objective import EMA, build_objective
from selfflow_robot.objective.config import ObjectiveConfig
from selfflow_robot.train import parallel
from selfflow_robot.train.augment import random_shift
from selfflow_robot.train.builders import DataBundle, build_data, init_weights_from
from selfflow_robot.train.config import Parallelism, Precision, TrainConfig
from selfflow_robot.train.guard import check_finite
from selfflow_robot.train.latents import frame_tokens
from selfflow_robot.train.logger import RunLogger, plot_curves
from selfflow_robot.train.modes import MODES, build_flow_batch, mode_probabilities, sample_modes
from selfflow_robot.train.rng import capture_rng_state, micro_batch_seed, restore_rng_state, seed_everything
from selfflow_robot.train.schedule import build_scheduler, ema_decay_at
from selfflow_robot.train.validate import summarize, validate

FSDP_MIN_PARAMS = 500_000_000  # `parallel=auto` shards models this large (xl) with FSDP2, replicates smaller ones


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on >= 2-D weights (matrices, embeddings), none on biases / norms / null text."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Builds everything from the composed `train` config and runs `fit()`."""

    def __init__(self, cfg: DictConfig, info: parallel.DistInfo) -> None:
        self.cfg = cfg
        self.info = info
        self.tcfg = structured(TrainConfig, cfg.train)
        self.model_cfg = model_config(cfg.model)
        self.obj_cfg = structured(ObjectiveConfig, cfg.objective)
        self.run_dir = Path(str(cfg.output_dir))
        if info.is_main:  # before the model and data are built, not at the first log line or checkpoint
            check_writable_dir(self.run_dir, "output_dir")
        self.device = info.device
        if (self.tcfg.precision == Precision.bf16 and self.device.type == "cpu" and info.is_main
                and cpu_has_bf16_matmul() is False):
            warnings.warn("train.precision=bf16 on a CPU without AVX512-BF16/AMX: bf16 is emulated there and "
                          "slower than fp32; use train.precision=fp32", stacklevel=2)
        if self.tcfg.world_model_state and not self.model_cfg.state_dim:
            raise ConfigError("train.world_model_state=true gives the world model the robot state, but the model "
                              "takes none: set model.state_dim=8 (and data with a state)")
        if self.tcfg.deterministic:
            torch.use_deterministic_algorithms(True)
        seed_everything(self.tcfg.seed)  # identical initial weights on every rank

        model, codec = build_model(self.model_cfg)
        if cfg.get("init_from"):
            report = init_weights_from(model, str(cfg.init_from), self.model_cfg, key=cfg.get("init_from_key", "model"))
            if info.is_main:
                print(report, flush=True)
        self.model = model.to(self.device)
        self.codec = codec.to(self.device).eval()
        self.ema = EMA(self.model, self.obj_cfg.ema_decay)

        n_params = sum(p.numel() for p in self.model.parameters())
        strategy = self.tcfg.parallel
        if strategy == Parallelism.auto and info.distributed:
            strategy = Parallelism.fsdp if n_params >= FSDP_MIN_PARAMS else Parallelism.ddp
        self.strategy = parallel.resolve_parallelism(strategy, info)
        if self.strategy == Parallelism.fsdp:  # the teacher is sharded the same way as the student
            parallel.parallelize(self.ema.module, info, Parallelism.fsdp)
            # sharded blocks gather their weights in every call: each process must call them equally often,
            # so rows never split by the groups they use (absent tokens are masked instead)
            self.model.drop_absent_tokens = self.ema.module.drop_absent_tokens = False
        # DDP must not wait for gradients a step does not produce: vanilla never uses the representation
        # projector, and a rank whose micro-batch holds only policy examples drops the future-frame tokens
        # (the frame head then gets no gradient on that rank)
        self.student = parallel.parallelize(self.model, info, self.strategy, compile=self.tcfg.compile,
                                            activation_checkpointing=self.tcfg.activation_checkpointing,
                                            find_unused_parameters=True)
        self.n_params = n_params

        self.objective = build_objective(self.obj_cfg, self.model_cfg)
        o = self.tcfg.optim
        self.optimizer = torch.optim.AdamW(param_groups(self.model, o.weight_decay), lr=o.lr,
                                           betas=(o.betas[0], o.betas[1]), eps=o.eps)
        self.scheduler = build_scheduler(self.optimizer, self.tcfg.steps, o)
        self.mode_probs = mode_probabilities(self.tcfg.modes.probabilities())
        self.data: DataBundle = build_data(cfg, self.model_cfg, info, self.tcfg, self.codec)
        self.encode = frame_tokens(self.codec.encode)  # cached batches hold tokens already
        self.shift = (partial(random_shift, grid=self.codec.grid, patch=self.codec.patch_size,
                              max_shift=self.tcfg.random_shift) if self.tcfg.random_shift else None)
        self.step = 0
        self.last_good: Path | None = None
        if cfg.get("resume"):
            self._resume()

    # ------------------------------------------------------------------ precision

    def _autocast(self):
        return precision_autocast(self.device, self.tcfg.precision.value)

    # ------------------------------------------------------------------ one optimiser step

    def train_step(self) -> dict[str, float]:
        """Accumulate `grad_accum` micro-batches, clip, guard, step optimiser / scheduler / EMA."""
        t0 = time.perf_counter()
        accum, world = self.tcfg.grad_accum, self.info.world_size
        sums: dict[str, torch.Tensor] = {}
        counts = torch.zeros(len(MODES))
        mode_flow = torch.zeros(len(MODES))  # summed per-example flow error of each mode
        examples = 0
        for micro in range(accum):
            batch = self.data.next_batch(micro)
            seed = micro_batch_seed(self.tcfg.seed, self.step, micro * world + self.info.rank)
            cpu_gen = torch.Generator().manual_seed(seed)
            dev_gen = cpu_gen if self.device.type == "cpu" else torch.Generator(self.device).manual_seed(seed)
            B = len(batch[C.INSTRUCTION])
            modes = sample_modes(B, self.mode_probs, cpu_gen)
            counts += torch.bincount(modes, minlength=len(MODES)).float()
            examples += B
            fb = build_flow_batch(batch, self.encode, self.data.action_tokens, modes,
                                  self.tcfg.text_dropout, self.device, cpu_gen, self.data.state_input,
                                  self.tcfg.state_dropout, self.tcfg.state_noise, self.data.state_target,
                                  self.model_cfg.future_delta_scale, self.shift, self.tcfg.context_noise,
                                  self.tcfg.world_model_state)
            sync_ctx = parallel.no_sync(self.student, enabled=micro < accum - 1)
            with sync_ctx:
                with self._autocast():
                    out = self.objective(self.student, self.ema.module, fb, generator=dev_gen,
                                         draws=self.tcfg.draws_per_window)
                (out.loss / accum).backward()
            for k, v in {"loss": out.loss.detach(), **out.logs}.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() / accum
            if out.per_example is not None:
                mode_flow.index_add_(0, modes, out.per_example.float().cpu())
        o = self.tcfg.optim
        if o.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters()
                                                       if p.grad is not None])
        if hasattr(grad_norm, "full_tensor"):  # FSDP2 DTensor
            grad_norm = grad_norm.full_tensor()
        keys = sorted(sums)
        reduced = parallel.all_reduce_mean(torch.stack([sums[k] for k in keys]).to(self.device))
        logs = {k: float(v) for k, v in zip(keys, reduced.cpu())}
        check_finite(self.step + 1, {"loss": logs["loss"], "grad_norm": float(grad_norm)}, self.last_good)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.strategy == Parallelism.fsdp:
            # FSDP2 keeps the root's parameters gathered after a no-grad (teacher) forward; shard them back
            # so EMA and student parameters are the same kind (local shards of the same layout)
            self.ema.module.reshard()
        self.ema.update(self.model, ema_decay_at(self.step, self.obj_cfg.ema_decay, self.tcfg.ema_warmup))
        self.step += 1
        counts, mode_flow = parallel.all_reduce_sum(torch.stack([counts, mode_flow]).to(self.device)).cpu()
        dt = time.perf_counter() - t0
        out_logs = {f"loss/{'total' if k == 'loss' else k}": v for k, v in logs.items()}
        out_logs.update({"lr": lr, "grad_norm": float(grad_norm),
                         "throughput/examples_per_s": examples * world / dt,
                         "throughput/signals_per_s": examples * world * self.tcfg.draws_per_window / dt,
                         "throughput/step_time_s": dt})
        if "teacher_cos" in logs:
            out_logs["ema/teacher_cos"] = out_logs.pop("loss/teacher_cos")
        for i, m in enumerate(MODES):
            out_logs[f"modes/{m.value}_fraction"] = float(counts[i] / counts.sum())
            if counts[i] > 0:  # the flow loss of the examples trained in this mode
                out_logs[f"loss/flow_mode_{m.value}"] = float(mode_flow[i] / counts[i])
        return out_logs

    # ------------------------------------------------------------------ checkpoints

    def _trainer_state(self) -> dict[str, Any]:
        """Optimizer, scheduler, step, and every rank's RNG and data position (collective)."""
        per_rank = parallel.all_gather_objects({"rng": capture_rng_state(), "data": self.data.state_dict()})
        if parallel.is_fsdp(self.student):
            optim = parallel.full_optimizer_state(self.student, self.optimizer)
        else:
            optim = self.optimizer.state_dict()
        return {"step": self.step, "world_size": self.info.world_size, "optimizer": optim,
                "scheduler": self.scheduler.state_dict(), "ranks": per_rank}

    def save(self) -> Path | None:
        """Write `RUN/checkpoints/step-N/` (every rank takes part; rank 0 writes)."""
        state = self._trainer_state()
        model_state = parallel.full_model_state(self.student)
        ema_state = parallel.full_model_state(self.ema.module)
        path = None
        if self.info.is_main:
            path = ckpt_io.save_checkpoint(
                self.run_dir, self.step, config=self.cfg, model_state=model_state, ema_state=ema_state,
                statistics=self.data.statistics, language_table=self.data.language_table,
                trainer_state=state, keep_last=self.tcfg.keep_last, extra_files=self._codec_files())
        parallel.barrier()
        self.last_good = self.run_dir / ckpt_io.CHECKPOINTS_DIR / ckpt_io.step_dir_name(self.step)
        return path

    def _codec_files(self) -> dict[str, Path]:
        """The files a checkpoint carries for its codec: the trained autoencoder of `model.codec=ae`."""
        if self.model_cfg.codec != "ae":
            return {}
        folder = Path(self.model_cfg.vae).expanduser()
        return {name: folder / name for name in (AUTOENCODER_WEIGHTS, AUTOENCODER_CONFIG)}

    def _resume(self) -> None:
        latest = ckpt_io.latest_checkpoint(self.run_dir, checksums=True)  # skips damaged ones, with a warning
        if latest is None:
            if self.info.is_main:
                print(f"resume: no complete checkpoint in {self.run_dir}, starting from step 0", flush=True)
            return
        state = ckpt_io.load_trainer_state(latest)
        parallel.load_full_model_state(self.student, ckpt_io.load_weights(latest))
        parallel.load_full_model_state(self.ema.module, ckpt_io.load_weights(latest, use_ema=True))
        if parallel.is_fsdp(self.student):
            parallel.load_full_optimizer_state(self.student, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        ranks = state["ranks"]
        if len(ranks) == self.info.world_size:
            mine = ranks[self.info.rank]
            restore_rng_state(mine["rng"])
            self.data.load_state_dict(mine["data"])
        elif self.info.is_main:
            print(f"resume: checkpoint written by {len(ranks)} processes, now {self.info.world_size}; "
                  "weights, optimizer and step are restored, the data stream restarts at a new position",
                  flush=True)
        self.last_good = latest
        if self.info.is_main:
            print(f"resume: continuing from {latest} (step {self.step})", flush=True)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> Path | None:
        """Train to `train.steps`, checkpointing and validating on schedule; returns the last checkpoint."""
        t = self.tcfg
        logger = RunLogger(self.run_dir, enabled=self.info.is_main, total_steps=t.steps, start_step=self.step,
                           wandb_cfg=t.wandb, config=OmegaConf.to_container(self.cfg, resolve=True))
        if self.info.is_main:
            (self.run_dir).mkdir(parents=True, exist_ok=True)
            logger.message(f"train: {self.n_params / 1e6:.2f}M params, {self.info.world_size} process(es) "
                           f"({self.strategy.value}), device {self.device}, global batch "
                           f"{t.batch_size * t.grad_accum * self.info.world_size}, steps {self.step}->{t.steps}, "
                           f"run dir {self.run_dir}")
        last = self.last_good
        try:
            if t.validation.at_start and t.val_every and self.step == 0 < t.steps:
                self.run_validation(logger)
            while self.step < t.steps:
                logs = self.train_step()
                logger.advance(1, loss=logs["loss/total"])
                if self.step % t.log_every == 0 or self.step == t.steps:
                    logger.log(self.step, logs)
                if (t.save_every and self.step % t.save_every == 0) or self.step == t.steps:
                    last = self.save()
                    if last is not None:
                        logger.message(f"saved {last}")
                if (t.val_every and self.step % t.val_every == 0) or (t.val_every and self.step == t.steps):
                    self.run_validation(logger)
        finally:
            logger.close()
        if self.info.is_main:
            plot_curves(self.run_dir)
        return last

    def run_validation(self, logger: RunLogger) -> dict[str, float] | None:
        """Score the EMA model on held-out episodes (rank 0; every rank under FSDP2) and log the numbers."""
        if self.data.val is None:
            return None
        sharded = parallel.is_fsdp(self.ema.module)
        result = None
        if self.info.is_main or sharded:
            result = validate(self.ema.module, self.codec, self.data, self.tcfg.validation, self.model_cfg,
                              device=self.device, seed=self.tcfg.seed, autocast=self._autocast,
                              world_model_state=self.tcfg.world_model_state)
            if sharded:
                self.ema.module.reshard()
        if self.info.is_main and result is not None:
            logger.log(self.step, {f"val/{k}": v for k, v in result.items()})
            logger.message(format_validation(self.step, result))
        parallel.barrier()
        return result


def format_validation(step: int, r: dict[str, float]) -> str:
    """One readable block: model vs baseline for actions and frames."""
    lines = [f"validation @ step {step} ({int(r.get('windows', 0))} held-out windows):"]
    for suffix, what in (("", "sampled"), ("_1step", "1-step mean")):
        if "action_mse_norm" + suffix in r:
            lines.append(f"  action MSE normalised ({what}): model {r['action_mse_norm' + suffix]:.4f} vs mean-action "
                         f"baseline {r['action_mse_norm_mean_baseline']:.4f}; raw: model "
                         f"{r['action_mse_raw' + suffix]:.3e} vs {r['action_mse_raw_mean_baseline']:.3e}")
        if "psnr" + suffix in r:
            lines.append(f"  frames ({what}): PSNR model {r['psnr' + suffix]:.2f} dB vs copy-last-frame "
                         f"{r['psnr_copy_last']:.2f} dB; SSIM model {r['ssim' + suffix]:.4f} vs copy-last-frame "
                         f"{r['ssim_copy_last']:.4f}")
    for suffix, what in (("", "sampled"), ("_1step", "1-step mean")):
        verdict = summarize(r, suffix)
        if verdict and (suffix == "" or "action_mse_norm" + suffix in r):
            lines.append(f"  => {what}: {verdict}")
    return "\n".join(lines)


def train(cfg: DictConfig) -> Path | None:
    """Run one training job from a composed `train` config (single process or under torchrun)."""
    info = parallel.init_distributed(str(cfg.get("device", "auto")))
    try:
        return Trainer(cfg, info).fit()
    finally:
        parallel.cleanup()
