"""What the server serves: the `PolicyEngine` interface and `SelfFlowEngine`, a `SelfFlowPolicy` behind it."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from selfflow_robot.config import check_choice
from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.policies.policy import PolicySession, SelfFlowPolicy, TokenPredictor
from selfflow_robot.policies.serving.backends import GraphTokenPredictor
from selfflow_robot.policies.serving.config import BACKENDS
from selfflow_robot.policies.serving.protocol import InferRequest, ProtocolError


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


class SelfFlowEngine:
    """Serve a `SelfFlowPolicy`: one `PolicySession` per connection, all sharing the policy's weights.

    Each session keeps its own instruction, frame history and noise generator (seeded at
    `reset`). A batch of requests from different sessions is one `SelfFlowPolicy.infer_batch`
    call: each row's initial noise comes from its own session's generator, so with the `ode`
    sampler a session gets the same chunk whether or not it was batched.

    `backend` picks how the action tokens are sampled: `eager` (the policy's own `predict_tokens`) or
    a `GraphTokenPredictor` (an exported graph or `torch.compile`), passed to every `infer_batch` call.

    Errors that concern one request (unknown instruction, infer before reset) fail only that
    request; if the batched call itself fails, the requests are retried one by one so a single
    bad request cannot take its batch-mates down with it.
    """

    def __init__(self, policy: SelfFlowPolicy, backend: str = "eager") -> None:
        check_choice("backend", backend, BACKENDS)
        self.policy = policy
        self.backend = backend
        self.predict_tokens: TokenPredictor = (policy.predict_tokens if backend == "eager"
                                               else GraphTokenPredictor(policy, backend))
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
        options: dict[str, Any] = {"device": device, "use_ema": use_ema, "use_state": use_state}
        if steps is not None:
            options["steps"] = steps
        return cls(SelfFlowPolicy.from_pretrained(ckpt, **options), backend=backend)

    @property
    def device(self) -> Any:
        """The policy's torch device."""
        return self.policy.device

    def metadata(self) -> dict[str, Any]:
        """The policy's metadata for clients (chunk length, action bounds, ...) plus the backend."""
        return dict(self._meta)

    def new_session(self) -> PolicySession:
        """A fresh session (one per connection)."""
        return self.policy.new_session()

    def reset(self, session: PolicySession, instruction: str) -> None:
        """Start an episode in `session`; an instruction the checkpoint cannot embed is a `ProtocolError`."""
        try:
            self.policy.reset_session(session, instruction)
        except UserError as e:  # e.g. an instruction the checkpoint has never seen
            raise ProtocolError(str(e)) from e

    def _admit(self, session: PolicySession, req: InferRequest) -> dict[str, Any]:
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

    def _run(self, rows: list[tuple[int, PolicySession, dict[str, Any]]], results: list[Any]) -> None:
        replies = self.policy.infer_batch([(session, obs) for _, session, obs in rows], self.predict_tokens)
        for (i, _, _), reply in zip(rows, replies):
            results[i] = reply

    def infer_batch(self, batch: Sequence[tuple[PolicySession, InferRequest]]) -> list[Any]:
        """One reply dict per ``(session, request)``, or the exception of a request that failed on its own."""
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
