"""The checkpoint format (atomic step folders, lookup, each file read back) and its one inference loader.

    from selfflow_robot.checkpoint import load_pretrained
    pre = load_pretrained("runs/demo")          # model, codec, config, normalisers, language table

Modules: `format` (writing, pruning, finding and reading step folders) and `loader` (`load_pretrained`).
"""
from selfflow_robot.checkpoint.format import (
    CHECKPOINTS_DIR,
    MANIFEST_FILE,
    REQUIRED_FILES,
    CheckpointError,
    check_state_dict,
    find_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_run_config,
    load_statistics,
    load_trainer_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
    step_dir_name,
    verify_checkpoint,
)
from selfflow_robot.checkpoint.loader import Pretrained, check_frame_stride, load_pretrained

__all__ = ["CHECKPOINTS_DIR", "MANIFEST_FILE", "REQUIRED_FILES", "CheckpointError", "Pretrained", "check_frame_stride",
           "check_state_dict", "find_checkpoint", "latest_checkpoint", "list_checkpoints", "load_pretrained",
           "load_run_config", "load_statistics", "load_trainer_state", "load_weights", "prune_checkpoints",
           "save_checkpoint", "step_dir_name", "verify_checkpoint"]
