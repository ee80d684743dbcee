#!/usr/bin/env bash
# Open/close drawers, variant aggregation (no overlay): base scene frl_apartment_stage_simple with a 3x3 robot
# grid, 2 backgrounds, 2 lightings, 2 cabinets. Mirrors SimplerEnv's scripts/rt1_drawer_variant_agg.sh.
# The modern_* backgrounds are large stages (>= 4 MiB): your SimplerEnv checkout must have them.
# usage: SIMPLER_ENV_DIR=... scripts/simpler/drawer_variant_agg.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

ENV_NAMES=(OpenTopDrawerCustomInScene-v0 OpenMiddleDrawerCustomInScene-v0 OpenBottomDrawerCustomInScene-v0
           CloseTopDrawerCustomInScene-v0 CloseMiddleDrawerCustomInScene-v0 CloseBottomDrawerCustomInScene-v0)

one() {  # one SCENE [ARGS...]
  local scene="$1" env
  shift
  for env in "${ENV_NAMES[@]}"; do
    run --max-episode-steps 113 --env-name "$env" --scene-name "$scene" \
      --robot-init-x 0.65 0.85 3 --robot-init-y -0.2 0.2 3 \
      --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 0.0 0.0 1 \
      --obj-init-x-range 0 0 1 --obj-init-y-range 0 0 1 "$@"
  done
}
sweep() {
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple $(rt_flag)                                          # base
  # shellcheck disable=SC2046
  one modern_bedroom_no_roof $(env_kwargs $(rt_kw))                                   # backgrounds
  # shellcheck disable=SC2046
  one modern_office_no_roof $(env_kwargs $(rt_kw))
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple $(env_kwargs $(rt_kw) light_mode=brighter)           # lightings
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple $(env_kwargs $(rt_kw) light_mode=darker)
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple $(env_kwargs $(rt_kw) station_name=mk_station2)      # cabinets
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple $(env_kwargs $(rt_kw) station_name=mk_station3)
}
for_each_ckpt sweep "$@"
