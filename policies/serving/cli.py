"""`selfflow-robot serve ckpt=DIR`: load the checkpoint into a `SelfFlowEngine` and serve it until Ctrl-C."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any

import torch

from selfflow_robot.config import structured
from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.serving.config import LOCAL_HOSTS, ServeConfig
from selfflow_robot.policies.serving.engine import SelfFlowEngine
from selfflow_robot.policies.serving.server import HEALTH_PATH, PolicyServer

log = logging.getLogger("selfflow_robot.serve")


def main(cfg: Any) -> int:
    """`selfflow-robot serve ckpt=DIR [host=127.0.0.1] [port=8000] [token=...]`: serve until Ctrl-C.

    `cfg` is validated against `ServeConfig`; prints the address once listening and, at exit, the
    final `/metrics` snapshot as one JSON line.
    """
    conf = structured(ServeConfig, cfg)
    if not conf.ckpt:
        raise ConfigError("serve needs a checkpoint: selfflow-robot serve ckpt=RUN_DIR_OR_STEP_DIR")
    if conf.threads > 0:
        torch.set_num_threads(conf.threads)
    token = conf.resolved_token()
    if conf.host not in LOCAL_HOSTS and token is None:
        log.warning("serving on %s without a token: anyone who can reach this port can drive the policy", conf.host)
    engine = SelfFlowEngine.from_checkpoint(conf.ckpt, conf.device, conf.steps, conf.use_ema, conf.backend,
                                            conf.use_state)
    server = PolicyServer(engine, conf.host, conf.port, token, conf.limits, conf.max_batch,
                          conf.batch_wait_ms, conf.max_connections)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, server.stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
                pass
        meta = engine.metadata()

        def ready(port: int) -> None:
            print(f"serving {meta.get('checkpoint', conf.ckpt)} on ws://{conf.host}:{port} "
                  f"(chunk {meta.get('chunk_length')}, steps {meta.get('steps')}, device {engine.device}, "
                  f"backend {conf.backend}, "
                  f"auth {'on' if token else 'off'}); health: http://{conf.host}:{port}{HEALTH_PATH}", flush=True)

        await server.serve(ready)

    asyncio.run(run())
    print(json.dumps(server.metrics.snapshot()), flush=True)
    return 0
