"""SIMPLER-compatible policy wrapper, action post-processing, policy server + client, export.

Installed as `selfflow_robot.policies`. Names are imported lazily, so the light client
(`selfflow_robot.policies.client`) stays importable without torch.

    from selfflow_robot.policies import SelfFlowPolicy
    policy = SelfFlowPolicy.from_pretrained("runs/demo")
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SelfFlowPolicy": "selfflow_robot.policies.policy", "PolicyConfig": "selfflow_robot.policies.config",
    "PolicySession": "selfflow_robot.policies.policy", "ActionChunker": "selfflow_robot.policies.chunking",
    "LanguageTable": "selfflow_robot.data.language", "InstructionEmbedder": "selfflow_robot.data.language",
    "HFTextEncoder": "selfflow_robot.data.language", "HashingTextEncoder": "selfflow_robot.data.language",
    "UnknownInstructionError": "selfflow_robot.data.language",
    "check_simpler_action": "selfflow_robot.data.transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
