"""CPU rendering setup: point the Vulkan loader at Mesa's lavapipe when nothing else is chosen.

SAPIEN 3 renders on CPU-only machines through lavapipe (Mesa >= 23). The Vulkan loader finds
it by itself on most systems, but when an NVIDIA ICD is also installed without a GPU, or when
several ICDs exist, it may pick the wrong one; `VK_ICD_FILENAMES` pins the choice.
"""
from __future__ import annotations

import glob
import os

LVP_ICD_GLOBS = ("/usr/share/vulkan/icd.d/lvp_icd*.json", "/etc/vulkan/icd.d/lvp_icd*.json",
                 "/usr/local/share/vulkan/icd.d/lvp_icd*.json")


def lavapipe_icd() -> str | None:
    """Path of the lavapipe ICD json if one is installed, else None."""
    for pattern in LVP_ICD_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def ensure_vulkan_icd() -> str | None:
    """Set `VK_ICD_FILENAMES` to lavapipe if it is unset and lavapipe exists; return its value.

    Call before the first `import sapien` renders anything (the loader reads it once).
    A value the user already set is never changed.
    """
    if os.environ.get("VK_ICD_FILENAMES"):
        return os.environ["VK_ICD_FILENAMES"]
    icd = lavapipe_icd()
    if icd is not None:
        os.environ["VK_ICD_FILENAMES"] = icd
    return icd
