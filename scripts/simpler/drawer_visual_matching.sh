#!/usr/bin/env bash
# Open/close {top,middle,bottom} drawer, visual matching: 9 robot poses (own overlay each) x 4 robot URDF
# colourings x 6 tasks = 216 episodes per checkpoint. Mirrors SimplerEnv's scripts/rt1_drawer_visual_matching.sh.
# usage: SIMPLER_ENV_DIR=... scripts/simpler/drawer_visual_matching.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

ENV_NAMES=(OpenTopDrawerCustomInScene-v0 OpenMiddleDrawerCustomInScene-v0 OpenBottomDrawerCustomInScene-v0
           CloseTopDrawerCustomInScene-v0 CloseMiddleDrawerCustomInScene-v0 CloseBottomDrawerCustomInScene-v0)
URDF_VERSIONS=(recolor_cabinet_visual_matching_1 recolor_tabletop_visual_matching_1 recolor_tabletop_visual_matching_2 None)
# overlay  x      y       yaw
POSES=("a0 0.644 -0.179 -0.03" "a1 0.765 -0.182 -0.02" "a2 0.889 -0.203 -0.06"
       "b0 0.652 0.009 0"      "b1 0.752 0.009 0"      "b2 0.851 0.035 0"
       "c0 0.665 0.224 0"      "c1 0.765 0.222 -0.025" "c2 0.865 0.222 -0.025")

sweep() {
  local urdf env pose id x y yaw
  for urdf in "${URDF_VERSIONS[@]}"; do
    for env in "${ENV_NAMES[@]}"; do
      for pose in "${POSES[@]}"; do
        read -r id x y yaw <<< "$pose"
        # shellcheck disable=SC2046
        run --max-episode-steps 113 --env-name "$env" --scene-name dummy_drawer \
          --robot-init-x "$x" "$x" 1 --robot-init-y "$y" "$y" 1 \
          --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 "$yaw" "$yaw" 1 \
          --obj-init-x-range 0 0 1 --obj-init-y-range 0 0 1 \
          --rgb-overlay-path "$OVERLAYS/open_drawer_$id.png" \
          $(rt_flag) --additional-env-build-kwargs station_name=mk_station_recolor light_mode=simple \
          disable_bad_material=True "urdf_version=$urdf"
      done
    done
  done
}
for_each_ckpt sweep "$@"
