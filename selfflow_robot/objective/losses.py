"""The two training objectives: `SelfFlowObjective` and `VanillaObjective`, built by `build_objective`.

Both: linear interpolant (t=1 = noise), velocity target eps - x0, MSE on noisy tokens only
(per group: the mean over its noisy, present, in-loss tokens; groups weighted by
`future_weight` / `action_weight`). Self-Flow adds Dual-Timestep Scheduling and
gamma · mean(1 - cos(projector(h_l student), h_k teacher)) over the same tokens. Models with a
state-prediction head (`model.aux_state_dim > 0`) add `aux_state_weight` · MSE(predicted, recorded state).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig

from selfflow_robot.config import structured
from selfflow_robot.constants import ACTIONS, CONTEXT, FUTURE, GROUPS
from selfflow_robot.model.build import model_config
from selfflow_robot.model.config import DiTConfig
from selfflow_robot.model.tokens import DiTOutput
from selfflow_robot.objective.batch import FlowBatch, LossOutput, state_kwargs
from selfflow_robot.objective.config import ObjectiveConfig
from selfflow_robot.objective.dts import dual_timesteps, mask_ratios, single_timestep
from selfflow_robot.objective.interpolant import interpolate, velocity_target
from selfflow_robot.objective.timesteps import TimeDistribution


class Objective:
    """Common parts: noise draws, interpolation, the masked flow loss."""

    name = "base"

    def __init__(self, cfg: ObjectiveConfig, model_cfg: DiTConfig):
        self.cfg = cfg
        self.model_cfg = model_cfg
        self.time_dist = TimeDistribution.from_config(cfg)
        self.group_weights = {FUTURE: cfg.future_weight, ACTIONS: cfg.action_weight}

    def __call__(self, student: nn.Module, teacher: nn.Module | None, batch: FlowBatch, *,
                 generator: torch.Generator | None = None, draws: int = 1) -> LossOutput:
        """The loss on `batch`, each window seen with `draws` independent noise draws (draw-major rows)."""
        raise NotImplementedError

    @staticmethod
    def _groups(batch: FlowBatch) -> list[str]:
        return [g for g in GROUPS if g in batch.x0]

    @staticmethod
    def _predicted(batch: FlowBatch) -> list[str]:
        """The groups a loss can cover: all but the context, which is always clean."""
        return [g for g in GROUPS if g in batch.x0 and g != CONTEXT]

    @staticmethod
    def _forward(model: nn.Module, window: FlowBatch, wide: FlowBatch, x: Mapping[str, torch.Tensor],
                 tau: Mapping[str, torch.Tensor], draws: int, **kwargs: Any) -> DiTOutput:
        """The model on `draws` noise draws of each window of `window` (`wide` = its rows repeated per draw,
        `x`/`tau` over `wide`'s rows). The context, text and state go in once per window, so a prefix-attention
        model computes the context once. `features` are returned over the predicted groups' tokens only."""
        has_ctx = CONTEXT in x
        if draws > 1 and has_ctx:
            x = {g: v[::draws] if g == CONTEXT else v for g, v in x.items()}
            tau = {g: v[::draws] if g == CONTEXT else v for g, v in tau.items()}
        key_mask = wide.key_mask if draws == 1 or wide.key_mask is None else \
            {g: m for g, m in wide.key_mask.items() if g != CONTEXT}
        out = model(x, tau, window.text, text_drop=window.text_drop, key_mask=key_mask,
                    draws=draws if has_ctx else 1, **state_kwargs(window), **kwargs)
        if draws == 1 and has_ctx and out.features is not None:   # draws > 1 leaves the context out already
            out = out._replace(features=out.features[:, x[CONTEXT].shape[1]:])
        return out

    @staticmethod
    def _per_window(per_example: torch.Tensor, draws: int) -> torch.Tensor:
        return per_example.reshape(-1, draws).mean(1) if draws > 1 else per_example

    @staticmethod
    def _noise(batch: FlowBatch, groups: list[str], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        return {g: torch.randn(batch.x0[g].shape, device=batch.x0[g].device, dtype=batch.x0[g].dtype,
                               generator=generator) for g in groups}

    def flow_loss(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                  weights: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """sum over groups of weight_g · mean over weighted tokens of mean-over-channels squared error.

        Returns (loss, logs, per_example): `per_example` (B,) is the same sum with each example's own
        token mean, detached, so the trainer can log the loss of each mode (world model / policy / joint).
        """
        total = per_example = None
        logs = {}
        for g, w in weights.items():
            err = (pred[g].float() - target[g].float()).pow(2).mean(-1)             # (B, N_g)
            w = w.to(err.dtype)
            loss_g = (err * w).sum() / w.sum().clamp(min=1.0)
            logs[f"flow_{g}"] = loss_g.detach()
            gw = self.group_weights.get(g, 1.0)
            term = gw * loss_g
            total = term if total is None else total + term
            ex = gw * ((err * w).sum(1) / w.sum(1).clamp(min=1.0)).detach()       # (B,)
            per_example = ex if per_example is None else per_example + ex
        if total is None:
            raise ValueError("the batch has no future/actions group to compute a loss on")
        return total, logs, per_example

    def aux_state_loss(self, pred: torch.Tensor | None, batch: FlowBatch) -> torch.Tensor | None:
        """MSE of the model's state read-out against `batch.state_target` (None when either is missing).

        A model with a state head trained on a batch without targets is a wiring mistake: raise, don't skip."""
        if pred is None and batch.state_target is None:
            return None
        if pred is None or batch.state_target is None:
            raise ValueError("the state-prediction loss needs both the model's head (model.aux_state_dim > 0) "
                             "and the batch's state_target; got only the "
                             + ("target" if pred is None else "head"))
        if pred.shape != batch.state_target.shape:
            raise ValueError(f"the state head predicts {tuple(pred.shape[1:])} values per example but the "
                             f"recorded state has {tuple(batch.state_target.shape[1:])}: set model.aux_state_dim "
                             f"to {batch.state_target.shape[-1]}")
        return (pred.float() - batch.state_target.float()).pow(2).mean()

    def with_aux_state(self, loss: torch.Tensor, logs: dict[str, torch.Tensor], pred: torch.Tensor | None,
                       batch: FlowBatch) -> torch.Tensor:
        """`loss` plus the weighted state-prediction loss (logged as `state_aux`), if the model has the head."""
        aux = self.aux_state_loss(pred, batch)
        if aux is None:
            return loss
        logs["state_aux"] = aux.detach()
        return loss + self.cfg.aux_state_weight * aux


class VanillaObjective(Objective):
    """Plain flow matching: one t ~ p(t) per example for all noisy tokens; no teacher (`teacher` is ignored)."""

    name = "vanilla"

    def __call__(self, student: nn.Module, teacher: nn.Module | None, batch: FlowBatch, *,
                 generator: torch.Generator | None = None, draws: int = 1) -> LossOutput:
        wide = batch.repeat_interleave(draws)
        groups = self._groups(wide)
        device = wide.x0[groups[0]].device
        shapes = {g: tuple(wide.x0[g].shape[:2]) for g in groups}
        _, tau = single_timestep(shapes, wide.noisy, self.time_dist, device=device, generator=generator)
        eps = self._noise(wide, groups, generator)
        x_tau = {g: interpolate(wide.x0[g], eps[g], tau[g]) for g in groups}
        out = self._forward(student, batch, wide, x_tau, tau, draws)
        loss_groups = [g for g in self._predicted(wide) if g in wide.noisy]
        target = {g: velocity_target(wide.x0[g], eps[g]) for g in loss_groups}
        flow, logs, per_example = self.flow_loss(out.velocity, target,
                                                 {g: wide.token_weights(g) for g in loss_groups})
        loss = self.with_aux_state(flow, logs, out.state, wide)
        return LossOutput(loss, {"flow": flow.detach(), **logs, "loss": loss.detach()},
                          self._per_window(per_example, draws))


class SelfFlowObjective(Objective):
    """Self-Flow: DTS for the student, EMA teacher at min(t, s) (forward to block k, no grad),
    L = L_flow + gamma · mean(1 - cos(projector(student h_l), teacher h_k)) over the noisy tokens."""

    name = "selfflow"

    def __init__(self, cfg: ObjectiveConfig, model_cfg: DiTConfig):
        super().__init__(cfg, model_cfg)
        self.student_layer, self.teacher_layer = cfg.layers(model_cfg.depth)
        self.ratios = mask_ratios(cfg, model_cfg.horizon)

    def __call__(self, student: nn.Module, teacher: nn.Module | None, batch: FlowBatch, *,
                 generator: torch.Generator | None = None, draws: int = 1) -> LossOutput:
        if teacher is None:
            raise ValueError("objective=selfflow needs the EMA teacher (EMA(model).module); "
                             "use objective=vanilla to train without one")
        wide = batch.repeat_interleave(draws)
        groups = self._groups(wide)
        device = wide.x0[groups[0]].device
        shapes = {g: tuple(wide.x0[g].shape[:2]) for g in groups}
        dts = dual_timesteps(shapes, wide.noisy, self.ratios, self.time_dist, device=device, generator=generator)
        eps = self._noise(wide, groups, generator)

        # Student: per-token noise levels (t or s); features = projector(hidden state after block l).
        x_student = {g: interpolate(wide.x0[g], eps[g], dts.student[g]) for g in groups}
        out = self._forward(student, batch, wide, x_student, dts.student, draws, feature_layer=self.student_layer)
        # Teacher: same x0 and noise, every noisy token at the cleaner level min(t, s); clean tokens stay clean.
        with torch.no_grad():
            x_teacher = {g: interpolate(wide.x0[g], eps[g], dts.teacher[g]) for g in groups}
            target_h = self._forward(teacher, batch, wide, x_teacher, dts.teacher, draws,
                                     stop_at=self.teacher_layer).features

        predicted = self._predicted(wide)
        loss_groups = [g for g in predicted if g in wide.noisy]
        weights = {g: wide.token_weights(g) for g in loss_groups}
        target = {g: velocity_target(wide.x0[g], eps[g]) for g in loss_groups}
        flow, logs, per_example = self.flow_loss(out.velocity, target, weights)

        w = torch.cat([weights[g] if g in weights else torch.zeros(shapes[g], dtype=torch.bool, device=device)
                       for g in predicted], dim=1).float()                              # (B·draws, N)
        cos = F.cosine_similarity(out.features.float(), target_h.float(), dim=-1)     # (B·draws, N)
        denom = w.sum().clamp(min=1.0)
        rep = ((1 - cos) * w).sum() / denom
        loss = self.with_aux_state(flow + self.cfg.gamma * rep, logs, out.state, wide)
        logs.update(flow=flow.detach(), rep=rep.detach(), teacher_cos=((cos * w).sum() / denom).detach(),
                    loss=loss.detach())
        return LossOutput(loss, logs, self._per_window(per_example, draws))


OBJECTIVE_CLASSES: dict[str, type[Objective]] = {"selfflow": SelfFlowObjective, "vanilla": VanillaObjective}


def build_objective(cfg: ObjectiveConfig | DictConfig | Mapping[str, Any],
                    model_cfg: DiTConfig | DictConfig | Mapping[str, Any]) -> Objective:
    """The objective named by `cfg.name`, for a backbone described by `model_cfg`."""
    cfg = cfg if isinstance(cfg, ObjectiveConfig) else structured(ObjectiveConfig, cfg)
    return OBJECTIVE_CLASSES[cfg.name](cfg, model_config(model_cfg))
