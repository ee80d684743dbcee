"""Robot-side client for `selfflow-robot serve`: connect, reset, stream observations, receive chunks.

This module is deliberately standalone: it needs only ``numpy``, ``msgpack`` and ``websockets``
(no torch, nothing else from selfflow_robot), and runs on Python 3.10-3.11 with numpy 1.x or 2.x
and websockets >= 11. SimplerEnv pins numpy<2 and Python <= 3.11, so its environment can import
it as ``selfflow_robot.policies.client`` or simply carry a copy of this file and `wire.py`.

The wire format (`packb` / `unpackb`: msgpack with numpy arrays as an ext type, never pickle; the
message types) lives in `wire.py`, which the server imports too, so both ends cannot drift. To vendor
the client, copy `wire.py`, `client.py` (and `control_loop.py`) into one folder.

Example::

    from selfflow_robot.policies.client import PolicyClient

    with PolicyClient("ws://127.0.0.1:8000", token=None) as policy:
        print(policy.metadata["chunk_length"])
        policy.reset("open top drawer")
        reply = policy.infer(image)          # image: uint8 (H, W, 3)
        reply["actions"]                     # float32 (chunk_length, 7), unnormalised
"""
from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

try:
    from . import wire
except ImportError:  # a vendored copy: wire.py sits next to this file
    import wire  # type: ignore[no-redef]

MSG_CHUNK, MSG_ERROR, MSG_INFER, MSG_METADATA, MSG_RESET = (wire.MSG_CHUNK, wire.MSG_ERROR, wire.MSG_INFER,
                                                            wire.MSG_METADATA, wire.MSG_RESET)
PROTOCOL_VERSION, WireError, packb, unpackb = wire.PROTOCOL_VERSION, wire.WireError, wire.packb, wire.unpackb

__all__ = [
    "PROTOCOL_VERSION", "WireError", "ServerError", "packb", "unpackb",
    "PolicyClient", "AsyncPolicyClient",
]


class ServerError(RuntimeError):
    """The server answered a request with an error reply (`code`: bad_request, unauthorized, internal)."""

    def __init__(self, code: str, message: str, details: str | None = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.details = details


# ---------------------------------------------------------------------------------------------
# Shared request/reply helpers
# ---------------------------------------------------------------------------------------------

def _websockets_major() -> int:
    import websockets

    try:
        return int(str(websockets.__version__).split(".")[0])
    except ValueError:  # pragma: no cover - unusual version strings
        return 0


def _no_proxy() -> dict[str, Any]:
    """websockets >= 15 honours $https_proxy/$http_proxy; a robot's proxy must not capture the policy link.

    Older versions have no `proxy` argument (and their asyncio client forwards unknown keywords to
    the event loop, which rejects them late), hence the version check instead of try/except.
    """
    return {"proxy": None} if _websockets_major() >= 15 else {}


def _auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check_reply(reply: Any, expect: str) -> dict[str, Any]:
    if not isinstance(reply, dict) or "type" not in reply:
        raise WireError(f"malformed reply from server: {reply!r:.200}")
    if reply["type"] == MSG_ERROR:
        raise ServerError(str(reply.get("code", "error")), str(reply.get("message", "")), reply.get("details"))
    if reply["type"] != expect:
        raise WireError(f"expected a '{expect}' reply, got '{reply['type']}'")
    return reply


def _infer_message(image: np.ndarray, instruction: str | None, request_id: int | None,
                   extra: Mapping[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": MSG_INFER, "image": np.asarray(image)}
    if instruction is not None:
        msg["instruction"] = instruction
    if request_id is not None:
        msg["id"] = int(request_id)
    msg.update(extra)
    return msg


def _http_get(uri: str, path: str, token: str | None, timeout: float) -> dict[str, Any]:
    """GET an HTTP endpoint (`/healthz`, `/metrics`) of the server behind `uri` (ws:// or wss://)."""
    base = "http" + uri[2:] if uri.startswith("ws") else uri
    req = urllib.request.Request(base.rstrip("/") + path, headers=_auth_headers(token))
    # An explicit no-proxy opener: a robot's http_proxy must not capture 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


# ---------------------------------------------------------------------------------------------
# Synchronous client
# ---------------------------------------------------------------------------------------------

class PolicyClient:
    """Blocking client: one connection = one policy session on the server.

    Args:
        uri: ``ws://host:port`` of `selfflow-robot serve`.
        token: the server's auth token, if it has one (sent as ``Authorization: Bearer``).
        timeout: seconds to wait for the handshake and for each reply.

    `metadata` (sent by the server on connect) holds the chunk length, action dimension, the
    checkpoint's action bounds (``action_q01``/``action_q99``), the expected image shape and limits.
    Not thread-safe: use one client per thread (or `AsyncPolicyClient`).
    """

    def __init__(self, uri: str = "ws://127.0.0.1:8000", token: str | None = None,
                 timeout: float = 30.0, max_size: int = 64 * 2**20) -> None:
        from websockets.sync.client import connect

        self.uri = uri
        self.token = token
        self.timeout = timeout
        kwargs: dict[str, Any] = dict(open_timeout=timeout, max_size=max_size, compression=None)
        headers = _auth_headers(token)
        conn = connect(uri, additional_headers=headers, **_no_proxy(), **kwargs)
        # Enter the context explicitly (websockets >= 17.1 warns otherwise); `close()` ends it.
        self._ws = conn.__enter__()
        self._next_id = 0
        try:
            self.metadata: dict[str, Any] = _check_reply(unpackb(self._ws.recv(timeout=timeout)), MSG_METADATA)
        except BaseException:
            self._ws.close()
            raise

    def _call(self, msg: dict[str, Any], expect: str) -> dict[str, Any]:
        self._ws.send(packb(msg))
        return _check_reply(unpackb(self._ws.recv(timeout=self.timeout)), expect)

    def reset(self, instruction: str) -> None:
        """Start a new episode with this instruction (clears the server-side history)."""
        self._call({"type": MSG_RESET, "instruction": instruction}, MSG_RESET)

    def infer(self, image: np.ndarray, instruction: str | None = None, **extra: Any) -> dict[str, Any]:
        """Send one observation, get the action chunk reply (``actions`` (H, 7), ``terminate`` (H,), ``timing``).

        `instruction`, when given and different from the current one, starts a new episode first
        (SimplerEnv's ``step(image, task)`` semantics). `extra` fields go into the request as they are, e.g.
        ``state=`` the robot's proprioception (8 floats) for a checkpoint whose metadata has ``state_dim`` 8.
        """
        self._next_id += 1
        return self._call(_infer_message(image, instruction, self._next_id, extra), MSG_CHUNK)

    def send_raw(self, data: Any) -> dict[str, Any]:
        """Send raw bytes/str as one frame and return the decoded reply (any type). For tests and debugging."""
        self._ws.send(data)
        reply = unpackb(self._ws.recv(timeout=self.timeout))
        if not isinstance(reply, dict):
            raise WireError(f"malformed reply from server: {reply!r:.200}")
        return reply

    def health(self) -> dict[str, Any]:
        """The server's `/healthz` JSON (sent with the token: a server with auth tells others liveness only)."""
        return _http_get(self.uri, "/healthz", self.token, self.timeout)

    def metrics(self) -> dict[str, Any]:
        """The server's `/metrics` JSON (request counts, latency percentiles, errors)."""
        return _http_get(self.uri, "/metrics", self.token, self.timeout)

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# asyncio client
# ---------------------------------------------------------------------------------------------

def _async_connect(uri: str, headers: dict[str, str], timeout: float, max_size: int) -> Any:
    kwargs: dict[str, Any] = dict(open_timeout=timeout, max_size=max_size, compression=None)
    try:
        from websockets.asyncio.client import connect  # websockets >= 13
    except ImportError:  # pragma: no cover - websockets 11/12: the legacy client
        from websockets.client import connect  # type: ignore[no-redef]

        return connect(uri, extra_headers=headers, **kwargs)
    return connect(uri, additional_headers=headers, **_no_proxy(), **kwargs)


class AsyncPolicyClient:
    """asyncio client with the same methods as `PolicyClient` (``await client.infer(image)``).

    Create it with ``client = await AsyncPolicyClient.connect(uri, token=...)``; one request at a
    time per client (open several clients for concurrent sessions).
    """

    def __init__(self, ws: Any, metadata: dict[str, Any], uri: str, token: str | None, timeout: float) -> None:
        self._ws = ws
        self.metadata = metadata
        self.uri = uri
        self.token = token
        self.timeout = timeout
        self._next_id = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, uri: str = "ws://127.0.0.1:8000", token: str | None = None,
                      timeout: float = 30.0, max_size: int = 64 * 2**20) -> AsyncPolicyClient:
        ws = await _async_connect(uri, _auth_headers(token), timeout, max_size)
        try:
            meta = _check_reply(unpackb(await asyncio.wait_for(ws.recv(), timeout)), MSG_METADATA)
        except BaseException:
            await ws.close()
            raise
        return cls(ws, meta, uri, token, timeout)

    async def _call(self, msg: dict[str, Any], expect: str) -> dict[str, Any]:
        async with self._lock:  # replies are matched to requests by order
            await self._ws.send(packb(msg))
            return _check_reply(unpackb(await asyncio.wait_for(self._ws.recv(), self.timeout)), expect)

    async def reset(self, instruction: str) -> None:
        """Start a new episode with this instruction."""
        await self._call({"type": MSG_RESET, "instruction": instruction}, MSG_RESET)

    async def infer(self, image: np.ndarray, instruction: str | None = None, **extra: Any) -> dict[str, Any]:
        """Send one observation, get the action chunk reply (see `PolicyClient.infer`)."""
        self._next_id += 1
        return await self._call(_infer_message(image, instruction, self._next_id, extra), MSG_CHUNK)

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> AsyncPolicyClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
