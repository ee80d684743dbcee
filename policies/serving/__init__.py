"""The policy server (`selfflow-robot serve`), one job per module.

- `config`: `ServeConfig`, the schema of `selfflow-robot serve`;
- `protocol`: request limits and validation, error replies (the wire format itself is `policies/wire.py`,
  shared with the robot-side client);
- `engine`: `PolicyEngine` and `SelfFlowEngine` (a `SelfFlowPolicy` behind the server), with
  `backends` (exported or compiled denoisers);
- `batcher`: `MicroBatcher`; `metrics`: `Metrics`;
- `server`: `PolicyServer` (connections, auth, `/healthz`, `/metrics`); `cli`: the `serve` command.
"""
