"""`selfflow-robot serve ckpt=DIR`: load the checkpoint into a `SelfFlowEngine` and serve it until Ctrl-C."""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import socket
from typing import Any

import torch

from selfflow_robot.config import structured
from selfflow_robot.errors import ConfigError
from selfflow_robot.model.device import resolve_device
from selfflow_robot.policies.serving.config import LOCAL_HOSTS, ServeConfig
from selfflow_robot.policies.serving.engine import SelfFlowEngine
from selfflow_robot.policies.serving.gate import HEALTH_PATH
from selfflow_robot.policies.serving.server import PolicyServer

log = logging.getLogger("selfflow_robot.serve")


def _listen_error(host: str, port: int, e: OSError) -> ConfigError:
    """One line for a socket that cannot listen on `host`:`port`."""
    if isinstance(e, socket.gaierror):
        return ConfigError(f"host={host!r} is not an address of this machine ({e.strerror}); use an IP address "
                           "such as 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    if e.errno == errno.EADDRINUSE:
        return ConfigError(f"port {port} on {host} is already in use (another server?); pick another port= "
                           "or port=0 for any free one")
    if e.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"host={host!r} is not an address of this machine; use 127.0.0.1 or 0.0.0.0")
    if e.errno == errno.EACCES:
        return ConfigError(f"no permission to listen on port {port} (ports below 1024 need privileges); "
                           "use a port >= 1024")
    return ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}")


def check_listen(host: str, port: int) -> None:
    """Bind `host`:`port` once and let go, before the checkpoint loads; raises `ConfigError` in one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
                sock.bind(address)
    except OSError as e:
        raise _listen_error(host, port, e) from e


def main(cfg: Any) -> int:
    """`selfflow-robot serve ckpt=DIR [host=127.0.0.1] [port=8000] [token=...]`: serve until Ctrl-C.

    `cfg` is validated against `ServeConfig`; prints the address once listening and, at exit, the
    final `/metrics` snapshot as one JSON line.
    """
    conf = structured(ServeConfig, cfg)
    if not conf.ckpt:
        raise ConfigError("serve needs a checkpoint: selfflow-robot serve ckpt=RUN_DIR_OR_STEP_DIR")
    resolve_device(conf.device)  # device=tpu, or cuda without CUDA: one line before anything loads
    check_listen(conf.host, conf.port)
    if conf.threads > 0:
        torch.set_num_threads(conf.threads)
    token = conf.resolved_token()
    if conf.host not in LOCAL_HOSTS and token is None:
        log.warning("serving on %s without a token: anyone who can reach this port can drive the policy", conf.host)
    engine = SelfFlowEngine.from_checkpoint(conf.ckpt, conf.device, conf.steps, conf.use_ema, conf.backend,
                                            conf.use_state)
    server = PolicyServer(engine, conf.host, conf.port, token, conf.limits, conf.max_batch,
                          conf.batch_wait_ms, conf.max_connections,
                          max_connections_per_address=conf.max_connections_per_address,
                          idle_timeout_s=conf.idle_timeout_s)

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

    try:
        asyncio.run(run())
    except OSError as e:  # the port was taken between the check and now
        raise _listen_error(conf.host, conf.port, e) from e
    print(json.dumps(server.metrics.snapshot()), flush=True)
    return 0
