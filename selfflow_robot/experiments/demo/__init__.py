"""`selfflow-robot demo`: expert demos -> train the `tiny` world model + policy -> score it -> imagine -> report.

Modules: `config` (`DemoConfig`, the schema of `configs/demo.yaml`, and the output dir's layout), `run`
(the phases and the CLI entry point `main`), `results` (a run's outputs read back from disk) and `report`
(`<out>/report/report.md` with its plots and videos).
"""
