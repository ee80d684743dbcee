"""`ServeConfig`: the schema and defaults of `selfflow-robot serve` (configs/serve.yaml selects and overrides)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from selfflow_robot.config import check_choice
from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.serving.protocol import RequestLimits

TOKEN_ENV = "SELFFLOW_ROBOT_SERVE_TOKEN"  # read when `token` is not set in the config
BACKENDS = ("eager", "torchscript", "onnx", "torch_export", "compile")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    """`selfflow-robot serve` config.

    Args:
        ckpt: checkpoint step dir or run dir (newest complete step).
        host: bind address; 127.0.0.1 by default (set 0.0.0.0 only behind a firewall, with a token).
        port: TCP port (0 = any free port, printed at start).
        token: shared secret clients must send; null reads $SELFFLOW_ROBOT_SERVE_TOKEN; empty = no auth.
        device: torch device for the policy ("auto" = cuda if available, else cpu).
        steps: denoising steps per chunk (null = the policy's default).
        use_ema: serve the EMA weights (the usual choice).
        use_state: false = a state-conditioned checkpoint acts from the image alone (the learned null
            state; for checkpoints trained with train.state_dropout > 0) and its metadata asks for no state.
        max_batch: most requests run as one batch (1 = no batching).
        max_connections: further connections get HTTP 503 (each one holds a session).
        max_connections_per_address: further connections from one client IP address get HTTP 429, so
            one host cannot hold every session. 16 lets an evaluation host run 16 parallel sessions
            while 4 hosts are needed to fill the default 64; behind a reverse proxy or NAT all clients
            share one address: raise it (up to max_connections) there.
        idle_timeout_s: a session that sends no request for this long is closed (close code 1000,
            reason given); keepalive pings do not count. 300 s outlasts a scene reset between
            episodes, and a robot that is really idle reconnects in milliseconds. 0 = never (then
            idle connections can hold every slot).
        batch_wait_ms: how long the batcher waits to fill a batch after the first request.
        threads: torch CPU threads (0 = leave torch's default).
        backend: how the denoiser runs: eager, torch.compile (`compile`), or an exported graph
            (`torchscript`, `onnx`, `torch_export`; CPU, exported and parity-checked at start).
        limits: request caps (`RequestLimits`, also sent to clients in the metadata).
    """

    ckpt: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    device: str = "auto"
    steps: int | None = None
    use_ema: bool = True
    use_state: bool = True
    max_batch: int = 8
    max_connections: int = 64
    max_connections_per_address: int = 16
    idle_timeout_s: float = 300.0
    batch_wait_ms: float = 3.0
    threads: int = 0
    backend: str = "eager"
    limits: RequestLimits = field(default_factory=RequestLimits)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {self.max_connections}")
        if self.max_connections_per_address < 1:
            raise ConfigError(f"max_connections_per_address must be >= 1, got {self.max_connections_per_address}")
        if not 0 <= self.idle_timeout_s < float("inf"):
            raise ConfigError(f"idle_timeout_s must be >= 0 (0 = never), got {self.idle_timeout_s}")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1 or null, got {self.steps}")
        check_choice("backend", self.backend, BACKENDS)

    def resolved_token(self) -> str | None:
        """The auth token: `token`, or $SELFFLOW_ROBOT_SERVE_TOKEN when it is null; None = no auth."""
        token = os.environ.get(TOKEN_ENV) if self.token is None else self.token
        return token or None
