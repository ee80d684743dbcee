#!/usr/bin/env bash
# Move near, variant aggregation (no overlay): base, no distractors, 2 backgrounds, 2 lightings, 2 table
# textures, 2 camera poses. Mirrors SimplerEnv's scripts/rt1_move_near_variant_agg.sh.
# usage: SIMPLER_ENV_DIR=... scripts/simpler/move_near_variant_agg.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

one() {  # one ENV SCENE [ARGS...]
  local env="$1" scene="$2"
  shift 2
  run --max-episode-steps 80 --env-name "$env" --scene-name "$scene" \
    --robot-init-x 0.35 0.35 1 --robot-init-y 0.21 0.21 1 --obj-variation-mode episode --obj-episode-range 0 60 \
    --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 -0.09 -0.09 1 "$@"
}
sweep() {
  local scene env
  one MoveNearGoogleInScene-v0 google_pick_coke_can_1_v4                                               # base
  one MoveNearGoogleInScene-v0 google_pick_coke_can_1_v4 --additional-env-build-kwargs no_distractor=True
  for scene in google_pick_coke_can_1_v4_alt_background google_pick_coke_can_1_v4_alt_background_2; do
    one MoveNearGoogleInScene-v0 "$scene"                                                             # backgrounds
  done
  one MoveNearGoogleInScene-v0 google_pick_coke_can_1_v4 --additional-env-build-kwargs slightly_darker_lighting=True
  one MoveNearGoogleInScene-v0 google_pick_coke_can_1_v4 --additional-env-build-kwargs slightly_brighter_lighting=True
  for scene in Baked_sc1_staging_objaverse_cabinet1_h870 Baked_sc1_staging_objaverse_cabinet2_h870; do
    one MoveNearGoogleInScene-v0 "$scene"                                                             # table textures
  done
  for env in MoveNearAltGoogleCameraInScene-v0 MoveNearAltGoogleCamera2InScene-v0; do
    one "$env" google_pick_coke_can_1_v4                                                              # camera poses
  done
}
for_each_ckpt sweep "$@"
