"""Experiments, the top layer (docs/architecture.md, "Layers"): end-to-end jobs built from every layer below.

- `demo`: `selfflow-robot demo`, the main job on one CPU machine (collect, train, eval, imagine, report);
- `study`: Self-Flow vs vanilla flow matching side by side, each arm a demo run
  (`scripts/study_selfflow_vs_vanilla.py`).

Each is split into what it runs (`run`), what it reads back from disk (`results` / `arms`) and what it
writes for people to read (`report`).
"""
