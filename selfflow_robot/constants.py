"""Names shared across the package: token groups, batch keys, action layout.

Keys are defined once here and imported everywhere (never retyped as string literals).
"""
from __future__ import annotations

# Token groups of one training window (docs/architecture.md, "Model").
CONTEXT = "context"   # k past frames, always clean (tau = 0)
FUTURE = "future"     # H next frames: noisy (world model / joint) or absent (policy)
ACTIONS = "actions"   # H action tokens: noisy (policy / joint) or clean (world model)
GROUPS = (CONTEXT, FUTURE, ACTIONS)

# Action token layout: RT-1 7-D action + terminate flag.
WORLD_VECTOR = slice(0, 3)
ROTATION_DELTA = slice(3, 6)   # treated as axis-angle (as SimplerEnv's RT-1 wrapper does)
GRIPPER = 6                    # relative gripper_closedness_action, +1 close, -1 open, 0 hold
TERMINATE = 7                  # 1 = terminate episode (token value in {-1, +1} after normalisation)
RAW_ACTION_DIM = 7             # world_vector(3) + rotation_delta(3) + gripper(1)
ACTION_DIM = 8                 # RAW_ACTION_DIM + terminate
TEXT_DIM = 512                 # RT-1 natural_language_embedding (USE-large)
STATE_DIM = 8                  # proprioception: tool pose in the base frame (xyz + quaternion) + gripper_closed

# Keys of a training batch (numpy per window, torch after collate; B = batch).
CONTEXT_FRAMES = "context_frames"        # uint8 (B, k, H, W, 3)
FUTURE_FRAMES = "future_frames"          # uint8 (B, H, H_img, W_img, 3)
ACTIONS_RAW = "actions"                  # float32 (B, H, 7) raw RT-1 actions
TERMINATE_FLAG = "terminate"             # float32 (B, H) 1.0 where terminate_episode[0] > 0
ACTION_PAD = "action_pad"                # bool (B, H) True where past the episode end (padded)
FRAME_PAD = "frame_pad"                  # bool (B, H) True where the future frame is padding
INSTRUCTION = "instruction"              # list[str] (B,)
LANGUAGE_EMBEDDING = "language_embedding"  # float32 (B, 512)
EPISODE_ID = "episode_id"                # int64 (B,)
STATE = "state"                          # float32 (B, 8) raw proprioception at the last context frame
STEP_INDEX = "step_index"                # int64 (B,) index of the first future step in its episode

# Checkpoint directory files (docs/architecture.md, "Checkpoints").
CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATS_FILE = "dataset_statistics.json"
TRAINER_STATE_FILE = "trainer_state.pt"
LANGUAGE_TABLE_FILE = "language_table.safetensors"  # instruction -> 512-d embedding lookup
