"""The policy server (`selfflow-robot serve`), one job per module.

- `config`: `ServeConfig`, the schema of `selfflow-robot serve`;
- `protocol`: request limits and validation, error replies (the wire format itself is `policies/wire.py`,
  shared with the robot-side client), after `budget` bounded a frame's cost from its msgpack headers;
- `engine`: `PolicyEngine` and `SelfFlowEngine` (a `SelfFlowPolicy` behind the server), with
  `backends` (exported or compiled denoisers);
- `batcher`: `MicroBatcher`; `metrics`: `Metrics`;
- `gate`: `HandshakeGate` (auth, `/healthz`, `/metrics`, session limits), with `admission` (connection
  slots, failed-login back-off, refused-frame throttle); `events`: rate-limited one-line logging;
- `server`: `PolicyServer` (connections and sessions); `cli`: the `serve` command.
"""
