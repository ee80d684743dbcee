"""Trainer, distributed setup, checkpoints, logging.

    from selfflow_robot.checkpoint import load_pretrained   # the one checkpoint loader
    from selfflow_robot.train.trainer import Trainer, train       # the training loop

Modules: `config` (the `train` group schema), `modes` (batch -> FlowBatch per training mode),
`trainer`, `validate` (held-out metrics vs baselines), `checkpoint`, `parallel` (DDP / FSDP2 from
outside the model), `schedule`, `rng`, `guard` (NaN/inf), `logger`, `builders`, `cli`.
"""
