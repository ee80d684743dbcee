"""Policy evaluation inside the world model: closed-loop imagined episodes (`rollout`), a success judge of
imagined frames (`judge`, trained by `judge_train`), and the ranking report against the port (`ranking`);
`cli` is `selfflow-robot imagine-eval`."""
