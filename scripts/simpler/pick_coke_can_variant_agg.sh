#!/usr/bin/env bash
# Pick coke can, variant aggregation (no overlay): base, 2 table textures, distractors (default + more),
# 2 backgrounds, 2 lightings, 2 camera poses (run as in SimplerEnv; its metric leaves the camera variants out).
# Mirrors SimplerEnv's scripts/rt1_pick_coke_can_variant_agg.sh. Needs the large coke-can stages.
# usage: SIMPLER_ENV_DIR=... scripts/simpler/pick_coke_can_variant_agg.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

COKE_OPTIONS=(lr_switch=True upright=True laid_vertically=True)

one() {  # one ENV SCENE [KWARGS...]
  local env="$1" scene="$2"
  shift 2
  run --max-episode-steps 80 --env-name "$env" --scene-name "$scene" \
    --robot-init-x 0.35 0.35 1 --robot-init-y 0.20 0.20 1 --obj-init-x -0.35 -0.12 5 --obj-init-y -0.02 0.42 5 \
    --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 0 0 1 \
    --additional-env-build-kwargs "$@"
}
sweep() {
  local opt scene env
  for opt in "${COKE_OPTIONS[@]}"; do
    one GraspSingleOpenedCokeCanInScene-v0 google_pick_coke_can_1_v4 "$opt"                          # base
    for scene in Baked_sc1_staging_objaverse_cabinet1_h870 Baked_sc1_staging_objaverse_cabinet2_h870; do
      one GraspSingleOpenedCokeCanInScene-v0 "$scene" "$opt"                                         # table textures
    done
    one GraspSingleOpenedCokeCanDistractorInScene-v0 google_pick_coke_can_1_v4 "$opt"                # distractors
    one GraspSingleOpenedCokeCanDistractorInScene-v0 google_pick_coke_can_1_v4 "$opt" distractor_config=more
    for scene in google_pick_coke_can_1_v4_alt_background google_pick_coke_can_1_v4_alt_background_2; do
      one GraspSingleOpenedCokeCanInScene-v0 "$scene" "$opt"                                         # backgrounds
    done
    one GraspSingleOpenedCokeCanInScene-v0 google_pick_coke_can_1_v4 "$opt" slightly_darker_lighting=True
    one GraspSingleOpenedCokeCanInScene-v0 google_pick_coke_can_1_v4 "$opt" slightly_brighter_lighting=True
    for env in GraspSingleOpenedCokeCanAltGoogleCameraInScene-v0 GraspSingleOpenedCokeCanAltGoogleCamera2InScene-v0; do
      one "$env" google_pick_coke_can_1_v4 "$opt"                                                    # camera poses
    done
  done
}
for_each_ckpt sweep "$@"
