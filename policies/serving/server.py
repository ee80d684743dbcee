"""`selfflow-robot serve ckpt=DIR`: a WebSocket policy server (msgpack + numpy), one session per connection.

Design (docs/deployment.md has the why):

- transport: `websockets` (asyncio). One connection = one policy session (its own instruction and
  frame history); metadata (chunk length, action bounds, limits) is sent on connect.
- auth: when a token is configured, the WebSocket handshake and `/metrics` must carry
  ``Authorization: Bearer <token>`` (compared in constant time) or get HTTP 401. `/healthz` is open.
- validation: every frame goes through `protocol.parse_request`; a bad one gets an error reply
  and the connection stays usable. Engine failures get an ``internal`` error, never a crash.
- batching: `MicroBatcher` collects concurrent ``infer`` requests for up to ``batch_wait_ms`` (or
  ``max_batch``) and runs them through `PolicyEngine.infer_batch` as one batch on a worker thread,
  so the event loop keeps serving health checks and errors while the model runs.
- `/healthz` (liveness + model summary) and `/metrics` (request counts, latency percentiles, errors,
  batch sizes) over plain HTTP on the same port.
"""
from __future__ import annotations

import asyncio
import hmac
import http
import json
import logging
import os
import queue
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.protocol import (
    INTERNAL,
    MSG_CHUNK,
    MSG_METADATA,
    MSG_RESET,
    PROTOCOL_VERSION,
    InferRequest,
    ProtocolError,
    RequestLimits,
    ResetRequest,
    error_reply,
    packb,
    parse_request,
)

log = logging.getLogger("selfflow_robot.serve")

TOKEN_ENV = "SELFFLOW_ROBOT_SERVE_TOKEN"  # read when `token` is not set in the config
BACKENDS = ("eager", "torchscript", "onnx", "torch_export", "compile")
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

@dataclass
class LimitsConfig:
    """Request caps (see `protocol.RequestLimits`)."""

    max_image_bytes: int = 4 * 2**20
    min_image_side: int = 8
    max_image_side: int = 2048
    max_frames: int = 8
    max_instruction_chars: int = 512
    max_message_bytes: int = 8 * 2**20


@dataclass
class ServeConfig:
    """`selfflow-robot serve` config (configs/serve.yaml selects and overrides).

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
        batch_wait_ms: how long the batcher waits to fill a batch after the first request.
        threads: torch CPU threads (0 = leave torch's default).
        backend: how the denoiser runs: eager, torch.compile (`compile`), or an exported graph
            (`torchscript`, `onnx`, `torch_export`; CPU, exported and parity-checked at start).
        limits: request caps.
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
    batch_wait_ms: float = 3.0
    threads: int = 0
    backend: str = "eager"
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {self.max_connections}")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1 or null, got {self.steps}")
        from selfflow_robot.config import check_choice

        check_choice("backend", self.backend, BACKENDS)

    def request_limits(self) -> RequestLimits:
        try:
            return RequestLimits(**vars(self.limits))
        except ValueError as e:
            raise ConfigError(f"serve limits: {e}") from e

    def resolved_token(self) -> str | None:
        token = os.environ.get(TOKEN_ENV) if self.token is None else self.token
        return token or None


# ---------------------------------------------------------------------------------------------
# What the server serves
# ---------------------------------------------------------------------------------------------

class PolicyEngine(Protocol):
    """The server's view of a policy: shared weights, per-connection sessions, batched inference.

    `infer_batch` gets ``(session, request)`` pairs from different connections and returns one
    reply dict per pair (numpy arrays and scalars; at least ``actions`` ``(chunk, 7)``), or an
    exception in the slot of a request that failed on its own (e.g. `ProtocolError`).
    """

    def metadata(self) -> dict[str, Any]: ...

    def new_session(self) -> Any: ...

    def reset(self, session: Any, instruction: str) -> None: ...

    def infer_batch(self, batch: Sequence[tuple[Any, InferRequest]]) -> list[dict[str, Any]]: ...


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

class Metrics:
    """Thread-safe counters and a latency window for `/metrics`."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.batch_sizes: Counter[int] = Counter()
        self.connections_total = 0
        self.connections_open = 0
        self.auth_failures = 0
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._infer_ms: deque[float] = deque(maxlen=window)

    def count(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def connection(self, delta: int) -> None:
        with self._lock:
            self.connections_open += delta
            self.connections_total += max(delta, 0)

    def auth_failure(self) -> None:
        with self._lock:
            self.auth_failures += 1

    def infer_done(self, server_ms: float, infer_ms: float) -> None:
        with self._lock:
            self._latency_ms.append(server_ms)
            self._infer_ms.append(infer_ms)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batch_sizes[size] += 1

    @staticmethod
    def _percentiles(values: Sequence[float]) -> dict[str, float]:
        if not values:
            return {}
        a = np.asarray(values, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return {"p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3),
                "max": round(float(a.max()), 3), "mean": round(float(a.mean()), 3), "n": int(a.size)}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lat, inf = list(self._latency_ms), list(self._infer_ms)
            batches = dict(sorted(self.batch_sizes.items()))
            n_batches = sum(batches.values())
            return {
                "uptime_s": round(time.time() - self.started, 1),
                "requests": dict(self.requests),
                "requests_total": int(sum(self.requests.values())),
                "errors": dict(self.errors),
                "errors_total": int(sum(self.errors.values())),
                "auth_failures": self.auth_failures,
                "connections_open": self.connections_open,
                "connections_total": self.connections_total,
                "latency_ms": self._percentiles(lat),
                "infer_ms": self._percentiles(inf),
                "batch_sizes": {str(k): v for k, v in batches.items()},
                "mean_batch_size": round(sum(k * v for k, v in batches.items()) / n_batches, 3) if n_batches else 0.0,
            }


# ---------------------------------------------------------------------------------------------
# Micro-batching
# ---------------------------------------------------------------------------------------------

@dataclass
class _Pending:
    item: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    submitted: float


def _resolve(fut: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if fut.done():  # the connection went away meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


class MicroBatcher:
    """Collect requests for up to `max_wait_s` (or `max_batch` items) and run them as one batch.

    `fn(items) -> results` runs on one worker thread (the model is used from one thread only);
    `submit` is awaited from the event loop and resolves to ``(result, timing)``.
    """

    def __init__(self, fn: Callable[[list[Any]], list[Any]], max_batch: int, max_wait_s: float,
                 on_batch: Callable[[int], None] | None = None,
                 should_wait: Callable[[], bool] | None = None) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        # Waiting only pays when other requests may arrive (e.g. more than one client is connected).
        self.should_wait = should_wait or (lambda: True)
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="policy-batcher", daemon=True)
        self._thread.start()

    async def submit(self, item: Any) -> tuple[Any, dict[str, float]]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put(_Pending(item, fut, loop, time.perf_counter()))
        return await fut

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _collect(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, stop = [first], False
        wait = self.max_wait_s if self.max_batch > 1 and self.should_wait() else 0.0
        deadline = time.perf_counter() + wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                stop = True
                break
            batch.append(nxt)
        return batch, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            start = time.perf_counter()
            try:
                results = self.fn([p.item for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"infer_batch returned {len(results)} results for {len(batch)} requests")
                exc: BaseException | None = None
            except Exception as e:  # noqa: BLE001 - forwarded to every waiting request
                results, exc = [None] * len(batch), e
            end = time.perf_counter()
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for p, res in zip(batch, results):
                timing = {"queue_ms": (start - p.submitted) * 1e3, "infer_ms": (end - start) * 1e3,
                          "batch_size": len(batch)}
                # An engine may fail one item of a batch by returning the exception in its slot.
                item_exc = res if isinstance(res, BaseException) else exc
                try:
                    p.loop.call_soon_threadsafe(_resolve, p.future, (res, timing), item_exc)
                except RuntimeError:  # that event loop has shut down; nobody is waiting any more
                    pass
            if stop:
                return


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------

def _json_response(connection: Any, status: http.HTTPStatus, body: dict[str, Any]) -> Any:
    response = connection.respond(status, json.dumps(body) + "\n")
    response.headers["Content-Type"] = "application/json"
    return response


class PolicyServer:
    """Serve a `PolicyEngine` over WebSocket; see the module docstring for the protocol."""

    def __init__(self, engine: PolicyEngine, host: str = "127.0.0.1", port: int = 8000,
                 token: str | None = None, limits: RequestLimits | None = None,
                 max_batch: int = 8, batch_wait_ms: float = 3.0, max_connections: int = 64) -> None:
        self.engine = engine
        self.max_connections = max_connections
        self.host = host
        self.port = port
        self._token = token.encode() if token else None
        self.limits = limits or RequestLimits()
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_ms / 1e3
        self.metrics = Metrics()
        self._metadata = {"type": MSG_METADATA, "protocol_version": PROTOCOL_VERSION,
                          **engine.metadata(), "limits": self.limits.to_dict(), "max_batch": max_batch}
        self._batcher: MicroBatcher | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    # -- auth and HTTP endpoints --------------------------------------------------------------

    def _authorized(self, headers: Any) -> bool:
        if self._token is None:
            return True
        value = headers.get("Authorization", "")
        scheme, _, given = value.partition(" ")
        # compare_digest on bytes: constant time in the token's content (length may leak, as usual).
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)

    def _process_request(self, connection: Any, request: Any) -> Any:
        path = request.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            return _json_response(connection, http.HTTPStatus.OK, {
                "status": "ok", "protocol_version": PROTOCOL_VERSION, "auth": self._token is not None,
                "policy": {k: v for k, v in self._metadata.items()
                           if k != "type" and isinstance(v, (str, int, float, bool))}})
        if not self._authorized(request.headers):
            self.metrics.auth_failure()
            self.metrics.error("unauthorized")
            return _json_response(connection, http.HTTPStatus.UNAUTHORIZED,
                                  {"error": "unauthorized", "message": "send 'Authorization: Bearer <token>'"})
        if path == METRICS_PATH:
            return _json_response(connection, http.HTTPStatus.OK, self.metrics.snapshot())
        if path == "/" and self.metrics.connections_open >= self.max_connections:
            self.metrics.error("over_capacity")
            return _json_response(connection, http.HTTPStatus.SERVICE_UNAVAILABLE,
                                  {"error": "over_capacity", "message": f"{self.max_connections} sessions are open; "
                                   "retry later or raise max_connections"})
        if path != "/":
            return _json_response(connection, http.HTTPStatus.NOT_FOUND,
                                  {"error": "not_found", "message": f"no endpoint {path}; "
                                   f"use ws:// at /, or {HEALTH_PATH}, {METRICS_PATH}"})
        return None  # proceed with the WebSocket handshake

    # -- one connection = one session ---------------------------------------------------------

    def _run_batch(self, items: list[tuple[Any, InferRequest]]) -> list[dict[str, Any]]:
        return self.engine.infer_batch(items)

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.metrics.connection(+1)
        try:
            session = self.engine.new_session()
            await ws.send(packb(self._metadata))
            async for data in ws:
                reply = await self._reply(session, data)
                await ws.send(reply)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - one broken connection must not take the server down
            log.exception("connection handler failed")
            self.metrics.error(INTERNAL)
        finally:
            self.metrics.connection(-1)

    async def _reply(self, session: Any, data: Any) -> bytes:
        t0 = time.perf_counter()
        try:
            req = parse_request(data, self.limits)
        except ProtocolError as e:
            self.metrics.count("invalid")
            self.metrics.error(e.code)
            return error_reply(str(e), e.code)
        try:
            if isinstance(req, ResetRequest):
                self.metrics.count(MSG_RESET)
                await asyncio.to_thread(self.engine.reset, session, req.instruction)
                out: dict[str, Any] = {"type": MSG_RESET}
                if req.id is not None:
                    out["id"] = req.id
                return packb(out)
            self.metrics.count("infer")
            assert self._batcher is not None
            result, timing = await self._batcher.submit((session, req))
        except ProtocolError as e:  # semantic errors raised by the engine (e.g. infer before reset)
            self.metrics.error(e.code)
            return error_reply(str(e), e.code, req.id)
        except Exception as e:  # noqa: BLE001 - reported to the client, server keeps going
            log.exception("policy failed on a request")
            self.metrics.error(INTERNAL)
            return error_reply(f"{type(e).__name__}: {e}", INTERNAL, req.id, traceback.format_exc(limit=8))
        server_ms = (time.perf_counter() - t0) * 1e3
        self.metrics.infer_done(server_ms, timing["infer_ms"])
        result = dict(result)
        engine_timing = result.pop("timing", {})
        reply = {"type": MSG_CHUNK, **result,
                 "timing": {**engine_timing, "queue_ms": round(timing["queue_ms"], 3),
                            "infer_ms": round(timing["infer_ms"], 3), "batch_size": int(timing["batch_size"]),
                            "server_ms": round(server_ms, 3)}}
        if req.id is not None:
            reply["id"] = req.id
        return packb(reply)

    # -- lifecycle ----------------------------------------------------------------------------

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        """Run until `stop()` (or cancellation); calls `ready(port)` once listening."""
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._batcher = MicroBatcher(self._run_batch, self.max_batch, self.batch_wait_s, self.metrics.batch,
                                     should_wait=lambda: self.metrics.connections_open > 1)
        try:
            async with serve(self._handle, self.host, self.port, process_request=self._process_request,
                             max_size=self.limits.max_message_bytes, compression=None,
                             ping_interval=20, ping_timeout=60) as server:
                self._server = server
                self.port = server.sockets[0].getsockname()[1]
                if ready is not None:
                    ready(self.port)
                await self._stop.wait()
        finally:
            self._batcher.close()

    def stop(self) -> None:
        """Stop a server started by `serve` or `start` (thread-safe)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def start(self, timeout: float = 60.0) -> PolicyServer:
        """Serve from a background thread (tests, notebooks); returns once listening."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve(lambda _port: self._ready.set()))
            except BaseException as e:  # noqa: BLE001 - surfaced to the caller of start()
                errors.append(e)
                self._ready.set()

        self._thread = threading.Thread(target=run, name="policy-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or errors:
            raise RuntimeError(f"policy server failed to start: {errors[0] if errors else 'timeout'}")
        return self

    @property
    def uri(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def __enter__(self) -> PolicyServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# The real policy behind the server
# ---------------------------------------------------------------------------------------------

class SelfFlowEngine:
    """Serve a `SelfFlowPolicy`: one `PolicySession` per connection, all sharing the policy's weights.

    Each session keeps its own instruction, frame history and noise generator (seeded at
    `reset`). A batch of requests from different sessions is one `SelfFlowPolicy.infer_batch`
    call: each row's initial noise comes from its own session's generator, so with the `ode`
    sampler a session gets the same chunk whether or not it was batched.

    Errors that concern one request (unknown instruction, infer before reset) fail only that
    request; if the batched call itself fails, the requests are retried one by one so a single
    bad request cannot take its batch-mates down with it.
    """

    def __init__(self, policy: Any, backend: str = "eager") -> None:
        self.policy = policy
        self.backend = backend
        self._keep: Any = None  # owns the exported graph's temp dir while the engine lives
        if backend != "eager":
            self._use_backend(backend)
        meta = dict(policy.metadata)
        meta["backend"] = backend
        meta.pop("execute_horizon", None)  # the client's loop decides how much of a chunk to execute
        for key in ("action_q01", "action_q99"):
            if key in meta and len(meta[key]) != meta.get("action_dim", len(meta[key])):
                raise ConfigError(f"checkpoint statistics give {key} of length {len(meta[key])}, "
                                  f"expected the action dimension {meta.get('action_dim')}")
        self._meta = meta

    @classmethod
    def from_checkpoint(cls, ckpt: str, device: str = "auto", steps: int | None = None,
                        use_ema: bool = True, backend: str = "eager", use_state: bool = True) -> SelfFlowEngine:
        """Load `ckpt` (step dir or run dir) through `SelfFlowPolicy.from_pretrained`."""
        from selfflow_robot.policies.policy import SelfFlowPolicy

        options: dict[str, Any] = {"device": device, "use_ema": use_ema, "use_state": use_state}
        if steps is not None:
            options["steps"] = steps
        return cls(SelfFlowPolicy.from_pretrained(ckpt, **options), backend=backend)

    def _use_backend(self, backend: str) -> None:
        """Run the policy's denoiser through an exported graph or `torch.compile` instead of eager.

        The sampler loop stays in Python (`export.ExportedSampler`, the same Euler steps as the
        policy's `ode` sampler); only this policy object's `predict_tokens` is replaced. A
        state-conditioned checkpoint's graph also takes the normalised state the policy passes.
        """
        import tempfile

        import torch

        from selfflow_robot.config import check_choice
        from selfflow_robot.policies.export import (
            SUFFIX,
            ActionDenoiser,
            ExportedSampler,
            export_denoiser,
            load_exported,
        )

        check_choice("backend", backend, BACKENDS)
        policy, cfg = self.policy, self.policy.config
        if cfg.sampler != "ode":
            raise ConfigError(f"backend={backend} runs the ode sampler only; the policy uses sampler={cfg.sampler!r}")
        if cfg.state_scale != 1.0:
            raise ConfigError(f"backend={backend} has no state guidance; the policy uses state_scale={cfg.state_scale} "
                              "(use backend=eager)")
        if backend == "compile":
            denoise = torch.compile(ActionDenoiser(policy.model))
        else:
            if policy.device.type != "cpu":
                raise ConfigError(f"backend={backend} is a float32 CPU graph; on {policy.device} use "
                                  "backend=eager or backend=compile")
            self._keep = tempfile.TemporaryDirectory(prefix="selfflow-serve-")
            export_denoiser(policy.model, backend, self._keep.name, steps=cfg.steps, tolerance=1e-3)
            denoise = load_exported(f"{self._keep.name}/denoiser.{SUFFIX[backend]}", backend, policy.device)
        sampler = ExportedSampler(denoise, steps=cfg.steps, cfg_scale=cfg.cfg_scale)

        @torch.inference_mode()
        def predict_tokens(context: np.ndarray, text: np.ndarray, noise: torch.Tensor,
                           generator: torch.Generator | None = None, state: np.ndarray | None = None
                           ) -> torch.Tensor:
            frames = torch.from_numpy(np.ascontiguousarray(context)).to(policy.device)
            ctx = policy.codec.encode(frames).float()                                 # (B, k*h*w, d)
            txt = torch.as_tensor(text, dtype=torch.float32, device=policy.device)    # (B, 512)
            if state is not None:
                st = torch.as_tensor(state, dtype=torch.float32, device=policy.device)
            elif policy.trained_state_dim:  # use_state=false: the graph's state input gets the learned null state
                st = policy.model.state_embedder.null_state.detach().float().expand(len(text), -1)
            else:
                st = None
            return sampler(ctx, noise.to(policy.device).float(), txt, st).float()    # (B, H, 8); st: (B, 8) normalised

        policy.predict_tokens = predict_tokens

    @property
    def device(self) -> Any:
        return self.policy.device

    def metadata(self) -> dict[str, Any]:
        return dict(self._meta)

    def new_session(self) -> Any:
        return self.policy.new_session()

    def reset(self, session: Any, instruction: str) -> None:
        from selfflow_robot.errors import UserError

        try:
            self.policy.reset_session(session, instruction)
        except UserError as e:  # e.g. an instruction the checkpoint has never seen
            raise ProtocolError(str(e)) from e

    def _admit(self, session: Any, req: InferRequest) -> dict[str, Any]:
        """Per-request checks before batching; returns the observation for `infer_batch`."""
        if req.instruction is not None and req.instruction != session.instruction:
            self.reset(session, req.instruction)
        if session.text is None:
            raise ProtocolError("no instruction yet: send a 'reset' request or include 'instruction'")
        dim = self.policy.state_dim
        if req.state is not None and req.state.size != dim:
            raise ProtocolError(f"'state' has {req.state.size} values; this checkpoint takes " + (
                f"{dim} (base_pose_tool_reached + gripper_closed)" if dim else "none (leave 'state' out)"))
        if dim and req.state is None and session.state is None:
            raise ProtocolError(f"this checkpoint conditions on the robot state: include 'state' ({dim} floats: "
                                "base_pose_tool_reached x y z qx qy qz qw + gripper_closed) with the image")
        return {"image": req.image} if req.state is None else {"image": req.image, "state": req.state}

    def _run(self, rows: list[tuple[int, Any, dict[str, Any]]], results: list[Any]) -> None:
        replies = self.policy.infer_batch([(session, obs) for _, session, obs in rows])
        for (i, _, _), reply in zip(rows, replies):
            results[i] = reply

    def infer_batch(self, batch: Sequence[tuple[Any, InferRequest]]) -> list[Any]:
        results: list[Any] = [None] * len(batch)
        rows = []
        for i, (session, req) in enumerate(batch):
            try:
                rows.append((i, session, self._admit(session, req)))
            except ProtocolError as e:
                results[i] = e
        if len(rows) == 1:
            self._run(rows, results)
        elif rows:
            try:
                self._run(rows, results)
            except Exception:  # noqa: BLE001 - isolate the failing request(s); see the class docstring
                for row in rows:
                    try:
                        self._run([row], results)
                    except Exception as e:  # noqa: BLE001 - reported to that client only
                        results[row[0]] = e
        return results


# ---------------------------------------------------------------------------------------------
# CLI: selfflow-robot serve ckpt=DIR
# ---------------------------------------------------------------------------------------------

def main(cfg: Any) -> int:
    """`selfflow-robot serve ckpt=DIR [host=127.0.0.1] [port=8000] [token=...]`: serve until Ctrl-C."""
    import signal

    from selfflow_robot.config import structured

    conf = structured(ServeConfig, cfg)
    if not conf.ckpt:
        raise ConfigError("serve needs a checkpoint: selfflow-robot serve ckpt=RUN_DIR_OR_STEP_DIR")
    if conf.threads > 0:
        import torch

        torch.set_num_threads(conf.threads)
    token = conf.resolved_token()
    if conf.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("serving on %s without a token: anyone who can reach this port can drive the policy", conf.host)
    engine = SelfFlowEngine.from_checkpoint(conf.ckpt, conf.device, conf.steps, conf.use_ema, conf.backend,
                                            conf.use_state)
    server = PolicyServer(engine, conf.host, conf.port, token, conf.request_limits(), conf.max_batch,
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
