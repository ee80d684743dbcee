"""`PolicyServer`: a `PolicyEngine` over WebSocket (msgpack + numpy), one session per connection.

Design (docs/deployment.md has the why):

- transport: `websockets` (asyncio). One connection = one policy session (its own instruction and
  frame history); metadata (chunk length, action bounds, limits) is sent on connect.
- auth: when a token is configured, the WebSocket handshake and `/metrics` must carry
  ``Authorization: Bearer <token>`` (compared in constant time) or get HTTP 401. `/healthz` is open.
- validation: every frame goes through `protocol.parse_request`; a bad one gets an error reply
  and the connection stays usable. Engine failures get an ``internal`` error, never a crash.
- batching: concurrent ``infer`` requests go through `MicroBatcher` to `PolicyEngine.infer_batch`.
- `/healthz` (liveness + model summary) and `/metrics` (`Metrics`) over plain HTTP on the same port.
"""
from __future__ import annotations

import asyncio
import hmac
import http
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from selfflow_robot.policies.serving.batcher import MicroBatcher
from selfflow_robot.policies.serving.engine import PolicyEngine
from selfflow_robot.policies.serving.metrics import Metrics
from selfflow_robot.policies.serving.protocol import (
    InferRequest,
    ProtocolError,
    RequestLimits,
    ResetRequest,
    error_reply,
    parse_request,
)
from selfflow_robot.policies.wire import INTERNAL, MSG_CHUNK, MSG_METADATA, MSG_RESET, PROTOCOL_VERSION, packb

log = logging.getLogger("selfflow_robot.serve")

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


def _json_response(connection: Any, status: http.HTTPStatus, body: dict[str, Any]) -> Any:
    response = connection.respond(status, json.dumps(body) + "\n")
    response.headers["Content-Type"] = "application/json"
    return response


class PolicyServer:
    """Serve a `PolicyEngine` over WebSocket (the module docstring has the design).

    Args:
        engine: the policy behind the server (`SelfFlowEngine`).
        host, port: bind address; port 0 = any free port (`port` holds the bound one once listening).
        token: the shared secret clients must send (None = no auth).
        limits: request caps, also sent to clients in the metadata.
        max_batch, batch_wait_ms: the `MicroBatcher`'s largest batch and how long it waits to fill one.
        max_connections: further connections get HTTP 503.
    """

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
