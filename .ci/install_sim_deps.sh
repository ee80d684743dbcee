#!/usr/bin/env bash
# Install what the ManiSkill3 SIMPLER port needs on a fresh Debian 12 (bookworm) or 13 (trixie)
# machine: Mesa >= 23 lavapipe (CPU Vulkan), the Vulkan loader, and the `mani-skill` wheel pinned
# so that it keeps the already-installed CPU torch. Idempotent: re-running it changes nothing.
#
# Usage:  .ci/install_sim_deps.sh [PYTHON]        (PYTHON defaults to `python`, i.e. the active venv)
#         eval "$(.ci/install_sim_deps.sh | grep '^export ')"
# The last line it prints is `export VK_ICD_FILENAMES=...` pointing at the lavapipe ICD json.
set -euo pipefail

PY="${1:-python}"
MANI_SKILL_VERSION="3.0.1"
SAPIEN_VERSION="3.0.3"

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
apt_target=()
if [ "$codename" = "bookworm" ]; then
    # Debian 12 ships Mesa 22 whose lavapipe lacks what SAPIEN 3 needs; backports has Mesa >= 23.
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
    apt_target=(-t bookworm-backports)
fi

need_apt=0
for pkg in mesa-vulkan-drivers libvulkan1 vulkan-tools; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done
if [ "$codename" = "bookworm" ] && [ "$need_apt" = "0" ]; then
    mesa_ver="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
    dpkg --compare-versions "$mesa_ver" ge 23 || need_apt=1
fi
if [ "$need_apt" = "1" ]; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq libvulkan1 vulkan-tools >/dev/null
    $SUDO apt-get install -y -qq "${apt_target[@]}" mesa-vulkan-drivers >/dev/null
fi

# mani-skill pins: no torch upgrade (torch is a dependency; the CPU wheel already installed satisfies it).
if ! "$PY" -c "import mani_skill, sapien" >/dev/null 2>&1; then
    "$PY" -m pip install -q "mani-skill==${MANI_SKILL_VERSION}" "sapien==${SAPIEN_VERSION}" \
        --upgrade-strategy only-if-needed
fi
"$PY" - <<'PYEOF'
import torch
assert "+cu" not in torch.__version__, f"a CUDA torch got installed ({torch.__version__}); reinstall the CPU wheel"
PYEOF

icd="$(ls /usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -n1 || true)"
if [ -z "$icd" ]; then
    echo "error: no lavapipe ICD json in /usr/share/vulkan/icd.d after installing mesa-vulkan-drivers" >&2
    exit 1
fi
echo "export VK_ICD_FILENAMES=$icd"
