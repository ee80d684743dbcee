"""Serve backends: the policy's denoiser as an exported graph or under `torch.compile`.

`GraphTokenPredictor` is a `TokenPredictor` (the signature of `SelfFlowPolicy.predict_tokens`) that the
engine hands to `SelfFlowPolicy.infer_batch`; the policy object itself is left as it is.
"""
from __future__ import annotations

import tempfile

import numpy as np
import torch

from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.cached_graphs import is_prefix
from selfflow_robot.policies.export import (
    SUFFIX,
    ExportedSampler,
    compiled_denoiser,
    export_denoiser,
    load_cached,
    load_exported,
)
from selfflow_robot.policies.policy import SelfFlowPolicy


class GraphTokenPredictor:
    """Sample action tokens with the policy's denoiser run as an exported graph or compiled (`backend`).

    The sampler loop stays in Python (`export.ExportedSampler`, the same Euler steps as the policy's `ode`
    sampler); only the denoiser changes. `compile` wraps the live model in `torch.compile`; `torchscript`,
    `onnx` and `torch_export` export it to a temporary folder (owned by this object), check parity with eager
    and load the graph (float32, CPU). A state-conditioned checkpoint's graph also takes the normalised state
    the policy passes, or the learned null state when the policy runs with `use_state=False`. A prefix-attention
    checkpoint runs as two graphs, the context's keys/values once per chunk (`policies/cached_graphs.py`).
    """

    def __init__(self, policy: SelfFlowPolicy, backend: str) -> None:
        cfg = policy.config
        if cfg.sampler != "ode":
            raise ConfigError(f"backend={backend} runs the ode sampler only; the policy uses sampler={cfg.sampler!r}")
        if cfg.state_scale != 1.0:
            raise ConfigError(f"backend={backend} has no state guidance; the policy uses state_scale={cfg.state_scale} "
                              "(use backend=eager)")
        self.policy = policy
        self.backend = backend
        self._export_dir: tempfile.TemporaryDirectory | None = None  # lives as long as the loaded graph
        cached = is_prefix(policy.model.cfg)
        if backend == "compile":
            denoise = compiled_denoiser(policy.model)
        else:
            if policy.device.type != "cpu":
                raise ConfigError(f"backend={backend} is a float32 CPU graph; on {policy.device} use "
                                  "backend=eager or backend=compile")
            self._export_dir = tempfile.TemporaryDirectory(prefix="selfflow-serve-")
            export_denoiser(policy.model, backend, self._export_dir.name, steps=cfg.steps, tolerance=1e-3,
                            cached_only=cached)
            denoise = load_cached(self._export_dir.name, backend, policy.device) if cached else \
                load_exported(f"{self._export_dir.name}/denoiser.{SUFFIX[backend]}", backend, policy.device)
        self.sampler = ExportedSampler(denoise, steps=cfg.steps, cfg_scale=cfg.cfg_scale)

    @torch.inference_mode()
    def __call__(self, context: np.ndarray, text: np.ndarray, noise: torch.Tensor,
                 generator: torch.Generator | None = None, state: np.ndarray | None = None) -> torch.Tensor:
        """Action tokens `(B, H, 8)` from context frames uint8 `(B, k, h, w, 3)`, text `(B, 512)`, noise
        `(B, H, 8)` and the normalised state `(B, 8)` (state-conditioned checkpoints); `generator` is unused
        (the ode sampler draws no noise after the initial one)."""
        policy = self.policy
        frames = torch.from_numpy(np.ascontiguousarray(context)).to(policy.device)
        ctx = policy.codec.encode(frames).float()                                 # (B, k*h*w, d)
        txt = torch.as_tensor(text, dtype=torch.float32, device=policy.device)    # (B, 512)
        if state is not None:
            st = torch.as_tensor(state, dtype=torch.float32, device=policy.device)
        elif policy.trained_state_dim:  # use_state=false: the graph's state input gets the learned null state
            st = policy.model.state_embedder.null_state.detach().float().expand(len(text), -1)
        else:
            st = None
        return self.sampler(ctx, noise.to(policy.device).float(), txt, st).float()  # (B, H, 8)
