"""Evaluation (layer 4): score checkpoints or the scripted expert on the SIMPLER suites of the ManiSkill3 port.

- `config`: `EvalConfig`, the schema of `selfflow-robot eval`;
- `suites`: what a sweep runs (tasks, grid episodes, scene variants, checkpoints) as `EpisodeJob`s;
- `agents`: a checkpoint (`SelfFlowPolicy`) or the scripted expert, as the episode loop drives them;
- `workers`: one episode with SimplerEnv's evaluator semantics, and the pool of worker processes;
- `evaluate`: the sweep (episodes.jsonl, resume) and `main`;
- `metrics`, `published`, `report`: scoring, the published SIMPLER numbers, results.json / results.md / plot;
- `fidelity`, `fidelity_report`: the port measured against real SimplerEnv (`scripts/simpler_fidelity.py`);
- `simpler/`: code that runs in real SimplerEnv's own environment (the policy-server runner, fidelity phases).
"""
