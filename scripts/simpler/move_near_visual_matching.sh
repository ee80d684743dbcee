#!/usr/bin/env bash
# Move near, visual matching: 60 episodes x 4 robot URDF colourings = 240 per checkpoint, 80 steps.
# Mirrors SimplerEnv's scripts/rt1_move_near_visual_matching.sh (MoveNearGoogleBakedTexInScene-v0).
# usage: SIMPLER_ENV_DIR=... scripts/simpler/move_near_visual_matching.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

URDF_VERSIONS=(None recolor_tabletop_visual_matching_1 recolor_tabletop_visual_matching_2 recolor_cabinet_visual_matching_1)

sweep() {
  local urdf
  for urdf in "${URDF_VERSIONS[@]}"; do
    run --max-episode-steps 80 --env-name MoveNearGoogleBakedTexInScene-v0 --scene-name google_pick_coke_can_1_v4 \
      --rgb-overlay-path "$OVERLAYS/google_move_near_real_eval_1.png" \
      --robot-init-x 0.35 0.35 1 --robot-init-y 0.21 0.21 1 --obj-variation-mode episode --obj-episode-range 0 60 \
      --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 -0.09 -0.09 1 \
      --additional-env-build-kwargs "urdf_version=$urdf" --additional-env-save-tags baked_except_bpb_orange
  done
}
for_each_ckpt sweep "$@"
