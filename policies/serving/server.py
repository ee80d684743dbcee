"""`PolicyServer`: a `PolicyEngine` over WebSocket (msgpack + numpy), one session per connection.

Design (docs/deployment.md has the why):

- transport: `websockets` (asyncio). One connection = one policy session (its own instruction and
  frame history); metadata (chunk length, action bounds, limits) is sent on connect.
- admission (`gate.HandshakeGate`): the token (one ``Authorization: Bearer`` header, compared in
  constant time), a per-address back-off on failed logins, at most `max_connections` sessions and
  `max_connections_per_address` from one address; `/healthz` tells unauthenticated callers liveness only.
- validation: `protocol.parse_request` decodes and checks each frame on a small thread pool, never on
  the event loop, once its msgpack headers fit `limits.max_entries` (a 700,000-key map is refused from
  its first bytes); a bad frame gets an error reply, the connection stays usable, and the bytes of
  refused frames are throttled per address (`RefusalThrottle`). Each connection has one message in
  flight (the next frame is read after the reply), so connections take turns in the pool and the batcher.
- sessions end when the client leaves (its queued work is cancelled, never computed) or after
  `idle_timeout_s` without a request.
- batching: concurrent ``infer`` requests go through `MicroBatcher` to `PolicyEngine.infer_batch`.
- logging: asyncio's, websockets' and the server's own errors are one line per kind, rate-limited (`EventLog`).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selfflow_robot.policies.serving.admission import ConnectionLimiter, LoginThrottle, RefusalThrottle
from selfflow_robot.policies.serving.batcher import MicroBatcher
from selfflow_robot.policies.serving.engine import PolicyEngine
from selfflow_robot.policies.serving.events import EventLog
from selfflow_robot.policies.serving.gate import HandshakeGate, client_address
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
DECODE_THREADS = 2  # decoding is short once the budget is checked; a second thread keeps one slow frame from stalling
MAX_QUEUED_FRAMES = 4  # frames websockets buffers per connection before TCP pushes back on the sender


class PolicyServer:
    """Serve a `PolicyEngine` over WebSocket (the module docstring has the design).

    Args:
        engine: the policy behind the server (`SelfFlowEngine`).
        host, port: bind address; port 0 = any free port (`port` holds the bound one once listening).
        token: the shared secret clients must send (None = no auth).
        limits: request caps, also sent to clients in the metadata.
        max_batch, batch_wait_ms: the `MicroBatcher`'s largest batch and how long it waits to fill one.
        max_connections: further connections get HTTP 503.
        max_connections_per_address: further connections from one client address get HTTP 429.
        idle_timeout_s: a session without a request for this long is closed (0 = never).
    """

    def __init__(self, engine: PolicyEngine, host: str = "127.0.0.1", port: int = 8000,
                 token: str | None = None, limits: RequestLimits | None = None,
                 max_batch: int = 8, batch_wait_ms: float = 3.0, max_connections: int = 64, *,
                 max_connections_per_address: int = 16, idle_timeout_s: float = 300.0) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self._token = token.encode() if token else None
        self.limits = limits or RequestLimits()
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_ms / 1e3
        self.idle_timeout_s = idle_timeout_s
        self.metrics = Metrics()
        self.events = EventLog(log)
        self._metadata = {"type": MSG_METADATA, "protocol_version": PROTOCOL_VERSION,
                          **engine.metadata(), "limits": self.limits.to_dict(), "max_batch": max_batch}
        self.limiter = ConnectionLimiter(max_connections, max_connections_per_address)
        self.logins = LoginThrottle()
        self.refusals = RefusalThrottle()
        self.gate = HandshakeGate(self._token, self.metrics, self.limiter, self.logins, {
            k: v for k, v in self._metadata.items() if k != "type" and isinstance(v, (str, int, float, bool))})
        self._batcher: MicroBatcher | None = None
        self._decode: ThreadPoolExecutor | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    # -- one connection = one session ---------------------------------------------------------

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        address = client_address(ws)
        why = self.limiter.acquire(address)
        if why is not None:  # handshakes that passed the gate together, before any of them took a slot
            self.metrics.error(why)
            await ws.close(1013, f"{why}: retry later")
            return
        self.metrics.connection(+1)
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            session = self.engine.new_session()
            await ws.send(packb(self._metadata))
            while True:
                try:
                    data = await asyncio.wait_for(ws.recv(), self.idle_timeout_s or None)
                except asyncio.TimeoutError:
                    self.metrics.error("idle_timeout")
                    await ws.close(1000, f"no request for {self.idle_timeout_s:g} s (idle_timeout_s); reconnect")
                    return
                reply = asyncio.ensure_future(self._reply(session, data))
                await asyncio.wait((reply, closed), return_when=asyncio.FIRST_COMPLETED)
                if not reply.done():  # the client left: its queued work is dropped, not computed
                    reply.cancel()
                    self.metrics.cancelled()
                    return
                out, refused = reply.result()
                await ws.send(out)
                if refused:  # frames refused at once could otherwise arrive as fast as the network carries them
                    await asyncio.wait((closed,), timeout=self.refusals.charge(address, len(data)))
        except ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - one broken connection must not take the server down
            self.events.event("connection handler failed", f"{type(e).__name__}: {e}", logging.ERROR)
            self.metrics.error(INTERNAL)
        finally:
            closed.cancel()
            self.metrics.connection(-1)
            self.limiter.release(address)

    async def _reply(self, session: Any, data: Any) -> tuple[bytes, bool]:
        """The reply to one frame, and whether the frame was refused before reaching the policy."""
        t0 = time.perf_counter()
        try:  # decoded and validated off the event loop
            req = await asyncio.get_running_loop().run_in_executor(self._decode, parse_request, data, self.limits)
        except ProtocolError as e:
            self.metrics.count("invalid")
            self.metrics.error(e.code)
            return error_reply(str(e), e.code), True
        except Exception as e:  # noqa: BLE001 - a validation bug: the client hears of it, the connection stays
            self.events.event("request validation failed", f"{type(e).__name__}: {e}", logging.ERROR)
            self.metrics.error(INTERNAL)
            return error_reply(f"{type(e).__name__}: {e}", INTERNAL), True
        return await self._answer(session, req, t0), False

    async def _answer(self, session: Any, req: ResetRequest | InferRequest, t0: float) -> bytes:
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
            self.events.event("policy failed on a request", f"{type(e).__name__}: {e}", logging.ERROR)
            log.debug("policy failure", exc_info=True)
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
        """Run until `stop()` (or cancellation); calls `ready(port)` once listening.

        Makes `events` the loop's exception handler, for the rest of the loop's life: callbacks of the closed
        server may still fire (asyncio retries accept() a second after running out of file descriptors)."""
        from websockets.asyncio.server import serve

        self._loop = loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        loop.set_exception_handler(self.events.exception_handler)  # e.g. accept() failing when out of fds
        ws_log, one_line = logging.getLogger("selfflow_robot.serve.websockets"), self.events.filter()
        ws_log.addFilter(one_line)
        self._decode = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="policy-decode")
        self._batcher = MicroBatcher(self.engine.infer_batch, self.max_batch, self.batch_wait_s, self.metrics.batch,
                                     should_wait=lambda: self.metrics.connections_open > 1)
        try:
            async with serve(self._handle, self.host, self.port, process_request=self.gate,
                             max_size=self.limits.max_message_bytes, max_queue=MAX_QUEUED_FRAMES,
                             compression=None, ping_interval=20, ping_timeout=60, logger=ws_log) as server:
                self._server = server
                self.port = server.sockets[0].getsockname()[1]
                if ready is not None:
                    ready(self.port)
                await self._stop.wait()
        finally:
            self._batcher.close()
            self._decode.shutdown(wait=False, cancel_futures=True)
            ws_log.removeFilter(one_line)

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
