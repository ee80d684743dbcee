#!/usr/bin/env bash
# Open top drawer and place apple, visual matching: 3 robot poses x 3x3 apple positions x 4 robot URDF
# colourings = 108 episodes per checkpoint, 200 steps. Mirrors SimplerEnv's scripts/rt1_put_in_drawer_visual_matching.sh.
# usage: SIMPLER_ENV_DIR=... scripts/simpler/put_in_drawer_visual_matching.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

URDF_VERSIONS=(recolor_cabinet_visual_matching_1 recolor_tabletop_visual_matching_1 recolor_tabletop_visual_matching_2 None)
POSES=("a0 0.644 -0.179 -0.03" "b0 0.652 0.009 0" "c0 0.665 0.224 0")

sweep() {
  local urdf pose id x y yaw
  for urdf in "${URDF_VERSIONS[@]}"; do
    for pose in "${POSES[@]}"; do
      read -r id x y yaw <<< "$pose"
      # shellcheck disable=SC2046
      run --max-episode-steps 200 --env-name PlaceIntoClosedTopDrawerCustomInScene-v0 --scene-name dummy_drawer \
        --robot-init-x "$x" "$x" 1 --robot-init-y "$y" "$y" 1 \
        --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 "$yaw" "$yaw" 1 \
        --obj-init-x-range -0.08 -0.02 3 --obj-init-y-range -0.02 0.08 3 \
        --rgb-overlay-path "$OVERLAYS/open_drawer_$id.png" \
        $(rt_flag) --additional-env-build-kwargs station_name=mk_station_recolor light_mode=simple \
        disable_bad_material=True "urdf_version=$urdf" model_ids=baked_apple_v2
    done
  done
}
for_each_ckpt sweep "$@"
