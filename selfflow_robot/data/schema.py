"""The exact `fractal20220817_data` 0.1.0 feature spec (RT-1 in RLDS), as plain data.

Source: the TFDS catalog page of `fractal20220817_data` (shapes, dtypes, descriptions); see
`reference/rlds.md` section 1. The spec is kept as plain Python so the reader needs neither
TensorFlow nor tensorflow-datasets; `features_dict()` builds the identical
`tfds.features.FeaturesDict` (used by the writer to produce `features.json`).

Serialized layout (what TFDS writes for one episode = one `tf.train.Example`): every step
field is flattened over the episode under `steps/<path>` (e.g. `steps/action/world_vector`
is a float list of length T*3), images are a bytes list of T encoded JPEGs, booleans and
int32 are int64 lists, strings are bytes lists; episode fields are `aspects/<name>` and
`attributes/<name>`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfflow_robot.errors import require

NAME = "fractal20220817_data"
VERSION = "0.1.0"
SPLIT = "train"
RELATIVE_DIR = f"{NAME}/{VERSION}"           # layout under a TFDS data_dir
FILE_FORMAT = "tfrecord"
FILEPATH_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
GCS_BUILDER_DIR = f"gs://gresearch/robotics/{RELATIVE_DIR}"
IMAGE_SHAPE = (256, 320, 3)
IMAGE_ENCODING = "jpeg"
DESCRIPTION = "Table-top manipulation with 17 objects"


@dataclass(frozen=True)
class Field:
    """One leaf feature: its path, per-step shape, numpy dtype and TFDS kind."""

    path: str                 # e.g. "action/world_vector" (relative to `steps/` or the episode)
    shape: tuple[int, ...]
    dtype: str                # "float32" | "int32" | "int64" | "bool" | "string" | "uint8"
    kind: str = "tensor"      # "tensor" | "scalar" | "image"
    doc: str = ""

    @property
    def size(self) -> int:
        """Number of scalar values per step (1 for scalars and strings)."""
        return int(np.prod(self.shape)) if self.shape else 1


def _t(path: str, shape: tuple[int, ...], dtype: str = "float32", doc: str = "") -> Field:
    return Field(path, shape, dtype, "tensor", doc)


def _s(path: str, dtype: str, doc: str = "") -> Field:
    return Field(path, (), dtype, "scalar", doc)


# Step features (inside `steps`), in catalog order.
STEP_FIELDS: tuple[Field, ...] = (
    _t("action/base_displacement_vector", (2,)),
    _t("action/base_displacement_vertical_rotation", (1,)),
    _t("action/gripper_closedness_action", (1,), doc="continuous gripper position"),
    _t("action/rotation_delta", (3,), doc="rpy commanded orientation displacement, in base-relative frame"),
    _t("action/terminate_episode", (3,), "int32"),
    _t("action/world_vector", (3,), doc="commanded end-effector displacement, in base-relative frame"),
    _s("is_first", "bool"),
    _s("is_last", "bool"),
    _s("is_terminal", "bool"),
    _t("observation/base_pose_tool_reached", (7,), doc="end-effector base-relative position+quaternion pose"),
    _t("observation/gripper_closed", (1,)),
    _t("observation/gripper_closedness_commanded", (1,), doc="continuous gripper position"),
    _t("observation/height_to_bottom", (1,), doc="height of end-effector from ground"),
    Field("observation/image", IMAGE_SHAPE, "uint8", "image"),
    _t("observation/natural_language_embedding", (512,)),
    _t("observation/natural_language_instruction", (), "string"),
    _t("observation/orientation_box", (2, 3)),
    _t("observation/orientation_start", (4,)),
    _t("observation/robot_orientation_positions_box", (3, 3)),
    _t("observation/rotation_delta_to_go", (3,), doc="rotational displacement from current orientation to target"),
    _t("observation/src_rotation", (4,)),
    _t("observation/vector_to_go", (3,), doc="displacement from current end-effector position to target"),
    _t("observation/workspace_bounds", (3, 3)),
    _s("reward", "float32"),
)

_ASPECTS = ("already_success", "feasible", "has_aspects", "success", "undesirable")
_ATTRIBUTES = ("collection_mode", "data_type", "env", "location", "objects_family", "task_family")

# Episode-level features (outside `steps`).
EPISODE_FIELDS: tuple[Field, ...] = (
    *(_s(f"aspects/{a}", "bool") for a in _ASPECTS),
    *(_s(f"attributes/{a}", "int64") for a in _ATTRIBUTES),
    *(_t(f"attributes/{a}_name", (), "string") for a in _ATTRIBUTES),
)
ASPECTS_DOC = "Session Aspects for crowdcompute ratings"

STEP_FIELD = {f.path: f for f in STEP_FIELDS}
EPISODE_FIELD = {f.path: f for f in EPISODE_FIELDS}

# The step keys the training pipeline needs; a record missing one of these is a bad episode.
IMAGE = "observation/image"
INSTRUCTION = "observation/natural_language_instruction"
EMBEDDING = "observation/natural_language_embedding"
WORLD_VECTOR = "action/world_vector"
ROTATION_DELTA = "action/rotation_delta"
GRIPPER = "action/gripper_closedness_action"
TERMINATE = "action/terminate_episode"
REQUIRED_STEP_KEYS = (IMAGE, INSTRUCTION, EMBEDDING, WORLD_VECTOR, ROTATION_DELTA, GRIPPER, TERMINATE,
                      "is_first", "is_last")
ACTION_KEYS = (WORLD_VECTOR, ROTATION_DELTA, GRIPPER)   # concatenated in this order -> 7-D action
# No action component may exceed this magnitude (metres / radians per step; RT-1's own actions stay within
# +-25): a larger value is a unit error or garbage, refused by the reader and the converters.
ACTION_LIMIT = 100.0
# Proprioception, concatenated in this order -> 8-D state (Octo's and OpenVLA's RT-1 `proprio`): the tool pose
# in the robot base frame, position (m) + quaternion (x, y, z, w), and how closed the gripper is (0 open ..
# 1 closed).
TOOL_POSE = "observation/base_pose_tool_reached"
GRIPPER_CLOSED = "observation/gripper_closed"
STATE_KEYS = (TOOL_POSE, GRIPPER_CLOSED)
QUAT = slice(3, 7)
# q and -q are the same rotation; `canonical_state` picks the sign on the side of the Google robot's home tool
# orientation (its start pose in SimplerEnv, x y z w), so the value stays continuous over every reachable pose.
HOME_TOOL_QUAT = np.array([-0.604, 0.780, -0.032, 0.160])


def canonical_state(state: np.ndarray) -> np.ndarray:
    """(..., 8) proprioception with each quaternion's sign chosen so that q . HOME_TOOL_QUAT >= 0 (a copy)."""
    out = np.array(state, np.float32, copy=True)
    q = out[..., QUAT]
    q *= np.where(q @ HOME_TOOL_QUAT < 0, -1.0, 1.0)[..., None].astype(np.float32)
    return out


def serialized_key(path: str, step: bool = True) -> str:
    """The `tf.train.Example` key of a feature: `steps/<path>` for step fields."""
    return f"steps/{path}" if step else path


def shard_filename(index: int, num_shards: int, split: str = SPLIT) -> str:
    """`fractal20220817_data-train.tfrecord-00000-of-00001` (TFDS naming)."""
    return f"{NAME}-{split}.{FILE_FORMAT}-{index:05d}-of-{num_shards:05d}"


def features_dict():
    """The `tfds.features.FeaturesDict` of fractal20220817_data 0.1.0 (imports tensorflow_datasets)."""
    tfds = require("tensorflow_datasets", "data")
    F = tfds.features

    def leaf(f: Field):
        dtype = np.str_ if f.dtype == "string" else np.dtype(f.dtype)
        if f.kind == "image":
            return F.Image(shape=f.shape, dtype=np.uint8, encoding_format=IMAGE_ENCODING)
        if f.kind == "scalar":
            return F.Scalar(dtype=dtype, doc=f.doc or None)
        return F.Tensor(shape=f.shape, dtype=dtype, doc=f.doc or None)

    def nest(fields: tuple[Field, ...]) -> dict:
        out: dict = {}
        for f in fields:
            *parents, name = f.path.split("/")
            d = out
            for p in parents:
                d = d.setdefault(p, {})
            d[name] = leaf(f)
        return out

    steps = nest(STEP_FIELDS)
    steps["action"] = F.FeaturesDict(steps["action"])
    steps["observation"] = F.FeaturesDict(steps["observation"])
    episode = nest(EPISODE_FIELDS)
    return F.FeaturesDict({
        "aspects": F.FeaturesDict(episode["aspects"], doc=ASPECTS_DOC),
        "attributes": F.FeaturesDict(episode["attributes"]),
        "steps": F.Dataset(steps),
    })
