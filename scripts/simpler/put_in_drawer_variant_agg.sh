#!/usr/bin/env bash
# Open top drawer and place apple, variant aggregation (no overlay): base scene, 2 backgrounds, 2 lightings,
# 2 cabinets; robot x 0.65, y in [-0.2, 0.2] (3), apple 3x3. Mirrors SimplerEnv's scripts/rt1_put_in_drawer_variant_agg.sh.
# usage: SIMPLER_ENV_DIR=... scripts/simpler/put_in_drawer_variant_agg.sh CKPT_DIR [CKPT_DIR ...]
source "$(dirname "$0")/common.sh"

one() {  # one SCENE [ARGS...]
  local scene="$1"
  shift
  run --max-episode-steps 200 --env-name PlaceIntoClosedTopDrawerCustomInScene-v0 --scene-name "$scene" \
    --robot-init-x 0.65 0.65 1 --robot-init-y -0.2 0.2 3 \
    --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 0.0 0.0 1 \
    --obj-init-x-range -0.08 -0.02 3 --obj-init-y-range -0.02 0.08 3 "$@"
}
sweep() {
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple $(rt_flag) --additional-env-build-kwargs model_ids=apple
  # shellcheck disable=SC2046
  one modern_bedroom_no_roof --additional-env-build-kwargs $(rt_kw) model_ids=apple
  # shellcheck disable=SC2046
  one modern_office_no_roof --additional-env-build-kwargs $(rt_kw) model_ids=apple
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple --additional-env-build-kwargs $(rt_kw) light_mode=brighter model_ids=apple
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple --additional-env-build-kwargs $(rt_kw) light_mode=darker model_ids=apple
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple --additional-env-build-kwargs $(rt_kw) station_name=mk_station2 model_ids=apple
  # shellcheck disable=SC2046
  one frl_apartment_stage_simple --additional-env-build-kwargs $(rt_kw) station_name=mk_station3 model_ids=apple
}
for_each_ckpt sweep "$@"
