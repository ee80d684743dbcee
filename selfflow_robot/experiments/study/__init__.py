"""Self-Flow vs vanilla flow matching, side by side (`scripts/study_selfflow_vs_vanilla.py`).

One study directory `<out>/` holds:

- `demos/`: the expert demos, collected once (or `--demos DIR`, an existing demos dir with `collect.json`);
- one `selfflow-robot demo` output dir per arm, `<out>/<objective>-seed<s>/`, whose `demos` is a symlink
  to the shared demos; each arm runs the demo phases train, eval, imagine, report with
  `objective=<objective> seed=<s>` and every other setting identical;
- the comparison, written from whatever the arms have on disk: `study.json`, `study.md`,
  `study_curves.png` (validation curves) and `study_success.png` (suite success per task).

Modules, in the order they build on each other:

- `config`: the arms, their demo overrides and the command that reproduces a study;
- `arms`: what each arm has on disk (config, training progress, validation rows, evaluation counts);
- `demos`: the shared demos (collected once, checked, linked into every arm);
- `run`: running or resuming the arms (locks, busy arms, stale evaluations, parallel processes);
- `results`: the comparison (seed means, steps to reach vanilla's quality, pooled success, the goals);
- `plots` and `report`: `study_curves.png`, `study_success.png`, `study.md`, `study.json`;
- `cli`: the command line the script runs.
"""
