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
    "SelfFlowPolicy": "policy", "PolicyConfig": "policy", "PolicySession": "policy",
    "ActionChunker": "chunking",
    "LanguageTable": "language", "InstructionEmbedder": "language", "HFTextEncoder": "language",
    "HashingTextEncoder": "language", "UnknownInstructionError": "language",
    "check_simpler_action": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
