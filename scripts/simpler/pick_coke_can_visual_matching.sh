#!/usr/bin/env bash
# Pick coke can, visual matching: 3 orientations x 5x5 can positions x 4 robot URDF colourings = 300 episodes
# per checkpoint, 80 steps. Mirrors SimplerEnv's scripts/rt1_pick_coke_can_visual_matching.sh (rasterized there
# too). Needs the scene google_pick_coke_can_1_v4 (a >= 4 MiB stage) in your SimplerEnv checkout.
# usage: SIMPLER_ENV_DIR=... scripts/simpler/pick_coke_can_visual_matching.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

COKE_OPTIONS=(lr_switch=True upright=True laid_vertically=True)
URDF_VERSIONS=(None recolor_tabletop_visual_matching_1 recolor_tabletop_visual_matching_2 recolor_cabinet_visual_matching_1)

sweep() {
  local urdf opt
  for urdf in "${URDF_VERSIONS[@]}"; do
    for opt in "${COKE_OPTIONS[@]}"; do
      run --max-episode-steps 80 --env-name GraspSingleOpenedCokeCanInScene-v0 --scene-name google_pick_coke_can_1_v4 \
        --rgb-overlay-path "$OVERLAYS/google_coke_can_real_eval_1.png" \
        --robot-init-x 0.35 0.35 1 --robot-init-y 0.20 0.20 1 --obj-init-x -0.35 -0.12 5 --obj-init-y -0.02 0.42 5 \
        --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 0 0 1 \
        --additional-env-build-kwargs "$opt" "urdf_version=$urdf"
    done
  done
}
for_each_ckpt sweep "$@"
